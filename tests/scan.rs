//! `SCAN` through keyway: one cursor walks every master (MATCH, COUNT and
//! TYPE as on redis-server, the `redis` crate's iterator), a bad cursor is
//! refused like redis-server refuses it, and an iteration during which a
//! slot moves between masters still returns every key (some twice).

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{key_slot, Cluster, Proxy, RawClient};

/// A whole iteration through `raw` with `args` after the cursor; every key
/// returned, and how many calls it took. `between` runs after each call.
fn iterate(
    raw: &mut RawClient,
    args: &[&str],
    mut between: impl FnMut(usize),
) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut cmd = vec!["SCAN", cursor.as_str()];
        cmd.extend_from_slice(args);
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        raw.send(&support::resp::encode(&args));
        let reply = raw.reply();
        let (next, mut found) = parse_scan(&reply);
        keys.append(&mut found);
        calls += 1;
        between(calls);
        assert!(calls < 100_000, "the iteration does not end");
        if next == "0" {
            return (keys, calls);
        }
        cursor = next;
    }
}

/// `*2 $cursor *N $key...` into its parts.
fn parse_scan(reply: &[u8]) -> (String, Vec<String>) {
    let text = String::from_utf8_lossy(reply);
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next(), Some("*2"), "{text}");
    lines.next();
    let cursor = lines.next().unwrap().to_string();
    let n: usize = lines.next().unwrap()[1..].parse().unwrap();
    let keys = (0..n)
        .map(|_| {
            lines.next();
            lines.next().unwrap().to_string()
        })
        .collect();
    (cursor, keys)
}

#[test]
fn one_cursor_walks_every_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("scan:s:{i}")).arg(i).ignore();
    }
    for i in 0..300 {
        pipe.cmd("HSET")
            .arg(format!("scan:h:{i}"))
            .arg("f")
            .arg(i)
            .ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let all: BTreeSet<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(all.len(), 3300);

    let mut raw = proxy.raw_client();
    let (keys, calls) = iterate(&mut raw, &["COUNT", "100"], |_| {});
    let found: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(found, all, "every key of every master");
    assert!(calls >= 30, "COUNT is passed on: {calls} calls");
    let (keys, _) = iterate(&mut raw, &["MATCH", "scan:h:*", "COUNT", "1000"], |_| {});
    assert_eq!(keys.len(), 300);
    assert!(keys.iter().all(|k| k.starts_with("scan:h:")));
    let (keys, _) = iterate(&mut raw, &["TYPE", "hash", "COUNT", "1000"], |_| {});
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 300);
    // The redis crate's iterator, as applications use it.
    let iter: redis::Iter<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg("scan:s:1*")
        .clone()
        .iter(&mut con)
        .unwrap();
    let ones: BTreeSet<String> = iter.collect();
    assert_eq!(
        ones,
        all.iter()
            .filter(|k| k.starts_with("scan:s:1"))
            .cloned()
            .collect()
    );
    // RESP3 clients get the same shape; bad cursors are refused.
    assert!(raw.cmd(&["HELLO", "3"]).starts_with('%'));
    assert!(raw.cmd(&["SCAN", "0", "COUNT", "5"]).starts_with("*2\r\n$"));
    assert_eq!(raw.cmd(&["SCAN", "notanumber"]), "-ERR invalid cursor\r\n");
    assert_eq!(raw.cmd(&["SCAN", "-1"]), "-ERR invalid cursor\r\n");
}

#[test]
fn a_slot_moving_mid_iteration_loses_no_key() {
    let cluster = Cluster::start();
    // keyway re-reads the map every second, so it sees the move.
    let proxy = Proxy::start_with_config(&cluster, "[cluster]\nrefresh_interval_s = 1\n");
    let mut con = proxy.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let masters = cluster.masters();
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("mv:{i}")).arg(i).ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let all: BTreeSet<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    // The first master keyway scans serves slot 0; move a slot of the last
    // one to it once the iteration has passed it.
    let first = cluster.node_of_slot(0);
    let last = cluster.node_of_slot(16383);
    assert_ne!(first, last);
    let moving = all
        .iter()
        .map(|k| key_slot(k.as_bytes()))
        .find(|s| cluster.node_of_slot(*s) == last)
        .unwrap();
    let on_slot = all
        .iter()
        .filter(|k| key_slot(k.as_bytes()) == moving)
        .count();
    assert!(on_slot > 0 && masters.contains(&first));
    let mut raw = proxy.raw_client();
    let mut moved = false;
    let (keys, _) = iterate(&mut raw, &["COUNT", "50"], |calls| {
        if calls == 25 && !moved {
            cluster.migrate_slot(moving, &last, &first);
            std::thread::sleep(Duration::from_millis(2500));
            moved = true;
        }
    });
    assert!(moved);
    assert_restarted_and_complete(&all, &keys);
}

#[test]
fn a_master_joining_mid_iteration_loses_no_key() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_with_config(&cluster, "[cluster]\nrefresh_interval_s = 1\n");
    let mut con = proxy.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("join:{i}")).arg(i).ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let all: BTreeSet<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(all.len(), 3000);
    // One slot with keys from each master moves to the new one.
    let mut moving: Vec<(u16, String)> = Vec::new();
    for key in &all {
        let slot = key_slot(key.as_bytes());
        let owner = cluster.node_of_slot(slot);
        if moving.iter().all(|(_, o)| *o != owner) {
            moving.push((slot, owner));
        }
    }
    assert_eq!(moving.len(), 3);
    let mut raw = proxy.raw_client();
    let mut con2 = proxy.conn();
    let mut new = None;
    let (keys, _) = iterate(&mut raw, &["COUNT", "50"], |calls| {
        if calls != 25 {
            return;
        }
        let added = cluster.add_master();
        for (slot, owner) in &moving {
            cluster.migrate_slot(*slot, owner, &added);
        }
        // Every master is scanned in full once keyway's map holds the new one.
        let seen = support::poll_until(Duration::from_secs(20), || {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con2).unwrap();
            info.contains("cluster_size:4").then_some(())
        });
        assert!(seen.is_some(), "keyway never saw the new master");
        new = Some(added);
    });
    let new = new.expect("a master joined mid-iteration");
    assert_restarted_and_complete(&all, &keys);
    // keyway sends the moved slots' commands to the new master.
    for (slot, _) in &moving {
        let old = all
            .iter()
            .find(|k| key_slot(k.as_bytes()) == *slot)
            .unwrap();
        let fresh = format!("{{{old}}}:new");
        let () = redis::cmd("SET")
            .arg(&fresh)
            .arg("v")
            .query(&mut con)
            .unwrap();
        let got: String = redis::cmd("GET").arg(old).query(&mut con).unwrap();
        assert!(got.parse::<u32>().is_ok(), "{old}: {got}");
        let direct: Option<String> = redis::cmd("GET")
            .arg(&fresh)
            .query(&mut cluster.conn(&new))
            .unwrap();
        assert_eq!(direct.as_deref(), Some("v"), "{fresh} written on {new}");
    }
}

/// Every key of `all` is among the `returned` ones, and more were returned
/// than exist: the iteration started over after the slot map changed.
fn assert_restarted_and_complete(all: &BTreeSet<String>, returned: &[String]) {
    let found: BTreeSet<String> = returned.iter().cloned().collect();
    let missing: Vec<&String> = all.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "{} keys missed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        returned.len() > all.len(),
        "started over after the change: {} returned",
        returned.len()
    );
}
