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

/// Reads from `socket` until keyway closes it; the bytes read.
fn read_to_close(socket: &mut TcpStream) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        match socket.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got += n,
            Err(e) => panic!("keyway should close this client: {e}"),
        }
    }
}

#[test]
fn past_max_memory_the_client_holding_most_replies_is_closed_first() {
    let cluster = Cluster::start();
    let dir = support::util::TempDir::new("max-memory");
    let config = dir.path().join("keyway.toml");
    // No per-client limit: only the process-wide one. Two workers: the
    // limit counts the replies held on both.
    std::fs::write(
        &config,
        "[proxy]\nmax_memory_mb = 48\n[client]\noutput_limit_mb = 0\n",
    )
    .unwrap();
    let proxy = Proxy::start_with(
        &cluster,
        &["--workers", "2", "--config", config.to_str().unwrap()],
    );
    let mut con = proxy.conn();
    let big = "x".repeat(1 << 20);
    let () = redis::cmd("SET")
        .arg("{mem}:big")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let buffered = || counter(&proxy, "keyway_replies_buffered_bytes", "");
    let get = support::resp::encode(&[b"GET", b"{mem}:big"]);

    // The largest holder: 40 MiB of replies it does not read, under the
    // limit on its own.
    let mut largest = slow_socket(&proxy.addr());
    largest.write_all(&get.repeat(40)).unwrap();
    let held = poll_until(Duration::from_secs(20), || {
        (buffered() >= (32 << 20) as f64).then_some(())
    });
    assert!(held.is_some(), "keyway holds {} bytes", buffered());
    // A second one takes all of them past 48 MiB: the largest goes.
    let mut smaller = slow_socket(&proxy.addr());
    smaller.write_all(&get.repeat(20)).unwrap();
    let closed = poll_until(Duration::from_secs(20), || {
        let closed = counter(
            &proxy,
            "keyway_clients_closed_total",
            "{reason=\"max_memory\"}",
        );
        (closed >= 1.0).then_some(())
    });
    assert!(
        closed.is_some(),
        "nobody was closed while keyway held {} bytes\n--- keyway log ---\n{}",
        buffered(),
        proxy.log_tail(20)
    );
    let got = read_to_close(&mut largest);
    assert!(got < 40 << 20, "the largest holder got {got} bytes: all");
    assert!(
        proxy.log_tail(50).contains("proxy.max_memory_mb"),
        "{}",
        proxy.log_tail(20)
    );

    // The smaller one stays and gets every reply; others keep working.
    smaller
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let whole = 20 * (big.len() + "$1048576\r\n\r\n".len());
    let mut reply = vec![0u8; whole];
    smaller.read_exact(&mut reply).unwrap();
    assert!(reply.starts_with(b"$1048576\r\nxxx"));
    let one: usize = redis::cmd("STRLEN")
        .arg("{mem}:big")
        .query(&mut con)
        .unwrap();
    assert_eq!(one, big.len());
    assert_eq!(
        counter(
            &proxy,
            "keyway_clients_closed_total",
            "{reason=\"max_memory\"}"
        ),
        1.0,
        "only the largest holder was closed"
    );
    let drained = poll_until(Duration::from_secs(10), || {
        (buffered() == 0.0).then_some(())
    });
    assert!(drained.is_some(), "still held: {} bytes", buffered());
}

#[test]
fn a_client_cannot_make_keyway_read_more_than_max_pipeline_mb_ahead_of_its_replies() {
    let cluster = Cluster::start();
    let dir = support::util::TempDir::new("read-ahead");
    let config = dir.path().join("keyway.toml");
    std::fs::write(&config, "[client]\nmax_pipeline_mb = 4\n").unwrap();
    let proxy = Proxy::start_with(&cluster, &["--config", config.to_str().unwrap()]);

    // A BLPOP that waits, then 256 SETs of 256 KiB (64 MiB, under
    // max_pipeline's 1024 requests): they wait behind it, unanswered.
    let mut client = proxy.raw_connect();
    client
        .write_all(&support::resp::encode(&[b"BLPOP", b"{ahead}:list", b"0"]))
        .unwrap();
    let value = vec![b'v'; 256 << 10];
    let sets: Vec<u8> = (0..256)
        .flat_map(|i| {
            let key = format!("{{ahead}}:k{i}");
            support::resp::encode(&[b"SET", key.as_bytes(), &value])
        })
        .collect();
    client
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut written = 0;
    while written < sets.len() {
        match client.write(&sets[written..]) {
            Ok(n) => written += n,
            Err(_) => break, // keyway stopped reading: the write timed out
        }
    }
    // keyway read about 4 MiB; the rest is in the two sockets' buffers.
    eprintln!("read-ahead: the client wrote {written} bytes before keyway stopped reading");
    assert!(
        written < 32 << 20,
        "keyway let the client write {written} of {} bytes ahead",
        sets.len()
    );

    // Once the BLPOP is answered, everything is read and answered.
    let mut con = proxy.conn();
    let _: i64 = redis::cmd("LPUSH")
        .arg("{ahead}:list")
        .arg("go")
        .query(&mut con)
        .unwrap();
    client.set_write_timeout(None).unwrap();
    let reader = {
        let mut reader = client.try_clone().unwrap();
        std::thread::spawn(move || {
            reader
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let expected = b"*2\r\n$12\r\n{ahead}:list\r\n$2\r\ngo\r\n".len() + 256 * 5;
            let mut replies = vec![0u8; expected];
            reader.read_exact(&mut replies).map(|()| replies)
        })
    };
    client.write_all(&sets[written..]).unwrap();
    let replies = reader.join().unwrap().expect("every reply");
    assert!(replies.ends_with(&b"+OK\r\n".repeat(256)));
    let len: usize = redis::cmd("STRLEN")
        .arg("{ahead}:k255")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, value.len());
}
