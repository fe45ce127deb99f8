//! One slow or dead node must not hold up the rest: keyway's backend
//! connections are per node, so a stalled master delays (or times out) only
//! the requests sent to it, and a dead master holds (then, past
//! `cluster.failover_hold_ms`, fails) only its own requests, even inside
//! one pipeline.

use crate::support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{key_for_slot, util::TempDir, Cluster, Proxy};

/// A key served by `master`, and one served by another master.
fn keys_on_and_off(cluster: &Cluster, master: &str) -> (String, String) {
    let on = (0..16384u16)
        .find(|&s| cluster.node_of_slot(s) == master)
        .unwrap();
    let off = (0..16384u16)
        .find(|&s| cluster.node_of_slot(s) != master)
        .unwrap();
    (key_for_slot(on), key_for_slot(off))
}

#[test]
fn a_stalled_master_times_out_alone_while_other_shards_keep_serving() {
    let cluster = Cluster::start();
    let dir = TempDir::new("isolation");
    let config = dir.path().join("keyway.toml");
    std::fs::write(&config, "[backend]\nrequest_timeout_ms = 2000\n").unwrap();
    let proxy = Proxy::start_with(&cluster, &["--config", config.to_str().unwrap()]);

    let stalled = cluster.node_of_slot(0);
    let (slow_key, fast_key) = keys_on_and_off(&cluster, &stalled);
    let mut con = proxy.conn();
    let () = redis::cmd("SET")
        .arg(&slow_key)
        .arg("before")
        .query(&mut con)
        .unwrap();

    // The slow client's worker has its connection to the master open
    // already: a connection opened during the stall would not complete
    // (keyway awaits READONLY), and its requests would be held, not timed out.
    let mut slow_con = support::cluster::connect(&proxy.addr(), Duration::from_secs(10)).unwrap();
    let before: Option<String> = redis::cmd("GET")
        .arg(&slow_key)
        .query(&mut slow_con)
        .unwrap();
    assert_eq!(before.as_deref(), Some("before"));

    // The stalled master stops processing commands for 5 s: longer than
    // keyway's request timeout.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(5000)
        .arg("ALL")
        .query(&mut cluster.conn(&stalled))
        .unwrap();

    let (events, seen) = mpsc::channel();
    let slow = {
        let events = events.clone();
        let slow_key = slow_key.clone();
        std::thread::spawn(move || {
            let mut con = slow_con;
            let sent = Instant::now();
            let reply: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&slow_key).query(&mut con);
            events.send("slow done").unwrap();
            (reply, sent.elapsed())
        })
    };
    // While the slow GET waits, another client works on another shard.
    for i in 0..100 {
        let () = redis::cmd("SET")
            .arg(&fast_key)
            .arg(i)
            .query(&mut con)
            .unwrap();
        let v: i64 = redis::cmd("GET").arg(&fast_key).query(&mut con).unwrap();
        assert_eq!(v, i);
    }
    events.send("fast done").unwrap();

    let (reply, waited) = slow.join().unwrap();
    let err = reply.expect_err("the stalled master's GET should time out in keyway");
    // The timer runs from when the request was queued: the error comes after
    // about 2 s, not as late as a second timeout period.
    assert!(
        waited < Duration::from_millis(3500),
        "the timeout fired late: after {waited:?}"
    );
    assert!(
        err.to_string().contains("no reply from node") && err.to_string().contains("2000 ms"),
        "timeout error should name the node and the timeout: {err}"
    );
    assert_eq!(
        seen.recv().unwrap(),
        "fast done",
        "the other shard waited for the stalled one"
    );

    // Once the node answers again, keyway reconnects and serves it.
    let back = support::poll_until(Duration::from_secs(10), || {
        redis::cmd("GET")
            .arg(&slow_key)
            .query::<Option<String>>(&mut con)
            .ok()
    });
    assert_eq!(
        back.flatten().as_deref(),
        Some("before"),
        "{}",
        proxy.log_tail(30)
    );
}

#[test]
fn a_dead_master_holds_only_its_own_requests_in_a_pipeline() {
    let cluster = Cluster::start();
    // One keyway holds requests for the dead master's slots for longer
    // than the cluster needs to fail over; the other for 500 ms only.
    let patient = Proxy::start_with_config(&cluster, "[cluster]\nfailover_hold_ms = 15000\n");
    let impatient = Proxy::start_with_config(&cluster, "[cluster]\nfailover_hold_ms = 500\n");
    let victim = cluster.node_of_slot(0);
    let (dead_key, live_key) = keys_on_and_off(&cluster, &victim);
    let mut con = patient.conn();
    let () = redis::cmd("SET")
        .arg(&live_key)
        .arg("alive")
        .query(&mut con)
        .unwrap();

    cluster.kill_node(&victim);
    let get = |key: &str| support::resp::encode(&[b"GET", key.as_bytes()]);
    // Past the hold, only the dead master's request fails, naming its slot.
    let mut raw = impatient.raw_client();
    raw.send(
        &[
            get(&live_key),
            get(&dead_key),
            get(&live_key),
            support::resp::encode(&[b"PING"]),
        ]
        .concat(),
    );
    assert_eq!(raw.reply_text(), "$5\r\nalive\r\n");
    let dead = raw.reply_text();
    assert!(
        dead.starts_with("-CLUSTERDOWN keyway held the request for ")
            && dead.contains(" ms and no master for slot 0 answered"),
        "the dead master's request should fail with a clear error: {dead:?}"
    );
    assert_eq!(raw.reply_text(), "$5\r\nalive\r\n");
    assert_eq!(raw.reply_text(), "+PONG\r\n");

    // Within the hold, the pipeline waits for the replica to take over and
    // is answered whole, in order: the write to the dead master's slot
    // before the read of it.
    let mut raw = support::resp::RawClient::connect(&patient.addr(), Duration::from_secs(20));
    raw.send(
        &[
            get(&live_key),
            support::resp::encode(&[b"SET", dead_key.as_bytes(), b"after"]),
            get(&dead_key),
            get(&live_key),
        ]
        .concat(),
    );
    assert_eq!(raw.reply_text(), "$5\r\nalive\r\n");
    assert_eq!(
        raw.reply_text(),
        "+OK\r\n",
        "\n--- keyway log ---\n{}",
        patient.log_tail(20)
    );
    assert_eq!(raw.reply_text(), "$5\r\nafter\r\n");
    assert_eq!(raw.reply_text(), "$5\r\nalive\r\n");
}
