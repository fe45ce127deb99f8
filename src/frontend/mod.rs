//! The client side: the listener (socket options, client limit), the session
//! that reads requests, routes them and writes replies in order, and the
//! commands keyway answers itself, the registry of every client (`CLIENT
//! LIST`/`KILL`), each client's subscriptions and unsent output, and the
//! joining of replies from several nodes (fan-out to every master, per-node
//! diagnostics naming their nodes, and multi-key commands split per slot).

pub mod clients;
pub mod diagnostics;
pub mod fanout;
pub mod info;
pub mod listener;
pub mod local;
pub mod output;
pub mod replies;
pub mod scan;
pub mod session;
pub mod split;
pub mod subscriptions;
pub mod transaction;
