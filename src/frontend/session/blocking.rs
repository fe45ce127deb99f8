//! Requests on dedicated connections: a blocking command on one (given
//! back to the node if its client left as it was answered), and one
//! request sent to several masters, each on a dedicated connection
//! (see [`crate::backend::blocking`]), the replies joined by a [`Gather`]:
//! `WAIT`, which blocks, and `SCRIPT KILL`, `FUNCTION KILL` and `FUNCTION
//! STATS`, which must reach a master whose shared connection is stuck
//! behind a running script. Like a blocking command, the request is sent
//! once the client's earlier requests are answered, and the ones after it
//! are held until it is answered.

use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::warn;

use crate::backend::blocking::{Abandon, Outcome};
use crate::backend::conn::ASKING;
use crate::backend::giveback;
use crate::backend::ReplySink;
use crate::cluster::NoNode;
use crate::frontend::fanout::{Gather, Join};
use crate::protocol::encode;
use crate::protocol::{Limits, Protocol, Request};

use super::Session;

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
            return self.complete_no_node(token, NoNode::NoTopology);
        }
        let pool = self.worker.blocking.clone();
        let permits: Option<Vec<_>> = addrs.iter().map(|_| pool.try_acquire()).collect();
        let Some(permits) = permits else {
            return self.refuse_dedicated(token);
        };
        let Some((request, proto, me, abandon)) = self.start_dedicated(token) else {
            return;
        };
        let gather: Rc<dyn ReplySink> = Gather::new(me, token, join, proto, addrs.clone());
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

impl Session {
    /// Whether entry `token` is the blocking command in flight (or `WAIT`).
    pub(super) fn is_blocked_on(&self, token: u64) -> bool {
        matches!(*self.blocked.borrow(), Some((t, _)) if t == token)
    }

    /// Notes the blocking command in flight (or none), also for `CLIENT LIST`.
    pub(super) fn set_blocked(&self, blocked: Option<(u64, Rc<Abandon>)>) {
        self.client.borrow().record.set_blocked(blocked.is_some());
        *self.blocked.borrow_mut() = blocked;
    }

    /// Entry `token` leaves for dedicated connections: its request,
    /// protocol and session, and the signal that tells those connections
    /// the client left; requests after it are held until it is answered.
    /// `None` when the entry is gone.
    pub(super) fn start_dedicated(
        &self,
        token: u64,
    ) -> Option<(Bytes, Protocol, Rc<Session>, Rc<Abandon>)> {
        let (request, proto, me) = self.pending(token)?;
        let abandon = Rc::new(Abandon::default());
        self.set_blocked(Some((token, abandon.clone())));
        Some((request, proto, me, abandon))
    }

    /// Answers entry `token` with the error for no dedicated connection
    /// left (`backend.max_blocking_connections`).
    pub(super) fn refuse_dedicated(&self, token: u64) {
        self.set_blocked(None);
        let text = self.worker.blocking.exhausted();
        self.complete_local(token, |out| encode::error(out, text.as_bytes()));
    }

    /// Runs entry `token` on a dedicated connection to `addr` (see
    /// [`crate::backend::blocking`]); its reply comes back through
    /// `deliver`, so redirects are followed as for any request.
    pub(super) fn block(&self, token: u64, addr: Arc<str>, asking: bool) {
        let pool = self.worker.blocking.clone();
        let Some(permit) = pool.try_acquire() else {
            return self.refuse_dedicated(token);
        };
        let Some((request, proto, me, abandon)) = self.start_dedicated(token) else {
            return;
        };
        tokio::task::spawn_local(async move {
            let outcome = pool
                .run(
                    permit,
                    addr.clone(),
                    proto,
                    request.clone(),
                    asking.then_some(ASKING),
                    &abandon,
                )
                .await;
            match outcome {
                Ok(Outcome::Reply(reply)) => {
                    // Done blocking (unless a redirect starts it again).
                    me.set_blocked(None);
                    me.deliver(token, Ok(reply));
                    Session::flush(&me);
                }
                Ok(Outcome::Abandoned(Some(reply))) => me.give_back(&addr, &request, &reply),
                Ok(Outcome::Abandoned(None)) => {}
                Err(e) => {
                    me.set_blocked(None);
                    me.deliver(token, Err(e));
                    Session::flush(&me);
                }
            }
        });
    }

    /// The node answered a blocking command after its client left: puts the
    /// popped element back (see [`crate::backend::giveback`]).
    pub(super) fn give_back(&self, addr: &str, request: &Bytes, reply: &Bytes) {
        let limits = self.worker.live().limits;
        let (Some(request), Ok(Some((value, _)))) = (
            Request::reparse(request, limits),
            crate::protocol::decode(reply, &Limits::default()),
        ) else {
            return;
        };
        let name = String::from_utf8_lossy(request.arg(0)).to_lowercase();
        let args: Vec<&[u8]> = request.args().skip(1).collect();
        let Some(command) = giveback::give_back(&name, &args, &value) else {
            return;
        };
        let parts: Vec<&[u8]> = command.iter().map(|b| &b[..]).collect();
        let mut bytes = BytesMut::new();
        encode::command(&mut bytes, &parts);
        let id = self.client.borrow().id;
        let sent = self
            .worker
            .node(addr)
            .pick(Protocol::Resp2, id)
            .send_unanswered(&bytes);
        warn!(client = id, node = addr, command = %name, given_back = sent.is_ok(), "client left as its blocking command was answered; putting the element back");
    }
}
