//! What one redis-server does that a cluster can give too, compared reply
//! for reply with one redis-server 7.0 run by the test: `CLIENT REPLY`,
//! `PUBLISH`'s count of receivers, keyspace notifications of every master,
//! and the commands a transaction cannot hold.

use crate::support;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Duration;

use support::resp::{connect_stream, encode, read_reply};
use support::{Cluster, Proxy, Standalone};

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
