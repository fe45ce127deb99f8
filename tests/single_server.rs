//! What one redis-server does that a cluster can give too, compared reply
//! for reply with one redis-server 7.0 run by the test: `CLIENT REPLY`,
//! `PUBLISH`'s count of receivers, keyspace notifications of every master,
//! and the commands a transaction cannot hold.

use crate::support;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Duration;

use support::pubsub_client::PubSubClient;
use support::resp::{connect_stream, encode, read_reply};
use support::{key_for_slot, poll_until, Cluster, Proxy, RawClient, Standalone};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The last command of every script: its reply ends the reading.
const END: &[&str] = &["ECHO", "end-of-script"];

/// Sends `script` as one pipeline to `addr`, followed by
/// `CLIENT REPLY ON` and [`END`], and returns every reply up to [`END`]'s.
fn replies_to(addr: &str, script: &[&[&str]]) -> Vec<String> {
    let stream = connect_stream(addr, TIMEOUT);
    let mut pipeline = Vec::new();
    for command in script.iter().chain([&&["CLIENT", "REPLY", "ON"][..], &END]) {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(encode(&args));
    }
    let mut writer: TcpStream = stream.try_clone().unwrap();
    std::io::Write::write_all(&mut writer, &pipeline).unwrap();
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    loop {
        let reply = read_reply(&mut reader).unwrap_or_else(|e| {
            panic!("reading from {addr} after {replies:?}: {e}");
        });
        let text = String::from_utf8_lossy(&reply).into_owned();
        let end = text.contains("end-of-script");
        replies.push(text);
        if end {
            return replies;
        }
    }
}

/// `CLIENT REPLY ON|OFF|SKIP` in one pipeline: keyway drops exactly the
/// replies redis-server drops (errors included, and its own refusals),
/// while pub/sub confirmations still go out, in both protocols.
#[test]
fn client_reply_drops_the_replies_one_redis_server_drops() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let server = Standalone::start(&[], None);
    let script: &[&[&str]] = &[
        &["CLIENT", "REPLY", "SKIP"],
        &["SET", "{cr}a", "1"],
        &["GET", "{cr}a"],
        &["CLIENT", "REPLY", "OFF"],
        &["INCR", "{cr}a"],
        &["NOSUCHCOMMAND"],
        &["GET"],
        &["MGET", "cr-one", "cr-two", "cr-three"], // split across slots
        &["BLPOP", "{cr}list", "0.01"],            // times out: nil dropped
        &["SUBSCRIBE", "cr-channel"],
        &["UNSUBSCRIBE", "cr-channel"],
        &["CLIENT", "REPLY", "SKIP"], // no effect while OFF
        &["CLIENT", "REPLY", "ON"],
        &["GET", "{cr}a"],
        &["CLIENT", "REPLY", "maybe"],
        &["CLIENT", "REPLY"],
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "SKIP"], // skipped, and skips the next
        &["GET", "{cr}a"],
        &["PING"],
        &["CLIENT", "REPLY", "SKIP"],
        &["MSET", "cr-one", "1", "cr-two", "2"], // split: the whole reply dropped
        &["MGET", "cr-one", "cr-two"],
    ];
    let expected = replies_to(&server.addr(), script);
    assert_eq!(
        expected.len(),
        11,
        "the reference itself dropped what it should: {expected:?}"
    );
    assert_eq!(replies_to(&proxy.addr(), script), expected);

    // RESP3: HELLO's own reply differs (server, version, mode): dropped.
    let mut resp3: Vec<&[&str]> = vec![&["CLIENT", "REPLY", "OFF"], &["HELLO", "3"]];
    resp3.extend_from_slice(script);
    let expected = replies_to(&server.addr(), &resp3);
    assert!(expected.iter().any(|r| r.starts_with('>')), "{expected:?}");
    assert_eq!(replies_to(&proxy.addr(), &resp3), expected);
}

/// Two subscribers on one side: a RESP2 one on every key event and one
/// key's keyspace channel, and a RESP3 one on every channel (`*`, which
/// matches notifications and ordinary channels alike).
struct Listeners {
    events: PubSubClient,
    everything: PubSubClient,
}

impl Listeners {
    fn subscribe(addr: &str, key: &str) -> Listeners {
        let mut events = PubSubClient::connect(addr);
        events.send(&["PSUBSCRIBE", "__keyevent@0__:*"]);
        events.send(&["SUBSCRIBE", &format!("__keyspace@0__:{key}")]);
        let confirmed = events.frames(2);
        assert!(confirmed[1].contains(":2\r\n"), "{confirmed:?}");
        let mut everything = PubSubClient::connect(addr);
        everything.cmd(&["HELLO", "3"]);
        let confirmed = everything.cmd(&["PSUBSCRIBE", "*"]);
        assert!(confirmed.starts_with(">3"), "{confirmed}");
        Listeners { events, everything }
    }

    /// Every message until none came for `quiet`, each listener's sorted
    /// (masters announce their keys independently: only each key's own
    /// events keep their order).
    fn drain(&mut self, at_least: usize, quiet: Duration) -> [Vec<String>; 2] {
        [&mut self.events, &mut self.everything].map(|client| {
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + TIMEOUT;
            loop {
                let waiting = got.len() < at_least && std::time::Instant::now() < deadline;
                match client.try_frame(if waiting {
                    Duration::from_millis(200)
                } else {
                    quiet
                }) {
                    Some(frame) => got.push(frame),
                    None if waiting => {}
                    None => break,
                }
            }
            got.sort();
            got
        })
    }
}

/// Keyspace and keyevent notifications through keyway are every master's,
/// each delivered once, as one redis-server delivers its own: the same
/// messages (expiries included), in both protocols; after a failover the
/// promoted master's come too.
#[test]
fn keyspace_notifications_of_every_master_arrive_once() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let server = Standalone::start(&[], None);
    // One key in the slots of each master.
    let keys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|m| format!("{{{}}}note", key_for_slot(cluster.slots_of(m)[0])))
        .collect();
    let mut keyway = RawClient::connect(&proxy.addr(), TIMEOUT);
    let mut reference = server.raw_client();
    for client in [&mut keyway, &mut reference] {
        let set = client.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        assert_eq!(set, "+OK\r\n");
    }
    let mut on_keyway = Listeners::subscribe(&proxy.addr(), &keys[0]);
    let mut on_server = Listeners::subscribe(&server.addr(), &keys[0]);

    for client in [&mut keyway, &mut reference] {
        for key in &keys {
            assert_eq!(client.cmd(&["SET", key, "1"]), "+OK\r\n");
            assert_eq!(client.cmd(&["INCR", key]), ":2\r\n");
            assert_eq!(client.cmd(&["PEXPIRE", key, "50"]), ":1\r\n");
        }
        // An ordinary message reaches the `*` subscriber once too.
        client.cmd(&["PUBLISH", "note-news", "hello"]);
    }
    let expected = on_server.drain(0, Duration::from_millis(1500));
    // 3 keys x 4 events (set, incrby, expire, expired); the one key's
    // keyspace channel; `*`: both families, and the ordinary message.
    assert_eq!(expected[0].len(), 12 + 4, "{:?}", expected[0]);
    assert_eq!(expected[1].len(), 24 + 1, "{:?}", expected[1]);
    assert!(expected[0].iter().any(|m| m.contains("expired")));
    let got = on_keyway.drain(expected[0].len(), Duration::from_millis(500));
    assert_eq!(got, expected);

    // The master of the first key fails; once keyway subscribed on the
    // promoted replica, its keys' events arrive again, once.
    let old = cluster.node_of_slot(support::key_slot(keys[0].as_bytes()));
    let survivor = cluster.masters().into_iter().find(|m| *m != old).unwrap();
    cluster.kill_node(&old);
    cluster.wait_for_failover(&old);
    let new = cluster.node_of_slot(support::key_slot(keys[0].as_bytes()));
    let numpat = |addr: &str| -> i64 {
        redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query(&mut cluster.conn(addr))
            .unwrap()
    };
    let want = numpat(&survivor);
    poll_until(TIMEOUT, || (numpat(&new) == want).then_some(()))
        .unwrap_or_else(|| panic!("keyway did not subscribe on the promoted {new}"));
    poll_until(TIMEOUT, || {
        keyway
            .cmd(&["SET", &keys[0], "again"])
            .starts_with("+OK")
            .then_some(())
    })
    .expect("keyway serves the promoted master");
    let after = on_keyway.drain(2, Duration::from_millis(500));
    assert_eq!(
        after[0].len(),
        2,
        "keyevent set + keyspace set, once: {:?}",
        after[0]
    );
    assert!(
        after[0].iter().all(|m| m.contains(&keys[0])),
        "{:?}",
        after[0]
    );
    assert_eq!(
        after[1].len(),
        2,
        "both families under `*`, once: {:?}",
        after[1]
    );
}

/// Subscribes `client` with `args` and reads the `n` confirmations.
fn subscribe(client: &mut PubSubClient, args: &[&str], n: usize) {
    client.send(args);
    client.frames(n);
}

/// `PUBLISH` answers how many clients received the message, as one
/// redis-server does: keyway's subscriber connection on the node counts
/// as the clients it serves (on both workers), patterns included.
#[test]
fn publish_counts_the_clients_that_received_the_message() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let server = Standalone::start(&[], None);
    let counts = |addr: &str| -> Vec<String> {
        let mut clients: Vec<PubSubClient> = (0..5).map(|_| PubSubClient::connect(addr)).collect();
        clients[4].cmd(&["HELLO", "3"]);
        subscribe(&mut clients[0], &["SUBSCRIBE", "pc-news"], 1);
        subscribe(&mut clients[1], &["SUBSCRIBE", "pc-news", "pc-sport"], 2);
        subscribe(&mut clients[2], &["PSUBSCRIBE", "pc-n*"], 1);
        subscribe(&mut clients[3], &["PSUBSCRIBE", "pc-*", "*"], 2);
        subscribe(&mut clients[4], &["SUBSCRIBE", "pc-news"], 1);
        let mut publisher = RawClient::connect(addr, TIMEOUT);
        let mut publish = |channel: &str| publisher.cmd(&["PUBLISH", channel, "m"]);
        let mut seen = vec![publish("pc-news"), publish("pc-sport"), publish("pc-none")];
        // The messages come first, then the confirmation.
        for (i, args) in [
            (1, &["UNSUBSCRIBE", "pc-news"]),
            (3, &["PUNSUBSCRIBE", "*"]),
        ] {
            clients[i].send(args);
            let verb = args[0].to_lowercase();
            while !clients[i].frame().contains(&format!("\r\n{verb}\r\n")) {}
        }
        seen.extend([publish("pc-news"), publish("pc-sport"), publish("x")]);
        seen
    };
    let expected = counts(&server.addr());
    assert_eq!(
        expected,
        [":6\r\n", ":3\r\n", ":3\r\n", ":4\r\n", ":2\r\n", ":0\r\n"]
    );
    assert_eq!(counts(&proxy.addr()), expected);
}
