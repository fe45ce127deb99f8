//! Figures about the nodes keyway's workers talk to
//! (`keyway_backend_*{node,role}`): connections open, requests in flight,
//! reconnects, and the round trip of each request from being queued for
//! the node to its reply being read. Each worker keeps one [`NodeFigures`]
//! per node, shared by its connections to that node and written by its
//! thread alone; a scrape sums the workers'.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::{Histogram, Totals};
use super::{add, PerWorker};

/// One worker's figures about one node; only that worker's thread writes.
#[derive(Default)]
pub struct NodeFigures {
    open: AtomicU64,
    sent: AtomicU64,
    /// Requests that failed without a reply; those answered are the
    /// round-trip histogram's count.
    failed: AtomicU64,
    reconnects: AtomicU64,
    round_trip: Histogram,
}

impl NodeFigures {
    /// A connection to the node opened; it counts as open until the
    /// returned guard is dropped.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        add(&self.open, 1);
        OpenConnection(self.clone())
    }

    /// A connection tries again after failing.
    pub fn reconnecting(&self) {
        add(&self.reconnects, 1);
    }

    /// `n` requests were queued for the node.
    #[inline]
    pub fn sent(&self, n: u64) {
        add(&self.sent, n);
    }

    /// A request got its reply after `took`.
    #[inline]
    pub fn answered(&self, took: Duration) {
        self.round_trip.record(took);
    }

    /// `n` requests failed without a reply (their connection failed).
    pub fn failed(&self, n: u64) {
        add(&self.failed, n);
    }
}

/// Holds a connection's place in [`NodeFigures`]' open count; dropped (on
/// the worker's thread) when the connection closes.
pub struct OpenConnection(Arc<NodeFigures>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let open = &self.0.open;
        open.store(
            open.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }
}

/// One worker's figures, by node address.
#[derive(Default)]
pub struct WorkerNodes {
    nodes: Mutex<Vec<(Arc<str>, Arc<NodeFigures>)>>,
}

impl std::fmt::Debug for WorkerNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerNodes")
    }
}

impl WorkerNodes {
    /// The figures of node `addr`, created on first use (when a
    /// connection to it is made, not per request).
    pub fn node(&self, addr: &str) -> Arc<NodeFigures> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, figures)) = nodes.iter().find(|(a, _)| &**a == addr) {
            return figures.clone();
        }
        let figures = Arc::new(NodeFigures::default());
        nodes.push((addr.into(), figures.clone()));
        figures
    }
}

/// One node's figures summed over the workers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NodeTotals {
    /// Connections open now.
    pub connections: u64,
    /// Requests sent and not yet answered or failed.
    pub in_flight: u64,
    /// Reconnects after a failure.
    pub reconnects: u64,
    /// Round trips of the requests answered.
    pub round_trip: Totals,
}

/// A family of one value per node: name, type, help, and the value.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&NodeTotals) -> u64,
);

/// Every worker's figures.
pub type BackendStats = PerWorker<WorkerNodes>;

impl BackendStats {
    /// Every node any worker has connected to, by address.
    pub fn totals(&self) -> BTreeMap<Arc<str>, NodeTotals> {
        let mut out: BTreeMap<Arc<str>, NodeTotals> = BTreeMap::new();
        for worker in self.workers().iter() {
            let nodes = worker.nodes.lock().unwrap_or_else(|e| e.into_inner());
            for (addr, figures) in nodes.iter() {
                let totals = out.entry(addr.clone()).or_default();
                // The answers are read first: in flight never looks negative.
                let mut round_trip = Totals::default();
                figures.round_trip.add_to(&mut round_trip);
                let done = round_trip.count() + figures.failed.load(Ordering::Relaxed);
                let sent = figures.sent.load(Ordering::Relaxed);
                totals.connections += figures.open.load(Ordering::Relaxed);
                totals.in_flight += sent.saturating_sub(done);
                totals.reconnects += figures.reconnects.load(Ordering::Relaxed);
                totals.round_trip.add(&round_trip);
            }
        }
        out
    }

    /// The `keyway_backend_*` families in Prometheus' text format: every
    /// node of `nodes` (address and role, from the slot map), with zeros
    /// for those no worker uses, then nodes that left the slot map but
    /// were used (role `unknown`).
    pub fn render(&self, nodes: &[(Arc<str>, &'static str)], out: &mut String) {
        let mut totals = self.totals();
        let mut rows: Vec<(Arc<str>, &str, NodeTotals)> = nodes
            .iter()
            .map(|(addr, role)| (addr.clone(), *role, totals.remove(addr).unwrap_or_default()))
            .collect();
        rows.extend(totals.into_iter().map(|(addr, t)| (addr, "unknown", t)));
        let labels: Vec<String> = rows
            .iter()
            .map(|(addr, role, _)| format!("node=\"{addr}\",role=\"{role}\""))
            .collect();
        let families: [Family; 3] = [
            (
                "keyway_backend_connections",
                "gauge",
                "Connections open from keyway's workers to the node (shared, dedicated, blocking and pub/sub).",
                |t| t.connections,
            ),
            (
                "keyway_backend_requests_in_flight",
                "gauge",
                "Requests sent to the node on shared connections and not answered yet.",
                |t| t.in_flight,
            ),
            (
                "keyway_backend_reconnects_total",
                "counter",
                "Shared connections to the node opened again after a failure.",
                |t| t.reconnects,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (label, (_, _, t)) in labels.iter().zip(&rows) {
                let _ = writeln!(out, "{name}{{{label}}} {}", value(t));
            }
        }
        let name = "keyway_backend_request_duration_seconds";
        let _ = write!(
            out,
            "# HELP {name} Round trip of requests on shared connections: from being queued for the node to its reply being read.\n# TYPE {name} histogram\n"
        );
        for (label, (_, _, t)) in labels.iter().zip(&rows) {
            t.round_trip.render(name, label, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_summed_per_node_and_every_known_node_is_listed() {
        let stats = BackendStats::default();
        let (a, b) = (stats.for_worker(), stats.for_worker());
        let a1 = a.node("h:1");
        assert!(Arc::ptr_eq(&a1, &a.node("h:1")));
        let open = a1.opened();
        let closed = a1.opened();
        drop(closed);
        let _b1 = b.node("h:1").opened();
        a1.sent(3);
        a1.answered(Duration::from_micros(200));
        a1.failed(1);
        a1.reconnecting();
        b.node("gone:9").sent(1);
        let totals = stats.totals();
        let h1 = &totals[&Arc::<str>::from("h:1")];
        assert_eq!((h1.connections, h1.in_flight, h1.reconnects), (2, 1, 1));
        assert_eq!(h1.round_trip.count(), 1);
        let mut text = String::new();
        let nodes = [("h:1".into(), "master"), ("h:2".into(), "replica")];
        stats.render(&nodes, &mut text);
        assert!(text.contains("keyway_backend_connections{node=\"h:1\",role=\"master\"} 2\n"));
        assert!(text.contains("keyway_backend_connections{node=\"h:2\",role=\"replica\"} 0\n"));
        assert!(text
            .contains("keyway_backend_requests_in_flight{node=\"gone:9\",role=\"unknown\"} 1\n"));
        assert!(text.contains("keyway_backend_reconnects_total{node=\"h:1\",role=\"master\"} 1\n"));
        assert!(text.contains(
            "keyway_backend_request_duration_seconds_bucket{node=\"h:1\",role=\"master\",le=\"0.00025\"} 1\n"
        ));
        drop(open);
        assert_eq!(stats.totals()[&Arc::<str>::from("h:1")].connections, 1);
    }
}
