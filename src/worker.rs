//! The per-thread view every request reads: one [`Worker`] per worker
//! thread (a tokio current-thread runtime; [`crate::server`] starts them),
//! holding this thread's caches of the live configuration, the slot map
//! and the command table, its connections to the cluster's nodes, and the
//! one node choice ([`Worker::for_slot`]). What all workers share
//! ([`Shared`]) is read-mostly. Nothing here knows about client sessions.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Cache};

use crate::acl::Acl;
use crate::backend::blocking::BlockingPool;
use crate::backend::conn::Conn;
use crate::backend::node_loss::NodeLosses;
use crate::backend::pool::{NodeConns, Pool};
use crate::backend::settings::{ConnSettings, SettingsSource};
use crate::cluster::redirect::Budgets;
use crate::cluster::{
    node_for, read_node, Access, ClusterView, NoNode, NodeIndex, Pick, Slot, Topology,
};
use crate::command::CommandTable;
use crate::config::{Config, Live, ReadPolicy, Startup};
use crate::hold::Holds;
use crate::protocol::Protocol;
use crate::pubsub::census::Census;
use crate::pubsub::Hub;
use crate::registry::Registry;
use crate::script_cache::{ScriptCache, SeenScripts};
use crate::stats::backends::{BackendStats, WorkerNodes};
use crate::stats::commands::{CommandStats, WorkerCommands};
use crate::stats::pubsub::PubSubStats;
use crate::stats::reads::{ReadCounts, WorkerReads};
use crate::stats::slowlog::SlowLog;
use crate::tls::ServerTls;

/// State shared by every worker of the process, one handle per concern.
pub struct Shared {
    /// Slot map and command table.
    pub view: Arc<ClusterView>,
    /// Keys read once at start.
    pub startup: Startup,
    /// Keys that may change at run time, swapped whole; workers read them
    /// through [`Worker::live`].
    pub live: Arc<ArcSwap<Live>>,
    /// Every connected client and the client counters.
    pub registry: Registry,
    /// The users clients authenticate as, and what each may do.
    pub acl: Acl,
    /// Scripts loaded through keyway, to load again where missing.
    pub scripts: ScriptCache,
    /// Reads served by masters and by replicas.
    pub reads: ReadCounts,
    /// Commands answered, by command, with their durations.
    pub commands_answered: CommandStats,
    /// Connections, requests in flight and round trips, by node.
    pub backends: BackendStats,
    /// Connections lost, by node: a node one worker saw die is suspect to
    /// the others' connections to it.
    pub node_losses: Arc<NodeLosses>,
    /// Topics subscribed on nodes and messages delivered.
    pub pubsub: PubSubStats,
    /// Every worker's subscribers, for `PUBLISH`'s count of receivers.
    pub subscribers: Arc<Census>,
    /// keyway's own slow log.
    pub slowlog: SlowLog,
    /// When keyway started (`INFO server`).
    pub started: Instant,
    /// Set at SIGTERM/SIGINT: readiness answers 503 from then on.
    pub stopping: AtomicBool,
    /// The TLS listener's material, when `tls.listen` is set.
    pub tls_listener: Option<Arc<ServerTls>>,
}

impl Shared {
    /// Why keyway is not ready to take traffic (`/health/ready` 503), or
    /// `None`: shutting down, or the refresh task's reason (no slot map, a
    /// slot without master, a master failed or not answering).
    pub fn not_ready(&self) -> Option<String> {
        if self.stopping.load(Ordering::Acquire) {
            return Some("shutting down".to_string());
        }
        self.view.unready()
    }

    /// Bundles what workers share.
    pub fn new(
        view: Arc<ClusterView>,
        config: Config,
        tls_listener: Option<Arc<ServerTls>>,
    ) -> Arc<Shared> {
        let users = crate::acl::Users::clone(&config.live.client_auth.users);
        Arc::new(Shared {
            view,
            acl: Acl::new(users),
            startup: config.startup,
            live: Arc::new(ArcSwap::from_pointee(config.live)),
            registry: Registry::default(),
            scripts: ScriptCache::default(),
            reads: ReadCounts::default(),
            commands_answered: CommandStats::default(),
            backends: BackendStats::default(),
            node_losses: Arc::default(),
            pubsub: PubSubStats::default(),
            subscribers: Arc::default(),
            slowlog: SlowLog::default(),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            tls_listener,
        })
    }
}

/// One worker's own state, used only on its thread.
pub struct Worker {
    /// What all workers share.
    pub shared: Arc<Shared>,
    /// This worker's subscriptions.
    pub hub: Rc<Hub>,
    /// Dedicated connections for blocking commands.
    pub blocking: Rc<BlockingPool>,
    /// Requests held while their shard has no reachable master.
    pub holds: Rc<Holds>,
    pool: Pool,
    /// Connections by [`NodeIndex`] for the topology epoch they were built for.
    by_index: RefCell<ByIndex>,
    next_any: Cell<usize>,
    /// This worker's part of [`Shared::reads`].
    reads: Arc<WorkerReads>,
    /// This worker's part of [`Shared::commands_answered`].
    pub answered: Arc<WorkerCommands>,
    /// The `EVAL` bodies this worker passed on to [`Shared::scripts`].
    pub seen_scripts: RefCell<SeenScripts>,
    /// Shared with the backend's connections, which read it at each
    /// (re)connect ([`SettingsSource`]).
    live: Rc<RefCell<Current<Arc<ArcSwap<Live>>, Live>>>,
    topology: RefCell<Current<ViewField<Topology>, Topology>>,
    commands: RefCell<Current<ViewField<CommandTable>, CommandTable>>,
}

/// Connections by [`NodeIndex`] for one topology epoch: each master's, and
/// (filled the first time a read goes to them) its replicas'.
struct ByIndex {
    epoch: u64,
    masters: Vec<Rc<NodeConns>>,
    replicas: Vec<Vec<Rc<NodeConns>>>,
}

/// What a backend connection takes from the live configuration.
fn conn_settings(live: &Live, nodes: &Arc<WorkerNodes>, losses: &Arc<NodeLosses>) -> ConnSettings {
    ConnSettings {
        connect_timeout: live.connect_timeout,
        request_timeout: live.request_timeout,
        reconnect_min: live.reconnect_min,
        reconnect_max: live.reconnect_max,
        limits: crate::protocol::Limits::default(),
        access: live.node_access(),
        readonly: true,
        nodes: nodes.clone(),
        losses: losses.clone(),
    }
}

/// One of [`ClusterView`]'s swapped values, as `arc_swap::Cache` takes it:
/// something that dereferences to the `ArcSwap`.
struct ViewField<T: 'static>(Arc<ClusterView>, fn(&ClusterView) -> &ArcSwap<T>);

impl<T> std::ops::Deref for ViewField<T> {
    type Target = ArcSwap<T>;

    fn deref(&self) -> &ArcSwap<T> {
        (self.1)(&self.0)
    }
}

/// A worker's view of one swapped value (from `S`, which dereferences to
/// its `ArcSwap`): while it is unchanged, reading it costs one pointer
/// comparison (`arc_swap::Cache`) and a non-atomic count (`Rc`), instead of
/// a full `ArcSwap` load (a debt slot taken and given back) or an `Arc`
/// clone (two atomic operations), on every request. The `Rc<Arc<T>>` is
/// the point: one allocation per change of the value, then only non-atomic
/// counting.
#[allow(clippy::redundant_allocation)]
struct Current<S: std::ops::Deref<Target = ArcSwap<T>>, T: 'static> {
    cache: Cache<S, Arc<T>>,
    value: Rc<Arc<T>>,
}

impl<S: std::ops::Deref<Target = ArcSwap<T>>, T> Current<S, T> {
    fn new(source: S) -> Self {
        let mut cache = Cache::new(source);
        let value = Rc::new(cache.load().clone());
        Current { cache, value }
    }

    #[allow(clippy::redundant_allocation)]
    fn get(&mut self) -> Rc<Arc<T>> {
        let now = self.cache.load();
        if !Arc::ptr_eq(now, &self.value) {
            self.value = Rc::new(now.clone());
        }
        self.value.clone()
    }
}

impl Worker {
    /// This thread's worker: its caches, pools and pub/sub hub.
    pub fn new(shared: Arc<Shared>) -> Rc<Worker> {
        let live = Rc::new(RefCell::new(Current::new(shared.live.clone())));
        let settings: SettingsSource = {
            let live = live.clone();
            let nodes = shared.backends.for_worker();
            let losses = shared.node_losses.clone();
            Rc::new(move || conn_settings(&live.borrow_mut().get(), &nodes, &losses))
        };
        let view = shared.view.clone();
        let on_failure: Rc<dyn Fn()> = Rc::new(move || view.request_refresh());
        let hub = Hub::new(
            shared.view.clone(),
            settings.clone(),
            shared.pubsub.for_worker(),
            shared.subscribers.for_worker(),
        );
        let startup = &shared.startup;
        let blocking = BlockingPool::new(settings.clone(), startup.max_blocking_connections.get());
        let pool = Pool::new(settings, startup.connections_per_node.get(), on_failure);
        Rc::new(Worker {
            hub,
            holds: Holds::new(shared.view.clone()),
            blocking,
            pool,
            by_index: RefCell::new(ByIndex {
                epoch: u64::MAX,
                masters: Vec::new(),
                replicas: Vec::new(),
            }),
            next_any: Cell::new(0),
            reads: shared.reads.for_worker(),
            answered: shared.commands_answered.for_worker(),
            seen_scripts: RefCell::default(),
            live,
            topology: RefCell::new(Current::new(ViewField(
                shared.view.clone(),
                ClusterView::topology,
            ))),
            commands: RefCell::new(Current::new(ViewField(
                shared.view.clone(),
                ClusterView::commands,
            ))),
            shared,
        })
    }

    /// The live configuration, through this worker's cache of it.
    pub fn live(&self) -> Rc<Arc<Live>> {
        self.live.borrow_mut().get()
    }

    /// The current slot map, through this worker's cache of it.
    pub fn topology(&self) -> Rc<Arc<Topology>> {
        self.topology.borrow_mut().get()
    }

    /// The current command table, through this worker's cache of it.
    pub fn commands(&self) -> Rc<Arc<CommandTable>> {
        self.commands.borrow_mut().get()
    }

    /// How many redirects a request may follow, as the live configuration
    /// says now.
    pub fn redirect_budgets(&self) -> Budgets {
        let live = self.live();
        Budgets {
            redirects: live.max_redirects,
            tryagains: live.max_tryagain,
            failover_hold: live
                .failover_hold
                .unwrap_or_else(|| self.shared.view.failover_hold()),
        }
    }

    /// The node of `topology` that serves `slot` for `access` (see
    /// [`crate::cluster::choice`]), or why there is none.
    #[inline]
    pub fn for_slot(
        &self,
        topology: &Topology,
        slot: Slot,
        access: Access,
    ) -> Result<NodeIndex, NoNode> {
        node_for(topology, slot, access)
    }

    /// The connections that serve `slot` for `access` under `policy`, for
    /// client `client`: the master's, or (for a read) a replica's (see
    /// [`crate::cluster::choice`]). Clients, not requests, are spread over
    /// a shard's nodes: one client reads a shard from one node, so its
    /// pipeline stays on as few connections as with masters only, and its
    /// reads of a shard never go back in time by switching replicas.
    /// `true` with the connections when they are a replica's.
    #[inline]
    pub fn slot_conns(
        &self,
        topology: &Topology,
        slot: Slot,
        access: Access,
        policy: ReadPolicy,
        client: u64,
    ) -> Result<(Rc<NodeConns>, bool), NoNode> {
        let master = node_for(topology, slot, access)?;
        if access == Access::Write {
            return Ok((self.conns(topology, master), false));
        }
        let served = match read_node(topology, master, policy, client as usize)? {
            Pick::Master(index) => (self.conns(topology, index), false),
            Pick::Replica(index, replica) => {
                self.replica_conns(topology, index, replica, policy)?
            }
        };
        self.reads.count(served.1);
        Ok(served)
    }

    /// Replica `replica` of master `index`'s connections, with `true`; while
    /// keyway cannot reach it (its connection retries with the usual
    /// backoff) or a read on it failed lately ([`Worker::read_failed_on`]),
    /// the master's, with `false`, or under `replica` without fallback the
    /// error naming the shard.
    fn replica_conns(
        &self,
        topology: &Topology,
        index: NodeIndex,
        replica: usize,
        policy: ReadPolicy,
    ) -> Result<(Rc<NodeConns>, bool), NoNode> {
        let mut cache = self.by_index(topology);
        let replicas = &mut cache.replicas[index as usize];
        if replicas.is_empty() {
            let node = &topology.nodes()[index as usize];
            *replicas = node.replicas.iter().map(|a| self.pool.node(a)).collect();
        }
        let conns = &replicas[replica];
        if !conns.is_down() && !conns.avoided() {
            return Ok((conns.clone(), true));
        }
        match policy {
            ReadPolicy::Replica { fallback: false } => Err(NoNode::NoReplica(
                topology.nodes()[index as usize].addr.clone(),
            )),
            _ => Ok((cache.masters[index as usize].clone(), false)),
        }
    }

    /// A read sent to the replica at `addr` failed (no reply in time, the
    /// connection lost): this worker's reads skip it for
    /// `backend.reconnect_max_ms`, as a master that fails waits that long
    /// between reconnects at most.
    pub fn read_failed_on(&self, addr: &str) {
        let period = self.live().reconnect_max;
        self.pool.node(addr).avoid_reads_for(period);
    }

    /// The connections to node `index` of `topology`.
    #[inline]
    pub fn conns(&self, topology: &Topology, index: NodeIndex) -> Rc<NodeConns> {
        self.by_index(topology).masters[index as usize].clone()
    }

    /// The per-index cache, brought up to `topology` (and the connections
    /// of nodes that left it retired) when its epoch moved.
    #[inline]
    fn by_index(&self, topology: &Topology) -> std::cell::RefMut<'_, ByIndex> {
        let mut cache = self.by_index.borrow_mut();
        if cache.epoch != topology.epoch() {
            let nodes = topology.nodes();
            cache.masters = nodes.iter().map(|n| self.pool.node(&n.addr)).collect();
            cache.replicas = vec![Vec::new(); nodes.len()];
            cache.epoch = topology.epoch();
            // Replicas' connections too: opened by a read or a command
            // sent to every node, kept while the node is in the cluster.
            self.pool.retain(|addr| topology.knows(addr));
        }
        cache
    }

    /// Every node of `topology`, masters and replicas, in the order of
    /// [`Topology::all_nodes`], with its connections (opened now for a
    /// node this worker has not used yet).
    pub fn all_nodes(&self, topology: &Topology) -> Vec<(Arc<str>, Rc<NodeConns>)> {
        if topology.nodes().is_empty() {
            return Vec::new();
        }
        // Brings the per-index cache, and the retiring of nodes that left,
        // up to this map first, as every other way to a node does.
        self.conns(topology, 0);
        let nodes = topology.all_nodes().into_iter();
        nodes
            .map(|addr| (addr.clone(), self.pool.node(&addr)))
            .collect()
    }

    /// Some master of `topology`, spreading keyless commands round-robin.
    pub fn any_master(&self, topology: &Topology) -> Result<Rc<NodeConns>, NoNode> {
        let count = topology.nodes().len();
        if count == 0 {
            return Err(NoNode::NoTopology);
        }
        let i = self.next_any.get() % count;
        self.next_any.set(i + 1);
        Ok(self.conns(topology, i as NodeIndex))
    }

    /// The connections to the node at `addr` (a redirect target), which may
    /// not be in this worker's topology yet.
    pub fn node(&self, addr: &str) -> Rc<NodeConns> {
        self.pool.node(addr)
    }

    /// A new connection to `addr` for one client alone (see
    /// [`Pool::dedicated`]).
    pub fn dedicated(&self, addr: &str, proto: Protocol) -> Rc<Conn> {
        self.pool.dedicated(addr, proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    #[test]
    fn a_swapped_live_config_is_what_the_worker_and_its_connections_read_next() {
        let config = FileConfig::default().validate().unwrap();
        let shared = Shared::new(ClusterView::new(), config, None);
        let worker = Worker::new(shared.clone());
        assert_eq!(worker.redirect_budgets().redirects, 5);
        let mut live = Live::clone(&shared.live.load());
        live.max_redirects = 9;
        live.request_timeout = std::time::Duration::from_millis(1234);
        shared.live.store(Arc::new(live));
        assert_eq!(worker.redirect_budgets().redirects, 9);
        let settings = conn_settings(&worker.live(), &Arc::default(), &Arc::default());
        assert_eq!(settings.request_timeout.as_millis(), 1234);
    }
}
