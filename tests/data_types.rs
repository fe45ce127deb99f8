//! Common commands of every data type through keyway, as a plain Redis
//! client sends them; read results are compared with what the cluster node
//! owning the key answers directly.

use crate::support;

use redis::{Connection, Value};
use std::time::Duration;
use support::{key_slot, poll_until, Cluster, Proxy};

/// Runs `cmd` through keyway and returns the reply (panicking on error).
fn px<T: redis::FromRedisValue>(con: &mut Connection, cmd: &mut redis::Cmd) -> T {
    cmd.query(con).unwrap_or_else(|e| {
        panic!(
            "{:?} through keyway: {e}",
            String::from_utf8_lossy(&cmd.get_packed_command())
        )
    })
}

/// Runs the read-only `cmd` on `key` both through keyway and directly on the
/// master owning `key`; asserts both replies are equal and returns it.
fn same(cluster: &Cluster, con: &mut Connection, key: &str, cmd: &mut redis::Cmd) -> Value {
    let via_proxy: Value = px(con, cmd);
    let node = cluster.node_of_slot(key_slot(key.as_bytes()));
    let direct: Value = cmd
        .query(&mut cluster.conn(&node))
        .unwrap_or_else(|e| panic!("direct on {node}: {e}"));
    assert_eq!(
        via_proxy,
        direct,
        "keyway and {node} disagree on {:?}",
        String::from_utf8_lossy(&cmd.get_packed_command())
    );
    via_proxy
}

fn strings(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:str";
    assert_eq!(px::<String>(c, redis::cmd("SET").arg(k).arg("hello")), "OK");
    assert_eq!(px::<String>(c, redis::cmd("GET").arg(k)), "hello");
    assert_eq!(px::<i64>(c, redis::cmd("APPEND").arg(k).arg(" world")), 11);
    same(cluster, c, k, redis::cmd("STRLEN").arg(k));
    same(cluster, c, k, redis::cmd("GETRANGE").arg(k).arg(0).arg(4));
    assert_eq!(
        px::<i64>(c, redis::cmd("SETRANGE").arg(k).arg(6).arg("WORLD")),
        11
    );
    same(cluster, c, k, redis::cmd("GET").arg(k));
    assert_eq!(
        px::<Option<String>>(c, redis::cmd("GET").arg("dt:missing")),
        None
    );
    assert_eq!(
        px::<Option<String>>(c, redis::cmd("SET").arg(k).arg("v2").arg("GET")),
        Some("hello WORLD".into())
    );
    assert_eq!(
        px::<Option<String>>(c, redis::cmd("SET").arg(k).arg("x").arg("NX")),
        None
    );
    assert_eq!(
        px::<Option<String>>(c, redis::cmd("SET").arg("dt:nx").arg("x").arg("XX")),
        None
    );
    assert_eq!(px::<i64>(c, redis::cmd("SETNX").arg("dt:nx").arg("1")), 1);
    assert_eq!(px::<String>(c, redis::cmd("GETDEL").arg("dt:nx")), "1");
    assert_eq!(px::<i64>(c, redis::cmd("EXISTS").arg("dt:nx")), 0);

    let n = "dt:counter";
    assert_eq!(px::<i64>(c, redis::cmd("INCR").arg(n)), 1);
    assert_eq!(px::<i64>(c, redis::cmd("INCRBY").arg(n).arg(41)), 42);
    assert_eq!(px::<i64>(c, redis::cmd("DECR").arg(n)), 41);
    assert_eq!(px::<i64>(c, redis::cmd("DECRBY").arg(n).arg(-1)), 42);
    assert_eq!(
        px::<String>(c, redis::cmd("INCRBYFLOAT").arg(n).arg("0.5")),
        "42.5"
    );
    // -1 and i64::MIN travel intact (no unsigned storage anywhere).
    assert_eq!(px::<i64>(c, redis::cmd("DECRBY").arg("dt:neg").arg(1)), -1);
    px::<()>(c, redis::cmd("SET").arg("dt:min").arg(i64::MIN));
    assert_eq!(px::<i64>(c, redis::cmd("GET").arg("dt:min")), i64::MIN);
    let err = redis::cmd("INCR").arg(k).query::<i64>(c).unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    same(cluster, c, n, redis::cmd("TYPE").arg(n));
    assert_eq!(px::<i64>(c, redis::cmd("DEL").arg(n)), 1);
}

fn hashes(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:hash";
    assert_eq!(
        px::<i64>(
            c,
            redis::cmd("HSET")
                .arg(k)
                .arg("a")
                .arg(1)
                .arg("b")
                .arg(2)
                .arg("c")
                .arg(3)
        ),
        3
    );
    assert_eq!(px::<String>(c, redis::cmd("HGET").arg(k).arg("b")), "2");
    assert_eq!(
        px::<Vec<Option<String>>>(c, redis::cmd("HMGET").arg(k).arg("a").arg("zz").arg("c")),
        vec![Some("1".into()), None, Some("3".into())]
    );
    assert_eq!(
        px::<i64>(c, redis::cmd("HINCRBY").arg(k).arg("a").arg(10)),
        11
    );
    assert_eq!(px::<i64>(c, redis::cmd("HSETNX").arg(k).arg("a").arg(0)), 0);
    assert_eq!(
        px::<i64>(c, redis::cmd("HDEL").arg(k).arg("c").arg("nope")),
        1
    );
    assert_eq!(px::<i64>(c, redis::cmd("HEXISTS").arg(k).arg("c")), 0);
    same(cluster, c, k, redis::cmd("HLEN").arg(k));
    same(cluster, c, k, redis::cmd("HGETALL").arg(k));
    same(cluster, c, k, redis::cmd("HKEYS").arg(k));
    same(cluster, c, k, redis::cmd("HVALS").arg(k));
    same(cluster, c, k, redis::cmd("HSTRLEN").arg(k).arg("a"));
    same(cluster, c, k, redis::cmd("HSCAN").arg(k).arg(0));
    let all: std::collections::HashMap<String, i64> = px(c, redis::cmd("HGETALL").arg(k));
    assert_eq!(
        all,
        [("a".to_string(), 11), ("b".to_string(), 2)]
            .into_iter()
            .collect()
    );
}

fn lists(cluster: &Cluster, c: &mut Connection) {
    let k = "{dt:list}:a";
    assert_eq!(
        px::<i64>(c, redis::cmd("RPUSH").arg(k).arg("b").arg("c").arg("d")),
        3
    );
    assert_eq!(px::<i64>(c, redis::cmd("LPUSH").arg(k).arg("a")), 4);
    assert_eq!(
        px::<Vec<String>>(c, redis::cmd("LRANGE").arg(k).arg(0).arg(-1)),
        ["a", "b", "c", "d"]
    );
    assert_eq!(px::<String>(c, redis::cmd("LINDEX").arg(k).arg(-1)), "d");
    assert_eq!(
        px::<String>(c, redis::cmd("LSET").arg(k).arg(1).arg("B")),
        "OK"
    );
    assert_eq!(
        px::<i64>(
            c,
            redis::cmd("LINSERT").arg(k).arg("BEFORE").arg("c").arg("x")
        ),
        5
    );
    assert_eq!(px::<i64>(c, redis::cmd("LPOS").arg(k).arg("x")), 2);
    assert_eq!(px::<i64>(c, redis::cmd("LREM").arg(k).arg(0).arg("x")), 1);
    same(cluster, c, k, redis::cmd("LLEN").arg(k));
    same(cluster, c, k, redis::cmd("LRANGE").arg(k).arg(0).arg(-1));
    assert_eq!(px::<String>(c, redis::cmd("LPOP").arg(k)), "a");
    assert_eq!(
        px::<Vec<String>>(c, redis::cmd("RPOP").arg(k).arg(2)),
        ["d", "c"]
    );
    let k2 = "{dt:list}:b";
    assert_eq!(
        px::<String>(
            c,
            redis::cmd("LMOVE").arg(k).arg(k2).arg("LEFT").arg("RIGHT")
        ),
        "B"
    );
    assert_eq!(px::<i64>(c, redis::cmd("LLEN").arg(k)), 0);
    assert_eq!(px::<i64>(c, redis::cmd("EXISTS").arg(k)), 0);
    assert_eq!(
        px::<Vec<String>>(c, redis::cmd("LRANGE").arg(k2).arg(0).arg(-1)),
        ["B"]
    );
    assert_eq!(
        px::<i64>(c, redis::cmd("RPUSH").arg(k2).arg(1).arg(2).arg(3)),
        4
    );
    assert_eq!(
        px::<String>(c, redis::cmd("LTRIM").arg(k2).arg(1).arg(2)),
        "OK"
    );
    same(cluster, c, k2, redis::cmd("LRANGE").arg(k2).arg(0).arg(-1));
}

fn sets(cluster: &Cluster, c: &mut Connection) {
    let (a, b) = ("{dt:set}:a", "{dt:set}:b");
    assert_eq!(
        px::<i64>(c, redis::cmd("SADD").arg(a).arg(1).arg(2).arg(3).arg(3)),
        3
    );
    assert_eq!(px::<i64>(c, redis::cmd("SADD").arg(b).arg(3).arg(4)), 2);
    assert_eq!(px::<i64>(c, redis::cmd("SISMEMBER").arg(a).arg(2)), 1);
    assert_eq!(
        px::<Vec<i64>>(c, redis::cmd("SMISMEMBER").arg(a).arg(2).arg(9)),
        [1, 0]
    );
    let mut members: Vec<i64> = px(c, redis::cmd("SMEMBERS").arg(a));
    members.sort();
    assert_eq!(members, [1, 2, 3]);
    assert_eq!(px::<Vec<i64>>(c, redis::cmd("SINTER").arg(a).arg(b)), [3]);
    assert_eq!(
        px::<i64>(c, redis::cmd("SUNIONSTORE").arg("{dt:set}:u").arg(a).arg(b)),
        4
    );
    assert_eq!(px::<i64>(c, redis::cmd("SREM").arg(a).arg(1)), 1);
    same(cluster, c, a, redis::cmd("SCARD").arg(a));
    same(cluster, c, b, redis::cmd("SDIFF").arg(b).arg(a));
    same(cluster, c, a, redis::cmd("SINTERCARD").arg(2).arg(a).arg(b));
    let popped: String = px(c, redis::cmd("SPOP").arg(b));
    assert!(popped == "3" || popped == "4");
    assert_eq!(px::<i64>(c, redis::cmd("SCARD").arg("{dt:set}:u")), 4);
}

fn sorted_sets(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:zset";
    assert_eq!(
        px::<i64>(
            c,
            redis::cmd("ZADD")
                .arg(k)
                .arg(1)
                .arg("a")
                .arg(2)
                .arg("b")
                .arg(3)
                .arg("c")
        ),
        3
    );
    assert_eq!(
        px::<String>(c, redis::cmd("ZINCRBY").arg(k).arg(10).arg("a")),
        "11"
    );
    assert_eq!(
        px::<Vec<String>>(c, redis::cmd("ZRANGE").arg(k).arg(0).arg(-1)),
        ["b", "c", "a"]
    );
    assert_eq!(
        px::<Vec<(String, f64)>>(
            c,
            redis::cmd("ZRANGE").arg(k).arg(0).arg(0).arg("WITHSCORES")
        ),
        [("b".to_string(), 2.0)]
    );
    assert_eq!(px::<f64>(c, redis::cmd("ZSCORE").arg(k).arg("c")), 3.0);
    assert_eq!(px::<i64>(c, redis::cmd("ZRANK").arg(k).arg("a")), 2);
    same(
        cluster,
        c,
        k,
        redis::cmd("ZREVRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES"),
    );
    same(
        cluster,
        c,
        k,
        redis::cmd("ZRANGEBYSCORE").arg(k).arg("(2").arg("+inf"),
    );
    same(cluster, c, k, redis::cmd("ZCOUNT").arg(k).arg(0).arg(5));
    same(cluster, c, k, redis::cmd("ZCARD").arg(k));
    same(
        cluster,
        c,
        k,
        redis::cmd("ZMSCORE").arg(k).arg("a").arg("zz"),
    );
    assert_eq!(px::<i64>(c, redis::cmd("ZREM").arg(k).arg("c")), 1);
    assert_eq!(
        px::<Vec<String>>(c, redis::cmd("ZPOPMIN").arg(k)),
        ["b", "2"]
    );
    assert_eq!(px::<i64>(c, redis::cmd("ZCARD").arg(k)), 1);
}

fn streams(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:stream";
    assert_eq!(
        px::<String>(c, redis::cmd("XADD").arg(k).arg("1-1").arg("f").arg("v1")),
        "1-1"
    );
    assert_eq!(
        px::<String>(
            c,
            redis::cmd("XADD")
                .arg(k)
                .arg("1-2")
                .arg("f")
                .arg("v2")
                .arg("g")
                .arg("w")
        ),
        "1-2"
    );
    let auto: String = px(c, redis::cmd("XADD").arg(k).arg("*").arg("f").arg("v3"));
    assert!(auto.contains('-'), "{auto}");
    assert_eq!(px::<i64>(c, redis::cmd("XLEN").arg(k)), 3);
    same(cluster, c, k, redis::cmd("XRANGE").arg(k).arg("-").arg("+"));
    same(
        cluster,
        c,
        k,
        redis::cmd("XREVRANGE")
            .arg(k)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1),
    );
    let read: Value = same(
        cluster,
        c,
        k,
        redis::cmd("XREAD")
            .arg("COUNT")
            .arg(2)
            .arg("STREAMS")
            .arg(k)
            .arg("0"),
    );
    let text = format!("{read:?}");
    assert!(
        text.contains("v1") && text.contains("v2") && !text.contains("v3"),
        "{text}"
    );
    assert_eq!(
        px::<String>(
            c,
            redis::cmd("XGROUP").arg("CREATE").arg(k).arg("g1").arg("0")
        ),
        "OK"
    );
    let group: Value = px(
        c,
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g1")
            .arg("c1")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(k)
            .arg(">"),
    );
    assert!(format!("{group:?}").contains("v1"));
    assert_eq!(
        px::<i64>(c, redis::cmd("XACK").arg(k).arg("g1").arg("1-1")),
        1
    );
    assert_eq!(px::<i64>(c, redis::cmd("XDEL").arg(k).arg("1-2")), 1);
    same(cluster, c, k, redis::cmd("XLEN").arg(k));
}

fn hyperloglog(cluster: &Cluster, c: &mut Connection) {
    let (a, b) = ("{dt:hll}:a", "{dt:hll}:b");
    assert_eq!(
        px::<i64>(c, redis::cmd("PFADD").arg(a).arg("x").arg("y").arg("z")),
        1
    );
    assert_eq!(
        px::<i64>(c, redis::cmd("PFADD").arg(b).arg("z").arg("w")),
        1
    );
    assert_eq!(px::<i64>(c, redis::cmd("PFCOUNT").arg(a)), 3);
    assert_eq!(
        px::<String>(c, redis::cmd("PFMERGE").arg("{dt:hll}:m").arg(a).arg(b)),
        "OK"
    );
    assert_eq!(px::<i64>(c, redis::cmd("PFCOUNT").arg("{dt:hll}:m")), 4);
    same(cluster, c, a, redis::cmd("PFCOUNT").arg(a).arg(b));
}

fn geo(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:geo";
    let added: i64 = px(
        c,
        redis::cmd("GEOADD")
            .arg(k)
            .arg(13.361389)
            .arg(38.115556)
            .arg("Palermo")
            .arg(15.087269)
            .arg(37.502669)
            .arg("Catania"),
    );
    assert_eq!(added, 2);
    let dist: f64 = px(
        c,
        redis::cmd("GEODIST")
            .arg(k)
            .arg("Palermo")
            .arg("Catania")
            .arg("km"),
    );
    assert!((dist - 166.27).abs() < 0.1, "{dist}");
    same(
        cluster,
        c,
        k,
        redis::cmd("GEOPOS").arg(k).arg("Palermo").arg("Nowhere"),
    );
    same(cluster, c, k, redis::cmd("GEOHASH").arg(k).arg("Catania"));
    let near: Vec<String> = px(
        c,
        redis::cmd("GEOSEARCH")
            .arg(k)
            .arg("FROMLONLAT")
            .arg(15)
            .arg(37)
            .arg("BYRADIUS")
            .arg(100)
            .arg("km")
            .arg("ASC"),
    );
    assert_eq!(near, ["Catania"]);
}

fn bitmaps(cluster: &Cluster, c: &mut Connection) {
    let k = "{dt:bits}:a";
    assert_eq!(px::<i64>(c, redis::cmd("SETBIT").arg(k).arg(7).arg(1)), 0);
    assert_eq!(px::<i64>(c, redis::cmd("SETBIT").arg(k).arg(100).arg(1)), 0);
    assert_eq!(px::<i64>(c, redis::cmd("GETBIT").arg(k).arg(7)), 1);
    assert_eq!(px::<i64>(c, redis::cmd("BITCOUNT").arg(k)), 2);
    assert_eq!(px::<i64>(c, redis::cmd("BITPOS").arg(k).arg(1)), 7);
    px::<()>(c, redis::cmd("SET").arg("{dt:bits}:b").arg(&[0xffu8][..]));
    assert_eq!(
        px::<i64>(
            c,
            redis::cmd("BITOP")
                .arg("AND")
                .arg("{dt:bits}:and")
                .arg(k)
                .arg("{dt:bits}:b")
        ),
        13
    );
    assert_eq!(px::<i64>(c, redis::cmd("BITCOUNT").arg("{dt:bits}:and")), 1);
    let f: Vec<i64> = px(
        c,
        redis::cmd("BITFIELD")
            .arg(k)
            .arg("SET")
            .arg("u8")
            .arg(8)
            .arg(200)
            .arg("GET")
            .arg("u8")
            .arg(8),
    );
    assert_eq!(f, [0, 200]);
    same(cluster, c, k, redis::cmd("BITCOUNT").arg(k).arg(0).arg(-1));
    same(cluster, c, k, redis::cmd("GET").arg(k));
}

fn expiry(cluster: &Cluster, c: &mut Connection) {
    let k = "dt:ttl";
    px::<()>(c, redis::cmd("SET").arg(k).arg("v"));
    assert_eq!(px::<i64>(c, redis::cmd("TTL").arg(k)), -1);
    assert_eq!(px::<i64>(c, redis::cmd("TTL").arg("dt:nokey")), -2);
    assert_eq!(px::<i64>(c, redis::cmd("EXPIRE").arg(k).arg(100)), 1);
    let ttl: i64 = px(c, redis::cmd("TTL").arg(k));
    assert!((1..=100).contains(&ttl), "{ttl}");
    let pttl: i64 = px(c, redis::cmd("PTTL").arg(k));
    assert!((1..=100_000).contains(&pttl), "{pttl}");
    let direct: i64 = redis::cmd("TTL")
        .arg(k)
        .query(&mut cluster.conn(&cluster.node_of_slot(key_slot(k.as_bytes()))))
        .unwrap();
    assert!((1..=100).contains(&direct), "{direct}");
    assert_eq!(px::<i64>(c, redis::cmd("PERSIST").arg(k)), 1);
    assert_eq!(px::<i64>(c, redis::cmd("TTL").arg(k)), -1);
    assert_eq!(
        px::<i64>(c, redis::cmd("EXPIREAT").arg(k).arg(4_000_000_000u64)),
        1
    );
    assert!(px::<i64>(c, redis::cmd("TTL").arg(k)) > 100);
    // A key that expires goes away (bounded poll, not a fixed sleep).
    px::<()>(
        c,
        redis::cmd("SET").arg("dt:short").arg("v").arg("PX").arg(50),
    );
    let gone = poll_until(Duration::from_secs(5), || {
        px::<Option<String>>(c, redis::cmd("GET").arg("dt:short"))
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "dt:short did not expire");
    assert_eq!(
        px::<i64>(c, redis::cmd("PEXPIRE").arg("dt:nokey").arg(10)),
        0
    );
    assert_eq!(
        px::<Option<String>>(c, redis::cmd("GETEX").arg(k).arg("PERSIST")),
        Some("v".into())
    );
    assert_eq!(px::<i64>(c, redis::cmd("TTL").arg(k)), -1);
}

#[test]
fn every_data_type_through_keyway() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut c = proxy.conn();
    strings(&cluster, &mut c);
    hashes(&cluster, &mut c);
    lists(&cluster, &mut c);
    sets(&cluster, &mut c);
    sorted_sets(&cluster, &mut c);
    streams(&cluster, &mut c);
    hyperloglog(&cluster, &mut c);
    geo(&cluster, &mut c);
    bitmaps(&cluster, &mut c);
    expiry(&cluster, &mut c);
    // The connection is still in sync after all of the above.
    assert_eq!(px::<String>(&mut c, &mut redis::cmd("PING")), "PONG");
}
