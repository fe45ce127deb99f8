//! # keyway — a Redis Cluster proxy
//!
//! Plain (non-cluster) Redis clients connect to one `host:port`; keyway
//! serves a whole Redis Cluster behind it.
//!
//! ## How a request flows
//!
//! ```text
//! client ──► frontend::listener ──► frontend::session ──► router ──► backend::conn ──► node
//!              (SO_REUSEPORT,         (parse, admit,       (command     (one multiplexed,
//!               one per worker)        order, send,         table +      pipelined connection
//!                                      ordered replies)     slot)        per node per worker)
//! ```
//!
//! 1. [`server`] starts N worker threads, each a tokio current-thread
//!    runtime with its own listener; each thread's [`worker::Worker`] is the
//!    view every request reads: the live config, the slot map and the
//!    command table (each through a per-thread cache), the node
//!    connections, and the one node choice ([`worker::Worker::for_slot`],
//!    [`cluster::choice`]). A request never crosses threads.
//! 2. [`frontend::session`] reads into one buffer; [`protocol`] finds
//!    complete requests without copying (a request is `Bytes` plus argument
//!    offsets); each passes one admission step, then [`router`] looks the
//!    command up in the [`command`] table (generated from Redis's own
//!    `COMMAND` metadata, extended from the cluster at start-up) and
//!    decides: the slot of its keys ([`cluster::Slot`]), any master, a local
//!    answer ([`frontend::local`]), or a Redis-style refusal.
//! 3. The session's ordering rule ([`frontend::session::order`]) decides
//!    whether the request waits for the client's requests in flight; then
//!    [`backend::conn`] appends its unchanged bytes to the node's output
//!    buffer; one write flushes everything queued. Its reader splits
//!    replies at frame boundaries (no decoding) and hands each back.
//! 4. Redirects (`MOVED`/`ASK`/`TRYAGAIN`) are followed as one pure
//!    decision says ([`cluster::redirect::decide`]), for whole requests and
//!    the parts of split ones alike; replies keep request order and all
//!    ready ones go out in one write. A request whose shard has no master
//!    keyway can reach (a failover) is held, not failed, until the slot
//!    map shows one ([`hold`]).
//! 5. Requests that need several nodes ([`frontend::fanout`]): keyless
//!    keyspace commands go to every master (merged; `INFO` and per-node
//!    diagnostics such as `SLOWLOG` their own way), `CONFIG SET`,
//!    `RESETSTAT` and `REWRITE` to every node, replicas included (the slot
//!    map lists them), and
//!    `MGET`/`MSET`/`DEL`/`UNLINK`/`EXISTS`/`TOUCH` across slots are split
//!    into one request per slot ([`frontend::fanout::split`]). Each client
//!    speaks RESP2 or RESP3 (`HELLO`); each node has backend connections per
//!    protocol, so replies are forwarded unconverted, and only replies
//!    keyway builds are encoded per client ([`protocol::encode`]).
//! 6. [`cluster::refresh`] is the one task that fetches the slot map and
//!    the other nodes (`CLUSTER SHARDS`, else `CLUSTER SLOTS`) at start, on
//!    `MOVED`, on backend failures and periodically; workers read it
//!    lock-free through [`cluster::ClusterView`] (arc-swap).
//!
//! Transactions ([`frontend::session::transaction`]): keyway queues
//! `MULTI`'s commands itself and sends `MULTI` … `EXEC` as one request at
//! `EXEC`; `WATCH` holds a dedicated connection until `EXEC`.
//!
//! Every client of every worker is listed in [`registry`] (`CLIENT LIST`,
//! `CLIENT KILL` and the shutdown's drain across threads, client ids and
//! counters); a session updates its record only when what it shows changes.
//!
//! [`pubsub`] is each worker's hub for subscriptions: every channel is
//! subscribed once, on a shared pub/sub connection (`backend::pubsub_conn`), and each message is
//! fanned out to the worker's clients that want it.
//!
//! [`acl`] holds keyway's own users (`[auth]`, `ACL SETUSER`): each
//! session's admission step checks authentication and its user's command,
//! key and channel rules before a request is routed.
//!
//! [`config`] turns the TOML file plus flags into one validated `Config`:
//! start-up keys, and live keys swapped whole ([`worker::Shared::live`]).
//! [`server`] also owns shutdown: listeners close, every session drains
//! (answers what it received, then closes) within `proxy.shutdown_grace_s`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod admin;
pub mod backend;
pub mod cluster;
pub mod command;
pub mod config;
pub mod frontend;
pub mod hold;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod pubsub;
pub mod registry;
pub mod router;
pub mod script_cache;
pub mod server;
pub mod stats;
pub mod tls;
pub mod wake;
pub mod worker;
