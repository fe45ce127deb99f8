//! Redis Cluster key → slot mapping (CRC16/XMODEM mod 16384, hash tags),
//! computed independently of keyway so tests check it rather than trust it.

use std::sync::OnceLock;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (poly 0x1021, init 0), the checksum Redis Cluster uses.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: only the part between the first `{` and the next `}`
/// is hashed when that part is non-empty.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// A short key (`k<n>`) whose slot is `slot`. Use it as a hash tag,
/// `format!("{{{}}}:suffix", key_for_slot(s))`, for more keys in that slot.
pub fn key_for_slot(slot: u16) -> String {
    static TABLE: OnceLock<Vec<String>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table: Vec<Option<String>> = vec![None; SLOTS as usize];
        let mut missing = SLOTS as usize;
        let mut n = 0u64;
        while missing > 0 {
            let key = format!("k{n}");
            let entry = &mut table[key_slot(key.as_bytes()) as usize];
            if entry.is_none() {
                *entry = Some(key);
                missing -= 1;
            }
            n += 1;
        }
        table.into_iter().map(Option::unwrap).collect()
    });
    assert!(slot < SLOTS, "slot {slot} out of range");
    table[slot as usize].clone()
}
