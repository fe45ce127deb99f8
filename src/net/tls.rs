//! TLS over a [`TcpStream`], driven by hand: rustls' `Connection` holds
//! the state, this module moves records between it and the socket with
//! the socket's own non-blocking calls. [`super::Stream`]'s TLS variant
//! is built on these functions; the handshake runs before it exists.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, Error, ServerConfig,
    ServerConnection,
};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Most plaintext rustls may hold encrypted for the socket before a write
/// waits for it: a batch of replies of this size becomes records at once.
const SEND_BUFFER: usize = 256 * 1024;

/// A TLS connection's state beside its socket. Used from one task at a
/// time; the lock (never contended) only makes the stream `Sync`, as
/// tasks on the control thread's multi-threaded runtime need.
#[derive(Debug)]
pub(super) struct Tls {
    conn: Mutex<Connection>,
    /// rustls holds decrypted bytes not handed out yet: the stream is
    /// readable whatever the socket says.
    plaintext: AtomicBool,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer spoke something other than TLS (a plaintext RESP client).
    #[error("the peer does not speak TLS")]
    Plaintext,
    /// TLS said no: a certificate, a version, a cipher.
    #[error("{0}")]
    Tls(Error),
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl HandshakeError {
    /// The `reason` label of `keyway_tls_handshake_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Plaintext => "plaintext",
            HandshakeError::Io(_) => "io",
            HandshakeError::Tls(Error::NoCertificatesPresented) => "no_client_cert",
            HandshakeError::Tls(Error::InvalidCertificate(e)) => match e {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
                CertificateError::UnknownIssuer => "unknown_ca",
                _ => "bad_certificate",
            },
            HandshakeError::Tls(_) => "protocol",
        }
    }
}

/// The server side of a handshake on an accepted socket.
pub(super) async fn accept(
    tcp: &TcpStream,
    config: Arc<ServerConfig>,
) -> Result<Tls, HandshakeError> {
    // A TLS client's first byte opens a handshake record (22).
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await? {
        0 => return Err(closed().into()),
        _ if first[0] != 22 => return Err(HandshakeError::Plaintext),
        _ => {}
    }
    let conn = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    handshake(tcp, Connection::Server(conn)).await
}

/// The client side of a handshake, checking the peer as `name`.
pub(super) async fn connect(
    tcp: &TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<Tls, HandshakeError> {
    let conn = ClientConnection::new(config, name).map_err(HandshakeError::Tls)?;
    handshake(tcp, Connection::Client(conn)).await
}

async fn handshake(tcp: &TcpStream, mut conn: Connection) -> Result<Tls, HandshakeError> {
    conn.set_buffer_limit(Some(SEND_BUFFER));
    loop {
        while !flush(&mut conn, tcp)? {
            tcp.writable().await?;
        }
        if !conn.is_handshaking() {
            break;
        }
        tcp.readable().await?;
        match conn.read_tls(&mut Socket::new(tcp)) {
            Ok(0) => return Err(closed().into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the peer why (the alert rustls queued), best effort.
            let _ = flush(&mut conn, tcp);
            return Err(HandshakeError::Tls(e));
        }
    }
    Ok(Tls {
        conn: Mutex::new(conn),
        // Requests may have come with the handshake's last flight.
        plaintext: AtomicBool::new(true),
    })
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection",
    )
}

impl Tls {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decrypted bytes wait to be read.
    #[inline]
    pub(super) fn has_plaintext(&self) -> bool {
        self.plaintext.load(Relaxed)
    }

    /// See [`super::Stream::read_some`]: decrypted bytes left from before,
    /// then records from the socket until it has no more or `buf`'s spare
    /// room (at least 4 KiB) is used; rustls reads at most a record or
    /// 4 KiB at a time, and keeps what does not fit for the next call.
    /// `Ok(Some(0))` at the end of the stream, with or without
    /// `close_notify` (Redis clients often just close).
    pub(super) fn read_some(
        &self,
        tcp: &TcpStream,
        buf: &mut BytesMut,
    ) -> io::Result<Option<usize>> {
        let mut conn = self.conn();
        let room = (buf.capacity() - buf.len()).max(4096);
        let mut total = 0;
        let mut ended = false;
        // Left from before: decrypted bytes to hand out before reading.
        let mut read_socket = !self.plaintext.swap(false, Relaxed);
        let mut socket = Socket::new(tcp);
        while total < room && !ended {
            if read_socket {
                if socket.drained {
                    // The last read took all the socket had: another would
                    // only fail with `EAGAIN`.
                    break;
                }
                match conn.read_tls(&mut socket) {
                    Ok(0) => ended = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The next call fails the same way and reports it.
                    Err(_) if total > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            read_socket = true;
            let state = match conn.process_new_packets() {
                Ok(state) => state,
                Err(_) if total > 0 => break,
                Err(e) => {
                    // Tell the peer why (the alert rustls queued), best effort.
                    let _ = flush(&mut conn, tcp);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            // A key update or an alert to answer; what the socket does not
            // take now goes with the next write.
            flush(&mut conn, tcp)?;
            // No more than the caller made room for: a reader that reserved
            // exactly the rest of a large value gets no reallocation.
            let want = state.plaintext_bytes_to_read().min(room - total);
            total += take_plaintext(&mut conn, buf, want)?;
            ended |= state.peer_has_closed();
        }
        // Stopped with the room used: more may be decrypted already.
        self.plaintext.store(total >= room, Relaxed);
        match total {
            0 if ended => Ok(Some(0)),
            0 => Ok(None),
            n => Ok(Some(n)),
        }
    }

    /// See [`super::Stream::write_some`]: the bytes become records (one
    /// per batch, up to 16 KiB each), written as the socket takes them.
    /// True only when rustls holds nothing more to send.
    pub(super) fn write_some(&self, tcp: &TcpStream, out: &mut impl Buf) -> io::Result<bool> {
        let mut conn = self.conn();
        loop {
            if !flush(&mut conn, tcp)? {
                return Ok(false);
            }
            if !out.has_remaining() {
                return Ok(true);
            }
            let n = conn.writer().write(out.chunk())?;
            out.advance(n);
        }
    }

    /// rustls holds records the socket has not taken yet.
    pub(super) fn wants_write(&self) -> bool {
        self.conn().wants_write()
    }

    /// Queues `close_notify` and writes what the socket takes now.
    pub(super) fn close_notify(&self, tcp: &TcpStream) {
        let mut conn = self.conn();
        conn.send_close_notify();
        let _ = flush(&mut conn, tcp);
    }

    /// See [`super::Stream::is_idle`]: open, and nothing but TLS
    /// housekeeping (session tickets) arrived.
    pub(super) fn is_idle(&self, tcp: &TcpStream) -> bool {
        let mut conn = self.conn();
        loop {
            match conn.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            }
            match conn.read_tls(&mut Socket::new(tcp)) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
            }
        }
    }

    /// The certificate the peer presented (leaf), if any.
    pub(super) fn peer_certificate(&self) -> Option<Vec<u8>> {
        let conn = self.conn();
        conn.peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.to_vec())
    }
}

/// Appends `want` of the decrypted bytes rustls holds to `buf`.
fn take_plaintext(conn: &mut Connection, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
    if want == 0 {
        return Ok(0);
    }
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut filled = 0;
    while filled < want {
        match conn.reader().read(&mut buf[start + filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                buf.truncate(start + filled);
                return Err(e);
            }
        }
    }
    buf.truncate(start + filled);
    Ok(filled)
}

/// Writes the records rustls holds as far as the socket takes them: true
/// when none is left, false when the socket is full.
fn flush(conn: &mut Connection, tcp: &TcpStream) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut Socket::new(tcp)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Marks `tcp` not readable until epoll says otherwise: after a read that
/// did not fill its buffer drained the socket, the next wait goes to epoll
/// instead of a `recv` that would only fail with `EAGAIN`. Tokio keeps
/// "read closed" across that, so a FIN that came with the data is not lost.
#[inline]
pub(super) fn mark_drained(tcp: &TcpStream) {
    let _ = tcp.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

/// The socket as `Read`/`Write` for rustls: non-blocking calls that fail
/// with `WouldBlock` when it has nothing. A read that does not fill
/// rustls' buffer drained the socket ([`mark_drained`]), and says so in
/// `drained`.
struct Socket<'a> {
    tcp: &'a TcpStream,
    drained: bool,
}

impl<'a> Socket<'a> {
    fn new(tcp: &'a TcpStream) -> Socket<'a> {
        Socket {
            tcp,
            drained: false,
        }
    }
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.try_read(buf)?;
        if n > 0 && n < buf.len() {
            self.drained = true;
            mark_drained(self.tcp);
        }
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.tcp.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
