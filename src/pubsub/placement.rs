//! Which nodes a topic is subscribed on. `PUBLISH` is broadcast across the
//! cluster, so a channel or pattern needs one node; but keyspace and
//! keyevent notifications (`__keyspace@<db>__:<key>`,
//! `__keyevent@<db>__:<event>`) are node-local: each master announces only
//! its own keys, so they are subscribed on every master. Shard channels
//! live on the master of their slot.

use crate::acl::glob;

use super::TopicKind;

/// The channel prefixes of node-local notifications.
const NODE_LOCAL: [&[u8]; 2] = [b"__keyspace@", b"__keyevent@"];

/// Where a topic is subscribed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On one node, any master (channels, patterns).
    AnyNode,
    /// On every master: a notification channel, or a pattern that matches
    /// only notification channels.
    EveryMaster,
    /// Both: a pattern that matches notification channels and others
    /// (`*`). Each copy delivers only its share (see [`Placement::delivers`]).
    AnyNodeAndEveryMaster,
    /// On the master of the shard channel's slot.
    SlotMaster,
}

impl Placement {
    /// Where `topic` of `kind` is subscribed.
    pub fn of(kind: TopicKind, topic: &[u8]) -> Placement {
        match kind {
            TopicKind::Shard => Placement::SlotMaster,
            TopicKind::Channel if is_node_local(topic) => Placement::EveryMaster,
            TopicKind::Channel => Placement::AnyNode,
            // The prefixes hold no glob byte: a pattern starting with one
            // matches only notification channels.
            TopicKind::Pattern if is_node_local(topic) => Placement::EveryMaster,
            TopicKind::Pattern
                if NODE_LOCAL
                    .iter()
                    .any(|prefix| glob::may_match_with_prefix(topic, prefix)) =>
            {
                Placement::AnyNodeAndEveryMaster
            }
            TopicKind::Pattern => Placement::AnyNode,
        }
    }

    /// Whether it is subscribed on every master.
    pub fn on_every_master(self) -> bool {
        matches!(
            self,
            Placement::EveryMaster | Placement::AnyNodeAndEveryMaster
        )
    }

    /// Whether it is subscribed on the one node for channels and patterns.
    pub fn on_any_node(self) -> bool {
        matches!(self, Placement::AnyNode | Placement::AnyNodeAndEveryMaster)
    }
}

/// Whether a message on `channel`, heard on a connection to every master
/// (`from_every_master`) or on the one for broadcast messages, is this
/// copy's to deliver: notifications come from every master (each its own
/// keys), everything else from the broadcast's one node, so a pattern on
/// both delivers each message once.
pub fn delivers(channel: &[u8], from_every_master: bool) -> bool {
    is_node_local(channel) == from_every_master
}

/// Whether `channel` is a node-local notification channel.
pub fn is_node_local(channel: &[u8]) -> bool {
    NODE_LOCAL.iter().any(|prefix| channel.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::Placement::*;
    use super::*;

    #[test]
    fn notifications_are_subscribed_on_every_master() {
        let of = Placement::of;
        assert_eq!(of(TopicKind::Channel, b"__keyspace@0__:k"), EveryMaster);
        assert_eq!(
            of(TopicKind::Channel, b"__keyevent@0__:expired"),
            EveryMaster
        );
        assert_eq!(of(TopicKind::Channel, b"news"), AnyNode);
        assert_eq!(of(TopicKind::Channel, b"__keys"), AnyNode);
        assert_eq!(of(TopicKind::Pattern, b"__keyevent@*__:*"), EveryMaster);
        assert_eq!(
            of(TopicKind::Pattern, b"__keyspace@0__:user:*"),
            EveryMaster
        );
        for both in ["*", "__key*", "_?keyspace@*", "[_]_keyevent*", "*@0__:*"] {
            assert_eq!(
                of(TopicKind::Pattern, both.as_bytes()),
                AnyNodeAndEveryMaster,
                "{both}"
            );
        }
        for plain in ["news.*", "__keyspace", "_[^_]*", "__key?pace"] {
            assert_eq!(of(TopicKind::Pattern, plain.as_bytes()), AnyNode, "{plain}");
        }
        assert_eq!(of(TopicKind::Shard, b"__keyspace@0__:k"), SlotMaster);
    }

    #[test]
    fn a_pattern_on_both_delivers_each_message_from_one_side() {
        assert!(delivers(b"__keyspace@0__:k", true));
        assert!(!delivers(b"__keyspace@0__:k", false));
        assert!(delivers(b"news", false));
        assert!(!delivers(b"news", true));
    }
}
