//! A pub/sub connection: one connection to one node, in subscribed mode,
//! shared by all of a worker's clients that subscribe through it. The
//! worker's pub/sub hub sends one (un)subscribe command per channel or
//! pattern, so every command gets exactly one reply; messages and
//! unsolicited frames come in between and go to the hub as they are.
//!
//! The connection does not reconnect: when it fails, it tells the hub, which
//! subscribes again on whatever node then serves the topics.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{debug, warn};

use crate::net::Stream;
use crate::protocol::pubsub::{parse_pubsub, PubSubFrame, PubSubKind};
use crate::protocol::{encode, Limits, Protocol, ReplyScanner};
use crate::wake::LocalNotify;

use super::connect::connect;
use super::settings::ConnSettings;

/// Receives what a pub/sub connection hears; implemented by the hub.
pub trait PubSubSink {
    /// A message, or a subscription frame the node sent on its own (a
    /// `sunsubscribe` for a shard channel whose slot moved away).
    fn frame(&self, conn: &PubSubConn, frame: Bytes, parsed: PubSubFrame);
    /// The node refused the (un)subscribe command for `topic` (e.g. `-MOVED`
    /// for a shard channel).
    fn refused(&self, conn: &PubSubConn, topic: Bytes, reply: Bytes);
    /// Called after the frames of one read were handed over.
    fn flush(&self);
    /// The connection failed: nothing is subscribed on it any more.
    fn lost(&self, conn: &PubSubConn);
}

/// Runs once every command sent before it was registered is answered.
type Waiter = Box<dyn FnOnce()>;

#[derive(Default)]
struct State {
    out: BytesMut,
    /// The topic of each command sent and not answered yet.
    sent: VecDeque<Bytes>,
    /// Commands sent / answered since the connection was made.
    sent_count: u64,
    answered: u64,
    waiters: VecDeque<(u64, Waiter)>,
}

/// A pub/sub connection; see the module docs.
pub struct PubSubConn {
    addr: Arc<str>,
    state: RefCell<State>,
    wake_writer: LocalNotify,
    closed: Cell<bool>,
    /// Closed by keyway ([`PubSubConn::shut`]), not lost.
    shut: Cell<bool>,
    /// The node accepted it (it may have failed since).
    connected: Cell<bool>,
    stop: LocalNotify,
}

impl PubSubConn {
    /// Opens a pub/sub connection to `addr`; frames go to `sink`.
    pub fn spawn(
        addr: Arc<str>,
        sink: Rc<dyn PubSubSink>,
        settings: ConnSettings,
    ) -> Rc<PubSubConn> {
        let conn = Rc::new(PubSubConn {
            addr,
            state: RefCell::default(),
            wake_writer: LocalNotify::default(),
            closed: Cell::new(false),
            shut: Cell::new(false),
            connected: Cell::new(false),
            stop: LocalNotify::default(),
        });
        let task = conn.clone();
        tokio::task::spawn_local(async move {
            let error = tokio::select! {
                error = task.run(&*sink, &settings) => error,
                () = task.stop.notified() => return task.close(),
            };
            task.close();
            if !task.shut.get() {
                warn!(node = %task.addr, %error, "pub/sub connection lost; subscribing again");
                sink.lost(&task);
            }
        });
        conn
    }

    /// The node's address.
    pub fn addr(&self) -> &Arc<str> {
        &self.addr
    }

    /// False once the connection failed.
    pub fn is_open(&self) -> bool {
        !self.closed.get()
    }

    /// Whether the node accepted the connection (a lost connection that
    /// was: its node failed; one that was not: the node could not be
    /// reached).
    pub fn was_connected(&self) -> bool {
        self.connected.get()
    }

    /// Queues `verb topic` (e.g. `SUBSCRIBE news`).
    pub fn command(&self, verb: &[u8], topic: &Bytes) {
        if self.closed.get() {
            return;
        }
        let mut state = self.state.borrow_mut();
        let was_idle = state.out.is_empty();
        encode::command(&mut state.out, &[verb, topic]);
        state.sent.push_back(topic.clone());
        state.sent_count += 1;
        drop(state);
        if was_idle {
            self.wake_writer.notify_one();
        }
    }

    /// Closes the connection (its node no longer serves what it carries);
    /// the hub is not told, and waiters run.
    pub fn shut(&self) {
        self.shut.set(true);
        self.closed.set(true);
        self.stop.notify_one();
    }

    /// Runs `then` once every command queued so far is answered (or the
    /// connection failed): at once if nothing is outstanding.
    pub fn when_answered(&self, then: Waiter) {
        let mut state = self.state.borrow_mut();
        if self.closed.get() || state.answered >= state.sent_count {
            drop(state);
            return then();
        }
        let until = state.sent_count;
        state.waiters.push_back((until, then));
    }

    /// Marks the connection failed and runs every waiter.
    fn close(&self) {
        self.closed.set(true);
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.sent.clear();
            state.out.clear();
            std::mem::take(&mut state.waiters)
        };
        for (_, waiter) in waiters {
            waiter();
        }
    }

    async fn run(&self, sink: &dyn PubSubSink, settings: &ConnSettings) -> io::Error {
        let options = settings.connect_options(Protocol::Resp2);
        let stream = match connect(&self.addr, &options).await {
            Ok(stream) => stream,
            Err(e) => return io::Error::other(e),
        };
        debug!(node = %self.addr, "pub/sub connection up");
        self.connected.set(true);
        let _open = settings.nodes.node(&self.addr).opened();
        tokio::select! {
            e = self.write_loop(&stream) => e,
            e = self.read_loop(&stream, sink, settings.limits) => e,
        }
    }

    async fn write_loop(&self, stream: &Stream) -> io::Error {
        let mut writing = BytesMut::new();
        loop {
            std::mem::swap(&mut self.state.borrow_mut().out, &mut writing);
            if writing.is_empty() {
                self.wake_writer.notified().await;
                continue;
            }
            if let Err(e) = stream.write_all(&mut writing).await {
                return e;
            }
        }
    }

    async fn read_loop(&self, stream: &Stream, sink: &dyn PubSubSink, limits: Limits) -> io::Error {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut scanner = ReplyScanner::new(limits);
        loop {
            if let Err(e) = stream.readable().await {
                return e;
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            match stream.read_some(&mut buf) {
                Ok(None) => continue,
                Ok(Some(0)) => return io::ErrorKind::UnexpectedEof.into(),
                Ok(Some(_)) => {}
                Err(e) => return e,
            }
            loop {
                let len = match scanner.scan(&buf) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => return io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                };
                let frame = buf.split_to(len).freeze();
                self.on_frame(frame, sink);
            }
            sink.flush();
            self.run_waiters();
        }
    }

    /// Sorts one frame: a message or unsolicited frame goes to the sink; the
    /// reply to the oldest command sent is counted (and, if an error,
    /// reported).
    fn on_frame(&self, frame: Bytes, sink: &dyn PubSubSink) {
        let parsed = parse_pubsub(&frame);
        let is_reply = match &parsed {
            Some(p) if matches!(p.kind, PubSubKind::Subscribed | PubSubKind::Unsubscribed) => {
                let state = self.state.borrow();
                state
                    .sent
                    .front()
                    .is_some_and(|topic| topic[..] == frame[p.topic.clone()])
            }
            Some(_) => false,
            None => true, // an error (or anything else) answers a command
        };
        if !is_reply {
            if let Some(parsed) = parsed {
                sink.frame(self, frame, parsed);
            }
            return;
        }
        let sent = {
            let mut state = self.state.borrow_mut();
            state.answered += 1;
            state.sent.pop_front()
        };
        if parsed.is_none() {
            if let Some(sent) = sent {
                sink.refused(self, sent, frame);
            }
        }
    }

    fn run_waiters(&self) {
        loop {
            let waiter = {
                let mut state = self.state.borrow_mut();
                match state.waiters.front() {
                    Some((until, _)) if *until <= state.answered => state.waiters.pop_front(),
                    _ => None,
                }
            };
            match waiter {
                Some((_, waiter)) => waiter(),
                None => return,
            }
        }
    }
}
