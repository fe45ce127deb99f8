//! Requests held while their shard has no master keyway can reach (a
//! failover under way: the master's connection refused, `-CLUSTERDOWN`,
//! `-LOADING`, `-MASTERDOWN`, a slot without master). Instead of failing,
//! whoever holds them (a client session, a part of a split request) parks
//! here, one [`Retry`] per holder; this worker's [`Holds`] calls them all
//! back as soon as the slot map changes (the new master is known), and at
//! least every [`RETRY_EVERY`] (a node back, a cluster that is no longer
//! down). A holder that fails again parks again; how long one request may
//! be held is the holder's budget ([`crate::cluster::redirect::Followed`]).
//!
//! Bounded: at most `cluster.failover_hold_max_requests` requests are held
//! per worker ([`Holds::count`]); past it, new ones fail at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{ClusterView, Slot};

/// Longest time between two tries of the held requests while the slot map
/// stays the same.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Something that held requests and wants to try them again.
pub trait Retry {
    /// Tries the held requests again (routed by the slot map current now).
    fn retry(self: Rc<Self>);
}

/// One worker's parked holders and the count of requests they hold.
pub struct Holds {
    view: Arc<ClusterView>,
    parked: RefCell<Vec<Rc<dyn Retry>>>,
    requests: Cell<usize>,
    running: Cell<bool>,
}

impl Holds {
    /// No holder parked yet; `view` gives the slot map's epoch.
    pub fn new(view: Arc<ClusterView>) -> Rc<Holds> {
        Rc::new(Holds {
            view,
            parked: RefCell::default(),
            requests: Cell::new(0),
            running: Cell::new(false),
        })
    }

    /// Counts one more held request, if fewer than `max` are held now.
    pub fn count(&self, max: usize) -> bool {
        let held = self.requests.get();
        if held >= max {
            return false;
        }
        self.requests.set(held + 1);
        crate::metrics::requests_held(1.0);
        true
    }

    /// Admits one more held request whose own hold budget check gave
    /// `within`: counted, or refused with how long it was held (its budget
    /// spent) or `None` (the worker holds `max` requests already).
    pub fn admit(&self, within: Result<(), Duration>, max: usize) -> Result<(), Option<Duration>> {
        within.map_err(Some)?;
        if self.count(max) {
            Ok(())
        } else {
            Err(None)
        }
    }

    /// Forgets `requests` counted ones (their holder is trying them again).
    pub fn uncount(&self, requests: usize) {
        if requests == 0 {
            return;
        }
        self.requests
            .set(self.requests.get().saturating_sub(requests));
        crate::metrics::requests_held(-(requests as f64));
    }

    /// Calls `holder.retry()` at the next change of the slot map, or within
    /// [`RETRY_EVERY`].
    pub fn park(self: &Rc<Self>, holder: Rc<dyn Retry>) {
        self.parked.borrow_mut().push(holder);
        if !self.running.replace(true) {
            tokio::task::spawn_local(self.clone().run());
        }
    }

    /// Retries every parked holder at each change of the slot map, and at
    /// least every [`RETRY_EVERY`]; ends once nobody is parked.
    async fn run(self: Rc<Self>) {
        loop {
            self.view.map_change(RETRY_EVERY).await;
            let parked = std::mem::take(&mut *self.parked.borrow_mut());
            for holder in parked {
                holder.retry();
            }
            if self.parked.borrow().is_empty() {
                self.running.set(false);
                return;
            }
        }
    }
}

/// The error (the text after `-`) for a request held for `held` without
/// a master for `slot` (when it has one) showing up, or, with `held`
/// `None`, refused because the worker holds `max` requests already.
pub fn refusal(held: Option<Duration>, slot: Option<Slot>, max: usize) -> String {
    let whom = match slot {
        Some(slot) => format!("no master for slot {slot}"),
        None => "no master it needs".to_string(),
    };
    match held {
        Some(held) => format!(
            "CLUSTERDOWN keyway held the request for {} ms and {whom} answered (cluster.failover_hold_ms); the cluster is failing over or down, retry later",
            held.as_millis()
        ),
        None => format!(
            "CLUSTERDOWN keyway holds {max} requests for shards without a reachable master (cluster.failover_hold_max_requests); the cluster is failing over or down, retry later"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::one_shard;
    use crate::cluster::MAP_CHECK;
    use tokio::time::Instant;

    /// Counts its retries.
    struct Counter(Cell<u32>);

    impl Retry for Counter {
        fn retry(self: Rc<Self>) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// Runs `test` on paused time: sleeps end in order, at once.
    fn on_local_set(test: impl std::future::Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, test);
    }

    #[test]
    fn holders_are_retried_at_a_new_slot_map_at_once_else_every_period() {
        on_local_set(async {
            let view = ClusterView::new();
            let holds = Holds::new(view.clone());
            let holder = Rc::new(Counter(Cell::new(0)));
            let started = Instant::now();
            holds.park(holder.clone());
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(holder.0.get(), 0, "nothing changed yet");
            view.topology()
                .store(Arc::new(one_shard(&[]).with_epoch(7)));
            tokio::time::sleep(MAP_CHECK * 3).await;
            assert_eq!(holder.0.get(), 1, "retried at the new map");
            assert!(started.elapsed() < RETRY_EVERY, "{:?}", started.elapsed());

            holds.park(holder.clone());
            tokio::time::sleep(RETRY_EVERY + MAP_CHECK * 3).await;
            assert_eq!(holder.0.get(), 2, "retried within the period");
            assert!(!holds.running.get(), "the task ends once nobody is parked");
        });
    }

    #[test]
    fn at_most_max_requests_are_counted() {
        let holds = Holds::new(ClusterView::new());
        assert!(holds.count(2) && holds.count(2));
        assert!(!holds.count(2), "the third is over the maximum");
        holds.uncount(1);
        assert!(holds.count(2));
    }
}
