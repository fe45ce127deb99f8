//! `ACL LOG`: the most recent refusals (a command, key or channel denied,
//! or a failed `AUTH`), similar ones grouped as redis-server groups them
//! (same reason, context, object and user within a minute).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Entries kept, as redis-server's default `acllog-max-len`.
const MAX_ENTRIES: usize = 128;

/// How close in time a refusal must be to an entry to be counted in it.
const GROUP_WITHIN: Duration = Duration::from_secs(60);

/// What was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `AUTH` with a wrong user or password.
    Auth,
    /// A command the user may not run.
    Command,
    /// A key the user may not access.
    Key,
    /// A channel the user may not access.
    Channel,
}

impl Reason {
    /// The name `ACL LOG` shows.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
        }
    }
}

/// One entry of `ACL LOG`.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Refusals grouped in it.
    pub count: u64,
    /// What was refused.
    pub reason: Reason,
    /// `toplevel` or `multi`.
    pub context: &'static str,
    /// The command, key or channel (for `auth`: `AUTH`).
    pub object: String,
    /// The user (for `auth`: the name tried).
    pub username: String,
    /// The client, as `CLIENT INFO` describes it.
    pub client_info: String,
    /// When it last happened.
    pub at: Instant,
}

impl Entry {
    /// One refusal, now.
    pub fn now(
        reason: Reason,
        context: &'static str,
        object: String,
        username: String,
        client_info: String,
    ) -> Entry {
        Entry {
            count: 1,
            reason,
            context,
            object,
            username,
            client_info,
            at: Instant::now(),
        }
    }
}

/// The log, newest first.
#[derive(Debug, Default)]
pub struct Log {
    entries: VecDeque<Entry>,
}

impl Log {
    /// Records a refusal, counted in a recent similar entry if there is one.
    pub fn add(&mut self, entry: Entry) {
        let similar = self.entries.iter().position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && entry.at.duration_since(e.at) < GROUP_WITHIN
        });
        let entry = match similar.and_then(|i| self.entries.remove(i)) {
            Some(old) => Entry {
                count: old.count + 1,
                ..entry
            },
            None => entry,
        };
        self.entries.push_front(entry);
        self.entries.truncate(MAX_ENTRIES);
    }

    /// The newest `n` entries.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(n)
    }

    /// Empties the log (`ACL LOG RESET`).
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, at: Instant) -> Entry {
        let entry = Entry::now(
            Reason::Command,
            "toplevel",
            object.into(),
            "alice".into(),
            String::new(),
        );
        Entry { at, ..entry }
    }

    #[test]
    fn similar_refusals_are_grouped_newest_first() {
        let now = Instant::now();
        let mut log = Log::default();
        log.add(entry("flushall", now));
        log.add(entry("keys", now));
        log.add(entry("flushall", now));
        let objects: Vec<(&str, u64)> = log
            .newest(10)
            .map(|e| (e.object.as_str(), e.count))
            .collect();
        assert_eq!(objects, vec![("flushall", 2), ("keys", 1)]);
        log.add(entry("flushall", now + GROUP_WITHIN));
        assert_eq!(log.newest(10).count(), 3);
        log.reset();
        assert_eq!(log.newest(10).count(), 0);
    }
}
