//! A client's transaction state: `MULTI` … `EXEC` and `WATCH`.
//!
//! keyway queues a transaction's commands itself and answers `+QUEUED`
//! after its own checks (unknown command, arity, keys of one slot); a
//! queuing error makes `EXEC` answer `-EXECABORT` without anything being
//! sent, as redis-server does. At `EXEC` the whole transaction goes to the
//! slot's master as one request, `MULTI` + the commands + `EXEC`, appended
//! back to back to one connection's output, so no other client's command
//! can fall inside it: the node runs it atomically and keyway hands the
//! client `EXEC`'s reply. A transaction refused with a redirect ran
//! nothing, so it is safe to send again to the right node.
//!
//! `WATCH` needs state on a connection of the client's own: the first
//! `WATCH` opens a dedicated connection to the master of its keys' slot
//! (never reconnected: a lost connection loses the watch, and `EXEC` then
//! answers nil, "a watched key may have changed"). `EXEC`, `DISCARD`,
//! `UNWATCH`, `RESET` or the client leaving retire it; it is never reused.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::backend::blocking::Permit;
use crate::backend::conn::Conn;
use crate::backend::{BackendError, ReplySink};
use crate::cluster::redirect;
use crate::cluster::Slot;
use crate::protocol::Protocol;

/// `MULTI`, as keyway sends it before a transaction's commands.
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
/// `EXEC`, after them.
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";

/// redis-server's reply to `EXEC` after a queuing error.
pub const EXECABORT: &[u8] = b"EXECABORT Transaction discarded because of previous errors.";

/// The commands queued since `MULTI`.
#[derive(Default)]
pub struct Queued {
    commands: BytesMut,
    count: u32,
    slot: Option<Slot>,
    aborted: bool,
}

impl Queued {
    /// Accepts a command whose keys are in `slot` (`None`: no keys) unless
    /// the transaction already has keys of another slot; false then.
    pub fn admits(&self, slot: Option<Slot>) -> bool {
        match (self.slot, slot) {
            (Some(have), Some(new)) => have == new,
            _ => true,
        }
    }

    /// Queues `request` (complete RESP bytes) with the slot of its keys.
    pub fn push(&mut self, request: &[u8], slot: Option<Slot>) {
        self.commands.extend_from_slice(request);
        self.count += 1;
        self.slot = self.slot.or(slot);
    }

    /// How many commands are queued.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// A command was refused while queuing: `EXEC` will abort.
    pub fn abort(&mut self) {
        self.aborted = true;
    }

    /// `EXEC` must answer `-EXECABORT`.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The slot of the queued commands' keys, if any has keys.
    pub fn slot(&self) -> Option<Slot> {
        self.slot
    }

    /// The transaction as one request: `MULTI`, the commands, `EXEC`; and
    /// the number of replies it gets.
    pub fn into_request(self) -> (Bytes, u32) {
        let mut out = BytesMut::with_capacity(MULTI.len() + self.commands.len() + EXEC.len());
        out.extend_from_slice(MULTI);
        out.extend_from_slice(&self.commands);
        out.extend_from_slice(EXEC);
        (out.freeze(), self.count + 2)
    }
}

/// A client's `WATCH`: the dedicated connection that holds it.
pub struct Watch {
    /// The slot of every watched key (and of the transaction's keys).
    pub slot: Slot,
    /// The dedicated connection.
    pub conn: Rc<Conn>,
    /// Orders this connection's requests against the client's others
    /// (see `Session::start`); never 0, which is the shared lane.
    pub lane: u64,
    /// `WATCH` commands sent on `conn`.
    pub sent: u32,
    /// The protocol `conn` speaks.
    pub proto: Protocol,
    /// The watch is lost (connection failed, slot moved, protocol changed):
    /// `EXEC` answers nil.
    pub void: bool,
    _permit: Permit,
}

impl Watch {
    /// A watch on keys of `slot`, held on `conn`.
    pub fn new(slot: Slot, conn: Rc<Conn>, lane: u64, proto: Protocol, permit: Permit) -> Watch {
        Watch {
            slot,
            conn,
            lane,
            sent: 0,
            proto,
            void: false,
            _permit: permit,
        }
    }
}

impl Watch {
    /// The watch still holds for a request in `proto`: not lost, and its
    /// connection speaks that protocol.
    pub fn holds(&self, proto: Protocol) -> bool {
        !self.void && self.proto == proto
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Closes once what was sent on it is answered: never reused with a
        // watch (or anything else) left on it.
        self.conn.retire();
    }
}

/// Where a transaction sent at `EXEC` goes.
pub enum Destination {
    /// The master of the slot (`None`: no keys, any master), on the
    /// client's shared connection.
    Shared(Option<Slot>),
    /// The connection holding the client's `WATCH`; `None` once the
    /// transaction went out on it (the watch ends with `EXEC`).
    Watched(Option<Watch>),
}

/// A transaction sent (or held) as one request.
pub struct InFlight {
    /// The client's place for `EXEC`'s reply.
    pub token: u64,
    /// Replies the request gets: `MULTI`'s, one per command, `EXEC`'s.
    pub replies: u32,
    /// Where it goes.
    pub destination: Destination,
}

/// A client's transaction state; see the module docs.
#[derive(Default)]
pub struct Transactions {
    /// Commands queued since `MULTI`; `None` outside a transaction.
    pub multi: Option<Queued>,
    /// The client's `WATCH`, if any.
    pub watch: Option<Watch>,
    /// Transactions whose `EXEC` reply has not come yet.
    pub in_flight: Vec<InFlight>,
    lanes: u64,
}

impl Transactions {
    /// A lane number for a new dedicated connection.
    pub fn next_lane(&mut self) -> u64 {
        self.lanes += 1;
        self.lanes
    }

    /// The transaction answering at place `token`, if it is one.
    pub fn find(&self, token: u64) -> Option<&InFlight> {
        self.in_flight.iter().find(|t| t.token == token)
    }

    /// `RESET`: no `MULTI`, no `WATCH`.
    pub fn reset(&mut self) {
        self.multi = None;
        self.watch = None;
    }

    /// Forgets the transaction at place `token` (its reply came).
    pub fn finish(&mut self, token: u64) {
        self.in_flight.retain(|t| t.token != token);
    }
}

/// Appends the nil `EXEC` answers when a watched key may have changed:
/// a null array in RESP2, a null in RESP3.
pub fn nil_exec(out: &mut BytesMut, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// Collects the replies to one transaction and hands its client the one
/// that answers `EXEC`: `EXEC`'s own, or, when `EXEC` was refused because a
/// command was redirected while queuing (the slot moved, nothing ran), that
/// redirect, so the session follows it and sends the whole transaction again.
pub struct TransactionReplies {
    session: Rc<dyn ReplySink>,
    token: u64,
    last: u64,
    redirect: RefCell<Option<Bytes>>,
    done: Cell<bool>,
}

impl TransactionReplies {
    /// Collects `replies` replies for the transaction at `token`.
    pub fn new(session: Rc<dyn ReplySink>, token: u64, replies: u32) -> Rc<TransactionReplies> {
        Rc::new(TransactionReplies {
            session,
            token,
            last: u64::from(replies.max(1)) - 1,
            redirect: RefCell::new(None),
            done: Cell::new(false),
        })
    }
}

impl ReplySink for TransactionReplies {
    fn deliver(&self, part: u64, reply: Result<Bytes, BackendError>) {
        if part < self.last {
            // MULTI's +OK and the +QUEUEDs keyway already answered; only a
            // redirect matters. A failed connection fails EXEC's reply too.
            if let Ok(reply) = reply {
                let mut first = self.redirect.borrow_mut();
                if first.is_none() && is_redirect(&reply) {
                    *first = Some(reply);
                }
            }
            return;
        }
        let answer = match reply {
            Ok(exec) if exec.starts_with(b"-EXECABORT") => Ok(self.redirect.take().unwrap_or(exec)),
            other => other,
        };
        self.done.set(true);
        self.session.deliver(self.token, answer);
    }

    fn flush(&self) {
        if self.done.get() {
            self.session.flush();
        }
    }
}

/// A `-MOVED`, `-ASK` or `-TRYAGAIN` reply.
fn is_redirect(reply: &[u8]) -> bool {
    reply.first() == Some(&b'-') && redirect::parse(reply).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Client {
        got: RefCell<Vec<(u64, Result<Bytes, BackendError>)>>,
        flushes: Cell<u32>,
    }

    impl ReplySink for Client {
        fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>) {
            self.got.borrow_mut().push((token, reply));
        }
        fn flush(&self) {
            self.flushes.set(self.flushes.get() + 1);
        }
    }

    fn run(replies: &[&'static [u8]]) -> Vec<(u64, Result<Bytes, BackendError>)> {
        let client = Rc::new(Client::default());
        let target: Rc<dyn ReplySink> = client.clone();
        let collect = TransactionReplies::new(target, 7, replies.len() as u32);
        for (i, reply) in replies.iter().enumerate() {
            collect.deliver(i as u64, Ok(Bytes::from_static(reply)));
            collect.flush();
        }
        assert_eq!(client.flushes.get(), 1, "one flush, after EXEC's reply");
        client.got.take()
    }

    #[test]
    fn the_client_gets_exec_s_reply() {
        let got = run(&[
            b"+OK\r\n",
            b"+QUEUED\r\n",
            b"+QUEUED\r\n",
            b"*2\r\n:1\r\n:2\r\n",
        ]);
        assert_eq!(got, [(7, Ok(Bytes::from_static(b"*2\r\n:1\r\n:2\r\n")))]);
        let nil = run(&[b"+OK\r\n", b"+QUEUED\r\n", b"*-1\r\n"]);
        assert_eq!(nil, [(7, Ok(Bytes::from_static(b"*-1\r\n")))]);
    }

    #[test]
    fn a_redirect_while_queuing_replaces_execabort() {
        let moved: &[u8] = b"-MOVED 3999 127.0.0.1:7001\r\n";
        let got = run(&[
            b"+OK\r\n",
            moved,
            b"-MOVED 3999 127.0.0.1:7002\r\n",
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        ]);
        assert_eq!(
            got,
            [(7, Ok(Bytes::from_static(moved)))],
            "the first redirect"
        );
        // Another queuing error: EXECABORT as the node said.
        let abort: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
        let got = run(&[b"+OK\r\n", b"-OOM command not allowed\r\n", abort]);
        assert_eq!(got, [(7, Ok(Bytes::from_static(abort)))]);
        // EXEC itself redirected: that is the answer.
        let ask: &[u8] = b"-ASK 5 127.0.0.1:7003\r\n";
        let got = run(&[b"+OK\r\n", b"+QUEUED\r\n", ask]);
        assert_eq!(got, [(7, Ok(Bytes::from_static(ask)))]);
    }

    #[test]
    fn a_lost_connection_fails_the_transaction() {
        let client = Rc::new(Client::default());
        let target: Rc<dyn ReplySink> = client.clone();
        let collect = TransactionReplies::new(target, 1, 3);
        collect.deliver(0, Ok(Bytes::from_static(b"+OK\r\n")));
        let lost = BackendError::Lost("n:1".into());
        collect.deliver(1, Err(lost.clone()));
        collect.deliver(2, Err(lost.clone()));
        assert_eq!(client.got.take(), [(1, Err(lost))]);
    }

    #[test]
    fn queued_commands_become_one_request() {
        let mut q = Queued::default();
        assert!(q.admits(None) && q.admits(Some(Slot::of_key(b"a"))));
        q.push(b"*1\r\n$4\r\nTIME\r\n", None);
        q.push(b"*2\r\n$4\r\nINCR\r\n$1\r\na\r\n", Some(Slot::of_key(b"a")));
        assert!(q.admits(Some(Slot::of_key(b"a"))));
        assert!(!q.admits(Some(Slot::of_key(b"b"))), "a and b hash apart");
        assert!(q.admits(None));
        assert_eq!(q.slot(), Some(Slot::of_key(b"a")));
        assert!(!q.is_aborted());
        let (request, replies) = q.into_request();
        assert_eq!(
            &request[..],
            b"*1\r\n$5\r\nMULTI\r\n*1\r\n$4\r\nTIME\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*1\r\n$4\r\nEXEC\r\n"
        );
        assert_eq!(replies, 4);
    }
}
