//! Cluster knowledge: hash slots, the slot map, and the background task that
//! keeps it fresh. Nothing here knows about clients.

pub mod choice;
pub mod lag;
pub mod redirect;
pub mod refresh;
pub mod slot;
pub mod topology;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::command::CommandTable;

pub use choice::{node_for, read_node, Access, NoNode, Pick};
pub use slot::{Slot, SLOT_COUNT};
pub use topology::{NodeIndex, Topology};

/// What every worker reads about the cluster: the current slot map and the
/// command table, each swapped whole, plus the channel that asks the refresh
/// task for a new map. Shared by all threads; read lock-free.
pub struct ClusterView {
    topology: ArcSwap<Topology>,
    commands: ArcSwap<CommandTable>,
    server_version: ArcSwap<String>,
    wake: Notify,
    moved: Mutex<Vec<(Slot, String)>>,
    replicas_lagging: AtomicUsize,
    failovers: AtomicU64,
    node_timeout_ms: AtomicU64,
    unready: Mutex<Option<String>>,
}

/// Redis's default `cluster-node-timeout`, assumed until a node tells its own.
const DEFAULT_NODE_TIMEOUT_MS: u64 = 15_000;

/// The version `HELLO` reports until a node has told keyway its own.
const DEFAULT_SERVER_VERSION: &str = "7.0.0";

/// How often [`ClusterView::map_change`] looks at the slot map's epoch.
pub const MAP_CHECK: Duration = Duration::from_millis(5);

impl ClusterView {
    /// A view with no slot covered yet and the built-in command table.
    pub fn new() -> Arc<ClusterView> {
        Arc::new(ClusterView {
            topology: ArcSwap::from_pointee(Topology::empty()),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            server_version: ArcSwap::from_pointee(DEFAULT_SERVER_VERSION.to_string()),
            wake: Notify::new(),
            moved: Mutex::new(Vec::new()),
            replicas_lagging: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
            node_timeout_ms: AtomicU64::new(DEFAULT_NODE_TIMEOUT_MS),
            unready: Mutex::new(Some("no slot map yet".to_string())),
        })
    }

    /// The slot map workers cache (see `arc_swap::Cache`).
    pub fn topology(&self) -> &ArcSwap<Topology> {
        &self.topology
    }

    /// The command table workers cache.
    pub fn commands(&self) -> &ArcSwap<CommandTable> {
        &self.commands
    }

    /// The Redis version the cluster's nodes report (`redis_version`).
    pub fn server_version(&self) -> Arc<String> {
        self.server_version.load_full()
    }

    /// How many replicas serve no reads now because they lag their master
    /// (`read.max_lag_bytes`).
    pub fn replicas_lagging(&self) -> usize {
        self.replicas_lagging.load(Ordering::Relaxed)
    }

    fn set_replicas_lagging(&self, count: usize) {
        self.replicas_lagging.store(count, Ordering::Relaxed);
    }

    /// Failovers the refresh task has seen since start: a replica found
    /// serving its former master's slots.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    fn failover_seen(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// How long a request is held while its shard has no reachable master
    /// when `cluster.failover_hold_ms` is 0 (auto): twice the cluster's
    /// `cluster-node-timeout` (a master is marked failed after one, its
    /// replica is elected within about another) plus one second.
    pub fn failover_hold(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms.load(Ordering::Relaxed) * 2 + 1000)
    }

    /// Records the cluster's `cluster-node-timeout`, as a node reported it.
    fn set_node_timeout(&self, timeout: Duration) {
        self.node_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// Why keyway cannot serve every slot now (no slot map, a slot
    /// without master, a master failed or not answering), as the refresh
    /// task last saw; `None` when it can.
    pub fn unready(&self) -> Option<String> {
        self.unready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_unready(&self, reason: Option<String>) {
        *self.unready.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    /// Asks for a topology refresh soon; many calls before the refresh runs
    /// coalesce into one.
    pub fn request_refresh(&self) {
        self.wake.notify_one();
    }

    /// Waits until a new slot map is published, or `within` passed. The
    /// map's epoch is looked at every [`MAP_CHECK`]: cheaper than a wake-up
    /// per change for every waiter on every worker, and soon enough for
    /// requests held through a failover.
    pub async fn map_change(&self, within: Duration) {
        let epoch = self.topology.load().epoch();
        let since = tokio::time::Instant::now();
        while since.elapsed() < within && self.topology.load().epoch() == epoch {
            tokio::time::sleep(MAP_CHECK).await;
        }
    }

    /// Records that a node answered `MOVED slot addr`: the slot map is patched
    /// at once and a full refresh follows.
    pub fn report_moved(&self, slot: Slot, addr: &str) {
        let mut moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
        if !moved.iter().any(|(s, a)| *s == slot && a == addr) {
            moved.push((slot, addr.to_string()));
        }
        drop(moved);
        self.wake.notify_one();
    }

    fn take_moved(&self) -> Vec<(Slot, String)> {
        std::mem::take(&mut *self.moved.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
