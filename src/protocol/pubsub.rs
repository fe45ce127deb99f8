//! Pub/sub frames from a node's pub/sub connection (RESP2: every frame
//! is an array whose first two elements are bulk strings, the kind and the
//! channel or pattern). Only those two are located; the rest of the frame
//! is forwarded as it is.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::{find_byte, parse_i64};

/// What a pub/sub frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubKind {
    /// `message channel payload`.
    Message,
    /// `pmessage pattern channel payload`.
    PMessage,
    /// `smessage channel payload`.
    SMessage,
    /// Confirmation of `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE`.
    Subscribed,
    /// Confirmation of an unsubscribe, or (for `sunsubscribe`) a node
    /// dropping a shard channel whose slot moved away.
    Unsubscribed,
}

/// A located pub/sub frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubFrame {
    /// Its kind.
    pub kind: PubSubKind,
    /// Where the channel (for `pmessage`, the pattern) lies in the frame.
    pub topic: Range<usize>,
    /// Where the channel lies: for `pmessage` the one that matched the
    /// pattern, for other kinds the same as `topic`.
    pub channel: Range<usize>,
    /// Whether the kind names a shard channel (`smessage`, `ssubscribe`,
    /// `sunsubscribe`).
    pub shard: bool,
}

/// Locates the kind and topic of a pub/sub frame; `None` for anything else
/// (errors, other replies, malformed frames).
pub fn parse_pubsub(frame: &[u8]) -> Option<PubSubFrame> {
    let rest = frame.strip_prefix(b"*")?;
    let mut at = 1 + find_byte(rest, b'\r')? + 2;
    let kind = bulk_at(frame, &mut at)?;
    let (kind, shard) = match &frame[kind] {
        b"message" => (PubSubKind::Message, false),
        b"pmessage" => (PubSubKind::PMessage, false),
        b"smessage" => (PubSubKind::SMessage, true),
        b"subscribe" | b"psubscribe" => (PubSubKind::Subscribed, false),
        b"ssubscribe" => (PubSubKind::Subscribed, true),
        b"unsubscribe" | b"punsubscribe" => (PubSubKind::Unsubscribed, false),
        b"sunsubscribe" => (PubSubKind::Unsubscribed, true),
        _ => return None,
    };
    let topic = bulk_at(frame, &mut at)?;
    let channel = match kind {
        PubSubKind::PMessage => bulk_at(frame, &mut at)?,
        _ => topic.clone(),
    };
    Some(PubSubFrame {
        kind,
        topic,
        channel,
        shard,
    })
}

/// The payload range of the bulk string at `*at`, advancing `*at` past it.
fn bulk_at(frame: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let rest = frame.get(*at..)?.strip_prefix(b"$")?;
    let cr = find_byte(rest, b'\r')?;
    let len = usize::try_from(parse_i64(&rest[..cr])?).ok()?;
    let start = *at + 1 + cr + 2;
    let end = start.checked_add(len)?;
    (frame.get(end..end + 2)? == b"\r\n").then_some(())?;
    *at = end + 2;
    Some(start..end)
}

/// The RESP3 form of a RESP2 pub/sub frame: the same bytes, as a push
/// (`>`) instead of an array (`*`).
pub fn to_push(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::from(frame);
    if let Some(first) = out.first_mut() {
        *first = b'>';
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_kind_and_topic() {
        let f = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
        let p = parse_pubsub(f).unwrap();
        assert_eq!(
            (p.kind, &f[p.topic], p.shard),
            (PubSubKind::Message, &b"ch"[..], false)
        );
        let f = b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n";
        let p = parse_pubsub(f).unwrap();
        assert_eq!(
            (p.kind, &f[p.topic], &f[p.channel]),
            (PubSubKind::PMessage, &b"c*"[..], &b"ch"[..])
        );
        let f = b"*3\r\n$10\r\nssubscribe\r\n$3\r\n{a}\r\n:1\r\n";
        let p = parse_pubsub(f).unwrap();
        assert_eq!(
            (p.kind, &f[p.topic], p.shard),
            (PubSubKind::Subscribed, &b"{a}"[..], true)
        );
        let f = b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nx\r\n:0\r\n";
        assert_eq!(parse_pubsub(f).unwrap().kind, PubSubKind::Unsubscribed);
    }

    #[test]
    fn anything_else_is_none() {
        for f in [
            &b"-MOVED 1 127.0.0.1:1\r\n"[..],
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
            b"*3\r\n$7\r\nmessage\r\n$9\r\nch\r\n",
            b"*3\r\n$7\r\nmessage\r\n$-1\r\n",
            b"*",
            b"",
        ] {
            assert_eq!(parse_pubsub(f), None, "{:?}", String::from_utf8_lossy(f));
        }
    }

    #[test]
    fn push_form() {
        assert_eq!(
            &to_push(b"*3\r\n$7\r\nmessage\r\n")[..],
            b">3\r\n$7\r\nmessage\r\n"
        );
    }
}
