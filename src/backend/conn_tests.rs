use super::*;
use crate::backend::node_loss::NodeLosses;
use crate::protocol::Limits;
use crate::stats::backends::WorkerNodes;

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Hands each delivery to the test, with when it came.
struct Deliveries(mpsc::UnboundedSender<(u64, Result<Bytes, BackendError>, Instant)>);

impl ReplySink for Deliveries {
    fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>) {
        let _ = self.0.send((token, reply, Instant::now()));
    }
    fn flush(&self) {}
}

fn settings(request_timeout: Duration) -> SettingsSource {
    let nodes = Arc::new(WorkerNodes::default());
    let losses = Arc::new(NodeLosses::default());
    Rc::new(move || ConnSettings {
        connect_timeout: Duration::from_secs(5),
        request_timeout,
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(100),
        limits: Limits::default(),
        access: Default::default(),
        readonly: false,
        nodes: nodes.clone(),
        losses: losses.clone(),
    })
}

/// A node that accepts connections and never answers.
async fn silent_node() -> (tokio::net::TcpListener, Arc<str>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr.into())
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_times_out_one_timeout_after_it_was_queued_not_later() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let timeout = Duration::from_millis(1000);
            let (node, addr) = silent_node().await;
            let conn = Conn::spawn(
                addr,
                Protocol::Resp2,
                Reconnect::Always,
                settings(timeout),
                Rc::new(|| {}),
            );
            let (_held, _) = node.accept().await.unwrap();
            // Queued a little after the connection's timer started: a timer
            // that waited one more whole period from its first firing would
            // fail the request about 0.9 s late.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (tx, mut rx) = mpsc::unbounded_channel();
            let target: Rc<dyn ReplySink> = Rc::new(Deliveries(tx));
            let queued = Instant::now();
            conn.send(b"*1\r\n$4\r\nPING\r\n", false, &target, 7)
                .unwrap();
            let (token, reply, at) = rx.recv().await.unwrap();
            assert_eq!(token, 7);
            assert!(
                matches!(reply, Err(BackendError::Timeout(_, t)) if t == timeout),
                "{reply:?}"
            );
            let waited = at - queued;
            assert!(waited >= timeout, "failed before its timeout: {waited:?}");
            assert!(
                waited < timeout + Duration::from_millis(500),
                "failed late: {waited:?}"
            );
        })
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_retired_idle_connection_closes_at_once() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (node, addr) = silent_node().await;
            let conn = Conn::spawn(
                addr,
                Protocol::Resp2,
                Reconnect::Always,
                settings(Duration::from_secs(30)),
                Rc::new(|| {}),
            );
            let (mut held, _) = node.accept().await.unwrap();
            conn.retire();
            // The node sees the connection close long before any timer.
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read(&mut held, &mut byte),
            )
            .await
            .expect("the retired connection stayed open");
            assert_eq!(read.unwrap(), 0, "expected the connection to close");
            let (tx, _rx) = mpsc::unbounded_channel();
            let target: Rc<dyn ReplySink> = Rc::new(Deliveries(tx));
            assert!(
                conn.send(b"*1\r\n$4\r\nPING\r\n", false, &target, 1)
                    .is_err(),
                "a retired, closed connection takes no more requests"
            );
        })
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn after_a_sibling_connection_is_lost_requests_wait_for_a_ping() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (node, addr) = silent_node().await;
            let settings = settings(Duration::from_secs(30));
            let spawn = || {
                let settings = settings.clone();
                Conn::spawn(
                    addr.clone(),
                    Protocol::Resp2,
                    Reconnect::Always,
                    settings,
                    Rc::new(|| {}),
                )
            };
            let (first, second) = (spawn(), spawn());
            let (lost_side, _) = node.accept().await.unwrap();
            let (mut node_side, _) = node.accept().await.unwrap();
            // The node drops one connection: the other is suspect.
            drop(lost_side);
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(first);

            let (tx, mut rx) = mpsc::unbounded_channel();
            let target: Rc<dyn ReplySink> = Rc::new(Deliveries(tx));
            let get = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            second.send(get, false, &target, 1).unwrap();
            let (token, reply, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("the request was sent to the suspect node")
                .unwrap();
            assert_eq!(token, 1);
            assert!(
                matches!(reply, Err(BackendError::Unreachable(_))),
                "not sent, so not 'may have run': {reply:?}"
            );
            let mut got = vec![0u8; PING.len()];
            node_side.read_exact(&mut got).await.unwrap();
            assert_eq!(got, PING, "the suspect node is pinged instead");

            // The node answers: requests flow again.
            node_side.write_all(b"+PONG\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            second.send(get, false, &target, 2).unwrap();
            let mut got = vec![0u8; get.len()];
            node_side.read_exact(&mut got).await.unwrap();
            assert_eq!(got, get);
            node_side.write_all(b"$1\r\nv\r\n").await.unwrap();
            let (token, reply, _) = rx.recv().await.unwrap();
            assert_eq!(
                (token, reply.unwrap()),
                (2, Bytes::from_static(b"$1\r\nv\r\n"))
            );
        })
        .await;
}
