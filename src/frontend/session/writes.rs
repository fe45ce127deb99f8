//! What a client wrote, for the two things that depend on it: `WAIT` asks
//! the masters it wrote to, and read-your-writes
//! (`read.read_your_writes_ms`) keeps its reads of a slot it wrote to on
//! the master for that long after the write was sent. Replicas apply a
//! master's writes a little later; reading the master for a while after
//! writing means this client never reads a value older than its own write
//! (while the window lasts; other clients' writes are not covered).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Slot;

/// Below this many slots, expired ones are not looked for.
const PRUNE_FROM: usize = 64;

/// One client's writes.
#[derive(Debug)]
pub struct Writes {
    /// The masters the client sent writes to.
    masters: Vec<Arc<str>>,
    /// Until when reads of a slot stay on its master, by slot.
    recent: HashMap<u16, Instant>,
    /// `recent` is pruned when it grows past this.
    prune_at: usize,
}

impl Default for Writes {
    fn default() -> Writes {
        Writes {
            masters: Vec::new(),
            recent: HashMap::new(),
            prune_at: PRUNE_FROM,
        }
    }
}

impl Writes {
    /// A write to `slot` went to the master at `master`; with `window`
    /// (read-your-writes on), the slot's reads stay on masters that long.
    pub fn wrote(&mut self, slot: Slot, master: &Arc<str>, window: Option<Duration>) {
        if !self
            .masters
            .iter()
            .any(|a| Arc::ptr_eq(a, master) || a == master)
        {
            self.masters.push(master.clone());
        }
        let Some(window) = window else {
            return;
        };
        let now = Instant::now();
        if self.recent.len() >= self.prune_at {
            self.recent.retain(|_, until| *until > now);
            self.prune_at = PRUNE_FROM.max(self.recent.len() * 2);
        }
        self.recent.insert(slot.index() as u16, now + window);
    }

    /// The masters the client sent writes to.
    pub fn masters(&self) -> &[Arc<str>] {
        &self.masters
    }

    /// Whether reads of any of `slots` must stay on the master now.
    #[inline]
    pub fn read_on_master(&self, mut slots: impl Iterator<Item = Slot>) -> bool {
        if self.recent.is_empty() {
            return false;
        }
        let now = Instant::now();
        slots.any(|slot| {
            self.recent
                .get(&(slot.index() as u16))
                .is_some_and(|until| *until > now)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_a_written_slot_stay_on_the_master_for_the_window_only() {
        let mut writes = Writes::default();
        let master: Arc<str> = "127.0.0.1:7000".into();
        let (a, b) = (Slot::of_key(b"a"), Slot::of_key(b"b"));
        writes.wrote(a, &master, None);
        assert!(!writes.read_on_master([a].into_iter()));
        writes.wrote(a, &master, Some(Duration::from_secs(60)));
        writes.wrote(b, &master, Some(Duration::from_millis(1)));
        assert_eq!(writes.masters().len(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(writes.read_on_master([b, a].into_iter()));
        assert!(!writes.read_on_master([b].into_iter()));
    }

    #[test]
    fn expired_slots_are_pruned_as_the_map_grows() {
        let mut writes = Writes::default();
        let master: Arc<str> = "m:1".into();
        let short = Some(Duration::from_millis(1));
        for n in 0..PRUNE_FROM as u16 {
            writes.wrote(Slot::new(n).unwrap(), &master, short);
        }
        std::thread::sleep(Duration::from_millis(5));
        writes.wrote(Slot::new(1000).unwrap(), &master, short);
        assert_eq!(writes.recent.len(), 1);
    }
}
