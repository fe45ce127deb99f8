//! What keyway knows about one client on its own thread: its id, the
//! protocol it chose, its subscriptions, and its record in the registry
//! (what other threads see of it).

use std::sync::Arc;

use crate::protocol::Protocol;
use crate::registry::ClientRecord;

use super::subscriptions::Subscriptions;

/// What keyway knows about one client on its own thread.
#[derive(Debug)]
pub struct ClientInfo {
    /// `CLIENT ID`.
    pub id: u64,
    /// The reply protocol, chosen with `HELLO`.
    pub proto: Protocol,
    /// Channels, patterns and shard channels.
    pub subscriptions: Subscriptions,
    /// What other threads see of the client (`CLIENT LIST`, `CLIENT KILL`).
    pub record: Arc<ClientRecord>,
}

impl ClientInfo {
    /// A client that just connected, registered as `record`.
    pub fn new(record: Arc<ClientRecord>) -> ClientInfo {
        ClientInfo {
            id: record.id,
            proto: Protocol::Resp2,
            subscriptions: Subscriptions::default(),
            record,
        }
    }

    /// Switches the reply protocol.
    pub fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
        self.record.set_protocol(proto);
    }
}
