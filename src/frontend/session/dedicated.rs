//! One request sent to several masters, each on a dedicated connection
//! (see [`crate::backend::blocking`]), the replies joined by a [`Gather`]:
//! `WAIT`, which blocks, and `SCRIPT KILL`, `FUNCTION KILL` and `FUNCTION
//! STATS`, which must reach a master whose shared connection is stuck
//! behind a running script. Like a blocking command, the request is sent
//! once the client's earlier requests are answered, and the ones after it
//! are held until it is answered.

use std::rc::Rc;
use std::sync::Arc;

use crate::backend::blocking::Outcome;
use crate::backend::ReplyTarget;
use crate::frontend::fanout::{Gather, Join};
use crate::protocol::encode;

use super::{Session, NO_TOPOLOGY};

impl Session {
    /// Sends entry `token` to each of `addrs` on a dedicated connection
    /// (after `before`, whose reply is skipped), joined as `join` says.
    pub(super) fn to_each_dedicated(
        &self,
        token: u64,
        addrs: Vec<Arc<str>>,
        join: Join,
        before: Option<&'static [u8]>,
    ) {
        if addrs.is_empty() {
            return self.complete_local(token, |out| encode::error(out, NO_TOPOLOGY.as_bytes()));
        }
        let pool = self.worker.blocking.clone();
        let permits: Option<Vec<_>> = addrs.iter().map(|_| pool.try_acquire()).collect();
        let Some(permits) = permits else {
            return self.refuse_dedicated(token);
        };
        let Some((request, proto, me, abandon)) = self.start_dedicated(token) else {
            return;
        };
        let gather: Rc<dyn ReplyTarget> = Gather::new(me, token, join, proto, addrs.clone());
        for (part, (addr, permit)) in addrs.into_iter().zip(permits).enumerate() {
            let (pool, gather, request, abandon) = (
                pool.clone(),
                gather.clone(),
                request.clone(),
                abandon.clone(),
            );
            tokio::task::spawn_local(async move {
                let reply = match pool
                    .run(permit, addr, proto, request, before, &abandon)
                    .await
                {
                    Ok(Outcome::Reply(reply)) => Ok(reply),
                    // The client left; nothing to put back.
                    Ok(Outcome::Abandoned(_)) => return,
                    Err(e) => Err(e),
                };
                gather.deliver(part as u64, reply);
                gather.flush();
            });
        }
    }
}
