//! Hash-slot benches: `Slot::of_key` (CRC16/XMODEM eight bytes per step,
//! hash tag found by slicing) beside a naive baseline that computes the CRC
//! bit by bit and copies the hash tag into a `Vec<u8>`, and beside the
//! `crc16` crate's one-table-lookup-per-byte CRC of the whole key.
//!
//! Keys: `user:1000:profile` (no tag), `{user1000}.following` (tag), and a
//! 64-byte key (no tag).
//!
//!     cargo bench --bench slot
//!     cargo bench --bench slot -- --warm-up-time 1 --measurement-time 2

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keyway::cluster::Slot;

#[path = "support/naive_slot.rs"]
mod naive_slot;
use naive_slot::naive_slot;

fn keys() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("plain_17B", b"user:1000:profile".to_vec()),
        ("tagged_20B", b"{user1000}.following".to_vec()),
        (
            "plain_64B",
            b"session:7f3a9c1e5b2d4068a1c3e5f7b9d02468:user:1000:cart:items:v2".to_vec(),
        ),
    ]
}

fn of_key(c: &mut Criterion) {
    // The baseline agrees with `CLUSTER KEYSLOT` on redis-server 7.0.
    assert_eq!(naive_slot(b"123456789"), 12739);
    assert_eq!(naive_slot(b"foo{}{bar}"), Slot::of_key(b"foo{}{bar}").get());
    for (name, key) in keys() {
        assert!(
            !name.ends_with("64B") || key.len() == 64,
            "{name} is {} bytes",
            key.len()
        );
        assert_eq!(Slot::of_key(&key).get(), naive_slot(&key), "{name}");
        let mut g = c.benchmark_group(format!("slot/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("keyway", |b| b.iter(|| Slot::of_key(black_box(&key))));
        g.bench_function("naive", |b| b.iter(|| naive_slot(black_box(&key))));
        g.bench_function("crc16_crate", |b| {
            b.iter(|| crc16::State::<crc16::XMODEM>::calculate(black_box(&key)) & 0x3fff)
        });
        g.finish();
    }
}

criterion_group!(benches, of_key);
criterion_main!(benches);
