//! A master killed under load shows up as latency, not errors (issue 18):
//! 8 writers (`SET` + `INCR`, each on its own connection, no retries, a
//! 10 s socket timeout) and 8 readers run through keyway while the master
//! of a third of their keys is killed. Requests for its slots are held
//! until the replica takes over; reads in flight at the crash are sent
//! again; only the writes in flight at the crash (at most one per writer)
//! may fail, saying they may have run.

use crate::support;

use std::time::{Duration, Instant};
use support::cluster::connect;
use support::{key_for_slot, Background, Cluster, Proxy};

/// The clients' socket timeout: longer than the cluster needs to fail over.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client thread saw.
#[derive(Default)]
struct Seen {
    /// Failed requests: when, and the error.
    errors: Vec<(Instant, String)>,
    /// Longest time between two successful requests.
    longest_gap: Duration,
    /// `INCR`s acknowledged (writers).
    acked: u64,
    ops: u64,
}

/// The keys' hash tags: 32 slots spread over every master.
fn tags() -> Vec<String> {
    (0..32).map(|i| key_for_slot(i * 512 + 7)).collect()
}

/// A client that runs `op` (its number, the round) in a loop on one
/// connection, reconnecting after an error, until stopped.
fn client(
    addr: String,
    op: impl Fn(&mut redis::Connection, u64) -> redis::RedisResult<()> + Send + 'static,
) -> Background<Seen> {
    Background::spawn(move |rounds| {
        let mut seen = Seen::default();
        let mut con = None;
        let mut last_ok = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        while rounds.go_on() && Instant::now() < deadline {
            let c = match &mut con {
                Some(c) => c,
                None => match connect(&addr, CLIENT_TIMEOUT) {
                    Ok(c) => con.insert(c),
                    Err(e) => {
                        seen.errors.push((Instant::now(), format!("connect: {e}")));
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            match op(c, seen.ops) {
                Ok(()) => {
                    seen.longest_gap = seen.longest_gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    seen.acked += 1;
                }
                Err(e) => {
                    seen.errors.push((Instant::now(), e.to_string()));
                    con = None;
                }
            }
            seen.ops += 1;
            rounds.done_one();
        }
        seen
    })
}

#[test]
fn a_killed_master_costs_at_most_the_writes_in_flight() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let tags = tags.clone();
            client(proxy.addr(), move |c, i| {
                let tag = &tags[(i as usize + w) % tags.len()];
                redis::cmd("SET")
                    .arg(format!("{{{tag}}}:w{w}:{i}"))
                    .arg(i)
                    .query::<()>(c)?;
                redis::cmd("INCR")
                    .arg(format!("{{{tag}}}:count:{w}"))
                    .query::<i64>(c)
                    .map(drop)
            })
        })
        .collect();
    let readers: Vec<_> = (0..8)
        .map(|r| {
            let tags = tags.clone();
            client(proxy.addr(), move |c, i| {
                let tag = &tags[(i as usize * 7 + r) % tags.len()];
                redis::cmd("GET")
                    .arg(format!("{{{tag}}}:w{r}:{}", i / 2))
                    .query::<Option<String>>(c)
                    .map(drop)
            })
        })
        .collect();
    for load in writers.iter().chain(&readers) {
        load.wait_progress(100, &proxy);
    }

    let victim = cluster.node_of_slot(7);
    let replicas: Vec<redis::Connection> = cluster
        .replicas_of(&victim)
        .iter()
        .map(|r| cluster.conn(r))
        .collect();
    let killed_at = Instant::now();
    cluster.kill_node(&victim);
    let promoted = crate::failover::first_promotion(replicas);
    cluster.wait_for_failover(&victim);
    for load in writers.iter().chain(&readers) {
        load.wait_progress(100, &proxy);
    }

    let writers: Vec<Seen> = writers.into_iter().map(Background::stop).collect();
    let readers: Vec<Seen> = readers.into_iter().map(Background::stop).collect();
    let gap = writers.iter().map(|s| s.longest_gap).max().unwrap();
    let write_errors: usize = writers.iter().map(|s| s.errors.len()).sum();
    eprintln!(
        "failover under load: a replica called itself master {:?} after the kill; the longest a writer waited {gap:?}; {write_errors} write errors, {} read errors, in {} writes and {} reads",
        promoted - killed_at,
        readers.iter().map(|s| s.errors.len()).sum::<usize>(),
        writers.iter().map(|s| s.ops).sum::<u64>(),
        readers.iter().map(|s| s.ops).sum::<u64>(),
    );
    for (i, seen) in writers.iter().enumerate() {
        assert!(
            seen.errors.len() <= 1,
            "writer {i} saw {} errors (at most its one write in flight at the crash may fail), the first: {:?}\n--- keyway log ---\n{}",
            seen.errors.len(),
            &seen.errors[..3.min(seen.errors.len())],
            proxy.log_tail(30)
        );
        for (at, error) in &seen.errors {
            assert!(
                error.contains("may or may not have run") && *at >= killed_at,
                "writer {i}: {error}"
            );
        }
    }
    for (i, seen) in readers.iter().enumerate() {
        assert!(
            seen.errors.is_empty(),
            "reader {i} saw {} errors (reads are held or sent again), the first: {:?}\n--- keyway log ---\n{}",
            seen.errors.len(),
            &seen.errors[..3.min(seen.errors.len())],
            proxy.log_tail(30)
        );
    }

    // Acknowledged increments the cluster kept: Redis replicates
    // asynchronously, so a SIGKILL may lose the last few (reported).
    let mut con = proxy.conn();
    let mut lost = 0;
    for (w, seen) in writers.iter().enumerate() {
        let kept: u64 = tags
            .iter()
            .map(|tag| {
                redis::cmd("GET")
                    .arg(format!("{{{tag}}}:count:{w}"))
                    .query::<Option<u64>>(&mut con)
                    .expect("GET through keyway")
                    .unwrap_or(0)
            })
            .sum();
        lost += seen.acked.saturating_sub(kept);
    }
    eprintln!("failover under load: {lost} acknowledged INCRs lost by the cluster");
}
