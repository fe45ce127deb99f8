//! What a worker's backend connections take from the live configuration:
//! timeouts, backoff, reply limits, credentials, and the figures and node
//! losses they share, read once per (re)connect.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeAccess;
use crate::protocol::{Limits, Protocol};
use crate::stats::backends::WorkerNodes;

use super::connect::ConnectOptions;
use super::node_loss::NodeLosses;

/// Settings shared by a worker's backend connections.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time the oldest outstanding request may wait for its reply.
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Bounds for replies (a node is trusted, but not unboundedly).
    pub limits: Limits,
    /// Credentials and TLS for the cluster's nodes, if they need them.
    pub access: NodeAccess,
    /// Say `READONLY` when a shared data connection opens: it may reach a
    /// replica. (Dedicated and subscriber connections go to masters and
    /// never say it.)
    pub readonly: bool,
    /// The worker's figures about the nodes it connects to.
    pub nodes: Arc<WorkerNodes>,
    /// Connections lost, per node, for every worker.
    pub losses: Arc<NodeLosses>,
}

/// Where a connection reads its [`ConnSettings`]: once per (re)connect,
/// so a changed live configuration applies to the next connection opened
/// (the worker's view of the live config; a fixed value in tests).
pub type SettingsSource = Rc<dyn Fn() -> ConnSettings>;

impl ConnSettings {
    /// How to open a connection speaking `protocol`.
    pub fn connect_options(&self, protocol: Protocol) -> ConnectOptions {
        ConnectOptions {
            protocol,
            timeout: self.connect_timeout,
            limits: self.limits,
            access: self.access.clone(),
            readonly: false,
        }
    }
}
