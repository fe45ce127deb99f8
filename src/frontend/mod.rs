//! The client side: the listener (socket options, client limit), the session
//! that reads requests, routes them and writes replies in order, and the
//! commands keyway answers itself, each client's subscriptions, and the
//! joining of replies from several nodes (fan-out to every master, and
//! multi-key commands split per slot), and each client's unsent output.

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
