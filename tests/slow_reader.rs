//! One client that sends requests and does not read its replies must cost
//! the others nothing (issue 18): keyway keeps reading the node connection
//! it shares with them, queues the slow client's replies up to
//! `client.output_limit_mb`, then closes that client, never the shared
//! connection.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{http, poll_until, Cluster, Proxy};

/// A client socket whose receive buffer is small, so what keyway sends it
/// piles up in keyway, not in the kernel.
fn slow_socket(addr: &str) -> TcpStream {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// keyway's counter `name` with `labels` (as the scrape writes them), 0
/// when absent.
fn counter(proxy: &Proxy, name: &str, labels: &str) -> f64 {
    let body = http::get(&proxy.admin_addr(), "/metrics").body;
    let prefix = format!("{name}{labels} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_client_that_does_not_read_is_closed_at_its_output_limit_not_the_node_connection() {
    let cluster = Cluster::start();
    // One worker: the slow client and the others share its connection to
    // the node.
    let dir = support::util::TempDir::new("slow-reader");
    let config = dir.path().join("keyway.toml");
    std::fs::write(&config, "[client]\noutput_limit_mb = 16\n").unwrap();
    let proxy = Proxy::start_with(
        &cluster,
        &["--workers", "1", "--config", config.to_str().unwrap()],
    );
    let mut con = proxy.conn();
    let big = "x".repeat(1 << 20);
    let () = redis::cmd("SET")
        .arg("{slow}:big")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let () = redis::cmd("SET")
        .arg("{slow}:small")
        .arg("s")
        .query(&mut con)
        .unwrap();

    // 200 GETs of 1 MiB pipelined, never read: 200 MiB of replies.
    let mut slow = slow_socket(&proxy.addr());
    let get = support::resp::encode(&[b"GET", b"{slow}:big"]);
    slow.write_all(&get.repeat(200)).unwrap();

    // Meanwhile another client of the same worker reads the same shard.
    let started = Instant::now();
    let mut answered = 0;
    let closed = poll_until(Duration::from_secs(30), || {
        let small: String = redis::cmd("GET")
            .arg("{slow}:small")
            .query(&mut con)
            .unwrap();
        assert_eq!(small, "s");
        answered += 1;
        let closed = counter(
            &proxy,
            "keyway_clients_closed_total",
            "{reason=\"output_limit\"}",
        );
        (closed >= 1.0).then_some(())
    });
    assert!(
        closed.is_some(),
        "the slow client was not closed\n--- keyway log ---\n{}",
        proxy.log_tail(20)
    );
    eprintln!(
        "slow reader closed after {:?}; another client got {answered} GETs answered meanwhile",
        started.elapsed()
    );
    assert!(
        proxy
            .log_tail(50)
            .contains("client reads its replies too slowly"),
        "{}",
        proxy.log_tail(20)
    );
    // The shared connection was never dropped, and keeps serving.
    assert!(
        !http::get(&proxy.admin_addr(), "/metrics")
            .body
            .contains("keyway_backend_failures_total{"),
        "no backend connection failed"
    );
    for _ in 0..100 {
        let small: String = redis::cmd("GET")
            .arg("{slow}:small")
            .query(&mut con)
            .unwrap();
        assert_eq!(small, "s");
    }
    // The slow client reads what it was sent before keyway closed it
    // (at most the limit and what the sockets held), then end of file.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = 0usize;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match slow.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("the slow client should see its connection closed: {e}"),
        }
    }
    assert!(
        got < 200 << 20,
        "the slow client got {got} bytes: not everything"
    );

    // A client reading one reply larger than the limit still gets it.
    let huge = "y".repeat(24 << 20);
    let () = redis::cmd("SET")
        .arg("{slow}:huge")
        .arg(&huge)
        .query(&mut con)
        .unwrap();
    let mut reader = slow_socket(&proxy.addr());
    reader
        .write_all(&support::resp::encode(&[b"GET", b"{slow}:huge"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    while reply.len() < huge.len() + 12 {
        let n = reader.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed after {} bytes of one 24 MiB reply",
            reply.len()
        );
        reply.extend_from_slice(&chunk[..n]);
    }
    assert!(reply.starts_with(format!("${}\r\n", huge.len()).as_bytes()));
}
