//! Pub/sub end to end: (P|S)SUBSCRIBE and friends through keyway behave
//! byte for byte like a redis-server node in both protocols; a publish
//! reaches a subscriber as soon as its subscription is confirmed; many
//! subscribers share a few backend connections; shard channels follow
//! their slot; subscriptions survive a failover; a subscriber that does not
//! read is disconnected instead of growing keyway's memory.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::http::Scrape;
use support::pubsub_client::PubSubClient;
use support::util::{raise_nofile_limit, TempDir};
use support::{key_slot, poll_until, Cluster, Proxy, OP_TIMEOUT};

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// A frame of bulk strings: `kind` is `*` (RESP2 array) or `>` (RESP3 push).
fn frame(kind: char, items: &[&str]) -> String {
    let body: String = items.iter().map(|i| bulk(i)).collect();
    format!("{kind}{}\r\n{body}", items.len())
}

/// A (un)subscribe confirmation: `kind verb channel count`.
fn confirmation(kind: char, verb: &str, channel: &str, count: usize) -> String {
    format!("{kind}3\r\n{}{}:{count}\r\n", bulk(verb), bulk(channel))
}

/// The items of a flat frame (array or push of bulk strings, integers and
/// nils) as text: bulks by content, integers by value, nils as `nil`.
fn items(frame: &str) -> Vec<String> {
    let mut lines = frame.split("\r\n").skip(1);
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        match line.as_bytes().first() {
            Some(b'$') if line == "$-1" => out.push("nil".into()),
            Some(b'$') => out.push(lines.next().unwrap_or_default().to_string()),
            Some(b'_') => out.push("nil".into()),
            Some(b':') => out.push(line[1..].to_string()),
            _ => {}
        }
    }
    out
}

/// Runs `cmd channel payload` (PUBLISH, SPUBLISH) on `con`; the reply (a
/// receiver count that differs between keyway and a node) is not checked.
fn publish(con: &mut redis::Connection, cmd: &str, channel: &str, payload: &str) {
    redis::cmd(cmd)
        .arg(channel)
        .arg(payload)
        .query::<i64>(con)
        .unwrap_or_else(|e| panic!("{cmd} {channel}: {e}"));
}

/// Publishers taken in turn, so messages come through keyway and straight
/// from nodes alike.
struct Publishers {
    cons: Vec<redis::Connection>,
    next: usize,
}

impl Publishers {
    fn new(cons: Vec<redis::Connection>) -> Publishers {
        Publishers { cons, next: 0 }
    }

    fn publish(&mut self, channel: &str, payload: &str) {
        let i = self.next % self.cons.len();
        self.next += 1;
        publish(&mut self.cons[i], "PUBLISH", channel, payload);
    }
}

/// One step of a scripted pub/sub session.
enum Step<'a> {
    /// A command answered by one frame.
    Cmd(&'a [&'a str]),
    /// A command answered by `n` frames.
    CmdN(&'a [&'a str], usize),
    /// A PUBLISH by the next publisher, and how many frames it brings the
    /// subscriber (0 when it must not be delivered).
    Publish(&'a str, &'a str, usize),
}

/// Runs `steps` on `sub` and returns every frame it received, in order.
fn run(sub: &mut PubSubClient, publishers: &mut Publishers, steps: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for step in steps {
        match step {
            Step::Cmd(args) => out.push(sub.cmd(args)),
            Step::CmdN(args, n) => {
                sub.send(args);
                out.extend(sub.frames(*n));
            }
            Step::Publish(channel, payload, n) => {
                publishers.publish(channel, payload);
                out.extend(sub.frames(*n));
            }
        }
    }
    out
}

/// Runs `steps` on a subscriber of a node and on one of keyway (the node's
/// first, so a keyway bug cannot disturb the reference) and asserts the
/// frames are identical, step by step for a readable failure.
fn assert_same_session(
    node_sub: &mut PubSubClient,
    keyway_sub: &mut PubSubClient,
    publishers: &mut Publishers,
    steps: &[Step],
) -> Vec<String> {
    let theirs = run(node_sub, publishers, steps);
    // A message published on one node reaches the others over the cluster
    // bus a moment later; on a loaded machine one published during the
    // node's run could still arrive once keyway has subscribed the same
    // names. Let the bus settle first (no timing is asserted).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ours = run(keyway_sub, publishers, steps);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "frame {i}: keyway (left) vs redis-server (right)");
    }
    ours
}

/// Sends an (S|P)UNSUBSCRIBE without arguments to a client with `n` such
/// subscriptions and returns the confirmations as (sorted channels, counts
/// in order): Redis confirms in its hash table's order, which need not be
/// keyway's, but the counts always go down to 0.
fn unsubscribe_all(sub: &mut PubSubClient, cmd: &str, n: usize) -> (Vec<String>, Vec<String>) {
    sub.send(&[cmd]);
    let mut channels = Vec::new();
    let mut counts = Vec::new();
    for f in sub.frames(n) {
        let it = items(&f);
        assert_eq!(it.len(), 3, "{f:?}");
        assert_eq!(it[0], cmd.to_lowercase(), "{f:?}");
        channels.push(it[1].clone());
        counts.push(it[2].clone());
    }
    channels.sort();
    (channels, counts)
}

/// RESP2 (P|S)SUBSCRIBE/(P|S)UNSUBSCRIBE confirmations and messages are
/// byte for byte a node's, whether PUBLISH goes through keyway, to a master
/// or to a replica; unsubscribing with nothing subscribed answers nil.
#[test]
fn resp2_subscribe_and_messages_match_redis_server_byte_for_byte() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let masters = cluster.masters();
    let replica = cluster.replicas()[0].clone();
    // PUBLISH through keyway, on a master and on a replica: the cluster
    // broadcasts each to every node, so subscribers anywhere get it.
    let mut publishers = Publishers::new(vec![
        proxy.conn(),
        cluster.conn(&masters[1]),
        cluster.conn(&replica),
    ]);
    let mut node = PubSubClient::connect(&masters[0]);
    let mut ours = PubSubClient::connect(&proxy.addr());

    use Step::*;
    let steps = [
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["PUNSUBSCRIBE"]),
        Cmd(&["SUNSUBSCRIBE"]),
        CmdN(&["SUBSCRIBE", "ch:a", "ch:é x", "ch:a"], 3),
        CmdN(&["PSUBSCRIBE", "pat:*", "other:[xy]"], 2),
        Publish("ch:a", "hello", 1),
        Publish("ch:é x", "", 1),
        Publish("pat:1", "two\r\nlines", 1),
        Publish("other:y", "x", 1),
        Publish("nobody", "lost", 0),
        Publish("ch:a", "after", 1),
        CmdN(&["UNSUBSCRIBE", "ch:a", "nosuch"], 2),
        Cmd(&["PUNSUBSCRIBE", "pat:*"]),
        Publish("ch:a", "gone", 0),
        Publish("pat:2", "gone", 0),
        Publish("other:x", "kept", 1),
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["PUNSUBSCRIBE"]),
        Cmd(&["PUNSUBSCRIBE"]),
        CmdN(&["UNSUBSCRIBE", "x", "y"], 2),
        CmdN(&["SUBSCRIBE", "c1", "c2", "c3"], 3),
    ];
    let frames = assert_same_session(&mut node, &mut ours, &mut publishers, &steps);

    // Spot checks that the reference itself is what the protocol says.
    assert_eq!(frames[0], "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(frames[4], confirmation('*', "subscribe", "ch:é x", 2));
    assert_eq!(frames[5], confirmation('*', "subscribe", "ch:a", 2));
    assert_eq!(frames[7], confirmation('*', "psubscribe", "other:[xy]", 4));
    assert_eq!(frames[8], frame('*', &["message", "ch:a", "hello"]));
    assert_eq!(
        frames[10],
        frame('*', &["pmessage", "pat:*", "pat:1", "two\r\nlines"])
    );
    assert_eq!(
        frames[16],
        frame('*', &["pmessage", "other:[xy]", "other:x", "kept"])
    );

    // UNSUBSCRIBE with no arguments confirms every channel, down to 0.
    let theirs = unsubscribe_all(&mut node, "UNSUBSCRIBE", 3);
    assert_eq!(unsubscribe_all(&mut ours, "UNSUBSCRIBE", 3), theirs);
    assert_eq!(theirs.1, ["2", "1", "0"]);
    assert_eq!(ours.cmd(&["PING"]), "+PONG\r\n", "no longer subscribed");
}

/// Once a client has its confirmation, a PUBLISH (or SPUBLISH) from
/// another client reaches it: the subscription is live on the backend
/// before keyway confirms it.
#[test]
fn a_publish_after_the_confirmation_is_never_missed() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut publisher = proxy.conn();
    let mut sub = PubSubClient::connect(&proxy.addr());
    for i in 0..60 {
        // Half the subscriptions are a client's first, half come on top of
        // earlier ones; every one is a channel nobody subscribed to before.
        if i % 2 == 0 {
            sub = PubSubClient::connect(&proxy.addr());
        }
        let channel = format!("race:{i}:");
        let (verb, publish_cmd, target, message) = match i % 3 {
            0 => ("subscribe", "PUBLISH", channel.clone(), "message"),
            1 => ("psubscribe", "PUBLISH", format!("{channel}*"), "pmessage"),
            _ => ("ssubscribe", "SPUBLISH", channel.clone(), "smessage"),
        };
        let confirmed = sub.cmd(&[verb, &target]);
        assert!(
            confirmed.starts_with(&format!("*3\r\n{}{}:", bulk(verb), bulk(&target))),
            "iteration {i}: {confirmed:?}"
        );
        publish(&mut publisher, publish_cmd, &channel, "now");
        let expected = if message == "pmessage" {
            frame('*', &[message, &target, &channel, "now"])
        } else {
            frame('*', &[message, &channel, "now"])
        };
        let got = sub.try_frame(OP_TIMEOUT);
        assert_eq!(got.as_deref(), Some(expected.as_str()), "iteration {i}");
    }
}

/// A subscribed RESP2 client may only (un)subscribe, PING, QUIT and RESET,
/// with a node's exact errors and `pong` arrays; it is served normally
/// again once nothing is subscribed, and RESET drops its subscriptions.
#[test]
fn resp2_subscribed_mode_refuses_other_commands_like_redis_server() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let owner = cluster.node_of_slot(key_slot(b"{sm}k"));
    let other = cluster.masters().into_iter().find(|m| *m != owner).unwrap();
    // One publisher, so two publishes reach every node in order.
    let mut publishers = Publishers::new(vec![cluster.conn(&other)]);
    let mut node = PubSubClient::connect(&owner);
    let mut ours = PubSubClient::connect(&proxy.addr());

    use Step::*;
    let steps = [
        Cmd(&["SUBSCRIBE", "s1"]),
        Cmd(&["GET", "{sm}k"]),
        Cmd(&["SET", "{sm}k", "v"]),
        Cmd(&["ECHO", "x"]),
        Cmd(&["CLIENT", "ID"]),
        Cmd(&["MULTI"]),
        Cmd(&["HELLO", "3"]),
        Cmd(&["GET"]),
        Cmd(&["PING"]),
        Cmd(&["PING", "hi"]),
        Cmd(&["PING", "a", "b"]),
        Cmd(&["SUBSCRIBE"]),
        // Still subscribed while any pattern or shard channel remains.
        Cmd(&["PSUBSCRIBE", "p:*"]),
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["GET", "{sm}k"]),
        Cmd(&["PUNSUBSCRIBE"]),
        Cmd(&["GET", "{sm}k"]),
        Cmd(&["PING"]),
        Cmd(&["SSUBSCRIBE", "{sm}shard"]),
        Cmd(&["GET", "{sm}k"]),
        Cmd(&["PING"]),
        Cmd(&["SUNSUBSCRIBE"]),
        Cmd(&["GET", "{sm}k"]),
        // RESET leaves subscribed mode and drops the subscriptions.
        Cmd(&["SUBSCRIBE", "s2"]),
        Cmd(&["RESET"]),
        Cmd(&["GET", "{sm}k"]),
        Publish("s2", "after reset", 0),
        Cmd(&["SUBSCRIBE", "s3"]),
        Publish("s3", "only this", 1),
        Cmd(&["QUIT"]),
    ];
    let frames = assert_same_session(&mut node, &mut ours, &mut publishers, &steps);
    assert_eq!(
        frames[1],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(frames[8], "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(frames[9], "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
    assert_eq!(frames[16], "$-1\r\n", "GET works once unsubscribed");
    assert_eq!(frames[24], "+RESET\r\n");
    assert_eq!(frames[26], confirmation('*', "subscribe", "s3", 1));
    assert_eq!(frames[28], "+OK\r\n");
    for (who, sub) in [("node", &mut node), ("keyway", &mut ours)] {
        assert_eq!(
            sub.drain_until_closed(OP_TIMEOUT),
            Ok(0),
            "{who} after QUIT"
        );
    }
}

/// A RESP3 client gets confirmations and messages as pushes, like from a
/// node, keeps running ordinary commands while subscribed, and a push never
/// lands inside a reply even while pipelines and a publisher run at once.
#[test]
fn resp3_subscribers_get_pushes_between_replies_and_keep_serving_commands() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let owner = cluster.node_of_slot(key_slot(b"{r3}k"));
    let other = cluster.masters().into_iter().find(|m| *m != owner).unwrap();
    let mut publishers = Publishers::new(vec![proxy.conn(), cluster.conn(&other)]);
    let mut node = PubSubClient::connect(&owner);
    let mut ours = PubSubClient::connect(&proxy.addr());
    for sub in [&mut node, &mut ours] {
        assert!(sub.cmd(&["HELLO", "3"]).starts_with("%7\r\n"));
    }

    use Step::*;
    let steps = [
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["SUBSCRIBE", "r3:a"]),
        Cmd(&["PSUBSCRIBE", "r3p:*"]),
        Cmd(&["SSUBSCRIBE", "{r3}shard"]),
        Cmd(&["GET", "{r3}k"]),
        Cmd(&["SET", "{r3}k", "v"]),
        Cmd(&["MGET", "{r3}k", "{r3}nope"]),
        Cmd(&["DEL", "{r3}k"]),
        Cmd(&["PING"]),
        Cmd(&["PING", "hi"]),
        Cmd(&["ECHO", "x"]),
        Publish("r3:a", "m1", 1),
        Publish("r3p:x", "m2", 1),
        Cmd(&["UNSUBSCRIBE", "r3:a"]),
        Cmd(&["UNSUBSCRIBE"]),
        Cmd(&["PUNSUBSCRIBE"]),
        Cmd(&["SUNSUBSCRIBE"]),
        Cmd(&["GET", "{r3}k"]),
    ];
    let frames = assert_same_session(&mut node, &mut ours, &mut publishers, &steps);
    assert_eq!(frames[0], ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
    assert_eq!(frames[1], confirmation('>', "subscribe", "r3:a", 1));
    assert_eq!(frames[4], "_\r\n");
    assert_eq!(frames[6], "*2\r\n$1\r\nv\r\n_\r\n");
    assert_eq!(frames[8], "+PONG\r\n");
    assert_eq!(frames[11], frame('>', &["message", "r3:a", "m1"]));
    assert_eq!(
        frames[12],
        frame('>', &["pmessage", "r3p:*", "r3p:x", "m2"])
    );
    assert_eq!(frames[14], ">3\r\n$11\r\nunsubscribe\r\n_\r\n:1\r\n");

    // Pipelines of commands while another client publishes without pause:
    // every frame is a whole reply, in order, or a whole push, and every
    // message arrives once.
    assert_eq!(
        ours.cmd(&["SUBSCRIBE", "mix"]),
        confirmation('>', "subscribe", "mix", 1)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let mut con = proxy.conn();
        std::thread::spawn(move || {
            let mut n = 0;
            while n == 0 || !stop.load(Ordering::Relaxed) {
                publish(&mut con, "PUBLISH", "mix", &format!("p{n}"));
                n += 1;
            }
            n
        })
    };
    let push_index = |f: &str| -> usize {
        let it = items(f);
        assert!(
            f.starts_with(">3\r\n") && it.len() == 3 && it[0] == "message" && it[1] == "mix",
            "not a message push: {f:?}"
        );
        it[2][1..]
            .parse()
            .unwrap_or_else(|_| panic!("payload of {f:?}"))
    };
    let mut received = BTreeSet::new();
    // Wait for the publisher to be under way.
    received.insert(push_index(&ours.frame()));
    let mut interleaved = 0;
    for round in 0..40 {
        let mut pipeline = Vec::new();
        let mut expected = Vec::new();
        for i in 0..25 {
            let key = format!("{{mix}}k{i}");
            let value = format!("r{round}-{i}");
            for args in [
                &["SET", key.as_str(), value.as_str()][..],
                &["MGET", key.as_str(), "{mix}nope", key.as_str()],
            ] {
                let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                pipeline.extend(support::resp::encode(&args));
            }
            expected.push("+OK\r\n".to_string());
            expected.push(format!("*3\r\n{}_\r\n{}", bulk(&value), bulk(&value)));
        }
        ours.send_raw(&pipeline);
        let mut replies = expected.into_iter();
        let mut next = replies.next();
        while let Some(want) = &next {
            let f = ours.frame();
            if f.starts_with('>') {
                assert!(received.insert(push_index(&f)), "duplicate {f:?}");
                interleaved += 1;
            } else {
                assert_eq!(&f, want, "round {round}");
                next = replies.next();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("publisher thread");
    while received.len() < published {
        let f = ours.frame();
        assert!(received.insert(push_index(&f)), "duplicate {f:?}");
    }
    assert_eq!(received.len(), published);
    assert_eq!(received.last(), Some(&(published - 1)));
    assert!(
        interleaved > 0,
        "no push arrived while replies were pending"
    );
    assert_eq!(
        ours.try_frame(Duration::from_millis(200)),
        None,
        "nothing more"
    );
}

/// Connections to `node` that `CLIENT LIST` shows subscribed to any of
/// `kinds` (`sub`, `psub`, `ssub`).
fn subscribed_connections(cluster: &Cluster, node: &str, kinds: &[&str]) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut cluster.conn(node))
        .expect("CLIENT LIST");
    list.lines()
        .filter(|line| {
            line.split(' ').any(|field| {
                field
                    .split_once('=')
                    .is_some_and(|(k, v)| kinds.contains(&k) && v != "0")
            })
        })
        .count()
}

/// 300 subscribers hold only a handful of subscribed connections on the
/// nodes, and a publish reaches each of them exactly once.
#[test]
fn many_subscribers_share_a_few_backend_connections() {
    raise_nofile_limit();
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut subs: Vec<(PubSubClient, String)> = (0..300)
        .map(|i| {
            let channel = format!("many:{}", i % 10);
            let mut sub = PubSubClient::connect(&proxy.addr());
            assert_eq!(
                sub.cmd(&["SUBSCRIBE", &channel]),
                confirmation('*', "subscribe", &channel, 1)
            );
            (sub, channel)
        })
        .collect();

    let per_node: BTreeMap<String, usize> = cluster
        .alive_addrs()
        .into_iter()
        .map(|n| {
            let count = subscribed_connections(&cluster, &n, &["sub", "psub", "ssub"]);
            (n, count)
        })
        .collect();
    let total: usize = per_node.values().sum();
    // keyway runs 2 workers; 3 masters.
    assert!(
        (1..=2 * (1 + 3)).contains(&total),
        "subscribed backend connections per node: {per_node:?}"
    );

    // Each publish reaches every subscriber of its channel exactly once:
    // the second message is what follows the first.
    let mut publisher = proxy.conn();
    for round in ["first", "second"] {
        for c in 0..10 {
            publish(&mut publisher, "PUBLISH", &format!("many:{c}"), round);
        }
    }
    for (i, (sub, channel)) in subs.iter_mut().enumerate() {
        for round in ["first", "second"] {
            assert_eq!(
                sub.frame(),
                frame('*', &["message", channel, round]),
                "subscriber {i}"
            );
        }
        assert_eq!(sub.cmd(&["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    }
}

/// Hash tags whose slots belong to `n` different masters, one per master.
fn tags_on_distinct_masters(cluster: &Cluster, n: usize) -> Vec<(String, String)> {
    let map = cluster.slot_map();
    let mut found: Vec<(String, String)> = Vec::new();
    for i in 0.. {
        let tag = format!("t{i}");
        let slot = key_slot(tag.as_bytes());
        let master = &map
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .expect("slot covered")
            .master;
        if found.iter().all(|(_, m)| m != master) {
            found.push((tag, master.clone()));
            if found.len() == n {
                break;
            }
        }
    }
    found
}

/// Shard channels are subscribed on their slot's master: one client can
/// hold shard channels of several masters, SPUBLISH reaches it from keyway
/// or the owning node, cross-slot (S)SUBSCRIBE is refused, and counts
/// cover shard channels only.
#[test]
fn shard_channels_follow_their_slot() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags_on_distinct_masters(&cluster, 2);
    let (x, y) = (format!("{{{}}}x", tags[0].0), format!("{{{}}}y", tags[1].0));
    let (x2, x3) = (
        format!("{{{}}}x2", tags[0].0),
        format!("{{{}}}x3", tags[0].0),
    );
    let mut through_keyway = proxy.conn();
    let mut on_y_owner = cluster.conn(&tags[1].1);
    let mut sub = PubSubClient::connect(&proxy.addr());
    // Redis's text, which keyway may follow with a hint.
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot";

    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "plain"]),
        confirmation('*', "subscribe", "plain", 1)
    );
    // Shard channels count only shard channels, across masters.
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &x]),
        confirmation('*', "ssubscribe", &x, 1)
    );
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &y]),
        confirmation('*', "ssubscribe", &y, 2)
    );
    sub.send(&["SSUBSCRIBE", &x2, &x3]);
    assert_eq!(
        sub.frames(2),
        [
            confirmation('*', "ssubscribe", &x2, 3),
            confirmation('*', "ssubscribe", &x3, 4)
        ]
    );
    for cmd in ["SSUBSCRIBE", "SUNSUBSCRIBE"] {
        let reply = sub.cmd(&[cmd, &x, &y]);
        assert!(
            reply.starts_with(crossslot),
            "{cmd} across slots: {reply:?}"
        );
    }

    publish(&mut through_keyway, "SPUBLISH", &x, "via keyway");
    assert_eq!(sub.frame(), frame('*', &["smessage", &x, "via keyway"]));
    publish(&mut on_y_owner, "SPUBLISH", &y, "on the node");
    assert_eq!(sub.frame(), frame('*', &["smessage", &y, "on the node"]));
    publish(&mut through_keyway, "SPUBLISH", &x3, "x3");
    assert_eq!(sub.frame(), frame('*', &["smessage", &x3, "x3"]));
    // A plain PUBLISH to a shard channel's name is another channel.
    publish(&mut through_keyway, "PUBLISH", &y, "plain");
    publish(&mut on_y_owner, "SPUBLISH", &y, "shard");
    assert_eq!(sub.frame(), frame('*', &["smessage", &y, "shard"]));

    assert_eq!(
        sub.cmd(&["SUNSUBSCRIBE", &x]),
        confirmation('*', "sunsubscribe", &x, 3)
    );
    publish(&mut through_keyway, "SPUBLISH", &x, "gone");
    publish(&mut through_keyway, "SPUBLISH", &x2, "kept");
    assert_eq!(sub.frame(), frame('*', &["smessage", &x2, "kept"]));
    let mut rest = vec![y.clone(), x2.clone(), x3.clone()];
    rest.sort();
    assert_eq!(
        unsubscribe_all(&mut sub, "SUNSUBSCRIBE", 3),
        (rest, vec!["2".into(), "1".into(), "0".into()])
    );
    assert_eq!(
        sub.cmd(&["SUNSUBSCRIBE"]),
        "*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n"
    );
    // The plain subscription is still there.
    publish(&mut through_keyway, "PUBLISH", "plain", "still");
    assert_eq!(sub.frame(), frame('*', &["message", "plain", "still"]));

    // In RESP3 the same are pushes, between ordinary replies.
    let mut sub3 = PubSubClient::connect(&proxy.addr());
    assert!(sub3.cmd(&["HELLO", "3"]).starts_with("%7\r\n"));
    assert_eq!(
        sub3.cmd(&["SSUBSCRIBE", &y]),
        confirmation('>', "ssubscribe", &y, 1)
    );
    assert_eq!(sub3.cmd(&["GET", &y]), "_\r\n");
    publish(&mut through_keyway, "SPUBLISH", &y, "pushed");
    assert_eq!(sub3.frame(), frame('>', &["smessage", &y, "pushed"]));
}

/// Killing the node that carries keyway's subscriptions: after the
/// failover every channel, pattern and shard channel delivers again to the
/// same client, which never subscribed again.
#[test]
fn subscriptions_survive_a_failover_without_resubscribing() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut sub = PubSubClient::connect(&proxy.addr());
    let shard_channels: Vec<String> = tags_on_distinct_masters(&cluster, 3)
        .into_iter()
        .map(|(tag, _)| format!("{{{tag}}}fo"))
        .collect();
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "fo:plain"]),
        confirmation('*', "subscribe", "fo:plain", 1)
    );
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "fo:pat:*"]),
        confirmation('*', "psubscribe", "fo:pat:*", 2)
    );
    for (i, ch) in shard_channels.iter().enumerate() {
        assert_eq!(
            sub.cmd(&["SSUBSCRIBE", ch]),
            confirmation('*', "ssubscribe", ch, i + 1)
        );
    }
    // Each target: (publish command, channel published to, channel named
    // first in the message after its kind).
    let mut targets = vec![
        ("PUBLISH", "fo:plain".to_string(), "fo:plain".to_string()),
        ("PUBLISH", "fo:pat:x".to_string(), "fo:pat:*".to_string()),
    ];
    for ch in &shard_channels {
        targets.push(("SPUBLISH", ch.clone(), ch.clone()));
    }
    // Publishes a message per target (through a fresh connection: keyway
    // may fail some while the cluster fails over) and returns the targets
    // that delivered anything within a short wait.
    let mut round = 0;
    let mut delivered_round = |sub: &mut PubSubClient| -> BTreeSet<String> {
        round += 1;
        if let Ok(mut con) = support::cluster::connect(&proxy.addr(), Duration::from_secs(2)) {
            for (cmd, ch, _) in &targets {
                let _ = redis::cmd(cmd)
                    .arg(ch)
                    .arg(format!("round {round}"))
                    .query::<redis::Value>(&mut con);
            }
        }
        let mut seen = BTreeSet::new();
        while let Some(f) = sub.try_frame(Duration::from_millis(300)) {
            let it = items(&f);
            assert!(
                matches!(it[0].as_str(), "message" | "pmessage" | "smessage"),
                "{f:?}"
            );
            seen.insert(it[1].clone());
        }
        seen
    };
    let all: BTreeSet<String> = targets.iter().map(|t| t.2.clone()).collect();
    let mut delivered = BTreeSet::new();
    let before = poll_until(Duration::from_secs(5), || {
        delivered.extend(delivered_round(&mut sub));
        (delivered == all).then_some(())
    });
    assert!(
        before.is_some(),
        "before the failover only {delivered:?} deliver"
    );

    // Kill the node carrying keyway's plain subscriptions (the only
    // subscribed connections on nodes here); if that is a replica, also a
    // master (one not replicated by it) so that a shard channel's master
    // fails over as well.
    let carriers: Vec<String> = cluster
        .alive_addrs()
        .into_iter()
        .filter(|n| subscribed_connections(&cluster, n, &["sub", "psub"]) > 0)
        .collect();
    assert!(
        !carriers.is_empty(),
        "no subscription connection on any node"
    );
    let masters = cluster.masters();
    let mut victims = vec![carriers[0].clone()];
    if !masters.contains(&carriers[0]) {
        let map = cluster.slot_map();
        let master = map
            .iter()
            .find(|r| !r.replicas.contains(&carriers[0]))
            .expect("a master not replicated by the victim")
            .master
            .clone();
        victims.push(master);
    }
    for v in &victims {
        cluster.kill_node(v);
    }
    for v in &victims {
        if masters.contains(v) {
            cluster.wait_for_failover(v);
        }
    }
    cluster.wait_ok();

    let mut recovered = BTreeSet::new();
    let done = poll_until(Duration::from_secs(20), || {
        recovered.extend(delivered_round(&mut sub));
        (recovered == all).then_some(())
    });
    assert!(
        done.is_some(),
        "after killing {victims:?}, only {recovered:?} of {all:?} deliver again"
    );

    // The client's subscriptions are all still counted, and work.
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "fo:extra"]),
        confirmation('*', "subscribe", "fo:extra", 3)
    );
    publish(&mut proxy.conn(), "PUBLISH", "fo:extra", "new");
    loop {
        let f = sub.frame();
        if f == frame('*', &["message", "fo:extra", "new"]) {
            break;
        }
        // A late message of the polling rounds.
        assert!(f.contains("round "), "{f:?}");
    }
}

/// keyway's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A subscriber that stops reading is disconnected once its pending output
/// passes `client.pubsub_output_limit_hard_mb`, keyway's memory stays
/// bounded, and a subscriber that reads gets every message meanwhile.
#[test]
fn a_subscriber_that_does_not_read_is_disconnected_at_the_output_limit() {
    let cluster = Cluster::start();
    let dir = TempDir::new("pubsub-limit");
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        "[client]\npubsub_output_limit_hard_mb = 1\npubsub_output_limit_soft_mb = 1\n\
         pubsub_output_limit_soft_seconds = 60\n",
    )
    .unwrap();
    let proxy = Proxy::start_with(&cluster, &["--config", config.to_str().unwrap()]);

    let mut slow = PubSubClient::connect(&proxy.addr());
    assert_eq!(
        slow.cmd(&["SUBSCRIBE", "flood"]),
        confirmation('*', "subscribe", "flood", 1)
    );
    // A subscriber that keeps reading, in its own thread, until "end".
    let mut good = PubSubClient::connect(&proxy.addr());
    assert_eq!(
        good.cmd(&["SUBSCRIBE", "flood"]),
        confirmation('*', "subscribe", "flood", 1)
    );
    // Each worker with a subscriber holds the channel subscribed once.
    let scrape = Scrape::take(&proxy.admin_addr());
    assert_eq!(scrape.expect("keyway_clients_subscribed"), 2.0);
    let topics = scrape.expect("keyway_pubsub_topics{kind=\"channel\"}");
    assert!(
        (1.0..=2.0).contains(&topics),
        "{topics} channels subscribed"
    );
    assert_eq!(scrape.expect("keyway_pubsub_topics{kind=\"pattern\"}"), 0.0);
    let read = Arc::new(AtomicUsize::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || loop {
            let f = good.frame();
            if f == frame('*', &["message", "flood", "end"]) {
                return;
            }
            assert!(f.starts_with("*3\r\n$7\r\nmessage\r\n$5\r\nflood\r\n$1024\r\n"));
            read.fetch_add(1, Ordering::Relaxed);
        })
    };

    // ~50 MiB in 1 KiB messages, pipelined in batches; each batch waits
    // until the reading subscriber has it, so that one never lags by more
    // than a batch (well under the limit).
    const BATCH: usize = 256;
    const BATCHES: usize = 200;
    let payload = vec![b'x'; 1024];
    let one = support::resp::encode(&[b"PUBLISH", b"flood", &payload]);
    let batch = one.repeat(BATCH);
    let mut publisher = PubSubClient::connect(&proxy.addr());
    let mut max_rss = 0;
    for b in 1..=BATCHES {
        publisher.send_raw(&batch);
        for _ in 0..BATCH {
            let reply = publisher.frame();
            assert!(reply.starts_with(':'), "{reply:?}");
        }
        let want = b * BATCH;
        let kept_up = poll_until(OP_TIMEOUT, || {
            (read.load(Ordering::Relaxed) >= want).then_some(())
        });
        assert!(
            kept_up.is_some(),
            "the reading subscriber has {} of {want} messages",
            read.load(Ordering::Relaxed)
        );
        max_rss = max_rss.max(rss_kib(proxy.pid()));
    }
    publisher.cmd(&["PUBLISH", "flood", "end"]);
    reader.join().expect("the reading subscriber failed");
    assert_eq!(read.load(Ordering::Relaxed), BATCH * BATCHES);

    let drained = slow.drain_until_closed(Duration::from_secs(10));
    let flood_bytes = BATCH * BATCHES * one.len();
    assert!(
        drained.as_ref().is_ok_and(|&d| d < flood_bytes),
        "the subscriber that did not read should be disconnected: {drained:?} \
         (the flood was {flood_bytes} bytes)"
    );
    max_rss = max_rss.max(rss_kib(proxy.pid()));
    assert!(max_rss < 100 * 1024, "keyway's RSS reached {max_rss} KiB");
    // Counted: the one subscriber closed, and every message the reader
    // got was received from a node and delivered by keyway.
    let scrape = Scrape::take(&proxy.admin_addr());
    assert_eq!(scrape.expect("keyway_slow_subscribers_closed_total"), 1.0);
    let sent = (BATCH * BATCHES + 1) as f64;
    let received = scrape.expect("keyway_pubsub_messages_received_total");
    let delivered = scrape.expect("keyway_pubsub_messages_delivered_total");
    assert!(
        received >= sent && delivered >= sent && delivered <= 2.0 * sent,
        "{sent} published: {received} received, {delivered} delivered"
    );
    assert_eq!(
        PubSubClient::connect(&proxy.addr()).cmd(&["PING"]),
        "+PONG\r\n",
        "keyway still serves"
    );
}

/// A shard channel whose slot moves to another master (resharding) keeps
/// delivering: keyway notices the old owner dropping it (or refusing it) and
/// subscribes again on the new one, without the client doing anything.
#[test]
fn a_shard_channel_follows_its_slot_to_a_new_master() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let tags = tags_on_distinct_masters(&cluster, 2);
    let channel = format!("{{{}}}moving", tags[0].0);
    let (from, to) = (tags[0].1.clone(), tags[1].1.clone());
    let slot = key_slot(channel.as_bytes());
    let mut sub = PubSubClient::connect(&proxy.addr());
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &channel]),
        confirmation('*', "ssubscribe", &channel, 1)
    );
    let mut publisher = proxy.conn();
    publish(&mut publisher, "SPUBLISH", &channel, "before");
    assert_eq!(sub.frame(), frame('*', &["smessage", &channel, "before"]));

    cluster.migrate_slot(slot, &from, &to);
    assert_eq!(cluster.node_of_slot(slot), to);

    // Publish until a message arrives (those sent before keyway moved the
    // subscription may be lost: pub/sub is at-most-once), then every later
    // one arrives, in order.
    let mut n = 0;
    let arrived = poll_until(Duration::from_secs(15), || {
        n += 1;
        publish(&mut publisher, "SPUBLISH", &channel, &format!("probe{n}"));
        sub.try_frame(Duration::from_millis(200))
    });
    let first = arrived.expect("no message after the slot moved");
    assert!(first.contains("probe"), "{first:?}");
    while sub.try_frame(Duration::from_millis(300)).is_some() {}
    for i in 0..5 {
        publish(&mut publisher, "SPUBLISH", &channel, &format!("after{i}"));
        assert_eq!(
            sub.frame(),
            frame('*', &["smessage", &channel, &format!("after{i}")])
        );
    }
    // The subscription now lives on the new owner, and only there.
    let shard_subscribers = |node: &str| -> i64 {
        let reply: Vec<redis::Value> = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(&channel)
            .query(&mut cluster.conn(node))
            .unwrap();
        match &reply[1] {
            redis::Value::Int(n) => *n,
            other => panic!("SHARDNUMSUB: {other:?}"),
        }
    };
    assert!(shard_subscribers(&to) >= 1);
    assert_eq!(shard_subscribers(&from), 0);
}

/// Publishes `<cmd> channel n` for n = 0, 1, ... every 2 ms on
/// connections from `connect` (a new one after an error) until `stop`;
/// the numbers acknowledged, with when they were sent.
fn numbered_publisher(
    cmd: &'static str,
    channel: String,
    connect: impl Fn() -> redis::RedisResult<redis::Connection> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u64, std::time::Instant)>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut con = None;
        for n in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            let c = match &mut con {
                Some(c) => c,
                None => match connect() {
                    Ok(c) => con.insert(c),
                    Err(_) => continue,
                },
            };
            let sent = std::time::Instant::now();
            match redis::cmd(cmd).arg(&channel).arg(n).query::<i64>(c) {
                Ok(_) => acked.push((n, sent)),
                Err(_) => con = None,
            }
        }
        acked
    })
}

/// The pub/sub failover window, measured: a master carrying keyway's
/// channel subscription and a shard channel's slot is killed while one
/// publisher sends numbered messages every 2 ms straight to a surviving
/// master (`PUBLISH`) and another through keyway (`SPUBLISH`, held by
/// keyway while the shard has no master). Messages published while keyway
/// is not subscribed anywhere are lost (pub/sub is at-most-once); the test
/// reports how many and over how long, and asserts that both channels
/// deliver again.
#[test]
fn the_pubsub_failover_window_is_measured() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_with(&cluster, &["--workers", "1"]);
    let mut sub = PubSubClient::connect(&proxy.addr());
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "window:plain"]),
        confirmation('*', "subscribe", "window:plain", 1)
    );
    let victim = cluster
        .masters()
        .into_iter()
        .find(|m| subscribed_connections(&cluster, m, &["sub"]) > 0)
        .expect("the channel is subscribed on a master");
    let tag = (0..)
        .map(|i| format!("w{i}"))
        .find(|tag| cluster.node_of_slot(key_slot(tag.as_bytes())) == victim)
        .unwrap();
    let shard = format!("{{{tag}}}window");
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &shard]),
        confirmation('*', "ssubscribe", &shard, 1)
    );
    let survivor = cluster
        .masters()
        .into_iter()
        .find(|m| *m != victim)
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let plain_publisher = {
        let client = cluster.client(&survivor);
        numbered_publisher(
            "PUBLISH",
            "window:plain".into(),
            move || client.get_connection(),
            stop.clone(),
        )
    };
    let shard_publisher = {
        let addr = proxy.addr();
        numbered_publisher(
            "SPUBLISH",
            shard.clone(),
            move || support::cluster::connect(&addr, Duration::from_secs(10)),
            stop.clone(),
        )
    };
    let mut received: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut collect = |sub: &mut PubSubClient, wait: Duration| {
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if let Some(f) = sub.try_frame(Duration::from_millis(50)) {
                let it = items(&f);
                received
                    .entry(it[1].clone())
                    .or_default()
                    .insert(it[2].parse().unwrap());
            }
        }
    };
    collect(&mut sub, Duration::from_millis(500));
    let killed_at = std::time::Instant::now();
    cluster.kill_node(&victim);
    cluster.wait_for_failover(&victim);
    let promoted_after = killed_at.elapsed();
    collect(&mut sub, Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let plain_acked = plain_publisher.join().unwrap();
    let shard_acked = shard_publisher.join().unwrap();
    collect(&mut sub, Duration::from_millis(500));

    let lost = |channel: &str, acked: &[(u64, std::time::Instant)]| {
        let got = received.get(channel).cloned().unwrap_or_default();
        let lost: Vec<std::time::Instant> = acked
            .iter()
            .filter(|(n, _)| !got.contains(n))
            .map(|(_, at)| *at)
            .collect();
        let window = match (lost.first(), lost.last()) {
            (Some(first), Some(last)) => *last - *first + Duration::from_millis(2),
            _ => Duration::ZERO,
        };
        let last_delivered = acked.last().is_some_and(|(n, _)| got.contains(n));
        (lost.len(), acked.len(), window, last_delivered)
    };
    let plain = lost("window:plain", &plain_acked);
    let sharded = lost(&shard, &shard_acked);
    eprintln!(
        "pubsub failover window: master killed, replica promoted after {promoted_after:?}; channel (published to a surviving master): {} of {} lost over {:?}; shard channel (SPUBLISH through keyway): {} of {} acknowledged lost over {:?}",
        plain.0, plain.1, plain.2, sharded.0, sharded.1, sharded.2
    );
    assert!(plain.3, "the channel delivers again after the failover");
    assert!(
        sharded.3,
        "the shard channel delivers again after the failover"
    );
}
