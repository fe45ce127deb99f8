use super::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const HELLO3_BYTES: &[u8] = b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";

fn options(protocol: Protocol, timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        protocol,
        timeout,
        limits: Limits::default(),
        access: Default::default(),
        readonly: false,
    }
}

/// A node that reads `expect` from its first client and answers `reply`.
/// Its task ends with what the client sent after that, once it closed.
async fn scripted_node(
    expect: &'static [u8],
    reply: &'static [u8],
) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let node = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; expect.len()];
        conn.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expect, "the node got an unexpected request");
        conn.write_all(reply).await.unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
        rest
    });
    (addr, node)
}

#[tokio::test(flavor = "current_thread")]
async fn resp3_says_hello_3_and_takes_a_map() {
    let (addr, node) = scripted_node(HELLO3_BYTES, b"%1\r\n+proto\r\n:3\r\n").await;
    let stream = connect(&addr, &options(Protocol::Resp3, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap().to_string(), addr);
    drop(stream);
    assert_eq!(node.await.unwrap(), b"", "nothing after HELLO 3");
}

#[tokio::test(flavor = "current_thread")]
async fn resp2_sends_nothing() {
    let (addr, node) = scripted_node(b"", b"").await;
    let stream = connect(&addr, &options(Protocol::Resp2, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(stream.is_idle());
    drop(stream);
    assert_eq!(node.await.unwrap(), b"", "a RESP2 connection says nothing");
}

/// Connects with RESP3 to a node that answers `HELLO 3` with `reply`,
/// which must fail; the failure, and the node's address.
async fn refused_hello(reply: &'static [u8]) -> (ConnectError, String) {
    let (addr, _node) = scripted_node(HELLO3_BYTES, reply).await;
    let e = connect(&addr, &options(Protocol::Resp3, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.step, Step::Hello, "{e:?}");
    (e, addr)
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_to_hello_names_the_node_and_the_step() {
    let (e, addr) = refused_hello(b"-ERR unknown command 'HELLO'\r\n").await;
    assert_eq!(e.addr, addr);
    assert!(matches!(e.cause, Cause::Refused(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "cannot connect to {addr} (HELLO 3): the node answered -ERR unknown command 'HELLO'"
        )
    );
}

#[tokio::test(flavor = "current_thread")]
async fn more_than_one_reply_to_hello_is_refused() {
    let (e, _) = refused_hello(b"%0\r\n+extra\r\n").await;
    assert!(matches!(e.cause, Cause::Refused(_)), "{e:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_malformed_reply_to_hello_is_a_bad_reply() {
    let (e, _) = refused_hello(b"?what\r\n").await;
    assert!(matches!(e.cause, Cause::BadReply(_)), "{e:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_port_nobody_listens_on_fails_at_connect() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let e = connect(&addr, &options(Protocol::Resp3, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.addr, addr);
    assert_eq!(e.step, Step::Connect);
    assert!(
        matches!(&e.cause, Cause::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to {addr} (connect): ")),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_node_times_out_in_the_step_it_was_in() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let timeout = Duration::from_millis(200);
    let started = tokio::time::Instant::now();
    let e = connect(&addr, &options(Protocol::Resp3, timeout))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        e.step,
        Step::Hello,
        "connected (the kernel accepts), then waited"
    );
    assert!(
        matches!(e.cause, Cause::TimedOut(t) if t == timeout),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("cannot connect to {addr} (HELLO 3): timed out after 200ms")
    );
    assert!(took >= timeout && took < timeout * 5, "took {took:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_node_that_closes_during_hello_fails_at_hello() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        drop(conn);
    });
    let e = connect(&addr, &options(Protocol::Resp3, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.step, Step::Hello);
    assert!(matches!(e.cause, Cause::Io(_)), "{e:?}");
}
