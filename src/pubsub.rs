//! A worker's pub/sub hub: every channel, pattern and shard channel its
//! clients subscribe to, each subscribed once on a shared subscriber
//! connection ([`crate::backend::pubsub_conn`]), and the fan-out of each
//! message to the clients that want it.
//!
//! - Plain channels and patterns live on one connection to any master: the
//!   cluster broadcasts `PUBLISH` to every node.
//! - Shard channels live on a connection to the master of their slot (one
//!   connection per master in use).
//! - When a connection fails, or a node drops a shard channel because its
//!   slot moved, the hub subscribes again on the node that serves the topic
//!   then (after a short pause, so the slot map can catch up). Messages
//!   published in between are missed: Redis pub/sub is at-most-once.
//!
//! A message is forwarded as the node sent it (RESP2) to RESP2 clients, and
//! as a push (the same bytes, `>` for `*`) to RESP3 clients; that copy is
//! made once per message, on first need.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

use crate::backend::conn::SettingsSource;
use crate::backend::pubsub_conn::{PubSubConn, PubSubSink};
use crate::cluster::{node_for, Access, ClusterView, Slot};
use crate::protocol::pubsub::{to_push, PubSubFrame, PubSubKind};
use crate::protocol::Protocol;
use crate::stats::pubsub::WorkerPubSub;

/// Pause before subscribing again after a failure, so that a failover or a
/// slot move has time to reach the slot map.
const REPAIR_DELAY: Duration = Duration::from_millis(200);

/// What a client subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `SUBSCRIBE channel`.
    Channel,
    /// `PSUBSCRIBE pattern`.
    Pattern,
    /// `SSUBSCRIBE shardchannel`.
    Shard,
}

impl TopicKind {
    /// The command that subscribes (`true`) or unsubscribes a topic.
    pub fn verb(self, subscribe: bool) -> &'static [u8] {
        match (self, subscribe) {
            (TopicKind::Channel, true) => b"SUBSCRIBE",
            (TopicKind::Channel, false) => b"UNSUBSCRIBE",
            (TopicKind::Pattern, true) => b"PSUBSCRIBE",
            (TopicKind::Pattern, false) => b"PUNSUBSCRIBE",
            (TopicKind::Shard, true) => b"SSUBSCRIBE",
            (TopicKind::Shard, false) => b"SUNSUBSCRIBE",
        }
    }
}

/// A client that receives messages; implemented by sessions.
pub trait Subscriber {
    /// Queues one message for the client, to be written by
    /// [`Subscriber::flush`]; true if that flush is not already due.
    fn message(&self, message: &Message<'_>) -> bool;
    /// Writes what was queued.
    fn flush(&self);
}

/// A message on its way to subscribers.
pub struct Message<'a> {
    resp2: &'a Bytes,
    resp3: OnceCell<Bytes>,
}

impl Message<'_> {
    /// The message's bytes in `proto`.
    pub fn bytes(&self, proto: Protocol) -> Bytes {
        match proto {
            Protocol::Resp2 => self.resp2.clone(),
            Protocol::Resp3 => self.resp3.get_or_init(|| to_push(self.resp2)).clone(),
        }
    }
}

/// One topic: its subscribers (by client id), and for a shard channel the
/// node it is subscribed on (`None` while it waits to be subscribed again).
struct Topic {
    subscribers: Vec<(u64, Rc<dyn Subscriber>)>,
    node: Option<Arc<str>>,
}

/// A worker's pub/sub state; see the module docs.
pub struct Hub {
    me: Weak<Hub>,
    view: Arc<ClusterView>,
    settings: SettingsSource,
    topics: RefCell<HashMap<(TopicKind, Bytes), Topic>>,
    plain: RefCell<Option<Rc<PubSubConn>>>,
    shard: RefCell<HashMap<Arc<str>, Rc<PubSubConn>>>,
    /// Subscribers that got messages in the current batch.
    touched: RefCell<Vec<Rc<dyn Subscriber>>>,
    repair_scheduled: Cell<bool>,
    next_node: Cell<usize>,
    figures: Arc<WorkerPubSub>,
}

impl Hub {
    /// An empty hub for one worker.
    pub fn new(
        view: Arc<ClusterView>,
        settings: SettingsSource,
        figures: Arc<WorkerPubSub>,
    ) -> Rc<Hub> {
        Rc::new_cyclic(|me| Hub {
            me: me.clone(),
            view,
            settings,
            topics: RefCell::default(),
            plain: RefCell::default(),
            shard: RefCell::default(),
            touched: RefCell::default(),
            repair_scheduled: Cell::new(false),
            figures,
            next_node: Cell::new(0),
        })
    }

    /// Adds client `id` to `topic`. When the topic is new to this worker it
    /// is subscribed on a node; the connection is returned so the caller can
    /// wait until the node confirmed (then a message published after the
    /// client's confirmation is sure to arrive).
    pub fn subscribe(
        &self,
        kind: TopicKind,
        topic: &Bytes,
        id: u64,
        subscriber: Rc<dyn Subscriber>,
    ) -> Option<Rc<PubSubConn>> {
        let key = (kind, topic.clone());
        if let Some(t) = self.topics.borrow_mut().get_mut(&key) {
            t.subscribers.push((id, subscriber));
            return t.node.as_ref().and_then(|addr| self.conn_for(kind, addr));
        }
        let conn = self.place(kind, topic);
        let node = conn.as_ref().map(|c| c.addr().clone());
        self.figures.topic(kind as usize, true);
        self.topics.borrow_mut().insert(
            key,
            Topic {
                subscribers: vec![(id, subscriber)],
                node,
            },
        );
        conn
    }

    /// Removes client `id` from `topic`; the last one out unsubscribes the
    /// topic on its node.
    pub fn unsubscribe(&self, kind: TopicKind, topic: &Bytes, id: u64) {
        let key = (kind, topic.clone());
        let mut topics = self.topics.borrow_mut();
        let Some(t) = topics.get_mut(&key) else {
            return;
        };
        t.subscribers.retain(|(sid, _)| *sid != id);
        if !t.subscribers.is_empty() {
            return;
        }
        let node = topics.remove(&key).and_then(|t| t.node);
        drop(topics);
        self.figures.topic(kind as usize, false);
        if let Some(conn) = node.and_then(|addr| self.conn_for(kind, &addr)) {
            conn.command(kind.verb(false), topic);
        }
    }

    /// Subscribes a new topic on the node that serves it now; `None` if no
    /// node does (the repair pass tries again).
    fn place(&self, kind: TopicKind, topic: &Bytes) -> Option<Rc<PubSubConn>> {
        let conn = match kind {
            TopicKind::Channel | TopicKind::Pattern => self.plain_conn(),
            TopicKind::Shard => self.shard_conn(Slot::of_key(topic)),
        };
        match &conn {
            Some(conn) => conn.command(kind.verb(true), topic),
            None => self.schedule_repair(),
        }
        conn
    }

    /// The open connection a topic placed on `addr` uses, if any.
    fn conn_for(&self, kind: TopicKind, addr: &Arc<str>) -> Option<Rc<PubSubConn>> {
        let conn = match kind {
            TopicKind::Channel | TopicKind::Pattern => self.plain.borrow().clone(),
            TopicKind::Shard => self.shard.borrow().get(addr).cloned(),
        };
        conn.filter(|c| c.is_open() && c.addr() == addr)
    }

    /// The connection for channels and patterns, opened on some master if
    /// there is none; a new one gets every channel and pattern subscribed.
    fn plain_conn(&self) -> Option<Rc<PubSubConn>> {
        if let Some(conn) = self.plain.borrow().as_ref().filter(|c| c.is_open()) {
            return Some(conn.clone());
        }
        let topology = self.view.topology().load();
        let masters = topology.nodes();
        if masters.is_empty() {
            return None;
        }
        // Rotate, so a dead master is not picked again and again.
        let i = self.next_node.get() % masters.len();
        self.next_node.set(i + 1);
        let conn = self.open(masters[i].addr.clone());
        *self.plain.borrow_mut() = Some(conn.clone());
        let mut topics = self.topics.borrow_mut();
        for ((kind, topic), t) in topics.iter_mut() {
            if *kind != TopicKind::Shard {
                conn.command(kind.verb(true), topic);
                t.node = Some(conn.addr().clone());
            }
        }
        Some(conn)
    }

    /// The connection to the master of `slot`, opened if needed (shard
    /// channels are served by the slot's master: the node choice for a
    /// write).
    fn shard_conn(&self, slot: Slot) -> Option<Rc<PubSubConn>> {
        let topology = self.view.topology().load();
        let index = node_for(&topology, slot, Access::Write).ok()?;
        let addr = topology.nodes()[index as usize].addr.clone();
        let existing = self.shard.borrow().get(&addr).cloned();
        if let Some(conn) = existing.filter(|c| c.is_open()) {
            return Some(conn);
        }
        let conn = self.open(addr.clone());
        self.shard.borrow_mut().insert(addr, conn.clone());
        Some(conn)
    }

    fn open(&self, addr: Arc<str>) -> Rc<PubSubConn> {
        let sink: Rc<dyn PubSubSink> = self.me.upgrade().expect("hub is alive");
        PubSubConn::spawn(addr, sink, (self.settings)())
    }

    /// Marks `topic` as no longer subscribed anywhere and repairs soon.
    fn unplace(&self, kind: TopicKind, topic: Bytes) {
        let key = (kind, topic);
        if let Some(t) = self.topics.borrow_mut().get_mut(&key) {
            t.node = None;
        }
        self.view.request_refresh();
        self.schedule_repair();
    }

    /// Subscribes again, after [`REPAIR_DELAY`], every topic that is not
    /// subscribed on an open connection; repeats until all are.
    fn schedule_repair(&self) {
        if self.repair_scheduled.replace(true) {
            return;
        }
        let Some(hub) = self.me.upgrade() else {
            return;
        };
        tokio::task::spawn_local(async move {
            tokio::time::sleep(REPAIR_DELAY).await;
            hub.repair_scheduled.set(false);
            hub.repair();
        });
    }

    fn repair(&self) {
        let keys: Vec<(TopicKind, Bytes)> = self.topics.borrow().keys().cloned().collect();
        for key in keys {
            let placed = self.topics.borrow().get(&key).map(|t| t.node.clone());
            let Some(node) = placed else {
                continue; // unsubscribed meanwhile
            };
            let (kind, topic) = &key;
            if node.is_some_and(|addr| self.conn_for(*kind, &addr).is_some()) {
                continue;
            }
            let conn = self.place(*kind, topic);
            if let Some(t) = self.topics.borrow_mut().get_mut(&key) {
                t.node = conn.map(|c| c.addr().clone());
            }
        }
    }

    /// Hands a message to every subscriber of its topic.
    /// `topic` is a slice of `frame`: looking it up copies nothing.
    fn fan_out(&self, kind: TopicKind, frame: &Bytes, topic: Bytes) {
        let topics = self.topics.borrow();
        let Some(t) = topics.get(&(kind, topic)) else {
            return;
        };
        let message = Message {
            resp2: frame,
            resp3: OnceCell::new(),
        };
        self.figures.message(t.subscribers.len() as u64);
        let mut touched = self.touched.borrow_mut();
        for (_, subscriber) in &t.subscribers {
            if subscriber.message(&message) {
                touched.push(subscriber.clone());
            }
        }
    }
}

impl PubSubSink for Hub {
    fn frame(&self, conn: &PubSubConn, frame: Bytes, parsed: PubSubFrame) {
        let topic = frame.slice(parsed.topic.clone());
        match parsed.kind {
            PubSubKind::Message => self.fan_out(TopicKind::Channel, &frame, topic),
            PubSubKind::PMessage => self.fan_out(TopicKind::Pattern, &frame, topic),
            PubSubKind::SMessage => self.fan_out(TopicKind::Shard, &frame, topic),
            // The node dropped a shard channel: its slot moved.
            PubSubKind::Unsubscribed if parsed.shard => {
                debug!(node = %conn.addr(), "shard channel dropped by its node; subscribing again");
                self.unplace(TopicKind::Shard, topic);
            }
            PubSubKind::Subscribed | PubSubKind::Unsubscribed => {}
        }
    }

    fn refused(&self, conn: &PubSubConn, topic: Bytes, reply: Bytes) {
        debug!(node = %conn.addr(), reply = %String::from_utf8_lossy(&reply).trim_end(), "subscribe refused; subscribing again");
        if self.shard.borrow().get(conn.addr()).is_some() {
            self.unplace(TopicKind::Shard, topic);
        }
    }

    fn flush(&self) {
        // Taken out while flushing, put back to keep its capacity.
        let mut touched = self.touched.take();
        for subscriber in touched.drain(..) {
            subscriber.flush();
        }
        *self.touched.borrow_mut() = touched;
    }

    fn lost(&self, conn: &PubSubConn) {
        {
            let mut shard = self.shard.borrow_mut();
            if shard
                .get(conn.addr())
                .is_some_and(|c| std::ptr::eq(Rc::as_ptr(c), conn))
            {
                shard.remove(conn.addr());
            }
        }
        self.view.request_refresh();
        self.schedule_repair();
    }
}
