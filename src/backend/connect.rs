//! The one way to open a connection to a node, for every kind of backend
//! connection (shared, dedicated, subscriber, control query): the same
//! steps, in the same order, all within the connect timeout, and one error
//! type that names the node and the step that failed.
//!
//! The steps ([`Step`]), in order:
//!
//! 1. [`Step::Connect`]: TCP connect, then socket options (`TCP_NODELAY`).
//! 2. [`Step::Tls`]: the TLS handshake, when `[cluster.tls]` is on,
//!    checking the node's certificate as `cluster.tls.server_name` or the
//!    node's own host (see [`crate::tls`]).
//! 3. [`Step::Auth`]: `AUTH [user] password` when the cluster needs
//!    credentials (`cluster.user`, `cluster.password`), before anything else
//!    is sent: a node with `requirepass` refuses even `HELLO` without them.
//!    The password is read now (a password file at every connect).
//! 4. [`Step::Hello`]: `HELLO 3` for a RESP3 connection; nothing for RESP2.
//! 5. [`Step::Readonly`]: `READONLY` for a shared data connection (it may
//!    reach a replica; a master ignores it), its answer awaited: a node that
//!    accepts the TCP connection but answers nothing (stopped, or dying as
//!    it accepted) is then one keyway cannot connect to, so requests are
//!    held for its shard (see [`crate::hold`]) instead of being sent into a
//!    connection that fails them.
//! 6. *(CLIENT SETNAME would go here, last, once the connection speaks its
//!    protocol.)*
//!
//! The step in italics is not implemented; it will be one more [`Step`]
//! variant and one more field in [`ConnectOptions`].

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::{info, warn};

use crate::config::{ClusterAuth, NodeAccess};
use crate::net::Stream;
use crate::protocol::{encode, Limits, Protocol, ProtocolError, ReplyScanner};

/// How to open a connection.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The reply protocol the connection will speak: RESP3 says `HELLO 3`.
    pub protocol: Protocol,
    /// Time allowed for all the steps together.
    pub timeout: Duration,
    /// Bounds for the replies read during the handshake.
    pub limits: Limits,
    /// Credentials and TLS, when the cluster needs them.
    pub access: NodeAccess,
    /// Say `READONLY` (a shared data connection).
    pub readonly: bool,
}

/// A step of opening a connection; see the module docs for the order and
/// the step still to come (CLIENT SETNAME).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// TCP connect and socket options.
    Connect,
    /// The TLS handshake.
    Tls,
    /// `AUTH`, with the cluster's credentials.
    Auth,
    /// `HELLO 3`, switching the connection to RESP3.
    Hello,
    /// `READONLY`, so a replica serves reads.
    Readonly,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::Tls => "TLS handshake",
            Step::Auth => "AUTH",
            Step::Hello => "HELLO 3",
            Step::Readonly => "READONLY",
        })
    }
}

/// Why a connection could not be opened: the node, the step, the cause.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {addr} ({step}): {cause}")]
pub struct ConnectError {
    /// The node's address.
    pub addr: String,
    /// The step that failed (or was running when the time ran out).
    pub step: Step,
    /// What went wrong.
    pub cause: Cause,
}

/// What went wrong in a [`Step`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// A socket error, or the node closed the connection.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The node answered with something other than what the step needs
    /// (an error reply: e.g. a node that cannot speak RESP3).
    #[error("the node answered {0}")]
    Refused(String),
    /// The node's reply was not valid RESP.
    #[error("the node sent a malformed reply: {0}")]
    BadReply(ProtocolError),
    /// The TLS handshake failed (a certificate, a version), or the node
    /// has no name to check its certificate against.
    #[error("{0}")]
    Tls(String),
    /// The password could not be read (`cluster.password_file`).
    #[error("no password: {0}")]
    Password(io::Error),
    /// [`ConnectOptions::timeout`] ran out.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// Opens a connection to `addr` and runs every step of the module docs,
/// all within `options.timeout`.
pub async fn connect(addr: &str, options: &ConnectOptions) -> Result<Stream, ConnectError> {
    let attempt = Attempt {
        addr,
        timeout: options.timeout,
        deadline: Instant::now() + options.timeout,
    };
    let stream = attempt
        .step(Step::Connect, async {
            let stream = Stream::connect_tcp(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(stream)
        })
        .await?;
    let stream = match &options.access.tls {
        None => stream,
        Some(tls) => {
            attempt
                .step(Step::Tls, async {
                    let name = tls.server_name(host_of(addr)).map_err(Cause::Tls)?;
                    stream
                        .connect_tls(tls.config(), name)
                        .await
                        .map_err(|e| Cause::Tls(e.to_string()))
                })
                .await?
        }
    };
    if let Some(auth) = &options.access.auth {
        let authenticated = attempt
            .step(Step::Auth, authenticate(&stream, auth, options.limits))
            .await;
        log_auth(addr, authenticated.as_ref().err());
        authenticated?;
    }
    if options.protocol == Protocol::Resp3 {
        attempt
            .step(Step::Hello, hello3(&stream, options.limits))
            .await?;
    }
    if options.readonly {
        attempt
            .step(Step::Readonly, readonly(&stream, options.limits))
            .await?;
    }
    // (CLIENT SETNAME: here.)
    Ok(stream)
}

/// The host of `host:port` (`[v6]:port` too), as certificates name it.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One call of [`connect`]: where to, and until when.
struct Attempt<'a> {
    addr: &'a str,
    timeout: Duration,
    deadline: Instant,
}

impl Attempt<'_> {
    /// Runs one step, failing it as `step` when it fails or when the time
    /// for the whole attempt runs out.
    async fn step<T>(
        &self,
        step: Step,
        run: impl Future<Output = Result<T, Cause>>,
    ) -> Result<T, ConnectError> {
        let cause = match tokio::time::timeout_at(self.deadline, run).await {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(cause)) => cause,
            Err(_) => Cause::TimedOut(self.timeout),
        };
        Err(ConnectError {
            addr: self.addr.to_string(),
            step,
            cause,
        })
    }
}

/// The nodes whose last `AUTH` failed, with the reason.
static AUTH_FAILING: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Logs a failed `AUTH` once per node and reason (every worker and every
/// kind of connection fails the same way, over and over while it retries),
/// and the first success after one. Never the password.
fn log_auth(addr: &str, failure: Option<&ConnectError>) {
    let mut failing = AUTH_FAILING.lock().unwrap_or_else(|e| e.into_inner());
    match failure {
        Some(e) => {
            let reason = e.cause.to_string();
            if failing.get(addr) != Some(&reason) {
                warn!(node = addr, "authentication to {addr} failed: {reason}; check cluster.user and cluster.password (keyway keeps retrying)");
                failing.insert(addr.to_string(), reason);
            }
        }
        None => {
            if failing.remove(addr).is_some() {
                info!(node = addr, "authentication to {addr} succeeds again");
            }
        }
    }
}

/// `HELLO 3`, sent first on a RESP3 connection.
const HELLO3: &[&[u8]] = &[b"HELLO", b"3"];

/// Sends `AUTH [user] password`; the reply must be `+OK`.
async fn authenticate(stream: &Stream, auth: &ClusterAuth, limits: Limits) -> Result<(), Cause> {
    let password = auth.password().map_err(Cause::Password)?;
    let mut command: Vec<&[u8]> = vec![b"AUTH"];
    if let Some(user) = &auth.user {
        command.push(user.as_bytes());
    }
    command.push(password.as_bytes());
    let reply = round_trip(stream, &command, limits).await?;
    match &reply[..] {
        b"+OK\r\n" => Ok(()),
        other => Err(Cause::Refused(
            String::from_utf8_lossy(other).trim_end().to_string(),
        )),
    }
}

/// Sends `HELLO 3` and reads its reply, which must be a map and nothing
/// more (an error means the node cannot speak RESP3, and the connection is
/// not used).
async fn hello3(stream: &Stream, limits: Limits) -> Result<(), Cause> {
    let buf = round_trip(stream, HELLO3, limits).await?;
    match buf.first() {
        Some(b'%') => Ok(()),
        _ => Err(Cause::Refused(
            String::from_utf8_lossy(&buf).trim_end().to_string(),
        )),
    }
}

/// Any answer will do: the node is alive. One that refuses `READONLY` (an
/// ACL user without it) still serves its own slots as a master; its
/// replicas then answer reads with `MOVED`, which keyway follows.
async fn readonly(stream: &Stream, limits: Limits) -> Result<(), Cause> {
    round_trip(stream, &[b"READONLY"], limits).await.map(drop)
}

/// Sends `command` and reads its one reply, which must be all the node
/// sent (nothing else is in flight during the handshake).
pub(super) async fn round_trip(
    stream: &Stream,
    command: &[&[u8]],
    limits: Limits,
) -> Result<BytesMut, Cause> {
    let mut out = BytesMut::new();
    encode::command(&mut out, command);
    stream.write_all(&mut out).await?;
    let mut buf = BytesMut::with_capacity(512);
    let mut scanner = ReplyScanner::new(limits);
    let len = loop {
        stream.readable().await?;
        buf.reserve(512);
        match stream.read_some(&mut buf)? {
            None => continue,
            Some(0) => {
                let closed = "the node closed the connection";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, closed).into());
            }
            Some(_) => {}
        }
        match scanner.scan(&buf) {
            Ok(Some(len)) => break len,
            Ok(None) => {}
            Err(e) => return Err(Cause::BadReply(e)),
        }
    };
    if len != buf.len() {
        let reply = String::from_utf8_lossy(&buf[..len]).trim_end().to_string();
        return Err(Cause::Refused(format!("{reply}, then more than one reply")));
    }
    Ok(buf)
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
