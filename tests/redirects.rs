//! How keyway handles what nodes answer instead of a plain reply: `MOVED`,
//! `ASK`, `TRYAGAIN`, redirect loops, slow, malformed and missing replies,
//! and reply order across nodes. The nodes are scripted fakes
//! ([`support::fake_node`]), so each case happens exactly when the test
//! wants it; keyway is the real binary.
//!
//! The harness starts keyway with `--workers 2` (and the flag cannot be
//! given twice), so a fake may see connections from both workers; each test
//! uses one client connection, which stays on one worker.

use crate::support;

use std::time::{Duration, Instant};

use support::fake_node::{same, FakeNode, Reply, SlotMap};
use support::util::TempDir;
use support::{key_slot, poll_until, Proxy, RawClient, Ready};

/// How long keyway may take to learn the fake cluster's map.
const LEARN: Duration = Duration::from_secs(10);

/// Two fake nodes sharing one slot map, keyway in front of them (seeded
/// with A only) and one raw client that has already reached a node.
struct Setup {
    a: FakeNode,
    b: FakeNode,
    map: SlotMap,
    client: RawClient,
    proxy: Proxy,
    _dir: TempDir,
}

impl Setup {
    /// All slots on A, or split in two halves (A: 0-8191, B: 8192-16383).
    /// `config` is the TOML keyway gets with `--config`.
    fn start(split: bool, config: &str) -> Setup {
        let map = SlotMap::default();
        let a = FakeNode::start_with_map(map.clone());
        let b = FakeNode::start_with_map(map.clone());
        if split {
            map.set(&[(0, 8191, &a.addr()), (8192, 16383, &b.addr())]);
        } else {
            map.set(&[(0, 16383, &a.addr())]);
        }
        let dir = TempDir::new("redirects");
        let conf = dir.path().join("keyway.toml");
        std::fs::write(&conf, config).expect("write keyway config");
        let proxy = Proxy::spawn(
            &[a.addr()],
            &["--config", conf.to_str().expect("utf-8 path")],
            Ready::Ping,
        );
        let mut client = proxy.raw_client();
        // Until keyway has the map it answers -CLUSTERDOWN; then the GET
        // reaches a fake, which answers nil.
        let mut last = String::new();
        let reached = poll_until(LEARN, || {
            last = client.cmd(&["GET", "warmup"]);
            (last == "$-1\r\n").then_some(())
        });
        assert!(
            reached.is_some(),
            "keyway never reached the fake nodes; last reply {last:?}\n{}",
            proxy.log_tail(40)
        );
        Setup {
            a,
            b,
            map,
            client,
            proxy,
            _dir: dir,
        }
    }

    fn get(&mut self, key: &str) -> String {
        self.client.cmd(&["GET", key])
    }

    /// Fails if keyway's log shows a panic.
    fn assert_no_panic(&self) {
        let log = self.proxy.log_tail(400);
        assert!(!log.contains("panicked"), "keyway panicked:\n{log}");
    }
}

/// A key whose slot is in `slots`, named `prefix:N`.
fn key_in(prefix: &str, slots: std::ops::RangeInclusive<u16>) -> String {
    (0..100_000)
        .map(|n| format!("{prefix}:{n}"))
        .find(|k| slots.contains(&key_slot(k.as_bytes())))
        .expect("some key hashes into the range")
}

fn assert_starts(reply: &str, prefix: &str, what: &str) {
    assert!(
        reply.starts_with(prefix),
        "{what}: expected a reply starting with {prefix:?}, got {reply:?}"
    );
}

/// MOVED: keyway resends to the new owner, the client sees its reply, and
/// keyway's map follows, so the next request goes straight there.
#[test]
fn moved_is_followed_and_updates_the_map() {
    let mut s = Setup::start(false, "");
    let key = "moved:key";
    let slot = key_slot(key.as_bytes());
    // The slot has moved to B: the cluster's map says so, A redirects.
    s.map.move_slot(slot, &s.b.addr());
    s.a.set_default(key, Reply::moved(slot, &s.b.addr()));
    s.b.set_default(key, Reply::bulk("from-b"));

    assert_eq!(s.get(key), "$6\r\nfrom-b\r\n", "reply after MOVED");
    assert_eq!(s.a.count(&["GET", key]), 1, "A asked once");
    assert_eq!(s.b.count(&["GET", key]), 1, "B asked once");

    // Let keyway's post-MOVED refresh (debounced ~100 ms) run.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get(key), "$6\r\nfrom-b\r\n", "second GET");
    assert_eq!(
        s.a.count(&["GET", key]),
        1,
        "second GET went to A again; A's log: {:?}",
        s.a.log()
    );
    assert_eq!(s.b.count(&["GET", key]), 2, "second GET served by B");
    s.assert_no_panic();
}

/// ASK: keyway sends `ASKING` then the request to the importing node, on
/// one connection, back to back; the map is not changed.
#[test]
fn ask_sends_asking_first_and_keeps_the_map() {
    let mut s = Setup::start(false, "");
    let key = "ask:key";
    let slot = key_slot(key.as_bytes());
    s.a.script(key, [Reply::ask(slot, &s.b.addr())]);
    s.a.set_default(key, Reply::bulk("from-a"));
    s.b.set_default(key, Reply::bulk("from-b"));

    assert_eq!(s.get(key), "$6\r\nfrom-b\r\n", "reply after ASK");
    let conns = s.b.per_conn();
    let on_b: Vec<&Vec<Vec<String>>> = conns
        .iter()
        .filter(|c| c.iter().any(|cmd| same(cmd, &["GET", key])))
        .collect();
    assert_eq!(on_b.len(), 1, "B got the GET on one connection: {conns:?}");
    let cmds = on_b[0];
    let at = cmds
        .iter()
        .position(|cmd| same(cmd, &["GET", key]))
        .expect("GET on B");
    assert!(
        at > 0 && same(&cmds[at - 1], &["ASKING"]),
        "ASKING must immediately precede GET on B's connection: {cmds:?}"
    );

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.get(key), "$6\r\nfrom-a\r\n", "after ASK the slot is A's");
    assert_eq!(s.a.count(&["GET", key]), 2);
    assert_eq!(s.b.count(&["GET", key]), 1);
    s.assert_no_panic();
}

/// TRYAGAIN: retried with backoff within `client.max_tryagain`; past it the
/// client gets the node's `-TRYAGAIN`.
#[test]
fn tryagain_is_retried_within_budget() {
    let mut s = Setup::start(false, "[client]\nmax_tryagain = 2\n");
    let key = "tryagain:key";
    s.a.script(
        key,
        [Reply::tryagain(), Reply::tryagain(), Reply::bulk("ok")],
    );
    assert_eq!(s.get(key), "$2\r\nok\r\n", "reply after two TRYAGAIN");
    assert_eq!(s.a.count(&["GET", key]), 3, "sent once + 2 retries");

    let stuck = "tryagain:stuck";
    s.a.set_default(stuck, Reply::tryagain());
    let reply = s.get(stuck);
    assert_starts(&reply, "-TRYAGAIN", "budget spent");
    assert_eq!(s.a.count(&["GET", stuck]), 3, "sent once + max_tryagain");
    assert_eq!(s.client.cmd(&["PING"]), "+PONG\r\n");
    s.assert_no_panic();
}

/// MOVED back and forth: after `client.max_redirects` (5) the client gets
/// `-TRYAGAIN keyway followed ...`, promptly, and the connection still works.
#[test]
fn redirect_loop_ends_in_an_error() {
    let mut s = Setup::start(false, "");
    let key = "loop:key";
    let slot = key_slot(key.as_bytes());
    s.a.set_default(key, Reply::moved(slot, &s.b.addr()));
    s.b.set_default(key, Reply::moved(slot, &s.a.addr()));

    let started = Instant::now();
    let reply = s.get(key);
    assert_starts(
        &reply,
        &format!("-TRYAGAIN keyway followed 5 MOVED/ASK redirects for slot {slot}"),
        "redirect loop",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let sent = s.a.count(&["GET", key]) + s.b.count(&["GET", key]);
    assert_eq!(sent, 6, "sent once + 5 redirects");
    assert_eq!(s.client.cmd(&["PING"]), "+PONG\r\n", "connection usable");
    assert_eq!(s.get("loop:other"), "$-1\r\n", "other keys still served");
    s.assert_no_panic();
}

/// A pipeline spread over two nodes, the first node slow: replies still
/// come back in request order, each with its own value.
#[test]
fn pipeline_replies_keep_request_order_across_nodes() {
    let mut s = Setup::start(true, "");
    let a1 = key_in("a1", 0..=8191);
    let a2 = key_in("a2", 0..=8191);
    let b1 = key_in("b1", 8192..=16383);
    let b2 = key_in("b2", 8192..=16383);
    s.a.script(
        &a1,
        [Reply::bulk("va1").delayed(Duration::from_millis(300))],
    );
    s.a.set_default(&a2, Reply::bulk("va2"));
    s.b.set_default(&b1, Reply::bulk("vb1"));
    s.b.set_default(&b2, Reply::bulk("vb2"));

    let mut pipeline = Vec::new();
    for k in [&a1, &b1, &a2, &b2] {
        pipeline.extend(support::resp::encode(&[b"GET", k.as_bytes()]));
    }
    let started = Instant::now();
    s.client.send(&pipeline);
    let replies: Vec<String> = (0..4).map(|_| s.client.reply_text()).collect();
    assert_eq!(
        replies,
        [
            "$3\r\nva1\r\n",
            "$3\r\nvb1\r\n",
            "$3\r\nva2\r\n",
            "$3\r\nvb2\r\n"
        ],
        "replies in request order"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "A's delay was not waited for?"
    );
    assert_eq!(s.a.count(&["GET", &b1]) + s.b.count(&["GET", &a1]), 0);
    s.assert_no_panic();
}

/// A reply keyway cannot parse: that request fails with an error naming
/// the node (no hang, no panic) and keyway serves again afterwards.
#[test]
fn malformed_reply_fails_the_request_only() {
    let mut s = Setup::start(false, "");
    let bad = "malformed:key";
    let good = "malformed:other";
    s.a.script(bad, [Reply::raw("?garbage\r\n")]);
    s.a.set_default(good, Reply::bulk("fine"));

    let reply = s.get(bad);
    assert_starts(&reply, "-ERR", "garbage from the node");
    assert!(
        reply.contains(&s.a.addr()),
        "error should name node {}: {reply:?}",
        s.a.addr()
    );

    assert!(
        reply.contains("malformed reply"),
        "error should say the reply was malformed: {reply:?}"
    );

    // keyway reconnects at once (requests queue meanwhile): the very next
    // request is served, not failed.
    assert_eq!(s.get(good), "$4\r\nfine\r\n");
    assert_eq!(s.get(bad), "$-1\r\n", "the bad key works again too");
    s.assert_no_panic();
}

/// A node whose connection closes after a request reached it: a read is
/// sent again (safe to repeat) and answered; a write fails, saying it may
/// have run (it may have, before the node died).
#[test]
fn a_read_lost_with_its_connection_is_sent_again_a_write_fails_clearly() {
    let mut s = Setup::start(false, "");
    let key = "lost:key";
    s.a.script(key, [Reply::close()]);
    s.a.set_default(key, Reply::bulk("fine"));

    assert_eq!(s.get(key), "$4\r\nfine\r\n", "the read went again");
    assert_eq!(s.a.count(&["GET", key]), 2);

    s.a.script(key, [Reply::close()]);
    let reply = s.client.cmd(&["SET", key, "v"]);
    assert_starts(
        &reply,
        "-ERR keyway lost the connection to node",
        "a lost write",
    );
    assert!(
        reply.contains("may or may not have run") && reply.contains(&s.a.addr()),
        "{reply}"
    );
    assert_eq!(
        s.a.count(&["SET", key, "v"]),
        1,
        "a write is never sent twice"
    );
    s.assert_no_panic();
}

/// A node that never answers: after `backend.request_timeout_ms` the client
/// gets an error; keyway reconnects and serves once the node answers.
#[test]
fn silent_node_times_out_then_recovers() {
    let mut s = Setup::start(false, "[backend]\nrequest_timeout_ms = 500\n");
    let key = "timeout:key";
    s.a.script(key, [Reply::hang()]);
    s.a.set_default(key, Reply::bulk("late"));

    let started = Instant::now();
    let reply = s.get(key);
    let took = started.elapsed();
    assert_starts(
        &reply,
        &format!(
            "-ERR keyway got no reply from node {} within 500 ms",
            s.a.addr()
        ),
        "silent node",
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(10),
        "timed out after {took:?}"
    );

    // keyway reconnects at once: the next request is served.
    assert_eq!(s.get(key), "$4\r\nlate\r\n");
    s.assert_no_panic();
}
