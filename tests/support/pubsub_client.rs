//! A raw RESP client for pub/sub tests. Like [`super::RawClient`] it
//! returns exact frames, and it can also wait a bounded time for a frame
//! that may never come (a message) without losing one that arrives partly.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::resp::{connect_stream, encode, read_reply};
use super::OP_TIMEOUT;

/// A connection to keyway or to a node, read frame by frame.
pub struct PubSubClient {
    reader: BufReader<TcpStream>,
}

impl PubSubClient {
    /// Connects to `addr` with [`OP_TIMEOUT`] on connect, reads and writes.
    pub fn connect(addr: &str) -> PubSubClient {
        PubSubClient {
            reader: BufReader::new(connect_stream(addr, OP_TIMEOUT)),
        }
    }

    /// Sends one command (each argument a bulk string) without reading.
    pub fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_raw(&encode(&args));
    }

    /// Writes `bytes` as they are (e.g. a pipeline of encoded commands).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Reads one frame (reply or push) as lossy text; panics on timeout or
    /// close.
    pub fn frame(&mut self) -> String {
        let bytes = read_reply(&mut self.reader).unwrap_or_else(|e| panic!("reading a frame: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Sends one command and reads one frame.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.frame()
    }

    /// Reads `n` frames.
    pub fn frames(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.frame()).collect()
    }

    /// The next frame if one starts arriving within `wait` (then read in
    /// full with the usual timeout), else `None`. Panics if the peer closed.
    pub fn try_frame(&mut self, wait: Duration) -> Option<String> {
        if self.reader.buffer().is_empty() {
            self.set_timeout(wait);
            let started = self.reader.fill_buf().map(|b| !b.is_empty());
            self.set_timeout(OP_TIMEOUT);
            match started {
                Ok(true) => {}
                Ok(false) => panic!("the connection was closed"),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("waiting for a frame: {e}"),
            }
        }
        Some(self.frame())
    }

    /// Reads and discards everything until the peer closes the connection
    /// (EOF or reset); returns how many bytes were discarded, or an error if
    /// it is still open after `within`.
    pub fn drain_until_closed(&mut self, within: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + within;
        let mut drained = self.reader.buffer().len();
        self.reader.consume(drained);
        let stream = self.reader.get_mut();
        let mut buf = vec![0; 1 << 16];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(drained),
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(drained),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("after {drained} bytes: {e}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("still open after {within:?} and {drained} bytes"));
            }
        }
    }

    fn set_timeout(&self, t: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(t))
            .expect("set read timeout");
    }
}

/// Subscribes through keyway at `addr` to the channel `{prefix}:chan` and
/// the shard channel `{prefix}:shard`, publishes one message to each with
/// `con`, and checks the subscriber got both: keyway's subscriber
/// connections and its publishing path both work.
pub fn check_channel_and_shard_channel(addr: &str, con: &mut redis::Connection, prefix: &str) {
    let (channel, shard) = (format!("{prefix}:chan"), format!("{prefix}:shard"));
    let mut subscriber = PubSubClient::connect(addr);
    assert!(subscriber
        .cmd(&["SUBSCRIBE", &channel])
        .contains("subscribe"));
    assert!(subscriber
        .cmd(&["SSUBSCRIBE", &shard])
        .contains("ssubscribe"));
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("m1")
        .query(con)
        .unwrap();
    let _: i64 = redis::cmd("SPUBLISH")
        .arg(&shard)
        .arg("m2")
        .query(con)
        .unwrap();
    let messages = subscriber.frames(2).concat();
    assert!(
        messages.contains("m1") && messages.contains("m2"),
        "{messages}"
    );
}
