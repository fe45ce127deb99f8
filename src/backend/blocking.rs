//! Dedicated connections for blocking commands (`BLPOP`, `XREAD BLOCK`, ...):
//! a blocked command would stall every request behind it on a shared
//! connection, so each blocked client gets a connection of its own, from a
//! bounded per-worker pool, for exactly one command. No request timeout
//! applies: `BLPOP k 0` may wait forever.
//!
//! The command runs inside a future the session can drop: dropping it (the
//! client left) closes the connection at once, so the node unblocks it and
//! never pops an element for a client that is gone. A connection whose
//! command completed goes back to a small idle list for the next one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use crate::net;
use crate::protocol::{Protocol, ReplyScanner};

use super::conn::{handshake, ConnSettings, ASKING};
use super::BackendError;

/// Idle connections kept per node and protocol.
const IDLE_PER_NODE: usize = 8;

/// Idle connections by node address and protocol.
type IdleStreams = HashMap<(Arc<str>, Protocol), Vec<TcpStream>>;

/// A worker's dedicated connections; see the module docs.
pub struct BlockingPool {
    settings: Rc<ConnSettings>,
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
    pub fn new(settings: Rc<ConnSettings>, max: usize) -> Rc<BlockingPool> {
        Rc::new(BlockingPool {
            settings,
            max,
            in_use: Cell::new(0),
            idle: RefCell::default(),
        })
    }

    /// The most connections in use at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one command, or `None` when all `max` are in use.
    pub fn try_acquire(self: &Rc<Self>) -> Option<Permit> {
        if self.in_use.get() >= self.max {
            return None;
        }
        self.in_use.set(self.in_use.get() + 1);
        Some(Permit(self.clone()))
    }

    /// Runs `request` (with `ASKING` first when `asking`) on a dedicated
    /// connection to `addr` speaking `proto`, and returns its reply.
    pub async fn run(
        &self,
        _permit: Permit,
        addr: Arc<str>,
        proto: Protocol,
        request: Bytes,
        asking: bool,
    ) -> Result<Bytes, BackendError> {
        let stream = match self.idle_stream(&addr, proto) {
            Some(stream) => stream,
            None => self
                .connect(&addr, proto)
                .await
                .map_err(|_| BackendError::Unreachable(addr.clone()))?,
        };
        let reply = self
            .exchange(&stream, &request, asking)
            .await
            .map_err(|_| BackendError::Lost(addr.clone()))?;
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry((addr, proto)).or_default();
        if list.len() < IDLE_PER_NODE {
            list.push(stream);
        }
        Ok(reply)
    }

    /// An idle connection that is still open and has nothing unread.
    fn idle_stream(&self, addr: &Arc<str>, proto: Protocol) -> Option<TcpStream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&(addr.clone(), proto))?;
        while let Some(stream) = list.pop() {
            let mut probe = [0u8; 1];
            if matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            {
                return Some(stream);
            }
        }
        None
    }

    async fn connect(&self, addr: &str, proto: Protocol) -> io::Result<TcpStream> {
        let settings = &self.settings;
        tokio::time::timeout(settings.connect_timeout, async {
            let stream = TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            handshake(&stream, proto, settings).await?;
            Ok(stream)
        })
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Writes the request and reads its reply (after `ASKING`'s, if sent).
    async fn exchange(
        &self,
        stream: &TcpStream,
        request: &[u8],
        asking: bool,
    ) -> io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(request.len() + ASKING.len());
        if asking {
            out.extend_from_slice(ASKING);
        }
        out.extend_from_slice(request);
        net::write_all(stream, &mut out).await?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut scanner = ReplyScanner::new(self.settings.limits);
        let mut skip = usize::from(asking);
        loop {
            stream.readable().await?;
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(buf.len().max(4096));
            }
            match net::read_some(stream, &mut buf)? {
                None => continue,
                Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Some(_) => {}
            }
            while let Some(len) = scanner
                .scan(&buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                let reply = buf.split_to(len).freeze();
                if skip == 0 {
                    return Ok(reply);
                }
                skip -= 1;
            }
        }
    }
}
