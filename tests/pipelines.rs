//! Pipelines end to end: long pipelines over every slot keep their order,
//! values are binary-safe and may be large, and many clients at once each
//! see their own data.

use crate::support;

use support::util::raise_nofile_limit;
use support::workload::concurrent_clients;
use support::{key_for_slot, key_slot, Cluster, Proxy, OP_TIMEOUT, SLOTS};

/// A value that names its key, so a reply delivered to the wrong request
/// shows up as a mismatch rather than passing by luck.
fn value_of(key: &str) -> String {
    format!("value-of:{key}")
}

#[test]
fn pipelines_binary_values_and_big_values() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();

    // 10,000 commands in one pipeline: 5,000 SETs spread over all slots,
    // then 5,000 GETs in reverse order; every reply in request order.
    let keys: Vec<String> = (0..5000u32)
        .map(|i| {
            format!(
                "{{{}}}:p{i}",
                key_for_slot(((i * 7919) % SLOTS as u32) as u16)
            )
        })
        .collect();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("SET").arg(k).arg(value_of(k));
    }
    for k in keys.iter().rev() {
        pipe.cmd("GET").arg(k);
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).expect("10,000-command pipeline");
    assert_eq!(replies.len(), 10_000);
    for (i, r) in replies[..5000].iter().enumerate() {
        assert_eq!(*r, redis::Value::Okay, "reply {i} to SET {}", keys[i]);
    }
    for (r, k) in replies[5000..].iter().zip(keys.iter().rev()) {
        let got: String = redis::from_redis_value(r).expect("GET reply is a string");
        assert_eq!(got, value_of(k), "GET {k} got another key's value");
    }

    // One key in each of the 16,384 slots, written and read back in
    // pipelines, and found on the node that owns the slot.
    let slot_keys: Vec<String> = (0..SLOTS).map(key_for_slot).collect();
    for chunk in slot_keys.chunks(4096) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("SET").arg(k).arg(value_of(k)).ignore();
        }
        let () = pipe.query(&mut con).expect("SET pipeline");
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("GET").arg(k);
        }
        let got: Vec<String> = pipe.query(&mut con).expect("GET pipeline");
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v, value_of(k));
        }
    }
    for slot in (0..SLOTS).step_by(1021) {
        let k = key_for_slot(slot);
        let node = cluster.node_of_slot(slot);
        let v: String = redis::cmd("GET")
            .arg(&k)
            .query(&mut cluster.conn(&node))
            .unwrap();
        assert_eq!(v, value_of(&k), "slot {slot} on {node}");
    }

    // Binary-safe keys and values: CR, LF, NUL, RESP look-alikes, all bytes.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"bin:\r\n".to_vec(), b"a\r\nb".to_vec()),
        (b"bin:\0nul\0".to_vec(), b"\0\0\0".to_vec()),
        (
            b"bin:*1\r\n$4\r\nPING\r\n".to_vec(),
            b"+OK\r\n-ERR x\r\n".to_vec(),
        ),
        (b"bin:empty".to_vec(), Vec::new()),
        (all_bytes.clone(), all_bytes.iter().rev().copied().collect()),
    ];
    for (k, v) in &cases {
        let () = redis::cmd("SET").arg(k).arg(v).query(&mut con).unwrap();
    }
    let mut pipe = redis::pipe();
    for (k, _) in &cases {
        pipe.cmd("GET").arg(k);
    }
    let got: Vec<Vec<u8>> = pipe.query(&mut con).unwrap();
    for ((k, v), g) in cases.iter().zip(got) {
        assert_eq!(&g, v, "value of key {:?}", String::from_utf8_lossy(k));
        let node = cluster.node_of_slot(key_slot(k));
        let direct: Vec<u8> = redis::cmd("GET")
            .arg(k)
            .query(&mut cluster.conn(&node))
            .unwrap();
        assert_eq!(&direct, v);
    }

    // A 16 MiB value, then a small command on the same connection.
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let () = redis::cmd("SET")
        .arg("big:16m")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let got: Vec<u8> = redis::cmd("GET").arg("big:16m").query(&mut con).unwrap();
    assert!(
        got == big,
        "16 MiB value came back different ({} bytes)",
        got.len()
    );
    let len: usize = redis::cmd("STRLEN").arg("big:16m").query(&mut con).unwrap();
    assert_eq!(len, big.len());
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn five_hundred_concurrent_clients() {
    raise_nofile_limit();
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut open = concurrent_clients(&proxy.client(), 500, 20, "", OP_TIMEOUT).await;
    // All 500 were connected at once; each still answers.
    assert_eq!(open.len(), 500);
    for con in open.iter_mut().step_by(50) {
        let pong: String = redis::cmd("PING").query_async(con).await.unwrap();
        assert_eq!(pong, "PONG");
    }
}
