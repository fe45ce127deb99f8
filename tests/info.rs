//! `INFO` through keyway: keyway's own `Server`/`Clients`/`Cluster`
//! sections (`redis_mode:standalone`, `cluster_enabled:0`, the cluster's
//! `redis_version`), the masters' sections summed (keys per db, memory
//! with its human forms, replicas of every master), in RESP2 and RESP3,
//! read by the `redis` crate as client libraries do on connect.

use crate::support;

use support::{Cluster, Proxy};

fn field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
        .trim_end()
        .to_string()
}

fn info_of(cluster: &Cluster, node: &str, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut cluster.conn(node))
        .expect("INFO")
}

#[test]
fn info_merges_the_masters_and_describes_keyway() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    let masters = cluster.masters();

    // Keys on every master, a third of them with a TTL.
    for i in 0..600 {
        let key = format!("info:{i}");
        let () = redis::cmd("SET").arg(&key).arg(i).query(&mut con).unwrap();
        if i % 3 == 0 {
            let _: i64 = redis::cmd("EXPIRE")
                .arg(&key)
                .arg(3600)
                .query(&mut con)
                .unwrap();
        }
    }
    let per_master: Vec<String> = masters
        .iter()
        .map(|m| field(&info_of(&cluster, m, "keyspace"), "db0"))
        .collect();
    assert!(
        per_master.iter().all(|db| !db.starts_with("keys=600")),
        "spread: {per_master:?}"
    );

    let text: String = redis::cmd("INFO").query(&mut con).unwrap();
    let node_version = field(&info_of(&cluster, &masters[0], "server"), "redis_version");
    assert_eq!(field(&text, "redis_version"), node_version);
    assert_eq!(field(&text, "redis_mode"), "standalone");
    assert_eq!(
        field(&text, "cluster_enabled"),
        "0",
        "clients must not switch to cluster mode"
    );
    assert_eq!(field(&text, "tcp_port"), proxy.port().to_string());
    assert_eq!(field(&text, "process_id"), proxy.pid().to_string());
    assert_eq!(field(&text, "keyway_version"), env!("CARGO_PKG_VERSION"));
    let clients: usize = field(&text, "connected_clients").parse().unwrap();
    assert!(clients >= 1, "{clients}");
    let total = |key: &str| -> u64 {
        per_master
            .iter()
            .map(|db| {
                db.split(',')
                    .find_map(|p| p.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    assert!(
        total("keys") >= 600 && total("expires") == 200,
        "{per_master:?}"
    );
    let db0 = field(&text, "db0");
    let want = format!("keys={},expires=200,avg_ttl=", total("keys"));
    assert!(db0.starts_with(&want), "{db0} vs masters {per_master:?}");
    assert_eq!(field(&text, "connected_slaves"), masters.len().to_string());
    for i in 0..masters.len() {
        assert!(field(&text, &format!("slave{i}")).contains("state=online"));
    }
    for section in [
        "Server",
        "Clients",
        "Memory",
        "Persistence",
        "Stats",
        "Replication",
        "CPU",
        "Cluster",
        "Keyspace",
    ] {
        assert!(
            text.contains(&format!("# {section}\r\n")),
            "{section} in:\n{text}"
        );
    }

    // Memory summed over the masters, read between two direct reads.
    let sum = |cluster: &Cluster| -> u64 {
        masters
            .iter()
            .map(|m| {
                field(&info_of(cluster, m, "memory"), "used_memory")
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    let before = sum(&cluster);
    let memory: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    let after = sum(&cluster);
    let used: u64 = field(&memory, "used_memory").parse().unwrap();
    let (low, high) = (before.min(after), before.max(after));
    assert!(
        used * 10 >= low * 9 && used * 10 <= high * 11,
        "{used} vs {before}..{after}"
    );
    let human = field(&memory, "used_memory_human");
    let mib: f64 = human.strip_suffix('M').expect("MiB").parse().unwrap();
    assert!(
        (mib - used as f64 / 1048576.0).abs() < 0.01,
        "{human} for {used}"
    );
    assert!(field(&memory, "used_memory_peak").parse::<u64>().unwrap() >= used / 2);
    field(&memory, "used_memory_peak_human");
    assert!(
        !memory.contains("# Server"),
        "only the section asked for:\n{memory}"
    );

    // Several sections at once; the redis crate's parser reads them.
    let dict: redis::InfoDict = redis::cmd("INFO")
        .arg("server")
        .arg("keyspace")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        dict.get::<String>("redis_mode").as_deref(),
        Some("standalone")
    );
    assert!(dict.get::<String>("used_memory").is_none());

    // RESP3: a verbatim string, as redis-server sends it.
    let mut raw = proxy.raw_client();
    assert!(raw.cmd(&["HELLO", "3"]).starts_with('%'));
    let reply = raw.cmd(&["INFO", "cluster"]);
    assert!(
        reply.starts_with('=') && reply.contains("txt:# Cluster\r\ncluster_enabled:0\r\n"),
        "{reply:?}"
    );
    assert!(
        raw.cmd(&["INFO", "nosuchsection"]).starts_with('='),
        "an empty text, like redis-server"
    );
}

/// `INFO keyway`: keyway's headline figures (the ones `/metrics` has) for
/// people without Prometheus; `INFO` and `INFO all` end with the same
/// section. `INFO commandstats` and `latencystats` are the masters'
/// merged: each command's calls summed over the masters.
#[test]
fn info_keyway_has_the_headline_figures_and_commandstats_sum_the_masters() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    // A command nothing else sends, to every master.
    for i in 0..90 {
        let _: i64 = redis::cmd("STRLEN")
            .arg(format!("info:keyway:{i}"))
            .query(&mut con)
            .unwrap();
    }
    let split = redis::cmd("MSET")
        .arg("info:{a}")
        .arg(1)
        .arg("info:{b}")
        .arg(2)
        .query::<()>(&mut con);
    // MSET is split over slots by keyway: it succeeds; RENAME cannot be.
    assert!(split.is_ok(), "{split:?}");
    let crossslot = redis::cmd("RENAME")
        .arg("info:{a}")
        .arg("info:{b}")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(crossslot.code(), Some("CROSSSLOT"));

    let keyway: String = redis::cmd("INFO").arg("keyway").query(&mut con).unwrap();
    assert!(keyway.starts_with("# Keyway\r\n"), "{keyway}");
    assert!(!keyway.contains("# Server"), "{keyway}");
    assert_eq!(field(&keyway, "ready"), "1");
    assert_eq!(field(&keyway, "slots_covered"), "16384");
    assert_eq!(field(&keyway, "masters"), "3");
    assert_eq!(field(&keyway, "replicas"), "3");
    assert_eq!(field(&keyway, "failovers_seen"), "0");
    let processed: u64 = field(&keyway, "commands_processed").parse().unwrap();
    assert!(processed >= 92, "{keyway}");
    let errors = field(&keyway, "command_errors");
    assert!(errors.contains("crossslot=1,"), "{errors}");
    assert!(errors.starts_with("moved=0,ask=0,"), "{errors}");
    let latency = field(&keyway, "command_latency_usec");
    assert!(
        latency.starts_with("p50_le=") && latency.contains(",p99_le="),
        "{latency}"
    );
    let connections: u64 = field(&keyway, "backend_connections").parse().unwrap();
    assert!(connections >= 3, "{keyway}");
    assert_eq!(field(&keyway, "backend_requests_in_flight"), "0");

    for args in [&[][..], &["all"][..], &["default"][..]] {
        let text: String = redis::cmd("INFO").arg(args).query(&mut con).unwrap();
        assert!(
            text.contains("\r\n# Keyway\r\nready:1\r\n"),
            "INFO {args:?}"
        );
    }
    let server: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    assert!(!server.contains("# Keyway"), "{server}");

    // The masters' counts of STRLEN, summed: exactly what was sent.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let strlen = field(&stats, "cmdstat_strlen");
    assert!(strlen.starts_with("calls=90,"), "{strlen}");
    let latency: String = redis::cmd("INFO")
        .arg("latencystats")
        .query(&mut con)
        .unwrap();
    let strlen = field(&latency, "latency_percentiles_usec_strlen");
    assert!(strlen.starts_with("p50="), "{strlen}");
}

/// `MEMORY STATS`: one map with a node's fields in a node's order, key
/// counts summed exactly, bytes summed, ratios recomputed (positive
/// doubles in RESP3, as a node sends them).
#[test]
fn memory_stats_merges_every_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    for i in 0..300 {
        let () = redis::cmd("SET")
            .arg(format!("memory:{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    let masters = cluster.masters();
    let stats_of = |con: &mut redis::Connection| -> Vec<(String, redis::Value)> {
        let flat: Vec<redis::Value> = redis::cmd("MEMORY").arg("STATS").query(con).unwrap();
        flat.chunks(2)
            .map(|kv| match &kv[0] {
                redis::Value::BulkString(k) => {
                    (String::from_utf8_lossy(k).into_owned(), kv[1].clone())
                }
                other => panic!("field name {other:?}"),
            })
            .collect()
    };
    let int = |stats: &[(String, redis::Value)], name: &str| -> i64 {
        match stats.iter().find(|(k, _)| k == name) {
            Some((_, redis::Value::Int(n))) => *n,
            other => panic!("{name}: {other:?}"),
        }
    };
    let direct: Vec<Vec<(String, redis::Value)>> = masters
        .iter()
        .map(|m| stats_of(&mut cluster.conn(m)))
        .collect();
    let merged = stats_of(&mut con);
    let names = |s: &[(String, redis::Value)]| s.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&merged),
        names(&direct[0]),
        "a node's fields, in its order"
    );
    let keys: i64 = direct.iter().map(|s| int(s, "keys.count")).sum();
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(int(&merged, "keys.count"), keys);
    assert_eq!(keys, dbsize);
    let allocated: i64 = direct.iter().map(|s| int(s, "total.allocated")).sum();
    let through = int(&merged, "total.allocated");
    assert!(
        through > allocated / 2 && through < allocated * 2,
        "total.allocated {through} through keyway, {allocated} summed directly"
    );
    let net = through - int(&merged, "startup.allocated");
    assert_eq!(int(&merged, "keys.bytes-per-key"), net / keys);

    // RESP3: a map, ratios as doubles.
    let mut raw = proxy.raw_client();
    raw.cmd(&["HELLO", "3"]);
    let reply = raw.cmd(&["MEMORY", "STATS"]);
    assert!(reply.starts_with('%'), "{reply:?}");
    let fragmentation = reply
        .split("$13\r\nfragmentation\r\n,")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no fragmentation double in {reply:?}"));
    assert!(fragmentation > 0.0, "{fragmentation}");
}
