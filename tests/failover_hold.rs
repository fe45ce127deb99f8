//! A master killed under load shows up as latency, not errors (issue 18):
//! 8 writers (`SET` + `INCR`, each on its own connection, no retries, a
//! 10 s socket timeout) and 8 readers run through keyway while the master
//! of a third of their keys is killed. Requests for its slots are held
//! until the replica takes over; reads in flight at the crash are sent
//! again; only the writes in flight at the crash (at most one per writer)
//! may fail, saying they may have run.

use crate::support;

use std::time::Instant;
use support::workload::{
    assert_at_most_one_unknown_outcome, assert_no_errors, lost_increments, reader, tags, writer,
    Seen,
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
    assert_at_most_one_unknown_outcome("writer", &writers, killed_at, &proxy);
    // Reads are held or sent again.
    assert_no_errors("reader", &readers, &proxy);

    // Acknowledged increments the cluster kept: Redis replicates
    // asynchronously, so a SIGKILL may lose the last few (reported).
    let lost = lost_increments(&mut proxy.conn(), &writers, &tags);
    eprintln!("failover under load: {lost} acknowledged INCRs lost by the cluster");
}
