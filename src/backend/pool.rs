//! A worker's connections, by node address: created on first use, retired
//! when the node leaves the topology.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::conn::{Conn, ConnSettings};

/// The connections of one worker to one node; requests spread round-robin.
pub struct NodeConns {
    conns: Vec<Rc<Conn>>,
    next: Cell<usize>,
}

impl NodeConns {
    /// The connection the next request goes to.
    #[inline]
    pub fn pick(&self) -> &Conn {
        let i = self.next.get();
        self.next
            .set(if i + 1 == self.conns.len() { 0 } else { i + 1 });
        &self.conns[i]
    }

    fn retire(&self) {
        for conn in &self.conns {
            conn.retire();
        }
    }
}

/// All of one worker's backend connections.
pub struct Pool {
    settings: Rc<ConnSettings>,
    per_node: usize,
    on_failure: Rc<dyn Fn()>,
    nodes: RefCell<HashMap<Arc<str>, Rc<NodeConns>>>,
}

impl Pool {
    /// An empty pool; `per_node` connections are opened to each node used.
    /// `on_failure` runs when any connection fails.
    pub fn new(settings: ConnSettings, per_node: usize, on_failure: Rc<dyn Fn()>) -> Pool {
        Pool {
            settings: Rc::new(settings),
            per_node: per_node.max(1),
            on_failure,
            nodes: RefCell::new(HashMap::new()),
        }
    }

    /// The connections to `addr`, opened now if this worker has none.
    pub fn node(&self, addr: &str) -> Rc<NodeConns> {
        if let Some(node) = self.nodes.borrow().get(addr) {
            return node.clone();
        }
        let addr: Arc<str> = addr.into();
        let node = Rc::new(NodeConns {
            conns: (0..self.per_node)
                .map(|_| Conn::spawn(addr.clone(), self.settings.clone(), self.on_failure.clone()))
                .collect(),
            next: Cell::new(0),
        });
        self.nodes.borrow_mut().insert(addr, node.clone());
        node
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
