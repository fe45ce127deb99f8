//! Writers for the RESP keyway produces itself: replies it answers locally
//! or merges, and commands it sends (`ASKING`, `CLUSTER SHARDS`, ...).
//!
//! Types both protocols share (simple strings, errors, integers, bulk
//! strings, arrays) have one writer. The RESP3-only types take the client's
//! [`Protocol`] and fall back to what redis-server sends a RESP2 client for
//! them: a map becomes a flat key/value array, a set or push an array, a
//! null the null bulk string, a double, big number or verbatim string a bulk
//! string, a boolean the integer 1 or 0.
//!
//! Each writer appends to a `BytesMut` and allocates nothing beyond the
//! buffer's own growth; integers are formatted in a stack buffer.

use bytes::{BufMut, BytesMut};

use super::Protocol;

/// Longest decimal form of an `i64` or `u64` (`-9223372036854775808`).
const INT_BUF: usize = 20;

/// Formats `n` (with a leading `-` if `neg`) into the tail of a stack buffer.
fn fmt_int(neg: bool, mut n: u64, out: &mut [u8; INT_BUF]) -> &[u8] {
    let mut i = INT_BUF;
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        out[i] = b'-';
    }
    &out[i..]
}

/// Appends `prefix`, the decimal `n`, and CRLF: the header line of most types.
fn line_usize(buf: &mut BytesMut, prefix: u8, n: usize) {
    let mut tmp = [0u8; INT_BUF];
    let digits = fmt_int(false, n as u64, &mut tmp);
    buf.reserve(digits.len() + 3);
    buf.put_u8(prefix);
    buf.put_slice(digits);
    buf.put_slice(b"\r\n");
}

/// Appends a line of text, replacing CR and LF with spaces: a simple
/// string or error cannot contain them, and a stray newline would desync
/// the client (redis-server's `addReplyErrorFormat` does the same).
fn text_line(buf: &mut BytesMut, prefix: u8, s: &[u8]) {
    buf.reserve(s.len() + 3);
    buf.put_u8(prefix);
    for chunk in s.split_inclusive(|&b| b == b'\r' || b == b'\n') {
        match chunk.split_last() {
            Some((&last, head)) if last == b'\r' || last == b'\n' => {
                buf.put_slice(head);
                buf.put_u8(b' ');
            }
            _ => buf.put_slice(chunk),
        }
    }
    buf.put_slice(b"\r\n");
}

/// Appends a simple string, `+s\r\n`. CR/LF inside `s` become spaces.
pub fn simple(buf: &mut BytesMut, s: &[u8]) {
    text_line(buf, b'+', s);
}

/// Appends an error, `-msg\r\n`. `msg` comes without the leading `-`, e.g.
/// `b"ERR unknown command"`. CR/LF inside `msg` become spaces.
pub fn error(buf: &mut BytesMut, msg: &[u8]) {
    text_line(buf, b'-', msg);
}

/// Appends an integer, `:n\r\n`.
pub fn integer(buf: &mut BytesMut, n: i64) {
    let mut tmp = [0u8; INT_BUF];
    let digits = fmt_int(n < 0, n.unsigned_abs(), &mut tmp);
    buf.reserve(digits.len() + 3);
    buf.put_u8(b':');
    buf.put_slice(digits);
    buf.put_slice(b"\r\n");
}

/// Appends a bulk string, `$len\r\ndata\r\n`. Any bytes are allowed.
pub fn bulk(buf: &mut BytesMut, data: &[u8]) {
    line_usize(buf, b'$', data.len());
    buf.reserve(data.len() + 2);
    buf.put_slice(data);
    buf.put_slice(b"\r\n");
}

/// Appends a null: RESP3 `_`, RESP2 the null bulk string `$-1`.
pub fn null(buf: &mut BytesMut, proto: Protocol) {
    buf.put_slice(match proto {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// Appends an array header, `*len\r\n`; the caller then writes `len` elements.
pub fn array_header(buf: &mut BytesMut, len: usize) {
    line_usize(buf, b'*', len);
}

/// Appends a map header for `entries` key/value pairs: RESP3 `%entries`,
/// RESP2 a flat array of `2 * entries` elements. The caller then writes
/// each key followed by its value.
pub fn map_header(buf: &mut BytesMut, proto: Protocol, entries: usize) {
    match proto {
        Protocol::Resp2 => line_usize(buf, b'*', entries * 2),
        Protocol::Resp3 => line_usize(buf, b'%', entries),
    }
}

/// Appends a set header, `~len` (RESP3) or `*len` (RESP2).
pub fn set_header(buf: &mut BytesMut, proto: Protocol, len: usize) {
    let prefix = match proto {
        Protocol::Resp2 => b'*',
        Protocol::Resp3 => b'~',
    };
    line_usize(buf, prefix, len);
}

/// Appends a push header, `>len` (RESP3) or `*len` (RESP2, where pub/sub
/// messages are plain arrays).
pub fn push_header(buf: &mut BytesMut, proto: Protocol, len: usize) {
    let prefix = match proto {
        Protocol::Resp2 => b'*',
        Protocol::Resp3 => b'>',
    };
    line_usize(buf, prefix, len);
}

/// Appends a plain-text verbatim string: RESP3 `=len\r\ntxt:text`, RESP2
/// a bulk string of `text` (how redis-server sends `INFO`, `CLIENT INFO`
/// and `CLUSTER INFO`).
pub fn verbatim(buf: &mut BytesMut, proto: Protocol, text: &[u8]) {
    match proto {
        Protocol::Resp2 => bulk(buf, text),
        Protocol::Resp3 => {
            line_usize(buf, b'=', text.len() + 4);
            buf.reserve(text.len() + 6);
            buf.put_slice(b"txt:");
            buf.put_slice(text);
            buf.put_slice(b"\r\n");
        }
    }
}

/// Appends a boolean: RESP3 `#t`/`#f`, RESP2 the integer 1 or 0.
pub fn boolean(buf: &mut BytesMut, proto: Protocol, b: bool) {
    buf.put_slice(match (proto, b) {
        (Protocol::Resp2, true) => b":1\r\n",
        (Protocol::Resp2, false) => b":0\r\n",
        (Protocol::Resp3, true) => b"#t\r\n",
        (Protocol::Resp3, false) => b"#f\r\n",
    });
}

/// Appends a double: RESP3 `,text`, RESP2 a bulk string of the same text.
/// The text is the shortest that reads back as `d` (`inf`, `-inf`, `nan`
/// for the special values; whole numbers without a fraction, as
/// redis-server prints them).
pub fn double(buf: &mut BytesMut, proto: Protocol, d: f64) {
    let text = double_text(d);
    match proto {
        Protocol::Resp2 => bulk(buf, text.as_bytes()),
        Protocol::Resp3 => {
            buf.reserve(text.len() + 3);
            buf.put_u8(b',');
            buf.put_slice(text.as_bytes());
            buf.put_slice(b"\r\n");
        }
    }
}

/// The text of a double; see [`double`].
fn double_text(d: f64) -> String {
    if d.is_nan() {
        "nan".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if d.fract() == 0.0 && d.abs() < 1e17 {
        format!("{}", d as i64)
    } else {
        format!("{d:?}")
    }
}

/// Appends a big number (its decimal digits): RESP3 `(digits`, RESP2 a
/// bulk string.
pub fn big_number(buf: &mut BytesMut, proto: Protocol, digits: &[u8]) {
    match proto {
        Protocol::Resp2 => bulk(buf, digits),
        Protocol::Resp3 => text_line(buf, b'(', digits),
    }
}

/// Appends a command: an array of bulk strings, with one `reserve` for the
/// whole frame.
pub fn command(buf: &mut BytesMut, args: &[&[u8]]) {
    buf.reserve(command_len(args.iter().map(|a| a.len()), args.len()));
    array_header(buf, args.len());
    for arg in args {
        bulk(buf, arg);
    }
}

/// Number of decimal digits of `n`.
pub(crate) fn digits(n: usize) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}

/// Exact encoded size of an array of `argc` bulks with the given lengths.
pub(crate) fn command_len(lens: impl Iterator<Item = usize>, argc: usize) -> usize {
    let header = 1 + digits(argc) + 2;
    header + lens.map(|l| 1 + digits(l) + 2 + l + 2).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut b = BytesMut::new();
        f(&mut b);
        b.to_vec()
    }

    #[test]
    fn scalars() {
        assert_eq!(out(|b| simple(b, b"OK")), b"+OK\r\n");
        assert_eq!(out(|b| simple(b, b"a\r\nb")), b"+a  b\r\n");
        assert_eq!(out(|b| error(b, b"ERR bad\nthing")), b"-ERR bad thing\r\n");
        assert_eq!(out(|b| integer(b, 0)), b":0\r\n");
        assert_eq!(out(|b| integer(b, -42)), b":-42\r\n");
        assert_eq!(out(|b| integer(b, i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(out(|b| integer(b, i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(out(|b| bulk(b, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(out(|b| bulk(b, b"")), b"$0\r\n\r\n");
        assert_eq!(out(|b| array_header(b, 12)), b"*12\r\n");
    }

    #[test]
    fn resp3_types_and_their_resp2_fallbacks() {
        use Protocol::{Resp2, Resp3};
        let both = |f: fn(&mut BytesMut, Protocol)| (out(|b| f(b, Resp2)), out(|b| f(b, Resp3)));
        let pair = |a: &[u8], b: &[u8]| (a.to_vec(), b.to_vec());
        assert_eq!(both(null), pair(b"$-1\r\n", b"_\r\n"));
        assert_eq!(both(|b, p| map_header(b, p, 3)), pair(b"*6\r\n", b"%3\r\n"));
        assert_eq!(both(|b, p| set_header(b, p, 2)), pair(b"*2\r\n", b"~2\r\n"));
        assert_eq!(
            both(|b, p| push_header(b, p, 3)),
            pair(b"*3\r\n", b">3\r\n")
        );
        assert_eq!(
            both(|b, p| verbatim(b, p, b"a:1\r\n")),
            pair(b"$5\r\na:1\r\n\r\n", b"=9\r\ntxt:a:1\r\n\r\n")
        );
        assert_eq!(both(|b, p| boolean(b, p, true)), pair(b":1\r\n", b"#t\r\n"));
        assert_eq!(
            both(|b, p| boolean(b, p, false)),
            pair(b":0\r\n", b"#f\r\n")
        );
        assert_eq!(
            both(|b, p| double(b, p, 1.5)),
            pair(b"$3\r\n1.5\r\n", b",1.5\r\n")
        );
        assert_eq!(
            both(|b, p| big_number(b, p, b"12345678901234567890")),
            pair(
                b"$20\r\n12345678901234567890\r\n",
                b"(12345678901234567890\r\n"
            )
        );
    }

    #[test]
    fn doubles_read_back() {
        for (d, text) in [
            (0.0, "0"),
            (-3.0, "-3"),
            (0.1, "0.1"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (1e300, "1e300"),
            (-2.5e-10, "-2.5e-10"),
        ] {
            let want = format!(",{text}\r\n").into_bytes();
            assert_eq!(out(|b| double(b, Protocol::Resp3, d)), want, "{d}");
            let back: f64 = double_text(d).parse().unwrap();
            assert!(back == d || (d.is_nan() && back.is_nan()), "{d}");
        }
    }

    #[test]
    fn command_is_exactly_sized() {
        let args: [&[u8]; 3] = [b"SET", b"k", &[b'v'; 100]];
        let bytes = out(|b| command(b, &args));
        assert!(bytes.starts_with(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n"));
        assert_eq!(
            bytes.len(),
            command_len(args.iter().map(|a| a.len()), args.len())
        );
    }

    #[test]
    fn digits_counts() {
        for (n, d) in [(0, 1), (9, 1), (10, 2), (99, 2), (100, 3), (1_000_000, 7)] {
            assert_eq!(digits(n), d);
        }
    }
}
