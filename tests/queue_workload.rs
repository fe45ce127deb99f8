//! The queue workload of the ops guide, through keyway, with exact
//! accounting: producers `LPUSH` to `task:*` lists while `BRPOP` workers
//! consume; producers `XADD` to `stream:*` while a consumer group reads with
//! `XREADGROUP ... BLOCK`, acknowledges with `XACK`, and a crashed
//! consumer's messages are taken over with `XAUTOCLAIM`/`XCLAIM`. Every
//! message is consumed exactly once and acknowledged; nothing stays pending.

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use support::{poll_until, Cluster, Proxy};

const PER_PRODUCER: usize = 300;
const PRODUCERS: usize = 2;

#[test]
fn brpop_workers_consume_every_task_once() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let lists = ["task:{a}", "task:{b}", "task:{c}"];
    let consumed = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (consumed, done) = (consumed.clone(), done.clone());
            let mut con = proxy.conn();
            std::thread::spawn(move || {
                let mut i = w;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let list = lists[i % lists.len()];
                    let popped: Option<(String, String)> = redis::cmd("BRPOP")
                        .arg(list)
                        .arg(0.2)
                        .query(&mut con)
                        .expect("BRPOP");
                    if let Some((_, task)) = popped {
                        consumed.lock().unwrap().push(task);
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut con = proxy.conn();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let _: () = redis::cmd("LPUSH")
                        .arg(lists[i % lists.len()])
                        .arg(format!("p{p}-{i}"))
                        .query(&mut con)
                        .expect("LPUSH");
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let all = PRODUCERS * PER_PRODUCER;
    poll_until(Duration::from_secs(30), || {
        (consumed.lock().unwrap().len() >= all).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "only {} of {all} tasks consumed",
            consumed.lock().unwrap().len()
        )
    });
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for task in consumed.lock().unwrap().iter() {
        *counts.entry(task.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), all, "every task consumed");
    assert!(counts.values().all(|&n| n == 1), "no task consumed twice");
    let mut con = proxy.conn();
    for list in lists {
        let left: usize = redis::cmd("LLEN").arg(list).query(&mut con).unwrap();
        assert_eq!(left, 0, "{list} drained");
    }
}

/// The ids of a list of stream entries (`[[id, fields], ...]`).
fn ids_of_entries(entries: &Value) -> Vec<String> {
    let Value::Array(items) = entries else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Value::Array(parts) => match parts.first() {
                Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The entry ids of an `XREADGROUP` reply (`[[stream, entries], ...]`, nil
/// on timeout).
fn entry_ids(value: &Value) -> Vec<String> {
    let Value::Array(streams) = value else {
        return Vec::new();
    };
    streams
        .iter()
        .flat_map(|s| match s {
            Value::Array(p) if p.len() == 2 => ids_of_entries(&p[1]),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_consumer_group_acknowledges_every_stream_message_once() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let streams = ["stream:{orders}", "stream:{events}"];
    let mut admin = proxy.conn();
    for s in streams {
        let _: () = redis::cmd("XGROUP")
            .arg(&["CREATE", s, "g", "$", "MKSTREAM"])
            .query(&mut admin)
            .unwrap();
    }
    let produced = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let done = Arc::new(AtomicBool::new(false));

    // A consumer that crashes: reads a batch and never acknowledges it.
    let mut crashed = proxy.conn();
    let producer = {
        let produced = produced.clone();
        let mut con = proxy.conn();
        std::thread::spawn(move || {
            for i in 0..PER_PRODUCER * PRODUCERS {
                let s = streams[i % streams.len()];
                let id: String = redis::cmd("XADD")
                    .arg(s)
                    .arg("*")
                    .arg("n")
                    .arg(i)
                    .query(&mut con)
                    .expect("XADD");
                produced.lock().unwrap().push((s.to_string(), id));
            }
        })
    };
    // Let some messages in, then the crashing consumer takes a batch.
    poll_until(Duration::from_secs(10), || {
        (produced.lock().unwrap().len() >= 20).then_some(())
    })
    .expect("producer started");
    let lost_batch: Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "g", "crashed", "COUNT", "7", "STREAMS", streams[0], ">",
        ])
        .query(&mut crashed)
        .unwrap();
    let stranded = entry_ids(&lost_batch);
    assert!(!stranded.is_empty(), "the crashed consumer read something");
    drop(crashed);

    let consumers: Vec<_> = (0..4)
        .map(|c| {
            let (acked, done) = (acked.clone(), done.clone());
            let mut con = proxy.conn();
            std::thread::spawn(move || {
                let name = format!("c{c}");
                let stream = streams[c % streams.len()];
                while !done.load(Ordering::Relaxed) {
                    let read: Value = redis::cmd("XREADGROUP")
                        .arg(&[
                            "GROUP", "g", &name, "COUNT", "10", "BLOCK", "200", "STREAMS", stream,
                            ">",
                        ])
                        .query(&mut con)
                        .expect("XREADGROUP");
                    for id in entry_ids(&read) {
                        let n: usize = redis::cmd("XACK")
                            .arg(stream)
                            .arg("g")
                            .arg(&id)
                            .query(&mut con)
                            .expect("XACK");
                        assert_eq!(n, 1, "{stream} {id} acknowledged once");
                        acked.lock().unwrap().push((stream.to_string(), id));
                    }
                }
            })
        })
        .collect();
    producer.join().unwrap();
    let all = PER_PRODUCER * PRODUCERS;
    poll_until(Duration::from_secs(30), || {
        (acked.lock().unwrap().len() + stranded.len() >= all).then_some(())
    })
    .unwrap_or_else(|| panic!("{} of {all} acknowledged", acked.lock().unwrap().len()));
    done.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().unwrap();
    }

    // Recovery: XAUTOCLAIM takes over the crashed consumer's messages (idle
    // 0 ms), except one taken with XCLAIM; all are then acknowledged.
    let mut rescuer = proxy.conn();
    let first = stranded[0].clone();
    let claimed: Value = redis::cmd("XCLAIM")
        .arg(&[streams[0], "g", "rescuer", "0", &first])
        .query(&mut rescuer)
        .unwrap();
    assert!(
        matches!(&claimed, Value::Array(items) if items.len() == 1),
        "{claimed:?}"
    );
    let auto: Value = redis::cmd("XAUTOCLAIM")
        .arg(&[streams[0], "g", "rescuer", "0", "0-0", "COUNT", "100"])
        .query(&mut rescuer)
        .unwrap();
    let Value::Array(parts) = &auto else {
        panic!("XAUTOCLAIM reply: {auto:?}")
    };
    let mut rescued = ids_of_entries(&parts[1]);
    rescued.sort();
    let mut want = stranded.clone();
    want.sort();
    assert_eq!(rescued, want, "XAUTOCLAIM took over every stranded message");
    for id in &rescued {
        let n: usize = redis::cmd("XACK")
            .arg(streams[0])
            .arg("g")
            .arg(id)
            .query(&mut rescuer)
            .unwrap();
        assert_eq!(n, 1);
        acked
            .lock()
            .unwrap()
            .push((streams[0].to_string(), id.clone()));
    }

    // Exact accounting.
    let mut produced = produced.lock().unwrap().clone();
    let mut acked = acked.lock().unwrap().clone();
    produced.sort();
    acked.sort();
    assert_eq!(acked.len(), produced.len(), "acknowledged count");
    assert_eq!(acked, produced, "every message acknowledged exactly once");
    for s in streams {
        let pending: Value = redis::cmd("XPENDING")
            .arg(s)
            .arg("g")
            .query(&mut admin)
            .unwrap();
        let Value::Array(summary) = &pending else {
            panic!("XPENDING: {pending:?}")
        };
        assert_eq!(
            summary[0],
            Value::Int(0),
            "{s}: nothing pending ({pending:?})"
        );
    }
}
