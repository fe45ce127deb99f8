//! Transactions through keyway: `MULTI`/`EXEC`/`DISCARD` answered like
//! redis-server (byte for byte, RESP2 and RESP3), queuing errors abort,
//! keys of two slots are refused at queue time, `WATCH` detects writes of
//! other clients (an optimistic-locking counter stays exact under
//! contention), pipelines keep their order, a client that leaves mid-way
//! leaves nothing on the nodes, and a slot that moved under a transaction
//! is followed.

use crate::support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::{key_slot, poll_until, Cluster, Proxy, RawClient, OP_TIMEOUT};

/// Sends every command of `script`, with each `{T}` replaced by `{tag}`,
/// on `client` and returns each reply.
fn run(client: &mut RawClient, script: &[&[&str]], tag: &str) -> Vec<String> {
    let tag = format!("{{{tag}}}");
    script
        .iter()
        .map(|args| {
            let args: Vec<String> = args.iter().map(|a| a.replace("{T}", &tag)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            client.cmd(&args)
        })
        .collect()
}

/// Runs `script` through keyway and on the master of the keys directly
/// (keys `{T}...` get a different tag on each, so both start empty), in
/// `proto`, and asserts the same bytes come back.
fn same_as_node(cluster: &Cluster, proxy: &Proxy, name: &str, script: &[&[&str]], proto: &str) {
    let (ours, theirs) = (format!("kw-{name}-{proto}"), format!("nd-{name}-{proto}"));
    let node = cluster.node_of_slot(key_slot(format!("{{{theirs}}}").as_bytes()));
    let mut via_keyway = proxy.raw_client();
    let mut direct = RawClient::connect(&node, OP_TIMEOUT);
    for client in [&mut via_keyway, &mut direct] {
        let hello = client.cmd(&["HELLO", proto]);
        assert!(
            hello.starts_with(if proto == "3" { "%" } else { "*" }),
            "{hello}"
        );
    }
    let got = run(&mut via_keyway, script, &ours);
    let want = run(&mut direct, script, &theirs);
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "{name} (RESP{proto}) step {i}: {:?}", script[i]);
    }
}

#[test]
fn transactions_answer_like_a_node() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let scripts: &[(&str, &[&[&str]])] = &[
        (
            "data",
            &[
                &["MULTI"],
                &["SET", "{T}s", "v"],
                &["INCR", "{T}n"],
                &["INCRBY", "{T}n", "41"],
                &["GET", "{T}s"],
                &["RPUSH", "{T}l", "a", "b", "c"],
                &["LRANGE", "{T}l", "0", "-1"],
                &["HSET", "{T}h", "f", "1", "g", "2"],
                &["HGETALL", "{T}h"],
                &["ZADD", "{T}z", "1.5", "m"],
                &["ZSCORE", "{T}z", "m"],
                &["SADD", "{T}set", "x"],
                &["SMEMBERS", "{T}set"],
                &["GET", "{T}missing"],
                &["PING"],
                &["ECHO", "hi"],
                &["EXEC"],
                &["GET", "{T}n"],
            ],
        ),
        ("empty", &[&["MULTI"], &["EXEC"]]),
        (
            "runtime-error",
            &[
                &["SET", "{T}s", "text"],
                &["MULTI"],
                &["INCR", "{T}s"],
                &["SET", "{T}t", "after"],
                &["EXEC"],
                &["GET", "{T}t"],
            ],
        ),
        (
            "discard",
            &[
                &["MULTI"],
                &["SET", "{T}d", "1"],
                &["DISCARD"],
                &["GET", "{T}d"],
                &["DISCARD"],
                &["EXEC"],
            ],
        ),
        (
            "nesting",
            &[
                &["MULTI"],
                &["MULTI"],
                &["WATCH", "{T}w"],
                &["INCR", "{T}c"],
                &["EXEC"],
            ],
        ),
        (
            "queuing-errors",
            &[
                &["MULTI"],
                &["SET", "{T}a", "1"],
                &["GET"],
                &["EXEC"],
                &["MULTI"],
                &["NOSUCHCOMMAND", "x"],
                &["SET", "{T}a", "2"],
                &["EXEC"],
                &["GET", "{T}a"],
            ],
        ),
        (
            "watch",
            &[
                &["WATCH", "{T}w", "{T}v"],
                &["GET", "{T}w"],
                &["MULTI"],
                &["SET", "{T}w", "1"],
                &["UNWATCH"],
                &["EXEC"],
                &["UNWATCH"],
                &["WATCH", "{T}w"],
                &["SET", "{T}w", "own write"],
                &["MULTI"],
                &["GET", "{T}w"],
                &["EXEC"],
                &["GET", "{T}w"],
            ],
        ),
        (
            "reset",
            &[
                &["MULTI"],
                &["SET", "{T}r", "1"],
                &["RESET"],
                &["EXEC"],
                &["GET", "{T}r"],
            ],
        ),
    ];
    for proto in ["2", "3"] {
        for (name, script) in scripts {
            same_as_node(&cluster, &proxy, name, script, proto);
        }
    }
}

#[test]
fn keys_of_two_slots_or_unservable_commands_abort_the_transaction() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut c = proxy.raw_client();
    assert_ne!(key_slot(b"{a}1"), key_slot(b"{b}1"));
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "{a}1", "x"]), "+QUEUED\r\n");
    let cross = c.cmd(&["SET", "{b}1", "y"]);
    assert!(
        cross.starts_with("-CROSSSLOT Keys in request don't hash to the same slot"),
        "{cross}"
    );
    assert!(cross.contains("hash tag"), "{cross}");
    assert_eq!(
        c.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // A command keyway would split across slots cannot join either.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert!(c.cmd(&["MGET", "{a}1", "{b}1"]).starts_with("-CROSSSLOT"));
    assert_eq!(c.cmd(&["SET", "{a}1", "x"]), "+QUEUED\r\n");
    assert!(c.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    assert_eq!(c.cmd(&["EXISTS", "{a}1"]), ":0\r\n", "nothing ran");
    assert_eq!(c.cmd(&["EXISTS", "{b}1"]), ":0\r\n", "nothing ran");

    // A command that runs on every master, or that keyway answers itself,
    // cannot join a node's transaction: a clear error, then EXECABORT,
    // and nothing queued ran (the flushes flushed nothing either).
    assert_eq!(c.cmd(&["SET", "{a}kept", "1"]), "+OK\r\n");
    let every_master = "it runs on every master, and a transaction runs on one";
    for (refused, name, why) in [
        (&["KEYS", "*"][..], "keys", every_master),
        (
            &["CLIENT", "SETNAME", "x"],
            "client setname",
            "keyway answers it itself",
        ),
        (
            &["CONFIG", "SET", "x", "y"],
            "config set",
            "it runs on every node",
        ),
        (&["FLUSHALL"], "flushall", every_master),
        (&["FLUSHDB", "ASYNC"], "flushdb", every_master),
        (&["SCRIPT", "FLUSH"], "script flush", every_master),
        (&["FUNCTION", "FLUSH"], "function flush", every_master),
    ] {
        assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(c.cmd(&["INCR", "{a}n"]), "+QUEUED\r\n");
        let reply = c.cmd(refused);
        assert!(reply.starts_with("-ERR"), "{refused:?}: {reply}");
        assert!(
            reply.starts_with(&format!(
                "-ERR '{name}' cannot be queued in a transaction through keyway: {why}"
            )),
            "names the command and says why: {reply}"
        );
        assert!(reply.contains("after EXEC"), "says what to do: {reply}");
        assert_eq!(
            c.cmd(&["EXEC"]),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
    }
    assert_eq!(c.cmd(&["GET", "{a}n"]), "$-1\r\n");
    assert_eq!(c.cmd(&["GET", "{a}kept"]), "$1\r\n1\r\n");

    // WATCHed keys and the transaction's share a slot.
    assert_eq!(c.cmd(&["WATCH", "{a}w"]), "+OK\r\n");
    assert!(c.cmd(&["WATCH", "{b}w"]).starts_with("-CROSSSLOT"));
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert!(c.cmd(&["SET", "{b}w", "1"]).starts_with("-CROSSSLOT"));
    assert!(c.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    // Keyless commands go wherever the keys are; PUBLISH is keyless here.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    for args in [
        &["SET", "{b}k", "v"][..],
        &["PUBLISH", "chan", "m"],
        &["TIME"],
        &["GET", "{b}k"],
    ] {
        assert_eq!(c.cmd(args), "+QUEUED\r\n", "{args:?}");
    }
    let exec = c.cmd(&["EXEC"]);
    assert!(exec.starts_with("*4\r\n+OK\r\n:0\r\n*2\r\n$"), "{exec}");
    assert!(exec.ends_with("$1\r\nv\r\n"), "{exec}");
}

#[test]
fn watch_sees_other_clients_writes_and_locking_counts_exactly() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let (mut a, mut b) = (proxy.raw_client(), proxy.raw_client());

    // Another client's write between WATCH and EXEC: nil, nothing ran.
    assert_eq!(a.cmd(&["SET", "{w}k", "0"]), "+OK\r\n");
    assert_eq!(a.cmd(&["WATCH", "{w}k"]), "+OK\r\n");
    assert_eq!(a.cmd(&["GET", "{w}k"]), "$1\r\n0\r\n");
    assert_eq!(b.cmd(&["SET", "{w}k", "theirs"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "{w}k", "mine"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["SET", "{w}other", "x"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(a.cmd(&["GET", "{w}k"]), "$6\r\ntheirs\r\n");
    assert_eq!(a.cmd(&["EXISTS", "{w}other"]), ":0\r\n");
    // EXEC ended the watch: the same write now does not abort.
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "{w}k", "again"]), "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "{w}k", "mine"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
    // A write after DISCARD (which unwatches) does not abort either.
    assert_eq!(a.cmd(&["WATCH", "{w}k"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["DISCARD"]), "+OK\r\n");
    assert_eq!(b.cmd(&["SET", "{w}k", "later"]), "+OK\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["GET", "{w}k"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "*1\r\n$5\r\nlater\r\n");
    // RESP3: the aborted EXEC is a null.
    assert!(a.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(a.cmd(&["WATCH", "{w}k"]), "+OK\r\n");
    assert_eq!(b.cmd(&["DEL", "{w}k"]), ":1\r\n");
    assert_eq!(a.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(a.cmd(&["INCR", "{w}k"]), "+QUEUED\r\n");
    assert_eq!(a.cmd(&["EXEC"]), "_\r\n");

    // Optimistic locking under contention: WATCH/GET/MULTI/SET/EXEC with
    // retries (the redis crate's transaction helper), from several threads
    // at once, on counters of every master.
    const THREADS: usize = 4;
    const ROUNDS: i64 = 40;
    let keys: Vec<String> = (0..3).map(|i| format!("{{lock{i}}}counter")).collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (client, keys, barrier) = (proxy.client(), keys.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut con = client.get_connection().expect("connect");
                barrier.wait();
                let mut aborted = 0;
                for _ in 0..ROUNDS {
                    for key in &keys {
                        let _: (i64,) = redis::transaction(&mut con, &[key], |con, pipe| {
                            let n: Option<i64> = redis::cmd("GET").arg(key).query(con)?;
                            let r: Option<(i64,)> = pipe
                                .set(key, n.unwrap_or(0) + 1)
                                .ignore()
                                .get(key)
                                .query(con)?;
                            if r.is_none() {
                                aborted += 1;
                            }
                            Ok(r)
                        })
                        .expect("transaction");
                    }
                }
                aborted
            })
        })
        .collect();
    let aborted: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    let mut con = proxy.conn();
    for key in &keys {
        let n: i64 = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(n, THREADS as i64 * ROUNDS, "{key}: every increment once");
    }
    println!("optimistic-locking retries (EXEC answered nil): {aborted}");
}

#[test]
fn transactions_inside_pipelines_keep_their_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    // The redis crate's atomic pipelines: MULTI ... EXEC in one write.
    for i in 0..50 {
        let key = format!("{{p{i}}}n");
        let (a, b, c): (i64, i64, String) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .incr(&key, 10)
            .set(format!("{{p{i}}}s"), "x")
            .ignore()
            .get(format!("{{p{i}}}s"))
            .query(&mut con)
            .unwrap();
        assert_eq!((a, b, c.as_str()), (1, 11, "x"));
    }
    // One raw pipeline: plain commands on every master between
    // transactions on different slots, one with WATCH.
    let mut raw = proxy.raw_client();
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    let mut push = |args: &[&str], reply: String| {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(support::resp::encode(&args));
        expected.push(reply);
    };
    for i in 0..30 {
        let (t, k, w) = (
            format!("{{t{i}}}x"),
            format!("plain{i}"),
            format!("{{t{i}}}w"),
        );
        push(&["SET", &k, "1"], "+OK\r\n".into());
        push(&["WATCH", &w], "+OK\r\n".into());
        push(&["MULTI"], "+OK\r\n".into());
        push(&["INCR", &t], "+QUEUED\r\n".into());
        push(&["INCR", &t], "+QUEUED\r\n".into());
        push(&["EXEC"], "*2\r\n:1\r\n:2\r\n".into());
        push(&["INCR", &k], ":2\r\n".into());
        push(&["MULTI"], "+OK\r\n".into());
        push(&["GET", &t], "+QUEUED\r\n".into());
        push(&["EXEC"], "*1\r\n$1\r\n2\r\n".into());
        push(&["GET", &k], "$1\r\n2\r\n".into());
    }
    raw.send(&bytes);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&raw.reply_text(), want, "reply {i}");
    }
}

/// Connections on `node` whose last command was `WATCH`, and those inside
/// `MULTI` (flag `x`).
fn connections(cluster: &Cluster, node: &str) -> (usize, usize) {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut cluster.conn(node))
        .expect("CLIENT LIST");
    let has = |line: &str, field: &str, pred: &dyn Fn(&str) -> bool| {
        line.split(' ')
            .any(|f| f.strip_prefix(field).is_some_and(pred))
    };
    let watching = list
        .lines()
        .filter(|l| has(l, "cmd=", &|c| c == "watch"))
        .count();
    let multi = list
        .lines()
        .filter(|l| has(l, "flags=", &|f| f.contains('x')))
        .count();
    (watching, multi)
}

#[test]
fn a_client_leaving_mid_transaction_leaves_nothing_behind() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let masters = cluster.masters();
    let counts = |cluster: &Cluster| -> Vec<(usize, usize)> {
        masters.iter().map(|m| connections(cluster, m)).collect()
    };
    let baseline = counts(&cluster);
    assert!(baseline.iter().all(|c| *c == (0, 0)), "{baseline:?}");
    // Clients that WATCH (a dedicated connection each) and leave inside
    // MULTI, with commands queued.
    let mut leaving: Vec<RawClient> = (0..20)
        .map(|i| {
            let mut c = proxy.raw_client();
            let (w, k) = (format!("{{gone{i}}}w"), format!("{{gone{i}}}k"));
            assert_eq!(c.cmd(&["WATCH", &w]), "+OK\r\n");
            assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
            assert_eq!(c.cmd(&["SET", &k, "never"]), "+QUEUED\r\n");
            c
        })
        .collect();
    let during = counts(&cluster);
    let watching: usize = during.iter().map(|c| c.0).sum();
    assert_eq!(
        watching, 20,
        "one dedicated connection per watching client: {during:?}"
    );
    assert!(
        during.iter().all(|(_, multi)| *multi == 0),
        "keyway queues MULTI itself: {during:?}"
    );
    leaving.clear();
    let settled = poll_until(Duration::from_secs(5), || {
        let now = counts(&cluster);
        (now == baseline).then_some(now)
    });
    assert!(
        settled.is_some(),
        "dedicated connections closed: {:?} vs {baseline:?}",
        counts(&cluster)
    );
    let mut c = proxy.raw_client();
    for i in 0..20 {
        assert_eq!(
            c.cmd(&["EXISTS", &format!("{{gone{i}}}k")]),
            ":0\r\n",
            "never ran"
        );
        // Writes to the watched keys disturb nobody's transactions now.
        assert_eq!(c.cmd(&["SET", &format!("{{gone{i}}}w"), "x"]), "+OK\r\n");
    }
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", "{gone0}k", "now"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
}

#[test]
fn a_slot_moved_under_a_transaction_is_followed() {
    let cluster = Cluster::start();
    // No periodic refresh: keyway learns of the moves from MOVED.
    let proxy = Proxy::start_with_config(&cluster, "[cluster]\nrefresh_interval_s = 3600\n");
    let mut c = proxy.raw_client();
    let masters = cluster.masters();

    // A transaction without WATCH: refused with MOVED while queuing (it
    // ran nothing), sent again to the new master.
    let key = "{moving1}k";
    let slot = key_slot(key.as_bytes());
    let from = cluster.node_of_slot(slot);
    let to = masters.iter().find(|m| **m != from).unwrap().clone();
    assert_eq!(c.cmd(&["SET", key, "1"]), "+OK\r\n");
    cluster.migrate_slot(slot, &from, &to);
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["INCR", key]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["INCR", key]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*2\r\n:2\r\n:3\r\n");
    let on_new: String = redis::cmd("GET")
        .arg(key)
        .query(&mut cluster.conn(&to))
        .unwrap();
    assert_eq!(on_new, "3", "ran once, on the new master");

    // WATCH as the first command after a move: re-pinned to the new
    // master, and the watch works there.
    let key = "{moving2}k";
    let slot = key_slot(key.as_bytes());
    let from = cluster.node_of_slot(slot);
    let to = masters.iter().find(|m| **m != from).unwrap().clone();
    assert_eq!(c.cmd(&["SET", key, "a"]), "+OK\r\n");
    cluster.migrate_slot(slot, &from, &to);
    assert_eq!(c.cmd(&["WATCH", key]), "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["APPEND", key, "b"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n:2\r\n");
    let mut other = proxy.raw_client();
    assert_eq!(c.cmd(&["WATCH", key]), "+OK\r\n");
    assert_eq!(other.cmd(&["APPEND", key, "c"]), ":3\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["APPEND", key, "d"]), "+QUEUED\r\n");
    assert_eq!(
        c.cmd(&["EXEC"]),
        "*-1\r\n",
        "the write of the other client was seen"
    );

    // The slot moves while watched: the watch is lost, EXEC answers nil
    // (the client retries), nothing ran.
    assert_eq!(c.cmd(&["WATCH", key]), "+OK\r\n");
    let back = cluster.node_of_slot(slot);
    let elsewhere = masters.iter().find(|m| **m != back).unwrap().clone();
    cluster.migrate_slot(slot, &back, &elsewhere);
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["APPEND", key, "e"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(c.cmd(&["GET", key]), "$3\r\nabc\r\n");
    // And the retry goes through.
    assert_eq!(c.cmd(&["WATCH", key]), "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["APPEND", key, "e"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n:4\r\n");
}

#[test]
fn a_watch_does_not_survive_its_master_but_transactions_do() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let key = "{failing}k";
    let victim = cluster.node_of_slot(key_slot(key.as_bytes()));
    let mut c = proxy.raw_client();
    assert_eq!(c.cmd(&["SET", key, "1"]), "+OK\r\n");
    assert_eq!(
        c.cmd(&["WAIT", "1", "2000"]),
        ":1\r\n",
        "the replica has it"
    );
    assert_eq!(c.cmd(&["WATCH", key]), "+OK\r\n");
    cluster.kill_node(&victim);
    cluster.wait_for_failover(&victim);
    // The watch died with the master's connection: EXEC cannot run the
    // transaction unwatched. It answers nil (or, while keyway catches up,
    // an error), and nothing ran.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["INCR", key]), "+QUEUED\r\n");
    let exec = c.cmd(&["EXEC"]);
    assert!(exec == "*-1\r\n" || exec.starts_with('-'), "{exec}");
    // The client's retry loop goes through on the new master.
    let done = poll_until(Duration::from_secs(20), || {
        if !c.cmd(&["WATCH", key]).starts_with('+') {
            return None;
        }
        let value = c.cmd(&["GET", key]);
        c.cmd(&["MULTI"]);
        c.cmd(&["INCR", key]);
        let exec = c.cmd(&["EXEC"]);
        exec.starts_with("*1\r\n").then_some((value, exec))
    });
    let (value, exec) = done.expect("a watched transaction on the new master");
    assert_eq!(
        (value.as_str(), exec.as_str()),
        ("$1\r\n1\r\n", "*1\r\n:2\r\n"),
        "INCR ran once"
    );
}
