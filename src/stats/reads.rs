//! Reads counted by the role of the node that served them (`INFO stats`
//! `reads_served_by_master`/`_replica`): an event of every read request,
//! too frequent for the metrics recorder, so each worker counts into its
//! own [`WorkerReads`] (one writer: a plain add, no locked instruction)
//! and readers sum the workers'.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{add, PerWorker};

/// One worker's counts; only that worker's thread adds to them.
#[derive(Debug, Default)]
pub struct WorkerReads {
    master: AtomicU64,
    replica: AtomicU64,
}

impl WorkerReads {
    /// Counts one read sent to a master, or to a replica.
    #[inline]
    pub fn count(&self, on_replica: bool) {
        add(
            if on_replica {
                &self.replica
            } else {
                &self.master
            },
            1,
        );
    }
}

/// Every worker's counts.
pub type ReadCounts = PerWorker<WorkerReads>;

impl ReadCounts {
    /// Reads served by masters and by replicas since start, all workers.
    pub fn totals(&self) -> (u64, u64) {
        self.workers().iter().fold((0, 0), |(m, r), w| {
            (
                m + w.master.load(Ordering::Relaxed),
                r + w.replica.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_workers_counts_by_role() {
        let counts = ReadCounts::default();
        let (a, b) = (counts.for_worker(), counts.for_worker());
        a.count(false);
        a.count(true);
        b.count(true);
        let other_thread = std::thread::spawn(move || b.count(true));
        other_thread.join().unwrap();
        assert_eq!(counts.totals(), (1, 3));
    }
}
