//! A worker's pub/sub hub: every channel, pattern and shard channel its
//! clients subscribe to, each subscribed once on a shared subscriber
//! connection ([`crate::backend::pubsub_conn`]), and the fan-out of each
//! message to the clients that want it.
//!
//! - Plain channels and patterns live on one connection to any master: the
//!   cluster broadcasts `PUBLISH` to every node.
//! - Keyspace and keyevent notification channels, and the patterns that
//!   can match them, live on a connection to every master: each master
//!   announces only its own keys ([`placement`]). These connections follow
//!   the masters as they join, fail over or leave.
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

pub mod census;
pub mod placement;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

use crate::backend::pubsub_conn::{PubSubConn, PubSubSink};
use crate::backend::settings::SettingsSource;
use crate::cluster::{node_for, Access, ClusterView, Slot};
use crate::protocol::pubsub::{to_push, PubSubFrame, PubSubKind};
use crate::protocol::Protocol;
use crate::stats::pubsub::WorkerPubSub;

use census::HubTopics;
use placement::Placement;

/// Longest pause between two tries to subscribe again the topics that
/// have no node, while the slot map stays the same (a new map is tried at
/// once: a failover or a slot move reached it).
const REPAIR_DELAY: Duration = Duration::from_millis(200);

/// How often the slot map is looked at for masters that joined or left,
/// while topics live on every master.
const MASTERS_CHECK: Duration = Duration::from_millis(100);

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

/// One topic: its subscribers (by client id), where it lives, and the one
/// node it is subscribed on when it needs one (`None` while it waits to be
/// subscribed again, or when it lives only on every master).
struct Topic {
    subscribers: Vec<(u64, Rc<dyn Subscriber>)>,
    placement: Placement,
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
    /// A connection to every master, while topics live there.
    every_master: RefCell<HashMap<Arc<str>, Rc<PubSubConn>>>,
    /// How many topics live on every master.
    on_every_master: Cell<usize>,
    /// Whether the task that follows the masters runs.
    following: Cell<bool>,
    /// Subscribers that got messages in the current batch.
    touched: RefCell<Vec<Rc<dyn Subscriber>>>,
    repair_scheduled: Cell<bool>,
    next_node: Cell<usize>,
    figures: Arc<WorkerPubSub>,
    /// This worker's part of the count of `PUBLISH` receivers.
    census: Arc<Mutex<HubTopics>>,
}

impl Hub {
    /// An empty hub for one worker.
    pub fn new(
        view: Arc<ClusterView>,
        settings: SettingsSource,
        figures: Arc<WorkerPubSub>,
        census: Arc<Mutex<HubTopics>>,
    ) -> Rc<Hub> {
        Rc::new_cyclic(|me| Hub {
            me: me.clone(),
            view,
            settings,
            topics: RefCell::default(),
            plain: RefCell::default(),
            shard: RefCell::default(),
            every_master: RefCell::default(),
            on_every_master: Cell::new(0),
            following: Cell::new(false),
            touched: RefCell::default(),
            repair_scheduled: Cell::new(false),
            figures,
            census,
            next_node: Cell::new(0),
        })
    }

    /// Adds client `id` to `topic`. When the topic is new to this worker it
    /// is subscribed where it lives; the connections it is subscribed on
    /// are returned so the caller can wait until their nodes confirmed
    /// (then a message published after the client's confirmation is sure
    /// to arrive).
    pub fn subscribe(
        &self,
        kind: TopicKind,
        topic: &Bytes,
        id: u64,
        subscriber: Rc<dyn Subscriber>,
    ) -> Vec<Rc<PubSubConn>> {
        let key = (kind, topic.clone());
        census::lock(&self.census).client(kind, topic, true);
        let mut topics = self.topics.borrow_mut();
        if let Some(t) = topics.get_mut(&key) {
            t.subscribers.push((id, subscriber));
            let (placement, node) = (t.placement, t.node.clone());
            drop(topics);
            let mut conns: Vec<_> = node
                .and_then(|a| self.conn_for(kind, &a))
                .into_iter()
                .collect();
            if placement.on_every_master() {
                conns.extend(self.every_master_conns());
            }
            return conns;
        }
        drop(topics);
        let placement = Placement::of(kind, topic);
        let conn = match placement {
            Placement::EveryMaster => None,
            _ => self.place(kind, topic, None),
        };
        let node = conn.as_ref().map(|c| c.addr().clone());
        self.figures.topic(kind as usize, true);
        if placement.on_every_master() {
            for conn in self.every_master_conns() {
                conn.command(kind.verb(true), topic);
            }
        }
        self.topics.borrow_mut().insert(
            key,
            Topic {
                subscribers: vec![(id, subscriber)],
                placement,
                node,
            },
        );
        let mut conns: Vec<_> = conn.into_iter().collect();
        if placement.on_every_master() {
            self.on_every_master.set(self.on_every_master.get() + 1);
            // New connections subscribe every such topic, this one too.
            self.follow_masters();
            conns.extend(self.every_master_conns());
        }
        conns
    }

    /// Removes client `id` from `topic`; the last one out unsubscribes the
    /// topic where it lives. Returns the connections an unsubscribe went
    /// out on, so the caller can wait until their nodes confirmed (then a
    /// `PUBLISH` no longer counts the topic there).
    pub fn unsubscribe(&self, kind: TopicKind, topic: &Bytes, id: u64) -> Vec<Rc<PubSubConn>> {
        let key = (kind, topic.clone());
        let mut topics = self.topics.borrow_mut();
        let Some(t) = topics.get_mut(&key) else {
            return Vec::new();
        };
        let before = t.subscribers.len();
        t.subscribers.retain(|(sid, _)| *sid != id);
        if t.subscribers.len() < before {
            census::lock(&self.census).client(kind, topic, false);
        }
        if !t.subscribers.is_empty() {
            return Vec::new();
        }
        let Some(t) = topics.remove(&key) else {
            return Vec::new();
        };
        drop(topics);
        self.figures.topic(kind as usize, false);
        let mut sent = Vec::new();
        if let Some(conn) = t.node.and_then(|addr| self.conn_for(kind, &addr)) {
            conn.command(kind.verb(false), topic);
            sent.push(conn);
        }
        if t.placement.on_every_master() {
            let left = self.on_every_master.get() - 1;
            self.on_every_master.set(left);
            if left == 0 {
                // Nothing lives there any more: close them all.
                for (_, conn) in self.every_master.take() {
                    conn.shut();
                }
                self.report_nodes();
            } else {
                for conn in self.every_master_conns() {
                    conn.command(kind.verb(false), topic);
                    sent.push(conn);
                }
            }
        }
        sent
    }

    /// Subscribes a new topic on the one node that serves it now, other
    /// than `avoid` (a node that just failed); `None` if no node does (the
    /// repair pass tries again).
    fn place(
        &self,
        kind: TopicKind,
        topic: &Bytes,
        avoid: Option<&Arc<str>>,
    ) -> Option<Rc<PubSubConn>> {
        let conn = match kind {
            TopicKind::Channel | TopicKind::Pattern => self.plain_conn(avoid),
            TopicKind::Shard => self.shard_conn(Slot::of_key(topic), avoid),
        };
        match &conn {
            Some(conn) => conn.command(kind.verb(true), topic),
            None => self.schedule_repair(),
        }
        conn
    }

    /// The open connections to every master.
    fn every_master_conns(&self) -> Vec<Rc<PubSubConn>> {
        let conns = self.every_master.borrow();
        conns.values().filter(|c| c.is_open()).cloned().collect()
    }

    /// Makes the connections to every master match the masters of the slot
    /// map: closes those to nodes no longer masters (or failed), opens one
    /// to each master without one, subscribing there every topic that
    /// lives on every master.
    fn sync_masters(&self) {
        if self.on_every_master.get() == 0 {
            return;
        }
        let topology = self.view.topology().load();
        let missing: Vec<Arc<str>> = {
            let mut conns = self.every_master.borrow_mut();
            conns.retain(|addr, conn| {
                let keep = conn.is_open() && topology.is_master(addr);
                if !keep {
                    conn.shut();
                }
                keep
            });
            let masters = topology.nodes().iter().map(|n| &n.addr);
            masters
                .filter(|a| !conns.contains_key(*a))
                .cloned()
                .collect()
        };
        for addr in missing {
            let conn = self.open(addr.clone());
            for ((kind, topic), t) in self.topics.borrow().iter() {
                if t.placement.on_every_master() {
                    conn.command(kind.verb(true), topic);
                }
            }
            self.every_master.borrow_mut().insert(addr, conn);
        }
        self.report_nodes();
    }

    /// Tells the census where this hub's connections are now.
    fn report_nodes(&self) {
        let plain = self.plain.borrow();
        let any_node = plain
            .as_ref()
            .filter(|c| c.is_open())
            .map(|c| c.addr().clone());
        let every_master = self.every_master.borrow().keys().cloned().collect();
        census::lock(&self.census).set_nodes(any_node, every_master);
    }

    /// Starts, unless it runs, the task that keeps a connection to every
    /// master while topics live there: it looks at the slot map every
    /// [`MASTERS_CHECK`] and syncs when it changed.
    fn follow_masters(&self) {
        self.sync_masters();
        if self.following.replace(true) {
            return;
        }
        let Some(hub) = self.me.upgrade() else {
            return;
        };
        tokio::task::spawn_local(async move {
            let mut epoch = hub.view.topology().load().epoch();
            while hub.on_every_master.get() > 0 {
                tokio::time::sleep(MASTERS_CHECK).await;
                let now = hub.view.topology().load().epoch();
                if now != epoch {
                    epoch = now;
                    hub.sync_masters();
                }
            }
            hub.following.set(false);
        });
    }

    /// The open connection a topic placed on `addr` uses, if any.
    fn conn_for(&self, kind: TopicKind, addr: &Arc<str>) -> Option<Rc<PubSubConn>> {
        let conn = match kind {
            TopicKind::Channel | TopicKind::Pattern => self.plain.borrow().clone(),
            TopicKind::Shard => self.shard.borrow().get(addr).cloned(),
        };
        conn.filter(|c| c.is_open() && c.addr() == addr)
    }

    /// The connection for channels and patterns, opened on some master
    /// (other than `avoid` when there is another) if there is none; a new
    /// one gets every channel and pattern subscribed.
    fn plain_conn(&self, avoid: Option<&Arc<str>>) -> Option<Rc<PubSubConn>> {
        if let Some(conn) = self.plain.borrow().as_ref().filter(|c| c.is_open()) {
            return Some(conn.clone());
        }
        let topology = self.view.topology().load();
        let masters = topology.nodes();
        if masters.is_empty() {
            return None;
        }
        // Rotate, so a dead master is not picked again and again.
        let mut i = self.next_node.get() % masters.len();
        if masters.len() > 1 && Some(&masters[i].addr) == avoid {
            i = (i + 1) % masters.len();
        }
        self.next_node.set(i + 1);
        let conn = self.open(masters[i].addr.clone());
        *self.plain.borrow_mut() = Some(conn.clone());
        self.report_nodes();
        let mut topics = self.topics.borrow_mut();
        for ((kind, topic), t) in topics.iter_mut() {
            if *kind != TopicKind::Shard && t.placement.on_any_node() {
                conn.command(kind.verb(true), topic);
                t.node = Some(conn.addr().clone());
            }
        }
        Some(conn)
    }

    /// The connection to the master of `slot`, opened if needed (shard
    /// channels are served by the slot's master: the node choice for a
    /// write); `None` while that is `avoid`, the node that just failed.
    fn shard_conn(&self, slot: Slot, avoid: Option<&Arc<str>>) -> Option<Rc<PubSubConn>> {
        let topology = self.view.topology().load();
        let index = node_for(&topology, slot, Access::Write).ok()?;
        let addr = topology.nodes()[index as usize].addr.clone();
        if Some(&addr) == avoid {
            return None;
        }
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

    /// Subscribes again every topic that is not subscribed on an open
    /// connection, at the next change of the slot map or after
    /// [`REPAIR_DELAY`]; repeats until all are.
    fn schedule_repair(&self) {
        if self.repair_scheduled.replace(true) {
            return;
        }
        let Some(hub) = self.me.upgrade() else {
            return;
        };
        tokio::task::spawn_local(async move {
            hub.view.map_change(REPAIR_DELAY).await;
            hub.repair_scheduled.set(false);
            hub.repair(None);
        });
    }

    /// Places every topic that is not subscribed on an open connection,
    /// on nodes other than `avoid`.
    fn repair(&self, avoid: Option<&Arc<str>>) {
        let keys: Vec<(TopicKind, Bytes)> = self.topics.borrow().keys().cloned().collect();
        for key in keys {
            let placed = self
                .topics
                .borrow()
                .get(&key)
                .map(|t| (t.placement, t.node.clone()));
            let Some((placement, node)) = placed else {
                continue; // unsubscribed meanwhile
            };
            if placement == Placement::EveryMaster {
                continue; // see sync_masters below
            }
            let (kind, topic) = &key;
            if node.is_some_and(|addr| self.conn_for(*kind, &addr).is_some()) {
                continue;
            }
            let conn = self.place(*kind, topic, avoid);
            if let Some(t) = self.topics.borrow_mut().get_mut(&key) {
                t.node = conn.map(|c| c.addr().clone());
            }
        }
        self.sync_masters();
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
            // A pattern on both sides delivers each message from one.
            PubSubKind::PMessage
                if !self.every_master.borrow().is_empty()
                    && !placement::delivers(
                        &frame[parsed.channel],
                        holds(&self.every_master, conn),
                    ) => {}
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
        if holds(&self.shard, conn) {
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
        for conns in [&self.shard, &self.every_master] {
            if holds(conns, conn) {
                conns.borrow_mut().remove(conn.addr());
            }
        }
        self.report_nodes();
        self.view.request_refresh();
        // At once, on another node, when the node failed (not when it
        // could not be reached: that would try dead nodes in turn without
        // pause): a channel can be subscribed on any master, so its
        // messages are lost only for a round trip.
        if conn.was_connected() {
            self.repair(Some(conn.addr()));
        }
        self.schedule_repair();
    }
}

/// Whether `conn` itself (not only a connection to its node) is in `conns`.
fn holds(conns: &RefCell<HashMap<Arc<str>, Rc<PubSubConn>>>, conn: &PubSubConn) -> bool {
    let conns = conns.borrow();
    conns
        .get(conn.addr())
        .is_some_and(|c| std::ptr::eq(Rc::as_ptr(c), conn))
}
