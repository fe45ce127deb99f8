//! Client requests: RESP arrays of bulk strings, and inline commands.
//!
//! The rules follow redis-server's `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c), and `sdssplitargs` for inline
//! quoting, so that keyway accepts what redis-server accepts and frames it
//! the same way. Where redis-server is lax in a way that could make the
//! backend frame the forwarded bytes differently (it skips the two bytes
//! after a bulk payload without looking), keyway is stricter.

use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use super::encode;
use super::inline::split_args;
use super::{find_byte, find_line, parse_i64, Limits, ProtocolError};

/// Argument spans: `(start, end)` byte offsets into [`Request::raw`].
type Spans = SmallVec<[(u32, u32); 8]>;

/// One complete client command: the RESP bytes plus the spans of each
/// argument inside them.
///
/// `raw` is always in RESP array-of-bulk form, so a request that needs no
/// rewrite is forwarded byte for byte. A request has at least one argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    raw: Bytes,
    args: Spans,
}

impl Request {
    /// The whole frame, `*N\r\n$..\r\n..\r\n...`, ready to forward.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The whole frame, giving up the argument offsets.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// Number of arguments, command name included.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` (0 is the command name).
    ///
    /// # Panics
    /// If `i >= self.argc()`; use [`Request::get`] when unsure.
    pub fn arg(&self, i: usize) -> &[u8] {
        let (s, e) = self.args[i];
        &self.raw[s as usize..e as usize]
    }

    /// Argument `i`, or `None` when out of range.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &(s, e) = self.args.get(i)?;
        self.raw.get(s as usize..e as usize)
    }

    /// Argument `i` as a zero-copy `Bytes` sharing the frame's buffer, or
    /// `None` when out of range. For keeping a key or value past the request.
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        let &(s, e) = self.args.get(i)?;
        Some(self.raw.slice(s as usize..e as usize))
    }

    /// The bytes arguments `range` occupy in the frame, each still its
    /// `$len\r\n...\r\n` bulk string: a run of arguments to forward as
    /// they came, without re-encoding (a split request's parts).
    ///
    /// # Panics
    /// If `range` is empty or reaches past the last argument.
    pub fn arg_frames(&self, range: std::ops::Range<usize>) -> &[u8] {
        let (start, end) = self.args[range.start];
        let (_, last) = self.args[range.end - 1];
        // Every argument is a bulk string with a canonical length line: the
        // parser accepts no sign, no leading zero, no space in it, and
        // inline commands are encoded by keyway.
        let header = 1 + encode::digits((end - start) as usize) + 2;
        let start = start as usize - header;
        debug_assert_eq!(self.raw[start], b'$');
        &self.raw[start..last as usize + 2]
    }

    /// All arguments in order, command name first.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.args
            .iter()
            .map(|&(s, e)| &self.raw[s as usize..e as usize])
    }

    /// Parses again a request whose bytes keyway parsed once already (and
    /// kept as [`Request::raw`]), for rare paths that need its arguments
    /// again. Copies; `None` if `raw` is not one complete request.
    pub fn reparse(raw: &[u8], limits: Limits) -> Option<Request> {
        let mut buf = BytesMut::from(raw);
        let request = RequestParser::new(limits).parse(&mut buf).ok()??;
        buf.is_empty().then_some(request)
    }

    /// Builds a request from its arguments, encoding RESP once. Used for
    /// commands keyway sends itself (`ASKING`, `CLUSTER SHARDS`) and for
    /// inline commands.
    ///
    /// # Panics
    /// If the encoded frame would exceed 4 GiB (offsets are `u32`).
    pub fn from_args(args: &[&[u8]]) -> Request {
        Self::build(args.iter().copied(), args.len())
    }

    fn build<'a>(args: impl Iterator<Item = &'a [u8]> + Clone, argc: usize) -> Request {
        let total = encode::command_len(args.clone().map(<[u8]>::len), argc);
        assert!(u32::try_from(total).is_ok(), "request larger than 4 GiB");
        let mut buf = BytesMut::with_capacity(total);
        let mut spans = Spans::with_capacity(argc);
        encode::array_header(&mut buf, argc);
        for arg in args {
            // Lengths fit in u32: checked against `total` above.
            let start = buf.len() + 1 + encode::digits(arg.len()) + 2;
            encode::bulk(&mut buf, arg);
            spans.push((start as u32, (start + arg.len()) as u32));
        }
        Request {
            raw: buf.freeze(),
            args: spans,
        }
    }
}

/// Where the parser is inside the frame at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a frame boundary: the next byte decides inline vs. multibulk.
    Start,
    /// In an array, before the `$` line of the next element.
    BulkHeader { remaining: u32 },
    /// Waiting for a bulk payload occupying `start..end` plus CRLF.
    Payload {
        remaining: u32,
        start: u32,
        end: u32,
    },
}

/// Incremental request parser: keeps its progress between calls so a
/// partial frame is never re-scanned from byte 0.
///
/// One parser per client connection. Between calls the caller may only
/// append to the buffer (the parser's state refers to the bytes already
/// at its front); after an error the connection must be closed.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    /// Offset in the buffer where the next line of the current frame starts.
    pos: usize,
    /// Offset up to which the current line was already searched for its
    /// terminator, so a long line arriving in pieces is searched once.
    line_scan: usize,
    args: Spans,
    /// Bytes examined by line searches; lets tests prove there is no rescan.
    #[cfg(test)]
    scanned: usize,
}

impl RequestParser {
    /// A parser at a frame boundary.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            state: State::Start,
            pos: 0,
            line_scan: 0,
            args: Spans::new(),
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// How many more bytes the current frame needs at least, when that is
    /// known (inside a bulk payload). Lets the session reserve a big
    /// argument's room in one step instead of growing the buffer repeatedly.
    pub fn bytes_needed(&self, buf: &[u8]) -> Option<usize> {
        match self.state {
            State::Payload { end, .. } => Some((end as usize + 2).saturating_sub(buf.len())),
            _ => None,
        }
    }

    /// Takes the next complete request off the front of `buf`
    /// (`buf.split_to(len).freeze()`, zero copy), or `Ok(None)` when more
    /// bytes are needed. Empty inline lines and `*0` / negative counts are
    /// skipped, as redis-server does.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'*' {
                        match self.inline(buf)? {
                            Some(Some(req)) => return Ok(Some(req)),
                            Some(None) => continue, // empty line, skipped
                            None => return Ok(None),
                        }
                    }
                    let Some(cr) = self.line(buf, ProtocolError::TooBigMbulkCount)? else {
                        return Ok(None);
                    };
                    let count =
                        parse_i64(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    let max = i64::try_from(self.limits.max_array_len).unwrap_or(i64::MAX);
                    if count > max || count > i64::from(u32::MAX) {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    if count <= 0 {
                        // redis-server ignores `*0` and `*-N` entirely.
                        let _ = buf.split_to(cr + 2);
                        self.reset();
                        continue;
                    }
                    self.pos = cr + 2;
                    self.state = State::BulkHeader {
                        remaining: count as u32,
                    };
                }
                State::BulkHeader { remaining } => {
                    let Some(cr) = self.line(buf, ProtocolError::TooBigBulkCount)? else {
                        return Ok(None);
                    };
                    let line = &buf[self.pos..cr];
                    if line[0] != b'$' {
                        return Err(ProtocolError::ExpectedBulk(line[0]));
                    }
                    let len = parse_i64(&line[1..])
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= self.limits.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    let start = cr + 2;
                    // Offsets are u32: a frame over 4 GiB is refused.
                    let end = start
                        .checked_add(len)
                        .filter(|&e| e.checked_add(2).is_some_and(|t| t <= u32::MAX as usize))
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    self.pos = start;
                    self.state = State::Payload {
                        remaining,
                        start: start as u32,
                        end: end as u32,
                    };
                }
                State::Payload {
                    remaining,
                    start,
                    end,
                } => {
                    let end = end as usize;
                    // Only a length check per read: a huge payload is never scanned.
                    match buf.get(end..end + 2) {
                        None => return Ok(None),
                        Some(b"\r\n") => {}
                        Some(_) => return Err(ProtocolError::ExpectedCrlf),
                    }
                    self.args.push((start, end as u32));
                    self.pos = end + 2;
                    self.line_scan = self.pos;
                    if remaining > 1 {
                        self.state = State::BulkHeader {
                            remaining: remaining - 1,
                        };
                        continue;
                    }
                    let raw = buf.split_to(self.pos).freeze();
                    let args = std::mem::take(&mut self.args);
                    self.reset();
                    return Ok(Some(Request { raw, args }));
                }
            }
        }
    }

    /// Back to a frame boundary.
    fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.line_scan = 0;
        self.args.clear();
    }

    /// Finds the end of the `*`/`$` line starting at `self.pos` (see
    /// [`find_line`]); a line over `max_inline_len` fails with `too_big`.
    fn line(&mut self, buf: &[u8], too_big: ProtocolError) -> Result<Option<usize>, ProtocolError> {
        find_line(
            buf,
            self.pos,
            &mut self.line_scan,
            self.limits.max_inline_len,
            too_big,
            #[cfg(test)]
            &mut self.scanned,
        )
    }

    /// Parses one inline line. `Ok(None)`: incomplete; `Ok(Some(None))`: an
    /// empty line, consumed and skipped.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Option<Request>>, ProtocolError> {
        let from = self.line_scan;
        let hay = buf.get(from..).unwrap_or_default();
        let found = find_byte(hay, b'\n');
        #[cfg(test)]
        {
            self.scanned += found.map_or(hay.len(), |i| i + 1);
        }
        let Some(nl) = found.map(|i| from + i) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            self.line_scan = buf.len();
            return Ok(None);
        };
        // Unlike redis-server, whose check depends on how the line was split
        // into reads, any line longer than the limit is refused.
        if nl > self.limits.max_inline_len {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        let line = match &buf[..nl] {
            [head @ .., b'\r'] => head,
            l => l,
        };
        let mut flat = Vec::new();
        let mut spans: SmallVec<[(usize, usize); 8]> = SmallVec::new();
        split_args(line, &mut flat, &mut spans)?;
        let _ = buf.split_to(nl + 1);
        self.reset();
        if spans.is_empty() {
            return Ok(Some(None));
        }
        let args = spans.iter().map(|&(s, e)| &flat[s..e]);
        Ok(Some(Some(Request::build(args, spans.len()))))
    }
}

#[cfg(test)]
mod tests;
