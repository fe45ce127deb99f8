//! The client side, grouped by what a reader looks for:
//!
//! - [`listener`]: listening sockets (socket options, the client limit)
//!   and the accept loop;
//! - [`session`]: one client's machinery: reading and admitting requests,
//!   the order replies keep, sending to nodes, redirects, blocking
//!   commands, pub/sub, `SCAN`, transactions, and writing replies;
//! - [`local`]: the commands keyway answers itself, with [`login`]
//!   (`AUTH`, `HELLO ... AUTH`) and [`acl_command`] (`ACL ...`);
//! - [`fanout`]: requests that need several nodes and the joining of their
//!   replies (every master, `INFO`, per-node diagnostics, split per slot);
//! - [`client`] and [`subscriptions`]: what keyway knows of one client
//!   (its protocol, name, subscriptions), read by the session and by the
//!   local commands.

pub mod acl_command;
pub mod client;
pub mod client_errors;
pub mod fanout;
pub mod listener;
pub mod local;
pub mod login;
pub mod session;
pub mod subscriptions;
