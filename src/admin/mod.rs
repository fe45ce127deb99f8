//! The admin HTTP endpoint (`admin.listen`): `/metrics` for Prometheus,
//! `/health/live` and `/health/ready` for load balancers and
//! orchestrators, `/` an index. Served on the control thread, never on a
//! worker, one request per connection, each bounded in size
//! ([`http::MAX_HEAD`]), in time ([`DEADLINE`]) and in number
//! ([`MAX_CONNECTIONS`]), so a slow or hostile client of this port can
//! neither exhaust keyway nor stall the workers.

pub mod http;
pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::worker::Shared;

use http::{response, Request, TEXT};

/// Time a connection gets to send its request and take the response.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 64;

const INDEX: &str = "keyway admin endpoint\n\n\
    /metrics       Prometheus metrics\n\
    /health/live   200 while the process serves\n\
    /health/ready  200 when every slot has a reachable master and keyway is not draining; 503 and the reason otherwise\n";

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, handle: PrometheusHandle) {
    let handle = Arc::new(handle);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            // Out of file descriptors, say: try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "admin endpoint busy; connection closed");
            continue;
        };
        let (shared, handle) = (shared.clone(), handle.clone());
        tokio::spawn(async move {
            let served = tokio::time::timeout(DEADLINE, answer(socket, &shared, &handle)).await;
            if served.is_err() {
                debug!(%peer, "admin request not completed in time; connection closed");
            }
            drop(permit);
        });
    }
}

/// Reads one request head from `socket` and answers it.
async fn answer(mut socket: TcpStream, shared: &Shared, handle: &PrometheusHandle) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let reply = loop {
        match http::parse(&buf) {
            Ok(Some(request)) => break route(&request, shared, handle),
            Ok(None) => {}
            Err(refusal) => break refusal.response(),
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let _ = socket.write_all(&reply).await;
    let _ = socket.shutdown().await;
}

/// The response to `request`.
fn route(request: &Request, shared: &Shared, handle: &PrometheusHandle) -> Vec<u8> {
    let head_only = request.head_only;
    match request.path {
        "/" => response(200, "OK", TEXT, INDEX.as_bytes(), head_only),
        "/metrics" => {
            let text = scrape::render(shared, handle);
            let kind = "text/plain; version=0.0.4; charset=utf-8";
            response(200, "OK", kind, text.as_bytes(), head_only)
        }
        "/health/live" => response(200, "OK", TEXT, b"live\n", head_only),
        "/health/ready" => match shared.not_ready() {
            None => response(200, "OK", TEXT, b"ready\n", head_only),
            Some(reason) => {
                let body = format!("not ready: {reason}\n");
                response(503, "Service Unavailable", TEXT, body.as_bytes(), head_only)
            }
        },
        _ => response(404, "Not Found", TEXT, b"not found; see /\n", head_only),
    }
}
