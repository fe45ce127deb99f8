use super::*;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A connected `Stream` and the plain socket at its other end.
async fn pair() -> (Stream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stream, accepted) = tokio::join!(Stream::connect_tcp(&addr), listener.accept());
    (stream.unwrap(), accepted.unwrap().0)
}

/// Reads until `buf` holds `want` bytes (or the peer closed).
async fn read_until(stream: &Stream, buf: &mut BytesMut, want: usize) {
    while buf.len() < want {
        stream.readable().await.unwrap();
        buf.reserve(64);
        if stream.read_some(buf).unwrap() == Some(0) {
            return;
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn bytes_go_both_ways() {
    let (stream, mut peer) = pair().await;
    let mut out = BytesMut::from(&b"ping"[..]);
    stream.write_all(&mut out).await.unwrap();
    assert!(out.is_empty());
    let mut shared = Bytes::from_static(b"!");
    assert!(stream.write_some(&mut shared).unwrap());
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping!");

    peer.write_all(b"pong").await.unwrap();
    let mut buf = BytesMut::new();
    read_until(&stream, &mut buf, 4).await;
    assert_eq!(&buf[..], b"pong");
    assert_eq!(stream.peer_addr().unwrap(), peer.local_addr().unwrap());
    assert_eq!(stream.local_addr().unwrap(), peer.peer_addr().unwrap());
    assert!(stream.as_raw_fd() >= 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_short_read_clears_readiness() {
    let (stream, mut peer) = pair().await;
    peer.write_all(b"abc").await.unwrap();
    stream.readable().await.unwrap();
    let mut buf = BytesMut::with_capacity(64);
    assert_eq!(stream.read_some(&mut buf).unwrap(), Some(3));
    // Without the clearing, the socket would still look readable and the
    // next wait would end in a `recv` failing with EAGAIN.
    let waited = tokio::time::timeout(Duration::from_millis(50), stream.readable()).await;
    assert!(waited.is_err(), "still readable after a short read");
    assert_eq!(stream.read_some(&mut buf).unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_close_that_came_with_the_data_is_not_lost() {
    let (stream, mut peer) = pair().await;
    peer.write_all(b"abc").await.unwrap();
    drop(peer);
    let mut buf = BytesMut::with_capacity(64);
    read_until(&stream, &mut buf, 3).await;
    assert_eq!(&buf[..], b"abc");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            stream.readable().await.unwrap();
            if let Some(n) = stream.read_some(&mut buf).unwrap() {
                return n;
            }
        }
    })
    .await
    .expect("the close was lost");
    assert_eq!(closed, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn idle_means_open_with_nothing_unread() {
    let (stream, mut peer) = pair().await;
    assert!(stream.is_idle());
    peer.write_all(b"x").await.unwrap();
    stream.readable().await.unwrap();
    assert!(!stream.is_idle(), "unread data");

    let (stream, peer) = pair().await;
    drop(peer);
    stream.readable().await.unwrap();
    assert!(!stream.is_idle(), "closed by the peer");
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_write_half_closes() {
    let (stream, mut peer) = pair().await;
    stream.shutdown_write().unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the peer reads end-of-stream");
    peer.write_all(b"late").await.unwrap();
    let mut buf = BytesMut::new();
    read_until(&stream, &mut buf, 4).await;
    assert_eq!(&buf[..], b"late", "this side still reads");
}
