//! `KEYS` through keyway: exactly the union of what the masters hold, each
//! key once (in no particular order), in RESP2 and RESP3, with a pattern,
//! pipelined between other commands, and over an empty keyspace.

use crate::support;

use std::collections::BTreeSet;

use support::{Cluster, Proxy, RawClient};

/// The keys of a raw `*N $len key ...` reply, in order.
fn parse_keys(reply: &[u8]) -> Vec<Vec<u8>> {
    let line_end =
        |from: usize| from + reply[from..].windows(2).position(|w| w == b"\r\n").unwrap();
    assert_eq!(reply[0], b'*', "{:?}", String::from_utf8_lossy(reply));
    let end = line_end(0);
    let count: usize = std::str::from_utf8(&reply[1..end])
        .unwrap()
        .parse()
        .unwrap();
    let mut at = end + 2;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(reply[at], b'$');
        let end = line_end(at);
        let len: usize = std::str::from_utf8(&reply[at + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        keys.push(reply[end + 2..end + 2 + len].to_vec());
        at = end + 2 + len + 2;
    }
    assert_eq!(at, reply.len(), "nothing after the last key");
    keys
}

/// `keys` as a set, after checking that none comes twice.
fn distinct(keys: Vec<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    let n = keys.len();
    let set: BTreeSet<Vec<u8>> = keys.into_iter().collect();
    assert_eq!(set.len(), n, "a key came twice");
    set
}

/// Fails, with a short account, unless `got` and `want` are the same keys.
fn assert_same(got: &BTreeSet<Vec<u8>>, want: &BTreeSet<Vec<u8>>, what: &str) {
    let show = |keys: Vec<&Vec<u8>>| -> Vec<String> {
        let few = keys.iter().take(5);
        few.map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    assert!(
        got == want,
        "{what}: {} keys, {} expected; missing {:?}, unexpected {:?}",
        got.len(),
        want.len(),
        show(want.difference(got).collect()),
        show(got.difference(want).collect()),
    );
}

/// `KEYS pattern` asked of every master directly, joined.
fn on_masters(cluster: &Cluster, pattern: &str) -> BTreeSet<Vec<u8>> {
    let mut all = BTreeSet::new();
    for master in cluster.masters() {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut cluster.conn(&master))
            .unwrap();
        assert!(!keys.is_empty() || pattern != "*", "{master} holds keys");
        all.extend(keys);
    }
    all
}

/// `KEYS pattern` through `raw`, between two `PING`s in one write.
fn pipelined(raw: &mut RawClient, pattern: &str) -> Vec<Vec<u8>> {
    let mut out = support::resp::encode(&[b"PING"]);
    out.extend(support::resp::encode(&[b"KEYS", pattern.as_bytes()]));
    out.extend(support::resp::encode(&[b"PING", b"after"]));
    raw.send(&out);
    assert_eq!(raw.reply(), b"+PONG\r\n");
    let keys = parse_keys(&raw.reply());
    assert_eq!(raw.reply(), b"$5\r\nafter\r\n", "in order after KEYS");
    keys
}

#[test]
fn keys_is_exactly_the_union_of_the_masters_keys() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let mut raw3 = proxy.raw_client();
    assert!(raw3.cmd(&["HELLO", "3"]).starts_with('%'));

    // Nothing anywhere: an empty array, in both protocols.
    let none: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(none.is_empty());
    assert!(pipelined(&mut raw3, "*").is_empty());

    // 20,000 keys over every slot, some with bytes RESP gives meaning to.
    let mut written = BTreeSet::new();
    for batch in 0..20 {
        let mut pipe = redis::pipe();
        for i in batch * 1000..(batch + 1) * 1000 {
            let key = match i % 100 {
                0 => format!("k:{i}:\r\n*1\r\n $x").into_bytes(),
                _ => format!("k:{i}").into_bytes(),
            };
            pipe.cmd("SET").arg(&key).arg(i).ignore();
            written.insert(key);
        }
        let () = pipe.query(&mut con).unwrap();
    }
    assert_same(&on_masters(&cluster, "*"), &written, "the masters");

    for pattern in ["*", "k:1*", "k:*:\r\n*", "nothing:*"] {
        let want = on_masters(&cluster, pattern);
        let resp2: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap();
        assert_same(&distinct(resp2), &want, &format!("RESP2, {pattern:?}"));
        let resp3 = pipelined(&mut raw3, pattern);
        assert_same(&distinct(resp3), &want, &format!("RESP3, {pattern:?}"));
    }
    assert_eq!(on_masters(&cluster, "k:1*").len(), 11_111);
}
