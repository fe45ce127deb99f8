//! Parser benches, each beside a naive baseline:
//! - requests: keyway's incremental zero-copy parser vs. a parser that
//!   restarts from byte 0 on every read and copies each argument into a
//!   `Vec<u8>` (the approach STYLE.md warns against);
//! - replies: framing with `ReplyScanner` vs. decoding each reply into a
//!   `Value` tree.

use bytes::{Buf, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keyway::protocol::{decode, encode, Limits, ReplyScanner, RequestParser};

/// 1,000 pipelined requests, alternating `SET key:NNN <64 bytes>` and `GET key:NNN`.
fn pipeline() -> Vec<u8> {
    let value = [b'v'; 64];
    let mut buf = BytesMut::new();
    for i in 0..1000 {
        let key = format!("key:{i:03}");
        if i % 2 == 0 {
            encode::command(&mut buf, &[b"SET", key.as_bytes(), &value]);
        } else {
            encode::command(&mut buf, &[b"GET", key.as_bytes()]);
        }
    }
    buf.to_vec()
}

/// One `MSET` with 5,000 key/value pairs: a big frame of many small args.
fn big_mset() -> Vec<u8> {
    let keys: Vec<String> = (0..5000).map(|i| format!("key:{i}")).collect();
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    for k in &keys {
        args.push(k.as_bytes());
        args.push(b"value");
    }
    let mut buf = BytesMut::new();
    encode::command(&mut buf, &args);
    buf.to_vec()
}

/// 1,000 typical replies: `+OK`, a 64-byte bulk, `:1`, a 10-element array.
fn replies() -> Vec<u8> {
    let mut buf = BytesMut::new();
    for i in 0..1000 {
        match i % 4 {
            0 => encode::simple(&mut buf, b"OK"),
            1 => encode::bulk(&mut buf, &[b'v'; 64]),
            2 => encode::integer(&mut buf, 1),
            _ => {
                encode::array_header(&mut buf, 10);
                for j in 0..10 {
                    encode::bulk(&mut buf, format!("member:{j}").as_bytes());
                }
            }
        }
    }
    buf.to_vec()
}

/// The baseline: parses one request from byte 0, copying every argument.
fn naive_request(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(i64, usize)> {
        let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    let (argc, mut at) = line(buf, 0)?;
    let mut args = Vec::new();
    for _ in 0..argc {
        let (len, start) = line(buf, at)?;
        let end = start + len as usize;
        args.push(buf.get(start..end)?.to_vec());
        buf.get(end + 1)?;
        at = end + 2;
    }
    Some((args, at))
}

/// Feeds `input` in `chunk`-byte reads to keyway's parser; returns requests seen.
fn run_keyway(input: &[u8], chunk: usize) -> usize {
    let mut p = RequestParser::new(Limits::default());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(req) = p.parse(&mut buf).unwrap() {
            black_box(req.arg(0));
            n += 1;
        }
    }
    n
}

/// Same with the baseline.
fn run_naive(input: &[u8], chunk: usize) -> usize {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some((args, used)) = naive_request(&buf) {
            black_box(&args[0]);
            buf.advance(used);
            n += 1;
        }
    }
    n
}

fn requests(c: &mut Criterion) {
    let input = pipeline();
    assert_eq!(run_keyway(&input, input.len()), 1000);
    assert_eq!(run_naive(&input, input.len()), 1000);
    let mut g = c.benchmark_group("requests/pipeline_1000");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("keyway/one_read", |b| {
        b.iter(|| run_keyway(&input, input.len()))
    });
    g.bench_function("naive/one_read", |b| {
        b.iter(|| run_naive(&input, input.len()))
    });
    g.bench_function("keyway/4KiB_reads", |b| b.iter(|| run_keyway(&input, 4096)));
    g.bench_function("naive/4KiB_reads", |b| b.iter(|| run_naive(&input, 4096)));
    g.finish();

    let mset = big_mset();
    assert_eq!(run_keyway(&mset, 4096), 1);
    assert_eq!(run_naive(&mset, 4096), 1);
    let mut g = c.benchmark_group("requests/mset_5000_pairs_4KiB_reads");
    g.throughput(Throughput::Bytes(mset.len() as u64));
    g.bench_function("keyway", |b| b.iter(|| run_keyway(&mset, 4096)));
    g.bench_function("naive", |b| b.iter(|| run_naive(&mset, 4096)));
    g.finish();
}

fn reply_scan(c: &mut Criterion) {
    let input = replies();
    let limits = Limits::default();
    let mut g = c.benchmark_group("replies/1000_typical");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("keyway/scan", |b| {
        b.iter(|| {
            let mut s = ReplyScanner::new(limits);
            let (mut at, mut n) = (0, 0);
            while let Some(len) = s.scan(&input[at..]).unwrap() {
                at += len;
                n += 1;
            }
            assert_eq!(n, 1000);
        })
    });
    g.bench_function("naive/decode_to_value", |b| {
        b.iter(|| {
            let (mut at, mut n) = (0, 0);
            while let Some((v, len)) = decode(&input[at..], &limits).unwrap() {
                black_box(v);
                at += len;
                n += 1;
            }
            assert_eq!(n, 1000);
        })
    });
    g.finish();
}

criterion_group!(benches, requests, reply_scan);
criterion_main!(benches);
