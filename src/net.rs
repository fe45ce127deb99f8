//! Socket reads and writes shared by the client and backend sides, shaped to
//! spend as few system calls as possible per request.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what `stream` has into `buf` (which must have spare capacity).
/// `Ok(None)`: nothing to read now; `Ok(Some(0))`: the peer closed.
///
/// A read that does not fill the spare capacity drained the socket, so the
/// socket is marked not-readable right away: the next wait goes to epoll
/// instead of a `recv` that would only fail with `EAGAIN`. Tokio keeps
/// "read closed" across that, so a FIN that came with the data is not lost.
pub fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let space = buf.capacity() - buf.len();
    match stream.try_read_buf(buf) {
        Ok(n) => {
            if n > 0 && n < space {
                let _ = stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes as much of `out` (a `BytesMut`, or shared `Bytes`) as the socket
/// takes now, removing it from `out`. True when `out` is empty afterwards.
pub fn write_some(stream: &TcpStream, out: &mut impl Buf) -> io::Result<bool> {
    while out.has_remaining() {
        match stream.try_write(out.chunk()) {
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes all of `out`, waiting for the socket when it is full.
pub async fn write_all(stream: &TcpStream, out: &mut BytesMut) -> io::Result<()> {
    while !write_some(stream, out)? {
        stream.writable().await?;
    }
    Ok(())
}
