//! Checks the test harness itself against real redis-server processes:
//! the cluster comes up with every slot covered, nodes die and rejoin, slots
//! migrate, and nothing we started survives the `Cluster`.

use crate::support;

use std::time::Instant;
use support::cluster::SlotRange;
use support::slot::crc16;
use support::util::process_running;
use support::{key_for_slot, key_slot, Cluster, SLOTS};

#[test]
fn crc16_and_hash_tags() {
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
    assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    for slot in [0, 1, 5000, 16383] {
        assert_eq!(key_slot(key_for_slot(slot).as_bytes()), slot);
        let tagged = format!("{{{}}}:x", key_for_slot(slot));
        assert_eq!(key_slot(tagged.as_bytes()), slot);
    }
}

#[test]
fn cluster_lifecycle() {
    let t = Instant::now();
    let cluster = Cluster::start();
    eprintln!("cluster started in {:?}", t.elapsed());

    let map: Vec<SlotRange> = cluster.slot_map();
    let covered: usize = map.iter().map(|r| (r.end - r.start) as usize + 1).sum();
    assert_eq!(covered, SLOTS as usize);
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    for a in cluster.seeds() {
        assert_ne!(
            cluster.bus_port(&a),
            a.rsplit(':').next().unwrap().parse::<u16>().unwrap() + 10000
        );
    }

    // Our CRC16 agrees with the cluster's.
    let mut con = cluster.conn(&cluster.seeds()[0]);
    for key in ["foo", "{user1000}.following", "a\r\nb", "k123", ""] {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut con)
            .unwrap();
        assert_eq!(slot, key_slot(key.as_bytes()), "slot of {key:?}");
    }

    // Migrate a slot that holds keys, step by step, checking ASK mid-way.
    let slot = 42;
    let from = cluster.node_of_slot(slot);
    let to = cluster.masters().into_iter().find(|m| *m != from).unwrap();
    let tag = key_for_slot(slot);
    let mut src = cluster.conn(&from);
    for i in 0..250 {
        let _: () = redis::cmd("SET")
            .arg(format!("{{{tag}}}:{i}"))
            .arg(i)
            .query(&mut src)
            .unwrap();
    }
    let m = cluster.begin_migration(slot, &from, &to);
    assert_eq!(m.move_keys(100), 100);
    let err = redis::cmd("GET")
        .arg(format!("{{{tag}}}:new"))
        .query::<Option<String>>(&mut src)
        .unwrap_err();
    assert_eq!(err.code(), Some("ASK"), "expected ASK, got {err}");
    m.move_all_keys();
    m.finish();
    assert_eq!(cluster.node_of_slot(slot), to);
    let mut dst = cluster.conn(&to);
    let n: usize = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut dst)
        .unwrap();
    assert_eq!(n, 250);

    // redis-cli reshard moves slots back.
    cluster.reshard(10, &to, &from);

    // Kill a master: its replica takes over; restart: it rejoins as replica.
    let victim = cluster.node_of_slot(0);
    let t = Instant::now();
    cluster.kill_node(&victim);
    let new_masters = cluster.wait_for_failover(&victim);
    eprintln!("failover took {:?}", t.elapsed());
    assert!(!new_masters.contains(&victim));
    cluster.restart_node(&victim);
    cluster.wait_ok();
    assert!(cluster.replicas().contains(&victim));
    assert_eq!(cluster.masters().len(), 3);

    let pids = cluster.pids();
    assert_eq!(pids.len(), 6);
    drop(cluster);
    for pid in pids {
        assert!(
            !process_running(pid, "redis-server"),
            "redis-server {pid} survived Drop"
        );
    }
}
