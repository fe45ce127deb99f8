//! Per-worker listening sockets (`SO_REUSEPORT`, so the kernel spreads new
//! clients across workers) and the accept loop with protected mode and the
//! client limit; at shutdown, the wait for this worker's sessions to drain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::frontend::client_errors::{self, ClientError};
use crate::net::Stream;
use crate::worker::Worker;

/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// How long past the grace period a stopping worker waits for its
/// sessions, which close themselves at the end of it (and then run their
/// own clean-up: subscriptions, blocked commands).
const GRACE_MARGIN: Duration = Duration::from_secs(1);

/// The refusal of protected mode, as redis-server's (worded for keyway).
const PROTECTED_MODE: &[u8] = b"-DENIED keyway is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to keyway you may adopt one of the following solutions: 1) Set a password for the default user with auth.password (or the KEYWAY_PASSWORD environment variable) in keyway's configuration, then restart keyway or send it SIGHUP. 2) Define ACL users with auth.users or auth.acl_file and give the default user a password or turn it off. 3) Disable protected mode with auth.protected_mode = false, but MAKE SURE keyway is not publicly accessible from the internet if you do so. NOTE: You only need to do one of the above things in order for keyway to start accepting connections from the outside.\r\n";

/// Whether protected mode refuses a client from `peer`: it is on, the
/// default user needs no password, and the client is not on loopback.
fn protected(worker: &Worker, peer: SocketAddr) -> bool {
    worker.live().client_auth.protected_mode
        && !crate::acl::is_local(peer.ip())
        && worker.shared.acl.users().open()
}

/// Writes `refusal` to a client keyway does not serve, then closes it.
fn refuse(stream: Stream, refusal: &'static [u8]) {
    tokio::task::spawn_local(async move {
        let _ = stream.write_all(&mut Bytes::from_static(refusal)).await;
    });
}

/// A non-blocking listener on `addr` that other workers can bind too.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Accepts clients and runs `serve` for each until `shutdown` is true; then
/// waits for this worker's sessions to drain, at most the grace period
/// (`proxy.shutdown_grace_s`) and a margin.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Rc<Worker>, Stream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let live = Rc::new(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok((tcp, peer)) => (Stream::from_tcp(tcp), peer),
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if protected(&worker, peer) {
            crate::metrics::auth_failed("protected_mode");
            client_errors::log(ClientError::ProtectedMode, peer, &"");
            refuse(stream, PROTECTED_MODE);
            continue;
        }
        let max_clients = worker.live().max_clients.get();
        if !worker.shared.registry.admit(max_clients) {
            crate::metrics::client_rejected();
            client_errors::log(ClientError::MaxClients, peer, &max_clients);
            refuse(stream, b"-ERR max number of clients reached\r\n");
            continue;
        }
        crate::metrics::client_accepted();
        let _ = stream.set_nodelay(true);
        let session = serve(worker.clone(), stream, peer);
        let live = live.clone();
        let worker = worker.clone();
        tokio::task::spawn_local(async move {
            session.await;
            worker.shared.registry.left();
            drop(live);
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + worker.live().shutdown_grace + GRACE_MARGIN;
    while Rc::strong_count(&live) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(remaining = Rc::strong_count(&live) - 1, "worker stopped");
}
