//! `CONFIG SET`, `CONFIG RESETSTAT` and `CONFIG REWRITE` through keyway
//! reach every node of the cluster, replicas included: `+OK` when every
//! node said `+OK`, else the first node's error (masters in the order of
//! their lowest slot first), naming it. Every check asks each of the six
//! nodes directly, so a command that reached only the masters fails them.

use crate::support;

use std::time::Duration;

use support::{poll_until, Cluster, Proxy, RawClient};

/// `CONFIG GET name` asked of the node at `addr` directly.
fn config_of(cluster: &Cluster, addr: &str, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(&mut cluster.conn(addr))
        .unwrap_or_else(|e| panic!("CONFIG GET {name} on {addr}: {e}"));
    assert_eq!(pair.len(), 2, "{addr}: {pair:?}");
    pair[1].clone()
}

/// Each of the cluster's running nodes with its value of `name`.
fn everywhere(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let nodes = cluster.alive_addrs();
    nodes
        .into_iter()
        .map(|addr| {
            let value = config_of(cluster, &addr, name);
            (addr, value)
        })
        .collect()
}

/// Asserts that every running node, masters and replicas, has `value`.
fn assert_everywhere(cluster: &Cluster, name: &str, value: &str) {
    for (addr, got) in everywhere(cluster, name) {
        assert_eq!(got, value, "{name} on {addr}");
    }
}

/// A RESP3 client of keyway.
fn resp3_client(proxy: &Proxy) -> RawClient {
    let mut client = proxy.raw_client();
    let hello = client.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with('%'), "{hello}");
    client
}

/// The node whose error keyway reports first: the master of slot 0.
fn first_node(cluster: &Cluster) -> String {
    cluster.node_of_slot(0)
}

#[test]
fn config_set_changes_every_node_or_names_the_node_that_refused() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    assert_eq!(cluster.alive_addrs().len(), 6);
    assert_everywhere(&cluster, "maxmemory-policy", "noeviction");

    let mut kw = proxy.raw_client();
    assert_eq!(
        kw.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        "+OK\r\n"
    );
    assert_everywhere(&cluster, "maxmemory-policy", "allkeys-lru");

    // Several parameters at once (Redis 7), from a RESP3 client.
    let mut kw3 = resp3_client(&proxy);
    let set = [
        "CONFIG",
        "SET",
        "maxmemory-policy",
        "allkeys-lfu",
        "slowlog-max-len",
        "77",
        "lfu-log-factor",
        "20",
    ];
    assert_eq!(kw3.cmd(&set), "+OK\r\n");
    assert_everywhere(&cluster, "maxmemory-policy", "allkeys-lfu");
    assert_everywhere(&cluster, "slowlog-max-len", "77");
    assert_everywhere(&cluster, "lfu-log-factor", "20");

    // An unknown parameter: every node refuses the whole command; the
    // reply is the first node's error, its text kept, the node named.
    let first = first_node(&cluster);
    let bad = [
        "CONFIG",
        "SET",
        "maxmemory-policy",
        "volatile-lru",
        "nosuch",
        "1",
    ];
    let expected = format!(
        "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch' (node {first})\r\n"
    );
    assert_eq!(kw.cmd(&bad), expected, "RESP2");
    assert_eq!(kw3.cmd(&bad), expected, "RESP3");
    assert_everywhere(&cluster, "maxmemory-policy", "allkeys-lfu");

    // A bad value: the node's own error, named.
    let refused = kw.cmd(&["CONFIG", "SET", "maxmemory-policy", "bogus"]);
    assert!(
        refused.starts_with(
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy')"
        ) && refused.ends_with(&format!(" (node {first})\r\n")),
        "{refused}"
    );
    assert_everywhere(&cluster, "maxmemory-policy", "allkeys-lfu");
    // A missing value: keyway's arity check, as redis-server words it.
    assert_eq!(
        kw.cmd(&["CONFIG", "SET", "maxmemory-policy"]),
        "-ERR wrong number of arguments for 'config|set' command\r\n"
    );

    // Inside MULTI it is refused, like commands that run on every master.
    assert_eq!(kw.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        kw.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "-ERR 'config set' cannot be queued in a transaction through keyway: \
         it runs on every node, and a transaction runs on one; send it before MULTI or after EXEC\r\n"
    );
    assert_eq!(
        kw.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_everywhere(&cluster, "maxmemory-policy", "allkeys-lfu");
}

#[test]
fn config_resetstat_and_rewrite_reach_every_node() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let nodes = cluster.alive_addrs();
    assert_eq!(nodes.len(), 6);
    let echo_calls = |addr: &str| -> Option<String> {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut cluster.conn(addr))
            .unwrap_or_else(|e| panic!("INFO commandstats on {addr}: {e}"));
        let line = stats.lines().find(|l| l.starts_with("cmdstat_echo:"))?;
        Some(line.split(',').next().unwrap_or(line).to_string())
    };
    // A counter on every node that only this test moves.
    for addr in &nodes {
        let mut con = cluster.conn(addr);
        for _ in 0..3 {
            let _: String = redis::cmd("ECHO").arg("x").query(&mut con).unwrap();
        }
        assert_eq!(
            echo_calls(addr).as_deref(),
            Some("cmdstat_echo:calls=3"),
            "{addr}"
        );
    }
    let mut kw = proxy.raw_client();
    assert_eq!(kw.cmd(&["CONFIG", "RESETSTAT"]), "+OK\r\n");
    for addr in &nodes {
        assert_eq!(echo_calls(addr), None, "stats reset on {addr}");
    }

    // The harness starts each redis-server with arguments, no config
    // file: every node refuses; the first one is named.
    let first = first_node(&cluster);
    let expected = format!("-ERR The server is running without a config file (node {first})\r\n");
    assert_eq!(kw.cmd(&["CONFIG", "REWRITE"]), expected, "RESP2");
    assert_eq!(
        resp3_client(&proxy).cmd(&["CONFIG", "REWRITE"]),
        expected,
        "RESP3"
    );
    for addr in &nodes {
        let mut con = cluster.conn(addr);
        let refused = redis::cmd("CONFIG")
            .arg("REWRITE")
            .query::<()>(&mut con)
            .unwrap_err();
        assert!(
            refused.to_string().contains("without a config file"),
            "{addr} has no config file either: {refused}"
        );
    }
}

#[test]
fn an_unreachable_replica_is_named_until_the_cluster_marks_it_failed() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut kw = proxy.raw_client();
    // Connections to every node are open now.
    assert_eq!(
        kw.cmd(&["CONFIG", "SET", "slowlog-max-len", "11"]),
        "+OK\r\n"
    );
    assert_everywhere(&cluster, "slowlog-max-len", "11");

    let replica = cluster.replicas()[0].clone();
    cluster.kill_node(&replica);
    let reply = kw.cmd(&["CONFIG", "SET", "slowlog-max-len", "12"]);
    let unreachable = format!(
        "-CLUSTERDOWN keyway cannot connect to node {replica}; \
         the cluster may be failing over, retry shortly\r\n"
    );
    let lost = format!(
        "-ERR keyway lost the connection to node {replica} before it replied; \
         the command may or may not have run\r\n"
    );
    assert!(reply == unreachable || reply == lost, "{reply}");
    // The nodes that answered did it.
    assert_everywhere(&cluster, "slowlog-max-len", "12");

    // Once the cluster marks the replica failed, keyway leaves it out.
    let mut last = String::new();
    let ok = poll_until(Duration::from_secs(30), || {
        last = kw.cmd(&["CONFIG", "SET", "slowlog-max-len", "13"]);
        (last == "+OK\r\n").then_some(())
    });
    assert!(ok.is_some(), "still refused: {last}");
    assert_everywhere(&cluster, "slowlog-max-len", "13");
}
