//! The parser's error type: small, `Copy`-sized, no allocation.

use std::fmt;

/// Malformed input. `Display` gives the text redis-server puts after
/// `"Protocol error: "` where redis-server has one; the reply-only variants
/// (redis-server never parses replies) use short texts in the same style.
///
/// The session answers `-ERR Protocol error: {err}` and closes the client,
/// like redis-server; on a backend connection any error means the stream is
/// out of sync and the connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `$` length not a number, negative, or above `max_bulk_len`.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// `*` count not a number or above `max_array_len` (also any aggregate
    /// count in a reply).
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// An element of a request array did not start with `$`.
    #[error("expected '$', got '{}'", ShownByte(*.0))]
    ExpectedBulk(u8),
    /// An inline command line longer than `max_inline_len`.
    #[error("too big inline request")]
    TooBigInlineRequest,
    /// A request's `*` line longer than `max_inline_len`.
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    /// A request's `$` line longer than `max_inline_len`.
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// An inline command with an unterminated quote, or a closing quote
    /// followed by something other than a space.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A bulk payload or a line not terminated by `\r\n`. (redis-server
    /// skips two bytes blindly here; keyway refuses, so the bytes it
    /// forwards always frame the same way on the backend.)
    #[error("expected CRLF")]
    ExpectedCrlf,
    /// A reply starting with a byte that is no RESP2/RESP3 type.
    #[error("unknown reply type")]
    UnknownReplyType(u8),
    /// A reply nested deeper than `max_depth`.
    #[error("reply nested too deep")]
    TooDeep,
    /// A reply's simple line longer than `max_bulk_len`, or a length line
    /// too long to hold a number.
    #[error("line too long")]
    LineTooLong,
    /// `:` value that is not an `i64` (decoder only).
    #[error("invalid integer")]
    InvalidInteger,
    /// `,` value that is not a double (decoder only).
    #[error("invalid double")]
    InvalidDouble,
    /// `#` value other than `t` / `f` (decoder only).
    #[error("invalid boolean")]
    InvalidBool,
    /// `=` payload without its 3-byte format and `:` (decoder only).
    #[error("invalid verbatim string")]
    InvalidVerbatim,
}

/// Shows an offending byte the way redis-server's `%c` does, except that
/// CR/LF become spaces (as `addReplyErrorFormat` does, so the error reply
/// stays one line) and non-ASCII bytes become `\xHH` (a `String` can't hold
/// a lone byte).
struct ShownByte(u8);

impl fmt::Display for ShownByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\r' | b'\n' => f.write_str(" "),
            b if b.is_ascii() => write!(f, "{}", char::from(b)),
            b => write!(f, "\\x{b:02x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProtocolError as E;

    #[test]
    fn texts_match_redis() {
        assert_eq!(E::InvalidBulkLength.to_string(), "invalid bulk length");
        assert_eq!(
            E::InvalidMultibulkLength.to_string(),
            "invalid multibulk length"
        );
        assert_eq!(E::ExpectedBulk(b'x').to_string(), "expected '$', got 'x'");
        assert_eq!(E::ExpectedBulk(b'\r').to_string(), "expected '$', got ' '");
        assert_eq!(
            E::ExpectedBulk(0xff).to_string(),
            "expected '$', got '\\xff'"
        );
        assert_eq!(E::TooBigInlineRequest.to_string(), "too big inline request");
        assert_eq!(
            E::TooBigMbulkCount.to_string(),
            "too big mbulk count string"
        );
        assert_eq!(E::TooBigBulkCount.to_string(), "too big bulk count string");
        assert_eq!(
            E::UnbalancedQuotes.to_string(),
            "unbalanced quotes in request"
        );
        assert_eq!(E::UnknownReplyType(b'x').to_string(), "unknown reply type");
    }

    #[test]
    fn error_is_small() {
        assert!(std::mem::size_of::<E>() <= 2);
    }
}
