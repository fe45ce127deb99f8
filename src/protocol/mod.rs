//! RESP framing: everything keyway knows about the bytes on the wire, and
//! nothing about sockets.
//!
//! - [`RequestParser`] turns a client's read buffer into [`Request`]s: a
//!   zero-copy `Bytes` slice of the frame plus the offsets of each argument.
//!   Inline commands are re-encoded to RESP once, so every request can be
//!   forwarded byte for byte.
//! - [`ReplyScanner`] finds where backend replies (RESP2 and RESP3) end
//!   without decoding them: the proxy forwards replies unchanged.
//! - [`decode`] / [`Value`] decode a reply into a tree, for the control path
//!   only (topology, `COMMAND`).
//! - [`pubsub`] locates the kind and channel of a pub/sub connection's
//!   frames, so messages are fanned out without decoding.
//! - [`encode`] writes the replies and commands keyway builds itself, in
//!   the [`Protocol`] each client chose with `HELLO`.
//!
//! Both incremental parsers remember their progress between calls, so a
//! frame that arrives in many reads is scanned once (O(n) in its length).
//! Every length is bounded by [`Limits`]; malformed input yields a
//! [`ProtocolError`], never a panic.

pub mod encode;
mod error;
mod inline;
pub mod pubsub;
mod reply;
mod request;
mod value;

pub use error::ProtocolError;
pub use reply::ReplyScanner;
pub use request::{Request, RequestParser};
pub use value::{decode, Value};

/// The reply protocol a client chose with `HELLO` (RESP2 until it asks).
/// Requests are the same in both; only replies differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2: every connection starts here.
    #[default]
    Resp2,
    /// RESP3: maps, sets, doubles, booleans, nulls, verbatim strings, pushes.
    Resp3,
}

impl Protocol {
    /// The protocol for a `HELLO` version number, if keyway speaks it.
    pub fn from_version(version: i64) -> Option<Protocol> {
        match version {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => None,
        }
    }

    /// The version number, as `HELLO` and `CLIENT INFO` show it.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Parser bounds, like redis-server's `proto-max-bulk-len` and friends.
///
/// Declared lengths are checked against these before anything is waited for,
/// and nothing is ever pre-allocated from a declared length, so memory held
/// for one frame is bounded by what the peer actually sent plus these caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string payload (`$`, `=`, `!`). Default 512 MiB, as
    /// redis-server's `proto-max-bulk-len`.
    pub max_bulk_len: usize,
    /// Largest element count of one aggregate (for a map or attribute, the
    /// number of entries). Default 2^24 = 16,777,216. redis-server accepts up
    /// to `INT_MAX` arguments from an authenticated client; keyway is stricter
    /// because the same bound applies to replies, and 16 M elements already
    /// covers `HGETALL`/`LRANGE` on very large keys.
    pub max_array_len: usize,
    /// Deepest nesting of non-empty aggregates in a reply. Default 128.
    /// Requests are always flat.
    pub max_depth: usize,
    /// Longest inline command line and longest `*`/`$` count line in a
    /// request. Default 64 KiB, as redis-server's `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_array_len: 1 << 24,
            max_depth: 128,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Parses a RESP length/integer exactly like redis-server's `string2ll`:
/// optional `-`, no `+`, no leading zeros, no spaces, no overflow.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    // Accumulate as a negative number so that i64::MIN is representable.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Position of the first `byte` in `hay`. A plain loop: the compiler
/// vectorises it well enough for the short lines it searches.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    hay.iter().position(|&b| b == byte)
}

/// Finds the `\r\n` ending the line that starts at `pos` (at its type
/// byte), as redis-server does: the first `\r`, which must be followed by
/// `\n`. Returns the offset of the `\r`, or `None` to wait for more bytes.
///
/// The search resumes at `*line_scan` (recorded by the previous call on the
/// same line), so a line arriving in many reads is searched once. After a
/// line is found `*line_scan` is left alone: the caller moves `pos` past the
/// line, and the next search starts at `pos + 1` or later anyway.
///
/// A line longer than `max_len` bytes from `pos` to the `\r` fails with
/// `too_big`, even before its end arrives. `scanned` counts the bytes
/// examined, so tests can prove nothing is searched twice.
#[inline]
pub(crate) fn find_line(
    buf: &[u8],
    pos: usize,
    line_scan: &mut usize,
    max_len: usize,
    too_big: ProtocolError,
    #[cfg(test)] scanned: &mut usize,
) -> Result<Option<usize>, ProtocolError> {
    let from = (*line_scan).max(pos + 1);
    let hay = buf.get(from..).unwrap_or_default();
    let found = find_byte(hay, b'\r');
    #[cfg(test)]
    {
        *scanned += found.map_or(hay.len(), |i| i + 1);
    }
    let Some(cr) = found.map(|i| from + i) else {
        if buf.len().saturating_sub(pos) > max_len {
            return Err(too_big);
        }
        *line_scan = buf.len();
        return Ok(None);
    };
    // `cr > pos`: the search starts after the type byte.
    if cr - pos > max_len {
        return Err(too_big);
    }
    match buf.get(cr + 1) {
        None => {
            *line_scan = cr; // look at this \r again once \n may be there
            Ok(None)
        }
        Some(b'\n') => Ok(Some(cr)),
        Some(_) => Err(ProtocolError::ExpectedCrlf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_matches_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"12"), Some(12));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
            b"?",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(l.max_bulk_len, 512 << 20);
        assert_eq!(l.max_inline_len, 65536);
        assert_eq!(l.max_depth, 128);
    }
}
