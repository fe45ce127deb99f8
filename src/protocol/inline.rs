//! Inline commands (`PING\r\n`, `SET k "a b"\n`): splitting a line into
//! arguments exactly like redis-server's `sdssplitargs`.

use smallvec::SmallVec;

use super::{find_byte, ProtocolError};

/// Splits an inline line like redis-server's `sdssplitargs`: blanks separate
/// arguments; `"..."` supports `\n \r \t \b \a \xHH` and `\<any>` escapes;
/// `'...'` supports `\'`; a closing quote must be followed by a blank or the
/// end. A NUL byte ends the line (`sdssplitargs` works on a C string).
/// Arguments are appended to `flat`, their spans to `spans`.
pub(crate) fn split_args(
    line: &[u8],
    flat: &mut Vec<u8>,
    spans: &mut SmallVec<[(usize, usize); 8]>,
) -> Result<(), ProtocolError> {
    let line = match find_byte(line, 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    // C `isspace` in the "C" locale.
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while p < line.len() && blank(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = flat.len();
        // The quote the current argument is inside, if any.
        let mut quote = None;
        loop {
            let c = at(line, p);
            let Some(q) = quote else {
                match c {
                    // Only these end an unquoted token (not \v or \f).
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' | b'\'' => quote = Some(c),
                    _ => flat.push(c),
                }
                p += 1;
                continue;
            };
            if let Some((byte, width)) = escape(line, p, q) {
                flat.push(byte);
                p += width;
            } else if c == q {
                // The closing quote must end the argument.
                if p + 1 < line.len() && !blank(at(line, p + 1)) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                p += 1;
                break;
            } else if p >= line.len() {
                return Err(ProtocolError::UnbalancedQuotes);
            } else {
                flat.push(c);
                p += 1;
            }
        }
        spans.push((start, flat.len()));
    }
}

/// The escape sequence at `line[p]` inside a `quote`d argument, if one
/// starts there: the byte it stands for and its length. Double quotes take
/// `\xHH` (two hex digits), `\n \r \t \b \a`, and `\<any>` for that byte;
/// single quotes only `\'`. Anything else is taken literally, backslash
/// included.
fn escape(line: &[u8], p: usize, quote: u8) -> Option<(u8, usize)> {
    if at(line, p) != b'\\' {
        return None;
    }
    let next = at(line, p + 1);
    if quote == b'\'' {
        return (next == b'\'').then_some((b'\'', 2));
    }
    if next == b'x' {
        if let (Some(hi), Some(lo)) = (hex(at(line, p + 2)), hex(at(line, p + 3))) {
            return Some((hi * 16 + lo, 4));
        }
    }
    // A backslash ending the line is a plain byte (then the quote is
    // unbalanced).
    if p + 1 >= line.len() {
        return None;
    }
    let byte = match next {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    };
    Some((byte, 2))
}

/// `line[i]`, or 0 past the end: the NUL a C string would have there.
fn at(line: &[u8], i: usize) -> u8 {
    line.get(i).copied().unwrap_or(0)
}

/// Value of an ASCII hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
