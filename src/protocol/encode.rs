//! Writers for the RESP keyway produces itself: replies it answers locally
//! or merges, and commands it sends (`ASKING`, `CLUSTER SHARDS`, ...).
//!
//! Each writer appends to a `BytesMut` and allocates nothing beyond the
//! buffer's own growth; integers are formatted in a stack buffer.

use bytes::{BufMut, BytesMut};

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

/// Appends the RESP2 null bulk string, `$-1\r\n`.
pub fn null_bulk(buf: &mut BytesMut) {
    buf.put_slice(b"$-1\r\n");
}

/// Appends an array header, `*len\r\n`; the caller then writes `len` elements.
pub fn array_header(buf: &mut BytesMut, len: usize) {
    line_usize(buf, b'*', len);
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
        assert_eq!(out(null_bulk), b"$-1\r\n");
        assert_eq!(out(|b| array_header(b, 12)), b"*12\r\n");
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
