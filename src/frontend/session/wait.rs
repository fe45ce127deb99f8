//! `WAIT numreplicas timeout` through keyway: the client's writes went to
//! several masters, so `WAIT` goes to each master it wrote to (every master
//! when it wrote nowhere yet), each on a dedicated connection, and the
//! smallest count is the answer: every write of the client reached at
//! least that many replicas. Like a blocking command, `WAIT` is sent once
//! the client's earlier requests are answered, after a `PING` (see [`PING`]).

use std::rc::Rc;
use std::sync::Arc;

use crate::backend::blocking::{Abandon, Outcome};
use crate::backend::ReplyTarget;
use crate::cluster::Topology;
use crate::command::Merge;
use crate::frontend::fanout::{Gather, Join};
use crate::protocol::encode;

use super::{Session, NO_TOPOLOGY};

/// Sent before `WAIT` on its dedicated connection: a node counts the
/// replicas that reached the replication offset of the connection's last
/// command, and `PING` makes that offset the node's current one, which
/// covers every write the client made before.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

impl Session {
    /// Remembers that a write of this client went to the master at `addr`.
    pub(super) fn wrote_to(&self, addr: &Arc<str>) {
        let mut written = self.written.borrow_mut();
        if !written.iter().any(|a| Arc::ptr_eq(a, addr) || a == addr) {
            written.push(addr.clone());
        }
    }

    /// Sends the `WAIT` of entry `token` to the masters the client wrote to
    /// (those still masters in `topology`); a [`Gather`] keeps the least.
    pub(super) fn wait_replicas(&self, token: u64, topology: &Topology) {
        let masters = topology.nodes().iter().map(|n| &n.addr);
        let mut addrs: Vec<Arc<str>> = {
            let written = self.written.borrow();
            masters
                .clone()
                .filter(|m| written.iter().any(|w| w == *m))
                .cloned()
                .collect()
        };
        if addrs.is_empty() {
            addrs = masters.cloned().collect();
        }
        if addrs.is_empty() {
            return self.complete_local(token, |out| encode::error(out, NO_TOPOLOGY.as_bytes()));
        }
        let pool = self.worker.blocking.clone();
        let permits: Option<Vec<_>> = addrs.iter().map(|_| pool.try_acquire()).collect();
        let Some(permits) = permits else {
            let text = pool.exhausted();
            return self.complete_local(token, |out| encode::error(out, text.as_bytes()));
        };
        let Some((request, proto, me)) = self.pending(token) else {
            return;
        };
        let abandon = Rc::new(Abandon::default());
        self.set_blocked(Some((token, abandon.clone())));
        let gather: Rc<dyn ReplyTarget> =
            Gather::new(me, token, Join::Merge(Merge::Min), proto, addrs.len());
        for (part, (addr, permit)) in addrs.into_iter().zip(permits).enumerate() {
            let (pool, gather, request, abandon) = (
                pool.clone(),
                gather.clone(),
                request.clone(),
                abandon.clone(),
            );
            tokio::task::spawn_local(async move {
                let ping = Some(PING);
                let reply = match pool.run(permit, addr, proto, request, ping, &abandon).await {
                    Ok(Outcome::Reply(reply)) => Ok(reply),
                    // The client left; WAIT changes nothing to put back.
                    Ok(Outcome::Abandoned(_)) => return,
                    Err(e) => Err(e),
                };
                gather.deliver(part as u64, reply);
                gather.flush();
            });
        }
    }
}
