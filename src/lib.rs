//! # keyway — a Redis Cluster proxy
//!
//! Plain (non-cluster) Redis clients connect to one `host:port`; keyway
//! serves a whole Redis Cluster behind it.
//!
//! ## How a request flows
//!
//! ```text
//! client ──► frontend::listener ──► frontend::session ──► router ──► backend::conn ──► node
//!              (SO_REUSEPORT,         (parse with          (command     (one multiplexed,
//!               one per worker)        protocol::request,   table +      pipelined connection
//!                                      ordered reply        slot)        per node per worker)
//!                                      queue)
//! ```
//!
//! 1. [`worker`]: N threads, each a tokio current-thread runtime with its own
//!    listener and its own backend connections. A request never crosses threads.
//! 2. [`frontend::session`] reads into one buffer; [`protocol`] finds complete
//!    requests without copying (a request is `Bytes` plus argument offsets).
//! 3. [`router`] looks the command up in the [`command`] table (generated from
//!    Redis's own `COMMAND` metadata, extended from the cluster at start-up)
//!    and decides: the slot of its keys ([`cluster::Slot`]), any master, a
//!    local answer ([`frontend::local`]), or a Redis-style refusal.
//! 4. [`backend::conn`] appends the unchanged request bytes to the node's
//!    output buffer; one write flushes everything queued. Its reader splits
//!    replies at frame boundaries (no decoding) and hands each to its session.
//! 5. The session follows `MOVED`/`ASK`/`TRYAGAIN` within budgets, keeps
//!    replies in request order, and flushes all ready replies in one write.
//!    Some requests need several nodes: keyless keyspace commands go to
//!    every master ([`frontend::fanout`]; per-node diagnostics such as
//!    `SLOWLOG` name each part's node, [`frontend::diagnostics`]), and
//!    `MGET`/`MSET`/`DEL`/`UNLINK`/`EXISTS`/`TOUCH` across slots are split into one request per slot
//!    ([`frontend::split`], each part with its own redirects); their merged
//!    reply fills the request's one place in the order (`KEYS`: the
//!    masters' replies as they came, under one header, written from where
//!    they arrived: [`frontend::output`]).
//!    Each client speaks RESP2 or RESP3 (`HELLO`); each node has backend
//!    connections per protocol, so replies are forwarded unconverted, and
//!    only replies keyway builds are encoded per client ([`protocol::encode`]).
//! 6. [`cluster::refresh`] is the one task that fetches the slot map
//!    (`CLUSTER SHARDS`, else `CLUSTER SLOTS`) at start, on `MOVED`, on
//!    backend failures and periodically; workers read it lock-free through
//!    [`cluster::ClusterView`] (arc-swap).
//!
//! Transactions ([`frontend::transaction`]): keyway queues `MULTI`'s
//! commands itself and sends `MULTI` … `EXEC` as one request at `EXEC`;
//! `WATCH` holds a dedicated connection until `EXEC`.
//!
//! Every client of every worker is listed in [`frontend::clients`]
//! (`CLIENT LIST`, and `CLIENT KILL` across threads); a session updates its
//! record only when what it shows changes.
//!
//! [`pubsub`] is each worker's hub for subscriptions: every channel is
//! subscribed once, on a shared subscriber connection, and each message is
//! fanned out to the worker's clients that want it.
//!
//! [`config`] turns the TOML file plus flags into one validated `Config`;
//! [`server`] starts everything and owns shutdown.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod cluster;
pub mod command;
pub mod config;
pub mod frontend;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod pubsub;
pub mod registry;
pub mod router;
pub mod script_cache;
pub mod server;
pub mod wake;
pub mod worker;
