//! What keyway knows about one client on its own thread: its id, the
//! protocol it chose, its user, its subscriptions, and its record in the
//! registry (what other threads see of it).

use std::sync::Arc;

use crate::acl::{Acl, User, Users};
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
    /// The user whose rules apply: the one it authenticated as, or
    /// `default` while that needs no password; `None` until `AUTH`.
    pub user: Option<Arc<User>>,
    /// `READONLY` (until `READWRITE`): its reads go to replicas.
    pub read_replicas: bool,
    /// The name it authenticated as, if it did.
    authenticated_as: Option<Arc<str>>,
    /// The users' generation `user` was taken from (0: never; generations
    /// start at 1).
    users_seen: u64,
}

impl ClientInfo {
    /// A client that just connected, registered as `record`.
    pub fn new(record: Arc<ClientRecord>, acl: &Acl) -> ClientInfo {
        let mut client = ClientInfo {
            id: record.id,
            proto: Protocol::Resp2,
            subscriptions: Subscriptions::default(),
            record,
            user: None,
            read_replicas: false,
            authenticated_as: None,
            users_seen: 0,
        };
        client.refresh_user(acl);
        client
    }

    /// Takes the user's current rules if the users changed since they were
    /// last read (one atomic load when they did not).
    #[inline]
    pub fn refresh_user(&mut self, acl: &Acl) {
        let generation = acl.generation();
        if generation != self.users_seen {
            self.users_seen = generation;
            self.user = self.effective_user(&acl.users());
        }
    }

    fn effective_user(&self, users: &Users) -> Option<Arc<User>> {
        match &self.authenticated_as {
            Some(name) => users.get(name.as_bytes()).cloned(),
            None => users.open().then(|| users.default_user().clone()),
        }
    }

    /// The client authenticated as `user`.
    pub fn log_in(&mut self, user: Arc<User>) {
        let name = user.name().clone();
        self.record.names().user = Some(name.clone());
        self.authenticated_as = Some(name);
        self.user = Some(user);
    }

    /// `READONLY` (true) or `READWRITE`.
    pub fn set_read_replicas(&mut self, on: bool) {
        self.read_replicas = on;
        self.record.set_read_replicas(on);
    }

    /// Back to the state of a new connection (`RESET`).
    pub fn log_out(&mut self, acl: &Acl) {
        self.record.names().user = None;
        self.authenticated_as = None;
        self.users_seen = 0;
        self.refresh_user(acl);
    }

    /// Switches the reply protocol.
    pub fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
        self.record.set_protocol(proto);
    }
}
