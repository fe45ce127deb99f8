//! Test harness for keyway's end-to-end tests.
//!
//! Every integration test drives keyway the way a user does: a real Redis
//! Cluster of `redis-server` processes ([`Cluster`]), a real keyway process in
//! front of it ([`Proxy`]), and plain clients (the `redis` crate, or raw
//! sockets for malformed input).
//!
//! - [`cluster`]: start/stop a 3 masters + 3 replicas cluster, kill/restart
//!   nodes, add a master, failover, resharding and step-by-step slot migration.
//! - [`proxy`]: spawn keyway against a cluster, clients with timeouts, raw
//!   sockets, running keyway to its exit for config errors.
//! - [`migration`]: step-by-step slot migration (ASK mid-way, MOVED after).
//! - [`replicas`]: reads from replicas as the nodes count them (`INFO
//!   commandstats`), replication offsets, shards and their keys, a node
//!   stopped with `SIGSTOP`.
//! - [`slot`]: CRC16/XMODEM and hash tags, so tests can aim at any slot.
//! - [`slotmap`]: `CLUSTER SLOTS` parsed into comparable values.
//! - [`resp`]: a tiny RESP reply reader for raw-socket tests.
//! - [`standalone`]: one standalone redis-server with ACL users, the
//!   reference keyway's client authentication is compared with.
//! - [`auth`]: redis-server 7.0's authentication replies, the users the
//!   auth tests share, and a keyway/redis-server pair of connections.
//! - [`background`]: a client load in its own thread, waited on and stopped.
//! - [`http`]: a plain HTTP/1.1 client for keyway's admin endpoint, and
//!   `/metrics` scrapes looked up sample by sample.
//! - [`tls`]: certificates made with `openssl` at test time (CAs, server
//!   and client certificates, expired ones, chains, RSA/ECDSA/Ed25519),
//!   rotation by rename, raw rustls clients, `redis` clients over TLS.
//! - [`tools`]: external checkers (promtool, prometheus-redis-exporter),
//!   skipped when missing unless `CI` is set.
//! - [`util`]: free ports, bounded polling, temp dirs, log tails, child
//!   processes that die with the test.
//!
//! Shared by every test module; each uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod auth;
pub mod background;
pub mod cluster;
pub mod fake_node;
pub mod http;
pub mod migration;
pub mod proxy;
pub mod pubsub_client;
pub mod replicas;
pub mod resp;
pub mod slot;
pub mod slotmap;
pub mod standalone;
pub mod tls;
pub mod tools;
pub mod util;
pub mod workload;

pub use background::Background;
pub use cluster::Cluster;
pub use migration::Migration;
pub use proxy::{run_keyway, Launch, Proxy, Ready};
pub use resp::RawClient;
pub use slot::{key_for_slot, key_slot, SLOTS};
pub use standalone::Standalone;
pub use util::poll_until;

use std::time::Duration;

/// Timeout applied to every client operation made through the harness: a
/// hanging proxy fails the test instead of hanging CI.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
