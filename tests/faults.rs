//! The fault suite (issue 18): 8 writers (`SET` + `INCR`, every
//! acknowledged increment remembered) and 8 readers run through keyway
//! against a real 3+3 cluster while a fault is injected; each test reports
//! client errors, the longest time a client went without a success, and
//! acknowledged increments the cluster lost (a consistency check in the
//! spirit of Redis's `consistency-test`), and asserts what keyway
//! promises for that fault:
//!
//! - a master stopped with SIGSTOP past the node timeout, then continued:
//!   only requests in flight to it fail; the other shards' p99 latency
//!   before and while it is stopped is reported;
//! - `CLUSTER FAILOVER`, then a replica killed: no error, nothing lost;
//! - a master killed with SIGKILL and restarted: it rejoins as a replica
//!   that keyway never sends a write; no error after the restart;
//! - `redis-cli --cluster reshard` of 5,000 slots (500 on Valkey, see
//!   [`legacy_slots_moved`]): no error, nothing lost;
//! - a master added and `redis-cli --cluster rebalance`: no error, nothing
//!   lost;
//! - Valkey 9's atomic slot migration (`CLUSTER MIGRATESLOTS`) of 5,000
//!   slots (skipped on other servers): no error, nothing lost.
//!
//! A master killed with SIGKILL (errors and recovery time measured) is in
//! `failover_hold`; slots migrating step by step under load in `failover`.
//! `benches/faults.sh` runs these tests in a loop for soak runs.

use crate::support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cluster::{info_field, node_server};
use support::slotmap::text;
use support::workload::{
    assert_at_most_one_unknown_outcome, assert_no_errors, kept_increments, lost_increments_since,
    p99, prober, reader, tags, writer, Seen,
};
use support::{key_slot, poll_until, Background, Cluster, Proxy};

/// How many slots the resharding tests move.
const SLOTS_MOVED: u16 = 5000;

/// How many slots `redis-cli --cluster` moves in a test: [`SLOTS_MOVED`],
/// or on Valkey, whose `CLUSTER SETSLOT ... NODE` waits for the replicas
/// to acknowledge each slot (measured here: 7.5 ms a slot idle, 24 ms
/// under the load, against under 1 ms for Redis 7.0, so 5,000 slots take
/// minutes), 500. Valkey moves 5,000 slots with `CLUSTER MIGRATESLOTS`.
fn legacy_slots_moved() -> u16 {
    if valkey_major().is_some() {
        500
    } else {
        SLOTS_MOVED
    }
}

/// The writers and readers of one test.
struct Load {
    writers: Vec<Background<Seen>>,
    readers: Vec<Background<Seen>>,
    /// Each writer's counters' sum when it started (a test may run a
    /// second load on the same keys).
    before: Vec<u64>,
}

impl Load {
    fn start(proxy: &Proxy, tags: &[String]) -> Load {
        let mut con = proxy.conn();
        let before = (0..8).map(|w| kept_increments(&mut con, w, tags)).collect();
        let load = Load {
            before,
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
        let lost = lost_increments_since(&mut proxy.conn(), &writers, tags, &self.before);
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

    /// Stops every client as [`Load::stop`] does and fails unless no
    /// client saw an error and the cluster lost no acknowledged increment
    /// (`fault` names the fault in the failure).
    fn stop_unharmed(self, fault: &str, proxy: &Proxy, tags: &[String]) {
        let (writers, readers, lost) = self.stop(fault, proxy, tags);
        assert_no_errors("writer", &writers, proxy);
        assert_no_errors("reader", &readers, proxy);
        assert_eq!(lost, 0, "{fault}: acknowledged writes lost");
    }
}

/// A fresh 3+3 cluster, keyway in front of it, and the writers and
/// readers of the keys tagged [`tags`] running through keyway.
fn under_load() -> (Cluster, Proxy, Vec<String>, Load) {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags();
    let load = Load::start(&proxy, &tags);
    (cluster, proxy, tags, load)
}

/// Waits until one of `replicas` says it is master (their master failed);
/// that replica.
fn promotion(cluster: &Cluster, replicas: &[String]) -> String {
    poll_until(Duration::from_secs(30), || {
        replicas.iter().find(|r| is_master(cluster, r)).cloned()
    })
    .expect("a replica takes over its failed master")
}

/// `ROLE` of the node at `addr` says master.
fn is_master(cluster: &Cluster, addr: &str) -> bool {
    role(cluster, addr).as_deref() == Some("master")
}

/// What `ROLE` of the node at `addr` says it is (`master`, `slave`), if it
/// answers.
fn role(cluster: &Cluster, addr: &str) -> Option<String> {
    let role: redis::RedisResult<Vec<redis::Value>> =
        redis::cmd("ROLE").query(&mut cluster.conn(addr));
    Some(text(role.ok()?.first()?))
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
    let (cluster, proxy, tags, load) = under_load();
    let victim = cluster.node_of_slot(7);
    let replicas = cluster.replicas_of(&victim);
    // Two more clients, of the other shards' keys only, time each request.
    let others: Vec<String> = tags
        .iter()
        .filter(|t| cluster.node_of_slot(key_slot(t.as_bytes())) != victim)
        .cloned()
        .collect();
    let probes: Vec<_> = (0..2)
        .map(|p| prober(proxy.addr(), p, others.clone()))
        .collect();
    let before = Instant::now();
    for probe in &probes {
        probe.wait_progress(1000, &proxy);
    }
    load.progress(100, &proxy);

    let stopped_at = Instant::now();
    let stopped = Stopped::stop(cluster.pid_of(&victim));
    let promoted = promotion(&cluster, &replicas);
    eprintln!(
        "hung master: a replica took over after {:?}",
        stopped_at.elapsed()
    );
    load.progress(100, &proxy);
    let continued_at = Instant::now();
    drop(stopped);
    // The old master comes back and learns it is a replica now.
    let rejoined = poll_until(Duration::from_secs(30), || {
        (!is_master(&cluster, &victim)).then_some(())
    });
    assert!(
        rejoined.is_some(),
        "{victim} should rejoin as a replica of {promoted}"
    );
    load.progress(100, &proxy);

    let probes: Vec<Seen> = probes.into_iter().map(Background::stop).collect();
    let (p99_before, n_before) = p99(&probes, before, stopped_at).expect("requests before");
    let (p99_stopped, n_stopped) =
        p99(&probes, stopped_at, continued_at).expect("requests while stopped");
    let fault = format!(
        "SIGSTOP of a master; the other shards' p99 {p99_before:?} before ({n_before} requests), {p99_stopped:?} while it was stopped ({n_stopped} requests): {:.2}x",
        p99_stopped.as_secs_f64() / p99_before.as_secs_f64()
    );
    let (writers, readers, _) = load.stop(&fault, &proxy, &tags);
    // The other shards serve on (their latency is reported, not asserted:
    // the machine is noisy).
    assert_no_errors("client of the other shards", &probes, &proxy);
    // Only requests sent to the hung master failed, at
    // backend.request_timeout_ms (the node may run them when it wakes up):
    // each client's one in flight at the stop. A client that reconnects
    // after its error may land on the other worker, whose connection is
    // stuck too until its own timeout: the first timeout made it suspect
    // (backend::node_loss), so the new request is held, not sent into it.
    let timeout = format!("no reply from node {victim} within 5000 ms");
    for (i, seen) in writers.iter().chain(&readers).enumerate() {
        assert!(
            seen.errors.len() <= 1,
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
    let (cluster, proxy, tags, load) = under_load();

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

    load.stop_unharmed("CLUSTER FAILOVER, then a replica killed", &proxy, &tags);
}

#[test]
fn a_killed_master_restarts_as_a_replica_keyway_never_writes_to() {
    let (cluster, proxy, tags, load) = under_load();
    let victim = cluster.node_of_slot(7);
    let replicas = cluster.replicas_of(&victim);

    let killed_at = Instant::now();
    cluster.kill_node(&victim);
    promotion(&cluster, &replicas);
    cluster.wait_for_failover(&victim);
    load.progress(100, &proxy);
    let (writers, readers, _) = load.stop("SIGKILL of a master", &proxy, &tags);
    // As in failover_hold: only the writes in flight at the crash.
    assert_at_most_one_unknown_outcome("writer", &writers, killed_at, &proxy);
    assert_no_errors("reader", &readers, &proxy);

    // The killed node comes back, under a new load on the same keys: it
    // starts as the master it was and learns it is a replica now.
    let load = Load::start(&proxy, &tags);
    cluster.restart_node(&victim);
    let rejoined = poll_until(Duration::from_secs(30), || {
        (role(&cluster, &victim).as_deref() == Some("slave")).then_some(())
    });
    assert!(rejoined.is_some(), "{victim} should rejoin as a replica");
    cluster.wait_ok();
    load.progress(200, &proxy);
    load.stop_unharmed("the killed master restarted", &proxy, &tags);
    // A replica answers a write MOVED (counted in its errorstats); keyway
    // sends it none.
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut cluster.conn(&victim))
        .expect("INFO errorstats");
    assert_eq!(
        info_field(&errors, "errorstat_MOVED"),
        None,
        "keyway sent the rejoined replica {victim} requests it redirected\n--- keyway log ---\n{}",
        proxy.log_tail(30)
    );
}

#[test]
fn resharding_5000_slots_costs_no_error_and_no_write() {
    let (cluster, proxy, tags, load) = under_load();
    // redis-cli moves the source's lowest slots: 0..5000 hold 10 of the
    // 32 tags (0..500: 1).
    let from = cluster.node_of_slot(0);
    let to = cluster.node_of_slot(16383);
    let slots = legacy_slots_moved();

    let began = Instant::now();
    cluster.reshard(slots, &from, &to);
    let took = began.elapsed();
    assert_eq!(cluster.node_of_slot(slots - 1), to);
    load.progress(100, &proxy);

    load.stop_unharmed(
        &format!("redis-cli --cluster reshard of {slots} slots, in {took:.1?}"),
        &proxy,
        &tags,
    );
}

#[test]
fn a_master_added_and_rebalanced_costs_no_error_and_no_write() {
    let (cluster, proxy, tags, load) = under_load();

    let new = cluster.add_master();
    load.progress(100, &proxy);
    let began = Instant::now();
    // Evenly: 4,096 slots to the new master; on Valkey (see
    // legacy_slots_moved) a tenth of the others' weight, 528 slots.
    let weight = if valkey_major().is_some() { 0.1 } else { 1.0 };
    cluster.rebalance(&new, &[(&new, weight)]);
    let took = began.elapsed();
    let moved = cluster.slots_of(&new).len();
    assert!(moved > 0, "rebalance should give {new} slots");
    load.progress(100, &proxy);

    load.stop_unharmed(
        &format!("a master added, {moved} slots rebalanced to it in {took:.1?}"),
        &proxy,
        &tags,
    );
}

#[test]
fn valkey_atomic_slot_migration_costs_no_error_and_no_write() {
    if !is_valkey_9() {
        eprintln!(
            "skipped: {} is not Valkey 9 or later (no CLUSTER MIGRATESLOTS)",
            node_server()
        );
        return;
    }
    let (cluster, proxy, tags, load) = under_load();
    let from = cluster.node_of_slot(0);
    let to = cluster.node_of_slot(16383);

    let began = Instant::now();
    let () = redis::cmd("CLUSTER")
        .arg("MIGRATESLOTS")
        .arg("SLOTSRANGE")
        .arg(0)
        .arg(SLOTS_MOVED - 1)
        .arg("NODE")
        .arg(cluster.node_id(&to))
        .query(&mut cluster.conn(&from))
        .expect("CLUSTER MIGRATESLOTS");
    let mut last = HashMap::new();
    let ended = poll_until(Duration::from_secs(60), || {
        last = export_migration(&cluster, &from);
        let state = last.get("state")?;
        ["success", "failed", "cancelled"]
            .contains(&state.as_str())
            .then(|| state.clone())
    });
    let took = began.elapsed();
    assert_eq!(
        ended.as_deref(),
        Some("success"),
        "the migration on {from}: {last:?}"
    );
    cluster.wait_ok();
    assert_eq!(cluster.node_of_slot(SLOTS_MOVED - 1), to);
    load.progress(100, &proxy);

    load.stop_unharmed(
        &format!("CLUSTER MIGRATESLOTS of {SLOTS_MOVED} slots, in {took:.1?}"),
        &proxy,
        &tags,
    );
}

/// The server the cluster runs is Valkey 9 or later.
fn is_valkey_9() -> bool {
    valkey_major().is_some_and(|m| m >= 9)
}

/// The major version of the server the cluster runs if it is Valkey
/// (`--version` says `Valkey server v=9...`).
fn valkey_major() -> Option<u32> {
    let out = Command::new(node_server())
        .arg("--version")
        .output()
        .expect("the node server's --version");
    let version = String::from_utf8_lossy(&out.stdout);
    let major = version
        .strip_prefix("Valkey server v=")?
        .split('.')
        .next()?;
    major.parse().ok()
}

/// The fields of the export `CLUSTER GETSLOTMIGRATIONS` lists on the
/// master at `addr` (the last, if several; empty before it lists one).
fn export_migration(cluster: &Cluster, addr: &str) -> HashMap<String, String> {
    let jobs: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("GETSLOTMIGRATIONS")
        .query(&mut cluster.conn(addr))
        .expect("CLUSTER GETSLOTMIGRATIONS");
    let mut fields = jobs.iter().map(|job| {
        job.chunks(2)
            .map(|kv| (text(&kv[0]), kv.get(1).map(text).unwrap_or_default()))
            .collect::<HashMap<_, _>>()
    });
    fields
        .rfind(|f| f.get("operation").map(String::as_str) == Some("EXPORT"))
        .unwrap_or_default()
}
