//! Reads from replicas (`[read] policy`, per-client `READONLY`): where
//! each command is served is counted on the nodes themselves, with
//! `INFO commandstats` after a `CONFIG RESETSTAT` sent to every node
//! directly.
//!
//! What the checks rely on, as redis-server 7.0 behaves (checked against
//! this harness's cluster):
//! - a replica counts in `cmdstat_set`, `cmdstat_incr`, `cmdstat_lpop`, ...
//!   the writes it applies from its master; never `cmdstat_get` (reads,
//!   inside a transaction or not, are not replicated), `cmdstat_eval`
//!   (scripts are replicated as their effects), `cmdstat_blpop` (replicated
//!   as `LPOP`), `cmdstat_watch`, nor `MULTI`/`EXEC` of a transaction
//!   without writes;
//! - a write sent to a replica, even after `READONLY`, is answered with
//!   `MOVED` and counted in `errorstat_MOVED` and in the command's
//!   `rejected_calls`; a script writing there fails with `-READONLY`;
//! - `EVAL_RO`, `GET`, `MGET` and `EXISTS` are flagged `readonly` in
//!   `COMMAND INFO`, `EVAL` is not.

use crate::support;

use std::collections::BTreeMap;

use support::replicas::{
    bulk, calls, get, info, key_per_shard, read_config, replica, reset_stats, shard_of,
    spread_keys, stat, wait_replicated, with_values, write_all, NOTICE,
};
use support::{poll_until, Cluster, Proxy, RawClient, OP_TIMEOUT};

/// The `flags=` field of a `CLIENT INFO`/`CLIENT LIST` line.
fn flags(line: &str) -> &str {
    line.split(' ')
        .find_map(|f| f.strip_prefix("flags="))
        .unwrap_or_else(|| panic!("no flags= in {line:?}"))
}

/// The text of a bulk-string reply (`CLIENT INFO`, `CLIENT LIST`).
fn bulk_text(reply: &str) -> &str {
    let (_, body) = reply.split_once("\r\n").unwrap_or(("", reply));
    body.trim_end()
}

#[test]
fn each_read_policy_serves_gets_where_it_says() {
    const CLIENTS: usize = 4;
    const GETS_PER_CLIENT: usize = 500;
    let cluster = Cluster::start();
    let map = cluster.slot_map();
    let keys = spread_keys("policy", 300);
    // Which key each GET reads, and how many GETs each shard's master owes.
    let reads = |client: usize, j: usize| (client * GETS_PER_CLIENT + j * 7) % keys.len();
    let mut owed: BTreeMap<&str, u64> = BTreeMap::new();
    for c in 0..CLIENTS {
        for i in (0..GETS_PER_CLIENT).map(|j| reads(c, j)) {
            *owed.entry(&shard_of(&map, keys[i].1).master).or_default() += 1;
        }
    }
    assert_eq!(owed.len(), 3, "the keys cover every shard: {owed:?}");
    let total = (CLIENTS * GETS_PER_CLIENT) as u64;

    for policy in ["master", "replica", "prefer-replica", "any"] {
        let config = read_config(&format!("policy = \"{policy}\""));
        let proxy = Proxy::start_with_config(&cluster, &config);
        let pairs = with_values(&keys, policy);
        write_all(&proxy, &pairs);
        wait_replicated(&cluster);
        // Warm-up: keyway has connected to every node it reads from.
        let mut con = proxy.conn();
        for (k, v) in &pairs {
            assert_eq!(get(&mut con, k).as_ref(), Some(v), "{policy}: GET {k}");
        }
        reset_stats(&cluster);
        std::thread::scope(|s| {
            for client in 0..CLIENTS {
                let (proxy, pairs) = (&proxy, &pairs);
                s.spawn(move || {
                    let mut con = proxy.conn();
                    for j in 0..GETS_PER_CLIENT {
                        let (k, v) = &pairs[reads(client, j)];
                        assert_eq!(get(&mut con, k).as_ref(), Some(v), "{policy}: {k}");
                    }
                });
            }
        });

        let mut on_replicas = 0;
        for (master, &owed) in &owed {
            let shard = map.iter().find(|r| r.master == *master).unwrap();
            let replica = replica(shard);
            let m = calls(&cluster, master, "get");
            let r = calls(&cluster, replica, "get");
            let counts = format!("{policy}: master {master} {m} GETs, replica {replica} {r}");
            // Each GET served once, by a node of its key's shard.
            assert_eq!(m + r, owed, "{counts}");
            match policy {
                "master" => assert_eq!(r, 0, "{counts}"),
                "replica" => assert!(r > 0, "{counts}"),
                "any" => assert!((30..=70).contains(&(r * 100 / owed)), "{counts}"),
                _ => {}
            }
            on_replicas += r;
        }
        let share = on_replicas * 100 / total;
        match policy {
            "master" => assert_eq!(on_replicas, 0, "{policy}"),
            "any" => assert!((30..=70).contains(&share), "{policy}: {share}% on replicas"),
            _ => assert!(on_replicas * 100 >= total * 99, "{policy}: {share}%"),
        }
    }
}

#[test]
fn under_replica_policy_only_readonly_commands_outside_transactions_reach_replicas() {
    let cluster = Cluster::start();
    // Only commands flagged readonly go to replicas: EVAL is not one.
    let mut node = RawClient::connect(&cluster.masters()[0], OP_TIMEOUT);
    for (name, readonly) in [("eval_ro", true), ("get", true), ("eval", false)] {
        let doc = node.cmd(&["COMMAND", "INFO", name]);
        assert_eq!(doc.contains("+readonly\r\n"), readonly, "{name}: {doc}");
    }
    // A write sent to a replica, even after READONLY, is refused with
    // MOVED, and the replica counts it: what the checks below look for.
    let some_replica = &cluster.replicas()[0];
    let mut node = RawClient::connect(some_replica, OP_TIMEOUT);
    assert_eq!(node.cmd(&["READONLY"]), "+OK\r\n");
    let moved = node.cmd(&["SET", "{premise}", "x"]);
    assert!(moved.starts_with("-MOVED "), "{moved}");
    let errors = info(&cluster, some_replica, "errorstats");
    assert!(errors.contains("errorstat_MOVED:count=1"), "{errors}");
    let proxy = Proxy::start_with_config(&cluster, &read_config("policy = \"replica\""));
    let keys = key_per_shard(&cluster, "stay");
    let mut kw = proxy.raw_client();

    // What stays on masters.
    reset_stats(&cluster);
    let script_get = "return redis.call('GET', KEYS[1])";
    for (i, (k, _)) in keys.iter().enumerate() {
        let v = format!("v{i}");
        let (counter, list) = (format!("{k}:n"), format!("{k}:list"));
        assert_eq!(kw.cmd(&["SET", k, &v]), "+OK\r\n");
        assert_eq!(kw.cmd(&["INCR", &counter]), ":1\r\n");
        assert_eq!(kw.cmd(&["EVAL", script_get, "1", k]), bulk(&v), "EVAL");
        let script_incr = "return redis.call('INCR', KEYS[1])";
        assert_eq!(kw.cmd(&["EVAL", script_incr, "1", &counter]), ":2\r\n");
        assert_eq!(kw.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(kw.cmd(&["GET", k]), "+QUEUED\r\n");
        assert_eq!(kw.cmd(&["EXEC"]), format!("*1\r\n{}", bulk(&v)));
        assert_eq!(kw.cmd(&["RPUSH", &list, "a"]), ":1\r\n");
        let popped = format!("*2\r\n{}{}", bulk(&list), bulk("a"));
        assert_eq!(kw.cmd(&["BLPOP", &list, "1"]), popped);
        assert_eq!(kw.cmd(&["WATCH", k]), "+OK\r\n");
        assert_eq!(kw.cmd(&["GET", k]), bulk(&v), "GET after WATCH");
        assert_eq!(kw.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(kw.cmd(&["GET", k]), "+QUEUED\r\n");
        assert_eq!(kw.cmd(&["EXEC"]), format!("*1\r\n{}", bulk(&v)));
    }
    // The replicas have applied the writes: had the stream bumped a
    // counter checked below, it would show now.
    wait_replicated(&cluster);
    for (_, shard) in &keys {
        let (master, replica) = (&shard.master, replica(shard));
        let errors = info(&cluster, replica, "errorstats");
        for e in ["errorstat_MOVED", "errorstat_READONLY"] {
            assert!(!errors.contains(e), "a write reached {replica}:\n{errors}");
        }
        for cmd in ["get", "eval", "multi", "exec", "watch", "blpop"] {
            assert_eq!(stat(&cluster, replica, cmd), None, "{cmd} on {replica}");
        }
        for cmd in ["set", "incr", "rpush"] {
            // Applied from the master; never sent by keyway (rejected).
            let s = stat(&cluster, replica, cmd).unwrap_or_default();
            let clean = s.ends_with("rejected_calls=0,failed_calls=0");
            assert!(clean, "{replica}: {cmd} {s}");
        }
        // GET: one from the script, one in MULTI, two after WATCH.
        let on_master = [("get", 4), ("eval", 2), ("exec", 2), ("watch", 1)];
        for (cmd, n) in on_master.into_iter().chain([("blpop", 1)]) {
            assert_eq!(calls(&cluster, master, cmd), n, "{cmd} on {master}");
        }
    }

    // What goes to replicas: GET, EXISTS, EVAL_RO, MGET split per shard.
    reset_stats(&cluster);
    for (i, (k, _)) in keys.iter().enumerate() {
        let v = format!("v{i}");
        assert_eq!(kw.cmd(&["GET", k]), bulk(&v));
        assert_eq!(kw.cmd(&["EXISTS", k]), ":1\r\n");
        assert_eq!(kw.cmd(&["EVAL_RO", script_get, "1", k]), bulk(&v));
    }
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(|(k, _)| k.as_str()));
    let values = format!("*3\r\n{}{}{}", bulk("v0"), bulk("v1"), bulk("v2"));
    assert_eq!(kw.cmd(&mget), values);
    for (_, shard) in &keys {
        let (master, replica) = (&shard.master, replica(shard));
        // GET: the client's and EVAL_RO's.
        let expected = [("get", 2), ("exists", 1), ("eval_ro", 1), ("mget", 1)];
        for (cmd, n) in expected {
            assert_eq!(calls(&cluster, replica, cmd), n, "{cmd} on {replica}");
            assert_eq!(stat(&cluster, master, cmd), None, "{cmd} on {master}");
        }
    }
}

#[test]
fn readonly_moves_one_client_to_replicas_and_readwrite_moves_it_back() {
    let cluster = Cluster::start();
    let map = cluster.slot_map();
    let proxy = Proxy::start_with_config(&cluster, &read_config("policy = \"master\""));
    let keys = spread_keys("client", 30);
    let pairs = with_values(&keys, "c");
    write_all(&proxy, &pairs);
    wait_replicated(&cluster);
    let (mut a, mut b) = (proxy.raw_client(), proxy.raw_client());
    let client_info = |c: &mut RawClient| c.cmd(&["CLIENT", "INFO"]);
    let id = a.cmd(&["CLIENT", "ID"]);
    let id = format!("id={} ", id.trim_start_matches(':').trim_end());
    assert!(!flags(bulk_text(&client_info(&mut a))).contains('r'));

    assert_eq!(a.cmd(&["READONLY"]), "+OK\r\n");
    let info_a = client_info(&mut a);
    assert!(flags(bulk_text(&info_a)).contains('r'), "{info_a}");
    let list = b.cmd(&["CLIENT", "LIST"]);
    let line_a = bulk_text(&list).lines().find(|l| l.starts_with(&id));
    let line_a = line_a.unwrap_or_else(|| panic!("{id}not in {list}"));
    assert!(flags(line_a).contains('r'), "{line_a}");
    assert!(!flags(bulk_text(&client_info(&mut b))).contains('r'), "b");

    // Both clients at once: a's reads on replicas, b's on masters.
    reset_stats(&cluster);
    for (k, v) in &pairs {
        assert_eq!(a.cmd(&["GET", k]), bulk(v), "a: GET {k}");
        assert_eq!(b.cmd(&["GET", k]), bulk(v), "b: GET {k}");
    }
    // The keys whose slot this range's master owns (in any of its ranges).
    let owned = |m: &str| {
        keys.iter()
            .filter(|k| shard_of(&map, k.1).master == m)
            .count()
    };
    for shard in &map {
        let (m, n) = (&shard.master, owned(&shard.master) as u64);
        let on_replica = calls(&cluster, replica(shard), "get");
        assert_eq!(on_replica, n, "a's GETs, {m}'s replica");
        assert_eq!(calls(&cluster, m, "get"), n, "b's GETs on {m}");
    }

    assert_eq!(a.cmd(&["READWRITE"]), "+OK\r\n");
    let info_a = client_info(&mut a);
    assert!(!flags(bulk_text(&info_a)).contains('r'), "{info_a}");
    reset_stats(&cluster);
    for (k, v) in &pairs {
        assert_eq!(a.cmd(&["GET", k]), bulk(v), "a: GET {k}");
    }
    for shard in &map {
        let (m, n) = (&shard.master, owned(&shard.master) as u64);
        assert_eq!(stat(&cluster, replica(shard), "get"), None, "{m}'s replica");
        assert_eq!(calls(&cluster, m, "get"), n, "a's GETs on {m}");
    }
}

#[test]
fn a_shard_without_replica_errors_without_fallback_and_reads_its_master_with_it() {
    let cluster = Cluster::start();
    let strict = read_config("policy = \"replica\"\nfallback_to_master = false");
    let strict = Proxy::start_with_config(&cluster, &strict);
    let lenient = Proxy::start_with_config(&cluster, &read_config("policy = \"replica\""));
    let keys = key_per_shard(&cluster, "fallback");
    let pairs = with_values(&keys, "f");
    write_all(&strict, &pairs);
    wait_replicated(&cluster);
    let (mut s, mut l) = (strict.raw_client(), lenient.raw_client());
    for (k, v) in &pairs {
        assert_eq!(s.cmd(&["GET", k]), bulk(v), "strict: GET {k}");
        assert_eq!(l.cmd(&["GET", k]), bulk(v), "lenient: GET {k}");
    }

    let (lost_key, lost) = (&pairs[0], &keys[0].1);
    let (dead, master) = (replica(lost).to_string(), lost.master.clone());
    let master_id = cluster.node_id(&master);
    cluster.kill_node(&dead);

    // No fallback: the shard's reads are refused, naming it; keyway may
    // first report the dead connection, so poll.
    let says_replica = |e: &str| e.to_ascii_lowercase().contains("replica");
    let names_shard = |e: &str| e.contains(&master) || e.contains(&master_id) || says_replica(e);
    let mut last = String::new();
    let refused = poll_until(NOTICE, || {
        last = s.cmd(&["GET", &lost_key.0]);
        let err = last.starts_with("-CLUSTERDOWN") || last.starts_with("-ERR");
        (err && names_shard(&last)).then_some(())
    });
    assert!(refused.is_some(), "strict: {lost_key:?}: {last:?}");
    for _ in 0..5 {
        let again = s.cmd(&["GET", &lost_key.0]);
        assert!(again.starts_with('-') && names_shard(&again), "{again:?}");
    }
    for (k, v) in &pairs[1..] {
        assert_eq!(s.cmd(&["GET", k]), bulk(v), "strict: other shards");
    }

    // Fallback (the default): the shard's master serves its reads.
    let served = poll_until(NOTICE, || {
        last = l.cmd(&["GET", &lost_key.0]);
        (last == bulk(&lost_key.1)).then_some(())
    });
    assert!(served.is_some(), "lenient: {lost_key:?}: {last:?}");
    reset_stats(&cluster);
    for _ in 0..20 {
        for (k, v) in &pairs {
            assert_eq!(l.cmd(&["GET", k]), bulk(v), "lenient: GET {k}");
        }
    }
    assert_eq!(calls(&cluster, &master, "get"), 20, "{master}");
    for (_, shard) in &keys[1..] {
        let (m, r) = (&shard.master, replica(shard));
        assert_eq!(calls(&cluster, r, "get"), 20, "{m}'s replica");
        assert_eq!(stat(&cluster, m, "get"), None, "{m}");
    }
}
