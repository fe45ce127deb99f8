//! `CLIENT LIST`, `CLIENT INFO`, `CLIENT KILL` and `CLIENT NO-EVICT`
//! through keyway: they show and act on keyway's own clients, whichever of
//! its worker threads serves them (the harness runs two), never on the
//! cluster's nodes.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::{key_for_slot, poll_until, Cluster, Proxy, RawClient};

const TIMEOUT: Duration = Duration::from_secs(10);

/// One `CLIENT LIST` line as `field → value`.
fn fields(line: &str) -> HashMap<String, String> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A `redis` crate connection to keyway.
fn connect(proxy: &Proxy) -> redis::Connection {
    redis::Client::open(format!("redis://{}", proxy.addr()))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// keyway's `CLIENT LIST`, by client id.
fn list(conn: &mut redis::Connection, args: &[&str]) -> HashMap<u64, HashMap<String, String>> {
    let text: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg(args)
        .query(conn)
        .expect("CLIENT LIST");
    text.lines()
        .map(fields)
        .map(|f| (f["id"].parse().unwrap(), f))
        .collect()
}

/// A raw client of keyway and its `CLIENT ID`.
fn client(proxy: &Proxy) -> (RawClient, u64) {
    let mut raw = RawClient::connect(&proxy.addr(), TIMEOUT);
    let id = raw.cmd(&["CLIENT", "ID"]);
    let id = id.trim_start_matches(':').trim().parse().unwrap();
    (raw, id)
}

#[test]
fn client_list_shows_every_client_of_every_worker_with_its_state() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut lister = connect(&proxy);
    // Enough clients that both workers serve some (SO_REUSEPORT spreads them).
    let mut plain: Vec<(RawClient, u64)> = (0..8).map(|_| client(&proxy)).collect();
    for (i, (raw, _)) in plain.iter_mut().enumerate() {
        assert_eq!(
            raw.cmd(&["CLIENT", "SETNAME", &format!("app-{i}")]),
            "+OK\r\n"
        );
    }
    let (mut named, named_id) = client(&proxy);
    named.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "walker"]);
    named.cmd(&["CLIENT", "SETINFO", "LIB-VER", "1.2"]);
    named.cmd(&["CLIENT", "NO-EVICT", "on"]);
    let (mut resp3, resp3_id) = client(&proxy);
    resp3.cmd(&["HELLO", "3"]);
    let (mut subscriber, subscriber_id) = client(&proxy);
    subscriber.cmd(&["SUBSCRIBE", "news"]);
    subscriber.cmd(&["PSUBSCRIBE", "n*"]);
    let (mut queuing, queuing_id) = client(&proxy);
    queuing.cmd(&["MULTI"]);
    queuing.cmd(&["SET", "{q}a", "1"]);
    queuing.cmd(&["SET", "{q}b", "2"]);
    let (mut blocked, blocked_id) = client(&proxy);
    let key = format!("{{{}}}:list", key_for_slot(0));
    blocked.send(&support::resp::encode(&[b"BLPOP", key.as_bytes(), b"0"]));

    let all = poll_until(TIMEOUT, || {
        let all = list(&mut lister, &[]);
        (all[&blocked_id]["flags"] == "b").then_some(all)
    })
    .expect("the BLPOP client shows flags=b");
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut lister)
        .unwrap();
    assert!(info.contains("\r\nblocked_clients:1\r\n"), "{info}");
    // The 13 above and the lister itself; nobody else.
    assert_eq!(all.len(), 14, "{all:#?}");
    for (i, (_, id)) in plain.iter().enumerate() {
        assert_eq!(all[id]["name"], format!("app-{i}"));
        assert_eq!(all[id]["flags"], "N");
        assert_eq!(all[id]["multi"], "-1");
        assert_eq!(all[id]["resp"], "2");
        assert_eq!(all[id]["laddr"], proxy.addr());
    }
    assert_eq!(all[&named_id]["lib-name"], "walker");
    assert_eq!(all[&named_id]["lib-ver"], "1.2");
    assert_eq!(all[&named_id]["flags"], "e");
    assert_eq!(all[&resp3_id]["resp"], "3");
    let sub = &all[&subscriber_id];
    assert_eq!(
        (&*sub["flags"], &*sub["sub"], &*sub["psub"]),
        ("P", "1", "1")
    );
    let multi = &all[&queuing_id];
    assert_eq!((&*multi["flags"], &*multi["multi"]), ("x", "2"));

    // Filters.
    let pubsub = list(&mut lister, &["TYPE", "pubsub"]);
    assert_eq!(pubsub.keys().collect::<Vec<_>>(), [&subscriber_id]);
    let some = list(
        &mut lister,
        &["ID", &named_id.to_string(), &resp3_id.to_string(), "999999"],
    );
    let mut ids: Vec<u64> = some.into_keys().collect();
    ids.sort();
    assert_eq!(ids, [named_id, resp3_id]);

    // CLIENT INFO is the client's own line.
    let info = fields(named.cmd(&["CLIENT", "INFO"]).lines().nth(1).unwrap());
    assert_eq!(info["id"], named_id.to_string());
    assert_eq!(info["flags"], "e");

    // Gone clients leave the list.
    drop(plain);
    let left = poll_until(TIMEOUT, || {
        let all = list(&mut lister, &[]);
        (all.len() == 6).then_some(all)
    });
    assert!(left.is_some(), "{:#?}", list(&mut lister, &[]));
}

#[test]
fn client_kill_closes_keyway_clients_on_any_worker() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let (mut killer, killer_id) = client(&proxy);

    // A client blocked in BLPOP: killed at once, and its dedicated
    // connection on the node closes with it.
    let key = format!("{{{}}}:list", key_for_slot(0));
    let node = cluster.node_of_slot(0);
    let (mut blocked, blocked_id) = client(&proxy);
    blocked.send(&support::resp::encode(&[b"BLPOP", key.as_bytes(), b"0"]));
    poll_until(TIMEOUT, || (cluster.blocked_on(&node) == 1).then_some(()))
        .expect("BLPOP blocked on the node");
    let id = blocked_id.to_string();
    assert_eq!(killer.cmd(&["CLIENT", "KILL", "ID", &id]), ":1\r\n");
    blocked.expect_closed();
    poll_until(TIMEOUT, || (cluster.blocked_on(&node) == 0).then_some(()))
        .expect("the node's blocked connection closed");
    assert_eq!(killer.cmd(&["CLIENT", "KILL", "ID", &id]), ":0\r\n");

    // Old form by address: +OK, or Redis's error.
    let (mut victim, victim_id) = client(&proxy);
    let info = fields(victim.cmd(&["CLIENT", "INFO"]).lines().nth(1).unwrap());
    assert_eq!(info["id"], victim_id.to_string());
    let addr = info["addr"].clone();
    assert_eq!(killer.cmd(&["CLIENT", "KILL", &addr]), "+OK\r\n");
    victim.expect_closed();
    assert_eq!(
        killer.cmd(&["CLIENT", "KILL", &addr]),
        "-ERR No such client\r\n"
    );

    // Everyone but the caller (SKIPME yes is the default), on both workers.
    let mut others: Vec<(RawClient, u64)> = (0..10).map(|_| client(&proxy)).collect();
    assert_eq!(killer.cmd(&["CLIENT", "KILL", "TYPE", "normal"]), ":10\r\n");
    for (raw, _) in &mut others {
        raw.expect_closed();
    }
    assert_eq!(killer.cmd(&["PING"]), "+PONG\r\n");
    let ids: Vec<u64> = list(&mut connect(&proxy), &[]).into_keys().collect();
    assert!(
        ids.contains(&killer_id) && ids.len() == 2,
        "the killer and the lister: {ids:?}"
    );

    // Errors as redis-server words them; the connection stays usable.
    for (args, error) in [
        (
            &["CLIENT", "KILL", "USER", "bob"][..],
            "-ERR No such user 'bob'\r\n",
        ),
        (
            &["CLIENT", "KILL", "TYPE", "x"],
            "-ERR Unknown client type 'x'\r\n",
        ),
        (
            &["CLIENT", "KILL", "ID", "1", "SKIPME"],
            "-ERR syntax error\r\n",
        ),
        (&["CLIENT", "NO-EVICT", "maybe"], "-ERR syntax error\r\n"),
    ] {
        assert_eq!(killer.cmd(args), error, "{args:?}");
    }

    // Killing itself: the reply, then the connection closes.
    let me = killer_id.to_string();
    assert_eq!(
        killer.cmd(&["CLIENT", "KILL", "ID", &me, "SKIPME", "no"]),
        ":1\r\n"
    );
    killer.expect_closed();

    // The nodes' own clients were never touched: keyway still serves.
    let mut conn = connect(&proxy);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let v: String = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    assert_eq!(v, "v");
}
