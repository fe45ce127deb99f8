//! SIGHUP reloads the config file while clients stay connected: the log
//! level, a client limit, the default user's password and
//! keyway's slow log apply at once to what comes next; a key read only at
//! start is reported as needing a restart and left alone; a file that does
//! not validate changes nothing and the log names the key and the reason.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::proxy::{Launch, Ready};
use support::{poll_until, Cluster, Proxy, OP_TIMEOUT};

/// The config with `max_clients`, `password`, `log_level` and keyway's slow
/// log threshold (µs; negative: off).
fn config(max_clients: usize, password: &str, log_level: &str, slow_us: i64) -> String {
    format!(
        "[proxy]\nlog_level = \"{log_level}\"\nslowlog_slower_than_us = {slow_us}\n\
         [client]\nmax_clients = {max_clients}\n\
         [auth]\npassword = \"{password}\"\n"
    )
}

/// What keyway answers a new connection's `AUTH password` (or the refusal
/// it sends at once when full).
fn auth_reply(proxy: &Proxy, password: &str) -> String {
    auth_on_new_connection(proxy, password).1
}

/// What keyway answers `AUTH password` on a new connection once one is let
/// in (a client that just left may still count against the limit).
fn auth_admitted(proxy: &Proxy, password: &str) -> String {
    poll_until(Duration::from_secs(5), || {
        let reply = auth_reply(proxy, password);
        (!reply.starts_with("-ERR max number of clients")).then_some(reply)
    })
    .expect("a client let in within 5 s")
}

/// A new connection, and what keyway answered its `AUTH password`.
fn auth_on_new_connection(proxy: &Proxy, password: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
    let request = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
    // A refused connection may be closed before the write: the reply read
    // below says why.
    let _ = stream.write_all(request.as_bytes());
    let mut reply = vec![0; 512];
    let n = stream.read(&mut reply).unwrap_or(0);
    let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
    (stream, reply)
}

/// Logged in, one connection held open.
fn logged_in(proxy: &Proxy, password: &str) -> redis::Connection {
    let mut con = proxy.conn();
    let () = redis::cmd("AUTH").arg(password).query(&mut con).unwrap();
    con
}

#[test]
fn sighup_applies_live_keys_at_once_and_a_bad_file_changes_nothing() {
    let cluster = Cluster::start();
    let proxy = Proxy::start_configured(
        &cluster,
        &config(100, "first", "info", -1),
        Launch {
            ready: Ready::ServingAs {
                user: "default",
                password: "first",
            },
            // The file's log level decides (a flag would override it).
            log_level: None,
            ..Launch::default()
        },
    );
    let mut held = logged_in(&proxy, "first");
    assert!(
        !proxy.log_tail(200).contains("DEBUG"),
        "info level at start"
    );

    // Reload: 2 clients at most, a new password, debug logs, every
    // request in keyway's slow log.
    proxy.reload(&config(2, "second", "debug", 0));
    // The connection held across the reload stays logged in and served.
    let () = redis::cmd("SET")
        .arg("reload:k")
        .arg("v")
        .query(&mut held)
        .unwrap();
    // The new password, not the old one (each on a connection let in:
    // at max_clients = 2, one that just closed may still count).
    assert!(auth_admitted(&proxy, "first").starts_with("-WRONGPASS"));
    assert_eq!(auth_admitted(&proxy, "second"), "+OK\r\n");
    // The limit: `held` and one more (once the connections above are
    // closed on keyway's side too); a third is refused.
    let second = poll_until(Duration::from_secs(5), || {
        let (stream, reply) = auth_on_new_connection(&proxy, "second");
        (reply == "+OK\r\n").then_some(stream)
    });
    assert!(
        second.is_some(),
        "no second client let in at max_clients = 2"
    );
    let refused = poll_until(Duration::from_secs(5), || {
        let reply = auth_reply(&proxy, "second");
        reply
            .starts_with("-ERR max number of clients reached")
            .then_some(reply)
    });
    assert!(
        refused.is_some(),
        "a third client was let in at max_clients = 2"
    );
    // Debug lines, from the connections above.
    assert!(
        proxy.log_tail(400).contains("DEBUG"),
        "no debug line after the reload:\n{}",
        proxy.log_tail(20)
    );
    // keyway's slow log now takes every request.
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut held)
        .unwrap();
    let keyways = entries
        .iter()
        .filter(|e| format!("{e:?}").contains("keyway"))
        .count();
    assert!(keyways >= 1, "{entries:?}");

    // A bad value: nothing changes, and the log names the key and why.
    proxy.reload(&config(0, "third", "info", -1));
    let log = proxy.log_tail(50);
    assert!(
        log.contains("configuration not reloaded") && log.contains("client.max_clients"),
        "{log}"
    );
    drop(second);
    assert!(auth_admitted(&proxy, "third").starts_with("-WRONGPASS"));
    assert_eq!(auth_admitted(&proxy, "second"), "+OK\r\n");
    // A second client, held (once the ones above are gone on keyway's
    // side too), fills the limit again.
    let full = poll_until(Duration::from_secs(5), || {
        let (stream, reply) = auth_on_new_connection(&proxy, "second");
        (reply == "+OK\r\n").then_some(stream)
    })
    .expect("a second client let in at max_clients = 2");
    assert!(
        auth_reply(&proxy, "second").starts_with("-ERR max number of clients"),
        "max_clients is still 2"
    );

    // A start-up key: named as needing a restart; the live keys of the
    // same file apply (the limit back to 100: a third client gets in).
    // (proxy.workers would do, but the harness sets it by flag.)
    let moved = config(100, "second", "info", -1) + "[backend]\nconnections_per_node = 3\n";
    proxy.reload(&moved);
    let log = proxy.log_tail(50);
    assert!(
        log.contains("needs restart") && log.contains("backend.connections_per_node"),
        "{log}"
    );
    assert_eq!(auth_reply(&proxy, "second"), "+OK\r\n", "a third client");
    drop(full);
    let pong: String = redis::cmd("PING").query(&mut held).unwrap();
    assert_eq!(pong, "PONG");
}
