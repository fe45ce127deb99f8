//! Pipelines keep working while slots move: several clients send pipelines
//! of writes and reads over keys in the slots being resharded (so replies
//! inside one pipeline come back through MOVED and ASK), and every reply
//! must be the right one, in order, with no error.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{key_for_slot, Cluster, Proxy};

/// Pipelines per client: writes of fresh values, then reads of them.
const PIPELINE: usize = 100;

#[test]
fn pipelines_over_moving_slots_get_every_reply_in_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let from = cluster.node_of_slot(0);
    let to = cluster.masters().into_iter().find(|m| *m != from).unwrap();
    // redis-cli reshard moves the source's lowest slots first.
    let moving: Vec<u16> = cluster.slots_of(&from).into_iter().take(300).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let addr = proxy.addr();
            let stop = stop.clone();
            let tags: Vec<String> = moving.iter().map(|&s| key_for_slot(s)).collect();
            std::thread::spawn(move || -> (u64, Vec<String>) {
                let mut con = support::cluster::connect(&addr, support::OP_TIMEOUT).unwrap();
                let mut errors = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(300);
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                    && errors.len() < 10
                {
                    let keys: Vec<String> = (0..PIPELINE)
                        .map(|i| {
                            format!(
                                "{{{}}}:p{c}:{i}",
                                tags[(round as usize * 7 + i) % tags.len()]
                            )
                        })
                        .collect();
                    let mut pipe = redis::pipe();
                    for (i, k) in keys.iter().enumerate() {
                        pipe.cmd("SET").arg(k).arg(format!("{round}:{i}")).ignore();
                    }
                    for k in &keys {
                        pipe.cmd("GET").arg(k);
                    }
                    match pipe.query::<Vec<Option<String>>>(&mut con) {
                        Ok(values) => {
                            for (i, v) in values.iter().enumerate() {
                                let want = format!("{round}:{i}");
                                if v.as_deref() != Some(want.as_str()) {
                                    errors.push(format!(
                                        "round {round}: GET {} = {v:?}, want {want}",
                                        keys[i]
                                    ));
                                }
                            }
                        }
                        Err(e) => {
                            errors.push(format!("round {round}: {e}"));
                            con = support::cluster::connect(&addr, support::OP_TIMEOUT).unwrap();
                        }
                    }
                    round += 1;
                }
                (round, errors)
            })
        })
        .collect();

    // Let every client get going, move the slots, keep going a little.
    std::thread::sleep(Duration::from_millis(300));
    cluster.reshard(moving.len() as u16, &from, &to);
    assert_eq!(cluster.node_of_slot(moving[moving.len() - 1]), to);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);

    let mut rounds = 0;
    for client in clients {
        let (done, errors) = client.join().unwrap();
        assert!(
            errors.is_empty(),
            "client-visible errors while resharding:\n{}\n--- keyway log ---\n{}",
            errors.join("\n"),
            proxy.log_tail(20)
        );
        rounds += done;
    }
    assert!(
        rounds >= 8,
        "clients made too little progress: {rounds} pipelines"
    );
}
