//! The naive hash-slot baseline shared by the slot and route benches: a
//! bitwise CRC16/XMODEM over a hash tag copied into a new `Vec`. Each bench
//! uses only part of it.
#![allow(dead_code)]

/// The baseline: CRC16/XMODEM (poly 0x1021, init 0), one bit at a time.
pub fn naive_crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
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

/// The baseline: the hashed part of `key` copied into a new `Vec`.
pub fn naive_hash_tag(key: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(key);
    if let Some(open) = text.find('{') {
        if let Some(len) = text[open + 1..].find('}') {
            if len > 0 {
                return text[open + 1..open + 1 + len].as_bytes().to_vec();
            }
        }
    }
    key.to_vec()
}

/// The baseline slot: naive hash tag, naive CRC.
pub fn naive_slot(key: &[u8]) -> u16 {
    naive_crc16(&naive_hash_tag(key)) & 0x3fff
}
