//! A node's death seen by one connection warns the others. When a node
//! dies, each worker's shared connection to it finds out on its own, when
//! its socket reports the end; until then a worker would still write new
//! requests into a connection that is already dead, and they fail as
//! "may or may not have run", although the node died before they were
//! sent (seen as a second error of a client that reconnected onto the other
//! worker); likewise a node that stopped answering (SIGSTOP, a partition)
//! holds every worker's connection until each one's own request timeout.
//! So a connection lost to an I/O error or a request timeout counts one
//! more loss for its node, process-wide ([`NodeLosses`]); a connection to that node that
//! was opened before it ([`LossWatch::suspect`]) writes no new request
//! until the node proves alive: it sends `PING` instead, and the requests
//! fail as never sent (held through a failover, see [`crate::hold`]). The
//! `PING`'s reply ([`LossWatch::alive`]) ends the suspicion: a node that
//! only dropped one connection costs the others one round trip. The
//! topology refresh asks a recently lost node last ([`NodeLosses::lost_within`]):
//! a hung node would hold up the new map of its failover.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections lost (I/O errors, request timeouts), counted per node, for
/// every worker.
#[derive(Debug, Default)]
pub struct NodeLosses {
    by_node: Mutex<HashMap<Arc<str>, Arc<NodeLoss>>>,
}

/// One node's losses: how many, and when the last was.
#[derive(Debug, Default)]
struct NodeLoss {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl NodeLosses {
    /// What a connection to `addr` watches (taken when it is created, not
    /// per request).
    pub fn watch(&self, addr: &Arc<str>) -> LossWatch {
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        let losses = by_node.entry(addr.clone()).or_default().clone();
        LossWatch {
            losses,
            seen: Cell::new(0),
        }
    }

    /// Whether a connection to `addr` was lost within the last `within`.
    pub fn lost_within(&self, addr: &str, within: Duration) -> bool {
        let by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        by_node.get(addr).is_some_and(|loss| {
            let last = *loss.last.lock().unwrap_or_else(|e| e.into_inner());
            last.is_some_and(|at| at.elapsed() < within)
        })
    }
}

/// One connection's view of its node's losses.
#[derive(Debug)]
pub struct LossWatch {
    losses: Arc<NodeLoss>,
    /// The node's losses when the connection last knew the node alive.
    seen: Cell<u64>,
}

impl LossWatch {
    /// The connection is up: the node is alive now.
    pub fn connected(&self) {
        self.seen.set(self.losses.count.load(Ordering::Acquire));
    }

    /// This connection was lost to an I/O error or a request timeout: the
    /// others to the node are suspect.
    pub fn lost(&self) {
        *self.losses.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.losses.count.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether another connection to the node was lost since this one
    /// last knew the node alive; the losses counted then, to pass to
    /// [`LossWatch::alive`] once the node answers.
    pub fn suspect(&self) -> Option<u64> {
        let now = self.losses.count.load(Ordering::Acquire);
        (now != self.seen.get()).then_some(now)
    }

    /// The node answered a `PING` sent when `losses` losses were counted.
    pub fn alive(&self, losses: u64) {
        self.seen.set(losses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_makes_the_other_connections_suspect_until_the_node_answers() {
        let losses = NodeLosses::default();
        let addr: Arc<str> = "127.0.0.1:7000".into();
        let (a, b) = (losses.watch(&addr), losses.watch(&addr));
        let other = losses.watch(&"127.0.0.1:7001".into());
        a.connected();
        b.connected();
        assert_eq!(b.suspect(), None);

        assert!(!losses.lost_within(&addr, Duration::from_secs(60)));
        a.lost();
        assert!(losses.lost_within(&addr, Duration::from_secs(60)));
        assert!(!losses.lost_within("127.0.0.1:7001", Duration::from_secs(60)));
        let seen = b.suspect().expect("b is suspect");
        assert_eq!(other.suspect(), None, "another node is not");
        a.connected();
        assert_eq!(a.suspect(), None, "a reconnected: it knows the node alive");
        b.alive(seen);
        assert_eq!(b.suspect(), None);
    }
}
