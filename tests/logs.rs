//! keyway's log: `proxy.log_format = "json"` writes one JSON object per
//! line, and debug lines carry the client's span (id, address, and the
//! user once logged in); client errors are logged one line per class per
//! period however many clients misbehave, while the metrics count each.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::http::Scrape;
use support::proxy::{Launch, Ready};
use support::{poll_until, Cluster, Proxy};

#[test]
fn json_lines_carry_the_client_span_and_client_errors_are_rate_limited() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_configured(
        &cluster,
        "[proxy]\nlog_format = \"json\"\nlog_level = \"debug\"\n[auth]\npassword = \"pw\"\n",
        Launch {
            ready: Ready::ServingAs {
                user: "default",
                password: "pw",
            },
            log_level: None,
            ..Launch::default()
        },
    );
    let mut con = proxy.conn();
    let () = redis::cmd("AUTH").arg("pw").query(&mut con).unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    drop(con);

    // 40 clients send malformed RESP; 10 fail to log in, all at once
    // (keyway delays the replies to failed logins).
    let mut reply = [0; 64];
    for _ in 0..40 {
        let mut bad = TcpStream::connect(proxy.addr()).unwrap();
        bad.write_all(b"*1\r\n$x\r\n").unwrap();
        let _ = bad.read(&mut reply);
    }
    let mut wrong: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr()).unwrap();
            s.write_all(b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n").unwrap();
            s
        })
        .collect();
    for s in &mut wrong {
        let _ = s.read(&mut reply);
    }
    let scrape = Scrape::take(&proxy.admin_addr());
    assert_eq!(scrape.expect("keyway_client_protocol_errors_total"), 40.0);
    assert_eq!(
        scrape.expect("keyway_auth_failures_total{reason=\"wrongpass\"}"),
        10.0
    );

    // Every line is a JSON object; find the ones that matter.
    let disconnected = poll_until(Duration::from_secs(5), || {
        let log = proxy.log_tail(100_000);
        log.contains("client disconnected").then_some(log)
    })
    .expect("a debug line for a client leaving");
    let lines: Vec<serde_json::Value> = disconnected
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_string();
    // The logged-in client's last line names it, its address and its user.
    let left = lines
        .iter()
        .find(|l| message(l) == "client disconnected" && l["span"]["user"] == "default")
        .unwrap_or_else(|| panic!("no disconnect line with the user:\n{disconnected}"));
    assert_eq!(left["level"], "DEBUG");
    assert_eq!(left["span"]["name"], "client");
    assert!(left["span"]["id"].is_number(), "{left}");
    assert!(
        left["span"]["peer"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{left}"
    );
    // One warning per class within the period, not forty or ten.
    let warnings = |what: &str| {
        lines
            .iter()
            .filter(|l| l["level"] == "WARN" && message(l).starts_with(what))
            .count()
    };
    assert_eq!(warnings("client sent malformed RESP"), 1, "{disconnected}");
    assert_eq!(warnings("client failed to log in"), 1, "{disconnected}");
}
