//! The slot map: which master serves each slot, and the cluster's other
//! nodes (replicas, masters without slots), which only commands sent to
//! every node reach. Built by pure functions from a `CLUSTER SHARDS` or
//! `CLUSTER SLOTS` reply, immutable once built, and swapped whole (see
//! [`super::ClusterView`]).

use std::sync::Arc;

use crate::protocol::Value;

use super::slot::{Slot, SLOT_COUNT};

/// Index of a node in [`Topology::nodes`].
pub type NodeIndex = u16;

/// Marks a slot no master serves.
const UNCOVERED: NodeIndex = NodeIndex::MAX;

/// One master node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `host:port` keyway connects to.
    pub addr: Arc<str>,
    /// Its replicas that may serve reads: those `CLUSTER SHARDS` says are
    /// `online` (`CLUSTER SLOTS` lists only replicas not failed), sorted.
    pub replicas: Vec<Arc<str>>,
}

/// An immutable snapshot of the cluster's slot ownership.
#[derive(Clone)]
pub struct Topology {
    epoch: u64,
    nodes: Vec<Node>,
    slots: Box<[NodeIndex]>,
    /// Every node that serves no slot, sorted, each once: the masters'
    /// replicas, and (from `CLUSTER SHARDS`) masters without slots. Nodes
    /// the cluster marks failed are left out, as `CLUSTER SLOTS` does.
    others: Vec<Arc<str>>,
    /// Masters serving slots that the cluster marks failed (`CLUSTER
    /// SHARDS` health `fail`), as of the reply parsed: a failover is due.
    /// Not part of [`Topology::same_map`].
    failed: Vec<Arc<str>>,
}

/// Why a topology reply could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The node answered with an error (e.g. cluster support disabled).
    #[error("node answered {0}")]
    ErrorReply(String),
    /// The reply does not have the documented shape.
    #[error("unexpected reply shape: {0}")]
    Malformed(&'static str),
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("epoch", &self.epoch)
            .field("nodes", &self.nodes)
            .field("others", &self.others)
            .field("covered", &self.covered_slots())
            .finish()
    }
}

impl Topology {
    /// A map with no slot covered: what keyway serves before any node answered.
    pub fn empty() -> Topology {
        Topology {
            epoch: 0,
            nodes: Vec::new(),
            slots: vec![UNCOVERED; SLOT_COUNT as usize].into_boxed_slice(),
            others: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Increases on every change; workers rebuild their per-node caches when it moves.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The master nodes, indexed by [`NodeIndex`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node keyway knows: the masters in the order of their lowest
    /// slot, then the other nodes (replicas, masters without slots) by
    /// address; each once. The order is the same for every epoch of one
    /// cluster, so the first node to refuse a command sent to all is too.
    pub fn all_nodes(&self) -> Vec<Arc<str>> {
        let (masters, _) = self.scan_order();
        let mut all: Vec<Arc<str>> = masters
            .into_iter()
            .map(|i| self.nodes[i as usize].addr.clone())
            .collect();
        // A node a `MOVED` made a master may still be listed as a replica.
        let others = self.others.iter().filter(|a| !self.is_master(a));
        all.extend(others.cloned());
        all
    }

    /// Whether the node at `addr` is one keyway knows (a master, a replica
    /// or a master without slots): its connections are kept.
    pub fn knows(&self, addr: &str) -> bool {
        self.is_master(addr) || self.others.iter().any(|a| &**a == addr)
    }

    /// How many replicas of the masters may serve reads.
    pub fn replica_count(&self) -> usize {
        self.nodes.iter().map(|n| n.replicas.len()).sum()
    }

    /// Masters serving slots here that were online replicas in `before`:
    /// a failover promoted them since.
    pub fn promoted_since(&self, before: &Topology) -> Vec<Arc<str>> {
        self.nodes
            .iter()
            .filter(|n| before.nodes.iter().any(|m| m.replicas.contains(&n.addr)))
            .map(|n| n.addr.clone())
            .collect()
    }

    /// Whether the node at `addr` is a master serving slots.
    pub fn is_master(&self, addr: &str) -> bool {
        self.nodes.iter().any(|n| &*n.addr == addr)
    }

    /// Masters serving slots that the cluster marks failed.
    pub fn failed_masters(&self) -> &[Arc<str>] {
        &self.failed
    }

    /// The master serving `slot`, if any.
    #[inline]
    pub fn master_of(&self, slot: Slot) -> Option<NodeIndex> {
        let node = self.slots[slot.index()];
        (node != UNCOVERED).then_some(node)
    }

    /// How many of the 16384 slots have a master.
    pub fn covered_slots(&self) -> usize {
        self.slots.iter().filter(|&&n| n != UNCOVERED).count()
    }

    /// The same map under a new epoch.
    pub fn with_epoch(mut self, epoch: u64) -> Topology {
        self.epoch = epoch;
        self
    }

    /// A copy in which `slot` is served by `addr` (what a `MOVED` says), under `epoch`.
    pub fn with_slot_moved(&self, slot: Slot, addr: &str, epoch: u64) -> Topology {
        let mut next = self.clone();
        next.epoch = epoch;
        let index = next.node_index_or_insert(addr);
        next.slots[slot.index()] = index;
        next.drop_unused_nodes();
        next
    }

    /// The masters in the order of the lowest slot each serves (the order
    /// a keyspace-wide `SCAN` visits them), with a fingerprint of the whole
    /// slot map: it changes whenever a slot changes hands, and is the same
    /// in every keyway that sees the same map.
    pub fn scan_order(&self) -> (Vec<NodeIndex>, u64) {
        let mut order = Vec::new();
        // FNV-1a over each run of slots and its master's address.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        let mut start = 0usize;
        while start < self.slots.len() {
            let owner = self.slots[start];
            let mut end = start;
            while end + 1 < self.slots.len() && self.slots[end + 1] == owner {
                end += 1;
            }
            feed(&(start as u16).to_le_bytes());
            feed(self.addr_of(owner).unwrap_or("").as_bytes());
            if owner != UNCOVERED && !order.contains(&owner) {
                order.push(owner);
            }
            start = end + 1;
        }
        (order, hash)
    }

    /// Same slot ownership, the same usable replicas of each master and
    /// the same other nodes (ignoring epochs)?
    pub fn same_map(&self, other: &Topology) -> bool {
        fn replicas(t: &Topology) -> Vec<(&Arc<str>, &Vec<Arc<str>>)> {
            let mut sets: Vec<_> = t.nodes.iter().map(|n| (&n.addr, &n.replicas)).collect();
            sets.sort();
            sets
        }
        self.others == other.others
            && replicas(self) == replicas(other)
            && self
                .slots
                .iter()
                .zip(other.slots.iter())
                .all(|(&a, &b)| self.addr_of(a) == other.addr_of(b))
    }

    /// The same map without `replicas` among the masters' replicas that
    /// serve reads (they stay known nodes).
    pub fn without_replicas(mut self, replicas: &[Arc<str>]) -> Topology {
        if !replicas.is_empty() {
            for node in &mut self.nodes {
                node.replicas.retain(|r| !replicas.contains(r));
            }
        }
        self
    }

    fn addr_of(&self, index: NodeIndex) -> Option<&str> {
        self.nodes.get(index as usize).map(|n| &*n.addr)
    }

    fn node_index_or_insert(&mut self, addr: &str) -> NodeIndex {
        if let Some(i) = self.nodes.iter().position(|n| &*n.addr == addr) {
            return i as NodeIndex;
        }
        self.nodes.push(Node {
            addr: addr.into(),
            replicas: Vec::new(),
        });
        (self.nodes.len() - 1) as NodeIndex
    }

    /// Removes masters that serve no slot, renumbering the rest.
    fn drop_unused_nodes(&mut self) {
        let mut used = vec![false; self.nodes.len()];
        for &n in self.slots.iter().filter(|&&n| n != UNCOVERED) {
            used[n as usize] = true;
        }
        if used.iter().all(|&u| u) {
            return;
        }
        let mut renumber = vec![UNCOVERED; self.nodes.len()];
        let mut kept = Vec::new();
        for (i, node) in self.nodes.drain(..).enumerate() {
            if used[i] {
                renumber[i] = kept.len() as NodeIndex;
                kept.push(node);
            }
        }
        self.nodes = kept;
        for n in self.slots.iter_mut().filter(|n| **n != UNCOVERED) {
            *n = renumber[*n as usize];
        }
    }

    fn assign(&mut self, start: i64, end: i64, addr: &str) -> Result<(), TopologyError> {
        if !(0..SLOT_COUNT as i64).contains(&start) || !(start..SLOT_COUNT as i64).contains(&end) {
            return Err(TopologyError::Malformed("slot range out of bounds"));
        }
        let index = self.node_index_or_insert(addr);
        self.slots[start as usize..=end as usize].fill(index);
        Ok(())
    }

    /// The replicas of master `addr` that may serve reads (a master that
    /// serves no slot is not in the map: its replicas serve nothing).
    fn set_replicas(&mut self, addr: &str, mut replicas: Vec<Arc<str>>) {
        replicas.sort();
        replicas.dedup();
        if let Some(node) = self.nodes.iter_mut().find(|n| &*n.addr == addr) {
            node.replicas = replicas;
        }
    }

    /// Records a node that serves no slot (see [`Topology::others`]).
    fn add_other(&mut self, addr: String) {
        if let Err(at) = self.others.binary_search_by(|a| (**a).cmp(&addr)) {
            self.others.insert(at, addr.into());
        }
    }

    /// Parses a `CLUSTER SHARDS` reply (Redis 7+). `answering` is the
    /// `host:port` that answered: the spec says an empty or unknown endpoint
    /// means "the node you asked". Each shard's master serves its slots;
    /// its replicas, and the nodes of a shard without slots, are the other
    /// nodes, unless their `health` is `fail`. With `tls`, each node is
    /// reached at its `tls-port` (a node with `port 0` lists no `port`).
    pub fn from_shards(
        reply: &Value,
        answering: &str,
        tls: bool,
    ) -> Result<Topology, TopologyError> {
        let shards = as_list(reply)?;
        let mut topology = Topology::empty();
        for shard in shards {
            let ranges = shard
                .map_get("slots")
                .and_then(Value::as_array)
                .ok_or(TopologyError::Malformed("shard without slots"))?;
            let nodes = shard
                .map_get("nodes")
                .and_then(Value::as_array)
                .ok_or(TopologyError::Malformed("shard without nodes"))?;
            let master = shard_master(nodes).filter(|_| !ranges.is_empty());
            let mut replicas = Vec::new();
            for node in nodes {
                let health = node.map_get("health").and_then(Value::as_bytes);
                let serves = master.is_some_and(|m| std::ptr::eq(m, node));
                if serves || health == Some(b"fail") {
                    continue;
                }
                if let Some(port) = node_port(node, tls) {
                    let addr = node_addr(shard_host(node), port, answering);
                    let replica =
                        node.map_get("role").and_then(Value::as_bytes) == Some(b"replica");
                    if replica && health == Some(b"online") {
                        replicas.push(Arc::<str>::from(addr.as_str()));
                    }
                    topology.add_other(addr);
                }
            }
            let Some(master) = master else { continue };
            let port =
                node_port(master, tls).ok_or(TopologyError::Malformed("node without port"))?;
            let addr = node_addr(shard_host(master), port, answering);
            if master.map_get("health").and_then(Value::as_bytes) == Some(b"fail") {
                topology.failed.push(addr.as_str().into());
            }
            for pair in ranges.chunks(2) {
                match pair {
                    [start, end] => {
                        let (Some(start), Some(end)) = (start.as_int(), end.as_int()) else {
                            return Err(TopologyError::Malformed("slot bound is not an integer"));
                        };
                        topology.assign(start, end, &addr)?;
                    }
                    _ => return Err(TopologyError::Malformed("odd number of slot bounds")),
                }
            }
            topology.set_replicas(&addr, replicas);
        }
        Ok(topology)
    }

    /// Parses a `CLUSTER SLOTS` reply (any Redis Cluster version).
    pub fn from_slots(reply: &Value, answering: &str) -> Result<Topology, TopologyError> {
        let ranges = as_list(reply)?;
        let mut topology = Topology::empty();
        for range in ranges {
            let fields = range
                .as_array()
                .ok_or(TopologyError::Malformed("slot range is not an array"))?;
            let [start, end, master, replicas @ ..] = fields else {
                return Err(TopologyError::Malformed("slot range without a master"));
            };
            let (Some(start), Some(end)) = (start.as_int(), end.as_int()) else {
                return Err(TopologyError::Malformed("slot bound is not an integer"));
            };
            let master = master
                .as_array()
                .ok_or(TopologyError::Malformed("master is not an array"))?;
            let host = master.first().and_then(Value::as_bytes);
            let port = master
                .get(1)
                .and_then(Value::as_int)
                .ok_or(TopologyError::Malformed("master without port"))?;
            let host = host.filter(|h| !h.is_empty() && *h != b"?");
            let master = node_addr(host, port, answering);
            topology.assign(start, end, &master)?;
            // The replicas the node does not consider failed.
            let mut usable = Vec::new();
            for replica in replicas.iter().filter_map(Value::as_array) {
                if let [host, port, ..] = replica {
                    let host = host.as_bytes().filter(|h| !h.is_empty() && *h != b"?");
                    if let Some(port) = port.as_int() {
                        let addr = node_addr(host, port, answering);
                        usable.push(Arc::<str>::from(addr.as_str()));
                        topology.add_other(addr);
                    }
                }
            }
            topology.set_replicas(&master, usable);
        }
        Ok(topology)
    }
}

/// The node of a `CLUSTER SHARDS` shard that serves its slots: the one
/// with role `master` whose health is best (`online`, then `loading`, then
/// any other), and of two such the one furthest in replication. Never by
/// position: Valkey 9 keeps a failed master in its shard, listed first and
/// still `master`, beside the replica promoted in its place (Redis 7.0
/// moves it to a shard of its own, without slots).
fn shard_master(nodes: &[Value]) -> Option<&Value> {
    nodes
        .iter()
        .filter(|n| n.map_get("role").and_then(Value::as_bytes) == Some(&b"master"[..]))
        .min_by_key(|n| {
            let health = match n.map_get("health").and_then(Value::as_bytes) {
                Some(b"online") => 0,
                Some(b"loading") => 1,
                _ => 2,
            };
            let offset = n.map_get("replication-offset").and_then(Value::as_int);
            (health, std::cmp::Reverse(offset.unwrap_or(0)))
        })
}

fn shard_host(node: &Value) -> Option<&[u8]> {
    ["endpoint", "ip"]
        .iter()
        .filter_map(|k| node.map_get(k).and_then(Value::as_bytes))
        .find(|h| !h.is_empty() && *h != b"?")
}

fn as_list(reply: &Value) -> Result<&[Value], TopologyError> {
    if let Value::Error(e) = reply {
        return Err(TopologyError::ErrorReply(
            String::from_utf8_lossy(e).into_owned(),
        ));
    }
    reply
        .as_array()
        .ok_or(TopologyError::Malformed("reply is not an array"))
}

/// The port of a `CLUSTER SHARDS` node keyway connects to: `tls-port`
/// when it speaks TLS to the nodes (else `port`), `port` otherwise.
fn node_port(node: &Value, tls: bool) -> Option<i64> {
    let tls_port = || node.map_get("tls-port").and_then(Value::as_int);
    let port = || node.map_get("port").and_then(Value::as_int);
    if tls {
        tls_port().or_else(port)
    } else {
        port()
    }
}

/// `host:port`, taking the answering node's host when the reply has none.
fn node_addr(host: Option<&[u8]>, port: i64, answering: &str) -> String {
    let host = match host {
        Some(h) => String::from_utf8_lossy(h).into_owned(),
        None => answering
            .rsplit_once(':')
            .map_or(answering, |(h, _)| h)
            .to_string(),
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// For tests: one master, `127.0.0.1:7000`, serving every slot, with
/// replicas on 127.0.0.1 at `replica_ports` (a `CLUSTER SLOTS` reply
/// parsed), under epoch 1.
#[cfg(test)]
pub(crate) fn one_shard(replica_ports: &[i64]) -> Topology {
    let node = |port: i64| {
        Value::Array(vec![
            Value::Bulk(bytes::Bytes::from_static(b"127.0.0.1")),
            Value::Int(port),
        ])
    };
    let mut range = vec![Value::Int(0), Value::Int(16383), node(7000)];
    range.extend(replica_ports.iter().map(|&p| node(p)));
    let reply = Value::Array(vec![Value::Array(range)]);
    Topology::from_slots(&reply, "127.0.0.1:7000")
        .expect("a well-formed CLUSTER SLOTS reply")
        .with_epoch(1)
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
