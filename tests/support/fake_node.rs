//! A scripted fake Redis Cluster node, for tests that need a node to answer
//! in ways a real cluster rarely does on demand (`-MOVED`, `-ASK`,
//! `-TRYAGAIN`, delays, garbage, silence).
//!
//! A [`FakeNode`] is a tiny RESP server on `127.0.0.1:0`: one accept thread,
//! one thread per connection, std only. It parses client commands (arrays of
//! bulk strings) and answers them from its [`State`], which the test changes
//! at any time through [`FakeNode::state`] or the helpers:
//!
//! - the slot map it reports ([`SlotMap`], shareable between nodes so they
//!   agree, as a real cluster does): `CLUSTER SHARDS` in the Redis 7 RESP2
//!   shape, and `CLUSTER SLOTS`;
//! - fixed answers: `COMMAND` → `*0` (keyway keeps its built-in table),
//!   `INFO` → `redis_version:7.0.15`, `PING` → `+PONG`, `ASKING` → `+OK`;
//! - per key (the command's first argument) a queue of canned [`Reply`]s,
//!   then a per-key default, then a node-wide default (`$-1`, nil);
//! - a log of every command received, per connection, in order.
//!
//! Every socket read has a short timeout and every loop checks the stop
//! flag, so dropping the node stops all its threads promptly.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);
/// Largest request the fake accepts (it only ever sees small test commands).
const MAX_REQUEST: usize = 1 << 20;

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Raw bytes written as they are (any RESP, or garbage).
    pub bytes: Vec<u8>,
    /// Pause before writing (the connection answers nothing else meanwhile,
    /// like a single-threaded Redis).
    pub delay: Duration,
    /// Never answer: the connection goes silent for good (it still reads
    /// and logs), as a hung node would.
    pub hang: bool,
    /// Close the connection instead of answering, as a node that died
    /// after the request reached it.
    pub close: bool,
}

impl Reply {
    /// Writes `bytes` at once.
    pub fn raw(bytes: impl AsRef<[u8]>) -> Reply {
        Reply {
            bytes: bytes.as_ref().to_vec(),
            delay: Duration::ZERO,
            hang: false,
            close: false,
        }
    }

    /// A bulk string reply, `$N\r\nvalue\r\n`.
    pub fn bulk(value: &str) -> Reply {
        Reply::raw(format!("${}\r\n{value}\r\n", value.len()))
    }

    /// An error reply, `-text\r\n`.
    pub fn error(text: &str) -> Reply {
        Reply::raw(format!("-{text}\r\n"))
    }

    /// `-MOVED slot addr`.
    pub fn moved(slot: u16, addr: &str) -> Reply {
        Reply::error(&format!("MOVED {slot} {addr}"))
    }

    /// `-ASK slot addr`.
    pub fn ask(slot: u16, addr: &str) -> Reply {
        Reply::error(&format!("ASK {slot} {addr}"))
    }

    /// `-TRYAGAIN ...` as Redis words it.
    pub fn tryagain() -> Reply {
        Reply::error("TRYAGAIN Multiple keys request during rehashing of slot")
    }

    /// Silence from this reply on, on this connection.
    pub fn hang() -> Reply {
        Reply {
            bytes: Vec::new(),
            delay: Duration::ZERO,
            hang: true,
            close: false,
        }
    }

    /// The connection closes instead of this reply.
    pub fn close() -> Reply {
        Reply {
            close: true,
            ..Reply::raw("")
        }
    }

    /// The same reply, written after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// Slot ranges and the `127.0.0.1:port` of the master serving each; what
/// `CLUSTER SHARDS`/`CLUSTER SLOTS` report. Clone it to share one map
/// between nodes.
#[derive(Clone, Default)]
pub struct SlotMap(Arc<Mutex<Vec<(u16, u16, String)>>>);

impl SlotMap {
    /// Replaces the whole map with `ranges` (inclusive start, end, owner).
    pub fn set(&self, ranges: &[(u16, u16, &str)]) {
        *lock(&self.0) = ranges
            .iter()
            .map(|&(s, e, a)| (s, e, a.to_string()))
            .collect();
    }

    /// Gives one slot to `owner`, splitting the range that held it.
    pub fn move_slot(&self, slot: u16, owner: &str) {
        let mut ranges = lock(&self.0);
        let mut next = Vec::new();
        for (s, e, a) in ranges.drain(..) {
            if slot < s || slot > e {
                next.push((s, e, a));
                continue;
            }
            if s < slot {
                next.push((s, slot - 1, a.clone()));
            }
            if slot < e {
                next.push((slot + 1, e, a));
            }
        }
        next.push((slot, slot, owner.to_string()));
        next.sort();
        *ranges = next;
    }

    fn ranges(&self) -> Vec<(u16, u16, String)> {
        lock(&self.0).clone()
    }
}

/// One command as received: the connection it came on and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// Connection number on this node (0, 1, ... in accept order).
    pub conn: usize,
    /// The arguments, lossily as text (`["GET", "k"]`).
    pub args: Vec<String>,
}

/// What a [`FakeNode`] answers, and what it received. Tests lock it through
/// [`FakeNode::state`] and change it whenever they like.
pub struct State {
    /// The slot map reported.
    pub map: SlotMap,
    /// Per key (first argument), replies given in order, before the defaults.
    pub scripts: HashMap<String, VecDeque<Reply>>,
    /// Per key, the reply once its script is empty.
    pub key_defaults: HashMap<String, Reply>,
    /// The reply to anything else.
    pub default: Reply,
    /// Every command received, in arrival order over all connections.
    pub log: Vec<Logged>,
}

struct Inner {
    state: Mutex<State>,
    stop: AtomicBool,
    conns: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A scripted fake cluster node; see the module docs. Stops on drop.
pub struct FakeNode {
    addr: SocketAddr,
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeNode {
    /// Starts a node with its own, empty slot map.
    pub fn start() -> FakeNode {
        FakeNode::start_with_map(SlotMap::default())
    }

    /// Starts a node reporting `map` (shared with whoever else holds it).
    pub fn start_with_map(map: SlotMap) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake node");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("fake node address");
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                map,
                scripts: HashMap::new(),
                key_defaults: HashMap::new(),
                default: Reply::raw("$-1\r\n"),
                log: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("fake-node-{}", addr.port()))
                .spawn(move || accept_loop(listener, addr, inner))
                .expect("spawn fake node")
        };
        FakeNode {
            addr,
            inner,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The node's script and log, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// The slot map this node reports.
    pub fn map(&self) -> SlotMap {
        self.state().map.clone()
    }

    /// Queues `replies` for commands on `key`, after any already queued.
    pub fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state()
            .scripts
            .entry(key.to_string())
            .or_default()
            .extend(replies);
    }

    /// The reply to commands on `key` once its script is used up.
    pub fn set_default(&self, key: &str, reply: Reply) {
        self.state().key_defaults.insert(key.to_string(), reply);
    }

    /// Every command received so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// How many times `args` (case-insensitive command name) was received.
    pub fn count(&self, args: &[&str]) -> usize {
        self.log().iter().filter(|l| same(&l.args, args)).count()
    }

    /// The commands received on each connection, in order, by connection.
    pub fn per_conn(&self) -> Vec<Vec<Vec<String>>> {
        let log = self.log();
        let conns = log.iter().map(|l| l.conn + 1).max().unwrap_or(0);
        let mut out = vec![Vec::new(); conns];
        for l in log {
            out[l.conn].push(l.args);
        }
        out
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut *lock(&self.inner.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// True when `logged` is `args`, the command name compared case-insensitively.
pub fn same(logged: &[String], args: &[&str]) -> bool {
    logged.len() == args.len()
        && logged.iter().zip(args).enumerate().all(|(i, (l, a))| {
            if i == 0 {
                l.eq_ignore_ascii_case(a)
            } else {
                l == a
            }
        })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, me: SocketAddr, inner: Arc<Inner>) {
    while !inner.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let id = inner.conns.fetch_add(1, Ordering::SeqCst);
                let conn_inner = inner.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("fake-node-{}-conn-{id}", me.port()))
                    .spawn(move || {
                        let _ = serve(stream, id, me, &conn_inner);
                    })
                    .expect("spawn fake node connection");
                lock(&inner.threads).push(handle);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// Serves one connection until the peer closes, the stop flag, or garbage.
fn serve(mut stream: TcpStream, id: usize, me: SocketAddr, inner: &Inner) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut silent = false;
    while !inner.stop.load(Ordering::SeqCst) {
        // Answer every complete command already buffered.
        while let Some((args, used)) = parse_command(&buf)? {
            buf.drain(..used);
            let reply = {
                let mut state = lock(&inner.state);
                state.log.push(Logged {
                    conn: id,
                    args: args
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                });
                answer(&mut state, &args, me)
            };
            if silent {
                continue;
            }
            if reply.hang {
                silent = true;
                continue;
            }
            if reply.close {
                return Ok(());
            }
            if !pause(reply.delay, &inner.stop) {
                return Ok(());
            }
            stream.write_all(&reply.bytes)?;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
    }
    Ok(())
}

/// Sleeps `delay` in ticks; false if the node stopped meanwhile.
fn pause(delay: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

/// The reply to `args`: built-ins first, then the key's script.
fn answer(state: &mut State, args: &[Vec<u8>], me: SocketAddr) -> Reply {
    let upper = |i: usize| {
        args.get(i)
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .unwrap_or_default()
    };
    match (upper(0).as_str(), upper(1).as_str()) {
        ("CLUSTER", "SHARDS") => return Reply::raw(shards(&state.map.ranges())),
        ("CLUSTER", "SLOTS") => return Reply::raw(slots(&state.map.ranges())),
        ("COMMAND", _) => return Reply::raw("*0\r\n"),
        ("INFO", _) => {
            return Reply::bulk(&format!(
                "# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\ntcp_port:{}\r\n",
                me.port()
            ))
        }
        ("PING", _) => return Reply::raw("+PONG\r\n"),
        ("CONFIG", "GET") => {
            return Reply::raw("*2\r\n$20\r\ncluster-node-timeout\r\n$4\r\n2000\r\n")
        }
        ("ASKING", _) | ("READONLY", _) => return Reply::raw("+OK\r\n"),
        _ => {}
    }
    let key = args
        .get(1)
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    if let Some(reply) = state.scripts.get_mut(&key).and_then(VecDeque::pop_front) {
        return reply;
    }
    state
        .key_defaults
        .get(&key)
        .cloned()
        .unwrap_or_else(|| state.default.clone())
}

/// A fake 40-hex-digit node id derived from the address.
fn node_id(addr: &str) -> String {
    let sum = addr
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    format!("{sum:016x}{:024x}", 0)
}

fn bulk(out: &mut String, s: &str) {
    out.push_str(&format!("${}\r\n{s}\r\n", s.len()));
}

/// Owners in first-seen order, each with its ranges.
fn by_owner(ranges: &[(u16, u16, String)]) -> Vec<(String, Vec<(u16, u16)>)> {
    let mut owners: Vec<(String, Vec<(u16, u16)>)> = Vec::new();
    for (s, e, a) in ranges {
        match owners.iter_mut().find(|(o, _)| o == a) {
            Some((_, r)) => r.push((*s, *e)),
            None => owners.push((a.clone(), vec![(*s, *e)])),
        }
    }
    owners
}

/// `CLUSTER SHARDS` as Redis 7 answers it over RESP2.
fn shards(ranges: &[(u16, u16, String)]) -> String {
    let owners = by_owner(ranges);
    let mut out = format!("*{}\r\n", owners.len());
    for (addr, ranges) in owners {
        let (ip, port) = addr.rsplit_once(':').expect("owner is ip:port");
        out.push_str("*4\r\n");
        bulk(&mut out, "slots");
        out.push_str(&format!("*{}\r\n", ranges.len() * 2));
        for (s, e) in ranges {
            out.push_str(&format!(":{s}\r\n:{e}\r\n"));
        }
        bulk(&mut out, "nodes");
        out.push_str("*1\r\n*14\r\n");
        bulk(&mut out, "id");
        bulk(&mut out, &node_id(&addr));
        bulk(&mut out, "port");
        out.push_str(&format!(":{port}\r\n"));
        bulk(&mut out, "ip");
        bulk(&mut out, ip);
        bulk(&mut out, "endpoint");
        bulk(&mut out, ip);
        bulk(&mut out, "role");
        bulk(&mut out, "master");
        bulk(&mut out, "replication-offset");
        out.push_str(":0\r\n");
        bulk(&mut out, "health");
        bulk(&mut out, "online");
    }
    out
}

/// `CLUSTER SLOTS` (RESP2).
fn slots(ranges: &[(u16, u16, String)]) -> String {
    let mut out = format!("*{}\r\n", ranges.len());
    for (s, e, addr) in ranges {
        let (ip, port) = addr.rsplit_once(':').expect("owner is ip:port");
        out.push_str(&format!("*3\r\n:{s}\r\n:{e}\r\n*3\r\n"));
        bulk(&mut out, ip);
        out.push_str(&format!(":{port}\r\n"));
        bulk(&mut out, &node_id(addr));
    }
    out
}

/// One command (an array of bulk strings) at the start of `buf`: its
/// arguments and length, `None` if incomplete, an error if malformed.
fn parse_command(buf: &[u8]) -> io::Result<Option<(Vec<Vec<u8>>, usize)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let line = |at: usize| -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")?;
        Some((&buf[at..at + end], at + end + 2))
    };
    let number = |s: &[u8]| -> io::Result<usize> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad length"))
    };
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Err(bad("fake node takes only arrays of bulk strings"));
    }
    let Some((head, mut at)) = line(0) else {
        return Ok(None);
    };
    let count = number(&head[1..])?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err(bad("argument is not a bulk string"));
        }
        let Some((len, start)) = line(at) else {
            return Ok(None);
        };
        let len = number(&len[1..])?;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Ok(Some((args, at)))
}
