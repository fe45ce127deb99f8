//! Workers: one OS thread each, running a tokio current-thread runtime with
//! its own `SO_REUSEPORT` listener and its own backend connections, so a
//! request never crosses threads. What workers share ([`Shared`]) is
//! read-mostly: the cluster view, the config, and a few process counters.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, Cache};
use tokio::sync::watch;
use tracing::{info, info_span, Instrument};

use crate::backend::blocking::BlockingPool;
use crate::backend::conn::{Conn, ConnSettings};
use crate::backend::pool::{NodeConns, Pool};
use crate::cluster::{ClusterView, NodeIndex, Topology};
use crate::command::CommandTable;
use crate::config::Config;
use crate::frontend::clients::Clients;
use crate::frontend::info::Own;
use crate::frontend::{listener, session};
use crate::protocol::Protocol;
use crate::pubsub::Hub;
use crate::scripts::ScriptCache;
use crate::wake::{LocalNotify, NotifyOnDrop};

/// State shared by every worker of the process.
pub struct Shared {
    /// Slot map and command table.
    pub view: Arc<ClusterView>,
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Connected clients, all workers together (for `max_clients`).
    pub clients: AtomicUsize,
    /// Clients accepted since start (`INFO stats`).
    pub connections_received: AtomicU64,
    /// Clients refused at `max_clients` since start (`INFO stats`).
    pub rejected_connections: AtomicU64,
    /// When keyway started (`INFO server`).
    pub started: Instant,
    /// Scripts loaded through keyway, to load again where missing.
    pub scripts: ScriptCache,
    /// Every connected client (`CLIENT LIST`, `CLIENT KILL`).
    pub connected: Clients,
    next_client_id: AtomicU64,
}

impl Shared {
    /// Bundles what workers share.
    pub fn new(view: Arc<ClusterView>, config: Arc<Config>) -> Arc<Shared> {
        Arc::new(Shared {
            view,
            config,
            clients: AtomicUsize::new(0),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            started: Instant::now(),
            scripts: ScriptCache::default(),
            connected: Clients::default(),
            next_client_id: AtomicU64::new(1),
        })
    }

    /// What `INFO` says about keyway itself.
    pub fn own_info(&self) -> Own {
        Own {
            redis_version: self.view.server_version().to_string(),
            tcp_port: self.config.listen.port(),
            uptime: self.started.elapsed().as_secs(),
            connected_clients: self.clients.load(Ordering::Relaxed),
            max_clients: self.config.max_clients.get(),
            blocked_clients: self.connected.blocked(),
            connections_received: self.connections_received.load(Ordering::Relaxed),
            rejected_connections: self.rejected_connections.load(Ordering::Relaxed),
        }
    }

    /// A process-unique client id, as `CLIENT ID` reports.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
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
    pool: Pool,
    /// Connections by [`NodeIndex`] for the topology epoch they were built for.
    by_index: RefCell<(u64, Vec<Rc<NodeConns>>)>,
    next_any: Cell<usize>,
    topology: RefCell<Current<Topology>>,
    commands: RefCell<Current<CommandTable>>,
}

/// One of [`ClusterView`]'s swapped values, as `arc_swap::Cache` takes it:
/// something that dereferences to the `ArcSwap`.
struct ViewField<T: 'static>(Arc<ClusterView>, fn(&ClusterView) -> &ArcSwap<T>);

impl<T> Deref for ViewField<T> {
    type Target = ArcSwap<T>;

    fn deref(&self) -> &ArcSwap<T> {
        (self.1)(&self.0)
    }
}

/// A worker's view of one swapped value: while it is unchanged, reading it
/// costs one pointer comparison (`arc_swap::Cache`) and a non-atomic count
/// (`Rc`), instead of a full `ArcSwap` load (a debt slot taken and given
/// back) or an `Arc` clone (two atomic operations), on every request.
/// The `Rc<Arc<T>>` is the point: one allocation per change of the value,
/// then only non-atomic counting.
#[allow(clippy::redundant_allocation)]
struct Current<T: 'static> {
    cache: Cache<ViewField<T>, Arc<T>>,
    value: Rc<Arc<T>>,
}

impl<T> Current<T> {
    fn new(field: ViewField<T>) -> Self {
        let mut cache = Cache::new(field);
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
    fn new(shared: Arc<Shared>) -> Rc<Worker> {
        let config = &shared.config;
        let settings = ConnSettings {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            reconnect_min: config.reconnect_min,
            reconnect_max: config.reconnect_max,
            limits: crate::protocol::Limits::default(),
        };
        let view = shared.view.clone();
        let on_failure: Rc<dyn Fn()> = Rc::new(move || view.request_refresh());
        let hub = Hub::new(
            shared.view.clone(),
            settings.connect_timeout,
            settings.limits,
        );
        let blocking = BlockingPool::new(
            Rc::new(settings.clone()),
            config.max_blocking_connections.get(),
        );
        let topology = Current::new(ViewField(shared.view.clone(), ClusterView::topology));
        let commands = Current::new(ViewField(shared.view.clone(), ClusterView::commands));
        Rc::new(Worker {
            hub,
            blocking,
            pool: Pool::new(settings, config.connections_per_node.get(), on_failure),
            shared,
            by_index: RefCell::new((u64::MAX, Vec::new())),
            next_any: Cell::new(0),
            topology: RefCell::new(topology),
            commands: RefCell::new(commands),
        })
    }

    /// The current slot map, through this worker's cache of it.
    pub fn topology(&self) -> Rc<Arc<Topology>> {
        self.topology.borrow_mut().get()
    }

    /// The current command table, through this worker's cache of it.
    pub fn commands(&self) -> Rc<Arc<CommandTable>> {
        self.commands.borrow_mut().get()
    }

    /// The connections to master `index` of `topology`.
    #[inline]
    pub fn master(&self, topology: &Topology, index: NodeIndex) -> Rc<NodeConns> {
        let mut cache = self.by_index.borrow_mut();
        if cache.0 != topology.epoch() {
            cache.1 = topology
                .nodes()
                .iter()
                .map(|n| self.pool.node(&n.addr))
                .collect();
            cache.0 = topology.epoch();
            self.pool
                .retain(|addr| topology.nodes().iter().any(|n| &*n.addr == addr));
        }
        cache.1[index as usize].clone()
    }

    /// Some master of `topology`, spreading keyless commands round-robin.
    pub fn any_master(&self, topology: &Topology) -> Option<Rc<NodeConns>> {
        let count = topology.nodes().len();
        if count == 0 {
            return None;
        }
        let i = self.next_any.get() % count;
        self.next_any.set(i + 1);
        Some(self.master(topology, i as NodeIndex))
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

/// Starts `config.workers` worker threads serving clients until `shutdown`
/// turns true. Returns their join handles.
pub fn spawn_workers(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    for id in 0..shared.config.workers.get() {
        // The socket and the runtime are made here, not in the thread, so
        // that any failure (address in use, no file descriptors) stops
        // start-up with an error instead of leaving a worker missing.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener::bind(shared.config.listen)?)?
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("keyway-worker-{id}"))
            .spawn(move || run_worker(id, runtime, shared, listener, shutdown))?;
        handles.push(handle);
    }
    info!(listen = %shared.config.listen, workers = shared.config.workers.get(), "keyway accepting clients");
    Ok(handles)
}

fn run_worker(
    id: usize,
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let local = tokio::task::LocalSet::new();
    // The future given to `block_on` is polled on every turn of the event
    // loop, woken or not, so it only checks a flag: the accept loop (a
    // select over the listener and the shutdown channel) runs as a task of
    // its own, polled only when woken, and raises the flag when it ends.
    local.block_on(&runtime, async move {
        let worker = Worker::new(shared);
        let ended = Rc::new(LocalNotify::default());
        let raise = NotifyOnDrop(ended.clone());
        let accept = tokio::task::spawn_local(
            async move {
                // Raised also when the loop panics.
                let _raise = raise;
                listener::accept_loop(listener, worker, shutdown, session::serve).await;
            }
            .instrument(info_span!("worker", id)),
        );
        ended.notified().await;
        if let Err(e) = accept.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    });
}
