//! Commands with several keys: fine when the keys share a slot ({hash tag});
//! across slots, MGET/MSET/DEL/UNLINK/EXISTS/TOUCH are split per slot and
//! their replies merged (`tests/split.rs` has the thorough checks), while
//! every other multi-key command gets `-CROSSSLOT`; scripts with one-slot
//! keys or no keys.

use crate::support;

use support::{key_slot, Cluster, Proxy, RawClient};

const CROSSSLOT: &str = "-CROSSSLOT Keys in request don't hash to the same slot";

fn assert_crossslot(raw: &mut RawClient, args: &[&str]) {
    let reply = raw.cmd(args);
    assert!(
        reply.starts_with(CROSSSLOT),
        "{args:?} across slots: expected {CROSSSLOT:?}..., got {reply:?}"
    );
}

#[test]
fn multi_key_commands_and_scripts() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();

    // One slot through a hash tag: everything works.
    let (a, b, c) = ("{user:1}:name", "{user:1}:mail", "{user:1}:age");
    assert_eq!(key_slot(a.as_bytes()), key_slot(c.as_bytes()));
    let () = redis::cmd("MSET")
        .arg(a)
        .arg("ann")
        .arg(b)
        .arg("ann@example.org")
        .arg(c)
        .arg(33)
        .query(&mut con)
        .unwrap();
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(a)
        .arg("{user:1}:none")
        .arg(c)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, [Some("ann".into()), None, Some("33".into())]);
    let n: i64 = redis::cmd("EXISTS")
        .arg(a)
        .arg(b)
        .arg("{user:1}:none")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("MSETNX")
        .arg("{user:1}:x")
        .arg(1)
        .arg("{user:1}:y")
        .arg(2)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let () = redis::cmd("RENAME")
        .arg("{user:1}:x")
        .arg("{user:1}:z")
        .query(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("DEL")
        .arg(a)
        .arg(b)
        .arg("{user:1}:none")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("UNLINK")
        .arg(c)
        .arg("{user:1}:y")
        .arg("{user:1}:z")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 3);

    // Keys in different slots (on different masters, too): commands whose
    // keys act together get the exact error redis-server gives.
    let (x, y) = ("alpha", "beta");
    let (x_node, y_node) = (
        cluster.node_of_slot(key_slot(x.as_bytes())),
        cluster.node_of_slot(key_slot(y.as_bytes())),
    );
    assert_ne!(x_node, y_node);
    let mut raw = proxy.raw_client();
    assert_crossslot(&mut raw, &["MSETNX", x, "1", y, "2"]);
    assert_crossslot(&mut raw, &["SUNIONSTORE", x, y]);
    assert_crossslot(&mut raw, &["RENAME", x, y]);
    assert_crossslot(&mut raw, &["SINTERCARD", "2", x, y]);
    assert_crossslot(&mut raw, &["EVAL", "return 1", "2", x, y]);
    // Nothing was written by the refused commands, and the connection is fine.
    assert_eq!(raw.cmd(&["EXISTS", x, y]), ":0\r\n");

    // MGET, MSET, DEL, UNLINK, EXISTS and TOUCH are split per slot, and the
    // parts' replies merged as one node would have answered.
    assert_eq!(raw.cmd(&["MSET", x, "1", y, "2"]), "+OK\r\n");
    let on_node = |node: &str, key: &str| -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut cluster.conn(node))
            .unwrap()
    };
    assert_eq!(on_node(&x_node, x).as_deref(), Some("1"));
    assert_eq!(on_node(&y_node, y).as_deref(), Some("2"));
    assert_eq!(
        raw.cmd(&["MGET", y, "nosuch", x]),
        "*3\r\n$1\r\n2\r\n$-1\r\n$1\r\n1\r\n"
    );
    assert_eq!(raw.cmd(&["EXISTS", x, y, x, "nosuch"]), ":3\r\n");
    assert_eq!(raw.cmd(&["TOUCH", x, y]), ":2\r\n");
    // A value missing: Redis's own error, and nothing written.
    assert_eq!(
        raw.cmd(&["MSET", x, "3", y]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
    assert_eq!(raw.cmd(&["DEL", x, "nosuch", y]), ":2\r\n");
    assert_eq!(raw.cmd(&["UNLINK", x, y]), ":0\r\n");
    assert_eq!(on_node(&x_node, x), None);

    // Scripts: keys of one slot, and no keys at all.
    let script = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); \
                  return redis.call('MGET', KEYS[1], KEYS[2])";
    let got: Vec<String> = redis::cmd("EVAL")
        .arg(script)
        .arg(2)
        .arg("{s}:1")
        .arg("{s}:2")
        .arg("one")
        .arg("two")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["one", "two"]);
    let got: Vec<String> = redis::cmd("MGET")
        .arg("{s}:1")
        .arg("{s}:2")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["one", "two"]);
    let got: i64 = redis::cmd("EVAL")
        .arg("return 6 * 7")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, 42);
    let got: String = redis::cmd("EVAL")
        .arg("return ARGV[1]")
        .arg(0)
        .arg("keyless")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, "keyless");
    let err = redis::cmd("EVAL")
        .arg("return redis.call('NOSUCHCMD')")
        .arg(0)
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("unknown"), "{err}");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
