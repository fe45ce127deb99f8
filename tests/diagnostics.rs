//! Per-node diagnostics through keyway, merged from every master with each
//! part naming its node: `SLOWLOG`, `LATENCY`, `FUNCTION STATS`, and
//! `SCRIPT KILL` / `FUNCTION KILL`, which reach a master busy running a
//! script on connections of their own.

use crate::support;

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use redis::Value;
use support::{key_for_slot, poll_until, Cluster, Proxy, RawClient};

/// A key served by `master`.
fn key_on(cluster: &Cluster, master: &str, name: &str) -> String {
    let slot = cluster.slots_of(master)[0];
    format!("{{{}}}:{name}", key_for_slot(slot))
}

/// `CONFIG SET name value` on every master, directly.
fn config_set_on_masters(cluster: &Cluster, name: &str, value: &str) {
    for master in cluster.masters() {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut cluster.conn(&master))
            .unwrap();
    }
}

/// `SLOWLOG LEN` of every master, asked directly, summed.
fn masters_slowlog_len(cluster: &Cluster) -> i64 {
    cluster
        .masters()
        .iter()
        .map(|m| {
            redis::cmd("SLOWLOG")
                .arg("LEN")
                .query::<i64>(&mut cluster.conn(m))
                .unwrap()
        })
        .sum()
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn array(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn slowlog_merges_every_master_newest_first_naming_the_node() {
    let cluster = Cluster::start();
    // keyway's own slow log off: only the masters' entries here.
    let proxy = Proxy::start_with_config(&cluster, "[proxy]\nslowlog_slower_than_us = -1\n");
    let masters = cluster.masters();
    config_set_on_masters(&cluster, "slowlog-log-slower-than", "0");
    let mut con = proxy.conn();
    for (i, master) in masters.iter().enumerate() {
        for n in 0..3 {
            let key = key_on(&cluster, master, &format!("slow{i}-{n}"));
            let _: () = redis::cmd("SET").arg(&key).arg(n).query(&mut con).unwrap();
        }
    }
    // Nothing more is logged from here on: the lengths hold still.
    config_set_on_masters(&cluster, "slowlog-log-slower-than", "-1");

    let entries: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let mut named = BTreeSet::new();
    let mut last = (i64::MAX, i64::MAX);
    for entry in &entries {
        let fields = array(entry);
        // id, timestamp, duration, args, client, name, and the node.
        assert_eq!(fields.len(), 7, "{entry:?}");
        let node = text(&fields[6]);
        assert!(masters.contains(&node), "{node}");
        // Newest first: by timestamp, then id.
        let at = (int(&fields[1]), int(&fields[0]));
        assert!(at <= last, "newest first: {entries:?}");
        last = at;
        let args: Vec<String> = array(&fields[3]).iter().map(text).collect();
        if args[0] == "SET" {
            let key = &args[1];
            assert_eq!(
                cluster.node_of_slot(support::key_slot(key.as_bytes())),
                node,
                "{key} logged by its own master"
            );
            named.insert(node);
        }
    }
    assert_eq!(
        named,
        masters.iter().cloned().collect(),
        "SETs from every master"
    );

    let direct = masters_slowlog_len(&cluster);
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut con).unwrap();
    assert_eq!(len, direct);
    let all: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(all.len() as i64, len, "-1: every entry");
    let default: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    assert_eq!(default.len(), 10, "10 by default, as Redis");
    assert_eq!(default[..], all[..10], "the newest ten");

    // RESP3: the same entries, one more element each.
    let mut raw = proxy.raw_client();
    raw.cmd(&["HELLO", "3"]);
    assert!(raw
        .cmd(&["SLOWLOG", "GET", "1"])
        .starts_with("*1\r\n*7\r\n"));

    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    for master in &masters {
        let n: i64 = redis::cmd("SLOWLOG")
            .arg("LEN")
            .query(&mut cluster.conn(master))
            .unwrap();
        assert_eq!(n, 0, "{master} reset");
    }
    let help: Vec<String> = redis::cmd("SLOWLOG").arg("HELP").query(&mut con).unwrap();
    assert!(help.len() > 3);
}

/// keyway's own slow log (`proxy.slowlog_slower_than_us`, here 0: every
/// request): `SLOWLOG GET` lists its entries beside the masters', with
/// `keyway` as the node, the command's name, the client's address and
/// name; `SLOWLOG LEN` counts both; `SLOWLOG RESET` clears both.
#[test]
fn keyways_own_slow_requests_are_listed_beside_the_masters() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_with_config(
        &cluster,
        "[proxy]\nslowlog_slower_than_us = 0\nslowlog_max_len = 1000\n",
    );
    let mut con = proxy.conn();
    let () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("slowclient")
        .query(&mut con)
        .unwrap();
    config_set_on_masters(&cluster, "slowlog-log-slower-than", "0");
    for i in 0..5 {
        let _: i64 = redis::cmd("STRLEN")
            .arg(format!("slow:{i}"))
            .query(&mut con)
            .unwrap();
    }
    config_set_on_masters(&cluster, "slowlog-log-slower-than", "-1");

    let entries: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let (mut keyways, mut masters_strlen) = (Vec::new(), 0);
    let mut last = (i64::MAX, i64::MAX);
    for entry in &entries {
        let fields = array(entry);
        assert_eq!(fields.len(), 7, "{entry:?}");
        let at = (int(&fields[1]), int(&fields[0]));
        let args: Vec<String> = array(&fields[3]).iter().map(text).collect();
        let node = text(&fields[6]);
        if node == "keyway" {
            assert!(at.0 <= last.0, "newest first: {entries:?}");
            assert!(text(&fields[4]).starts_with("127.0.0.1:"), "{entry:?}");
            keyways.push((args[0].clone(), text(&fields[5])));
        } else {
            assert!(cluster.masters().contains(&node), "{node}");
            masters_strlen += usize::from(args[0] == "STRLEN");
        }
        last = at;
    }
    assert_eq!(masters_strlen, 5, "the masters' own STRLEN entries");
    let strlens: Vec<&(String, String)> = keyways.iter().filter(|(c, _)| c == "strlen").collect();
    assert_eq!(strlens.len(), 5, "{keyways:?}");
    assert!(
        strlens.iter().all(|(_, name)| name == "slowclient"),
        "{keyways:?}"
    );
    assert!(
        keyways.iter().any(|(c, _)| c == "client|setname"),
        "{keyways:?}"
    );

    // LEN: the masters' and keyway's (the GET above is logged now too).
    let direct = masters_slowlog_len(&cluster);
    let len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(&mut con).unwrap();
    assert_eq!(len, direct + keyways.len() as i64 + 1);

    // RESET clears both; only the RESET itself is then in keyway's log.
    let () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let after: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").query(&mut con).unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    let fields = array(&after[0]);
    assert_eq!(text(&array(&fields[3])[0]), "slowlog|reset");
    assert_eq!(text(&fields[6]), "keyway");
}

#[test]
fn latency_reports_every_master_naming_the_node() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let masters = cluster.masters();
    config_set_on_masters(&cluster, "latency-monitor-threshold", "1");
    let mut con = proxy.conn();
    for master in &masters {
        let key = key_on(&cluster, master, "lat");
        let _: Value = redis::cmd("EVAL")
            .arg("local i=0 while i<3000000 do i=i+1 end")
            .arg(1)
            .arg(&key)
            .query(&mut con)
            .unwrap();
    }
    let all: BTreeSet<String> = masters.iter().cloned().collect();

    let latest: Vec<Value> = redis::cmd("LATENCY").arg("LATEST").query(&mut con).unwrap();
    let nodes: BTreeSet<String> = latest
        .iter()
        .map(|e| {
            let fields = array(e);
            assert_eq!(fields.len(), 5, "event, time, latest, max, node: {e:?}");
            assert_eq!(text(&fields[0]), "command");
            text(&fields[4])
        })
        .collect();
    assert_eq!(nodes, all);

    let history: Vec<Value> = redis::cmd("LATENCY")
        .arg("HISTORY")
        .arg("command")
        .query(&mut con)
        .unwrap();
    let samples: Vec<(i64, String)> = history
        .iter()
        .map(|s| {
            let fields = array(s);
            assert_eq!(fields.len(), 3, "time, latency, node: {s:?}");
            (int(&fields[0]), text(&fields[2]))
        })
        .collect();
    assert!(samples.windows(2).all(|w| w[0].0 <= w[1].0), "{samples:?}");
    assert_eq!(
        samples.iter().map(|s| s.1.clone()).collect::<BTreeSet<_>>(),
        all
    );

    let doctor: String = redis::cmd("LATENCY").arg("DOCTOR").query(&mut con).unwrap();
    let graph: String = redis::cmd("LATENCY")
        .arg("GRAPH")
        .arg("command")
        .query(&mut con)
        .unwrap();
    for master in &masters {
        assert!(doctor.contains(&format!("# node {master}\n")), "{doctor}");
        assert!(graph.contains(&format!("# node {master}\n")), "{graph}");
    }
    let mut raw = proxy.raw_client();
    raw.cmd(&["HELLO", "3"]);
    assert!(
        raw.cmd(&["LATENCY", "DOCTOR"]).starts_with('='),
        "verbatim in RESP3"
    );

    // Every master's calls, in one histogram.
    let histogram = |con: &mut redis::Connection| -> (i64, Vec<i64>) {
        let reply: Value = redis::cmd("LATENCY")
            .arg("HISTOGRAM")
            .arg("eval")
            .query(con)
            .unwrap();
        let fields = array(&array(&reply)[1]);
        let buckets: Vec<i64> = array(&fields[3]).iter().map(int).collect();
        (int(&fields[1]), buckets)
    };
    let direct: i64 = masters
        .iter()
        .map(|m| histogram(&mut cluster.conn(m)).0)
        .sum();
    let (calls, buckets) = histogram(&mut con);
    assert_eq!(calls, direct);
    assert_eq!(calls, masters.len() as i64);
    assert_eq!(
        buckets.last(),
        Some(&calls),
        "cumulative: the last counts all"
    );

    // MEMORY DOCTOR and MALLOC-STATS: each master's own text, named.
    for sub in ["DOCTOR", "MALLOC-STATS"] {
        let text: String = redis::cmd("MEMORY").arg(sub).query(&mut con).unwrap();
        for master in &masters {
            let direct: String = redis::cmd("MEMORY")
                .arg(sub)
                .query(&mut cluster.conn(master))
                .unwrap();
            let first_line = direct.lines().next().unwrap_or_default();
            assert!(
                text.contains(&format!("# node {master}\n{first_line}")),
                "MEMORY {sub}: {text}"
            );
        }
    }
    let purged: String = redis::cmd("MEMORY").arg("PURGE").query(&mut con).unwrap();
    assert_eq!(purged, "OK");

    // RESET counts the event types it cleared on all masters: at least the
    // `command` event on each (a loaded machine may have added others, with
    // a 1 ms threshold), and the `command` events are gone afterwards.
    let reset: i64 = redis::cmd("LATENCY").arg("RESET").query(&mut con).unwrap();
    assert!(
        reset >= masters.len() as i64,
        "at least one event on each master: {reset}"
    );
    let latest: Vec<Value> = redis::cmd("LATENCY").arg("LATEST").query(&mut con).unwrap();
    assert!(
        latest.iter().all(|e| text(&array(e)[0]) != "command"),
        "{latest:?}"
    );
}

/// Starts `args` (an endless script) on a new client of `proxy`, in a
/// thread; its reply is the thread's result.
fn run_busy(proxy: &Proxy, args: &'static [&'static str]) -> thread::JoinHandle<String> {
    let mut client = RawClient::connect(&proxy.addr(), Duration::from_secs(30));
    thread::spawn(move || client.cmd(args))
}

/// Sends `kill` through `proxy`, from a client speaking `proto` ("2" or
/// "3"), until a master is busy enough to take it.
fn kill_until_ok(proxy: &Proxy, proto: &str, kill: &[&str]) {
    let mut client = proxy.raw_client();
    client.cmd(&["HELLO", proto]);
    let killed = poll_until(Duration::from_secs(10), || {
        let reply = client.cmd(kill);
        if reply == "+OK\r\n" {
            return Some(());
        }
        assert!(reply.starts_with("-NOTBUSY"), "{reply}");
        thread::sleep(Duration::from_millis(50));
        None
    });
    assert!(killed.is_some(), "{kill:?} never killed the script");
}

#[test]
fn script_kill_reaches_the_busy_master_on_its_own_connection() {
    let cluster = Cluster::start();
    // One worker: a KILL on the shared connection would queue behind the script.
    let proxy = Proxy::start_with(&cluster, &["--workers", "1"]);
    config_set_on_masters(&cluster, "busy-reply-threshold", "100");
    let mut client = proxy.raw_client();
    assert!(client.cmd(&["SCRIPT", "KILL"]).starts_with("-NOTBUSY"));

    let busy = run_busy(&proxy, &["EVAL", "while true do end", "1", "{busy}k"]);
    // RESP3: its dedicated connections are opened (HELLO 3) while busy.
    kill_until_ok(&proxy, "3", &["SCRIPT", "KILL"]);
    let reply = busy.join().unwrap();
    assert!(reply.contains("Script killed by user"), "{reply}");

    // keyway's shared connections carry on.
    assert_eq!(client.cmd(&["SET", "{busy}k", "1"]), "+OK\r\n");
    assert_eq!(client.cmd(&["GET", "{busy}k"]), "$1\r\n1\r\n");
    assert!(client.cmd(&["SCRIPT", "KILL"]).starts_with("-NOTBUSY"));
}

/// The bytes of `FUNCTION STATS` from `addr` in `proto` ("2" or "3").
fn function_stats(addr: &str, proto: &str) -> String {
    let mut client = RawClient::connect(addr, Duration::from_secs(10));
    client.cmd(&["HELLO", proto]);
    client.cmd(&["FUNCTION", "STATS"])
}

#[test]
fn function_kill_and_stats_see_the_running_function() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_with(&cluster, &["--workers", "1"]);
    config_set_on_masters(&cluster, "busy-reply-threshold", "100");
    let mut client = proxy.raw_client();
    let library =
        "#!lua name=busy\nredis.register_function('spin', function() while true do end end)";
    assert_eq!(client.cmd(&["FUNCTION", "LOAD", library]), "$4\r\nbusy\r\n");

    // Idle: exactly what a master says, in both protocols.
    let master = cluster.masters()[0].clone();
    for proto in ["2", "3"] {
        let direct = function_stats(&master, proto);
        assert_eq!(function_stats(&proxy.addr(), proto), direct, "RESP{proto}");
        assert!(direct.contains("running_script"), "{direct}");
    }
    assert!(client.cmd(&["FUNCTION", "KILL"]).starts_with("-NOTBUSY"));

    let busy = run_busy(&proxy, &["FCALL", "spin", "1", "{busy}k"]);
    let running = poll_until(Duration::from_secs(10), || {
        let stats = function_stats(&proxy.addr(), "3");
        stats.contains("spin").then_some(stats)
    });
    let running = running.expect("FUNCTION STATS shows the running function");
    assert!(running.starts_with("%2\r\n"), "{running}");
    // SCRIPT KILL does not kill a function: that master says BUSY.
    assert!(client.cmd(&["SCRIPT", "KILL"]).starts_with("-BUSY"));
    kill_until_ok(&proxy, "2", &["FUNCTION", "KILL"]);
    let reply = busy.join().unwrap();
    assert!(reply.contains("Script killed by user"), "{reply}");

    assert_eq!(client.cmd(&["SET", "{busy}k", "1"]), "+OK\r\n");
    assert_eq!(
        function_stats(&proxy.addr(), "2"),
        function_stats(&master, "2")
    );
}
