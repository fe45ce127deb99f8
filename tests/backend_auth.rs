//! keyway in front of a cluster that needs credentials: every node with
//! `requirepass` and `masterauth` (the operations guide's set-up), or an ACL
//! user. Every kind of backend connection must authenticate (shared RESP2
//! and RESP3, dedicated for blocking commands, WATCH and WAIT, pub/sub,
//! topology refresh); refused credentials are an operator's error, logged
//! once per node and reason, answered `-CLUSTERDOWN` naming the reason, and
//! healed by fixing the password file.

use crate::support;

use std::time::Duration;

use support::pubsub_client::check_channel_and_shard_channel;
use support::util::TempDir;
use support::{key_slot, poll_until, Cluster, Launch, Proxy, RawClient, Ready, OP_TIMEOUT};

const PASSWORD: &str = "kw-cluster-secret";

#[test]
fn every_kind_of_backend_connection_authenticates() {
    let cluster = Cluster::start_with_password(PASSWORD);
    let proxy =
        Proxy::start_with_config(&cluster, &format!("[cluster]\npassword = \"{PASSWORD}\"\n"));
    use_every_kind_of_backend_connection(&cluster, &proxy);
}

/// The ACL rules the README gives for keyway's own user: the data
/// commands of the categories an application uses, and what keyway sends
/// itself (slot map, command table, version, `cluster-node-timeout`,
/// `ASKING`, `WAIT`'s `PING`, `CLIENT UNBLOCK` for a blocked client that
/// left). The README's line must say the same (checked below).
const KEYWAY_ACL: &[&str] = &[
    "on",
    ">kw-user-secret",
    "~*",
    "&*",
    "+@all",
    "-@admin",
    "-@dangerous",
    "+cluster|shards",
    "+cluster|slots",
    "+command",
    "+info",
    "+config|get",
    "+client|unblock",
];

#[test]
fn an_acl_user_with_the_readmes_minimum_rules_serves_every_connection_kind() {
    let readme = include_str!("../README.md");
    let line = format!(
        "ACL SETUSER keyway on >PASSWORD {}",
        KEYWAY_ACL[2..].join(" ")
    );
    assert!(readme.contains(&line), "the README should give: {line}");
    let cluster = Cluster::start_with_password(PASSWORD);
    for node in cluster.all_addrs() {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("keyway")
            .arg(KEYWAY_ACL)
            .query(&mut cluster.conn(&node))
            .unwrap();
    }
    let proxy = Proxy::start_with_config(
        &cluster,
        "[cluster]\nuser = \"keyway\"\npassword = \"kw-user-secret\"\n",
    );
    use_every_kind_of_backend_connection(&cluster, &proxy);
    // It is a real restriction: an admin command is refused by the node.
    let mut con = proxy.conn();
    let denied = redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap_err();
    assert!(denied.to_string().contains("NOPERM"), "{denied}");

    // The node sees keyway's connections as user `keyway`.
    let node = cluster.node_of_slot(key_slot(b"auth:1"));
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut cluster.conn(&node))
        .unwrap();
    let users: Vec<&str> = clients
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("user=")))
        .collect();
    assert!(users.contains(&"keyway"), "{clients}");
}

/// Sends what opens every kind of backend connection through `proxy` and
/// checks each answer.
fn use_every_kind_of_backend_connection(cluster: &Cluster, proxy: &Proxy) {
    let mut con = proxy.conn();

    // Shared connections to every master; a split MGET across slots.
    let keys: Vec<String> = (0..300).map(|i| format!("auth:{i}")).collect();
    for key in &keys {
        let () = redis::cmd("SET").arg(key).arg(key).query(&mut con).unwrap();
    }
    let values: Vec<String> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    assert_eq!(values, keys);
    // Every master: a fan-out, and a script loaded everywhere.
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(size >= keys.len(), "DBSIZE {size}");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 7")
        .query(&mut con)
        .unwrap();
    let seven: i64 = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(seven, 7);

    // RESP3: the node connections that say HELLO 3 after AUTH.
    let mut resp3 = RawClient::connect(&proxy.addr(), OP_TIMEOUT);
    assert!(resp3.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(resp3.cmd(&["GET", "auth:1"]), "$6\r\nauth:1\r\n");

    // WATCH holds a dedicated connection for the transaction.
    let () = redis::cmd("WATCH").arg("auth:0").query(&mut con).unwrap();
    let (value,): (String,) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("auth:0")
        .arg("changed")
        .ignore()
        .cmd("GET")
        .arg("auth:0")
        .query(&mut con)
        .unwrap();
    assert_eq!(value, "changed");
    // WAIT asks the masters written to, each on a dedicated connection.
    let _replicas: i64 = redis::cmd("WAIT").arg(0).arg(2000).query(&mut con).unwrap();

    // A blocking command on a dedicated connection, woken by a push.
    let mut blocked = proxy.conn();
    let waiter = std::thread::spawn(move || {
        redis::cmd("BLPOP")
            .arg("auth:list")
            .arg(10)
            .query::<Option<(String, String)>>(&mut blocked)
    });
    let node = cluster.node_of_slot(key_slot(b"auth:list"));
    poll_until(Duration::from_secs(5), || {
        (cluster.blocked_on(&node) > 0).then_some(())
    })
    .expect("the BLPOP reaches its node, authenticated");
    let _: i64 = redis::cmd("LPUSH")
        .arg("auth:list")
        .arg("x")
        .query(&mut con)
        .unwrap();
    let popped = waiter.join().unwrap().unwrap();
    assert_eq!(popped, Some(("auth:list".to_string(), "x".to_string())));

    // Pub/sub connections: a channel and a shard channel.
    check_channel_and_shard_channel(&proxy.addr(), &mut con, "auth");

    // Nothing was refused along the way.
    let log = proxy.log_tail(200);
    assert!(!log.contains("authentication to"), "{log}");
    assert!(!log.contains("NOPERM"), "{log}");
}

#[test]
fn a_refused_password_is_logged_once_answered_clusterdown_and_healed_by_the_file() {
    let cluster = Cluster::start_with_password(PASSWORD);
    let dir = TempDir::new("auth");
    let password_file = dir.path().join("cluster.pass");
    std::fs::write(&password_file, "wrong-password\n").unwrap();
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\npassword_file = \"{}\"\nretry_interval_ms = 200\n\
             [backend]\nreconnect_max_ms = 200\n",
            password_file.display()
        ),
    )
    .unwrap();
    let seeds: Vec<String> = cluster.seeds().into_iter().take(3).collect();
    let proxy = Proxy::spawn(&seeds, &["--config", config.to_str().unwrap()], Ready::Ping);

    // No slot map without credentials: clients get CLUSTERDOWN, which
    // points at the credentials.
    let mut client = RawClient::connect(&proxy.addr(), OP_TIMEOUT);
    let reply = client.cmd(&["GET", "k"]);
    assert!(
        reply.starts_with("-CLUSTERDOWN") && reply.contains("cluster.user/password"),
        "{reply}"
    );
    // Retried every 200 ms for a while, logged once per node.
    std::thread::sleep(Duration::from_millis(1500));
    let log = proxy.log_tail(400);
    let seed = &seeds[0];
    let lines = log
        .lines()
        .filter(|l| l.contains(&format!("authentication to {seed} failed")))
        .count();
    assert_eq!(lines, 1, "one line per node and reason:\n{log}");
    assert!(log.contains("WRONGPASS"), "{log}");
    assert!(
        !log.contains("wrong-password"),
        "never the password:\n{log}"
    );

    // The file fixed: the next attempt reads it and keyway serves.
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let served = poll_until(Duration::from_secs(10), || {
        (client.cmd(&["SET", "k", "v"]) == "+OK\r\n").then_some(())
    });
    assert!(served.is_some(), "{}", proxy.log_tail(40));
    assert!(proxy.log_tail(400).contains("succeeds again"));

    // The nodes' password changes under keyway: its new connections are
    // refused, and the client's error names the node and the reason.
    let node = cluster.node_of_slot(key_slot(b"k"));
    for node in cluster.all_addrs() {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg("rotated")
            .query(&mut support::cluster::connect(&node, OP_TIMEOUT).unwrap())
            .unwrap();
    }
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut support::cluster::connect_with_password(&node, "rotated").unwrap())
        .unwrap();
    let refused = poll_until(Duration::from_secs(10), || {
        let reply = client.cmd(&["GET", "k"]);
        reply.contains("cannot authenticate").then_some(reply)
    })
    .expect("keyway's reconnect is refused");
    assert!(
        refused.starts_with(&format!(
            "-CLUSTERDOWN keyway cannot authenticate to node {node}"
        )) && refused.contains("WRONGPASS"),
        "{refused}"
    );
    std::fs::write(&password_file, "rotated\n").unwrap();
    let healed = poll_until(Duration::from_secs(10), || {
        (client.cmd(&["GET", "k"]) == "$1\r\nv\r\n").then_some(())
    });
    assert!(healed.is_some(), "{}", proxy.log_tail(40));
}

#[test]
fn sighup_applies_a_cluster_password_fixed_in_the_config_file() {
    let cluster = Cluster::start_with_password(PASSWORD);
    let config =
        |password: &str| format!("[cluster]\npassword = \"{password}\"\nretry_interval_ms = 200\n");
    let launch = Launch {
        ready: Ready::Ping,
        ..Launch::default()
    };
    let proxy = Proxy::start_configured(&cluster, &config("wrong-password"), launch);
    let mut client = proxy.raw_client();
    let refused = client.cmd(&["SET", "k", "v"]);
    assert!(refused.starts_with("-CLUSTERDOWN"), "{refused}");
    // A file that does not validate changes nothing, and keyway lives on.
    proxy.reload("[cluster]\nnosuchkey = 1\n");
    // (keyway keeps logging its refused connections meanwhile: search the
    // whole log, not its last lines.)
    let log = proxy.log_tail(100_000);
    assert!(log.contains("configuration not reloaded"), "{log}");
    assert!(log.contains("nosuchkey"), "the reason names the key: {log}");
    proxy.reload(&config(PASSWORD));
    let served = poll_until(Duration::from_secs(10), || {
        (client.cmd(&["SET", "k", "v"]) == "+OK\r\n").then_some(())
    });
    assert!(served.is_some(), "{}", proxy.log_tail(40));
}
