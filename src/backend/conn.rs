//! One multiplexed, pipelined connection to a node. Sessions append their
//! requests' bytes to a shared output buffer; one writer flushes everything
//! queued with a single write, and one reader splits the reply stream at frame
//! boundaries (no decoding) and hands each reply to the session that waits
//! for it, in FIFO order.
//!
//! A connection speaks one reply protocol: a RESP3 one says `HELLO 3` on
//! every connect ([`super::connect`]) before any request goes out.
//! Out-of-band pushes (RESP3 `>` frames) answer no request and are dropped.
//!
//! Failure of this connection fails only the requests sent on it. The task
//! reconnects with exponential backoff for as long as the node is in use.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::net::Stream;
use crate::protocol::{Protocol, ReplyScanner};
use crate::stats::backends::NodeFigures;
use crate::wake::LocalNotify;

use super::connect::{connect, Cause, ConnectOptions, Step};
use super::node_loss::LossWatch;
use super::settings::{ConnSettings, SettingsSource};
use super::{BackendError, ReplySink};

/// `ASKING`, sent before a request that follows an `-ASK` redirect.
pub(crate) const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

/// Write buffers larger than this are released once written; a read
/// buffer is replaced after a reply larger than this.
const KEEP_BUFFER: usize = 1 << 20;

/// `PING`, sent instead of requests while the node is suspect.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// [`Waiter::token`] bit of the `PING` that checks a suspect node (the
/// rest: the node's losses when it was sent).
const PROBE: u64 = 1 << 63;

/// A request waiting for its reply.
struct Waiter {
    /// `None` for replies keyway discards (the `+OK` to `ASKING`, commands
    /// of its own).
    target: Option<Rc<dyn ReplySink>>,
    token: u64,
    /// When its write batch began filling; the request timeout runs from here.
    queued: Instant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    /// Not connected and not trying now: requests fail at once with this.
    Down(BackendError),
}

struct State {
    link: Link,
    out: BytesMut,
    inflight: VecDeque<Waiter>,
    /// When the first request of the batch now in `out` was queued; the
    /// whole batch shares it (one clock read per batch, not per request).
    batch_started: Instant,
    /// Waiters (at the end of `inflight`) of the requests in `out`, not
    /// yet taken by the writer.
    unwritten: usize,
    /// A `PING` checks whether the suspect node is alive.
    probing: bool,
}

/// Whether a connection comes back after it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// Shared connections: reconnect with backoff while the node is in use.
    Always,
    /// Dedicated connections that hold state on the node (`WATCH`): state
    /// lost with the connection must not look kept, so a failed connection
    /// stays down and every later request fails at once.
    Never,
}

/// A multiplexed connection to one node; see the module docs.
pub struct Conn {
    addr: Arc<str>,
    figures: Arc<NodeFigures>,
    proto: Protocol,
    reconnect: Reconnect,
    state: RefCell<State>,
    /// Whether another connection to the node was lost since this one
    /// knew it alive.
    loss: LossWatch,
    /// Wakes the connection's task (writer and reader share it): requests
    /// were queued, or the connection was retired.
    wake: LocalNotify,
    retired: Cell<bool>,
}

impl Conn {
    /// Creates a connection whose replies come in `proto`, and spawns its
    /// task on the current `LocalSet`. `on_failure` runs whenever the
    /// connection fails (e.g. to ask for a topology refresh).
    pub fn spawn(
        addr: Arc<str>,
        proto: Protocol,
        reconnect: Reconnect,
        settings: SettingsSource,
        on_failure: Rc<dyn Fn()>,
    ) -> Rc<Conn> {
        let settings_now = settings();
        let figures = settings_now.nodes.node(&addr);
        let loss = settings_now.losses.watch(&addr);
        let conn = Rc::new(Conn {
            addr,
            figures,
            proto,
            reconnect,
            state: RefCell::new(State {
                link: Link::Connecting,
                out: BytesMut::new(),
                inflight: VecDeque::new(),
                batch_started: Instant::now(),
                unwritten: 0,
                probing: false,
            }),
            loss,
            wake: LocalNotify::default(),
            retired: Cell::new(false),
        });
        tokio::task::spawn_local(run(conn.clone(), settings, on_failure));
        conn
    }

    /// Queues `request` (complete RESP bytes); its reply goes to
    /// `target.deliver(token, ..)`. With `asking`, `ASKING` goes first.
    /// Fails at once, without queueing, while the node is unreachable.
    pub fn send(
        &self,
        request: &[u8],
        asking: bool,
        target: &Rc<dyn ReplySink>,
        token: u64,
    ) -> Result<(), BackendError> {
        self.queue(request, asking, Some(target.clone()), token, 1)
    }

    /// Queues `request`, several commands that must reach the node back to
    /// back (a transaction: `MULTI`, its commands, `EXEC`), answered by
    /// `replies` replies, which go to `target.deliver(i, ..)` for `i` in
    /// `0..replies`. With `asking`, `ASKING` goes first.
    pub fn send_many(
        &self,
        request: &[u8],
        replies: u32,
        asking: bool,
        target: &Rc<dyn ReplySink>,
    ) -> Result<(), BackendError> {
        self.queue(request, asking, Some(target.clone()), 0, replies)
    }

    /// Queues a command of keyway's own whose reply nobody waits for.
    pub fn send_unanswered(&self, request: &[u8]) -> Result<(), BackendError> {
        self.queue(request, false, None, 0, 1)
    }

    fn queue(
        &self,
        request: &[u8],
        asking: bool,
        target: Option<Rc<dyn ReplySink>>,
        token: u64,
        replies: u32,
    ) -> Result<(), BackendError> {
        let mut state = self.state.borrow_mut();
        if let Link::Down(error) = &state.link {
            return Err(error.clone());
        }
        let was_idle = state.out.is_empty();
        if was_idle {
            state.batch_started = Instant::now();
        }
        let queued = state.batch_started;
        self.figures.sent(u64::from(replies) + u64::from(asking));
        if asking {
            state.out.extend_from_slice(ASKING);
            state.inflight.push_back(Waiter {
                target: None,
                token: 0,
                queued,
            });
        }
        state.out.extend_from_slice(request);
        state.unwritten += replies as usize + usize::from(asking);
        for i in 0..u64::from(replies) {
            state.inflight.push_back(Waiter {
                target: target.clone(),
                token: token + i,
                queued,
            });
        }
        drop(state);
        if was_idle {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Whether the connection is down (between a failure and the next
    /// successful connect): what is sent now fails at once.
    pub fn is_down(&self) -> bool {
        matches!(self.state.borrow().link, Link::Down(_))
    }

    /// Stops the connection once its outstanding requests are answered (the
    /// node left the topology): at once when idle, else after the last
    /// reply. A connection not yet up still connects once to serve what
    /// was queued.
    pub fn retire(&self) {
        self.retired.set(true);
        self.wake.notify_one();
    }

    /// Fails every outstanding request with `error`.
    fn fail_all(&self, error: &BackendError) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.out.clear();
            state.unwritten = 0;
            std::mem::take(&mut state.inflight)
        };
        self.fail(waiters, error);
    }

    /// Fails `waiters` with `error`.
    fn fail(&self, waiters: VecDeque<Waiter>, error: &BackendError) {
        self.figures.failed(waiters.len() as u64);
        let mut targets = Targets::default();
        for waiter in waiters {
            if let Some(target) = waiter.target {
                target.deliver(waiter.token, Err(error.clone()));
                targets.add(&target);
            }
        }
        targets.flush();
    }

    /// Takes the requests queued and not yet written, if they must not be
    /// written now: another connection to the node was lost since this one
    /// knew it alive (see [`super::node_loss`]). A `PING` goes into
    /// `writing` instead (once); the requests are failed as never sent.
    fn hold_back(&self, writing: &mut BytesMut) -> bool {
        if self.reconnect != Reconnect::Always {
            return false;
        }
        let Some(losses) = self.loss.suspect() else {
            return false;
        };
        let unsent = {
            let mut state = self.state.borrow_mut();
            let keep = state.inflight.len() - state.unwritten;
            let unsent = state.inflight.split_off(keep);
            state.out.clear();
            state.unwritten = 0;
            if !state.probing {
                state.probing = true;
                writing.extend_from_slice(PING);
                state.inflight.push_back(Waiter {
                    target: None,
                    token: PROBE | losses,
                    queued: Instant::now(),
                });
            }
            unsent
        };
        debug!(node = %self.addr, requests = unsent.len(), "node suspect: another connection to it was lost; pinging it first");
        self.fail(unsent, &BackendError::Unreachable(self.addr.clone()));
        true
    }

    fn set_link(&self, link: Link) {
        self.state.borrow_mut().link = link;
    }
}

/// A connection that lived at least this long before failing is followed by
/// an immediate reconnect; a shorter one by the growing backoff.
const STABLE: Duration = Duration::from_secs(1);

/// The connection's life: connect, serve until failure, reconnect.
///
/// While connecting, requests queue. A node that refuses connections is
/// `Down` during the backoff: its requests fail at once instead of waiting.
/// A connection that breaks (or times out, or gets a malformed reply) from
/// a node that accepted it is re-opened at once, and requests keep queueing
/// meanwhile, so one bad moment is not turned into a burst of errors.
async fn run(conn: Rc<Conn>, source: SettingsSource, on_failure: Rc<dyn Fn()>) {
    let mut backoff = source().reconnect_min;
    loop {
        let settings = source();
        conn.set_link(Link::Connecting);
        let options = ConnectOptions {
            readonly: settings.readonly,
            ..settings.connect_options(conn.proto)
        };
        let connected = connect(&conn.addr, &options).await;
        let (error, lived) = match connected {
            Ok(stream) => {
                debug!(node = %conn.addr, "backend connected");
                let _open = conn.figures.opened();
                conn.loss.connected();
                conn.state.borrow_mut().probing = false;
                conn.set_link(Link::Up);
                let since = Instant::now();
                let result = tokio::select! {
                    biased;
                    r = write_loop(&conn, &stream) => r,
                    r = read_loop(&conn, &stream, &settings) => r,
                };
                let error = match result {
                    Ok(()) => {
                        // Retired and drained: anything sent now fails at
                        // once instead of waiting for a writer that is gone.
                        conn.set_link(Link::Down(BackendError::Unreachable(conn.addr.clone())));
                        return;
                    }
                    Err(ConnError::Io(e)) => {
                        warn!(node = %conn.addr, error = %e, "backend connection lost");
                        conn.loss.lost();
                        BackendError::Lost(conn.addr.clone())
                    }
                    Err(ConnError::Timeout) => {
                        warn!(node = %conn.addr, timeout = ?settings.request_timeout, "backend did not answer in time; reconnecting");
                        conn.loss.lost();
                        BackendError::Timeout(conn.addr.clone(), settings.request_timeout)
                    }
                    Err(ConnError::BadReply(e)) => {
                        warn!(node = %conn.addr, error = %e, "backend sent a malformed reply; reconnecting");
                        BackendError::BadReply(conn.addr.clone())
                    }
                };
                conn.set_link(Link::Connecting);
                (error, since.elapsed())
            }
            Err(e) => {
                let error = BackendError::of_connect(&conn.addr, &e);
                match e.cause {
                    Cause::TimedOut(timeout) => {
                        warn!(node = %conn.addr, step = %e.step, ?timeout, "backend connect timed out")
                    }
                    // Logged by `connect`, once per node and reason.
                    _ if e.step == Step::Auth => {}
                    cause => {
                        warn!(node = %conn.addr, step = %e.step, error = %cause, "cannot connect to backend")
                    }
                }
                conn.set_link(Link::Down(error.clone()));
                (error, Duration::ZERO)
            }
        };
        crate::metrics::backend_failure(&conn.addr, error.kind());
        conn.fail_all(&error);
        on_failure();
        if conn.retired.get() || conn.reconnect == Reconnect::Never {
            break;
        }
        if lived >= STABLE {
            backoff = settings.reconnect_min;
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(settings.reconnect_max);
        }
        conn.figures.reconnecting();
    }
    conn.set_link(Link::Down(BackendError::Unreachable(conn.addr.clone())));
}

enum ConnError {
    Io(io::Error),
    Timeout,
    BadReply(crate::protocol::ProtocolError),
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

/// Writes whatever is queued, all of it in one write, whenever there is some.
/// Two buffers take turns (sessions fill one while the other is written), so
/// both keep their capacity: no allocation per batch.
async fn write_loop(conn: &Conn, stream: &Stream) -> Result<(), ConnError> {
    let mut writing = BytesMut::new();
    loop {
        let queued = !conn.state.borrow().out.is_empty();
        if queued && !conn.hold_back(&mut writing) {
            let mut state = conn.state.borrow_mut();
            std::mem::swap(&mut state.out, &mut writing);
            state.unwritten = 0;
        }
        if writing.is_empty() {
            conn.wake.notified().await;
            continue;
        }
        stream.write_all(&mut writing).await?;
        if writing.capacity() > KEEP_BUFFER {
            writing = BytesMut::new();
        }
    }
}

/// The distinct targets that got replies from one read, to flush once each.
#[derive(Default)]
struct Targets(Vec<Rc<dyn ReplySink>>);

impl Targets {
    fn add(&mut self, target: &Rc<dyn ReplySink>) {
        // Replies for one client tend to come in runs; a repeat that is not
        // adjacent costs one extra flush that finds nothing to write.
        if !self
            .0
            .last()
            .is_some_and(|last| std::ptr::addr_eq(Rc::as_ptr(last), Rc::as_ptr(target)))
        {
            self.0.push(target.clone());
        }
    }

    fn flush(&mut self) {
        for target in self.0.drain(..) {
            target.flush();
        }
    }
}

/// What woke the reader.
enum ReaderWake {
    /// The socket has data (or an error to report).
    Readable,
    /// The request timer fired.
    Timer,
    /// Retired, and nothing is outstanding.
    Drained,
}

/// Splits replies off the stream and delivers each to its waiter. Also
/// watches the oldest request's age, and ends when a retired connection has
/// nothing outstanding.
///
/// The timer is re-armed only when it fires (at the oldest request's
/// deadline, which only ever moves later), not on every read: it may fire
/// early and look again, never late.
async fn read_loop(conn: &Conn, stream: &Stream, settings: &ConnSettings) -> Result<(), ConnError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scanner = ReplyScanner::new(settings.limits);
    let mut targets = Targets::default();
    let timer = tokio::time::sleep(settings.request_timeout);
    tokio::pin!(timer);
    loop {
        // `retire` wakes this task (reader and writer share it), so the
        // check runs on every wake-up.
        let woke = poll_fn(|cx| {
            if conn.retired.get() && conn.state.borrow().inflight.is_empty() {
                return Poll::Ready(Ok(ReaderWake::Drained));
            }
            if let Poll::Ready(ready) = stream.poll_read_ready(cx) {
                return Poll::Ready(ready.map(|()| ReaderWake::Readable));
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(ReaderWake::Timer)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        match woke {
            ReaderWake::Readable => {}
            ReaderWake::Drained => return Ok(()),
            ReaderWake::Timer => {
                let now = Instant::now();
                let oldest = conn.state.borrow().inflight.front().map(|w| w.queued);
                let deadline = match oldest {
                    Some(queued) if queued + settings.request_timeout <= now => {
                        return Err(ConnError::Timeout)
                    }
                    Some(queued) => queued + settings.request_timeout,
                    None => now + settings.request_timeout,
                };
                timer.as_mut().reset(deadline);
                continue;
            }
        }
        match scanner.awaiting() {
            // Room for a large value at once, exactly: growing by doubling
            // would leave up to half of the allocation unused, and the
            // reply keeps all of it alive until its client has it.
            Some(end) if end > buf.capacity() => buf.reserve(end - buf.len()),
            _ if buf.capacity() - buf.len() < READ_CHUNK / 4 => buf.reserve(READ_CHUNK),
            _ => {}
        }
        match stream.read_some(&mut buf)? {
            None => continue,
            Some(0) => {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "node closed the connection",
                )))
            }
            Some(_) => {}
        }
        // One clock read per read: the round trip of every reply in it.
        let now = Instant::now();
        loop {
            let len = match scanner.scan(&buf) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return Err(ConnError::BadReply(e)),
            };
            let reply = buf.split_to(len).freeze();
            if len > KEEP_BUFFER {
                // The buffer grew for this reply (a master's whole `KEYS`):
                // what follows moves to a fresh one, so that the reply's
                // memory is freed as soon as its client has it.
                let mut rest = BytesMut::with_capacity(READ_CHUNK.max(buf.len()));
                rest.extend_from_slice(&buf);
                buf = rest;
            }
            if reply.first() == Some(&b'>') {
                debug!(node = %conn.addr, "dropped an out-of-band push");
                continue;
            }
            let waiter = conn.state.borrow_mut().inflight.pop_front();
            if let Some(waiter) = &waiter {
                conn.figures
                    .answered(now.saturating_duration_since(waiter.queued));
            }
            match waiter {
                Some(Waiter {
                    target: Some(target),
                    token,
                    ..
                }) => {
                    target.deliver(token, Ok(reply));
                    targets.add(&target);
                }
                Some(Waiter {
                    target: None,
                    token,
                    ..
                }) if token & PROBE != 0 => {
                    conn.loss.alive(token & !PROBE);
                    conn.state.borrow_mut().probing = false;
                }
                Some(Waiter { target: None, .. }) => {}
                None => {
                    return Err(ConnError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "reply without a request",
                    )))
                }
            }
        }
        targets.flush();
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
