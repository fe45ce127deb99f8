//! Node choice: the one place that answers "which node serves slot S for
//! this access", and the errors for "no node". Sessions, split requests,
//! transactions, blocking commands and pub/sub all ask here (through
//! `Worker::for_slot`, or [`node_for`] where no worker is at hand), so a
//! read policy (replicas) and node health are added here and nowhere else.

use super::{NodeIndex, Slot, Topology};

/// Whether a command changes data (the `write` flag): `WAIT` counts
/// replicas of the masters a client wrote to, and only reads may ever be
/// served by a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    Read,
    /// May write.
    Write,
}

/// Why no node can serve a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoNode {
    /// keyway has never reached a cluster node: there is no slot map yet.
    NoTopology,
    /// The slot map has no master for the slot.
    SlotNotServed,
}

impl NoNode {
    /// The error a client gets (the text after `-`).
    pub fn text(self) -> &'static str {
        match self {
            NoNode::NoTopology => "CLUSTERDOWN keyway has not reached any cluster node yet; check cluster.seeds (and cluster.user/password) in its config and its log (it keeps retrying)",
            NoNode::SlotNotServed => "CLUSTERDOWN Hash slot not served",
        }
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
}
