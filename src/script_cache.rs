//! Scripts that passed through keyway (`SCRIPT LOAD`, and the bodies of
//! `EVAL`/`EVAL_RO`), by SHA1, so that an `EVALSHA` answered `-NOSCRIPT` by
//! a master that never saw the script (a replica promoted after a failover,
//! a master added later, a flushed cache) is healed: the script is loaded
//! on every master again and the `EVALSHA` sent again.
//!
//! Shared by all workers and bounded: past [`MAX_SCRIPTS`] bodies or
//! [`MAX_BYTES`], the least recently used quarter is forgotten. An `EVAL`
//! does not take the shared lock each time: each worker remembers which
//! bodies it already passed on ([`SeenScripts`], a 64-bit hash each), so
//! only a body new to the worker is hashed with SHA1 and stored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// Bodies remembered at most.
const MAX_SCRIPTS: usize = 10_000;

/// Bytes of bodies remembered at most.
const MAX_BYTES: usize = 64 << 20;

/// Remembered bodies by their lowercase hex SHA1; see the module docs.
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<Scripts>,
    /// Bumped whenever bodies are forgotten: the workers' [`SeenScripts`]
    /// are then out of date and start over.
    generation: AtomicU64,
}

#[derive(Default)]
struct Scripts {
    by_sha: HashMap<String, Script>,
    bytes: usize,
    /// Counts uses: the most recent use has the highest.
    clock: u64,
}

struct Script {
    body: Bytes,
    used: u64,
}

impl ScriptCache {
    /// Remembers `body` (a `SCRIPT LOAD`'s or an `EVAL`'s script).
    pub fn remember(&self, body: &[u8]) {
        if body.len() > MAX_BYTES / 4 {
            return;
        }
        let sha = sha1_smol::Sha1::from(body).digest().to_string();
        let mut scripts = self.lock();
        scripts.clock += 1;
        let used = scripts.clock;
        if let Some(script) = scripts.by_sha.get_mut(&sha) {
            script.used = used;
            return;
        }
        let body = Bytes::copy_from_slice(body);
        scripts.bytes += body.len();
        scripts.by_sha.insert(sha, Script { body, used });
        if scripts.by_sha.len() > MAX_SCRIPTS || scripts.bytes > MAX_BYTES {
            scripts.forget_least_used();
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The body whose SHA1 is `sha` (any case), if it is remembered.
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        let mut scripts = self.lock();
        scripts.clock += 1;
        let used = scripts.clock;
        let script = scripts.by_sha.get_mut(&sha)?;
        script.used = used;
        Some(script.body.clone())
    }

    /// Forgets every script (`SCRIPT FLUSH`).
    pub fn clear(&self) {
        let mut scripts = self.lock();
        scripts.by_sha.clear();
        scripts.bytes = 0;
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scripts> {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Scripts {
    /// Forgets the least recently used bodies until three quarters of
    /// each bound are left (so the next overflow is far off).
    fn forget_least_used(&mut self) {
        let mut by_use: Vec<(u64, String)> = self
            .by_sha
            .iter()
            .map(|(sha, s)| (s.used, sha.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, sha) in by_use {
            if self.by_sha.len() <= MAX_SCRIPTS * 3 / 4 && self.bytes <= MAX_BYTES * 3 / 4 {
                break;
            }
            if let Some(script) = self.by_sha.remove(&sha) {
                self.bytes -= script.body.len();
            }
        }
    }
}

/// One worker's record of the `EVAL` bodies it passed on to the cache
/// (their 64-bit hashes), valid for one generation of the cache.
#[derive(Default)]
pub struct SeenScripts {
    generation: u64,
    hashes: HashSet<u64>,
}

impl SeenScripts {
    /// Remembers `body` in `cache` unless this worker already did since
    /// the cache last forgot anything: a hash of the body and a lookup,
    /// no lock, for a body seen before.
    pub fn remember(&mut self, body: &[u8], cache: &ScriptCache) {
        let generation = cache.generation.load(Ordering::Relaxed);
        if generation != self.generation || self.hashes.len() >= MAX_SCRIPTS {
            self.generation = generation;
            self.hashes.clear();
        }
        if self.hashes.insert(quick_hash(body)) {
            cache.remember(body);
        }
    }
}

/// A fast 64-bit hash (FxHash's step, 8 bytes at a time); not SHA1.
fn quick_hash(body: &[u8]) -> u64 {
    let mut hash = body.len() as u64;
    for chunk in body.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word))
            .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    hash
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

    fn sha(body: &str) -> String {
        sha1_smol::Sha1::from(body).digest().to_string()
    }

    #[test]
    fn past_the_bound_the_least_recently_used_are_forgotten() {
        let cache = ScriptCache::default();
        cache.remember(b"return 'old but used'");
        for i in 0..MAX_SCRIPTS {
            cache.remember(format!("return {i}").as_bytes());
            if i % 1000 == 0 {
                // Used now and then: stays.
                assert!(cache.get(sha("return 'old but used'").as_bytes()).is_some());
            }
        }
        let scripts = cache.lock();
        assert!(scripts.by_sha.len() <= MAX_SCRIPTS * 3 / 4 + 1);
        assert!(scripts.by_sha.contains_key(&sha("return 'old but used'")));
        assert!(!scripts.by_sha.contains_key(&sha("return 0")), "least used");
        assert!(scripts
            .by_sha
            .contains_key(&sha(&format!("return {}", MAX_SCRIPTS - 1))));
        assert_eq!(
            scripts.bytes,
            scripts.by_sha.values().map(|s| s.body.len()).sum::<usize>()
        );
    }

    #[test]
    fn a_worker_passes_each_body_on_once_per_generation() {
        let cache = ScriptCache::default();
        let mut seen = SeenScripts::default();
        seen.remember(b"return 1", &cache);
        cache.lock().by_sha.clear(); // behind the worker's back
        seen.remember(b"return 1", &cache);
        assert!(
            cache.get(sha("return 1").as_bytes()).is_none(),
            "not sent twice"
        );
        cache.clear(); // a new generation
        seen.remember(b"return 1", &cache);
        assert!(cache.get(sha("return 1").as_bytes()).is_some());
        assert_ne!(quick_hash(b"return 1"), quick_hash(b"return 2"));
        assert_ne!(quick_hash(b"a"), quick_hash(b"a\0"));
    }
}
