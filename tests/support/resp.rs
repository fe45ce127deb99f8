//! A minimal RESP2/RESP3 reply reader for raw-socket tests: it returns the
//! raw bytes of exactly one reply so tests can assert on the wire format.

use std::io::{self, BufRead, Read};

/// Reads one complete reply (any RESP2/RESP3 type, nested) and returns its
/// raw bytes. Errors with `UnexpectedEof` if the peer closes first.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    read_into(r, &mut out)?;
    Ok(out)
}

fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let start = out.len();
    let n = r.read_until(b'\n', out)?;
    if n == 0 || !out.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection closed mid-line: {:?}",
                String::from_utf8_lossy(&out[start..])
            ),
        ));
    }
    Ok(out[start + 1..out.len() - 2].to_vec())
}

fn number(line: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad length in reply"))
}

fn read_into(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<()> {
    let kind = {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        buf[0]
    };
    let line = read_line(r, out)?;
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(()),
        b'$' | b'!' | b'=' => {
            let len = number(&line)?;
            if len >= 0 {
                let mut body = vec![0; len as usize + 2];
                r.read_exact(&mut body)?;
                out.extend_from_slice(&body);
            }
            Ok(())
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let len = number(&line)?;
            let items = if matches!(kind, b'%' | b'|') {
                len * 2
            } else {
                len
            };
            for _ in 0..items.max(0) {
                read_into(r, out)?;
            }
            Ok(())
        }
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown reply type byte {other:?}"),
        )),
    }
}

/// Encodes `args` as a RESP array of bulk strings (a client request).
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A TCP connection to `addr` with `timeout` on connect, reads and writes,
/// and no Nagle delay.
pub fn connect_stream(addr: &str, timeout: std::time::Duration) -> std::net::TcpStream {
    let sockaddr = addr.parse().expect("socket address");
    let s = std::net::TcpStream::connect_timeout(&sockaddr, timeout)
        .unwrap_or_else(|e| panic!("raw connect to {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).expect("read timeout");
    s.set_write_timeout(Some(timeout)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Like [`connect_stream`], from the local address `local_ip` (any port):
/// e.g. 127.0.0.2, a loopback address that keyway must treat as remote.
/// std's `TcpStream` cannot bind before it connects, socket2 can.
pub fn connect_from(
    local_ip: &str,
    addr: &str,
    timeout: std::time::Duration,
) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let local: std::net::SocketAddr = format!("{local_ip}:0").parse().expect("local IP");
    let remote: std::net::SocketAddr = addr.parse().expect("socket address");
    let socket = Socket::new(Domain::for_address(remote), Type::STREAM, None).expect("socket");
    socket
        .bind(&local.into())
        .unwrap_or_else(|e| panic!("bind {local}: {e}"));
    socket
        .connect_timeout(&remote.into(), timeout)
        .unwrap_or_else(|e| panic!("connect from {local_ip} to {addr}: {e}"));
    let s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(timeout)).expect("read timeout");
    s.set_write_timeout(Some(timeout)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A raw RESP client over a TCP stream (which should carry read/write
/// timeouts, as [`super::Proxy::raw_connect`] sets), for asserting exact
/// bytes on the wire.
pub struct RawClient {
    reader: io::BufReader<std::net::TcpStream>,
}

impl RawClient {
    /// Connects to `addr` (keyway or a node directly) with `timeout` on
    /// connect, reads and writes.
    pub fn connect(addr: &str, timeout: std::time::Duration) -> RawClient {
        RawClient::new(connect_stream(addr, timeout))
    }

    /// Wraps a connected stream.
    pub fn new(stream: std::net::TcpStream) -> RawClient {
        RawClient {
            reader: io::BufReader::new(stream),
        }
    }

    /// Writes `bytes` as they are (malformed input, inline commands, ...).
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.reader
            .get_mut()
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to keyway: {e}"));
    }

    /// Reads one reply; panics on timeout or close.
    pub fn reply(&mut self) -> Vec<u8> {
        read_reply(&mut self.reader).unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads one reply as (lossy) text, e.g. `"+OK\r\n"`.
    pub fn reply_text(&mut self) -> String {
        String::from_utf8_lossy(&self.reply()).into_owned()
    }

    /// Sends one command (each argument a bulk string) and returns the reply text.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&encode(&args));
        self.reply_text()
    }

    /// Panics unless the peer closes the connection (EOF or reset) before
    /// the read timeout, with no further reply bytes.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(
                rest.is_empty(),
                "expected the connection to close, got more bytes: {:?}",
                String::from_utf8_lossy(&rest)
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close, got: {e}"),
        }
    }
}
