//! `WAIT` through keyway: it asks the masters the client wrote to, each on
//! a dedicated connection, after the client's earlier requests are
//! answered, and answers the smallest count; a stalled replica shows in
//! it only when the client wrote to that replica's master. Its timeout is
//! its own (not keyway's request timeout), and a client that leaves while
//! waiting leaves nothing blocked on the nodes.

use crate::support;

use std::time::{Duration, Instant};

use support::{key_for_slot, poll_until, Cluster, Proxy};

/// A key served by `master`.
fn key_on(cluster: &Cluster, master: &str, name: &str) -> String {
    let slot = cluster.slots_of(master)[0];
    format!("{{{}}}:{name}", key_for_slot(slot))
}

/// Stops (SIGSTOP) the replica of `master` until dropped (SIGCONT).
struct Stalled(u32);

impl Stalled {
    fn replica_of(cluster: &Cluster, master: &str) -> Stalled {
        let replica = cluster.replicas_of(master);
        assert_eq!(replica.len(), 1, "{master}: {replica:?}");
        let pid = cluster.pid_of(&replica[0]);
        // SAFETY-free: libc::kill on a child process this test owns.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
        Stalled(pid)
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

#[test]
fn wait_counts_the_replicas_of_the_masters_written_to() {
    let cluster = Cluster::start();
    // WAIT's own timeout applies, not keyway's request timeout.
    let proxy = Proxy::start_with_config(&cluster, "[backend]\nrequest_timeout_ms = 500\n");
    let masters = cluster.masters();
    let mut c = proxy.raw_client();

    // Writes on every master: each has one replica.
    for m in &masters {
        assert_eq!(c.cmd(&["SET", &key_on(&cluster, m, "a"), "1"]), "+OK\r\n");
    }
    assert_eq!(c.cmd(&["WAIT", "1", "2000"]), ":1\r\n");
    let started = Instant::now();
    assert_eq!(
        c.cmd(&["WAIT", "2", "300"]),
        ":1\r\n",
        "only one replica each"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "waited its timeout"
    );
    // In a pipeline, after the writes before it and before what follows.
    let k = key_on(&cluster, &masters[1], "p");
    let mut pipeline = Vec::new();
    for args in [&["SET", &k, "x"][..], &["WAIT", "1", "2000"], &["GET", &k]] {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(support::resp::encode(&args));
    }
    c.send(&pipeline);
    assert_eq!(c.reply_text(), "+OK\r\n");
    assert_eq!(c.reply_text(), ":1\r\n");
    assert_eq!(c.reply_text(), "$1\r\nx\r\n");
    // RESP3 clients get the same integer.
    assert!(c.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(c.cmd(&["WAIT", "1", "2000"]), ":1\r\n");

    // The replica of masters[0] stops. A client that wrote only to
    // masters[1] is not held back by it...
    let stalled = Stalled::replica_of(&cluster, &masters[0]);
    let mut other = proxy.raw_client();
    assert_eq!(
        other.cmd(&["SET", &key_on(&cluster, &masters[1], "b"), "2"]),
        "+OK\r\n"
    );
    assert_eq!(other.cmd(&["WAIT", "1", "3000"]), ":1\r\n");
    // ...until it writes to masters[0]: then its write reached no replica.
    assert_eq!(
        other.cmd(&["SET", &key_on(&cluster, &masters[0], "b"), "2"]),
        "+OK\r\n"
    );
    let started = Instant::now();
    assert_eq!(other.cmd(&["WAIT", "1", "1200"]), ":0\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "not cut by the request timeout"
    );

    // WAIT 1 0 blocks forever; the client leaves: nothing stays blocked.
    let mut leaving = proxy.raw_client();
    assert_eq!(
        leaving.cmd(&["SET", &key_on(&cluster, &masters[0], "c"), "3"]),
        "+OK\r\n"
    );
    leaving.send(&support::resp::encode(&[b"WAIT", b"1", b"0"]));
    let blocked = poll_until(Duration::from_secs(3), || {
        (cluster.blocked_on(&masters[0]) == 1).then_some(())
    });
    assert!(blocked.is_some(), "WAIT blocks on {}", masters[0]);
    drop(leaving);
    let released = poll_until(Duration::from_secs(3), || {
        (cluster.blocked_on(&masters[0]) == 0).then_some(())
    });
    assert!(
        released.is_some(),
        "the dedicated connection closed with its client"
    );
    drop(stalled);
    // Once the replica catches up, the same WAIT succeeds.
    assert_eq!(other.cmd(&["WAIT", "1", "5000"]), ":1\r\n");
}
