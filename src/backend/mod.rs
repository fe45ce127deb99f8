//! Connections from one worker to the cluster's nodes: per node a few
//! multiplexed, pipelined connections ([`conn`]), found by address in the
//! worker's [`pool`]; dedicated [`blocking`] connections for commands that
//! may block; [`pubsub_conn`] connections shared by a worker's
//! subscribed clients; plus one-shot [`control`] queries for the topology
//! task. Every one of them is opened by [`connect`], the same steps for all.
//!
//! Everything here except `control` is single-threaded (`Rc`, `RefCell`):
//! each worker owns its own connections, so the hot path takes no lock.

pub mod blocking;
pub mod conn;
pub mod connect;
pub mod control;
pub mod giveback;
pub mod node_loss;
pub mod pool;
pub mod pubsub_conn;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::protocol::encode;

use connect::{Cause, ConnectError, Step};

/// Receives the replies to requests sent on backend connections, in the order
/// each connection's requests were sent. Implemented by client sessions.
pub trait ReplySink {
    /// The reply (or failure) for the request sent with `token`.
    fn deliver(&self, token: u64, reply: Result<Bytes, BackendError>);

    /// Called once after a batch of deliveries (all replies of one read), so
    /// the target can send everything it received in one write.
    fn flush(&self);
}

/// Why a request sent to a node got no reply from it. The client sees one
/// Redis-style error per variant, saying whether the command may have run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The node could not be connected; the command did not run.
    Unreachable(Arc<str>),
    /// The node refused keyway's credentials (the reason is its error);
    /// the command did not run.
    Refused(Arc<str>, Arc<str>),
    /// The connection broke before the reply; the command may have run.
    Lost(Arc<str>),
    /// The node did not answer in time; the connection was closed and the
    /// command may have run.
    Timeout(Arc<str>, Duration),
    /// The node's reply was not valid RESP; the connection was closed and
    /// the command may have run.
    BadReply(Arc<str>),
}

impl BackendError {
    /// The node the error is about.
    pub fn addr(&self) -> &Arc<str> {
        match self {
            BackendError::Unreachable(addr)
            | BackendError::Refused(addr, _)
            | BackendError::Lost(addr)
            | BackendError::Timeout(addr, _)
            | BackendError::BadReply(addr) => addr,
        }
    }

    /// The error for a connection to `addr` that could not be opened:
    /// refused credentials name the node's reason; anything else is
    /// "cannot connect".
    pub fn of_connect(addr: &Arc<str>, error: &ConnectError) -> BackendError {
        match (&error.step, &error.cause) {
            (Step::Auth, Cause::Refused(reason)) => {
                BackendError::Refused(addr.clone(), reason.trim_start_matches('-').into())
            }
            (Step::Auth, Cause::Password(e)) => {
                BackendError::Refused(addr.clone(), format!("no password: {e}").into())
            }
            _ => BackendError::Unreachable(addr.clone()),
        }
    }

    /// A short label for metrics: `unreachable`, `lost`, `timeout` or `bad_reply`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::Unreachable(_) => "unreachable",
            BackendError::Refused(..) => "auth",
            BackendError::Lost(_) => "lost",
            BackendError::Timeout(..) => "timeout",
            BackendError::BadReply(_) => "bad_reply",
        }
    }

    /// Appends the error reply the client gets.
    pub fn write_reply(&self, out: &mut BytesMut) {
        let text = match self {
            BackendError::Unreachable(addr) => format!(
                "CLUSTERDOWN keyway cannot connect to node {addr}; the cluster may be failing over, retry shortly"
            ),
            BackendError::Refused(addr, reason) => format!(
                "CLUSTERDOWN keyway cannot authenticate to node {addr} ({reason}); check cluster.user and cluster.password in keyway's config"
            ),
            BackendError::Lost(addr) => format!(
                "ERR keyway lost the connection to node {addr} before it replied; the command may or may not have run"
            ),
            BackendError::Timeout(addr, after) => format!(
                "ERR keyway got no reply from node {addr} within {} ms; the command may or may not have run",
                after.as_millis()
            ),
            BackendError::BadReply(addr) => format!(
                "ERR keyway got a malformed reply from node {addr} and reconnected; the command may or may not have run"
            ),
        };
        encode::error(out, text.as_bytes());
    }
}
