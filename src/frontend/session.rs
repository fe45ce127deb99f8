//! One client connection. The reader parses requests and dispatches each to a
//! node (or answers it locally); every request takes a place in an ordered
//! queue; replies fill their places as they arrive from any node, and the
//! writer flushes every ready reply at the queue's front in one write. So a
//! pipeline stays a pipeline, spread over all shards, with replies in order.
//!
//! Redirects (`MOVED`, `ASK`, `TRYAGAIN`) are followed here, within budgets,
//! before the reply takes its place.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::backend::blocking::{Abandon, Outcome as BlockingOutcome};
use crate::backend::conn::{Conn, ASKING};
use crate::backend::giveback;
use crate::backend::pool::NodeConns;
use crate::backend::{BackendError, ReplyTarget};
use crate::cluster::redirect::{self, Redirect};
use crate::cluster::{NodeIndex, Slot, Topology};
use crate::command::{CommandSpec, CommandTable, Merge, RouteClass};
use crate::net::Stream;
use crate::protocol::{encode, Limits, Protocol, Request, RequestParser};
use crate::pubsub::{Message, Subscriber, TopicKind};
use crate::router::{self, Access, Route};
use crate::wake::LocalNotify;
use crate::worker::Worker;

use super::diagnostics::Report;
use super::fanout::{Collector, Gather, Join};
use super::local::{self, ClientInfo, Outcome};
use super::output::Output;
use super::replies::{Budget, Replies};
use super::split::{Plan, Split};
use super::subscriptions::confirmation;
use super::transaction::{TransactionReplies, Transactions};

/// Smallest free space offered to a read; the buffer is allocated on the
/// first read, so idle clients cost no buffer.
const READ_RESERVE: usize = 4096;
/// Ready replies are written before the rest of the pipeline is answered
/// once they reach this size; below it, one write per pipeline is cheaper.
const EARLY_WRITE: usize = 64 * 1024;
/// How long a closing session may take to flush its last replies.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(5);
/// First pause before retrying after `-TRYAGAIN`; doubles per retry.
pub(super) const TRYAGAIN_BACKOFF: Duration = Duration::from_millis(5);

/// Serves one client until it leaves.
pub async fn serve(worker: Rc<Worker>, stream: Stream, peer: SocketAddr) {
    let shared = worker.shared.clone();
    let id = shared.next_client_id();
    let local = stream.local_addr().unwrap_or(shared.config.listen);
    let mut registration = shared
        .connected
        .register(id, peer, local, stream.as_raw_fd());
    let session = Rc::new_cyclic(|me| Session {
        me: me.clone(),
        client: RefCell::new(ClientInfo::new(registration.record.clone())),
        worker,
        stream,
        replies: RefCell::new(Replies::default()),
        out: RefCell::new(Output::default()),
        write_blocked: Cell::new(false),
        broken: Cell::new(false),
        writer: LocalNotify::default(),
        space: LocalNotify::default(),
        closing: Cell::new(false),
        sent_epoch: Cell::new(0),
        sent_proto: Cell::new(Protocol::Resp2),
        sent_lane: Cell::new(SHARED_LANE),
        transactions: RefCell::new(Transactions::default()),
        written: RefCell::new(Vec::new()),
        scratch: RefCell::new(BytesMut::new()),
        flush_due: Cell::new(false),
        over_soft_limit: Cell::new(None),
        blocked: RefCell::new(None),
        force_send: Cell::new(false),
    });
    debug!(id, %peer, "client connected");
    session.clone().run(&mut registration.killed).await;
    session.unsubscribe_all();
    // Closes the connection holding a WATCH: no state stays on the node.
    session.transactions.borrow_mut().reset();
    // Closing the dedicated connection unblocks the command on the node,
    // which then never pops an element for this client.
    if let Some((_, abandon)) = session.blocked.take() {
        abandon.signal();
    }
    drop(registration);
    debug!(id, %peer, "client disconnected");
}

/// Where a new request goes.
enum Target {
    Slot(Slot, Access),
    AnyMaster,
    /// Every master, the replies merged.
    AllMasters(Merge),
    /// Every master, the replies merged naming their nodes; on dedicated
    /// connections when the report says so.
    Diagnostics(Report),
    /// The master of the slot, on a dedicated connection.
    Blocking(Slot),
    /// The client's own connection holding its `WATCH`, and its lane.
    Watched(Rc<Conn>, u64),
    /// `WAIT`: the masters the client wrote to, on dedicated connections.
    WaitReplicas,
    /// `INFO`: every master, merged with keyway's own sections.
    Info,
    /// `SCAN`: the master keyway's cursor names.
    Scan,
    /// One part per slot of the keys, the replies joined.
    Split(Plan, Access),
}

impl Target {
    /// Where `route` sends `request` as it is. Routes keyway handles
    /// itself never get here, except local commands it forwards after all
    /// (`COMMAND INFO`, ...), which go to any master.
    fn of(route: Route<'_>, request: &Request) -> Target {
        match route {
            Route::Slot(slot, access) => Target::Slot(slot, access),
            Route::FanOut(merge) => Target::AllMasters(merge),
            Route::Diagnostics(what) => Target::Diagnostics(Report::new(what, request)),
            Route::WaitReplicas => Target::WaitReplicas,
            Route::Info => Target::Info,
            Route::Scan => Target::Scan,
            Route::Blocking(slot) => Target::Blocking(slot),
            Route::Split(groups) => Target::Split(Plan::new(request, groups), groups.access),
            _ => Target::AnyMaster,
        }
    }
}

/// The lane of the shared connections (see `Session::start`).
const SHARED_LANE: u64 = 0;

/// Why the reader stopped.
#[derive(PartialEq, Eq)]
enum ReadEnd {
    /// The client went away: nothing more to write.
    Gone,
    /// QUIT or a protocol error: flush what is queued, then close.
    Close,
}

struct Session {
    me: Weak<Session>,
    worker: Rc<Worker>,
    stream: Stream,
    client: RefCell<ClientInfo>,
    replies: RefCell<Replies>,
    /// Replies taken from the queue and not yet written.
    out: RefCell<Output>,
    /// Set when the socket took less than offered: the writer task waits
    /// for it to drain; flushes leave the rest to it meanwhile.
    write_blocked: Cell<bool>,
    /// Set when writing failed: the client is gone.
    broken: Cell<bool>,
    /// Wakes the writer task: writes blocked, failed, or closing.
    writer: LocalNotify,
    /// Woken when replies left the queue (reading may resume).
    space: LocalNotify,
    closing: Cell<bool>,
    /// The slot-map epoch under which the requests in flight were sent.
    sent_epoch: Cell<u64>,
    /// The protocol (so the backend connection) the requests in flight were
    /// sent in.
    sent_proto: Cell<Protocol>,
    /// The lane the requests in flight were sent on: the shared
    /// connections, or the dedicated one holding the client's `WATCH`.
    sent_lane: Cell<u64>,
    /// `MULTI` and `WATCH` state.
    transactions: RefCell<Transactions>,
    /// The masters this client sent writes to, which `WAIT` asks.
    written: RefCell<Vec<Arc<str>>>,
    /// Reused for replies keyway builds itself.
    scratch: RefCell<BytesMut>,
    /// Messages were queued since the hub last flushed this client.
    flush_due: Cell<bool>,
    /// Since when the unsent output of this subscriber is over the soft limit.
    over_soft_limit: Cell<Option<std::time::Instant>>,
    /// The blocking command in flight (at most one: requests after it are
    /// held), and how to tell it the client left.
    blocked: RefCell<Option<(u64, Rc<Abandon>)>>,
    /// Send the next request without the ordering check: it is the first
    /// of the held ones, released because nothing is in flight.
    force_send: Cell<bool>,
}

impl Session {
    /// Reads and writes until the client leaves, or until `killed` (by
    /// `CLIENT KILL` from another client: closes at once, as Redis does).
    async fn run(self: Rc<Self>, killed: &mut oneshot::Receiver<()>) {
        let reader = self.read_loop();
        let writer = self.write_loop();
        tokio::pin!(reader, writer);
        tokio::select! {
            biased;
            _ = killed => {}
            end = &mut reader => {
                if end == ReadEnd::Close {
                    self.closing.set(true);
                    self.flush();
                    self.writer.notify_one();
                    let _ = tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer).await;
                }
            }
            _ = &mut writer => {}
        }
    }

    async fn read_loop(&self) -> ReadEnd {
        let config = &self.worker.shared.config;
        let max_pipeline = config.max_pipeline.get();
        let mut parser = RequestParser::new(config.limits);
        let mut buf = BytesMut::new();
        let record = self.client.borrow().record.clone();
        loop {
            while self.replies.borrow().len() >= max_pipeline {
                self.space.notified().await;
            }
            if poll_fn(|cx| self.stream.poll_read_ready(cx)).await.is_err() {
                return ReadEnd::Gone;
            }
            if buf.capacity() - buf.len() < READ_RESERVE {
                // Doubling keeps a large value's arrival linear in its size.
                buf.reserve(buf.len().max(READ_RESERVE));
            }
            match self.stream.read_some(&mut buf) {
                Ok(None) => continue,
                Ok(Some(0)) | Err(_) => return ReadEnd::Gone,
                Ok(Some(_)) => record.touch(),
            }
            loop {
                match parser.parse(&mut buf) {
                    Ok(Some(request)) => {
                        if !self.submit(request) {
                            return ReadEnd::Close;
                        }
                    }
                    Ok(None) => {
                        self.release_held();
                        break;
                    }
                    Err(e) => {
                        crate::metrics::protocol_error();
                        let text = format!("ERR Protocol error: {e}");
                        self.push_local(|out| encode::error(out, text.as_bytes()));
                        debug!(client = self.client.borrow().id, error = %e, "protocol error; closing");
                        return ReadEnd::Close;
                    }
                }
            }
            self.flush();
            if self.broken.get() {
                return ReadEnd::Gone;
            }
        }
    }

    /// Finishes writes the socket could not take at once, and ends the
    /// session once it is closing and everything is written.
    async fn write_loop(&self) -> io::Result<()> {
        loop {
            if self.broken.get() {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if self.write_blocked.get() {
                self.stream.writable().await?;
                self.write_blocked.set(false);
                self.flush();
                continue;
            }
            if self.closing.get()
                && self.replies.borrow().is_empty()
                && self.out.borrow().is_empty()
            {
                return Ok(());
            }
            self.writer.notified().await;
        }
    }

    /// Writes the ready replies at the queue's front once the whole pipeline
    /// is answered (or they pile up past [`EARLY_WRITE`]), in one write when
    /// the socket takes it all; what it does not take waits for the writer task.
    fn flush(&self) {
        if self.write_blocked.get() || self.broken.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let waiting = {
            let mut replies = self.replies.borrow_mut();
            if replies.take_ready(&mut out) > 0 {
                self.space.notify_one();
            }
            replies.waiting()
        };
        if out.is_empty() || (waiting > 0 && out.len() < EARLY_WRITE && !self.closing.get()) {
            return;
        }
        match out.write_to(&self.stream) {
            Ok(true) => {
                if self.closing.get() {
                    self.writer.notify_one();
                }
            }
            Ok(false) => {
                self.write_blocked.set(true);
                self.writer.notify_one();
            }
            Err(_) => {
                self.broken.set(true);
                self.writer.notify_one();
            }
        }
    }

    /// Takes a new request's place in the queue and starts it on its way.
    /// False when the client asked to close (`QUIT`).
    fn submit(&self, request: Request) -> bool {
        let worker = &self.worker;
        let table = worker.commands();
        if let Some(name) = self.refused_while_subscribed(&table, &request) {
            let text = format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
            self.push_local(|out| encode::error(out, text.as_bytes()));
            return true;
        }
        let route = router::route(&table, &request);
        if self.transactions.borrow().multi.is_some() {
            if let Some(queued) = self.queue_in_multi(&table, &request, &route) {
                self.note_multi();
                return queued;
            }
        }
        let target = match route {
            Route::Transaction(spec, slot) => {
                self.transaction(spec.name(), slot, request);
                self.note_multi();
                return true;
            }
            Route::Subscription(spec, _) => {
                self.subscription(spec.name(), &request);
                return true;
            }
            Route::Local(spec) => {
                let mut outcome = Outcome::Reply;
                let reply = self.build_reply(|out| {
                    let mut client = self.client.borrow_mut();
                    outcome =
                        local::execute(spec, &request, &mut client, &worker.shared, &table, out);
                });
                if spec.name() == "reset" {
                    self.unsubscribe_all();
                    self.transactions.borrow_mut().reset();
                    self.note_multi();
                }
                match outcome {
                    Outcome::Forward => Target::AnyMaster,
                    Outcome::Reply | Outcome::Quit => {
                        self.replies.borrow_mut().push_ready(reply);
                        return outcome != Outcome::Quit;
                    }
                }
            }
            Route::Reject(rejection) => {
                self.push_local(|out| rejection.write_reply(&request, out));
                return true;
            }
            route => {
                if let Route::FanOut(_) = route {
                    self.note_script_command(&request);
                }
                Target::of(route, &request)
            }
        };
        drop(table);
        let proto = self.client.borrow().proto;
        let token = self
            .replies
            .borrow_mut()
            .push_pending(request.into_raw(), proto);
        self.start(token, target);
        true
    }

    /// The command's name if this is a RESP2 client in subscribed mode and
    /// the command is not one it may send there (as redis-server decides).
    fn refused_while_subscribed(&self, table: &CommandTable, request: &Request) -> Option<String> {
        {
            let client = self.client.borrow();
            if client.proto != Protocol::Resp2 || !client.subscriptions.any() {
                return None;
            }
        }
        // Unknown commands and wrong arities get their own errors first.
        let spec: &CommandSpec = table
            .lookup(request)
            .filter(|s| s.arity_ok(request.argc()))?;
        let allowed = spec.class() == RouteClass::Subscription
            || matches!(spec.name(), "ping" | "quit" | "reset");
        (!allowed).then(|| spec.name().to_string())
    }

    /// `(P|S)SUBSCRIBE` / `(P|S)UNSUBSCRIBE`: updates the client's
    /// subscriptions and the worker's hub, and answers with one confirmation
    /// per topic. A subscription new to the worker is confirmed once its
    /// node confirmed it, so a message published after the client's
    /// confirmation cannot be missed.
    fn subscription(&self, name: &str, request: &Request) {
        let (kind, subscribe) = match name {
            "subscribe" => (TopicKind::Channel, true),
            "psubscribe" => (TopicKind::Pattern, true),
            "ssubscribe" => (TopicKind::Shard, true),
            "unsubscribe" => (TopicKind::Channel, false),
            "punsubscribe" => (TopicKind::Pattern, false),
            _ => (TopicKind::Shard, false),
        };
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let hub = &self.worker.hub;
        let mut topics: Vec<Bytes> = request.args().skip(1).map(Bytes::copy_from_slice).collect();
        let mut wait_on = None;
        let mut client = self.client.borrow_mut();
        let (id, proto) = (client.id, client.proto);
        let mut scratch = self.scratch.borrow_mut();
        if subscribe {
            for topic in &topics {
                if client.subscriptions.insert(kind, topic) {
                    let subscriber: Rc<dyn Subscriber> = me.clone();
                    wait_on = hub.subscribe(kind, topic, id, subscriber).or(wait_on);
                }
                let count = client.subscriptions.count(kind);
                confirmation(&mut scratch, proto, name, Some(topic), count);
            }
        } else {
            if topics.is_empty() {
                topics = client.subscriptions.topics(kind);
            }
            if topics.is_empty() {
                confirmation(
                    &mut scratch,
                    proto,
                    name,
                    None,
                    client.subscriptions.count(kind),
                );
            }
            for topic in &topics {
                if client.subscriptions.remove(kind, topic) {
                    hub.unsubscribe(kind, topic, id);
                }
                let count = client.subscriptions.count(kind);
                confirmation(&mut scratch, proto, name, Some(topic), count);
            }
        }
        let reply = scratch.split().freeze();
        client
            .record
            .set_subscriptions(client.subscriptions.counts());
        drop((client, scratch));
        match wait_on {
            None => {
                self.replies.borrow_mut().push_ready(reply);
            }
            Some(conn) => {
                let token = self.replies.borrow_mut().push_pending(Bytes::new(), proto);
                conn.when_answered(Box::new(move || {
                    me.complete(token, reply);
                    me.release_held();
                    me.flush();
                }));
            }
        }
    }

    /// Shows the commands queued in `MULTI` (if in one) to `CLIENT LIST`.
    fn note_multi(&self) {
        let queued = self.transactions.borrow().multi.as_ref().map(|q| q.count());
        self.client.borrow().record.set_multi(queued);
    }

    /// Drops every subscription of this client (`RESET`, or it left).
    fn unsubscribe_all(&self) {
        let id = self.client.borrow().id;
        let topics = self.client.borrow_mut().subscriptions.clear();
        self.client.borrow().record.set_subscriptions([0; 3]);
        for (kind, topic) in topics {
            self.worker.hub.unsubscribe(kind, &topic, id);
        }
    }

    /// Disconnects a subscriber whose unsent output passed the hard limit,
    /// or stayed over the soft limit too long.
    fn enforce_output_limit(&self) {
        let limit = self.worker.shared.config.pubsub_output_limit;
        let pending = self.replies.borrow().ready_bytes() + self.out.borrow().len();
        let over = if pending > limit.hard {
            true
        } else if pending > limit.soft {
            let since = self
                .over_soft_limit
                .get()
                .unwrap_or_else(std::time::Instant::now);
            self.over_soft_limit.set(Some(since));
            since.elapsed() >= limit.soft_for
        } else {
            self.over_soft_limit.set(None);
            false
        };
        if over {
            warn!(
                client = self.client.borrow().id,
                pending, "subscriber reads too slowly; closing it (client.pubsub_output_limit_*)"
            );
            crate::metrics::slow_subscriber_closed();
            self.broken.set(true);
            self.writer.notify_one();
        }
    }

    /// Sends a new request, unless the slot map or the client's protocol
    /// changed while earlier requests of this client are still in flight:
    /// then it is held until they are answered. Otherwise a read routed by
    /// the new map (or sent on the other protocol's connection) could reach
    /// the master before a write sent earlier by the old map (or on the
    /// other connection), and read the value the write replaced. Redis
    /// orders one connection's commands; so does keyway.
    fn start(&self, token: u64, target: Target) {
        let worker = &self.worker;
        let topology = worker.topology();
        let epoch = topology.epoch();
        {
            let mut replies = self.replies.borrow_mut();
            let Some((_, proto)) = replies.request(token) else {
                return;
            };
            // This request counts as in flight itself.
            let others = replies.in_flight().saturating_sub(1);
            let lane = match target {
                Target::Watched(_, lane) => lane,
                _ => SHARED_LANE,
            };
            // A blocking command goes on a connection of its own: nothing
            // may be in flight beside it, in either direction. So for the
            // connection holding a `WATCH`: nothing sent on one lane may
            // overtake what was sent on the other.
            let moved = epoch != self.sent_epoch.get()
                || proto != self.sent_proto.get()
                || lane != self.sent_lane.get()
                || matches!(target, Target::Blocking(_) | Target::WaitReplicas)
                || matches!(target, Target::Diagnostics(report) if report.dedicated())
                || self.blocked.borrow().is_some();
            let forced = self.force_send.replace(false);
            if !forced && (replies.held() > 0 || (others > 0 && moved)) {
                replies.hold(token);
                return;
            }
            self.sent_proto.set(proto);
            self.sent_lane.set(lane);
        }
        self.sent_epoch.set(epoch);
        let conns = match target {
            Target::AllMasters(merge) => return self.fan_out(token, Join::Merge(merge), &topology),
            Target::Diagnostics(report) if report.dedicated() => {
                let masters = topology.nodes().iter().map(|n| n.addr.clone()).collect();
                return self.to_each_dedicated(token, masters, Join::Diagnostics(report), None);
            }
            Target::Diagnostics(report) => {
                return self.fan_out(token, Join::Diagnostics(report), &topology)
            }
            Target::Info => {
                let own = Box::new(worker.shared.own_info());
                return self.fan_out(token, Join::Info(own), &topology);
            }
            Target::WaitReplicas => return self.wait_replicas(token, &topology),
            Target::Scan => return self.scan(token, &topology),
            Target::Split(plan, access) => return self.split(token, plan, access, &topology),
            Target::Blocking(slot) => {
                return match topology.master_of(slot) {
                    Some(index) => {
                        let addr = topology.nodes()[index as usize].addr.clone();
                        drop(topology);
                        self.wrote_to(&addr);
                        self.block(token, addr, false)
                    }
                    None => self.complete_local(token, |out| {
                        encode::error(out, b"CLUSTERDOWN Hash slot not served")
                    }),
                };
            }
            Target::Slot(slot, access) => match topology.master_of(slot) {
                Some(index) => {
                    if access == Access::Write {
                        self.wrote_to(&topology.nodes()[index as usize].addr);
                    }
                    Ok(worker.master(&topology, index))
                }
                None if epoch == 0 => Err(NO_TOPOLOGY),
                None => Err("CLUSTERDOWN Hash slot not served"),
            },
            Target::AnyMaster => worker.any_master(&topology).ok_or(NO_TOPOLOGY),
            Target::Watched(conn, _) => {
                drop(topology);
                return self.send_watched(token, &conn);
            }
        };
        drop(topology);
        self.send(token, conns, false);
    }

    /// Sends the held requests, in order, once nothing sent before them is
    /// still in flight, under the slot map current now.
    fn release_held(&self) {
        loop {
            let tokens = self.replies.borrow_mut().release();
            if tokens.is_empty() {
                return;
            }
            self.sent_epoch.set(self.worker.topology().epoch());
            // The first goes out whatever it is (nothing is in flight);
            // `start` holds the ones after it again if the protocol, the
            // map or the connection changes.
            let first = self.replies.borrow().request(tokens.start).map(|(_, p)| p);
            if let Some(proto) = first {
                self.sent_proto.set(proto);
                self.force_send.set(true);
            }
            for token in tokens {
                self.restart(token);
            }
            self.force_send.set(false);
        }
    }

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

    /// Sends the request of entry `token` on `conns` (with `ASKING` first
    /// when `asking`), or answers it with the error in `conns`.
    fn send(&self, token: u64, conns: Result<Rc<NodeConns>, &'static str>, asking: bool) {
        let conns = match conns {
            Ok(conns) => conns,
            Err(text) => {
                return self.complete_local(token, |out| encode::error(out, text.as_bytes()))
            }
        };
        let proto = match self.replies.borrow().request(token) {
            Some((_, proto)) => proto,
            None => return,
        };
        let client = self.client.borrow().id;
        if let Err(e) = self.send_on(token, conns.pick(proto, client), asking) {
            self.complete_local(token, |out| e.write_reply(out));
        }
    }

    /// Queues the request of entry `token` on `conn`: as one request, or,
    /// for a transaction, as `MULTI` … `EXEC` with one reply per command.
    fn send_on(&self, token: u64, conn: &Conn, asking: bool) -> Result<(), BackendError> {
        let replies = self.replies.borrow();
        let (Some((request, _)), Some(me)) = (replies.request(token), self.me.upgrade()) else {
            return Ok(());
        };
        let me: Rc<dyn ReplyTarget> = me;
        let transaction = self.transactions.borrow().find(token).map(|t| t.replies);
        match transaction {
            None => conn.send(request, asking, &me, token),
            Some(count) => {
                let collect: Rc<dyn ReplyTarget> = TransactionReplies::new(me, token, count);
                conn.send_many(request, count, asking, &collect)
            }
        }
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
    fn complete(&self, token: u64, reply: Bytes) {
        self.replies.borrow_mut().complete(token, reply);
        self.answered(token);
    }

    /// Puts a reply made of `chunks` in place of entry `token`.
    fn complete_chunks(&self, token: u64, chunks: Vec<Bytes>) {
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

    /// Completes entry `token` with a reply keyway builds itself.
    fn complete_local(&self, token: u64, build: impl FnOnce(&mut BytesMut)) {
        let reply = self.build_reply(build);
        self.complete(token, reply);
    }

    /// Follows a redirect for entry `token`, or returns false when its budget
    /// is spent. Then a `TRYAGAIN` goes to the client as is (it already says
    /// "retry later"), while a `MOVED`/`ASK`, which a plain client cannot
    /// follow, is replaced by an error saying what happened.
    fn follow(&self, token: u64, redirect: Redirect<'_>) -> bool {
        let config = &self.worker.shared.config;
        let (budget, max) = match redirect {
            Redirect::TryAgain => (Budget::TryAgain, config.max_tryagain),
            _ => (Budget::Redirects, config.max_redirects),
        };
        let attempt = self.replies.borrow_mut().spend(token, budget, max);
        let Some(attempt) = attempt else {
            if let Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } = redirect {
                let text = redirect::budget_spent(slot, config.max_redirects);
                self.complete_local(token, |out| encode::error(out, text.as_bytes()));
                return true;
            }
            return false;
        };
        match redirect {
            Redirect::Moved { slot, addr } => {
                crate::metrics::redirect("moved");
                self.worker.shared.view.report_moved(slot, addr);
                self.resend(token, addr, false);
            }
            Redirect::Ask { addr, .. } => {
                crate::metrics::redirect("ask");
                self.resend(token, addr, true);
            }
            Redirect::TryAgain => {
                crate::metrics::redirect("tryagain");
                let Some(me) = self.me.upgrade() else {
                    return true;
                };
                let pause = TRYAGAIN_BACKOFF * 2u32.saturating_pow(attempt.min(8) - 1);
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(pause).await;
                    me.restart(token);
                    me.release_held();
                    me.flush();
                });
            }
        }
        true
    }

    /// Sends entry `token` again, to `addr`, the way it went before: on a
    /// dedicated connection if it is the blocking command in flight.
    fn resend(&self, token: u64, addr: &str, asking: bool) {
        if self.sent_lane.get() != SHARED_LANE {
            return self.redirected_on_watch(token, addr, asking);
        }
        let blocking = matches!(*self.blocked.borrow(), Some((t, _)) if t == token);
        if blocking {
            self.block(token, addr.into(), asking);
        } else {
            self.send(token, Ok(self.worker.node(addr)), asking);
        }
    }

    /// Notes the blocking command in flight (or none), also for `CLIENT LIST`.
    fn set_blocked(&self, blocked: Option<(u64, Rc<Abandon>)>) {
        self.client.borrow().record.set_blocked(blocked.is_some());
        *self.blocked.borrow_mut() = blocked;
    }

    /// Entry `token` leaves for dedicated connections: its request,
    /// protocol and session, and the signal that tells those connections
    /// the client left; requests after it are held until it is answered.
    /// `None` when the entry is gone.
    fn start_dedicated(&self, token: u64) -> Option<(Bytes, Protocol, Rc<Session>, Rc<Abandon>)> {
        let (request, proto, me) = self.pending(token)?;
        let abandon = Rc::new(Abandon::default());
        self.set_blocked(Some((token, abandon.clone())));
        Some((request, proto, me, abandon))
    }

    /// Answers entry `token` with the error for no dedicated connection
    /// left (`backend.max_blocking_connections`).
    fn refuse_dedicated(&self, token: u64) {
        self.set_blocked(None);
        let text = self.worker.blocking.exhausted();
        self.complete_local(token, |out| encode::error(out, text.as_bytes()));
    }

    /// Runs entry `token` on a dedicated connection to `addr` (see
    /// [`crate::backend::blocking`]); its reply comes back through
    /// `deliver`, so redirects are followed as for any request.
    fn block(&self, token: u64, addr: Arc<str>, asking: bool) {
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
                Ok(BlockingOutcome::Reply(reply)) => {
                    // Done blocking (unless a redirect starts it again).
                    me.set_blocked(None);
                    me.deliver(token, Ok(reply));
                    Session::flush(&me);
                }
                Ok(BlockingOutcome::Abandoned(Some(reply))) => {
                    me.give_back(&addr, &request, &reply)
                }
                Ok(BlockingOutcome::Abandoned(None)) => {}
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
    fn give_back(&self, addr: &str, request: &Bytes, reply: &Bytes) {
        let limits = self.worker.shared.config.limits;
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

    /// Routes entry `token` again from scratch and starts it (after
    /// `TRYAGAIN`, or when it was held). Entries already answered are skipped.
    fn restart(&self, token: u64) {
        if self.transactions.borrow().find(token).is_some() {
            return self.restart_transaction(token);
        }
        let Some(raw) = self
            .replies
            .borrow()
            .request(token)
            .map(|(raw, _)| raw.clone())
        else {
            return;
        };
        // The bytes parsed once already; this cannot fail, but if it did the
        // client must still get an answer.
        let Some(request) = Request::reparse(&raw, self.worker.shared.config.limits) else {
            let text = b"ERR keyway could not route this request again; please retry";
            return self.complete_local(token, |out| encode::error(out, text));
        };
        let table = self.worker.commands();
        let target = match router::route(&table, &request) {
            Route::Transaction(..) => {
                drop(table);
                return self.restart_watch(token);
            }
            route => Target::of(route, &request),
        };
        drop(table);
        self.start(token, target);
    }

    /// Sends entry `token` to every master of `topology`; a [`Gather`]
    /// merges the replies into the entry.
    fn fan_out(&self, token: u64, join: Join, topology: &Topology) {
        let masters = topology.nodes().len();
        if masters == 0 {
            return self.complete_local(token, |out| encode::error(out, NO_TOPOLOGY.as_bytes()));
        }
        let Some((request, proto, me)) = self.pending(token) else {
            return;
        };
        let id = self.client.borrow().id;
        let nodes = topology.nodes().iter().map(|n| n.addr.clone()).collect();
        let gather: Rc<dyn ReplyTarget> = Gather::new(me, token, join, proto, nodes);
        for index in 0..masters {
            let conns = self.worker.master(topology, index as NodeIndex);
            if let Err(e) = conns
                .pick(proto, id)
                .send(&request, false, &gather, index as u64)
            {
                gather.deliver(index as u64, Err(e));
            }
        }
    }

    /// Sends entry `token` as one part per slot of its keys; a [`Split`]
    /// joins the replies into the entry.
    fn split(&self, token: u64, plan: Plan, access: Access, topology: &Topology) {
        let Some((_, proto, me)) = self.pending(token) else {
            return;
        };
        if access == Access::Write {
            for part in 0..plan.parts() {
                if let Some(index) = topology.master_of(plan.slot(part)) {
                    self.wrote_to(&topology.nodes()[index as usize].addr);
                }
            }
        }
        let client = self.client.borrow().id;
        Split::start(
            self.worker.clone(),
            me,
            token,
            proto,
            client,
            plan,
            topology,
        );
    }
}

impl Collector for Session {
    fn gathered(&self, token: u64, chunks: Vec<Bytes>) {
        // May run inside `start` (a part failed at once): releasing held
        // requests waits for the flush, which never runs nested.
        let waited = matches!(*self.blocked.borrow(), Some((t, _)) if t == token);
        if waited {
            // `WAIT` is over on every master.
            self.set_blocked(None);
        }
        self.complete_chunks(token, chunks);
    }

    fn flush_gathered(&self) {
        self.release_held();
        Session::flush(self);
    }
}

impl Subscriber for Session {
    fn message(&self, message: &Message<'_>) -> bool {
        if self.broken.get() {
            return false;
        }
        let proto = self.client.borrow().proto;
        self.replies.borrow_mut().push_ready(message.bytes(proto));
        self.enforce_output_limit();
        !self.flush_due.replace(true)
    }

    fn flush(&self) {
        self.flush_due.set(false);
        Session::flush(self);
    }
}

impl ReplyTarget for Session {
    fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>) {
        match reply {
            Ok(reply) => {
                let followed = reply.first() == Some(&b'-')
                    && (redirect::parse(&reply).is_some_and(|r| self.follow(token, r))
                        || (reply.starts_with(b"-NOSCRIPT") && self.reload_script(token)));
                if !followed {
                    self.complete(token, reply);
                }
            }
            Err(e) => {
                if self.sent_lane.get() != SHARED_LANE {
                    self.void_watch();
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

mod dedicated;
mod keyspace;
mod scripts;
mod transactions;
mod wait;

/// The reply while keyway has never reached a cluster node.
pub(super) const NO_TOPOLOGY: &str =
    "CLUSTERDOWN keyway has not reached any cluster node yet; check the seeds in its config (it keeps retrying)";
