//! Backend replies, framed without decoding: the proxy forwards the bytes.

use super::{find_line, parse_i64, Limits, ProtocolError};

/// Longest length line worth waiting for: `-9223372036854775808` is 20
/// bytes. Anything longer is an error, not a reason to buffer more.
const MAX_LEN_LINE: usize = 32;

/// Finds where complete replies end; keeps state for a partially received
/// (possibly deeply nested, huge) reply across calls.
///
/// Handles every RESP2 and RESP3 type. Scalar payloads (`:`, `,`, `#`, `(`,
/// `_`) are framed but not validated; [`super::decode`] validates them.
/// Streamed lengths (`$?`, `*?`) are refused. An attribute (`|`) and the
/// reply that follows it form one frame.
#[derive(Debug)]
pub struct ReplyScanner {
    limits: Limits,
    /// Offset of the next unread element of the current frame.
    pos: usize,
    /// Offset up to which the current line was already searched for `\r`.
    line_scan: usize,
    /// End of a bulk payload being waited for, its CRLF included.
    bulk_end: Option<usize>,
    /// Elements still missing in each open aggregate, innermost last.
    stack: Vec<usize>,
    /// Bytes examined by line searches; lets tests prove there is no rescan.
    #[cfg(test)]
    scanned: usize,
}

impl ReplyScanner {
    /// A scanner at a frame boundary.
    pub fn new(limits: Limits) -> Self {
        ReplyScanner {
            limits,
            pos: 0,
            line_scan: 0,
            bulk_end: None,
            stack: Vec::new(),
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// `Ok(Some(len))` when a complete reply occupies `buf[..len]`; the caller
    /// splits it off and calls again. `Ok(None)` = need more bytes (progress
    /// is remembered; the caller must not modify `buf[..]` already seen, only
    /// append). After an error the connection is out of sync and must be
    /// dropped (or the scanner [`reset`](Self::reset) with a fresh buffer).
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            if let Some(end) = self.bulk_end {
                // Only a length check per read: a huge payload is never scanned.
                match buf.get(end - 2..end) {
                    None => return Ok(None),
                    Some(b"\r\n") => {}
                    Some(_) => return Err(ProtocolError::ExpectedCrlf),
                }
                self.bulk_end = None;
                if let Some(len) = self.element_done(end) {
                    return Ok(Some(len));
                }
                continue;
            }
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let max_line = match kind {
                b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => self.limits.max_bulk_len,
                b'$' | b'=' | b'!' | b'*' | b'~' | b'>' | b'%' | b'|' => MAX_LEN_LINE,
                _ => return Err(ProtocolError::UnknownReplyType(kind)),
            };
            let Some(cr) = self.line(buf, max_line)? else {
                return Ok(None);
            };
            let body = &buf[self.pos + 1..cr];
            let next = cr + 2;
            let done = match kind {
                b'$' | b'=' | b'!' => match parse_len(body, kind == b'$') {
                    Some(None) => self.element_done(next),
                    Some(Some(n)) if n <= self.limits.max_bulk_len => {
                        self.pos = next;
                        self.line_scan = next;
                        let end = next.checked_add(n).and_then(|e| e.checked_add(2));
                        self.bulk_end = Some(end.ok_or(ProtocolError::InvalidBulkLength)?);
                        None
                    }
                    _ => return Err(ProtocolError::InvalidBulkLength),
                },
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = match parse_len(body, kind == b'*') {
                        Some(None) => 0, // `*-1`: a null, complete like an empty array
                        Some(Some(n)) if n <= self.limits.max_array_len => n,
                        _ => return Err(ProtocolError::InvalidMultibulkLength),
                    };
                    // A map entry is two elements; an attribute's entries
                    // are followed by the reply they describe.
                    let elements = match kind {
                        b'%' => n.checked_mul(2),
                        b'|' => n.checked_mul(2).and_then(|e| e.checked_add(1)),
                        _ => Some(n),
                    }
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if elements == 0 {
                        self.element_done(next)
                    } else {
                        if self.stack.len() >= self.limits.max_depth {
                            return Err(ProtocolError::TooDeep);
                        }
                        self.stack.push(elements);
                        self.pos = next;
                        self.line_scan = next;
                        None
                    }
                }
                _ => self.element_done(next),
            };
            if let Some(len) = done {
                return Ok(Some(len));
            }
        }
    }

    /// While a bulk payload is awaited: how long the buffer must be to
    /// hold it (its CRLF included), so a reader can make room for all of
    /// it at once.
    pub fn awaiting(&self) -> Option<usize> {
        self.bulk_end
    }

    /// Drops any partial progress, back to a frame boundary (for a new
    /// connection's buffer).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.line_scan = 0;
        self.bulk_end = None;
        self.stack.clear();
    }

    /// Records that an element ended at `next`; returns the frame length if
    /// that completed the top-level reply.
    fn element_done(&mut self, next: usize) -> Option<usize> {
        self.pos = next;
        self.line_scan = next;
        while let Some(remaining) = self.stack.last_mut() {
            *remaining -= 1;
            if *remaining > 0 {
                return None;
            }
            self.stack.pop();
        }
        self.reset();
        Some(next)
    }

    /// Finds the `\r\n` ending the line at `self.pos` (see [`find_line`]);
    /// a line whose body (type byte excluded) exceeds `max_line` is refused.
    fn line(&mut self, buf: &[u8], max_line: usize) -> Result<Option<usize>, ProtocolError> {
        find_line(
            buf,
            self.pos,
            &mut self.line_scan,
            // `find_line` counts the type byte too; saturating, so that
            // `usize::MAX` still means no limit.
            max_line.saturating_add(1),
            ProtocolError::LineTooLong,
            #[cfg(test)]
            &mut self.scanned,
        )
    }
}

/// Parses a length: `Some(Some(n))` for `n >= 0`, `Some(None)` for `-1`
/// when a null is allowed, `None` for anything else (`?`, other negatives).
pub(crate) fn parse_len(body: &[u8], nil_ok: bool) -> Option<Option<usize>> {
    match parse_i64(body)? {
        -1 if nil_ok => Some(None),
        n => usize::try_from(n).ok().map(Some),
    }
}

#[cfg(test)]
mod tests;
