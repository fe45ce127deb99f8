//! Scripts loaded through keyway (`SCRIPT LOAD`), by SHA1, so that an
//! `EVALSHA` answered `-NOSCRIPT` by a master that never saw the script (a
//! replica promoted after a failover, a master added later) is healed: the
//! script is loaded on every master again and the `EVALSHA` sent again.
//! Shared by all workers; used only on that rare path and on `SCRIPT LOAD`.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Scripts remembered at most; past it, new ones are not remembered (a
/// client loading scripts without end would otherwise grow keyway).
const MAX_SCRIPTS: usize = 10_000;

/// `SCRIPT LOAD`ed bodies by their lowercase hex SHA1.
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<HashMap<String, Bytes>>,
}

impl ScriptCache {
    /// Remembers `body` (as `SCRIPT LOAD` sent it).
    pub fn remember(&self, body: &[u8]) {
        let sha = sha1_smol::Sha1::from(body).digest().to_string();
        let mut scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        if scripts.len() < MAX_SCRIPTS || scripts.contains_key(&sha) {
            scripts.insert(sha, Bytes::copy_from_slice(body));
        }
    }

    /// The body whose SHA1 is `sha` (any case), if it was loaded.
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        let scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        scripts.get(&sha).cloned()
    }

    /// Forgets every script (`SCRIPT FLUSH`).
    pub fn clear(&self) {
        self.scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_found_by_the_sha1_redis_gives_them() {
        let cache = ScriptCache::default();
        cache.remember(b"return 1");
        // redis-cli SCRIPT LOAD "return 1"
        let sha = b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db";
        assert_eq!(cache.get(sha).as_deref(), Some(&b"return 1"[..]));
        assert_eq!(
            cache.get(&sha.to_ascii_uppercase()).as_deref(),
            Some(&b"return 1"[..])
        );
        assert!(cache
            .get(b"0000000000000000000000000000000000000000")
            .is_none());
        cache.clear();
        assert!(cache.get(sha).is_none());
    }
}
