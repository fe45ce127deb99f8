//! The fault suite (issue 18): 8 writers (`SET` + `INCR`, every
//! acknowledged increment remembered) and 8 readers run through keyway
//! against a real 3+3 cluster while a fault is injected; each test reports
//! client errors, the longest time a client went without a success, and
//! acknowledged increments the cluster lost (a consistency check in the
//! spirit of Redis's `consistency-test`), and asserts what keyway
//! promises for that fault. A master killed with SIGKILL is in
//! `failover_hold`; resharding under load in `failover`.
//! `benches/faults.sh` runs these tests in a loop for soak runs.

use crate::support;

use std::time::{Duration, Instant};
use support::workload::{assert_no_errors, lost_increments, reader, tags, writer, Seen};
use support::{Background, Cluster, Proxy};

/// The writers and readers of one test.
struct Load {
    writers: Vec<Background<Seen>>,
    readers: Vec<Background<Seen>>,
}

impl Load {
    fn start(proxy: &Proxy, tags: &[String]) -> Load {
        let load = Load {
            writers: (0..8)
                .map(|w| writer(proxy.addr(), w, tags.to_vec()))
                .collect(),
            readers: (0..8)
                .map(|r| reader(proxy.addr(), r, tags.to_vec()))
                .collect(),
        };
        load.progress(100, proxy);
        load
    }

    /// Waits until every client did `n` more rounds.
    fn progress(&self, n: u64, proxy: &Proxy) {
        for client in self.writers.iter().chain(&self.readers) {
            client.wait_progress(n, proxy);
        }
    }

    /// Stops every client; prints one report line for `fault`, with the
    /// acknowledged increments the cluster lost.
    fn stop(self, fault: &str, proxy: &Proxy, tags: &[String]) -> (Vec<Seen>, Vec<Seen>, u64) {
        let writers: Vec<Seen> = self.writers.into_iter().map(Background::stop).collect();
        let readers: Vec<Seen> = self.readers.into_iter().map(Background::stop).collect();
        let lost = lost_increments(&mut proxy.conn(), &writers, tags);
        let errors = |s: &[Seen]| s.iter().map(|s| s.errors.len()).sum::<usize>();
        let gap = |s: &[Seen]| s.iter().map(|s| s.longest_gap).max().unwrap_or_default();
        let ops = |s: &[Seen]| s.iter().map(|s| s.ops).sum::<u64>();
        eprintln!(
            "fault report [{fault}]: writers {} errors in {} rounds (longest wait {:?}), readers {} errors in {} rounds (longest wait {:?}), {lost} acknowledged INCRs lost",
            errors(&writers),
            ops(&writers),
            gap(&writers),
            errors(&readers),
            ops(&readers),
            gap(&readers),
        );
        (writers, readers, lost)
    }
}

/// `ROLE` of the node at `addr` says master.
fn is_master(cluster: &Cluster, addr: &str) -> bool {
    let role: redis::RedisResult<redis::Value> = redis::cmd("ROLE").query(&mut cluster.conn(addr));
    matches!(role, Ok(redis::Value::Array(f)) if f.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
}

/// A node stopped with SIGSTOP, continued (SIGCONT) when dropped, also
/// when the test panics.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, libc::SIGSTOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a child process this test's cluster started.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

#[test]
fn a_hung_master_fails_only_requests_in_flight_to_it_and_is_failed_over() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags();
    let load = Load::start(&proxy, &tags);
    let victim = cluster.node_of_slot(7);
    let replicas = cluster.replicas_of(&victim);

    let stopped_at = Instant::now();
    let stopped = Stopped::stop(cluster.pid_of(&victim));
    let promoted = support::poll_until(Duration::from_secs(30), || {
        replicas.iter().find(|r| is_master(&cluster, r)).cloned()
    })
    .expect("a replica takes over the hung master");
    eprintln!(
        "hung master: a replica took over after {:?}",
        stopped_at.elapsed()
    );
    load.progress(100, &proxy);
    drop(stopped);
    // The old master comes back and learns it is a replica now.
    let rejoined = support::poll_until(Duration::from_secs(30), || {
        (!is_master(&cluster, &victim)).then_some(())
    });
    assert!(
        rejoined.is_some(),
        "{victim} should rejoin as a replica of {promoted}"
    );
    load.progress(100, &proxy);

    let (writers, readers, _) = load.stop("SIGSTOP of a master", &proxy, &tags);
    // Only requests sent to the hung master failed, at
    // backend.request_timeout_ms (the node may run them when it wakes up):
    // at most one per shared connection to it, one per worker (a client
    // that reconnects after its error may land on the other worker, whose
    // connection is stuck too until its own timeout); nothing else failed.
    let timeout = format!("no reply from node {victim} within 5000 ms");
    for (i, seen) in writers.iter().chain(&readers).enumerate() {
        assert!(
            seen.errors.len() <= 2,
            "client {i} saw {} errors: {:?}\n--- keyway log ---\n{}",
            seen.errors.len(),
            seen.errors,
            proxy.log_tail(30)
        );
        for (at, error) in &seen.errors {
            assert!(
                error.contains(&timeout)
                    && error.contains("may or may not have run")
                    && *at >= stopped_at,
                "client {i}: {error}"
            );
        }
    }
}

#[test]
fn a_manual_failover_and_a_killed_replica_cost_no_error_and_no_write() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags();
    let load = Load::start(&proxy, &tags);

    // CLUSTER FAILOVER: the replica catches up, then takes over; the old
    // master answers MOVED from then on.
    let master = cluster.node_of_slot(7);
    let replica = cluster.replicas_of(&master)[0].clone();
    let () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut cluster.conn(&replica))
        .unwrap();
    let switched = support::poll_until(Duration::from_secs(30), || {
        (is_master(&cluster, &replica) && !is_master(&cluster, &master)).then_some(())
    });
    assert!(
        switched.is_some(),
        "{replica} should take over from {master}"
    );
    load.progress(100, &proxy);

    // A replica of another master dies: reads go to masters, nothing shows.
    let other = cluster.node_of_slot(16383);
    let dead_replica = cluster.replicas_of(&other)[0].clone();
    cluster.kill_node(&dead_replica);
    load.progress(100, &proxy);

    let (writers, readers, lost) =
        load.stop("CLUSTER FAILOVER, then a replica killed", &proxy, &tags);
    assert_no_errors("writer", &writers, &proxy);
    assert_no_errors("reader", &readers, &proxy);
    assert_eq!(lost, 0, "a manual failover loses no acknowledged write");
}
