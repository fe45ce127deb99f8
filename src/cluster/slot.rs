//! Hash slots: CRC16/XMODEM of the key (or of its `{hash tag}`) mod 16384.

use std::fmt;

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// A hash slot, always `< 16384`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(u16);

impl Slot {
    /// The slot `n`, or `None` when `n >= 16384`.
    pub fn new(n: u16) -> Option<Slot> {
        (n < SLOT_COUNT).then_some(Slot(n))
    }

    /// The slot a key hashes to, honouring the first non-empty `{hash tag}`.
    pub fn of_key(key: &[u8]) -> Slot {
        Slot(crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) & (SLOT_COUNT - 1))
    }

    /// The slot number, for indexing.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The part of `key` that is hashed: the bytes between the first `{` and the
/// next `}` when that is non-empty, else the whole key (Redis Cluster spec).
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.0.
        assert_eq!(Slot::of_key(b"foo").get(), 12182);
        assert_eq!(Slot::of_key(b"bar").get(), 5061);
        assert_eq!(Slot::of_key(b"").get(), 0);
        assert_eq!(Slot::of_key(b"123456789").get(), 12739);
    }

    #[test]
    fn hash_tags_follow_the_spec() {
        assert_eq!(
            Slot::of_key(b"{user1000}.following"),
            Slot::of_key(b"user1000")
        );
        assert_eq!(Slot::of_key(b"foo{}{bar}"), Slot::of_key(b"foo{}{bar}"));
        assert_ne!(Slot::of_key(b"foo{}{bar}"), Slot::of_key(b"bar"));
        assert_eq!(Slot::of_key(b"foo{{bar}}zap"), Slot::of_key(b"{bar"));
        assert_eq!(Slot::of_key(b"foo{bar}{zap}"), Slot::of_key(b"bar"));
        assert_eq!(Slot::of_key(b"no}tag{"), Slot::of_key(b"no}tag{"));
    }

    #[test]
    fn new_rejects_out_of_range() {
        assert!(Slot::new(16383).is_some());
        assert!(Slot::new(16384).is_none());
    }
}
