//! What one client is subscribed to, and the confirmation frames Redis
//! sends for (un)subscribe commands. Costs one pointer until the client's
//! first subscription.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use crate::protocol::{encode, Protocol};
use crate::pubsub::TopicKind;

/// A client's channels, patterns and shard channels.
#[derive(Debug, Default)]
pub struct Subscriptions(Option<Box<Sets>>);

#[derive(Debug, Default)]
struct Sets {
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shard: HashSet<Bytes>,
}

impl Sets {
    fn of(&mut self, kind: TopicKind) -> &mut HashSet<Bytes> {
        match kind {
            TopicKind::Channel => &mut self.channels,
            TopicKind::Pattern => &mut self.patterns,
            TopicKind::Shard => &mut self.shard,
        }
    }
}

impl Subscriptions {
    /// Adds `topic`; false if the client had it already.
    pub fn insert(&mut self, kind: TopicKind, topic: &Bytes) -> bool {
        self.0
            .get_or_insert_with(Box::default)
            .of(kind)
            .insert(topic.clone())
    }

    /// Removes `topic`; false if the client did not have it.
    pub fn remove(&mut self, kind: TopicKind, topic: &[u8]) -> bool {
        self.0.as_mut().is_some_and(|s| s.of(kind).remove(topic))
    }

    /// Every topic of `kind`.
    pub fn topics(&mut self, kind: TopicKind) -> Vec<Bytes> {
        self.0
            .as_mut()
            .map(|s| s.of(kind).iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The count redis-server shows after an (un)subscribe of `kind`:
    /// channels plus patterns, or shard channels.
    pub fn count(&self, kind: TopicKind) -> usize {
        self.0.as_ref().map_or(0, |s| match kind {
            TopicKind::Shard => s.shard.len(),
            _ => s.channels.len() + s.patterns.len(),
        })
    }

    /// How many channels, patterns and shard channels (`CLIENT LIST`'s
    /// `sub`, `psub`, `ssub`).
    pub fn counts(&self) -> [usize; 3] {
        self.0.as_ref().map_or([0; 3], |s| {
            [s.channels.len(), s.patterns.len(), s.shard.len()]
        })
    }

    /// Whether the client has any subscription (is in subscribed mode).
    pub fn any(&self) -> bool {
        self.0.as_ref().is_some_and(|s| {
            !(s.channels.is_empty() && s.patterns.is_empty() && s.shard.is_empty())
        })
    }

    /// Removes everything, returning what there was.
    pub fn clear(&mut self) -> Vec<(TopicKind, Bytes)> {
        let Some(sets) = self.0.take() else {
            return Vec::new();
        };
        let Sets {
            channels,
            patterns,
            shard,
        } = *sets;
        let tag = |kind: TopicKind| move |t: Bytes| (kind, t);
        channels
            .into_iter()
            .map(tag(TopicKind::Channel))
            .chain(patterns.into_iter().map(tag(TopicKind::Pattern)))
            .chain(shard.into_iter().map(tag(TopicKind::Shard)))
            .collect()
    }
}

/// Appends one confirmation, `[verb, topic, count]`: an array in RESP2, a
/// push in RESP3; a missing topic (unsubscribing with nothing subscribed) is
/// a null.
pub fn confirmation(
    out: &mut BytesMut,
    proto: Protocol,
    verb: &str,
    topic: Option<&[u8]>,
    count: usize,
) {
    encode::push_header(out, proto, 3);
    encode::bulk(out, verb.as_bytes());
    match topic {
        Some(topic) => encode::bulk(out, topic),
        None => encode::null(out, proto),
    }
    encode::integer(out, count as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_redis() {
        let mut s = Subscriptions::default();
        assert!(!s.any());
        let b = |t: &str| Bytes::copy_from_slice(t.as_bytes());
        assert!(s.insert(TopicKind::Channel, &b("a")));
        assert!(!s.insert(TopicKind::Channel, &b("a")));
        assert!(s.insert(TopicKind::Pattern, &b("a*")));
        assert!(s.insert(TopicKind::Shard, &b("s")));
        assert_eq!(
            (s.count(TopicKind::Channel), s.count(TopicKind::Shard)),
            (2, 1)
        );
        assert!(s.remove(TopicKind::Channel, b"a"));
        assert!(!s.remove(TopicKind::Channel, b"a"));
        assert!(s.any());
        let mut all = s.clear();
        all.sort_by(|x, y| x.1.cmp(&y.1));
        assert_eq!(
            all,
            vec![(TopicKind::Pattern, b("a*")), (TopicKind::Shard, b("s"))]
        );
        assert!(!s.any());
    }

    #[test]
    fn confirmation_frames() {
        let mut out = BytesMut::new();
        confirmation(&mut out, Protocol::Resp2, "subscribe", Some(b"ch"), 1);
        confirmation(&mut out, Protocol::Resp3, "unsubscribe", None, 0);
        assert_eq!(
            &out[..],
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n>3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
    }
}
