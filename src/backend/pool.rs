//! A worker's connections, by node address: created on first use, retired
//! when the node leaves the topology. Each node has a set of RESP2
//! connections and, opened on first use, a set of RESP3 ones, so every
//! reply reaches its client byte for byte in the protocol it chose.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::Protocol;

use super::conn::{Conn, Reconnect};
use super::settings::SettingsSource;

/// What opening a set of connections to a node takes.
struct Opener {
    settings: SettingsSource,
    per_node: usize,
    on_failure: Rc<dyn Fn()>,
}

impl Opener {
    fn open(&self, addr: &Arc<str>, proto: Protocol) -> Vec<Rc<Conn>> {
        (0..self.per_node)
            .map(|_| {
                Conn::spawn(
                    addr.clone(),
                    proto,
                    Reconnect::Always,
                    self.settings.clone(),
                    self.on_failure.clone(),
                )
            })
            .collect()
    }
}

/// The connections of one worker to one node.
pub struct NodeConns {
    addr: Arc<str>,
    opener: Rc<Opener>,
    resp2: Vec<Rc<Conn>>,
    resp3: OnceCell<Vec<Rc<Conn>>>,
    retired: Cell<bool>,
    /// Until when reads skip this node (a replica): a read on it failed.
    avoid_until: Cell<Option<Instant>>,
}

impl NodeConns {
    /// The connection for client `client` speaking `proto`. One client always
    /// gets the same connection (per protocol), so the node sees its
    /// requests in the order it sent them; clients spread over the set.
    #[inline]
    pub fn pick(&self, proto: Protocol, client: u64) -> &Conn {
        let conns = match proto {
            Protocol::Resp2 => &self.resp2,
            Protocol::Resp3 => self.resp3.get_or_init(|| {
                let conns = self.opener.open(&self.addr, Protocol::Resp3);
                if self.retired.get() {
                    // Serve what is sent now, then close.
                    conns.iter().for_each(|c| c.retire());
                }
                conns
            }),
        };
        &conns[(client % conns.len() as u64) as usize]
    }

    /// The node's `host:port`.
    pub fn addr(&self) -> &Arc<str> {
        &self.addr
    }

    /// Whether the node's (RESP2) connections are down: the node failed
    /// and keyway waits to reconnect.
    pub fn is_down(&self) -> bool {
        self.resp2.iter().all(|c| c.is_down())
    }

    /// A read on this node failed (it stopped answering, or went away,
    /// and its connection may reconnect at once to a process that does
    /// not answer): reads skip it for `period`.
    pub fn avoid_reads_for(&self, period: Duration) {
        self.avoid_until.set(Some(Instant::now() + period));
    }

    /// Whether reads skip this node now (see [`NodeConns::avoid_reads_for`]);
    /// reads the clock only while a period is set.
    #[inline]
    pub fn avoided(&self) -> bool {
        match self.avoid_until.get() {
            None => false,
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.avoid_until.set(None);
                false
            }
        }
    }

    fn retire(&self) {
        self.retired.set(true);
        let resp3 = self.resp3.get().into_iter().flatten();
        for conn in self.resp2.iter().chain(resp3) {
            conn.retire();
        }
    }
}

/// All of one worker's backend connections.
pub struct Pool {
    opener: Rc<Opener>,
    nodes: RefCell<HashMap<Arc<str>, Rc<NodeConns>>>,
}

impl Pool {
    /// An empty pool; `per_node` connections per protocol are opened to each
    /// node used. `on_failure` runs when any connection fails.
    pub fn new(settings: SettingsSource, per_node: usize, on_failure: Rc<dyn Fn()>) -> Pool {
        Pool {
            opener: Rc::new(Opener {
                settings,
                per_node: per_node.max(1),
                on_failure,
            }),
            nodes: RefCell::new(HashMap::new()),
        }
    }

    /// The connections to `addr`, its RESP2 ones opened now if this worker
    /// has none.
    pub fn node(&self, addr: &str) -> Rc<NodeConns> {
        if let Some(node) = self.nodes.borrow().get(addr) {
            return node.clone();
        }
        let addr: Arc<str> = addr.into();
        let node = Rc::new(NodeConns {
            resp2: self.opener.open(&addr, Protocol::Resp2),
            resp3: OnceCell::new(),
            retired: Cell::new(false),
            avoid_until: Cell::new(None),
            addr: addr.clone(),
            opener: self.opener.clone(),
        });
        self.nodes.borrow_mut().insert(addr, node.clone());
        node
    }

    /// A new connection to `addr` for one client alone, never reconnected
    /// (it holds a `WATCH`); the caller retires it when done.
    pub fn dedicated(&self, addr: &str, proto: Protocol) -> Rc<Conn> {
        let opener = &self.opener;
        Conn::spawn(
            addr.into(),
            proto,
            Reconnect::Never,
            opener.settings.clone(),
            opener.on_failure.clone(),
        )
    }

    /// Retires the connections to every node for which `keep` is false; they
    /// close once their outstanding requests are answered.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.nodes.borrow_mut().retain(|addr, node| {
            let kept = keep(addr);
            if !kept {
                node.retire();
            }
            kept
        });
    }
}
