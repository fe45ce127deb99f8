//! Who receives a `PUBLISH`, counted as one redis-server counts: its reply
//! is the number of clients that got the message. A node counts only its
//! own subscribers, and each connection of a worker's hub is one of them
//! however many clients it serves; so keyway takes the node's count, takes
//! away its own connections on that node that receive the channel, and
//! adds the clients they deliver to, on every worker. Clients of other
//! keyway processes are counted as the nodes count them: one per hub
//! connection of theirs on that node.
//!
//! Each worker's hub keeps its part up to date ([`HubTopics`], behind a
//! lock only that worker writes); a `PUBLISH` reply reads every worker's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::acl::glob;
use crate::stats::PerWorker;

use super::placement::{is_node_local, Placement};
use super::TopicKind;

/// Every worker's [`HubTopics`].
pub type Census = PerWorker<Mutex<HubTopics>>;

/// One worker's channels and patterns (shard channels are not counted):
/// how many of its clients subscribe each, and where its hub's
/// connections are.
#[derive(Debug, Default)]
pub struct HubTopics {
    channels: HashMap<Bytes, u64>,
    /// Clients per pattern, and where the hub subscribes it (worked out
    /// once, not at every `PUBLISH`).
    patterns: HashMap<Bytes, (u64, Placement)>,
    /// The node of the connection for broadcast channels and patterns.
    any_node: Option<Arc<str>>,
    /// The nodes of the connections to every master.
    every_master: Vec<Arc<str>>,
}

impl HubTopics {
    /// One more (`true`) or one fewer client subscribes `topic`.
    pub fn client(&mut self, kind: TopicKind, topic: &Bytes, subscribed: bool) {
        match kind {
            TopicKind::Channel => count(&mut self.channels, topic, subscribed, |n| n, || 0),
            TopicKind::Pattern => count(
                &mut self.patterns,
                topic,
                subscribed,
                |(n, _)| n,
                || (0, Placement::of(kind, topic)),
            ),
            TopicKind::Shard => {}
        }
    }

    /// Where the hub's connections are now.
    pub fn set_nodes(&mut self, any_node: Option<Arc<str>>, every_master: Vec<Arc<str>>) {
        self.any_node = any_node;
        self.every_master = every_master;
    }

    /// This worker's clients that receive a message on `channel`, and its
    /// hub's subscriptions on `node` that receive it (each counts one at
    /// the node).
    fn receivers(&self, channel: &[u8], node: &str) -> (u64, u64) {
        let on_any_node = self.any_node.as_deref() == Some(node);
        let on_every_master = self.every_master.iter().any(|n| &**n == node);
        let on_node = |placement: Placement| {
            u64::from(placement.on_any_node() && on_any_node)
                + u64::from(placement.on_every_master() && on_every_master)
        };
        let (mut clients, mut own) = (0, 0);
        if let Some(&count) = self.channels.get(channel) {
            clients += count;
            own += if is_node_local(channel) {
                u64::from(on_every_master)
            } else {
                u64::from(on_any_node)
            };
        }
        for (pattern, &(count, placement)) in &self.patterns {
            if glob::matches(pattern, channel) {
                clients += count;
                own += on_node(placement);
            }
        }
        (clients, own)
    }
}

/// One client more or fewer for `topic` in `counts` (whose entry holds
/// the count where `n` says); an entry goes with its last client.
fn count<T>(
    counts: &mut HashMap<Bytes, T>,
    topic: &Bytes,
    subscribed: bool,
    n: impl Fn(&mut T) -> &mut u64,
    new: impl FnOnce() -> T,
) {
    if subscribed {
        *n(counts.entry(topic.clone()).or_insert_with(new)) += 1;
    } else if let Some(entry) = counts.get_mut(topic) {
        *n(entry) -= 1;
        if *n(entry) == 0 {
            counts.remove(topic);
        }
    }
}

/// `PUBLISH channel`'s reply as one redis-server would give it: `counted`,
/// the number of receivers `node` reported, with keyway's own connections
/// there replaced by the clients they deliver to.
pub fn receivers(census: &Census, channel: &[u8], node: &str, counted: i64) -> i64 {
    let (mut clients, mut own) = (0, 0);
    for worker in census.workers().iter() {
        let (c, o) = lock(worker).receivers(channel, node);
        clients += c;
        own += o;
    }
    (counted - own as i64).max(0) + clients as i64
}

/// The lock, also if a thread panicked while holding it (the counts stay
/// usable).
pub fn lock(topics: &Mutex<HubTopics>) -> MutexGuard<'_, HubTopics> {
    topics.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(channels: &[(&str, u64)], patterns: &[(&str, u64)], any: &str) -> HubTopics {
        let mut t = HubTopics::default();
        for (topic, n) in channels {
            for _ in 0..*n {
                t.client(TopicKind::Channel, &Bytes::from(topic.to_string()), true);
            }
        }
        for (topic, n) in patterns {
            for _ in 0..*n {
                t.client(TopicKind::Pattern, &Bytes::from(topic.to_string()), true);
            }
        }
        t.set_nodes(Some(any.into()), vec!["m1".into(), "m2".into()]);
        t
    }

    #[test]
    fn hub_connections_are_replaced_by_the_clients_they_serve() {
        let census = Census::default();
        *lock(&census.for_worker()) = topics(&[("news", 3)], &[("n*", 2), ("x*", 5)], "m1");
        *lock(&census.for_worker()) = topics(&[("news", 1)], &[], "m2");
        // On m1 the node counted worker 1's channel and pattern
        // subscriptions (2) and one other client; keyway's clients: 3 + 2
        // + 1.
        assert_eq!(receivers(&census, b"news", "m1", 3), 1 + 6);
        // On m2 it counted worker 2's channel and one other client.
        assert_eq!(receivers(&census, b"news", "m2", 2), 1 + 6);
        // On a node without keyway's connections the count stands, plus
        // keyway's clients.
        assert_eq!(receivers(&census, b"news", "m3", 4), 4 + 6);
        assert_eq!(receivers(&census, b"other", "m1", 0), 0);
    }

    #[test]
    fn a_pattern_on_both_sides_counts_twice_on_a_node_it_shares() {
        let census = Census::default();
        *lock(&census.for_worker()) = topics(&[], &[("*", 1)], "m1");
        // `*` is subscribed on m1 twice: broadcast and notifications.
        assert_eq!(receivers(&census, b"__keyspace@0__:k", "m1", 2), 1);
        assert_eq!(receivers(&census, b"__keyspace@0__:k", "m2", 1), 1);
    }

    #[test]
    fn the_last_client_out_removes_the_topic() {
        let mut t = HubTopics::default();
        let news = Bytes::from_static(b"news");
        t.client(TopicKind::Channel, &news, true);
        t.client(TopicKind::Channel, &news, false);
        t.client(TopicKind::Channel, &news, false);
        assert!(t.channels.is_empty());
    }
}
