//! A client's replies in request order. Every request takes a place (its
//! token); replies fill places in any order, as they arrive from any node;
//! only the ready prefix leaves. Also counts what is still awaited and what
//! is held back (see `Session::start`). Pure bookkeeping: no I/O.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::redirect::Followed;
use crate::protocol::Protocol;

use super::output::Output;

/// A place in the reply order. Kept small (56 bytes, under a cache line):
/// a pipeline's places are touched once per request and reply, and cache
/// misses on them showed in profiles when each held a whole parsed `Request`.
struct Entry {
    state: State,
    /// Redirects followed so far.
    followed: Followed,
    /// [`HELD`] and [`SILENT`], in one byte to keep the entry small.
    marks: u8,
    /// The protocol the client spoke when it sent the request: its reply
    /// comes in that one, even if a later `HELLO` switched.
    proto: Protocol,
    /// The command counted when the reply is taken ([`NOT_COUNTED`] for a
    /// place no request took, e.g. a pub/sub message).
    command: u16,
    /// When the read that brought the request in happened, in microseconds
    /// since [`Replies::base`] (wrapping: durations up to 71 minutes).
    read_us: u32,
}

/// [`Entry::marks`]: not sent yet.
const HELD: u8 = 1;
/// [`Entry::marks`]: its reply is dropped, not written (`CLIENT REPLY
/// OFF|SKIP`).
const SILENT: u8 = 2;

/// [`Entry::command`] of places that are not a request's.
const NOT_COUNTED: u16 = u16::MAX;

enum State {
    /// Waiting; the request's bytes are kept in case it must be sent again.
    Pending(Bytes),
    Ready(Bytes),
    /// A reply in several chunks written one after another (`KEYS`: the
    /// masters' own replies under keyway's header), shared, never copied.
    Chunks(Vec<Bytes>),
}

impl Entry {
    fn is_ready(&self) -> bool {
        !matches!(self.state, State::Pending(_))
    }
}

/// The ordered replies of one client; see the module docs.
pub struct Replies {
    /// What [`Entry::read_us`] counts from.
    base: Instant,
    /// The current read's time, for the places it brings.
    read_us: u32,
    /// The command the next place is for, if a request's.
    stamp: Option<u16>,
    entries: VecDeque<Entry>,
    /// Entries without a reply (sent or held).
    waiting: usize,
    /// Entries held back.
    held: usize,
    /// Bytes of the replies that are ready and not taken yet.
    ready_bytes: usize,
    /// Bytes of the requests still waiting for their replies.
    pending_bytes: usize,
    /// Token of `entries[0]`; tokens count requests since the session began.
    front_token: u64,
}

impl Default for Replies {
    fn default() -> Replies {
        Replies {
            base: Instant::now(),
            read_us: 0,
            stamp: None,
            entries: VecDeque::new(),
            waiting: 0,
            held: 0,
            ready_bytes: 0,
            pending_bytes: 0,
            front_token: 0,
        }
    }
}

impl Replies {
    /// The requests parsed from now on came in with a read at `at`.
    pub fn read_at(&mut self, at: Instant) {
        self.read_us = self.micros(at);
    }

    /// The next place taken is request `command`'s (an ACL id, or
    /// [`crate::stats::commands::UNKNOWN`]); `None`: not a request's.
    pub fn stamp(&mut self, command: Option<u16>) {
        self.stamp = command;
    }

    fn micros(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.base).as_micros() as u32
    }

    /// Places in the queue (answered or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No place at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Requests sent and not answered yet (held ones excluded).
    pub fn in_flight(&self) -> usize {
        self.waiting - self.held
    }

    /// Requests held back.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes a place with its reply already known; returns its token.
    pub fn push_ready(&mut self, reply: Bytes) -> u64 {
        self.ready_bytes += reply.len();
        self.push(State::Ready(reply), Protocol::Resp2)
    }

    /// Takes a place for a request (its raw bytes) whose reply will come
    /// in `proto`; returns its token.
    pub fn push_pending(&mut self, request: Bytes, proto: Protocol) -> u64 {
        self.waiting += 1;
        self.pending_bytes += request.len();
        self.push(State::Pending(request), proto)
    }

    fn push(&mut self, state: State, proto: Protocol) -> u64 {
        let token = self.front_token + self.entries.len() as u64;
        self.entries.push_back(Entry {
            state,
            followed: Followed::default(),
            marks: 0,
            proto,
            command: self.stamp.take().unwrap_or(NOT_COUNTED),
            read_us: self.read_us,
        });
        token
    }

    /// Drops the reply of the last place taken when it comes
    /// (`CLIENT REPLY OFF|SKIP`).
    pub fn silence_last(&mut self) {
        if let Some(entry) = self.entries.back_mut() {
            entry.marks |= SILENT;
        }
    }

    fn index(&self, token: u64) -> Option<usize> {
        let i = token.checked_sub(self.front_token)? as usize;
        (i < self.entries.len()).then_some(i)
    }

    /// The request bytes of place `token` and the protocol its reply must
    /// come in, while it waits for its reply.
    pub fn request(&self, token: u64) -> Option<(&Bytes, Protocol)> {
        let entry = &self.entries[self.index(token)?];
        match &entry.state {
            State::Pending(request) => Some((request, entry.proto)),
            State::Ready(_) | State::Chunks(_) => None,
        }
    }

    /// Fills place `token` (once; later replies for it are ignored).
    pub fn complete(&mut self, token: u64, reply: Bytes) {
        self.fill(token, reply.len(), State::Ready(reply));
    }

    /// Fills place `token` with a reply made of `chunks`, in order (once,
    /// as [`Replies::complete`]).
    pub fn complete_chunks(&mut self, token: u64, chunks: Vec<Bytes>) {
        let len = chunks.iter().map(Bytes::len).sum();
        self.fill(token, len, State::Chunks(chunks));
    }

    fn fill(&mut self, token: u64, len: usize, state: State) {
        let Some(i) = self.index(token) else { return };
        let entry = &mut self.entries[i];
        let State::Pending(request) = &entry.state else {
            return;
        };
        self.pending_bytes -= request.len();
        self.ready_bytes += len;
        entry.state = state;
        self.waiting -= 1;
    }

    /// The redirects entry `token` followed so far, while it waits.
    pub fn followed(&mut self, token: u64) -> Option<&mut Followed> {
        let i = self.index(token)?;
        Some(&mut self.entries[i].followed)
    }

    /// Holds place `token` back instead of sending it.
    pub fn hold(&mut self, token: u64) {
        if let Some(i) = self.index(token) {
            if self.entries[i].marks & HELD == 0 {
                self.entries[i].marks |= HELD;
                self.held += 1;
            }
        }
    }

    /// When something is held and nothing is in flight any more: un-holds
    /// everything and returns the tokens to send again, in order (every
    /// place without a reply is then a held one). Otherwise an empty range.
    pub fn release(&mut self) -> Range<u64> {
        let end = self.front_token + self.entries.len() as u64;
        if self.held == 0 || self.in_flight() > 0 {
            return end..end;
        }
        self.held = 0;
        self.entries.iter_mut().for_each(|e| e.marks &= !HELD);
        let first = self.entries.iter().position(|e| !e.is_ready());
        first.map_or(end, |i| self.front_token + i as u64)..end
    }

    /// Moves the ready replies at the front into `out`, telling `record`
    /// each request's command, its time from its read until now and its
    /// reply (the first chunk of a reply in several);
    /// returns how many places it freed.
    pub fn take_ready(
        &mut self,
        out: &mut Output,
        mut record: impl FnMut(u16, Duration, &[u8]),
    ) -> usize {
        let mut taken = 0;
        let mut now_us = None;
        while self.entries.front().is_some_and(Entry::is_ready) {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            if entry.command != NOT_COUNTED {
                let now = *now_us.get_or_insert_with(|| self.micros(Instant::now()));
                let took = u64::from(now.wrapping_sub(entry.read_us));
                let head = match &entry.state {
                    State::Ready(reply) => reply,
                    State::Chunks(chunks) => chunks.first().map_or(&[][..], |c| c),
                    State::Pending(_) => &[][..],
                };
                record(entry.command, Duration::from_micros(took), head);
            }
            let silent = entry.marks & SILENT != 0;
            match entry.state {
                State::Ready(reply) if silent => self.ready_bytes -= reply.len(),
                State::Chunks(chunks) if silent => {
                    self.ready_bytes -= chunks.iter().map(Bytes::len).sum::<usize>();
                }
                State::Ready(reply) => {
                    self.ready_bytes -= reply.len();
                    out.push_shared(reply);
                    out.count_reply();
                }
                State::Chunks(chunks) => {
                    for chunk in chunks {
                        self.ready_bytes -= chunk.len();
                        out.push_shared(chunk);
                    }
                    out.count_reply();
                }
                State::Pending(_) => {}
            }
            taken += 1;
        }
        self.front_token += taken as u64;
        taken
    }

    /// Places still without a reply.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Bytes of the requests still waiting for their replies (sent or
    /// held).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Bytes of replies that are ready but not taken yet (some may wait
    /// behind a reply still missing).
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Replies that are ready but not taken yet.
    pub fn ready_count(&self) -> usize {
        self.entries.len() - self.waiting
    }

    /// Forgets the bytes of every ready reply (the client is being
    /// closed); their places stay, empty.
    pub fn drop_ready(&mut self) {
        for entry in &mut self.entries {
            if entry.is_ready() {
                entry.state = State::Ready(Bytes::new());
            }
        }
        self.ready_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> Bytes {
        Bytes::copy_from_slice(name.as_bytes())
    }

    fn bytes(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn replies_leave_in_request_order_whatever_order_they_arrive_in() {
        let mut q = Replies::default();
        let a = q.push_pending(request("a"), Protocol::Resp2);
        let b = q.push_pending(request("b"), Protocol::Resp2);
        let c = q.push_ready(bytes("+c\r\n"));
        let d = q.push_pending(request("d"), Protocol::Resp2);
        assert_eq!((a, b, c, d), (0, 1, 2, 3));
        assert_eq!(q.pending_bytes(), 3, "a, b and d wait");
        let mut out = Output::default();
        q.complete(b, bytes("+b\r\n"));
        assert_eq!(q.pending_bytes(), 2);
        assert_eq!(q.take_ready(&mut out, |_, _, _| {}), 0, "a still missing");
        assert_eq!(q.ready_bytes(), 8, "+b and +c wait behind a");
        q.complete(a, bytes("+a\r\n"));
        assert_eq!(q.take_ready(&mut out, |_, _, _| {}), 3);
        assert_eq!(out.contents(), b"+a\r\n+b\r\n+c\r\n");
        assert_eq!((q.waiting(), q.ready_bytes()), (1, 0));
        q.complete(d, bytes("+d\r\n"));
        q.complete(d, bytes("+late duplicate\r\n"));
        assert_eq!(q.pending_bytes(), 0, "a duplicate counts nothing");
        q.take_ready(&mut out, |_, _, _| {});
        assert_eq!(out.contents(), b"+a\r\n+b\r\n+c\r\n+d\r\n");
        assert!(q.is_empty());
        q.complete(a, bytes("+stale\r\n"));
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn queued_replies_are_counted_and_dropped_when_the_client_is_closed() {
        let mut q = Replies::default();
        let a = q.push_pending(request("a"), Protocol::Resp2);
        let b = q.push_pending(request("b"), Protocol::Resp2);
        q.push_ready(bytes("+c\r\n"));
        q.complete(b, bytes("+b\r\n"));
        assert_eq!((q.ready_count(), q.ready_bytes()), (2, 8));
        q.drop_ready();
        assert_eq!(
            (q.ready_count(), q.ready_bytes()),
            (2, 0),
            "places kept, bytes gone"
        );
        q.complete(a, bytes("+a\r\n"));
        let mut out = Output::default();
        assert_eq!(q.take_ready(&mut out, |_, _, _| {}), 3);
        assert_eq!(out.contents(), b"+a\r\n");
        assert_eq!(
            out.replies(),
            3,
            "each place counts as a reply in the output"
        );
    }

    #[test]
    fn held_places_are_released_once_nothing_is_in_flight() {
        let mut q = Replies::default();
        let sent = q.push_pending(request("sent"), Protocol::Resp2);
        let local = q.push_ready(bytes("+PONG\r\n"));
        let held1 = q.push_pending(request("h1"), Protocol::Resp2);
        let held2 = q.push_pending(request("h2"), Protocol::Resp2);
        q.hold(held1);
        q.hold(held2);
        q.hold(held2);
        assert_eq!((q.in_flight(), q.held()), (1, 2));
        assert!(q.release().is_empty(), "`sent` is still in flight");
        q.complete(sent, bytes("+OK\r\n"));
        let again: Vec<u64> = q.release().collect();
        // The local reply between them is answered already; restarting it
        // is a no-op because it has no request left.
        assert_eq!(again, vec![held1, held2]);
        assert!(q.request(local).is_none());
        assert_eq!(q.request(held1).map(|r| &r.0[..]), Some(&b"h1"[..]));
        assert_eq!((q.in_flight(), q.held()), (2, 0));
        assert!(q.release().is_empty(), "nothing held any more");
    }

    #[test]
    fn a_reply_in_chunks_leaves_whole_in_its_place() {
        let mut q = Replies::default();
        let keys = q.push_pending(request("keys"), Protocol::Resp2);
        q.push_ready(bytes("+after\r\n"));
        let chunks = vec![bytes("*2\r\n"), bytes("$1\r\na\r\n"), bytes("$1\r\nb\r\n")];
        q.complete_chunks(keys, chunks);
        q.complete(keys, bytes("+late duplicate\r\n"));
        assert_eq!((q.waiting(), q.ready_bytes()), (0, 26));
        let mut out = Output::default();
        assert_eq!(q.take_ready(&mut out, |_, _, _| {}), 2);
        assert_eq!(out.contents(), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n+after\r\n");
        assert_eq!(q.ready_bytes(), 0);
    }

    #[test]
    fn silenced_places_keep_their_order_but_write_nothing() {
        let mut q = Replies::default();
        let a = q.push_pending(request("a"), Protocol::Resp2);
        q.silence_last();
        q.push_ready(bytes("+b\r\n"));
        q.push_ready(bytes("+c\r\n"));
        q.silence_last();
        let d = q.push_pending(request("d"), Protocol::Resp2);
        q.hold(d);
        q.complete(a, bytes("-ERR dropped too\r\n"));
        let mut out = Output::default();
        let mut counted = 0;
        assert_eq!(q.take_ready(&mut out, |_, _, _| counted += 1), 3);
        assert_eq!(out.contents(), b"+b\r\n");
        assert_eq!((q.ready_bytes(), q.held()), (0, 1));
        assert_eq!(counted, 0, "no request was stamped");
    }

    #[test]
    fn entries_stay_small() {
        assert!(std::mem::size_of::<Entry>() <= 56);
    }

    #[test]
    fn budgets_are_counted_per_place() {
        use crate::cluster::redirect::{self, Budgets, Decision};
        let mut q = Replies::default();
        let t = q.push_pending(request("x"), Protocol::Resp2);
        let other = q.push_pending(request("y"), Protocol::Resp2);
        let budgets = Budgets {
            failover_hold: Duration::ZERO,
            redirects: 2,
            tryagains: 2,
        };
        let moved = b"-MOVED 1 h:1\r\n";
        let spend = |q: &mut Replies, t| {
            q.followed(t)
                .map(|f| redirect::decide(moved, f, budgets) != Decision::Deliver)
        };
        assert_eq!(spend(&mut q, t), Some(true));
        assert_eq!(spend(&mut q, t), Some(true));
        assert_eq!(q.followed(t).unwrap().redirects, 2);
        assert_eq!(q.followed(other).unwrap().redirects, 0);
        assert_eq!(q.followed(99), None);
    }
}
