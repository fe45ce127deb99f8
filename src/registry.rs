//! Every client of the process, whichever worker serves it: what `CLIENT
//! LIST` and `CLIENT INFO` show, how `CLIENT KILL` (and the shutdown's
//! drain) reaches a client on another thread, client ids, and the client
//! counters (`INFO clients`/`stats`, `client.max_clients`). A session
//! keeps its own state on its thread; the few things other threads may
//! read are mirrored here when they change (name, protocol, subscriptions,
//! `MULTI`), so the per-request path touches none of it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::protocol::{Protocol, Request};
use filter::Filter;

/// Counts over the registered clients ([`Registry::census`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Registered (connected and past admission).
    pub registered: usize,
    /// In a blocking command.
    pub blocked: usize,
    /// With at least one subscription.
    pub subscribed: usize,
    /// Speaking RESP3 (the others speak RESP2).
    pub resp3: usize,
}

/// Flag bits of a [`ClientRecord`], shown in `flags=`.
const NO_EVICT: u8 = 1;
const BLOCKED: u8 = 2;
const READ_REPLICAS: u8 = 4;

/// One client as other threads see it.
#[derive(Debug)]
pub struct ClientRecord {
    /// `CLIENT ID`.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// keyway's address the client connected to.
    pub local: SocketAddr,
    /// The client socket's file descriptor.
    fd: i32,
    connected: Instant,
    names: Mutex<Names>,
    /// Milliseconds after `connected` of the last read from the client.
    last_read_ms: AtomicU64,
    /// RESP version, 2 or 3.
    resp: AtomicU8,
    flags: AtomicU8,
    /// Channels + patterns, and shard channels.
    subscriptions: [AtomicU32; 3],
    /// Commands queued in `MULTI`, or -1 outside it.
    multi: AtomicI64,
    killed: AtomicBool,
    /// Reply bytes keyway holds for the client while its socket takes no
    /// more (part of [`Registry::buffered`]).
    buffered: AtomicUsize,
    /// Tells the session it was killed; taken by the kill.
    kill: Mutex<Option<oneshot::Sender<Stop>>>,
}

/// What the client said about itself.
#[derive(Debug, Default)]
pub struct Names {
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    /// The ACL user the client authenticated as; `None` is `default`.
    pub user: Option<Arc<str>>,
}

impl ClientRecord {
    /// The client's name and library, to read or change.
    pub fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a read from the client at `now` (for `idle=`).
    pub fn touch(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.connected).as_millis() as u64;
        self.last_read_ms.store(ms, Ordering::Relaxed);
    }

    /// Notes the client's protocol.
    pub fn set_protocol(&self, proto: Protocol) {
        self.resp.store(proto.version() as u8, Ordering::Relaxed);
    }

    /// Notes the client's subscription counts: channels, patterns, shard
    /// channels.
    pub fn set_subscriptions(&self, counts: [usize; 3]) {
        for (held, count) in self.subscriptions.iter().zip(counts) {
            held.store(count as u32, Ordering::Relaxed);
        }
    }

    /// Notes the commands queued in `MULTI` (`None` outside it).
    pub fn set_multi(&self, queued: Option<usize>) {
        let value = queued.map_or(-1, |n| n as i64);
        self.multi.store(value, Ordering::Relaxed);
    }

    /// Notes `CLIENT NO-EVICT on|off`.
    pub fn set_no_evict(&self, on: bool) {
        self.set_flag(NO_EVICT, on);
    }

    /// Notes `READONLY` (true) or `READWRITE`.
    pub fn set_read_replicas(&self, on: bool) {
        self.set_flag(READ_REPLICAS, on);
    }

    /// Notes that the client waits in a blocking command.
    pub fn set_blocked(&self, on: bool) {
        self.set_flag(BLOCKED, on);
    }

    fn set_flag(&self, flag: u8, on: bool) {
        if on {
            self.flags.fetch_or(flag, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// Whether the client has any subscription.
    fn subscribed(&self) -> bool {
        self.subscriptions
            .iter()
            .any(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// Whether `CLIENT KILL` picked this client.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Marks the client killed and wakes its session; false if it was
    /// killed already.
    fn kill(&self) -> bool {
        let first = !self.killed.swap(true, Ordering::AcqRel);
        if first {
            self.stop(Stop::Kill);
        }
        first
    }

    /// Tells the session to stop, unless it was told already (a client
    /// draining is closed by the drain's own deadline).
    fn stop(&self, why: Stop) {
        let sender = self.kill.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(why);
        }
    }

    /// The client's line in `CLIENT LIST` / `CLIENT INFO`, in redis-server's
    /// `key=value` form (the fields keyway knows; no memory figures).
    pub fn line(&self) -> String {
        fn text(v: &Option<Bytes>) -> std::borrow::Cow<'_, str> {
            v.as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        }
        let age = self.connected.elapsed();
        let idle_ms =
            (age.as_millis() as u64).saturating_sub(self.last_read_ms.load(Ordering::Relaxed));
        let [sub, psub, ssub] = self
            .subscriptions
            .each_ref()
            .map(|n| n.load(Ordering::Relaxed));
        let multi = self.multi.load(Ordering::Relaxed);
        let bits = self.flags.load(Ordering::Relaxed);
        let mut flags = String::new();
        for (on, letter) in [
            (self.subscribed(), 'P'),
            (multi >= 0, 'x'),
            (bits & BLOCKED != 0, 'b'),
            (bits & NO_EVICT != 0, 'e'),
            (bits & READ_REPLICAS != 0, 'r'),
        ] {
            if on {
                flags.push(letter);
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let names = self.names();
        let mut line = String::with_capacity(200);
        let _ = writeln!(
            line,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db=0 sub={sub} psub={psub} ssub={ssub} multi={multi} user={user} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.peer,
            self.local,
            self.fd,
            text(&names.name),
            age.as_secs(),
            idle_ms / 1000,
            self.resp.load(Ordering::Relaxed),
            text(&names.lib_name),
            text(&names.lib_ver),
            user = names.user.as_deref().unwrap_or("default"),
        );
        line
    }
}

/// Why a session is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `CLIENT KILL`: close at once, as redis-server does.
    Kill,
    /// keyway is shutting down: answer what was received, then close; an
    /// idle client closes at once.
    Drain,
    /// Its replies are the largest share of `proxy.max_memory_mb`: close
    /// at once, dropping them.
    OverMemory,
}

/// Every connected client by id, and the client counters.
pub struct Registry {
    by_id: Mutex<BTreeMap<u64, Arc<ClientRecord>>>,
    /// Clients connected now (counted at accept, before registration).
    connected: AtomicUsize,
    /// Clients accepted since start.
    accepted: AtomicU64,
    /// Clients refused at `client.max_clients` since start.
    rejected: AtomicU64,
    next_id: AtomicU64,
    /// Set once keyway drains: clients registered from then on are told
    /// at once.
    draining: AtomicBool,
    /// Reply bytes held for clients whose sockets take no more, summed
    /// over [`ClientRecord::buffered`].
    buffered: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            by_id: Mutex::default(),
            connected: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            buffered: AtomicUsize::new(0),
        }
    }
}

/// A client's place in [`Registry`]; leaving it removes the client.
pub struct Registration<'a> {
    registry: &'a Registry,
    /// The client's record.
    pub record: Arc<ClientRecord>,
    /// Resolves once `CLIENT KILL` picked the client or keyway drains. A
    /// oneshot, not a `Notify`: the session polls it on every wake-up, and
    /// a oneshot's poll is an atomic load where a waiting `Notify` takes a
    /// lock.
    pub stop: oneshot::Receiver<Stop>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.record.id);
        self.registry.set_buffered(&self.record, 0);
    }
}

impl Registry {
    /// Takes a place for a client that just connected; false (counted as
    /// rejected) when `max` clients are connected already. A client
    /// admitted gives its place back with [`Registry::left`].
    pub fn admit(&self, max: usize) -> bool {
        if self.connected.fetch_add(1, Ordering::Relaxed) >= max {
            self.connected.fetch_sub(1, Ordering::Relaxed);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// An admitted client left: its place is free.
    pub fn left(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// A process-unique client id, as `CLIENT ID` reports.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Clients accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Clients refused at `client.max_clients` since start.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Tells every client, and every client registered from now on, to
    /// drain ([`Stop::Drain`]).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        for record in self.lock().values() {
            record.stop(Stop::Drain);
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientRecord>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a client that just connected.
    pub fn register(
        &self,
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        fd: i32,
    ) -> Registration<'_> {
        let (kill, stop) = oneshot::channel();
        let record = Arc::new(ClientRecord {
            id,
            peer,
            local,
            fd,
            connected: Instant::now(),
            names: Mutex::default(),
            last_read_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            flags: AtomicU8::new(0),
            subscriptions: Default::default(),
            multi: AtomicI64::new(-1),
            killed: AtomicBool::new(false),
            buffered: AtomicUsize::new(0),
            kill: Mutex::new(Some(kill)),
        });
        self.lock().insert(id, record.clone());
        if self.draining.load(Ordering::Acquire) {
            record.stop(Stop::Drain);
        }
        Registration {
            registry: self,
            record,
            stop,
        }
    }

    /// Records that `bytes` of replies wait in keyway for `record`'s
    /// client, whose socket takes no more; returns the bytes so held for
    /// all clients.
    pub fn set_buffered(&self, record: &ClientRecord, bytes: usize) -> usize {
        let before = record.buffered.swap(bytes, Ordering::Relaxed);
        if bytes >= before {
            let more = bytes - before;
            self.buffered.fetch_add(more, Ordering::Relaxed) + more
        } else {
            let less = before - bytes;
            self.buffered.fetch_sub(less, Ordering::Relaxed) - less
        }
    }

    /// Reply bytes held for clients whose sockets take no more.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Brings [`Registry::buffered`] down to `limit` (`proxy.max_memory_mb`)
    /// by closing the clients with the most bytes held first
    /// ([`Stop::OverMemory`]); the closed clients' addresses and bytes.
    pub fn shed(&self, limit: usize) -> Vec<(SocketAddr, usize)> {
        let clients = self.lock();
        let mut total = self.buffered();
        if total <= limit {
            return Vec::new();
        }
        let mut holding: Vec<&Arc<ClientRecord>> = clients
            .values()
            .filter(|c| c.buffered.load(Ordering::Relaxed) > 0)
            .collect();
        holding.sort_unstable_by_key(|c| std::cmp::Reverse(c.buffered.load(Ordering::Relaxed)));
        let mut closed = Vec::new();
        for client in holding {
            if total <= limit {
                break;
            }
            let freed = client.buffered.swap(0, Ordering::Relaxed);
            total = self.buffered.fetch_sub(freed, Ordering::Relaxed) - freed;
            client.stop(Stop::OverMemory);
            closed.push((client.peer, freed));
        }
        closed
    }

    /// The connected clients counted in one pass (`/metrics`).
    pub fn census(&self) -> Census {
        let clients = self.lock();
        let mut census = Census {
            registered: clients.len(),
            ..Census::default()
        };
        for client in clients.values() {
            census.blocked += usize::from(client.flags.load(Ordering::Relaxed) & BLOCKED != 0);
            census.subscribed += usize::from(client.subscribed());
            census.resp3 += usize::from(client.resp.load(Ordering::Relaxed) == 3);
        }
        census
    }

    /// How many clients wait in a blocking command (`INFO clients`).
    pub fn blocked(&self) -> usize {
        self.census().blocked
    }

    /// The clients `filter` picks, by id.
    fn matching(&self, filter: &Filter) -> Vec<Arc<ClientRecord>> {
        self.lock()
            .values()
            .filter(|c| filter.picks(c))
            .cloned()
            .collect()
    }

    /// `CLIENT LIST [TYPE type] [ID id ...]`: one line per client.
    pub fn list(&self, request: &Request) -> Result<String, String> {
        let filter = Filter::of_list(request)?;
        Ok(self.matching(&filter).iter().map(|c| c.line()).collect())
    }

    /// `CLIENT KILL` from client `me`: how many clients were killed, or
    /// Redis's error. The old form (`CLIENT KILL addr`) answers the count
    /// too; the caller turns it into `+OK` / `-ERR No such client`.
    /// `user_exists` tells whether a `USER` filter names a known user.
    pub fn kill(
        &self,
        request: &Request,
        me: u64,
        user_exists: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, String> {
        let filter = Filter::of_kill(request, me, user_exists)?;
        Ok(self.kill_matching(&filter))
    }

    /// Closes every client authenticated as one of `users` (their users
    /// were deleted); how many.
    pub fn kill_users(&self, users: &[&str]) -> usize {
        let mut killed = 0;
        for user in users {
            killed += self.kill_matching(&Filter::of_user(user));
        }
        killed
    }

    fn kill_matching(&self, filter: &Filter) -> usize {
        self.matching(filter).iter().filter(|c| c.kill()).count()
    }
}

#[path = "registry_filter.rs"]
mod filter;

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
