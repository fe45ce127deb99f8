//! The process's edges: graceful shutdown on SIGTERM (stop accepting, let
//! connected clients finish, exit 0) and the client limit.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{poll_until, util::TempDir, Cluster, Proxy, OP_TIMEOUT};

#[test]
fn sigterm_stops_accepting_lets_clients_finish_and_exits_cleanly() {
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();
    let () = redis::cmd("SET")
        .arg("drain:k")
        .arg("v")
        .query(&mut con)
        .unwrap();

    // SAFETY: kill(2) on our own child process.
    unsafe {
        libc::kill(proxy.pid() as libc::pid_t, libc::SIGTERM);
    }
    let refused = poll_until(Duration::from_secs(5), || {
        TcpStream::connect(proxy.addr()).is_err().then_some(())
    });
    assert!(
        refused.is_some(),
        "keyway still accepts new clients after SIGTERM"
    );

    // The client that was connected is still served while keyway drains.
    let v: String = redis::cmd("GET").arg("drain:k").query(&mut con).unwrap();
    assert_eq!(v, "v");
    drop(con);

    // Its last client gone, keyway exits by itself, successfully.
    let status = proxy.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "keyway should exit 0 after draining, got {status:?}\n{}",
        proxy.log_tail(20)
    );
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
    line.clear();
    assert_eq!(
        third.read_line(&mut line).unwrap_or(0),
        0,
        "the refused client is closed"
    );

    // A place freed is a place for the next client.
    drop(first);
    let next = poll_until(Duration::from_secs(5), || served(&proxy.addr()));
    assert!(next.is_some(), "a client should be served once one left");
    drop(second);
}
