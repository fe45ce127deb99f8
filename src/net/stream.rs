//! [`Stream`]: a connected socket, owned, with readiness-based I/O on
//! `&self`, so a connection's reader and writer can share it from one task
//! without splitting it.
//!
//! Everything above `net` does its I/O through this type and never names
//! the socket type inside. Today the only kind is plain TCP; each method is
//! a thin `#[inline]` wrapper (one `match`, no allocation, no dynamic
//! dispatch).
//!
//! ## TLS
//!
//! The second kind, [`Inner::Tls`]: the socket and rustls' connection
//! state (`net::tls`), behind the same methods, so sessions and
//! connections do not change:
//!
//! - readiness is the socket's, except that the stream is readable at
//!   once while rustls holds decrypted bytes not handed out yet;
//! - `read_some` reads records (`read_tls` from `try_read`), decrypts them
//!   and copies the plaintext into the caller's buffer;
//! - `write_some` hands the caller's bytes to rustls (one record per
//!   flushed batch, as callers write whole batches) and writes the records
//!   (`write_tls` into `try_write`); it reports done only once rustls has
//!   nothing left to send, and [`Stream::wants_write`] tells a caller whose
//!   own buffer is empty that records still wait;
//! - `shutdown_write` sends `close_notify` before the TCP half-close, and
//!   `is_idle` lets TLS housekeeping (session tickets) through.
//!
//! The handshake happens before a `Stream` exists: [`Stream::accept_tls`]
//! for clients, [`Stream::connect_tls`] (from `backend::connect`) for
//! nodes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::tls::{self, HandshakeError, Tls};

/// A connected socket; see the module docs.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
}

/// The kinds of stream.
#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    Tls(TcpStream, Box<Tls>),
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

    /// Runs the server side of a TLS handshake on an accepted socket.
    pub async fn accept_tls(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
    ) -> Result<Stream, HandshakeError> {
        let tls = tls::accept(&tcp, config).await?;
        Ok(Stream {
            inner: Inner::Tls(tcp, Box::new(tls)),
        })
    }

    /// Runs the client side of a TLS handshake on a connected stream,
    /// checking the peer's certificate as `name`.
    pub async fn connect_tls(
        self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Stream, HandshakeError> {
        let tcp = match self.inner {
            Inner::Tcp(tcp) => tcp,
            Inner::Tls(..) => {
                let twice = io::Error::other("the stream speaks TLS already");
                return Err(HandshakeError::Io(twice));
            }
        };
        let tls = tls::connect(&tcp, config, name).await?;
        Ok(Stream {
            inner: Inner::Tls(tcp, Box::new(tls)),
        })
    }

    /// The socket under either kind.
    #[inline]
    fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Tcp(tcp) | Inner::Tls(tcp, _) => tcp,
        }
    }

    /// Sets `TCP_NODELAY`: requests and replies go out as soon as they are
    /// written (keyway batches them itself).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp().set_nodelay(nodelay)
    }

    /// Polls until there may be something to read (or an error to report).
    #[inline]
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Tcp(tcp) => tcp.poll_read_ready(cx),
            Inner::Tls(_, tls) if tls.has_plaintext() => Poll::Ready(Ok(())),
            Inner::Tls(tcp, _) => tcp.poll_read_ready(cx),
        }
    }

    /// Waits until there may be something to read.
    #[inline]
    pub async fn readable(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Tls(_, tls) if tls.has_plaintext() => Ok(()),
            Inner::Tcp(tcp) | Inner::Tls(tcp, _) => tcp.readable().await,
        }
    }

    /// Waits until the socket may take more bytes.
    #[inline]
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
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
                            tls::mark_drained(tcp);
                        }
                        Ok(Some(n))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Inner::Tls(tcp, tls) => tls.read_some(tcp, buf),
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
            Inner::Tls(tcp, tls) => tls.write_some(tcp, out),
        }
    }

    /// Bytes written to the stream still wait inside it (TLS records the
    /// socket did not take): a caller whose own buffer is empty must still
    /// wait for [`Stream::writable`] and call [`Stream::write_some`].
    #[inline]
    pub fn wants_write(&self) -> bool {
        match &self.inner {
            Inner::Tcp(_) => false,
            Inner::Tls(_, tls) => tls.wants_write(),
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
        if let Inner::Tls(tcp, tls) = &self.inner {
            tls.close_notify(tcp);
        }
        socket2::SockRef::from(self.tcp()).shutdown(std::net::Shutdown::Write)
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
            Inner::Tls(tcp, tls) => tls.is_idle(tcp),
        }
    }

    /// The leaf certificate a TLS peer presented (DER), if any.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.inner {
            Inner::Tcp(_) => None,
            Inner::Tls(_, tls) => tls.peer_certificate(),
        }
    }

    /// This side's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }
}

/// The socket's descriptor (`CLIENT LIST` shows it as `fd=`).
impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
