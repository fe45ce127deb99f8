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
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut p = 0;
    loop {
        while p < line.len() && blank(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = flat.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = at(p);
            if in_dq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    flat.push(hex(at(p + 2)).unwrap_or(0) * 16 + hex(at(p + 3)).unwrap_or(0));
                    p += 4;
                } else if c == b'\\' && p + 1 < line.len() {
                    flat.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if p + 1 < line.len() && !blank(at(p + 1)) {
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
            } else if in_sq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    flat.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if p + 1 < line.len() && !blank(at(p + 1)) {
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
            } else {
                match c {
                    // Only these end an unquoted token (not \v or \f).
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    _ => flat.push(c),
                }
                p += 1;
            }
        }
        spans.push((start, flat.len()));
    }
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
