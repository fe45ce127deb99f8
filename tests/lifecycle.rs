//! The process's edges: graceful shutdown on SIGTERM (stop accepting, let
//! connected clients finish, exit 0) and the client limit.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{poll_until, slot::key_slot, util::TempDir, Cluster, Proxy, OP_TIMEOUT};

/// SIGTERM drains: keyway stops accepting at once, closes the clients
/// that have nothing in flight at once, answers the requests it already
/// received (here a `BLPOP` that a push ends after the signal), and exits
/// 0 once its clients are gone, well within `proxy.shutdown_grace_s`.
#[test]
fn sigterm_stops_accepting_answers_what_it_received_closes_idle_clients_and_exits() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start_with_config(&cluster, "[proxy]\nshutdown_grace_s = 30\n");
    let mut con = proxy.conn();
    let () = redis::cmd("SET")
        .arg("drain:k")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let mut idle = served(&proxy.addr()).expect("an idle client");
    let (mut busy, node) = blocked_client(&cluster, &proxy, "drain:list", 20);
    sigterm(&proxy);
    let refused = poll_until(Duration::from_secs(5), || {
        TcpStream::connect(proxy.addr()).is_err().then_some(())
    });
    assert!(
        refused.is_some(),
        "keyway still accepts new clients after SIGTERM"
    );

    // A client with nothing in flight is closed at once, long before the
    // grace period ends.
    assert_eq!(
        closed(&mut idle),
        Ok(()),
        "an idle client is closed at SIGTERM"
    );

    // The request in flight is still answered while keyway drains.
    let () = redis::cmd("LPUSH")
        .arg("drain:list")
        .arg("last")
        .query(&mut cluster.conn(&node))
        .unwrap();
    let mut reply = String::new();
    for _ in 0..5 {
        busy.read_line(&mut reply).unwrap();
    }
    assert_eq!(reply, "*2\r\n$10\r\ndrain:list\r\n$4\r\nlast\r\n");
    // ... and then it is closed too.
    assert_eq!(closed(&mut busy), Ok(()));
    drop(con);

    // Its clients gone, keyway exits by itself, successfully.
    let status = proxy.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "keyway should exit 0 after draining, got {status:?}\n{}",
        proxy.log_tail(20)
    );
}

/// A client still busy when `proxy.shutdown_grace_s` ends is closed then,
/// and keyway exits 0 without waiting for it any longer.
#[test]
fn clients_still_busy_when_the_grace_period_ends_are_closed() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start_with_config(&cluster, "[proxy]\nshutdown_grace_s = 1\n");
    let (mut busy, node) = blocked_client(&cluster, &proxy, "drain:never", 0);
    sigterm(&proxy);
    assert_eq!(
        closed(&mut busy),
        Ok(()),
        "the blocked client is closed at the end of the grace period"
    );
    let status = proxy.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "keyway should exit 0 after the grace period, got {status:?}\n{}",
        proxy.log_tail(20)
    );
    // Nothing stays blocked on the node for the client that was cut.
    let unblocked = poll_until(Duration::from_secs(5), || {
        (cluster.blocked_on(&node) == 0).then_some(())
    });
    assert!(unblocked.is_some(), "the node still has a blocked client");
}

/// A client of `proxy` in `BLPOP key timeout`, once the command is
/// blocked on its node (returned too).
fn blocked_client(
    cluster: &Cluster,
    proxy: &Proxy,
    key: &str,
    timeout: u32,
) -> (BufReader<TcpStream>, String) {
    let mut client = served(&proxy.addr()).expect("a client");
    let command = format!("BLPOP {key} {timeout}\r\n");
    client.get_mut().write_all(command.as_bytes()).unwrap();
    let node = cluster.node_of_slot(key_slot(key.as_bytes()));
    poll_until(Duration::from_secs(5), || {
        (cluster.blocked_on(&node) > 0).then_some(())
    })
    .expect("the BLPOP reaches its node");
    (client, node)
}

/// `Ok` once keyway closed the connection (end of stream, or a reset);
/// what was read instead, or the error, such as the read timeout
/// ([`OP_TIMEOUT`]) when it stays open.
fn closed(client: &mut BufReader<TcpStream>) -> Result<(), String> {
    let mut line = String::new();
    match client.read_line(&mut line) {
        Ok(0) => Ok(()),
        Ok(_) => Err(format!("read {line:?}")),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends SIGTERM to keyway.
fn sigterm(proxy: &Proxy) {
    // SAFETY: kill(2) on our own child process.
    unsafe {
        libc::kill(proxy.pid() as libc::pid_t, libc::SIGTERM);
    }
}

/// Opens a connection and checks it is served (PING → PONG).
fn served(addr: &str) -> Option<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(OP_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(b"PING\r\n").ok()?;
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    (line == "+PONG\r\n").then_some(reader)
}

#[test]
fn clients_past_the_limit_get_a_clear_error() {
    let cluster = Cluster::start();
    let dir = TempDir::new("limit");
    let config = dir.path().join("keyway.toml");
    std::fs::write(&config, "[client]\nmax_clients = 2\n").unwrap();
    let proxy = Proxy::start_with(&cluster, &["--config", config.to_str().unwrap()]);

    // The harness's own start-up connections may take a moment to be
    // counted out: poll until two clients are served.
    let first = poll_until(Duration::from_secs(5), || served(&proxy.addr())).expect("first client");
    let second =
        poll_until(Duration::from_secs(5), || served(&proxy.addr())).expect("second client");

    let mut third = BufReader::new(TcpStream::connect(proxy.addr()).unwrap());
    third.get_mut().set_read_timeout(Some(OP_TIMEOUT)).unwrap();
    let mut line = String::new();
    third.read_line(&mut line).unwrap();
    assert_eq!(line, "-ERR max number of clients reached\r\n");
    assert_eq!(closed(&mut third), Ok(()), "the refused client is closed");

    // A place freed is a place for the next client.
    drop(first);
    let next = poll_until(Duration::from_secs(5), || served(&proxy.addr()));
    assert!(next.is_some(), "a client should be served once one left");
    drop(second);
}
