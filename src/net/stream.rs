//! [`Stream`]: a connected socket, owned, with readiness-based I/O on
//! `&self`, so a connection's reader and writer can share it from one task
//! without splitting it.
//!
//! Everything above `net` does its I/O through this type and never names
//! the socket type inside. Today the only kind is plain TCP; each method is
//! a thin `#[inline]` wrapper (one `match`, no allocation, no dynamic
//! dispatch).
//!
//! ## How TLS fits
//!
//! TLS becomes one more variant, `Tls { tcp, conn: RefCell<rustls::Connection> }`,
//! behind the same methods, so sessions and connections do not change:
//!
//! - readiness (`poll_read_ready`, `readable`, `writable`) is the socket's,
//!   except that `poll_read_ready`/`readable` are ready at once while rustls
//!   holds plaintext not yet handed out;
//! - `read_some` reads the TLS records the socket has (`read_tls` from a
//!   `try_read`), decrypts them (`process_new_packets`), then copies the
//!   plaintext into the caller's buffer; the "short read clears readiness"
//!   rule applies to the socket read;
//! - `write_some` hands the caller's bytes to rustls (one record per flushed
//!   batch, as callers already write whole batches) and writes the records
//!   (`write_tls` into a `try_write`); it reports done only once rustls has
//!   nothing left to send;
//! - `shutdown_write` sends `close_notify` before the TCP half-close, and
//!   `is_idle` also requires that rustls holds no unread plaintext.
//!
//! The TLS handshake itself happens before a `Stream` is handed out:
//! `backend::connect` for nodes, the listener for clients.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// A connected socket; see the module docs.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
}

/// The kinds of stream. TLS will be the second.
#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
}

impl Stream {
    /// Wraps an accepted or connected TCP socket.
    #[inline]
    pub fn from_tcp(tcp: TcpStream) -> Stream {
        Stream {
            inner: Inner::Tcp(tcp),
        }
    }

    /// Opens a plain TCP connection to `addr` (`host:port`, resolved).
    pub async fn connect_tcp(addr: &str) -> io::Result<Stream> {
        TcpStream::connect(addr).await.map(Stream::from_tcp)
    }

    /// Sets `TCP_NODELAY`: requests and replies go out as soon as they are
    /// written (keyway batches them itself).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.set_nodelay(nodelay),
        }
    }

    /// Polls until there may be something to read (or an error to report).
    #[inline]
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.poll_read_ready(cx),
        }
    }

    /// Waits until there may be something to read.
    #[inline]
    pub async fn readable(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.readable().await,
        }
    }

    /// Waits until the socket may take more bytes.
    #[inline]
    pub async fn writable(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.writable().await,
        }
    }

    /// Reads what the stream has into `buf` (which must have spare capacity).
    /// `Ok(None)`: nothing to read now; `Ok(Some(0))`: the peer closed.
    ///
    /// A read that does not fill the spare capacity drained the socket, so the
    /// socket is marked not-readable right away: the next wait goes to epoll
    /// instead of a `recv` that would only fail with `EAGAIN`. Tokio keeps
    /// "read closed" across that, so a FIN that came with the data is not lost.
    #[inline]
    pub fn read_some(&self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        match &self.inner {
            Inner::Tcp(tcp) => {
                let space = buf.capacity() - buf.len();
                match tcp.try_read_buf(buf) {
                    Ok(n) => {
                        if n > 0 && n < space {
                            let _ = tcp.try_io(Interest::READABLE, || {
                                Err::<(), _>(io::ErrorKind::WouldBlock.into())
                            });
                        }
                        Ok(Some(n))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Writes as much of `out` (a `BytesMut`, or shared `Bytes`) as the
    /// socket takes now, removing it from `out`. True when `out` is empty
    /// afterwards.
    #[inline]
    pub fn write_some(&self, out: &mut impl Buf) -> io::Result<bool> {
        match &self.inner {
            Inner::Tcp(tcp) => {
                while out.has_remaining() {
                    match tcp.try_write(out.chunk()) {
                        Ok(n) => out.advance(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                Ok(true)
            }
        }
    }

    /// Writes all of `out`, waiting for the socket when it is full.
    #[inline]
    pub async fn write_all(&self, out: &mut impl Buf) -> io::Result<()> {
        while !self.write_some(out)? {
            self.writable().await?;
        }
        Ok(())
    }

    /// Half-closes: the peer reads end-of-stream, and this side can still
    /// read what the peer sends.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Tcp(tcp) => socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write),
        }
    }

    /// True when the connection is still open and has nothing unread: a
    /// pooled connection fit for reuse. Consumes a byte if there was one
    /// (the stream is then unfit anyway).
    pub fn is_idle(&self) -> bool {
        match &self.inner {
            Inner::Tcp(tcp) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// This side's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.local_addr(),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.peer_addr(),
        }
    }
}

/// The socket's descriptor (`CLIENT LIST` shows it as `fd=`).
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.as_raw_fd(),
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
