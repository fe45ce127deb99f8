//! `WAIT numreplicas timeout` through keyway: the client's writes went to
//! several masters, so `WAIT` goes to each master it wrote to (every master
//! when it wrote nowhere yet), each on a dedicated connection, and the
//! smallest count is the answer: every write of the client reached at
//! least that many replicas. Like a blocking command, `WAIT` is sent once
//! the client's earlier requests are answered (see `dedicated`), after a
//! `PING` (see [`PING`]).

use std::sync::Arc;

use crate::cluster::Topology;
use crate::command::Merge;
use crate::frontend::fanout::Join;

use super::Session;

/// Sent before `WAIT` on its dedicated connection: a node counts the
/// replicas that reached the replication offset of the connection's last
/// command, and `PING` makes that offset the node's current one, which
/// covers every write the client made before.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

impl Session {
    /// Sends the `WAIT` of entry `token` to the masters the client wrote to
    /// (those still masters in `topology`); the least count is the answer.
    pub(super) fn wait_replicas(&self, token: u64, topology: &Topology) {
        let masters = topology.nodes().iter().map(|n| &n.addr);
        let mut addrs: Vec<Arc<str>> = {
            let writes = self.writes.borrow();
            masters
                .clone()
                .filter(|m| writes.masters().iter().any(|w| w == *m))
                .cloned()
                .collect()
        };
        if addrs.is_empty() {
            addrs = masters.cloned().collect();
        }
        self.to_each_dedicated(token, addrs, Join::Merge(Merge::Min), Some(PING));
    }
}
