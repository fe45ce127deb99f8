//! The pure half of a split: [`Plan::new`] groups a request's keys by slot
//! into one request per slot, and [`Plan::join`] turns the parts' replies
//! into the one reply the client expects. No sockets: [`super::Split`]
//! sends the parts and records their replies here.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::backend::pool::NodeConns;
use crate::backend::BackendError;
use crate::cluster::redirect::Followed;
use crate::cluster::{Access, Slot, SLOT_COUNT};
use crate::command::SplitJoin;
use crate::config::ReadPolicy;
use crate::protocol::{encode, parse_i64, Limits, ReplyScanner, Request};
use crate::router::KeyGroups;

/// "No part yet" in the slot table, and the end of a part's key chain.
const NONE: u32 = u32::MAX;

/// Longest node error quoted in an MSET failure.
const MAX_QUOTED_ERROR: usize = 160;
/// Longest key list in an MSET failure, before "(and N more)".
const MAX_KEY_LIST: usize = 256;
/// Longest single key quoted in an MSET failure.
const MAX_QUOTED_KEY: usize = 48;

thread_local! {
    /// Part index by slot while a plan is built; all `NONE` between builds.
    /// One per worker thread, so grouping keys costs no allocation and no
    /// hashing whatever the number of keys.
    static PART_OF_SLOT: RefCell<Box<[u32]>> =
        RefCell::new(vec![NONE; SLOT_COUNT as usize].into_boxed_slice());
}

/// One request split per slot: each part's request bytes and, once it has
/// come, its final reply (redirects already followed).
pub struct Plan {
    join: SplitJoin,
    access: Access,
    /// Where read parts go (the client's read policy when it is sent).
    read_policy: ReadPolicy,
    /// Arguments per key, the key included.
    step: usize,
    parts: Vec<Part>,
    /// Every part's request, one after the other.
    requests: BytesMut,
    /// `SplitJoin::Values` only: for each key in the client's order, the index of
    /// its value among all parts' values (part 0's first, then part 1's...).
    order: Vec<u32>,
}

struct Part {
    slot: Slot,
    /// Keys in this part (duplicates included).
    keys: u32,
    /// Where its request is in `Plan::requests`: the command name, then
    /// each of its keys' arguments in client order. While the plan is
    /// built: its first and last key, and its arguments' size.
    request: (usize, usize),
    first: u32,
    /// The final reply.
    reply: Option<Result<Bytes, BackendError>>,
    progress: Progress,
}

/// How far a part went through redirects; [`super::Split`] keeps it here.
#[derive(Default)]
pub(super) struct Progress {
    /// Redirects followed so far.
    pub(super) followed: Followed,
    /// Where the part went last, when it went there after an `ASK`: a
    /// `TRYAGAIN` from that (importing) node is retried there.
    pub(super) asked: Option<Rc<NodeConns>>,
}

impl Plan {
    /// Splits `request`, whose keys sit as `groups` says (the router checked
    /// it), into one part per slot. Allocates the part list, one buffer
    /// holding every part's request, a chain of the keys through their
    /// parts, and for MGET the value order; hashes each key once.
    pub fn new(request: &Request, groups: KeyGroups) -> Plan {
        let KeyGroups {
            join,
            step,
            count,
            access,
        } = groups;
        let group = |k: usize| 1 + k * step..1 + (k + 1) * step;
        // As many parts as keys at most; past a thousand, let it grow.
        let mut parts: Vec<Part> = Vec::with_capacity(count.min(1024));
        // The keys of one part are chained through `next`, in client order;
        // `Part::request` holds (last key, arguments' size) meanwhile.
        let mut next = vec![NONE; count];
        PART_OF_SLOT.with(|table| {
            let mut table = table.borrow_mut();
            for k in 0..count {
                let slot = Slot::of_key(request.arg(1 + k * step));
                let size = request.arg_frames(group(k)).len();
                let p = &mut table[slot.index()];
                if *p == NONE {
                    *p = parts.len() as u32;
                    parts.push(Part {
                        slot,
                        keys: 0,
                        request: (k, 0),
                        first: k as u32,
                        reply: None,
                        progress: Progress::default(),
                    });
                } else {
                    let last = &mut parts[*p as usize].request.0;
                    next[*last] = k as u32;
                    *last = k;
                }
                let part = &mut parts[*p as usize];
                part.keys += 1;
                part.request.1 += size;
            }
            for part in &parts {
                table[part.slot.index()] = NONE;
            }
        });
        let name = request.arg_frames(0..1);
        let total: usize = parts
            .iter()
            .map(|part| {
                let argc = 1 + part.keys as usize * step;
                1 + encode::digits(argc) + 2 + name.len() + part.request.1
            })
            .sum();
        let mut buf = BytesMut::with_capacity(total);
        let mut order = match join {
            SplitJoin::Values => vec![0; count],
            SplitJoin::AllOk | SplitJoin::Sum => Vec::new(),
        };
        let mut value = 0;
        for part in &mut parts {
            let start = buf.len();
            encode::array_header(&mut buf, 1 + part.keys as usize * step);
            buf.extend_from_slice(name);
            let mut k = part.first;
            while k != NONE {
                buf.extend_from_slice(request.arg_frames(group(k as usize)));
                if let Some(at) = order.get_mut(k as usize) {
                    *at = value;
                    value += 1;
                }
                k = next[k as usize];
            }
            part.request = (start, buf.len());
        }
        Plan {
            read_policy: ReadPolicy::Master,
            join,
            access,
            step,
            parts,
            requests: buf,
            order,
        }
    }

    /// Whether the command writes (its parts' nodes are then the ones
    /// `WAIT` asks).
    pub fn access(&self) -> Access {
        self.access
    }

    /// Where read parts go.
    pub fn read_policy(&self) -> ReadPolicy {
        self.read_policy
    }

    /// Sends read parts as `policy` says (the client's, when it sends).
    pub fn read_by(&mut self, policy: ReadPolicy) {
        self.read_policy = policy;
    }

    /// Number of parts (slots).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The slot of part `i`.
    pub fn slot(&self, i: usize) -> Slot {
        self.parts[i].slot
    }

    /// The request of part `i`.
    pub fn request(&self, i: usize) -> &[u8] {
        let (start, end) = self.parts[i].request;
        &self.requests[start..end]
    }

    /// Part `i`'s way through redirects.
    pub(super) fn progress(&mut self, i: usize) -> &mut Progress {
        &mut self.parts[i].progress
    }

    /// Records part `i`'s final reply; false if it had one already.
    pub fn set_reply(&mut self, i: usize, reply: Result<Bytes, BackendError>) -> bool {
        let slot = &mut self.parts[i].reply;
        if slot.is_some() {
            return false;
        }
        *slot = Some(reply);
        true
    }

    /// Appends the joined reply; every part must have its reply. Values and
    /// errors are the nodes' own bytes, in the protocol the parts were sent
    /// in (the client's).
    pub fn join(&self, out: &mut BytesMut) {
        match self.join {
            SplitJoin::AllOk => self.all_ok(out),
            SplitJoin::Values | SplitJoin::Sum => {
                if let Some(error) = self.parts.iter().find_map(|p| p.error()) {
                    return match error {
                        Ok(bytes) => out.extend_from_slice(bytes),
                        Err(e) => e.write_reply(out),
                    };
                }
                let joined = match self.join {
                    SplitJoin::Values => self.values(out),
                    _ => self.sum(out),
                };
                if joined.is_none() {
                    encode::error(out, b"ERR keyway could not merge a node's reply");
                }
            }
        }
    }

    /// MGET: `*count`, then every value, in the client's key order, as the
    /// nodes sent it. `None` when a part is not an array of its keys' values.
    fn values(&self, out: &mut BytesMut) -> Option<()> {
        let mut values: Vec<&[u8]> = Vec::with_capacity(self.order.len());
        let mut size = 0;
        for part in &self.parts {
            let reply = part.ok()?;
            size += reply.len();
            elements(reply, part.keys as usize, |value| values.push(value))?;
        }
        out.reserve(size + 16);
        encode::array_header(out, self.order.len());
        for &i in &self.order {
            out.extend_from_slice(values[i as usize]);
        }
        Some(())
    }

    /// DEL, UNLINK, EXISTS, TOUCH: the sum.
    fn sum(&self, out: &mut BytesMut) -> Option<()> {
        let mut sum: i64 = 0;
        for part in &self.parts {
            let line = part.ok()?.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
            sum = sum.saturating_add(parse_i64(line)?);
        }
        encode::integer(out, sum);
        Some(())
    }

    /// MSET: `+OK` when every part said so; otherwise an error naming the
    /// first failed part and the keys that may have been written.
    fn all_ok(&self, out: &mut BytesMut) {
        let failed = |p: &&Part| p.ok() != Some(b"+OK\r\n");
        let Some(first) = self.parts.iter().position(|p| failed(&p)) else {
            return encode::simple(out, b"OK");
        };
        let others = self.parts.iter().filter(failed).count() - 1;
        let name = Request::reparse(self.request(first), Limits::default())
            .map(|r| String::from_utf8_lossy(r.arg(0)).to_uppercase())
            .unwrap_or_else(|| "MSET".into());
        let first = &self.parts[first];
        let why = match &first.reply {
            Some(Ok(bytes)) => quoted_error(bytes),
            Some(Err(e)) => {
                let mut text = BytesMut::new();
                e.write_reply(&mut text);
                quoted_error(&text)
            }
            None => "no reply".into(),
        };
        let mut text = format!(
            "ERR keyway split {name} across {} slots; the part for slot {} failed ({why})",
            self.parts.len(),
            first.slot
        );
        if others > 0 {
            text.push_str(&format!(" and {others} more part(s) failed"));
        }
        let mut listed = 0;
        let mut unlisted = 0;
        let mut keys = String::new();
        for (i, _) in self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.may_have_run())
        {
            let Some(request) = Request::reparse(self.request(i), Limits::default()) else {
                continue;
            };
            for i in (1..request.argc()).step_by(self.step) {
                if keys.len() >= MAX_KEY_LIST {
                    unlisted += 1;
                    continue;
                }
                let key = request.arg(i);
                let shown = String::from_utf8_lossy(&key[..key.len().min(MAX_QUOTED_KEY)]);
                let ellipsis = if key.len() > MAX_QUOTED_KEY {
                    "..."
                } else {
                    ""
                };
                if listed > 0 {
                    keys.push(' ');
                }
                keys.push_str(&format!("{shown:?}{ellipsis}"));
                listed += 1;
            }
        }
        if listed == 0 {
            text.push_str("; no key was written");
        } else {
            text.push_str("; keys that may have been written: ");
            text.push_str(&keys);
            if unlisted > 0 {
                text.push_str(&format!(" (and {unlisted} more)"));
            }
        }
        encode::error(out, text.as_bytes());
    }
}

impl Part {
    /// The reply, when it is not an error.
    fn ok(&self) -> Option<&[u8]> {
        match &self.reply {
            Some(Ok(bytes)) if !is_error(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The reply, when it is an error (a node's, or keyway's own).
    fn error(&self) -> Option<Result<&Bytes, &BackendError>> {
        match &self.reply {
            Some(Ok(bytes)) if is_error(bytes) => Some(Ok(bytes)),
            Some(Err(e)) => Some(Err(e)),
            _ => None,
        }
    }

    /// Whether the part may have run: it succeeded, or its connection
    /// failed after it was sent. A node's error means it did not run.
    fn may_have_run(&self) -> bool {
        match &self.reply {
            Some(Ok(bytes)) => !is_error(bytes),
            Some(Err(BackendError::Unreachable(_) | BackendError::Refused(..))) | None => false,
            Some(Err(_)) => true,
        }
    }
}

/// An error reply: simple (`-`) or, in RESP3, blob (`!`).
fn is_error(reply: &[u8]) -> bool {
    matches!(reply.first(), Some(b'-' | b'!'))
}

/// A node's error line, without its `-` and CRLF, bounded.
fn quoted_error(reply: &[u8]) -> String {
    let line = reply.strip_prefix(b"-").unwrap_or(reply);
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let mut text = String::from_utf8_lossy(&line[..line.len().min(MAX_QUOTED_ERROR)]).into_owned();
    if line.len() > MAX_QUOTED_ERROR {
        text.push_str("...");
    }
    text
}

/// Calls `f` with each element of `reply`, which must be an array of `n`
/// elements; `None` otherwise. Elements are framed, not decoded. `reply` is
/// one whole frame, as backend connections deliver them, so the one element
/// of a one-element array is simply the rest of it.
fn elements<'a>(reply: &'a [u8], n: usize, mut f: impl FnMut(&'a [u8])) -> Option<()> {
    let cr = reply.iter().position(|&b| b == b'\r')?;
    let len = parse_i64(reply.get(1..cr)?)?;
    if reply[0] != b'*' || usize::try_from(len).ok()? != n {
        return None;
    }
    let mut pos = cr + 2;
    if n == 1 {
        f(reply.get(pos..).filter(|rest| !rest.is_empty())?);
        return Some(());
    }
    let mut scanner = ReplyScanner::new(Limits::default());
    for _ in 0..n {
        let rest = reply.get(pos..)?;
        let len = scanner.scan(rest).ok()??;
        f(&rest[..len]);
        pos += len;
    }
    (pos == reply.len()).then_some(())
}

#[cfg(test)]
mod tests;
