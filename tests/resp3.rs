//! RESP3 end to end: a client that says `HELLO 3` gets RESP3 replies, byte
//! for byte what a redis-server node sends in RESP3, while a RESP2 client
//! beside it keeps getting RESP2; replies keyway builds itself come in the
//! client's protocol; real clients (the `redis` crate, `redis-cli -3`) work
//! in both protocols and agree.

use crate::support;

use std::process::Command;

use support::util::run_bounded;
use support::{key_for_slot, key_slot, Cluster, Proxy, RawClient, OP_TIMEOUT};

/// Sends `args` to both `a` and `b` and returns both replies as text.
fn both(a: &mut RawClient, b: &mut RawClient, args: &[&str]) -> (String, String) {
    (a.cmd(args), b.cmd(args))
}

/// A `HELLO` reply with the fields that differ between keyway and a node
/// masked: the client id, and the mode (a node says `cluster`; keyway says
/// `standalone`, so clients do not switch to cluster mode).
fn masked_hello(reply: &str) -> String {
    let tokens: Vec<&str> = reply.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i].to_string());
        match tokens[i] {
            "id" => {
                out.push("<id>".into());
                i += 2;
            }
            "mode" => {
                out.push("<mode>".into());
                i += 3;
            }
            _ => i += 1,
        }
    }
    out.join("|")
}

#[test]
fn hello_and_connection_commands_behave_like_redis_server() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut kw = proxy.raw_client();
    let mut node = RawClient::connect(&cluster.masters()[0], OP_TIMEOUT);

    // Refused handshakes: exactly redis-server's errors, and nothing changes.
    for args in [
        &["HELLO", "4"][..],
        &["HELLO", "1"],
        &["HELLO", "abc"],
        &["HELLO", "+3"],
        &["HELLO", "99999999999999999999"],
        &["HELLO", "3", "FOO"],
        &["HELLO", "3", "AUTH", "default"],
        &["HELLO", "3", "AUTH", "bob", "secret"],
        &["HELLO", "3", "SETNAME", "has space"],
        &["AUTH", "bob", "secret"],
        &["AUTH", "default", "anything"],
        &["CLIENT", "CACHING", "yes"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKING", "OFF"],
    ] {
        let (ours, theirs) = both(&mut kw, &mut node, args);
        assert_eq!(ours, theirs, "{args:?}");
    }
    assert_eq!(kw.cmd(&["GET", "{hello}missing"]), "$-1\r\n", "still RESP2");
    assert_eq!(kw.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n", "no name was set");

    // The handshake itself: the same shape and fields as the node's, in
    // each protocol, with the backends' version.
    for args in [
        &["HELLO"][..],
        &["HELLO", "3"],
        &["HELLO"],
        &["HELLO", "2"],
        &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app-1"],
    ] {
        let (ours, theirs) = both(&mut kw, &mut node, args);
        assert_eq!(masked_hello(&ours), masked_hello(&theirs), "{args:?}");
        assert!(
            ours.contains("$4\r\nmode\r\n$10\r\nstandalone\r\n"),
            "{ours:?}"
        );
    }
    let hello = kw.cmd(&["HELLO"]);
    assert!(hello.starts_with("%7\r\n"), "RESP3 map: {hello:?}");
    let id = kw.cmd(&["CLIENT", "ID"]);
    assert!(
        hello.contains(&format!("$2\r\nid\r\n{id}")),
        "HELLO id is CLIENT ID ({id:?}): {hello:?}"
    );

    // Now in RESP3: keyway's own replies use RESP3 types.
    assert_eq!(kw.cmd(&["CLIENT", "GETNAME"]), "$5\r\napp-1\r\n");
    assert_eq!(kw.cmd(&["GET", "{hello}missing"]), "_\r\n");
    let info = kw.cmd(&["CLIENT", "INFO"]);
    assert!(
        info.starts_with('=') && info.contains("txt:id=") && info.contains(" resp=3 "),
        "CLIENT INFO as a verbatim string: {info:?}"
    );
    let cluster_info = kw.cmd(&["CLUSTER", "INFO"]);
    assert!(
        cluster_info.starts_with('=') && cluster_info.contains("txt:cluster_state:ok"),
        "{cluster_info:?}"
    );
    let (ours, theirs) = both(&mut kw, &mut node, &["CLIENT", "TRACKINGINFO"]);
    assert_eq!(ours, theirs, "CLIENT TRACKINGINFO in RESP3");
    assert!(ours.starts_with("%3\r\n"), "{ours:?}");
    let tracking = kw.cmd(&["CLIENT", "TRACKING", "on", "bcast", "prefix", "user:"]);
    assert!(
        tracking
            .starts_with("-ERR CLIENT TRACKING ON BCAST PREFIX USER: is not supported by keyway"),
        "refused, naming the options: {tracking:?}"
    );
    let (ours, theirs) = both(&mut kw, &mut node, &["CLIENT", "TRACKINGINFO"]);
    assert_eq!(ours, theirs, "tracking stayed off");

    // RESET goes back to RESP2, as redis-server does.
    let (ours, theirs) = both(&mut kw, &mut node, &["RESET"]);
    assert_eq!(
        (ours.as_str(), theirs.as_str()),
        ("+RESET\r\n", "+RESET\r\n")
    );
    assert_eq!(kw.cmd(&["GET", "{hello}missing"]), "$-1\r\n");
    let (ours, theirs) = both(&mut kw, &mut node, &["CLIENT", "TRACKINGINFO"]);
    assert_eq!(ours, theirs, "CLIENT TRACKINGINFO in RESP2");
    assert!(ours.starts_with("*6\r\n"), "{ours:?}");
}

#[test]
fn backend_replies_arrive_in_each_clients_protocol_byte_for_byte() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut setup = proxy.conn();
    let k = |name: &str| format!("{{fwd}}{name}");
    redis::pipe()
        .cmd("HSET")
        .arg(k("h"))
        .arg("f1")
        .arg("v1")
        .arg("f2")
        .arg("v2")
        .cmd("SADD")
        .arg(k("s"))
        .arg("a")
        .arg("b")
        .arg("c")
        .cmd("ZADD")
        .arg(k("z"))
        .arg(1.5)
        .arg("m1")
        .arg(2)
        .arg("m2")
        .arg(-0.25)
        .arg("m3")
        .cmd("RPUSH")
        .arg(k("l"))
        .arg("x")
        .arg("y")
        .arg("x")
        .cmd("XADD")
        .arg(k("x"))
        .arg("1-1")
        .arg("f")
        .arg("v")
        .cmd("XGROUP")
        .arg("CREATE")
        .arg(k("x"))
        .arg("g")
        .arg("0")
        .cmd("SET")
        .arg(k("str"))
        .arg("value")
        .cmd("GEOADD")
        .arg(k("geo"))
        .arg(13.361389)
        .arg(38.115556)
        .arg("Palermo")
        .query::<()>(&mut setup)
        .expect("setup");
    let owner = cluster.node_of_slot(key_slot(k("h").as_bytes()));

    let commands: Vec<Vec<String>> = [
        "HGETALL {fwd}h",
        "HGETALL {fwd}missing",
        "HMGET {fwd}h f1 nope",
        "SMEMBERS {fwd}s",
        "SMISMEMBER {fwd}s a z",
        "ZSCORE {fwd}z m1",
        "ZSCORE {fwd}z nope",
        "ZRANGE {fwd}z 0 -1 WITHSCORES",
        "ZMSCORE {fwd}z m3 nope",
        "ZINCRBY {fwd}z 0 m2",
        "GET {fwd}missing",
        "GET {fwd}str",
        "LRANGE {fwd}l 0 -1",
        "LPOS {fwd}l x COUNT 0",
        "TYPE {fwd}z",
        "TTL {fwd}str",
        "EXISTS {fwd}str",
        "XRANGE {fwd}x - +",
        "XINFO STREAM {fwd}x",
        "XINFO GROUPS {fwd}x",
        "GEOPOS {fwd}geo Palermo nowhere",
        "OBJECT ENCODING {fwd}h",
        "HGET {fwd}s f",
        "COMMAND INFO get",
        "COMMAND DOCS get",
    ]
    .iter()
    .map(|c| c.split(' ').map(str::to_string).collect())
    .collect();

    // RESP2 and RESP3 clients of keyway side by side (several of each, so
    // both protocols' backend connections carry traffic at once), each
    // compared with a client of the owning node speaking the same protocol.
    let mut clients: Vec<(RawClient, RawClient, &str)> = Vec::new();
    for i in 0..4 {
        let proto = if i % 2 == 0 { "2" } else { "3" };
        let mut ours = proxy.raw_client();
        let mut theirs = RawClient::connect(&owner, OP_TIMEOUT);
        ours.cmd(&["HELLO", proto]);
        theirs.cmd(&["HELLO", proto]);
        clients.push((ours, theirs, proto));
    }
    let mut differs = 0;
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut by_proto = Vec::new();
        for (ours, theirs, proto) in clients.iter_mut() {
            let (a, b) = both(ours, theirs, &args);
            assert_eq!(a, b, "{args:?} in RESP{proto}");
            by_proto.push(a);
        }
        if by_proto[0] != by_proto[1] {
            differs += 1;
        }
    }
    // Sanity: the two protocols really differ for RESP3 types.
    assert!(
        differs >= 12,
        "only {differs} replies differ between RESP2 and RESP3"
    );
    let (resp3, _, _) = &mut clients[1];
    assert!(resp3.cmd(&["HGETALL", "{fwd}h"]).starts_with("%2\r\n"));
    assert!(resp3
        .cmd(&["ZSCORE", "{fwd}z", "m1"])
        .starts_with(",1.5\r\n"));
    let (resp2, _, _) = &mut clients[0];
    assert!(resp2.cmd(&["HGETALL", "{fwd}h"]).starts_with("*4\r\n"));
}

#[test]
fn switching_protocol_inside_a_pipeline_keeps_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut raw = proxy.raw_client();
    let enc = |args: &[&str]| {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        support::resp::encode(&args)
    };
    for i in 1..=300 {
        // Each write goes on one protocol's backend connection and the read
        // after it on the other's: the read must still see the write.
        let mut pipeline = Vec::new();
        for args in [
            &["INCR", "{order}n"][..],
            &["HELLO", "3"],
            &["GET", "{order}n"],
            &["SET", "{order}s", &i.to_string()],
            &["HELLO", "2"],
            &["GET", "{order}n"],
            &["GET", "{order}s"],
        ] {
            pipeline.extend(enc(args));
        }
        raw.send(&pipeline);
        let n = i.to_string();
        let bulk = format!("${}\r\n{n}\r\n", n.len());
        assert_eq!(raw.reply_text(), format!(":{i}\r\n"));
        assert!(raw.reply_text().starts_with("%7\r\n"));
        assert_eq!(raw.reply_text(), bulk, "GET after INCR, iteration {i}");
        assert_eq!(raw.reply_text(), "+OK\r\n");
        assert!(raw.reply_text().starts_with("*14\r\n"));
        assert_eq!(raw.reply_text(), bulk, "GET after INCR, iteration {i}");
        assert_eq!(raw.reply_text(), bulk, "GET after SET, iteration {i}");
    }
}

/// `CLIENT LIST` lines of keyway's connections to `node` that speak RESP3.
fn resp3_connections(cluster: &Cluster, node: &str) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut cluster.conn(node))
        .expect("CLIENT LIST");
    list.lines().filter(|l| l.contains(" resp=3")).count()
}

#[test]
fn resp3_backend_connections_open_on_first_use_and_are_shared() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    // RESP2 traffic to every master opens no RESP3 connection.
    let mut conn = proxy.conn();
    for slot in (0..16384).step_by(1000) {
        let _: () = redis::cmd("SET")
            .arg(key_for_slot(slot))
            .arg(slot)
            .query(&mut conn)
            .expect("SET");
    }
    for master in cluster.masters() {
        assert_eq!(resp3_connections(&cluster, &master), 0, "{master}");
    }
    // Many RESP3 clients, all over the key space, share a few connections:
    // at most one per worker (keyway runs 2) per node.
    let mut clients: Vec<RawClient> = (0..40).map(|_| proxy.raw_client()).collect();
    for client in clients.iter_mut() {
        assert!(client.cmd(&["HELLO", "3"]).starts_with("%7"));
        for slot in (0..16384).step_by(1000) {
            let want = format!("${}\r\n{slot}\r\n", slot.to_string().len());
            assert_eq!(client.cmd(&["GET", &key_for_slot(slot)]), want);
        }
        assert_eq!(client.cmd(&["GET", "{resp3}missing"]), "_\r\n");
    }
    for master in cluster.masters() {
        let n = resp3_connections(&cluster, &master);
        assert!((1..=2).contains(&n), "{master}: {n} RESP3 connections");
    }
}

/// A reply of the `redis` crate reduced to what RESP2 can express, so the
/// same command's results in both protocols compare equal: maps flatten to
/// key/value lists, sets to lists, doubles and verbatim strings to their
/// text, booleans to 1/0.
fn norm(v: &redis::Value) -> String {
    use redis::Value;
    match v {
        Value::Nil => "nil".into(),
        Value::Int(i) => i.to_string(),
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => format!("{s:?}"),
        Value::Okay => "\"OK\"".into(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(norm).collect::<Vec<_>>().join(","))
        }
        Value::Set(items) => format!("[{}]", items.iter().map(norm).collect::<Vec<_>>().join(",")),
        Value::Map(pairs) => format!(
            "[{}]",
            pairs
                .iter()
                .map(|(k, v)| format!("{},{}", norm(k), norm(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Double(d) => format!("{:?}", d.to_string()),
        Value::Boolean(b) => i64::from(*b).to_string(),
        Value::VerbatimString { text, .. } => format!("{text:?}"),
        Value::Attribute { data, .. } => norm(data),
        other => format!("{other:?}"),
    }
}

fn norm_result(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Ok(v) => norm(&v),
        Err(e) => format!("error {:?} {:?}", e.code(), e.detail()),
    }
}

/// The same scenario list run by one client: strings, hashes, lists, sets,
/// sorted sets, streams, a pipeline, multi-key commands and errors. Keys
/// are `{scenario}<prefix><name>`: one slot, so one node, for both runs
/// (a node orders a set's members the same way for the same inserts).
/// Replies come back normalised, with `prefix` masked.
fn scenario(con: &mut redis::Connection, prefix: &str) -> Vec<(String, String)> {
    let k = |name: &str| format!("{{scenario}}{prefix}{name}");
    let other_slot = format!("elsewhere-{prefix}");
    let commands: Vec<Vec<String>> = [
        "SET s hello",
        "APPEND s ' world'",
        "GET s",
        "GET missing",
        "INCRBYFLOAT f 1.5",
        "GETRANGE s 0 4",
        "HSET h a 1 b 2",
        "HGETALL h",
        "HMGET h a zz",
        "HINCRBYFLOAT h a 0.5",
        "RPUSH l x y z",
        "LRANGE l 0 -1",
        "LPOP l 2",
        "SADD set a b c",
        "SMEMBERS set",
        "SISMEMBER set b",
        "SINTER set set",
        "ZADD z 1.5 a 2 b",
        "ZSCORE z a",
        "ZINCRBY z 0.25 b",
        "ZRANK z b",
        "XADD x 1-1 f v",
        "XADD x 2-1 g w",
        "XLEN x",
        "XRANGE x - +",
        "XGROUP CREATE x grp 0",
        "MSET m1 1 m2 2",
        "MGET m1 m2 missing",
        "MGET m1 OTHER",
        "EXISTS m1 m2 m1",
        "HGET s f",
        "NOSUCHCOMMAND x",
        "GET",
    ]
    .iter()
    .map(|line| {
        // Words naming keys get the prefix; `OTHER` is a key in another slot.
        let words: Vec<&str> = line.split(' ').collect();
        let keyed = |i: usize| match words[0] {
            "MSET" => i % 2 == 1,
            "MGET" | "EXISTS" | "SINTER" => i >= 1,
            "XGROUP" => i == 2,
            "NOSUCHCOMMAND" => false,
            _ => i == 1,
        };
        words
            .iter()
            .enumerate()
            .map(|(i, w)| match *w {
                "OTHER" => other_slot.clone(),
                "' world'" => " world".to_string(),
                w if keyed(i) => k(w),
                w => w.to_string(),
            })
            .collect()
    })
    .collect();
    let mut out = Vec::new();
    for args in &commands {
        let mut cmd = redis::cmd(&args[0]);
        for a in &args[1..] {
            cmd.arg(a);
        }
        let reply = norm_result(cmd.query(con)).replace(prefix, "P");
        out.push((args.join(" ").replace(prefix, "P"), reply));
    }
    // Two replies whose shape Redis itself changes with the protocol (pairs
    // instead of a flat list; a map instead of a list of pairs): compared
    // as the values a client reads from them.
    let scores: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(k("z"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(con)
        .expect("ZRANGE WITHSCORES");
    out.push(("ZRANGE WITHSCORES".into(), format!("{scores:?}")));
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "grp", "c", "COUNT", "1", "STREAMS"][..])
        .arg(k("x"))
        .arg(">")
        .query(con)
        .expect("XREADGROUP");
    let by_stream = match read {
        redis::Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| redis::Value::Array(vec![k, v]))
            .collect(),
        redis::Value::Array(items) => items,
        other => panic!("XREADGROUP reply: {other:?}"),
    };
    let by_stream = norm(&redis::Value::Array(by_stream)).replace(prefix, "P");
    out.push(("XREADGROUP".into(), by_stream));
    let pending = norm_result(redis::cmd("XPENDING").arg(k("x")).arg("grp").query(con));
    out.push(("XPENDING".into(), pending));
    // A pipeline mixing every kind of reply, then clean-up.
    let mut pipe = redis::pipe();
    pipe.cmd("HSET")
        .arg(k("ph"))
        .arg("f")
        .arg("v")
        .cmd("HGETALL")
        .arg(k("ph"))
        .cmd("ZADD")
        .arg(k("pz"))
        .arg(3)
        .arg("m")
        .cmd("ZSCORE")
        .arg(k("pz"))
        .arg("m")
        .cmd("GET")
        .arg(k("nothing"))
        .cmd("SADD")
        .arg(k("ps"))
        .arg("q")
        .cmd("SMEMBERS")
        .arg(k("ps"))
        .cmd("PING")
        .cmd("ECHO")
        .arg("hi")
        .cmd("DEL")
        .arg(
            [
                "ph", "pz", "ps", "s", "f", "h", "l", "set", "z", "x", "m1", "m2",
            ]
            .map(k)
            .to_vec(),
        );
    out.push(("pipeline".into(), norm_result(pipe.query(con))));
    out
}

fn connect_with(proxy: &Proxy, protocol: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{}/?protocol={protocol}", proxy.addr()))
        .expect("client");
    let con = client
        .get_connection_with_timeout(OP_TIMEOUT)
        .expect("connect to keyway");
    con.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
    con
}

#[test]
fn redis_crate_gets_the_same_results_in_resp3_and_resp2() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut resp2 = connect_with(&proxy, "resp2");
    let mut resp3 = connect_with(&proxy, "resp3");

    // The RESP3 connection really gets RESP3 types.
    let _: () = redis::cmd("ZADD")
        .arg("{kinds}z")
        .arg(1.5)
        .arg("m")
        .query(&mut resp3)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("{kinds}h")
        .arg("f")
        .arg("v")
        .query(&mut resp3)
        .unwrap();
    let kinds = |con: &mut redis::Connection| {
        let score: redis::Value = redis::cmd("ZSCORE")
            .arg("{kinds}z")
            .arg("m")
            .query(con)
            .unwrap();
        let map: redis::Value = redis::cmd("HGETALL").arg("{kinds}h").query(con).unwrap();
        (score, map)
    };
    let (score, map) = kinds(&mut resp3);
    assert_eq!(score, redis::Value::Double(1.5));
    assert!(matches!(map, redis::Value::Map(_)), "{map:?}");
    let (score, map) = kinds(&mut resp2);
    assert_eq!(score, redis::Value::BulkString(b"1.5".to_vec()));
    assert!(matches!(map, redis::Value::Array(_)), "{map:?}");

    // The same scenarios, on different keys of one slot, agree.
    let two = scenario(&mut resp2, "resp2:");
    let three = scenario(&mut resp3, "resp3:");
    assert_eq!(two.len(), three.len());
    for (a, b) in two.iter().zip(&three) {
        assert_eq!(a, b);
    }
    // Errors came through as errors in both.
    assert!(two.iter().any(|(_, r)| r.contains("WRONGTYPE")), "{two:?}");
}

#[test]
fn redis_cli_dash_3_works() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let port = proxy.port().to_string();
    let dir = support::util::TempDir::new("cli");
    let script = dir.path().join("commands.txt");
    // Commands typed into redis-cli, one per line, its replies formatted
    // as on a terminal (--no-raw).
    let run = |extra: &str, input: &str| {
        std::fs::write(&script, input).unwrap();
        let line = format!(
            "redis-cli -p {port} {extra} --no-raw < {}",
            script.display()
        );
        let (status, output) = run_bounded(Command::new("sh").args(["-c", &line]), OP_TIMEOUT * 2);
        assert!(status.is_some_and(|s| s.success()), "{line}: {output}");
        output
    };
    let input = "HSET {cli}h field value\nHGETALL {cli}h\nZADD {cli}z 2.5 m\nZSCORE {cli}z m\nGET {cli}nothing\nHELLO\n";
    let three = run("-3", input);
    assert!(three.contains("1# \"field\" => \"value\""), "{three}");
    assert!(three.contains("(double) 2.5"), "{three}");
    assert!(three.contains("(nil)"), "{three}");
    assert!(three.contains("\"proto\" => (integer) 3"), "{three}");
    let two = run("", input);
    assert!(two.contains("1) \"field\"\n2) \"value\""), "{two}");
    assert!(two.contains("\"2.5\""), "{two}");
    assert!(!two.contains("=>"), "{two}");
}
