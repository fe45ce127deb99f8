//! Per-worker listening sockets (`SO_REUSEPORT`, so the kernel spreads new
//! clients across workers), plain and TLS, and the accept loop with
//! protected mode, the client limit and the TLS handshake; at shutdown,
//! the wait for this worker's sessions to drain.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::frontend::client_errors::{self, ClientError};
use crate::net::Stream;
use crate::tls::ServerTls;
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

/// Writes `refusal` to a client keyway does not serve: what the socket
/// takes now (a refusal is short), then the client is closed.
fn refuse(stream: &Stream, refusal: &'static [u8]) {
    let _ = stream.write_some(&mut Bytes::from_static(refusal));
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

/// A worker's listening sockets: the plain one, the TLS one, or both.
pub struct Listeners {
    /// `proxy.listen`.
    pub plain: Option<TcpListener>,
    /// `tls.listen`, and the material its handshakes use.
    pub tls: Option<(TcpListener, Arc<ServerTls>)>,
}

/// An accepted socket, and the TLS material when it came on `tls.listen`.
type Accepted = (io::Result<(TcpStream, SocketAddr)>, Option<Arc<ServerTls>>);

impl Listeners {
    /// The next connection on either listener; `tls_first` says which one
    /// is asked first (alternated, so neither starves the other).
    fn poll_accept(&self, cx: &mut Context<'_>, tls_first: bool) -> Poll<Accepted> {
        for tls in [tls_first, !tls_first] {
            let accepted = match (tls, &self.plain, &self.tls) {
                (false, Some(listener), _) => listener.poll_accept(cx).map(|a| (a, None)),
                (true, _, Some((listener, material))) => listener
                    .poll_accept(cx)
                    .map(|a| (a, Some(material.clone()))),
                _ => Poll::Pending,
            };
            if accepted.is_ready() {
                return accepted;
            }
        }
        Poll::Pending
    }
}

/// Accepts clients on `listeners` and runs `serve` for each until
/// `shutdown` is true; then waits for this worker's sessions to drain, at
/// most the grace period (`proxy.shutdown_grace_s`) and a margin. A TLS
/// client is admitted (`client.max_clients`) before its handshake, which
/// has `client.handshake_timeout_ms` to finish: half-open connections
/// cannot pile up.
pub async fn accept_loop<F, Fut>(
    listeners: Listeners,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(Rc<Worker>, Stream, SocketAddr) -> Fut + Copy + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let live = Rc::new(());
    let mut tls_first = false;
    loop {
        tls_first = !tls_first;
        let (accepted, tls) = tokio::select! {
            accepted = poll_fn(|cx| listeners.poll_accept(cx, tls_first)) => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(tls) = tls else {
            let stream = Stream::from_tcp(tcp);
            if admit(&worker, &stream, peer) {
                spawn_session(&worker, &live, serve(worker.clone(), stream, peer));
            }
            continue;
        };
        let max_clients = worker.live().max_clients.get();
        if !worker.shared.registry.admit(max_clients) {
            crate::metrics::client_rejected();
            client_errors::log(ClientError::MaxClients, peer, &max_clients);
            continue;
        }
        let (worker, live) = (worker.clone(), live.clone());
        tokio::task::spawn_local(async move {
            serve_tls(&worker, tcp, peer, &tls, serve).await;
            worker.shared.registry.left();
            drop(live);
        });
    }
    drop(listeners);
    let deadline = tokio::time::Instant::now() + worker.live().shutdown_grace + GRACE_MARGIN;
    while Rc::strong_count(&live) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(remaining = Rc::strong_count(&live) - 1, "worker stopped");
}

/// A TLS client, admitted already: its handshake, within
/// `client.handshake_timeout_ms`, then protected mode, then its session.
/// A failed handshake is counted by reason and logged at debug level.
async fn serve_tls<F, Fut>(
    worker: &Rc<Worker>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: &ServerTls,
    serve: F,
) where
    F: Fn(Rc<Worker>, Stream, SocketAddr) -> Fut,
    Fut: Future<Output = ()>,
{
    let timeout = worker.live().handshake_timeout;
    let (reason, why) =
        match tokio::time::timeout(timeout, Stream::accept_tls(tcp, tls.config())).await {
            Ok(Ok(stream)) => {
                if !refused(worker, &stream, peer) {
                    crate::metrics::client_accepted();
                    serve(worker.clone(), stream, peer).await;
                }
                return;
            }
            Ok(Err(e)) => (e.reason(), e.to_string()),
            Err(_) => ("timeout", format!("not finished within {timeout:?}")),
        };
    crate::metrics::tls_handshake_failed(reason);
    debug!(%peer, reason, "TLS handshake failed: {why}");
}

/// The admission of a plain client: protected mode, then the client
/// limit. False (and the client told why) when it is refused.
fn admit(worker: &Worker, stream: &Stream, peer: SocketAddr) -> bool {
    if refused(worker, stream, peer) {
        return false;
    }
    let max_clients = worker.live().max_clients.get();
    if !worker.shared.registry.admit(max_clients) {
        crate::metrics::client_rejected();
        client_errors::log(ClientError::MaxClients, peer, &max_clients);
        refuse(stream, b"-ERR max number of clients reached\r\n");
        return false;
    }
    crate::metrics::client_accepted();
    true
}

/// Protected mode's refusal, written to the client; true when it applies.
fn refused(worker: &Worker, stream: &Stream, peer: SocketAddr) -> bool {
    if !protected(worker, peer) {
        return false;
    }
    crate::metrics::auth_failed("protected_mode");
    client_errors::log(ClientError::ProtectedMode, peer, &"");
    refuse(stream, PROTECTED_MODE);
    true
}

/// Runs an admitted plain client's session as a task of its own.
fn spawn_session(worker: &Rc<Worker>, live: &Rc<()>, session: impl Future<Output = ()> + 'static) {
    let live = live.clone();
    let worker = worker.clone();
    tokio::task::spawn_local(async move {
        session.await;
        worker.shared.registry.left();
        drop(live);
    });
}
