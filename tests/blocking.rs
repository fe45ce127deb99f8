//! Blocking commands through keyway: each blocked client waits on a
//! dedicated backend connection, is woken by another client's push, times
//! out like redis-server, is never cut by keyway's request timeout, and
//! leaves no blocked connection behind when it disconnects; queue elements
//! are never lost while consumers come and go.

use crate::support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fake_node::{FakeNode, Reply, SlotMap};
use support::util::TempDir;
use support::{poll_until, Cluster, Proxy, RawClient, Ready, OP_TIMEOUT};

/// Starts `args` on a fresh client, which blocks; returns the client.
fn block(proxy: &Proxy, args: &[&str]) -> RawClient {
    let mut client = proxy.raw_client();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    client.send(&support::resp::encode(&args));
    client
}

fn blocked_total(cluster: &Cluster) -> usize {
    cluster
        .masters()
        .iter()
        .map(|m| cluster.blocked_on(m))
        .sum()
}

#[test]
fn every_blocking_command_waits_and_is_woken_like_on_redis_server() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut pusher = proxy.conn();
    // (blocking command, the push that wakes it, the expected reply)
    let cases: Vec<(Vec<&str>, Vec<&str>, &str)> = vec![
        (
            vec!["BLPOP", "{b}l1", "0"],
            vec!["RPUSH", "{b}l1", "a"],
            "*2\r\n$5\r\n{b}l1\r\n$1\r\na\r\n",
        ),
        (
            vec!["BRPOP", "{b}l2", "{b}other", "0"],
            vec!["RPUSH", "{b}l2", "x", "y"],
            "*2\r\n$5\r\n{b}l2\r\n$1\r\ny\r\n",
        ),
        (
            vec!["BLMOVE", "{b}l3", "{b}dst", "LEFT", "RIGHT", "0"],
            vec!["RPUSH", "{b}l3", "m"],
            "$1\r\nm\r\n",
        ),
        (
            vec!["BRPOPLPUSH", "{b}l4", "{b}dst", "0"],
            vec!["RPUSH", "{b}l4", "n"],
            "$1\r\nn\r\n",
        ),
        (
            vec!["BLMPOP", "0", "2", "{b}l5", "{b}l6", "LEFT", "COUNT", "2"],
            vec!["RPUSH", "{b}l6", "p", "q", "r"],
            "*2\r\n$5\r\n{b}l6\r\n*2\r\n$1\r\np\r\n$1\r\nq\r\n",
        ),
        (
            vec!["BZPOPMIN", "{b}z1", "0"],
            vec!["ZADD", "{b}z1", "2", "two", "1", "one"],
            "*3\r\n$5\r\n{b}z1\r\n$3\r\none\r\n$1\r\n1\r\n",
        ),
        (
            vec!["BZPOPMAX", "{b}z2", "0"],
            vec!["ZADD", "{b}z2", "2", "two", "1", "one"],
            "*3\r\n$5\r\n{b}z2\r\n$3\r\ntwo\r\n$1\r\n2\r\n",
        ),
        (
            vec!["BZMPOP", "0", "1", "{b}z3", "MIN"],
            vec!["ZADD", "{b}z3", "5", "five"],
            "*2\r\n$5\r\n{b}z3\r\n*1\r\n*2\r\n$4\r\nfive\r\n$1\r\n5\r\n",
        ),
        (
            vec!["XREAD", "BLOCK", "0", "STREAMS", "{b}s1", "$"],
            vec!["XADD", "{b}s1", "7-1", "f", "v"],
            "*1\r\n*2\r\n$5\r\n{b}s1\r\n*1\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
        ),
    ];
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "{b}s2", "g", "$", "MKSTREAM"])
        .query(&mut pusher)
        .unwrap();
    let mut all = cases;
    all.push((
        vec![
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "{b}s2",
            ">",
        ],
        vec!["XADD", "{b}s2", "8-1", "k", "w"],
        "*1\r\n*2\r\n$5\r\n{b}s2\r\n*1\r\n*2\r\n$3\r\n8-1\r\n*2\r\n$1\r\nk\r\n$1\r\nw\r\n",
    ));
    for (blocking, push, want) in &all {
        let mut client = block(&proxy, blocking);
        // Wait until the node has it blocked, then wake it.
        poll_until(OP_TIMEOUT, || (blocked_total(&cluster) == 1).then_some(()))
            .unwrap_or_else(|| panic!("{blocking:?} never blocked on a node"));
        let mut cmd = redis::cmd(push[0]);
        cmd.arg(&push[1..]);
        let _: redis::Value = cmd.query(&mut pusher).expect("push");
        assert_eq!(client.reply_text(), *want, "{blocking:?}");
        // The same connection keeps working afterwards.
        assert_eq!(client.cmd(&["PING"]), "+PONG\r\n");
    }

    // Finite timeouts answer nil, in the client's protocol.
    let mut client = proxy.raw_client();
    assert_eq!(client.cmd(&["BLPOP", "{b}empty", "0.2"]), "*-1\r\n");
    assert_eq!(
        client.cmd(&["BLMOVE", "{b}empty", "{b}d", "LEFT", "LEFT", "0.2"]),
        "*-1\r\n"
    );
    assert!(client.cmd(&["HELLO", "3"]).starts_with("%7"));
    assert_eq!(client.cmd(&["BLPOP", "{b}empty", "0.2"]), "_\r\n");
    // Keys in different slots are refused before anything blocks.
    let crossslot = client.cmd(&["BLPOP", "{b}a", "{c}b", "0"]);
    assert!(crossslot.starts_with("-CROSSSLOT"), "{crossslot:?}");
}

#[test]
fn requests_before_and_after_a_blocking_command_keep_their_order() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut client = proxy.raw_client();
    for i in 0..50 {
        // The push and the pop go on different backend connections; the
        // pop must see the push, and the GET after it must see the pop.
        let pipeline = [
            &["RPUSH", "{o}q", &i.to_string()][..],
            &["BLPOP", "{o}q", "0"],
            &["LLEN", "{o}q"],
        ]
        .iter()
        .flat_map(|args| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            support::resp::encode(&args)
        })
        .collect::<Vec<u8>>();
        client.send(&pipeline);
        assert_eq!(client.reply_text(), ":1\r\n");
        let n = i.to_string();
        assert_eq!(
            client.reply_text(),
            format!("*2\r\n$4\r\n{{o}}q\r\n${}\r\n{n}\r\n", n.len())
        );
        assert_eq!(client.reply_text(), ":0\r\n");
    }
}

#[test]
fn blocked_clients_do_not_stall_others_nor_outlive_their_client() {
    let cluster = Cluster::start();
    let dir = TempDir::new("blocking");
    let config = dir.path().join("keyway.toml");
    // A short request timeout: blocking commands must not be cut by it.
    std::fs::write(
        &config,
        "[backend]\nrequest_timeout_ms = 500\nmax_blocking_connections = 30\n",
    )
    .unwrap();
    let proxy = Proxy::start_with(&cluster, &["--config", config.to_str().unwrap()]);
    let mut blocked: Vec<RawClient> = (0..40)
        .map(|i| block(&proxy, &["BLPOP", &format!("stall:{i}"), "0"]))
        .collect();
    // 2 workers × 30: all 40 fit, unless the kernel put more than 30 on one
    // worker; then the extra ones get keyway's limit error at once.
    poll_until(OP_TIMEOUT, || (blocked_total(&cluster) >= 10).then_some(()))
        .expect("clients blocked on the nodes");
    let mut other = proxy.conn();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("free:{i}"))
            .arg(i)
            .query(&mut other)
            .expect("SET while others are blocked");
    }
    // Past the request timeout, still blocked (no timeout error).
    std::thread::sleep(Duration::from_millis(1200));
    let still = blocked_total(&cluster);
    assert!(still >= 10, "{still} clients still blocked");
    // Wake one: it gets its element, not a timeout error.
    let _: () = redis::cmd("RPUSH")
        .arg("stall:0")
        .arg("late")
        .query(&mut other)
        .unwrap();
    let woken = blocked[0].reply_text();
    assert!(
        woken == "*2\r\n$7\r\nstall:0\r\n$4\r\nlate\r\n" || woken.starts_with("-ERR keyway has"),
        "{woken:?}"
    );
    // Clients that leave while blocked leave nothing blocked behind.
    blocked.clear();
    poll_until(OP_TIMEOUT, || (blocked_total(&cluster) == 0).then_some(()))
        .unwrap_or_else(|| panic!("{} connections still blocked", blocked_total(&cluster)));
}

#[test]
fn no_queue_element_is_lost_while_consumers_come_and_go() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    const ELEMENTS: usize = 2000;
    const CONSUMERS: usize = 12;
    let got = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (got, done, addr) = (got.clone(), done.clone(), proxy.addr());
            std::thread::spawn(move || {
                let mut round = 0usize;
                while !done.load(Ordering::Relaxed) {
                    round += 1;
                    let mut client = RawClient::connect(&addr, OP_TIMEOUT);
                    // Some consumers take a few elements and leave; others
                    // leave while blocked, without reading.
                    let pops = if (c + round) % 3 == 0 { 0 } else { 5 };
                    for _ in 0..pops {
                        let reply = client.cmd(&["BLPOP", "{queue}q", "0.5"]);
                        if let Some(element) = reply
                            .strip_suffix("\r\n")
                            .and_then(|r| r.rsplit("\r\n").next())
                        {
                            if reply.starts_with("*2") {
                                got.lock().unwrap().push(element.to_string());
                            }
                        }
                    }
                    if pops == 0 {
                        // Block, then leave: half-close and read to the end,
                        // so an element keyway delivered before it saw the
                        // client go is counted; anything popped after that
                        // would be lost, which must not happen.
                        let stream = support::resp::connect_stream(&addr, OP_TIMEOUT);
                        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                        std::io::Write::write_all(
                            &mut &stream,
                            &support::resp::encode(&[b"BLPOP", b"{queue}q", b"0"]),
                        )
                        .unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                        stream.shutdown(std::net::Shutdown::Write).unwrap();
                        if let Ok(reply) = support::resp::read_reply(&mut reader) {
                            let reply = String::from_utf8_lossy(&reply).into_owned();
                            let element = reply.trim_end().rsplit("\r\n").next().unwrap();
                            got.lock().unwrap().push(element.to_string());
                        }
                    }
                }
            })
        })
        .collect();
    let mut producer = proxy.conn();
    for i in 0..ELEMENTS {
        let _: () = redis::cmd("RPUSH")
            .arg("{queue}q")
            .arg(format!("e{i}"))
            .query(&mut producer)
            .unwrap();
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Let the consumers drain what they can, then stop them.
    poll_until(Duration::from_secs(20), || {
        let left: usize = redis::cmd("LLEN")
            .arg("{queue}q")
            .query(&mut producer)
            .unwrap();
        (left == 0).then_some(())
    });
    done.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().expect("consumer");
    }
    let left: Vec<String> = redis::cmd("LRANGE")
        .arg("{queue}q")
        .arg(0)
        .arg(-1)
        .query(&mut producer)
        .unwrap();
    let got = got.lock().unwrap();
    let mut seen = BTreeSet::new();
    for element in got.iter().chain(&left) {
        assert!(seen.insert(element.clone()), "{element} delivered twice");
    }
    let missing: Vec<String> = (0..ELEMENTS)
        .map(|i| format!("e{i}"))
        .filter(|e| !seen.contains(e))
        .collect();
    assert!(
        missing.is_empty(),
        "{} elements lost (neither delivered nor in the list): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// The race a real cluster cannot show on demand: the node pops an element
/// for a blocked client just as that client leaves (here a fake node that
/// answers after keyway already closed the command's connection). keyway
/// puts the element back where it was instead of losing it.
#[test]
fn an_element_popped_for_a_client_that_left_is_put_back() {
    let map = SlotMap::default();
    let node = FakeNode::start_with_map(map.clone());
    map.set(&[(0, 16383, &node.addr())]);
    let proxy = Proxy::spawn(&[node.addr()], &[], Ready::Ping);
    let mut probe = proxy.raw_client();
    poll_until(Duration::from_secs(10), || {
        (probe.cmd(&["GET", "warmup"]) == "$-1\r\n").then_some(())
    })
    .expect("keyway reached the fake node");
    node.script(
        "q",
        [Reply::raw("*2\r\n$1\r\nq\r\n$7\r\nelement\r\n").delayed(Duration::from_millis(500))],
    );
    let client = block(&proxy, &["BLPOP", "q", "0"]);
    std::thread::sleep(Duration::from_millis(150));
    drop(client);
    poll_until(Duration::from_secs(5), || {
        (node.count(&["LPUSH", "q", "element"]) == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("element not put back; keyway log:\n{}", proxy.log_tail(20)));
}
