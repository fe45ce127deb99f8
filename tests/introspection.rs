//! Introspection through keyway, compared with one redis-server 7.0 run by
//! the test (issue 19, item 7): `TYPE`, `OBJECT`, `MEMORY USAGE`, `DUMP` and
//! `RESTORE` of every data type, the TTLs `RESTORE` sets, and `SORT`. The
//! same commands on the same data go to keyway (in front of a 3+3 cluster)
//! and to the standalone server, in RESP2 and in RESP3, and the raw replies
//! must be equal byte for byte, except where noted:
//!
//! - idle times are compared by shape (both count from when each server
//!   saw the key, a few milliseconds apart);
//! - a `DUMP` of a hash-table encoded set or hash, or of a stream with
//!   consumers, differs between any two processes (the dict's random hash
//!   seed orders the elements; consumers carry their seen-time), so those
//!   payloads are compared by what they restore to;
//! - `SORT ... BY pattern` / `GET pattern` are refused by a cluster node
//!   (Redis 7.0 refuses every such pattern in cluster mode, hash tag or
//!   not): keyway's reply is the node's, compared with the node directly;
//! - `SORT ... STORE` into another slot: `-CROSSSLOT` (also when queued in
//!   a transaction), where redis-server stores;
//! - `MEMORY USAGE` is a cluster node's (16 bytes more per key than one
//!   redis-server: the dict entry's slot-list links), compared with the
//!   node directly;
//! - `DEBUG` is refused by keyway (one node's administration).

use crate::support;

use support::auth::{masked_hello, Pair};
use support::resp::encode;
use support::{key_slot, Cluster, Proxy, RawClient, Standalone, OP_TIMEOUT};

/// keyway, the cluster it fronts and the reference server.
struct Setup {
    cluster: Cluster,
    proxy: Proxy,
    server: Standalone,
}

impl Setup {
    fn start() -> Setup {
        let cluster = Cluster::start();
        let proxy = Proxy::start(&cluster);
        let server = Standalone::start(&[], None);
        Setup {
            cluster,
            proxy,
            server,
        }
    }

    /// A pair of connections to keyway and the server, in RESP3 when
    /// `resp3` (both said `HELLO 3` and answered alike).
    fn pair(&self, resp3: bool) -> Pair {
        let mut pair = Pair::new(&self.proxy.addr(), &self.server);
        if resp3 {
            let (ours, theirs) = pair.both(&["HELLO", "3"]);
            assert!(theirs.starts_with("%7\r\n"), "redis-server: {theirs:?}");
            assert_eq!(masked_hello(&ours), masked_hello(&theirs), "HELLO 3");
        }
        pair
    }

    /// A raw connection to the master of `key`'s slot.
    fn node_of(&self, key: &str) -> RawClient {
        let node = self.cluster.node_of_slot(key_slot(key.as_bytes()));
        RawClient::connect(&node, OP_TIMEOUT)
    }
}

/// Sends `args` (binary-safe) to both and returns both raw replies.
fn both_bytes(pair: &mut Pair, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let request = encode(args);
    pair.keyway.send(&request);
    pair.redis.send(&request);
    (pair.keyway.reply(), pair.redis.reply())
}

fn lossy(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Like [`Pair::same`], binary-safe: the reply, equal on both sides.
fn same_bytes(pair: &mut Pair, args: &[&[u8]]) -> Vec<u8> {
    let (ours, theirs) = both_bytes(pair, args);
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs),
        "keyway differs from redis-server for {:?}",
        lossy(args)
    );
    assert_eq!(ours, theirs, "bytes differ for {:?}", lossy(args));
    ours
}

/// The integer of a RESP `:N` reply.
fn int(reply: &str) -> i64 {
    reply
        .strip_prefix(':')
        .and_then(|r| r.strip_suffix("\r\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

/// The payload of a RESP bulk string reply (`$N\r\n...\r\n`).
fn bulk(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    assert!(text.starts_with('$'), "not a bulk string: {text:?}");
    let header = reply.iter().position(|&b| b == b'\r').expect("header") + 2;
    reply[header..reply.len() - 2].to_vec()
}

/// A key of the test's own slot: `{tag}:name`.
fn key(tag: &str, name: &str) -> String {
    format!("{{{tag}}}:{name}")
}

/// One value of each data type and encoding, and how to read it back.
struct Kind {
    name: &'static str,
    type_: &'static str,
    encoding: &'static str,
    /// A `DUMP` of equal data is equal byte for byte between processes.
    stable_dump: bool,
}

const KINDS: &[Kind] = &[
    kind("int", "string", "int", true),
    kind("shared", "string", "int", true),
    kind("embstr", "string", "embstr", true),
    kind("raw", "string", "raw", true),
    kind("list", "list", "quicklist", true),
    kind("biglist", "list", "quicklist", true),
    kind("intset", "set", "intset", true),
    kind("set", "set", "hashtable", false),
    kind("hash", "hash", "listpack", true),
    kind("bighash", "hash", "hashtable", false),
    kind("zset", "zset", "listpack", true),
    kind("bigzset", "zset", "skiplist", true),
    kind("stream", "stream", "stream", true),
    kind("consumed", "stream", "stream", false),
    kind("hll", "string", "raw", true),
    kind("bitmap", "string", "raw", true),
    kind("geo", "zset", "listpack", true),
];

const fn kind(
    name: &'static str,
    type_: &'static str,
    encoding: &'static str,
    stable: bool,
) -> Kind {
    Kind {
        name,
        type_,
        encoding,
        stable_dump: stable,
    }
}

/// Creates every [`KINDS`] value under `tag` on both sides, checking each
/// write's reply.
fn create_all(pair: &mut Pair, tag: &str) {
    let k = |name: &str| key(tag, name);
    pair.same(&["SET", &k("int"), "123456"]);
    pair.same(&["SET", &k("shared"), "7"]);
    pair.same(&["SET", &k("embstr"), "hello"]);
    pair.same(&["SET", &k("raw"), &"r".repeat(100)]);
    pair.same(&["RPUSH", &k("list"), "a", "b", "c", "1", "2"]);
    let items: Vec<String> = (0..300).map(|i| format!("{i:0>90}")).collect();
    let mut args = vec!["RPUSH".to_string(), k("biglist")];
    args.extend(items);
    pair.same(&args.iter().map(String::as_str).collect::<Vec<_>>());
    pair.same(&["SADD", &k("intset"), "3", "1", "2", "-5"]);
    pair.same(&["SADD", &k("set"), "pear", "apple", "fig", "kiwi"]);
    pair.same(&["HSET", &k("hash"), "f1", "v1", "f2", "2", "f3", "v3"]);
    let mut args = vec!["HSET".to_string(), k("bighash")];
    for i in 0..200 {
        args.push(format!("field{i}"));
        // Values over 64 bytes make it a hash table.
        args.push(format!("value{i:0>70}"));
    }
    pair.same(&args.iter().map(String::as_str).collect::<Vec<_>>());
    pair.same(&["ZADD", &k("zset"), "1", "one", "2.5", "two", "-3", "three"]);
    let mut args = vec!["ZADD".to_string(), k("bigzset")];
    for i in 0..200 {
        args.push(format!("{}", i * 7 % 101));
        args.push(format!("member{i}"));
    }
    pair.same(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for stream in ["stream", "consumed"] {
        let s = k(stream);
        pair.same(&["XADD", &s, "1-1", "a", "1"]);
        pair.same(&["XADD", &s, "2-1", "b", "2", "c", "3"]);
        pair.same(&["XADD", &s, "3-0", "a", "4"]);
        pair.same(&["XGROUP", "CREATE", &s, "g", "0"]);
    }
    pair.same(&["XDEL", &k("stream"), "2-1"]);
    // Consumers carry their seen-time: this one's DUMP is compared by what
    // it restores to.
    let consumed = k("consumed");
    pair.same(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "alice",
        "COUNT",
        "2",
        "STREAMS",
        &consumed,
        ">",
    ]);
    pair.same(&["XACK", &consumed, "g", "1-1"]);
    pair.same(&["PFADD", &k("hll"), "a", "b", "c", "d", "e"]);
    pair.same(&["SETBIT", &k("bitmap"), "100", "1"]);
    pair.same(&["SETBIT", &k("bitmap"), "7", "1"]);
    pair.same(&[
        "GEOADD",
        &k("geo"),
        "13.361389",
        "38.115556",
        "Palermo",
        "15.087269",
        "37.502669",
        "Catania",
    ]);
}

/// Commands that read a value of kind `name` at `key` entirely, in an order
/// that does not depend on the process (sets sorted, big hashes by field).
fn reads(name: &str, key: &str) -> Vec<Vec<String>> {
    let v = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mut out = vec![v(&["TYPE", key]), v(&["OBJECT", "ENCODING", key])];
    out.extend(match name {
        "int" | "shared" | "embstr" | "raw" => vec![v(&["GET", key]), v(&["STRLEN", key])],
        "list" | "biglist" => vec![v(&["LRANGE", key, "0", "-1"]), v(&["LLEN", key])],
        "intset" => vec![v(&["SMEMBERS", key]), v(&["SORT", key])],
        "set" => vec![v(&["SORT", key, "ALPHA"]), v(&["SCARD", key])],
        "hash" => vec![v(&["HGETALL", key])],
        "bighash" => {
            let mut hmget = v(&["HMGET", key]);
            hmget.extend((0..201).map(|i| format!("field{i}")));
            vec![v(&["HLEN", key]), hmget]
        }
        "zset" | "bigzset" => vec![v(&["ZRANGE", key, "0", "-1", "WITHSCORES"])],
        "stream" | "consumed" => vec![
            v(&["XRANGE", key, "-", "+"]),
            v(&["XINFO", "GROUPS", key]),
            v(&["XPENDING", key, "g"]),
            v(&["XLEN", key]),
        ],
        "hll" => vec![v(&["PFCOUNT", key]), v(&["GET", key])],
        "bitmap" => vec![v(&["GET", key]), v(&["BITCOUNT", key])],
        "geo" => vec![
            v(&["GEOPOS", key, "Palermo", "Catania", "nowhere"]),
            v(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        ],
        other => panic!("no reads for {other}"),
    });
    out
}

/// Sends every read of `name` at `key` to both; the replies must be equal.
fn same_reads(pair: &mut Pair, name: &str, key: &str) {
    for args in reads(name, key) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        same_bytes(pair, &args);
    }
}

/// `TYPE`, `OBJECT`, `MEMORY USAGE` of every kind, `OBJECT FREQ` without and
/// with an LFU policy, and keyway's refusal of `DEBUG`.
fn object_introspection(setup: &Setup, pair: &mut Pair, tag: &str) {
    create_all(pair, tag);
    let missing = key(tag, "missing");
    pair.expect(&["TYPE", &missing], "+none\r\n");
    for reply in [
        pair.same(&["OBJECT", "ENCODING", &missing]),
        pair.same(&["OBJECT", "REFCOUNT", &missing]),
        pair.same(&["OBJECT", "IDLETIME", &missing]),
        pair.same(&["OBJECT", "FREQ", &missing]),
        pair.same(&["MEMORY", "USAGE", &missing]),
    ] {
        assert!(reply == "$-1\r\n" || reply == "_\r\n", "{reply:?}");
    }
    for kind in KINDS {
        let k = key(tag, kind.name);
        pair.expect(&["TYPE", &k], &format!("+{}\r\n", kind.type_));
        let encoding = pair.same(&["OBJECT", "ENCODING", &k]);
        assert!(
            encoding.ends_with(&format!("{}\r\n", kind.encoding)),
            "{}: {encoding:?}",
            kind.name
        );
        pair.same(&["OBJECT", "REFCOUNT", &k]);
        // A cluster node's key costs 16 bytes more than one redis-server's
        // (the dict entry's slot-list links): keyway says what the node
        // says. Estimates that differ between any two processes: a skip
        // list's (its node levels are random), and a hash table's from
        // samples (the random hash seed picks which elements).
        let mut node = setup.node_of(&k);
        for (args, exact) in [
            (
                &["MEMORY", "USAGE", &k][..],
                kind.stable_dump && kind.encoding != "skiplist",
            ),
            (
                &["MEMORY", "USAGE", &k, "SAMPLES", "0"],
                kind.encoding != "skiplist",
            ),
        ] {
            let (ours, theirs) = pair.both(args);
            assert_eq!(ours, node.cmd(args), "keyway and the node: {args:?}");
            if exact {
                assert_eq!(int(&ours) - int(&theirs), 16, "{args:?}");
            } else {
                int(&theirs);
            }
        }
        // Idle time counts from each server's own last access: equal
        // shape, a few seconds at most.
        let (ours, theirs) = pair.both(&["OBJECT", "IDLETIME", &k]);
        assert!(
            int(&ours) <= 10 && int(&theirs) <= 10,
            "{ours:?} {theirs:?}"
        );
    }
    pair.expect(
        &["OBJECT", "REFCOUNT", &key(tag, "shared")],
        ":2147483647\r\n",
    );
    pair.expect(&["OBJECT", "REFCOUNT", &key(tag, "int")], ":1\r\n");
    let help = pair.same(&["OBJECT", "HELP"]);
    assert!(help.contains("FREQ <key>"), "{help:?}");
    pair.same(&["OBJECT"]);
    pair.same(&["OBJECT", "ENCODING"]);
    pair.same(&["OBJECT", "NOSUCH", &missing]);
    pair.same(&["OBJECT", "ENCODING", &missing, "extra"]);
    pair.same(&["TYPE"]);
    pair.same(&["MEMORY", "USAGE", &missing, "SAMPLES"]);

    // Without an LFU policy, no access frequency.
    let freq = pair.same(&["OBJECT", "FREQ", &key(tag, "embstr")]);
    assert!(freq.starts_with("-ERR An LFU maxmemory policy is not selected"));

    // keyway sends CONFIG SET to every node, masters and replicas.
    pair.expect(
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        "+OK\r\n",
    );
    for node in setup.cluster.all_addrs() {
        let mut direct = RawClient::connect(&node, OP_TIMEOUT);
        assert_eq!(
            direct.cmd(&["CONFIG", "GET", "maxmemory-policy"]),
            "*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lfu\r\n",
            "{node}"
        );
    }
    let idle = pair.same(&["OBJECT", "IDLETIME", &key(tag, "embstr")]);
    assert!(idle.starts_with("-ERR An LFU maxmemory policy is selected"));
    // A new key starts at LFU_INIT_VAL (5); its first read always counts.
    let fresh = key(tag, "fresh");
    pair.expect(&["SET", &fresh, "v"], "+OK\r\n");
    pair.expect(&["OBJECT", "FREQ", &fresh], ":5\r\n");
    pair.same(&["GET", &fresh]);
    pair.expect(&["OBJECT", "FREQ", &fresh], ":6\r\n");
    // Keys written before the switch: their LRU clock read as a counter,
    // an integer on both sides.
    for kind in KINDS {
        let (ours, theirs) = pair.both(&["OBJECT", "FREQ", &key(tag, kind.name)]);
        int(&ours);
        int(&theirs);
    }
    pair.expect(
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        "+OK\r\n",
    );

    // DEBUG acts on one node: keyway refuses it in every form, naming it as
    // Redis names commands in errors (lower case).
    let refusal = "-ERR 'debug' cannot be proxied: it acts on one node of the cluster; \
                   send it to that node directly\r\n";
    for args in [
        &["DEBUG", "OBJECT", &key(tag, "embstr")][..],
        &["debug", "object", &missing],
        &["DEBUG", "SLEEP", "0"],
        &["DEBUG", "HELP"],
    ] {
        let (ours, theirs) = pair.both(args);
        assert_eq!(ours, refusal, "{args:?}");
        // redis-server 7.0 refuses it too unless enable-debug-command.
        assert!(
            theirs.starts_with("-ERR DEBUG command not allowed"),
            "{theirs:?}"
        );
    }
}

#[test]
fn type_object_and_memory_usage_match_redis_server() {
    let setup = Setup::start();
    for (resp3, tag) in [(false, "intro-obj2"), (true, "intro-obj3")] {
        let mut pair = setup.pair(resp3);
        object_introspection(&setup, &mut pair, tag);
    }
}

/// An absolute expiry far ahead (2100-01-01), in ms, for `ABSTTL`.
const FAR_MS: &str = "4102444800000";

/// `DUMP` of every kind, `RESTORE` under new keys of the same slot (with each
/// option), the TTLs it sets, and its errors.
fn dump_and_restore(pair: &mut Pair, tag: &str) {
    create_all(pair, tag);
    for kind in KINDS {
        let k = key(tag, kind.name);
        let (ours, theirs) = both_bytes(pair, &[b"DUMP", k.as_bytes()]);
        let (ours, theirs) = (bulk(&ours), bulk(&theirs));
        // The RDB version (10 for 7.0) sits before the CRC64 at the end.
        assert_eq!(ours[ours.len() - 10..ours.len() - 8], [10, 0]);
        if kind.stable_dump {
            assert_eq!(ours, theirs, "DUMP {} differs", kind.name);
        } else {
            assert_eq!(ours.len(), theirs.len(), "DUMP {} length", kind.name);
        }
        // Each side restores the other's payload: the formats agree.
        let copy = key(tag, &format!("{}-copy", kind.name));
        let ttl_copy = key(tag, &format!("{}-ttl", kind.name));
        for (target, ttl, extra) in [(&copy, "0", &[][..]), (&ttl_copy, FAR_MS, &["ABSTTL"][..])] {
            for (client, payload) in [(&mut pair.keyway, &theirs), (&mut pair.redis, &ours)] {
                let mut args: Vec<&[u8]> = vec![b"RESTORE", target.as_bytes(), ttl.as_bytes()];
                args.push(payload);
                args.extend(extra.iter().map(|a| a.as_bytes()));
                client.send(&encode(&args));
                assert_eq!(client.reply_text(), "+OK\r\n", "RESTORE {}", kind.name);
            }
        }
        if kind.stable_dump {
            // The copy dumps to the very same payload (before any read:
            // PFCOUNT caches the cardinality in the HyperLogLog).
            let again = bulk(&same_bytes(pair, &[b"DUMP", copy.as_bytes()]));
            assert_eq!(again, ours, "DUMP of the restored {}", kind.name);
        }
        same_reads(pair, kind.name, &copy);
        same_reads(pair, kind.name, &ttl_copy);
        pair.expect(&["TTL", &copy], ":-1\r\n");
        pair.expect(&["EXPIRETIME", &ttl_copy], ":4102444800\r\n");
        pair.expect(&["PEXPIRETIME", &ttl_copy], &format!(":{FAR_MS}\r\n"));
        // Onto an existing key: BUSYKEY, unless REPLACE.
        let payload = ours.as_slice();
        let restore = |target: &str, ttl: &str, options: &[&str]| -> Vec<Vec<u8>> {
            let mut args = vec![
                b"RESTORE".to_vec(),
                target.into(),
                ttl.into(),
                payload.to_vec(),
            ];
            args.extend(options.iter().map(|o| o.as_bytes().to_vec()));
            args
        };
        let run = |pair: &mut Pair, args: Vec<Vec<u8>>| {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            String::from_utf8_lossy(&same_bytes(pair, &args)).into_owned()
        };
        assert_eq!(
            run(pair, restore(&copy, "0", &[])),
            "-BUSYKEY Target key name already exists.\r\n"
        );
        assert_eq!(run(pair, restore(&copy, "0", &["REPLACE"])), "+OK\r\n");
        // A relative TTL: counts down from each server's clock.
        assert_eq!(run(pair, restore(&copy, "100000", &["REPLACE"])), "+OK\r\n");
        let (ours_ttl, theirs_ttl) = pair.both(&["TTL", &copy]);
        assert!((99..=100).contains(&int(&ours_ttl)), "{ours_ttl:?}");
        assert!((99..=100).contains(&int(&theirs_ttl)), "{theirs_ttl:?}");
        let (ours_pttl, theirs_pttl) = pair.both(&["PTTL", &copy]);
        assert!(
            (90_000..=100_000).contains(&int(&ours_pttl)),
            "{ours_pttl:?}"
        );
        assert!((90_000..=100_000).contains(&int(&theirs_pttl)));
        // IDLETIME sets the LRU clock back (seconds, within a tick).
        assert_eq!(
            run(pair, restore(&copy, "0", &["REPLACE", "IDLETIME", "1000"])),
            "+OK\r\n"
        );
        let (ours_idle, theirs_idle) = pair.both(&["OBJECT", "IDLETIME", &copy]);
        assert!((1000..=1002).contains(&int(&ours_idle)), "{ours_idle:?}");
        assert!(
            (1000..=1002).contains(&int(&theirs_idle)),
            "{theirs_idle:?}"
        );
        // Already expired: nothing is created (and REPLACE deletes).
        assert_eq!(
            run(pair, restore(&copy, "1000", &["REPLACE", "ABSTTL"])),
            "+OK\r\n"
        );
        pair.expect(&["EXISTS", &copy], ":0\r\n");
        for options in [
            &["IDLETIME", "1", "FREQ", "1"][..],
            &["FREQ", "256"],
            &["IDLETIME", "-1"],
            &["REPLACE", "NOSUCH"],
            &["ABSTTL", "ABSTTL", "IDLETIME"],
        ] {
            let reply = run(pair, restore(&copy, "0", options));
            assert!(reply.starts_with("-ERR "), "{options:?}: {reply:?}");
        }
        assert!(run(pair, restore(&copy, "-1", &[])).starts_with("-ERR Invalid TTL"));
    }

    // FREQ takes effect under an LFU policy (CONFIG SET reaches every node).
    let payload = bulk(&same_bytes(pair, &[b"DUMP", key(tag, "embstr").as_bytes()]));
    let freq = key(tag, "freq");
    pair.expect(
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        "+OK\r\n",
    );
    let args: Vec<&[u8]> = vec![b"RESTORE", freq.as_bytes(), b"0", &payload, b"FREQ", b"100"];
    assert_eq!(same_bytes(pair, &args), b"+OK\r\n");
    pair.expect(&["OBJECT", "FREQ", &freq], ":100\r\n");
    pair.expect(
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        "+OK\r\n",
    );

    // Corrupt payloads: a flipped byte, a truncated one, no RDB at all.
    let target = key(tag, "corrupt");
    let mut flipped = payload.clone();
    flipped[1] ^= 0x20;
    let truncated = &payload[..payload.len() - 3];
    for bad in [&flipped[..], truncated, b"not a payload", b""] {
        let args: Vec<&[u8]> = vec![b"RESTORE", target.as_bytes(), b"0", bad];
        assert_eq!(
            String::from_utf8_lossy(&same_bytes(pair, &args)),
            "-ERR DUMP payload version or checksum are wrong\r\n"
        );
    }
    pair.expect(&["EXISTS", &target], ":0\r\n");
    let missing = key(tag, "missing");
    let reply = same_bytes(pair, &[b"DUMP", missing.as_bytes()]);
    assert!(reply == b"$-1\r\n" || reply == b"_\r\n");
    pair.same(&["DUMP"]);
    pair.same(&["RESTORE", &target, "0"]);

    // Pipelined: every stable DUMP in one write, the same replies in order.
    let stable: Vec<&Kind> = KINDS.iter().filter(|kind| kind.stable_dump).collect();
    let mut request = Vec::new();
    for kind in &stable {
        request.extend(encode(&[b"DUMP", key(tag, kind.name).as_bytes()]));
    }
    pair.keyway.send(&request);
    pair.redis.send(&request);
    let ours: Vec<Vec<u8>> = stable.iter().map(|_| pair.keyway.reply()).collect();
    let theirs: Vec<Vec<u8>> = stable.iter().map(|_| pair.redis.reply()).collect();
    for ((kind, ours), theirs) in stable.iter().zip(ours).zip(theirs) {
        assert_eq!(ours, theirs, "pipelined DUMP {}", kind.name);
    }
}

#[test]
fn dump_and_restore_of_every_type_match_redis_server() {
    let setup = Setup::start();
    for (resp3, tag) in [(false, "intro-dump2"), (true, "intro-dump3")] {
        let mut pair = setup.pair(resp3);
        dump_and_restore(&mut pair, tag);
    }
}

/// `SORT` and `SORT_RO` without patterns: the same as redis-server. With a
/// `BY` or `GET` pattern: redis-server sorts, a cluster node refuses, and
/// keyway answers as the node.
fn sort(setup: &Setup, pair: &mut Pair, tag: &str) {
    let k = |name: &str| key(tag, name);
    let (nums, words, dst) = (k("nums"), k("words"), k("dst"));
    pair.same(&["RPUSH", &nums, "3", "1", "2", "10"]);
    pair.same(&["RPUSH", &words, "banana", "apple", "cherry"]);
    for (n, weight) in [("1", "30"), ("2", "20"), ("3", "10"), ("10", "0")] {
        pair.same(&["SET", &k(&format!("weight_{n}")), weight]);
        pair.same(&["HSET", &k(&format!("obj_{n}")), "name", &format!("n{n}")]);
    }
    pair.same(&["SADD", &k("set"), "5", "3", "4"]);
    pair.same(&["ZADD", &k("zset"), "1", "c", "2", "a", "3", "b"]);
    let other = "{intro-elsewhere}:dst";
    assert_ne!(key_slot(other.as_bytes()), key_slot(nums.as_bytes()));
    let table: &[&[&str]] = &[
        &["SORT", &nums],
        &["SORT", &nums, "DESC"],
        &["SORT", &nums, "LIMIT", "1", "2"],
        &["SORT", &nums, "LIMIT", "0", "-1"],
        &["SORT", &words, "ALPHA"],
        &["SORT", &words, "ALPHA", "DESC", "LIMIT", "0", "2"],
        &["SORT", &words],
        &["SORT", &nums, "BY", "nosort"],
        &["SORT", &nums, "BY", "nosort", "LIMIT", "1", "2"],
        &["SORT", &k("zset"), "BY", "nosort"],
        &["SORT", &k("zset"), "ALPHA"],
        &["SORT", &k("set")],
        &["SORT", &k("missing")],
        &["SORT", &k("weight_1")],
        &["SORT", &nums, "STORE", &dst],
        &["LRANGE", &dst, "0", "-1"],
        &["SORT", &words, "ALPHA", "LIMIT", "0", "1", "STORE", &dst],
        &["LRANGE", &dst, "0", "-1"],
        &["SORT", &k("missing"), "STORE", &dst],
        &["EXISTS", &dst],
        &["SORT_RO", &nums, "DESC", "LIMIT", "0", "2"],
        &["SORT_RO", &words, "ALPHA"],
        &["SORT_RO", &nums, "STORE", &dst],
        &["SORT", &nums, "LIMIT", "1"],
        &["SORT", &nums, "NOSUCH"],
        &["SORT"],
    ];
    for args in table {
        pair.same(args);
    }

    // Patterns, every key of them in the slot of the sorted key. The node
    // refuses them in cluster mode before reading anything.
    let mut node = setup.node_of(&nums);
    let (weight, obj) = (
        format!("{{{tag}}}:weight_*"),
        format!("{{{tag}}}:obj_*->name"),
    );
    let by = "-ERR BY option of SORT denied in Cluster mode.\r\n";
    let get = "-ERR GET option of SORT denied in Cluster mode.\r\n";
    let patterns: &[(&[&str], &str)] = &[
        (&["SORT", &nums, "BY", &weight], by),
        (&["SORT", &nums, "BY", &weight, "GET", "#", "GET", &obj], by),
        (&["SORT", &nums, "GET", "#"], get),
        (&["SORT", &nums, "GET", &weight], get),
        (&["SORT", &nums, "GET", &obj, "LIMIT", "0", "2"], get),
        (&["SORT", &nums, "BY", &obj, "ALPHA", "STORE", &dst], by),
        (&["SORT_RO", &nums, "BY", &weight], by),
        (&["SORT_RO", &nums, "GET", &obj], get),
        // Patterns of another slot: the same refusal.
        (&["SORT", &nums, "BY", "{intro-elsewhere}:w_*"], by),
        (&["SORT", &nums, "GET", "w_*"], get),
    ];
    for (args, refusal) in patterns {
        let (ours, theirs) = pair.both(args);
        let direct = node.cmd(args);
        assert_eq!(direct, *refusal, "the node's reply to {args:?}");
        assert_eq!(ours, direct, "keyway differs from the node for {args:?}");
        assert!(
            !theirs.starts_with('-'),
            "redis-server sorts {args:?}: {theirs:?}"
        );
    }
    // The refused SORT ... STORE wrote nothing (redis-server's did).
    assert_eq!(pair.keyway.cmd(&["EXISTS", &dst]), ":0\r\n");
    pair.redis.cmd(&["DEL", &dst]);
    // STORE into another slot: CROSSSLOT, as a node refuses it (keyway
    // finds the STORE key as the node does; keyway's text adds a hint),
    // where redis-server stores.
    let args = ["SORT", &nums, "STORE", other];
    let (ours, theirs) = pair.both(&args);
    assert_eq!(
        node.cmd(&args),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot \
                     (use a {hash tag} to put related keys in one slot)\r\n";
    assert_eq!(ours, crossslot);
    assert_eq!(theirs, ":4\r\n");

    // Inside a transaction, the same.
    pair.expect(&["MULTI"], "+OK\r\n");
    pair.expect(&["SORT", &nums, "DESC", "STORE", &dst], "+QUEUED\r\n");
    pair.expect(&["SORT_RO", &dst, "LIMIT", "0", "2"], "+QUEUED\r\n");
    pair.same(&["EXEC"]);
    // ... and inside one, refused when queued, as a node refuses it, so
    // EXEC aborts (redis-server runs it).
    pair.expect(&["MULTI"], "+OK\r\n");
    let (ours, theirs) = pair.both(&["SORT", &nums, "STORE", other]);
    assert_eq!((ours.as_str(), theirs.as_str()), (crossslot, "+QUEUED\r\n"));
    let (ours, theirs) = pair.both(&["EXEC"]);
    assert_eq!(
        ours,
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(theirs, "*1\r\n:4\r\n");
}

#[test]
fn sort_matches_redis_server_and_cluster_nodes() {
    let setup = Setup::start();
    for (resp3, tag) in [(false, "intro-sort2"), (true, "intro-sort3")] {
        let mut pair = setup.pair(resp3);
        sort(&setup, &mut pair, tag);
    }
}
