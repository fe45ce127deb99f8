//! One client connection. The reader parses requests and dispatches each to a
//! node (or answers it locally); every request takes a place in an ordered
//! queue; replies fill their places as they arrive from any node, and the
//! writer flushes every ready reply at the queue's front in one write. So a
//! pipeline stays a pipeline, spread over all shards, with replies in order.
//!
//! The session's parts, each a file: [`io`] (socket, reading, writing,
//! closing), [`dispatch`] (a request's way in: admission and routing),
//! [`access`] (authentication and ACL rules, in the admission step),
//! [`order`] (which requests wait for which), [`send`] (to the nodes,
//! following redirects), [`blocking`] (dedicated connections), [`pubsub`],
//! [`scan`], [`transaction`] with [`transaction_state`], [`wait`],
//! [`noscript`], [`hold`] (failover), and the reply queue ([`replies`], [`output`]).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};

use crate::net::Stream;
use bytes::{Bytes, BytesMut};
use tracing::{debug, Instrument};

use crate::backend::blocking::Abandon;
use crate::backend::conn::Conn;
use crate::backend::{BackendError, ReplySink};
use crate::cluster::{Access, NoNode, Slot};
use crate::command::Merge;
use crate::protocol::{encode, Protocol, Request};
use crate::router::Route;
use crate::worker::Worker;

use super::client::ClientInfo;
use super::fanout::diagnostics::Report;
use super::fanout::info;
use super::fanout::split::Plan;
use super::fanout::Collector;
use order::Way;
use replies::Replies;
use transaction_state::Transactions;
use writes::Writes;

mod access;
mod blocking;
mod dispatch;
mod hold;
mod io;
mod noscript;
pub mod order;
pub mod output;
pub mod pubsub;
pub mod replies;
mod scan;
pub mod scan_cursor;
mod send;
mod transaction;
pub mod transaction_state;
mod wait;
pub mod writes;

/// Serves one client until it leaves.
pub async fn serve(worker: Rc<Worker>, stream: Stream, peer: SocketAddr) {
    let shared = worker.shared.clone();
    let id = shared.registry.next_id();
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut registration = shared
        .registry
        .register(id, peer, local, stream.as_raw_fd());
    let mut client = ClientInfo::new(registration.record.clone(), &shared.acl);
    let by_certificate = shared
        .startup
        .tls
        .as_ref()
        .is_some_and(|t| t.user_from_cert);
    if let Some(certificate) = by_certificate.then(|| stream.peer_certificate()).flatten() {
        super::login::log_in_by_certificate(&mut client, &shared, &certificate);
    }
    let session = Rc::new_cyclic(|me| Session {
        me: me.clone(),
        client: RefCell::new(client),
        worker,
        stream,
        replies: RefCell::new(Replies::default()),
        io: io::Writing::default(),
        sent: Cell::new(Way::default()),
        force_send: Cell::new(false),
        parked: Cell::new(false),
        held_requests: Cell::new(0),
        blocked: RefCell::new(None),
        transactions: RefCell::new(Transactions::default()),
        writes: RefCell::new(Writes::default()),
        scratch: RefCell::new(BytesMut::new()),
    });
    // On debug lines: which client (its user is recorded at login). Above
    // debug the span is disabled, and the session runs without it: no
    // span entered and left at every wake-up.
    let span = tracing::debug_span!("client", id, %peer, user = tracing::field::Empty);
    span.in_scope(|| debug!("client connected"));
    let run = session.run(&mut registration.stop);
    let why = if span.is_disabled() {
        run.await
    } else {
        run.instrument(span.clone()).await
    };
    crate::metrics::client_closed(why);
    session.unsubscribe_all();
    // Closes the connection holding a WATCH: no state stays on the node.
    session.transactions.borrow_mut().reset();
    // Closing the dedicated connection unblocks the command on the node,
    // which then never pops an element for this client.
    if let Some((_, abandon)) = session.blocked.take() {
        abandon.signal();
    }
    drop(registration);
    span.in_scope(|| debug!(reason = why, "client disconnected"));
}

/// The reply for a request the session found no way to send (a route
/// handled before a request takes its place, met where it should not be).
/// Never expected; the client still gets an answer.
const NO_TARGET: &[u8] = b"ERR keyway could not route this request; please retry";

/// Where a new request goes.
enum Target {
    Slot(Slot, Access),
    /// `PUBLISH` of this channel: the master of its slot, the count of
    /// receivers corrected (see [`crate::pubsub::census`]).
    Publish(Slot, Bytes),
    AnyMaster,
    /// Every master, the replies merged.
    AllMasters(Merge),
    /// Every node, masters and replicas: `+OK` from all, or the first
    /// error naming its node.
    AllNodes,
    /// Every master, the replies merged naming their nodes; on dedicated
    /// connections when the report says so.
    Diagnostics(Report),
    /// The master of the slot, on a dedicated connection.
    Blocking(Slot),
    /// The client's own connection holding its `WATCH`, and its lane.
    Watched(Rc<Conn>, u64),
    /// `WAIT`: the masters the client wrote to, on dedicated connections.
    WaitReplicas,
    /// `INFO`: every master, merged with keyway's own sections (with
    /// `# Keyway` when true).
    Info(bool),
    /// `SCAN`: the master keyway's cursor names.
    Scan,
    /// One part per slot of the keys, the replies joined.
    Split(Plan),
}

impl Target {
    /// Where `route` sends `request` as it is; `None` for the routes the
    /// session handles before a request takes its place (transactions,
    /// subscriptions, local answers, refusals). Every route is matched by
    /// name: a new kind of route does not compile until it has a target.
    #[inline]
    fn of(route: Route<'_>, request: &Request) -> Option<Target> {
        Some(match route {
            Route::Slot(slot, access) => Target::Slot(slot, access),
            Route::Publish(slot) => Target::Publish(slot, Bytes::copy_from_slice(request.arg(1))),
            Route::AnyNode => Target::AnyMaster,
            Route::FanOut(merge) => Target::AllMasters(merge),
            Route::AllNodes => Target::AllNodes,
            Route::Diagnostics(what) => Target::Diagnostics(Report::new(what, request)),
            Route::WaitReplicas => Target::WaitReplicas,
            Route::Info => Target::Info(info::asks_keyway(request.args().skip(1))),
            Route::Scan => Target::Scan,
            Route::Blocking(slot) => Target::Blocking(slot),
            Route::Split(groups) => Target::Split(Plan::new(request, groups)),
            Route::Local(_)
            | Route::Transaction(..)
            | Route::Subscription(..)
            | Route::Reject(_) => return None,
        })
    }

    /// Whether it goes on connections of its own, so nothing else of the
    /// client may be in flight beside it (see [`order`]).
    fn is_dedicated(&self) -> bool {
        match self {
            Target::Blocking(_) | Target::WaitReplicas => true,
            Target::Diagnostics(report) => report.dedicated(),
            Target::Slot(..)
            | Target::Publish(..)
            | Target::AnyMaster
            | Target::AllMasters(_)
            | Target::AllNodes
            | Target::Watched(..)
            | Target::Info(_)
            | Target::Scan
            | Target::Split(_) => false,
        }
    }

    /// The lane it is sent on (see [`order::Way`]).
    fn lane(&self) -> u64 {
        match self {
            Target::Watched(_, lane) => *lane,
            _ => order::SHARED_LANE,
        }
    }
}

/// One client's session; its state is grouped by what changes together.
struct Session {
    me: Weak<Session>,
    worker: Rc<Worker>,
    stream: Stream,
    /// Who the client is: id, protocol, subscriptions, registry record.
    client: RefCell<ClientInfo>,
    /// Every request's place in the reply order, and the replies.
    replies: RefCell<Replies>,
    /// The writing side: unsent output, and what the writer task waits on.
    io: io::Writing,
    /// The way the requests in flight were sent (see [`order`]).
    sent: Cell<Way>,
    /// Send the next request without the ordering check: it is the first
    /// of the held ones, released because nothing is in flight.
    force_send: Cell<bool>,
    /// Requests are held until this worker's holds retry the client (see
    /// [`hold`]): held ones are not released before.
    parked: Cell<bool>,
    /// How many requests the worker's holds count for this client.
    held_requests: Cell<usize>,
    /// The blocking command in flight (at most one: requests after it are
    /// held), and how to tell it the client left.
    blocked: RefCell<Option<(u64, Rc<Abandon>)>>,
    /// `MULTI` and `WATCH` state.
    transactions: RefCell<Transactions>,
    /// Where this client wrote: the masters `WAIT` asks, and the slots
    /// whose reads stay on masters (read-your-writes).
    writes: RefCell<Writes>,
    /// Reused for replies keyway builds itself.
    scratch: RefCell<BytesMut>,
}

impl Session {
    /// A reply keyway builds itself, in the reused scratch buffer.
    fn build_reply(&self, build: impl FnOnce(&mut BytesMut)) -> Bytes {
        let mut scratch = self.scratch.borrow_mut();
        build(&mut scratch);
        scratch.split().freeze()
    }

    /// Appends a reply keyway builds itself.
    fn push_local(&self, build: impl FnOnce(&mut BytesMut)) {
        let reply = self.build_reply(build);
        self.replies.borrow_mut().push_ready(reply);
    }

    /// Entry `token`'s request and protocol while it waits for its reply,
    /// with this session as the reply target.
    fn pending(&self, token: u64) -> Option<(Bytes, Protocol, Rc<Session>)> {
        let (request, proto) = self
            .replies
            .borrow()
            .request(token)
            .map(|(r, p)| (r.clone(), p))?;
        Some((request, proto, self.me.upgrade()?))
    }

    /// Puts `reply` in place of entry `token`; the next flush sends it.
    /// A client being closed keeps no reply (its place is filled, empty).
    fn complete(&self, token: u64, reply: Bytes) {
        let reply = if self.io.broken.get() {
            Bytes::new()
        } else {
            reply
        };
        self.replies.borrow_mut().complete(token, reply);
        self.answered(token);
    }

    /// Puts a reply made of `chunks` in place of entry `token` (none for a
    /// client being closed).
    fn complete_chunks(&self, token: u64, chunks: Vec<Bytes>) {
        let chunks = if self.io.broken.get() {
            Vec::new()
        } else {
            chunks
        };
        self.replies.borrow_mut().complete_chunks(token, chunks);
        self.answered(token);
    }

    /// Entry `token` has its reply: a transaction in flight may be done.
    fn answered(&self, token: u64) {
        let mut transactions = self.transactions.borrow_mut();
        if !transactions.in_flight.is_empty() {
            transactions.finish(token);
        }
    }

    /// Completes entry `token` with the error for no node to serve it.
    fn complete_no_node(&self, token: u64, no_node: NoNode) {
        self.complete_local(token, |out| encode::error(out, no_node.text().as_bytes()));
    }

    /// Completes entry `token` with a reply keyway builds itself.
    fn complete_local(&self, token: u64, build: impl FnOnce(&mut BytesMut)) {
        let reply = self.build_reply(build);
        self.complete(token, reply);
    }
}

/// Whether `reply` is a null (RESP2 `$-1`/`*-1`, RESP3 `_`): a key that
/// is not there.
fn is_null(reply: &[u8]) -> bool {
    matches!(reply, b"$-1\r\n" | b"*-1\r\n" | b"_\r\n")
}

impl Session {
    /// A read that failed on a replica (it went down, or stopped
    /// answering) is sent once more, to the slot's master: a read is safe
    /// to repeat, and the failed replica is skipped for a while (see
    /// [`Worker::read_failed_on`]). True when it was sent again.
    fn read_again(&self, token: u64, error: &BackendError) -> bool {
        let again = self.to_master_once(token);
        if again {
            self.worker.read_failed_on(error.addr());
        }
        again
    }

    /// A read a replica answered with a null (no such key) is asked once
    /// more of the slot's master: the replica may not have the key yet
    /// (it lags), or no longer (a resharding moved it: replicas do not
    /// know of migrations, the master answers `ASK`). True when sent again.
    fn confirm_miss(&self, token: u64) -> bool {
        self.to_master_once(token)
    }

    /// Sends entry `token` again, to its slot's master, if it is a read
    /// last sent to a replica and was not sent again this way before.
    fn to_master_once(&self, token: u64) -> bool {
        let again = self
            .replies
            .borrow_mut()
            .followed(token)
            .is_some_and(|f| f.on_replica && !std::mem::replace(&mut f.off_replica, true));
        if again {
            self.restart(token);
        }
        again
    }
}

impl Collector for Session {
    fn gathered(&self, token: u64, chunks: Vec<Bytes>) {
        // May run inside `start` (a part failed at once): releasing held
        // requests waits for the flush, which never runs nested.
        if self.is_blocked_on(token) {
            // `WAIT` is over on every master.
            self.set_blocked(None);
        }
        self.complete_chunks(token, chunks);
    }

    fn flush_gathered(&self) {
        self.release_held();
        Session::flush(self);
    }

    fn node_failed(&self, token: u64, ran_nowhere: bool) -> bool {
        self.hold_gather(token, ran_nowhere)
    }
}

impl ReplySink for Session {
    fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>) {
        match reply {
            Ok(reply) => {
                let followed = match reply.first() {
                    Some(b'-') => {
                        self.follow(token, &reply)
                            || (reply.starts_with(b"-NOSCRIPT") && self.reload_script(token))
                    }
                    Some(b'$' | b'*' | b'_') if is_null(&reply) => self.confirm_miss(token),
                    _ => false,
                };
                if !followed {
                    self.complete(token, reply);
                }
            }
            Err(e) => {
                if self.sent.get().lane != order::SHARED_LANE {
                    self.void_watch();
                } else if self.read_again(token, &e) || self.survive(token, &e) {
                    return self.release_held();
                }
                self.complete_local(token, |out| e.write_reply(out))
            }
        }
        self.release_held();
    }

    fn flush(&self) {
        Session::flush(self);
    }
}
