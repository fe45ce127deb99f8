//! Figures of events that happen on every request, too frequent for the
//! metrics recorder: each worker keeps its own (one writer, plain adds),
//! and `INFO` or a scrape of `/metrics` sums the workers'.

pub mod backends;
pub mod commands;
pub mod histogram;
pub mod pubsub;
pub mod reads;
pub mod slowlog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Every worker's `T`: each worker takes its own with
/// [`PerWorker::for_worker`] and is its only writer; readers go over all.
pub struct PerWorker<T> {
    workers: Mutex<Vec<Arc<T>>>,
}

impl<T> Default for PerWorker<T> {
    fn default() -> PerWorker<T> {
        PerWorker {
            workers: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Default> PerWorker<T> {
    /// The figures of one more worker.
    pub fn for_worker(&self) -> Arc<T> {
        let mine = Arc::new(T::default());
        self.workers().push(mine.clone());
        mine
    }
}

impl<T> PerWorker<T> {
    /// Every worker's figures, to sum.
    pub fn workers(&self) -> MutexGuard<'_, Vec<Arc<T>>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Adds `n` to a counter that only the calling thread writes: a load and
/// a store, no read-modify-write (no locked instruction).
#[inline]
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}
