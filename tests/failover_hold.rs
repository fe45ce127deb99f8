//! A master killed under load shows up as latency, not errors (issue 18):
//! 8 writers (`SET` + `INCR`, each on its own connection, no retries, a
//! 10 s socket timeout) and 8 readers run through keyway while the master
//! of a third of their keys is killed. Requests for its slots are held
//! until the replica takes over; reads in flight at the crash are sent
//! again; only the writes in flight at the crash (at most one per writer)
//! may fail, saying they may have run. Requests every master answers
//! (`DBSIZE`, `KEYS`), `SCAN` and `PUBLISH` are held the same way.

use crate::support;

use std::time::Instant;
use support::workload::{
    assert_at_most_one_unknown_outcome, assert_no_errors, client, cluster_writer, kept_increments,
    lost_increments, reader, tags, writer, Seen,
};
use support::{Background, Cluster, Proxy};

#[test]
fn a_killed_master_costs_at_most_the_writes_in_flight() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags();
    let writers: Vec<_> = (0..8)
        .map(|w| writer(proxy.addr(), w, tags.clone()))
        .collect();
    let readers: Vec<_> = (0..8)
        .map(|r| reader(proxy.addr(), r, tags.clone()))
        .collect();
    // Whole-keyspace reads: DBSIZE and KEYS (every master), SCAN (one
    // master after another, its cursor kept across rounds); and PUBLISH
    // on a channel of the victim's slot (sent to that master).
    let gatherers = vec![
        client(proxy.addr(), |c, _| {
            redis::cmd("DBSIZE").query::<i64>(c).map(drop)
        }),
        client(proxy.addr(), |c, _| {
            redis::cmd("KEYS")
                .arg("*:count:0")
                .query::<Vec<String>>(c)
                .map(drop)
        }),
        {
            let cursor = std::cell::Cell::new(0u64);
            client(proxy.addr(), move |c, _| {
                let (next, _): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor.get())
                    .arg("COUNT")
                    .arg(50)
                    .query(c)?;
                cursor.set(next);
                Ok(())
            })
        },
        {
            let channel = format!("{{{}}}:news", tags[0]);
            client(proxy.addr(), move |c, i| {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(i)
                    .query::<i64>(c)
                    .map(drop)
            })
        },
    ];
    // The same writes straight against the cluster with a cluster-aware
    // client (writers 8..16, their own counters): what the cluster itself
    // loses in this run.
    let direct: Vec<_> = (8..16)
        .map(|w| cluster_writer(cluster.seeds(), w, tags.clone()))
        .collect();
    for load in writers
        .iter()
        .chain(&readers)
        .chain(&gatherers)
        .chain(&direct)
    {
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
    for load in writers
        .iter()
        .chain(&readers)
        .chain(&gatherers)
        .chain(&direct)
    {
        load.wait_progress(100, &proxy);
    }

    let writers: Vec<Seen> = writers.into_iter().map(Background::stop).collect();
    let readers: Vec<Seen> = readers.into_iter().map(Background::stop).collect();
    let gatherers: Vec<Seen> = gatherers.into_iter().map(Background::stop).collect();
    let direct: Vec<Seen> = direct.into_iter().map(Background::stop).collect();
    let gap = writers.iter().map(|s| s.longest_gap).max().unwrap();
    let write_errors: usize = writers.iter().map(|s| s.errors.len()).sum();
    eprintln!(
        "failover under load: a replica called itself master {:?} after the kill; the longest a writer waited {gap:?}; {write_errors} write errors, {} read errors, in {} writes and {} reads",
        promoted - killed_at,
        readers.iter().map(|s| s.errors.len()).sum::<usize>(),
        writers.iter().map(|s| s.ops).sum::<u64>(),
        readers.iter().map(|s| s.ops).sum::<u64>(),
    );
    assert_at_most_one_unknown_outcome("writer", &writers, killed_at, &proxy);
    // Reads are held or sent again.
    assert_no_errors("reader", &readers, &proxy);
    assert_no_errors("DBSIZE/KEYS/SCAN client", &gatherers[..3], &proxy);
    // PUBLISH is a write: the one in flight at the crash may fail.
    assert_at_most_one_unknown_outcome("PUBLISH client", &gatherers[3..], killed_at, &proxy);

    // Acknowledged increments the cluster kept: Redis replicates
    // asynchronously, so a SIGKILL may lose the last few (reported).
    let mut con = proxy.conn();
    let lost = lost_increments(&mut con, &writers, &tags);
    let direct_lost: u64 = direct
        .iter()
        .zip(8..)
        .map(|(seen, w)| {
            seen.acked
                .saturating_sub(kept_increments(&mut con, w, &tags))
        })
        .sum();
    eprintln!(
        "failover under load: {lost} acknowledged INCRs lost through keyway; straight against the cluster with a cluster-aware client: {direct_lost} lost, {} errors in {} writes, the longest a writer waited {:?}",
        direct.iter().map(|s| s.errors.len()).sum::<usize>(),
        direct.iter().map(|s| s.ops).sum::<u64>(),
        direct.iter().map(|s| s.longest_gap).max().unwrap(),
    );
}
