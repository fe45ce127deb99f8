//! Pub/sub figures (`keyway_pubsub_*`): topics each worker's hub holds
//! subscribed on the nodes, messages the nodes sent, and copies delivered
//! to clients. Each worker's hub writes its own [`WorkerPubSub`] (one
//! writer, plain adds); a scrape sums the workers'.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{add, PerWorker};

/// The kinds of topic, in [`crate::pubsub::TopicKind`]'s order (its
/// discriminant indexes this).
pub const KINDS: [&str; 3] = ["channel", "pattern", "shard_channel"];

/// One worker's figures; only that worker's thread writes them.
#[derive(Debug, Default)]
pub struct WorkerPubSub {
    topics: [AtomicU64; 3],
    received: AtomicU64,
    delivered: AtomicU64,
}

impl WorkerPubSub {
    /// A topic of kind `kind` (index into [`KINDS`]) was subscribed
    /// (`true`) or unsubscribed on a node.
    pub fn topic(&self, kind: usize, subscribed: bool) {
        let count = &self.topics[kind];
        let now = count.load(Ordering::Relaxed);
        let next = if subscribed {
            now + 1
        } else {
            now.saturating_sub(1)
        };
        count.store(next, Ordering::Relaxed);
    }

    /// A node sent a message that `copies` clients of this worker get.
    #[inline]
    pub fn message(&self, copies: u64) {
        add(&self.received, 1);
        add(&self.delivered, copies);
    }
}

/// Every worker's figures.
pub type PubSubStats = PerWorker<WorkerPubSub>;

/// The figures summed over the workers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PubSubTotals {
    /// Topics subscribed on nodes, by kind (see [`KINDS`]); a topic two
    /// workers' clients want counts twice (each worker subscribes it).
    pub topics: [u64; 3],
    /// Messages received from nodes.
    pub received: u64,
    /// Copies delivered to clients.
    pub delivered: u64,
}

impl PubSubStats {
    /// Every worker's figures summed.
    pub fn totals(&self) -> PubSubTotals {
        let mut t = PubSubTotals::default();
        for w in self.workers().iter() {
            for (total, count) in t.topics.iter_mut().zip(&w.topics) {
                *total += count.load(Ordering::Relaxed);
            }
            t.received += w.received.load(Ordering::Relaxed);
            t.delivered += w.delivered.load(Ordering::Relaxed);
        }
        t
    }

    /// The `keyway_pubsub_*` families in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let t = self.totals();
        out.push_str("# HELP keyway_pubsub_topics Channels, patterns and shard channels keyway's workers hold subscribed on the nodes, by kind.\n# TYPE keyway_pubsub_topics gauge\n");
        for (kind, n) in KINDS.iter().zip(t.topics) {
            let _ = writeln!(out, "keyway_pubsub_topics{{kind=\"{kind}\"}} {n}");
        }
        let _ = write!(
            out,
            "# HELP keyway_pubsub_messages_received_total Pub/sub messages keyway received from the nodes.\n# TYPE keyway_pubsub_messages_received_total counter\nkeyway_pubsub_messages_received_total {}\n",
            t.received
        );
        let _ = write!(
            out,
            "# HELP keyway_pubsub_messages_delivered_total Pub/sub messages keyway queued for subscribed clients (one per client per message).\n# TYPE keyway_pubsub_messages_delivered_total counter\nkeyway_pubsub_messages_delivered_total {}\n",
            t.delivered
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_messages_are_summed_over_workers() {
        let stats = PubSubStats::default();
        let (a, b) = (stats.for_worker(), stats.for_worker());
        a.topic(0, true);
        a.topic(0, true);
        a.topic(0, false);
        b.topic(0, true);
        b.topic(2, true);
        b.topic(1, false);
        a.message(3);
        b.message(0);
        let t = stats.totals();
        assert_eq!(t.topics, [2, 0, 1]);
        assert_eq!((t.received, t.delivered), (2, 3));
        let mut text = String::new();
        stats.render(&mut text);
        assert!(text.contains("keyway_pubsub_topics{kind=\"shard_channel\"} 1\n"));
        assert!(text.contains("keyway_pubsub_messages_delivered_total 3\n"));
    }
}
