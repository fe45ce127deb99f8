//! Node choice: the one place that answers "which node serves slot S for
//! this access", and the errors for "no node". Sessions, split requests,
//! transactions, blocking commands and pub/sub all ask here (through
//! `Worker::for_slot`, or [`node_for`] where no worker is at hand), so a
//! read policy (replicas) and node health are added here and nowhere else.

use std::sync::Arc;

use crate::command::CommandSpec;
use crate::config::ReadPolicy;

use super::{NodeIndex, Slot, Topology};

/// Whether a command only reads (Redis's `readonly` flag), which a replica
/// may serve, or may change data (anything else: the master serves it, and
/// `WAIT` counts replicas of the masters a client sent such commands to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    Read,
    /// May write.
    Write,
}

impl Access {
    /// `Read` for a command flagged `readonly` (and not `write`).
    #[inline]
    pub fn of(spec: &CommandSpec) -> Access {
        let flags = spec.flags();
        if flags.is_readonly() && !flags.is_write() {
            Access::Read
        } else {
            Access::Write
        }
    }
}

/// Why no node can serve a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoNode {
    /// keyway has never reached a cluster node: there is no slot map yet.
    NoTopology,
    /// The slot map has no master for the slot.
    SlotNotServed,
    /// `read.policy = "replica"` without fallback, and the shard of this
    /// master has no usable replica.
    NoReplica(Arc<str>),
}

impl NoNode {
    /// The error a client gets (the text after `-`).
    pub fn text(&self) -> String {
        match self {
            NoNode::NoTopology => "CLUSTERDOWN keyway has not reached any cluster node yet; check cluster.seeds (and cluster.user/password) in its config and its log (it keeps retrying)".to_string(),
            NoNode::SlotNotServed => "CLUSTERDOWN Hash slot not served".to_string(),
            NoNode::NoReplica(master) => format!("CLUSTERDOWN no replica of the shard of master {master} is usable for reads, and read.fallback_to_master is off; retry later, or turn read.fallback_to_master on"),
        }
    }
}

/// The node that serves a read: the slot's master, or one of its replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The master, by index.
    Master(NodeIndex),
    /// Replica `.1` (its position in the master's `replicas`) of master `.0`.
    Replica(NodeIndex, usize),
}

/// The node of master `master`'s shard that serves a read under `policy`,
/// spreading reads evenly by `turn` (the caller's client id: consecutive
/// clients take consecutive nodes).
pub fn read_node(
    topology: &Topology,
    master: NodeIndex,
    policy: ReadPolicy,
    turn: usize,
) -> Result<Pick, NoNode> {
    let node = &topology.nodes()[master as usize];
    let replicas = &node.replicas;
    match policy {
        ReadPolicy::Master => Ok(Pick::Master(master)),
        ReadPolicy::Any => match turn % (replicas.len() + 1) {
            0 => Ok(Pick::Master(master)),
            i => Ok(Pick::Replica(master, i - 1)),
        },
        _ if !replicas.is_empty() => Ok(Pick::Replica(master, turn % replicas.len())),
        ReadPolicy::PreferReplica | ReadPolicy::Replica { fallback: true } => {
            Ok(Pick::Master(master))
        }
        ReadPolicy::Replica { fallback: false } => Err(NoNode::NoReplica(node.addr.clone())),
    }
}

/// The node of `topology` that serves `slot` for `access`: today always
/// the slot's master.
pub fn node_for(topology: &Topology, slot: Slot, _access: Access) -> Result<NodeIndex, NoNode> {
    match topology.master_of(slot) {
        Some(index) => Ok(index),
        None if topology.epoch() == 0 => Err(NoNode::NoTopology),
        None => Err(NoNode::SlotNotServed),
    }
}

#[cfg(test)]
mod tests {
    use super::super::topology::one_shard;
    use super::*;

    #[test]
    fn no_slot_map_and_uncovered_slot_have_their_own_errors() {
        let empty = Topology::empty();
        let slot = Slot::of_key(b"k");
        assert_eq!(
            node_for(&empty, slot, Access::Read),
            Err(NoNode::NoTopology)
        );
        assert!(NoNode::NoTopology
            .text()
            .starts_with("CLUSTERDOWN keyway has not reached"));
        let mapped = Topology::empty().with_epoch(3);
        assert_eq!(
            node_for(&mapped, slot, Access::Write),
            Err(NoNode::SlotNotServed)
        );
        assert_eq!(
            NoNode::SlotNotServed.text(),
            "CLUSTERDOWN Hash slot not served"
        );
    }

    #[test]
    fn reads_spread_as_the_policy_says() {
        let t = one_shard(&[7001, 7002]);
        let pick = |policy, turn| read_node(&t, 0, policy, turn).unwrap();
        assert_eq!(&*t.nodes()[0].replicas[1], "127.0.0.1:7002");
        let replica = |i| Pick::Replica(0, i);
        assert_eq!(pick(ReadPolicy::Master, 1), Pick::Master(0));
        assert_eq!(pick(ReadPolicy::PreferReplica, 0), replica(0));
        assert_eq!(pick(ReadPolicy::PreferReplica, 1), replica(1));
        assert_eq!(pick(ReadPolicy::Replica { fallback: false }, 3), replica(1));
        let any: Vec<Pick> = (0..3).map(|turn| pick(ReadPolicy::Any, turn)).collect();
        assert_eq!(any, [Pick::Master(0), replica(0), replica(1)]);
    }

    #[test]
    fn a_shard_without_replicas_falls_back_or_says_so() {
        let t = one_shard(&[]);
        for policy in [
            ReadPolicy::PreferReplica,
            ReadPolicy::Replica { fallback: true },
            ReadPolicy::Any,
        ] {
            assert_eq!(
                read_node(&t, 0, policy, 5),
                Ok(Pick::Master(0)),
                "{policy:?}"
            );
        }
        let refused = read_node(&t, 0, ReadPolicy::Replica { fallback: false }, 0).unwrap_err();
        assert!(
            refused.text().contains("master 127.0.0.1:7000"),
            "{}",
            refused.text()
        );
    }
}
