//! keyway's own slow log: requests whose time through keyway (from the
//! read that brought them in to their reply being taken for the client)
//! reached `proxy.slowlog_slower_than_us`, the newest
//! `proxy.slowlog_max_len` kept, like redis-server's. `SLOWLOG GET` shows
//! them beside the masters' entries, marked `keyway`; `SLOWLOG LEN` counts
//! and `SLOWLOG RESET` clears them too. Only slow requests take its lock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One slow request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowEntry {
    /// keyway's own entry id, rising from 0.
    pub id: u64,
    /// When it was answered, in Unix seconds.
    pub unix_s: i64,
    /// Its time through keyway, in microseconds.
    pub took_us: u64,
    /// The command's ACL id (see `stats::commands`): its name is looked up
    /// when shown, so nothing is copied when recording.
    pub command: u16,
    /// The client's address.
    pub client: SocketAddr,
    /// The client's `CLIENT SETNAME`, or empty.
    pub name: String,
}

#[derive(Default)]
struct Log {
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

/// The log; see the module docs.
#[derive(Default)]
pub struct SlowLog {
    log: Mutex<Log>,
}

impl SlowLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a slow request, dropping the oldest past `max_len`.
    pub fn record(
        &self,
        max_len: usize,
        took: Duration,
        command: u16,
        client: SocketAddr,
        name: String,
    ) {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut log = self.lock();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(SlowEntry {
            id,
            unix_s,
            took_us: took.as_micros().min(u64::MAX as u128) as u64,
            command,
            client,
            name,
        });
        log.entries.truncate(max_len);
    }

    /// The newest `limit` entries (all with `None`), newest first.
    pub fn newest(&self, limit: Option<usize>) -> Vec<SlowEntry> {
        let log = self.lock();
        let n = limit.unwrap_or(usize::MAX);
        log.entries.iter().take(n).cloned().collect()
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every entry (`SLOWLOG RESET`); ids keep rising.
    pub fn reset(&self) {
        self.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_are_kept_up_to_the_length_newest_first() {
        let log = SlowLog::default();
        let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for i in 0..5u64 {
            log.record(3, Duration::from_micros(100 + i), 7, client, String::new());
        }
        let entries = log.newest(None);
        let ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 3, 2]);
        assert_eq!(entries[0].took_us, 104);
        assert_eq!(log.newest(Some(1)).len(), 1);
        assert_eq!(log.len(), 3);
        log.reset();
        assert!(log.is_empty());
        log.record(3, Duration::ZERO, 7, client, "app".into());
        assert_eq!(log.newest(None)[0].id, 5);
    }
}
