//! One client connection. The reader parses requests and dispatches each to a
//! node (or answers it locally); every request takes a place in an ordered
//! queue; replies fill their places as they arrive from any node, and the
//! writer flushes every ready reply at the queue's front in one write. So a
//! pipeline stays a pipeline, spread over all shards, with replies in order.
//!
//! Redirects (`MOVED`, `ASK`, `TRYAGAIN`) are followed here, within budgets,
//! before the reply takes its place.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

use crate::backend::pool::NodeConns;
use crate::backend::{BackendError, ReplyTarget};
use crate::cluster::redirect::{self, Redirect};
use crate::cluster::Slot;
use crate::net;
use crate::protocol::{encode, Request, RequestParser};
use crate::router::{self, Route};
use crate::worker::Worker;

use super::local::{self, ClientInfo, Outcome};

/// Smallest free space offered to a read; the buffer is allocated on the
/// first read, so idle clients cost no buffer.
const READ_RESERVE: usize = 4096;
/// Output buffers larger than this are released after a flush.
const KEEP_OUTPUT: usize = 1 << 20;
/// Ready replies are written before the rest of the pipeline is answered
/// once they reach this size; below it, one write per pipeline is cheaper.
const EARLY_WRITE: usize = 64 * 1024;
/// How long a closing session may take to flush its last replies.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(5);
/// First pause before retrying after `-TRYAGAIN`; doubles per retry.
const TRYAGAIN_BACKOFF: Duration = Duration::from_millis(5);

/// Serves one client until it leaves.
pub async fn serve(worker: Rc<Worker>, stream: TcpStream, peer: SocketAddr) {
    let id = worker.shared.next_client_id();
    let session = Rc::new_cyclic(|me| Session {
        me: me.clone(),
        client: RefCell::new(ClientInfo::new(id, peer)),
        worker,
        stream,
        queue: RefCell::new(Queue {
            entries: VecDeque::new(),
            waiting: 0,
            held: 0,
            front_token: 0,
        }),
        out: RefCell::new(BytesMut::new()),
        write_blocked: Cell::new(false),
        broken: Cell::new(false),
        writer: Notify::new(),
        space: Notify::new(),
        closing: Cell::new(false),
        sent_epoch: Cell::new(0),
        scratch: RefCell::new(BytesMut::new()),
    });
    debug!(id, %peer, "client connected");
    session.run().await;
    debug!(id, %peer, "client disconnected");
}

/// A place in the reply order.
struct Entry {
    /// The reply, once known.
    reply: Option<Bytes>,
    /// The request, kept while it may have to be sent again (redirects).
    request: Option<Request>,
    redirects: u32,
    tryagains: u32,
    /// Not sent yet: waits behind requests sent under an older slot map.
    held: bool,
}

struct Queue {
    entries: VecDeque<Entry>,
    /// Entries still without a reply (sent or held).
    waiting: usize,
    /// Entries held back (see [`Session::start`]).
    held: usize,
    /// Token of `entries[0]`; tokens count requests since the session began.
    front_token: u64,
}

impl Queue {
    fn index(&self, token: u64) -> Option<usize> {
        let i = token.checked_sub(self.front_token)? as usize;
        (i < self.entries.len()).then_some(i)
    }
}

/// Where to send a request.
enum Target<'a> {
    Slot(Slot),
    AnyMaster,
    Node(&'a str, bool),
}

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
    stream: TcpStream,
    client: RefCell<ClientInfo>,
    queue: RefCell<Queue>,
    /// Replies taken from the queue and not yet written.
    out: RefCell<BytesMut>,
    /// Set when the socket took less than offered: the writer task waits
    /// for it to drain; flushes leave the rest to it meanwhile.
    write_blocked: Cell<bool>,
    /// Set when writing failed: the client is gone.
    broken: Cell<bool>,
    /// Wakes the writer task: writes blocked, failed, or closing.
    writer: Notify,
    /// Woken when replies left the queue (reading may resume).
    space: Notify,
    closing: Cell<bool>,
    /// The slot-map epoch under which the requests in flight were sent.
    sent_epoch: Cell<u64>,
    /// Reused for replies keyway builds itself.
    scratch: RefCell<BytesMut>,
}

impl Session {
    async fn run(self: Rc<Self>) {
        let reader = self.read_loop();
        let writer = self.write_loop();
        tokio::pin!(reader, writer);
        tokio::select! {
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
        loop {
            while self.queue.borrow().entries.len() >= max_pipeline {
                self.space.notified().await;
            }
            if self.stream.readable().await.is_err() {
                return ReadEnd::Gone;
            }
            if buf.capacity() - buf.len() < READ_RESERVE {
                // Doubling keeps a large value's arrival linear in its size.
                buf.reserve(buf.len().max(READ_RESERVE));
            }
            match net::read_some(&self.stream, &mut buf) {
                Ok(None) => continue,
                Ok(Some(0)) | Err(_) => return ReadEnd::Gone,
                Ok(Some(_)) => {}
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
                && self.queue.borrow().entries.is_empty()
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
        let waiting = self.take_ready(&mut out);
        if out.is_empty() || (waiting > 0 && out.len() < EARLY_WRITE && !self.closing.get()) {
            return;
        }
        match net::write_some(&self.stream, &mut out) {
            Ok(true) => {
                if out.capacity() > KEEP_OUTPUT {
                    *out = BytesMut::new();
                }
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

    /// Moves every ready reply at the queue's front into `out`; returns how
    /// many requests still wait for replies.
    fn take_ready(&self, out: &mut BytesMut) -> usize {
        let mut queue = self.queue.borrow_mut();
        let mut taken = 0;
        while let Some(Entry { reply: Some(_), .. }) = queue.entries.front() {
            if let Some(Entry {
                reply: Some(reply), ..
            }) = queue.entries.pop_front()
            {
                out.extend_from_slice(&reply);
            }
            taken += 1;
        }
        queue.front_token += taken;
        if taken > 0 {
            self.space.notify_one();
        }
        queue.waiting
    }

    /// Takes a new request's place in the queue and starts it on its way.
    /// False when the client asked to close (`QUIT`).
    fn submit(&self, request: Request) -> bool {
        let worker = &self.worker;
        let table = worker.shared.view.commands().load();
        let target = match router::route(&table, &request) {
            Route::Slot(slot) => Target::Slot(slot),
            Route::AnyNode => Target::AnyMaster,
            Route::Local(spec) => {
                let mut outcome = Outcome::Reply;
                let reply = self.build_reply(|out| {
                    let mut client = self.client.borrow_mut();
                    outcome =
                        local::execute(spec, &request, &mut client, &worker.shared, &table, out);
                });
                match outcome {
                    Outcome::Forward => Target::AnyMaster,
                    Outcome::Reply | Outcome::Quit => {
                        self.push(Some(reply), None);
                        return outcome != Outcome::Quit;
                    }
                }
            }
            Route::Reject(rejection) => {
                self.push_local(|out| rejection.write_reply(&request, out));
                return true;
            }
        };
        drop(table);
        let token = self.push(None, Some(request));
        self.start(token, target);
        true
    }

    /// Sends a new request, unless the slot map changed while earlier
    /// requests of this client are still in flight: then it is held until
    /// they are answered. Otherwise a read routed by the new map could reach
    /// the slot's new master before a write sent by the old map (and
    /// redirected from there), and read the value the write replaced.
    /// Redis orders one connection's commands; so does keyway.
    fn start(&self, token: u64, target: Target<'_>) {
        let epoch = self.worker.shared.view.topology().load().epoch();
        {
            let mut queue = self.queue.borrow_mut();
            let in_flight = queue.waiting - queue.held - 1;
            if queue.held > 0 || (in_flight > 0 && epoch != self.sent_epoch.get()) {
                if let Some(i) = queue.index(token) {
                    queue.entries[i].held = true;
                    queue.held += 1;
                }
                return;
            }
        }
        self.sent_epoch.set(epoch);
        self.dispatch(token, target);
    }

    /// Sends the held requests, in order, once nothing sent before them is
    /// still in flight.
    fn release_held(&self) {
        loop {
            let tokens = {
                let mut queue = self.queue.borrow_mut();
                if queue.held == 0 || queue.waiting != queue.held {
                    return;
                }
                // Nothing is in flight, so every entry without a reply is a
                // held one; they are sent under the current map.
                queue.held = 0;
                queue.entries.iter_mut().for_each(|e| e.held = false);
                let first = queue.entries.iter().position(|e| e.reply.is_none());
                let end = queue.front_token + queue.entries.len() as u64;
                first.map_or(end, |i| queue.front_token + i as u64)..end
            };
            self.sent_epoch
                .set(self.worker.shared.view.topology().load().epoch());
            // `start` holds them again if the map moves once more meanwhile.
            for token in tokens {
                self.restart(token);
            }
        }
    }

    /// Appends an entry; returns its token.
    fn push(&self, reply: Option<Bytes>, request: Option<Request>) -> u64 {
        let mut queue = self.queue.borrow_mut();
        let token = queue.front_token + queue.entries.len() as u64;
        queue.waiting += usize::from(reply.is_none());
        queue.entries.push_back(Entry {
            reply,
            request,
            redirects: 0,
            tryagains: 0,
            held: false,
        });
        token
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
        self.push(Some(reply), None);
    }

    /// Sends the request of entry `token` to `target`.
    fn dispatch(&self, token: u64, target: Target<'_>) {
        let worker = &self.worker;
        let conns: Result<Rc<NodeConns>, &'static str> = match target {
            Target::Node(addr, _) => Ok(worker.node(addr)),
            Target::Slot(slot) => {
                let topology = worker.shared.view.topology().load();
                match topology.master_of(slot) {
                    Some(index) => Ok(worker.master(&topology, index)),
                    None if topology.epoch() == 0 => Err(NO_TOPOLOGY),
                    None => Err("CLUSTERDOWN Hash slot not served"),
                }
            }
            Target::AnyMaster => {
                let topology = worker.shared.view.topology().load();
                worker.any_master(&topology).ok_or(NO_TOPOLOGY)
            }
        };
        let asking = matches!(target, Target::Node(_, true));
        let sent = match conns {
            Ok(conns) => {
                let queue = self.queue.borrow();
                let (Some(i), Some(me)) = (queue.index(token), self.me.upgrade()) else {
                    return;
                };
                let Some(request) = queue.entries[i].request.as_ref() else {
                    return;
                };
                let me: Rc<dyn ReplyTarget> = me;
                conns.pick().send(request.raw(), asking, &me, token)
            }
            Err(text) => {
                return self.complete_local(token, |out| encode::error(out, text.as_bytes()))
            }
        };
        if let Err(e) = sent {
            self.complete_local(token, |out| e.write_reply(out));
        }
    }

    /// Puts `reply` in place of entry `token`; the next flush sends it.
    fn complete(&self, token: u64, reply: Bytes) {
        let mut queue = self.queue.borrow_mut();
        let Some(i) = queue.index(token) else { return };
        let entry = &mut queue.entries[i];
        if entry.reply.is_none() {
            entry.reply = Some(reply);
            entry.request = None;
            queue.waiting -= 1;
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
        let attempt = {
            let mut queue = self.queue.borrow_mut();
            let Some(i) = queue.index(token) else {
                return true;
            };
            let entry = &mut queue.entries[i];
            if matches!(redirect, Redirect::TryAgain) {
                entry.tryagains += 1;
                (entry.tryagains <= config.max_tryagain).then_some(entry.tryagains)
            } else {
                entry.redirects += 1;
                (entry.redirects <= config.max_redirects).then_some(entry.redirects)
            }
        };
        let Some(attempt) = attempt else {
            if let Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } = redirect {
                let text = format!(
                    "TRYAGAIN keyway followed {} MOVED/ASK redirects for slot {slot} without reaching its master; the cluster is resharding, retry shortly",
                    config.max_redirects
                );
                self.complete_local(token, |out| encode::error(out, text.as_bytes()));
                return true;
            }
            return false;
        };
        match redirect {
            Redirect::Moved { slot, addr } => {
                crate::metrics::redirect("moved");
                self.worker.shared.view.report_moved(slot, addr);
                self.dispatch(token, Target::Node(addr, false));
            }
            Redirect::Ask { addr, .. } => {
                crate::metrics::redirect("ask");
                self.dispatch(token, Target::Node(addr, true));
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

    /// Routes entry `token` again from scratch and starts it (after
    /// `TRYAGAIN`, or when it was held). Entries already answered are skipped.
    fn restart(&self, token: u64) {
        let route = {
            let queue = self.queue.borrow();
            let Some(request) = queue
                .index(token)
                .map(|i| &queue.entries[i])
                .filter(|e| e.reply.is_none())
                .and_then(|e| e.request.as_ref())
            else {
                return;
            };
            let table = self.worker.shared.view.commands().load();
            match router::route(&table, request) {
                Route::Slot(slot) => Target::Slot(slot),
                _ => Target::AnyMaster,
            }
        };
        self.start(token, route);
    }
}

impl ReplyTarget for Session {
    fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>) {
        match reply {
            Ok(reply) => {
                if reply.first() == Some(&b'-') {
                    if let Some(redirect) = redirect::parse(&reply) {
                        if self.follow(token, redirect) {
                            return;
                        }
                    }
                }
                self.complete(token, reply);
            }
            Err(e) => self.complete_local(token, |out| e.write_reply(out)),
        }
        self.release_held();
    }

    fn flush(&self) {
        Session::flush(self);
    }
}

/// The reply while keyway has never reached a cluster node.
const NO_TOPOLOGY: &str =
    "CLUSTERDOWN keyway has not reached any cluster node yet; check the seeds in its config (it keeps retrying)";
