//! One client's socket: the reader (parse, submit, pause while the
//! pipeline is full) and the writer side (one write per ready batch of
//! replies; the rest waits for the socket), and the end of the session:
//! `CLIENT KILL` (at once) or the shutdown's drain (what was received is
//! answered, then the client is closed).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::frontend::client_errors::{self, ClientError};
use crate::protocol::{encode, RequestParser};
use crate::registry::Stop;
use crate::stats::commands::error_kind;
use crate::wake::LocalNotify;

use super::output::Output;
use super::Session;

/// Smallest free space offered to a read; the buffer is allocated on the
/// first read, so idle clients cost no buffer.
const READ_RESERVE: usize = 4096;
/// Ready replies are written before the rest of the pipeline is answered
/// once they reach this size; below it, one write per pipeline is cheaper.
const EARLY_WRITE: usize = 64 * 1024;
/// How long a closing session may take to flush its last replies.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(5);

/// Why the reader stopped.
#[derive(PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// The client went away: nothing more to write.
    Gone,
    /// QUIT or a protocol error: flush what is queued, then close.
    Close,
}

/// The writing side of a session: replies taken from the queue and not
/// yet written, and what the writer task waits on. These change together,
/// on every flush.
#[derive(Default)]
pub(super) struct Writing {
    /// Replies taken from the queue and not yet written.
    pub(super) out: RefCell<Output>,
    /// Set when the socket took less than offered: the writer task waits
    /// for it to drain; flushes leave the rest to it meanwhile.
    pub(super) write_blocked: Cell<bool>,
    /// Set when writing failed: the client is gone (or is being closed;
    /// replies that come for it now are dropped).
    pub(super) broken: Cell<bool>,
    /// Why the session closes, when keyway closes it for reading too
    /// slowly (`keyway_clients_closed_total{reason}`).
    pub(super) closed_for: Cell<Option<&'static str>>,
    /// Wakes the writer task: writes blocked, failed, or closing.
    pub(super) writer: LocalNotify,
    /// Woken when replies left the queue (reading may resume).
    pub(super) space: LocalNotify,
    /// No more requests are read: write what is queued, then close.
    pub(super) closing: Cell<bool>,
    /// Messages were queued since the hub last flushed this client.
    pub(super) flush_due: Cell<bool>,
    /// Since when the unsent output of this subscriber is over the soft limit.
    pub(super) over_soft_limit: Cell<Option<Instant>>,
    /// Reply bytes last counted in the registry as held for this client
    /// while its socket takes no more (`proxy.max_memory_mb`).
    pub(super) buffered: Cell<usize>,
}

impl Session {
    /// Reads and writes until the client leaves, or until told to `stop`:
    /// by `CLIENT KILL` from another client (closes at once, as Redis
    /// does), or by the shutdown's drain (reads no more, answers what it
    /// received, closes; at the latest when `proxy.shutdown_grace_s` ends).
    /// Returns why the connection ends (`keyway_clients_closed_total`).
    pub(super) async fn run(&self, stop: &mut oneshot::Receiver<Stop>) -> &'static str {
        let reader = self.read_loop();
        let writer = self.write_loop();
        tokio::pin!(reader, writer);
        let (wait, why) = tokio::select! {
            biased;
            why = stop => match why {
                Ok(Stop::Drain) => (self.worker.live().shutdown_grace, "shutdown"),
                Ok(Stop::Kill) | Err(_) => return "killed",
                Ok(Stop::OverMemory) => {
                    self.drop_unsent();
                    return "max_memory";
                }
            },
            end = &mut reader => match end {
                ReadEnd::Close => (FLUSH_ON_CLOSE, "quit_or_protocol_error"),
                ReadEnd::Gone => return "client_left",
            },
            // The socket failed, or the client read too slowly.
            _ = &mut writer => return self.io.closed_for.get().unwrap_or("write_ended"),
        };
        self.io.closing.set(true);
        self.flush();
        self.io.writer.notify_one();
        let _ = tokio::time::timeout(wait, &mut writer).await;
        why
    }

    pub(super) async fn read_loop(&self) -> ReadEnd {
        let live = self.worker.live();
        let (max_pipeline, max_bytes) = (live.max_pipeline.get(), live.max_pipeline_bytes);
        let mut parser = RequestParser::new(live.limits);
        drop(live);
        let mut buf = BytesMut::new();
        let record = self.client.borrow().record.clone();
        loop {
            // Backpressure: requests read and not answered are bounded in
            // count and in bytes (one request of any size still goes).
            while {
                let replies = self.replies.borrow();
                replies.len() >= max_pipeline || replies.pending_bytes() >= max_bytes
            } {
                self.io.space.notified().await;
            }
            if poll_fn(|cx| self.stream.poll_read_ready(cx)).await.is_err() {
                return ReadEnd::Gone;
            }
            if buf.capacity() - buf.len() < READ_RESERVE {
                // Doubling keeps a large value's arrival linear in its size.
                buf.reserve(buf.len().max(READ_RESERVE));
            }
            match self.stream.read_some(&mut buf) {
                Ok(None) => continue,
                Ok(Some(0)) | Err(_) => return ReadEnd::Gone,
                Ok(Some(_)) => {
                    let now = Instant::now();
                    record.touch(now);
                    self.replies.borrow_mut().read_at(now);
                }
            }
            loop {
                match parser.parse(&mut buf) {
                    Ok(Some(request)) => {
                        if !self.submit(request) {
                            return ReadEnd::Close;
                        }
                    }
                    Ok(None) => {
                        self.release_held();
                        break;
                    }
                    Err(e) => {
                        crate::metrics::protocol_error();
                        let text = format!("ERR Protocol error: {e}");
                        self.push_local(|out| encode::error(out, text.as_bytes()));
                        let peer = self.client.borrow().record.peer;
                        client_errors::log(ClientError::Protocol, peer, &e);
                        return ReadEnd::Close;
                    }
                }
            }
            self.flush();
            if self.io.broken.get() {
                return ReadEnd::Gone;
            }
        }
    }

    /// Finishes writes the socket could not take at once, and ends the
    /// session once it is closing and everything is written.
    pub(super) async fn write_loop(&self) -> io::Result<()> {
        loop {
            if self.io.broken.get() {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if self.io.write_blocked.get() {
                // Also woken when keyway closes the client (output limit):
                // a client that reads nothing never makes its socket writable.
                tokio::select! {
                    writable = self.stream.writable() => {
                        writable?;
                        self.io.write_blocked.set(false);
                        self.flush();
                    }
                    () = self.io.writer.notified() => {}
                }
                continue;
            }
            if self.io.closing.get()
                && self.replies.borrow().is_empty()
                && self.io.out.borrow().is_empty()
                && !self.stream.wants_write()
            {
                return Ok(());
            }
            self.io.writer.notified().await;
        }
    }

    /// Closes a client whose replies queued in keyway (ready, and taken
    /// but not written) pass `client.output_limit_mb`, unless they are one
    /// reply: one reply larger than the limit is still delivered. Counts
    /// them towards `proxy.max_memory_mb`. Runs while the client's socket
    /// takes no more, so a client that reads never pays for the check.
    fn enforce_reply_limit(&self) {
        let live = self.worker.live();
        let (limit, max_memory) = (live.output_limit, live.max_memory);
        drop(live);
        if limit.is_none() && max_memory.is_none() {
            return;
        }
        let (queued, count) = {
            let replies = self.replies.borrow();
            let out = self.io.out.borrow();
            (
                replies.ready_bytes() + out.len(),
                replies.ready_count() + out.replies(),
            )
        };
        if let Some(max) = max_memory {
            self.count_buffered(queued, max);
        }
        if limit.map_or(true, |limit| queued <= limit) || count <= 1 {
            return;
        }
        let peer = self.client.borrow().record.peer;
        let detail = format!("{queued} bytes of {count} replies unsent");
        client_errors::log(ClientError::SlowReader, peer, &detail);
        self.io.closed_for.set(Some("output_limit"));
        self.drop_unsent();
        self.io.writer.notify_one();
    }

    /// Closes the client without writing what it has not read: its
    /// replies' memory goes now, not when the session ends, and replies
    /// that come for it later are dropped.
    fn drop_unsent(&self) {
        self.io.broken.set(true);
        *self.io.out.borrow_mut() = Output::default();
        self.replies.borrow_mut().drop_ready();
    }

    /// Counts `queued` reply bytes as held for this client in the
    /// registry; when all clients' pass `max` (`proxy.max_memory_mb`), the
    /// clients holding most are closed until they are under it again.
    /// Skipped while the client's state is being changed (the next flush
    /// counts it).
    pub(super) fn count_buffered(&self, queued: usize, max: usize) {
        let Ok(client) = self.client.try_borrow() else {
            return;
        };
        self.io.buffered.set(queued);
        let registry = &self.worker.shared.registry;
        if registry.set_buffered(&client.record, queued) <= max {
            return;
        }
        drop(client);
        for (peer, bytes) in registry.shed(max) {
            let detail = format!("{bytes} bytes of replies unsent");
            client_errors::log(ClientError::OverMemory, peer, &detail);
        }
    }

    /// Keeps a request that took `took` in keyway's slow log (not when
    /// the client's state is being changed right now, in the rare flush
    /// from inside such a change: a slow log entry is not worth a panic).
    #[cold]
    fn slow(&self, command: u16, took: Duration) {
        let shared = &self.worker.shared;
        let Ok(client) = self.client.try_borrow() else {
            return;
        };
        let record = &client.record;
        let name = record
            .names()
            .name
            .as_ref()
            .map_or_else(String::new, |n| String::from_utf8_lossy(n).into_owned());
        let max_len = shared.live.load().slowlog_max_len;
        shared
            .slowlog
            .record(max_len, took, command, record.peer, name);
    }

    /// Writes the ready replies at the queue's front once the whole pipeline
    /// is answered (or they pile up past [`EARLY_WRITE`]), in one write when
    /// the socket takes it all; what it does not take waits for the writer task.
    pub(super) fn flush(&self) {
        if self.io.broken.get() {
            return;
        }
        if self.io.write_blocked.get() {
            return self.enforce_reply_limit();
        }
        let mut out = self.io.out.borrow_mut();
        let waiting = {
            let mut replies = self.replies.borrow_mut();
            let answered = &self.worker.answered;
            let slower_than = self.worker.live().slowlog_slower_than;
            let record = |id, took, reply: &[u8]| {
                answered.record(id, took);
                if reply.first() == Some(&b'-') {
                    answered.record_error(error_kind(reply));
                }
                if slower_than.is_some_and(|limit| took >= limit) {
                    self.slow(id, took);
                }
            };
            if replies.take_ready(&mut out, record) > 0 {
                self.io.space.notify_one();
            }
            replies.waiting()
        };
        // (TLS records may wait in the stream with `out` empty.)
        let nothing = out.is_empty() && !self.stream.wants_write();
        if nothing || (waiting > 0 && out.len() < EARLY_WRITE && !self.io.closing.get()) {
            return;
        }
        match out.write_to(&self.stream) {
            Ok(true) => {
                if self.io.closing.get() {
                    self.io.writer.notify_one();
                }
                if self.io.buffered.get() > 0 {
                    self.count_buffered(0, usize::MAX);
                }
            }
            Ok(false) => {
                self.io.write_blocked.set(true);
                self.io.writer.notify_one();
                drop(out);
                self.enforce_reply_limit();
            }
            Err(_) => {
                self.io.broken.set(true);
                self.io.writer.notify_one();
            }
        }
    }
}
