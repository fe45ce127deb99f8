//! Hash slots: CRC16/XMODEM of the key (or of its `{hash tag}`) mod 16384.
//!
//! The CRC takes eight bytes per step ("slicing-by-8") and the tag search
//! uses `memchr`: `Slot::of_key` is about 2x (17-byte key) to 4x (64-byte
//! key) faster than the `crc16` crate's CRC alone, one table lookup per
//! byte (`cargo bench --bench slot`); every request with a key pays it.

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
        Slot(crc16(hash_tag(key)) & (SLOT_COUNT - 1))
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

/// `TABLES[k][b]`: the CRC16/XMODEM register (polynomial 0x1021, MSB first)
/// after byte `b` and then `k` zero bytes, starting from zero.
const TABLES: [[u16; 256]; 8] = tables();

const fn tables() -> [[u16; 256]; 8] {
    let mut t = [[0u16; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// CRC16/XMODEM of `data`, as Redis Cluster's `crc16()`. The CRC is linear,
/// so eight bytes at a time is the XOR of each byte's table entry for its
/// distance from the end of the step, the register folded into the first
/// two bytes.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut steps = data.chunks_exact(8);
    for s in &mut steps {
        let [hi, lo] = crc.to_be_bytes();
        crc = TABLES[7][usize::from(s[0] ^ hi)]
            ^ TABLES[6][usize::from(s[1] ^ lo)]
            ^ TABLES[5][usize::from(s[2])]
            ^ TABLES[4][usize::from(s[3])]
            ^ TABLES[3][usize::from(s[4])]
            ^ TABLES[2][usize::from(s[5])]
            ^ TABLES[1][usize::from(s[6])]
            ^ TABLES[0][usize::from(s[7])];
    }
    for &b in steps.remainder() {
        crc = (crc << 8) ^ TABLES[0][usize::from((crc >> 8) as u8 ^ b)];
    }
    crc
}

/// The part of `key` that is hashed: the bytes between the first `{` and the
/// next `}` when that is non-empty, else the whole key (Redis Cluster spec).
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
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

    proptest::proptest! {
        /// The same CRC as the `crc16` crate's one-byte-per-step XMODEM, at
        /// every length (each remainder after the eight-byte steps).
        #[test]
        fn crc_matches_the_crc16_crate(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            proptest::prop_assert_eq!(
                crc16(&data),
                ::crc16::State::<::crc16::XMODEM>::calculate(&data)
            );
        }

        /// The `{hash tag}` rule on any key, long ones included (where the
        /// search is vectorised): bytes between the first `{` and the next
        /// `}` when non-empty, else the whole key.
        #[test]
        fn hash_tag_matches_a_byte_by_byte_search(key in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(b'{'),
                proptest::prelude::Just(b'}'),
                proptest::prelude::any::<u8>()
            ],
            0..100,
        )) {
            let want = match key.iter().position(|&b| b == b'{') {
                Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
                    Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                    _ => &key[..],
                },
                None => &key[..],
            };
            proptest::prop_assert_eq!(hash_tag(&key), want);
        }
    }

    #[test]
    fn new_rejects_out_of_range() {
        assert!(Slot::new(16383).is_some());
        assert!(Slot::new(16384).is_none());
    }
}
