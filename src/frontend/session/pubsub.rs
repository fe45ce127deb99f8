//! A client's pub/sub: `(P|S)SUBSCRIBE` / `(P|S)UNSUBSCRIBE` through the
//! worker's hub ([`crate::pubsub`]), messages queued between replies, and
//! the output limit that disconnects a subscriber reading too slowly.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;

use crate::backend::pubsub_conn::PubSubConn;
use crate::frontend::client_errors::{self, ClientError};
use crate::protocol::Request;
use crate::pubsub::{Message, Subscriber, TopicKind};

use super::super::subscriptions::confirmation;
use super::Session;

impl Session {
    /// `(P|S)SUBSCRIBE` / `(P|S)UNSUBSCRIBE`: updates the client's
    /// subscriptions and the worker's hub, and answers with one confirmation
    /// per topic. A subscription new to the worker is confirmed once its
    /// node confirmed it, so a message published after the client's
    /// confirmation cannot be missed; the last one out of a topic once its
    /// node confirmed the unsubscribe, so a `PUBLISH` after it no longer
    /// counts it.
    pub(super) fn subscription(&self, name: &str, request: &Request) {
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
        let mut wait_on: Vec<Rc<PubSubConn>> = Vec::new();
        let mut client = self.client.borrow_mut();
        let (id, proto) = (client.id, client.proto);
        let mut scratch = self.scratch.borrow_mut();
        if subscribe {
            for topic in &topics {
                if client.subscriptions.insert(kind, topic) {
                    let subscriber: Rc<dyn Subscriber> = me.clone();
                    wait_for(&mut wait_on, hub.subscribe(kind, topic, id, subscriber));
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
                    wait_for(&mut wait_on, hub.unsubscribe(kind, topic, id));
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
        if wait_on.is_empty() {
            self.replies.borrow_mut().push_ready(reply);
            return;
        }
        // Confirmed once every node it went to confirmed.
        let token = self.replies.borrow_mut().push_pending(Bytes::new(), proto);
        let left = Rc::new(Cell::new(wait_on.len()));
        for conn in wait_on {
            let (me, reply, left) = (me.clone(), reply.clone(), left.clone());
            conn.when_answered(Box::new(move || {
                left.set(left.get() - 1);
                if left.get() == 0 {
                    me.complete(token, reply);
                    me.release_held();
                    me.flush();
                }
            }));
        }
    }

    /// Drops every subscription of this client (`RESET`, or it left).
    pub(super) fn unsubscribe_all(&self) {
        let id = self.client.borrow().id;
        let topics = self.client.borrow_mut().subscriptions.clear();
        self.client.borrow().record.set_subscriptions([0; 3]);
        for (kind, topic) in topics {
            self.worker.hub.unsubscribe(kind, &topic, id);
        }
    }

    /// Disconnects a subscriber whose unsent output passed the hard limit,
    /// or stayed over the soft limit too long.
    pub(super) fn enforce_output_limit(&self) {
        let (limit, max_memory) = {
            let live = self.worker.live();
            (live.pubsub_output_limit, live.max_memory)
        };
        let pending = self.replies.borrow().ready_bytes() + self.io.out.borrow().len();
        if let Some(max) = max_memory.filter(|_| self.io.write_blocked.get()) {
            self.count_buffered(pending, max);
        }
        let over = if pending > limit.hard {
            true
        } else if pending > limit.soft {
            let since = self
                .io
                .over_soft_limit
                .get()
                .unwrap_or_else(std::time::Instant::now);
            self.io.over_soft_limit.set(Some(since));
            since.elapsed() >= limit.soft_for
        } else {
            self.io.over_soft_limit.set(None);
            false
        };
        if over {
            let peer = self.client.borrow().record.peer;
            let detail = format!("{pending} bytes unsent");
            client_errors::log(ClientError::SlowSubscriber, peer, &detail);
            crate::metrics::slow_subscriber_closed();
            self.io.broken.set(true);
            self.io.writer.notify_one();
        }
    }
}

/// Adds `conns` to the connections to wait on, each once.
fn wait_for(wait_on: &mut Vec<Rc<PubSubConn>>, conns: Vec<Rc<PubSubConn>>) {
    for conn in conns {
        if !wait_on.iter().any(|c| Rc::ptr_eq(c, &conn)) {
            wait_on.push(conn);
        }
    }
}

impl Subscriber for Session {
    fn message(&self, message: &Message<'_>) -> bool {
        if self.io.broken.get() {
            return false;
        }
        let proto = self.client.borrow().proto;
        self.replies.borrow_mut().push_ready(message.bytes(proto));
        self.enforce_output_limit();
        !self.io.flush_due.replace(true)
    }

    fn flush(&self) {
        self.io.flush_due.set(false);
        Session::flush(self);
    }
}
