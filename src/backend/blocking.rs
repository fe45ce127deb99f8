//! Dedicated connections for blocking commands (`BLPOP`, `XREAD BLOCK`, ...):
//! a blocked command would stall every request behind it on a shared
//! connection, so each blocked client gets a connection of its own, from a
//! bounded per-worker pool, for exactly one command. No request timeout
//! applies: `BLPOP k 0` may wait forever.
//!
//! When the client leaves, the session signals [`Abandon`]: keyway asks the
//! node, on a connection of its own, to `CLIENT UNBLOCK` the dedicated
//! connection (whose id it learned with `CLIENT ID` when it opened it). The
//! node then either answers the command as timed out, or had already
//! served it: that reply is still read and handed back
//! ([`Outcome::Abandoned`]), so the caller can put the element back
//! ([`super::giveback`]). Either way nothing is popped for a client that is
//! gone. Closing the connection instead is not safe: a node that pops an
//! element for the command and reads the close before it wrote the reply
//! drops the reply, and the element with it. Only when the unblock cannot
//! be sent (a node that refuses `CLIENT UNBLOCK` to keyway's user) is the
//! connection half-closed, as a last resort. A connection whose command
//! completed goes back to a small idle list.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::net::Stream;
use crate::protocol::{Limits, Protocol, ReplyScanner, Value};
use crate::stats::backends::OpenConnection;

use super::connect::{connect, round_trip};
use super::settings::SettingsSource;
use super::{control, BackendError};

/// Idle connections kept per node and protocol.
const IDLE_PER_NODE: usize = 8;

/// How long a reply the node sent before it saw an abandoned command's
/// close may take to arrive.
const ABANDON_LINGER: Duration = Duration::from_secs(1);

/// Tells the running blocking commands of a client (one, or one per master
/// for `WAIT`) that it left.
#[derive(Default)]
pub struct Abandon {
    left: Cell<bool>,
    notify: Notify,
}

impl Abandon {
    /// The client left: stop waiting. Every command checks `left` before
    /// each wait (all on one thread), so none can miss it.
    pub fn signal(&self) {
        self.left.set(true);
        self.notify.notify_waiters();
    }
}

/// How a blocking command ended.
#[derive(Debug)]
pub enum Outcome {
    /// The node's reply.
    Reply(Bytes),
    /// The client left first; the reply the node had already sent, if any.
    Abandoned(Option<Bytes>),
}

/// A dedicated connection and its `CLIENT ID` on the node (`None` when
/// the node would not say).
struct Dedicated {
    stream: Stream,
    id: Option<u64>,
    /// Counts the connection as open to its node while it lives.
    _open: OpenConnection,
}

/// Idle connections by node address and protocol.
type IdleStreams = HashMap<(Arc<str>, Protocol), Vec<Dedicated>>;

/// A worker's dedicated connections; see the module docs.
pub struct BlockingPool {
    settings: SettingsSource,
    max: usize,
    in_use: Cell<usize>,
    idle: RefCell<IdleStreams>,
}

/// A place in the pool, held while a command runs; freed on drop.
pub struct Permit(Rc<BlockingPool>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_use.set(self.0.in_use.get() - 1);
    }
}

impl BlockingPool {
    /// A pool of at most `max` connections in use at once.
    pub fn new(settings: SettingsSource, max: usize) -> Rc<BlockingPool> {
        Rc::new(BlockingPool {
            settings,
            max,
            in_use: Cell::new(0),
            idle: RefCell::default(),
        })
    }

    /// The error a client gets when all `max` connections are in use.
    pub fn exhausted(&self) -> String {
        format!(
            "ERR keyway has {} dedicated connections (blocked, waiting or watching clients) on this worker, its limit (backend.max_blocking_connections); retry later",
            self.max
        )
    }

    /// A place for one command, or `None` when all `max` are in use.
    pub fn try_acquire(self: &Rc<Self>) -> Option<Permit> {
        if self.in_use.get() >= self.max {
            return None;
        }
        self.in_use.set(self.in_use.get() + 1);
        Some(Permit(self.clone()))
    }

    /// Runs `request` (after `before`, a command whose one reply is
    /// skipped: `ASKING`, or `PING` for `WAIT`) on a dedicated
    /// connection to `addr` speaking `proto`, until its reply or `abandon`.
    pub async fn run(
        &self,
        _permit: Permit,
        addr: Arc<str>,
        proto: Protocol,
        request: Bytes,
        before: Option<&'static [u8]>,
        abandon: &Abandon,
    ) -> Result<Outcome, BackendError> {
        if abandon.left.get() {
            return Ok(Outcome::Abandoned(None));
        }
        let settings = (self.settings)();
        let conn = match self.idle_conn(&addr, proto) {
            Some(conn) => conn,
            None => {
                let options = settings.connect_options(proto);
                let stream = connect(&addr, &options)
                    .await
                    .map_err(|e| BackendError::of_connect(&addr, &e))?;
                let id = client_id(&stream, options.limits).await;
                Dedicated {
                    stream,
                    id,
                    _open: settings.nodes.node(&addr).opened(),
                }
            }
        };
        let outcome = self
            .exchange(&addr, &conn, &request, before, abandon, settings.limits)
            .await
            .map_err(|_| BackendError::Lost(addr.clone()))?;
        if let Outcome::Reply(_) = outcome {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry((addr, proto)).or_default();
            if list.len() < IDLE_PER_NODE {
                list.push(conn);
            }
        }
        Ok(outcome)
    }

    /// An idle connection that is still open and has nothing unread.
    fn idle_conn(&self, addr: &Arc<str>, proto: Protocol) -> Option<Dedicated> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&(addr.clone(), proto))?;
        while let Some(conn) = list.pop() {
            if conn.stream.is_idle() {
                return Some(conn);
            }
        }
        None
    }

    /// Asks the node at `addr`, on a short connection of its own, to end
    /// the blocked command of client `id` as if it timed out. False when
    /// that could not be done.
    async fn unblock(&self, addr: &str, id: u64) -> bool {
        let settings = (self.settings)();
        let id = id.to_string();
        let command: &[&[u8]] = &[b"CLIENT", b"UNBLOCK", id.as_bytes()];
        let reply = control::query(addr, command, settings.connect_timeout, &settings.access);
        // `:1` unblocked it; `:0` it was answered already. Either way its
        // reply is on its way, ahead of this one.
        matches!(reply.await, Ok(Value::Int(_)))
    }

    /// Writes the request and reads its reply (after `ASKING`'s, if sent).
    /// On `abandon`, unblocks the command (see the module docs) and reads
    /// on for its reply, for at most [`ABANDON_LINGER`].
    async fn exchange(
        &self,
        addr: &str,
        conn: &Dedicated,
        request: &[u8],
        before: Option<&'static [u8]>,
        abandon: &Abandon,
        limits: Limits,
    ) -> io::Result<Outcome> {
        let stream = &conn.stream;
        let before = before.unwrap_or_default();
        let mut out = BytesMut::with_capacity(before.len() + request.len());
        out.extend_from_slice(before);
        out.extend_from_slice(request);
        stream.write_all(&mut out).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut scanner = ReplyScanner::new(limits);
        let mut skip = usize::from(!before.is_empty());
        let linger = tokio::time::sleep(Duration::MAX);
        tokio::pin!(linger);
        let mut abandoned = false;
        loop {
            if abandon.left.get() && !abandoned {
                abandoned = true;
                let unblocked = match conn.id {
                    Some(id) => self.unblock(addr, id).await,
                    None => false,
                };
                if !unblocked {
                    stream.shutdown_write()?;
                }
                linger
                    .as_mut()
                    .reset(tokio::time::Instant::now() + ABANDON_LINGER);
            }
            tokio::select! {
                r = stream.readable() => r?,
                _ = abandon.notify.notified(), if !abandoned => continue,
                _ = &mut linger => return Ok(Outcome::Abandoned(None)),
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(buf.len().max(4096));
            }
            match stream.read_some(&mut buf)? {
                None => continue,
                Some(0) if abandoned => return Ok(Outcome::Abandoned(None)),
                Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some(_) => {}
            }
            while let Some(len) = scanner
                .scan(&buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                let reply = buf.split_to(len).freeze();
                if skip > 0 {
                    skip -= 1;
                } else if abandoned {
                    return Ok(Outcome::Abandoned(Some(reply)));
                } else {
                    return Ok(Outcome::Reply(reply));
                }
            }
        }
    }
}

/// The connection's `CLIENT ID` on the node, or `None` when the node will
/// not say (an ACL user without it): abandoning then falls back to closing.
async fn client_id(stream: &Stream, limits: Limits) -> Option<u64> {
    let reply = round_trip(stream, &[b"CLIENT", b"ID"], limits).await.ok()?;
    let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
