//! What keyway knows about one client on its own thread: its id, the
//! protocol it chose, its user, its subscriptions, and its record in the
//! registry (what other threads see of it).

use std::sync::Arc;

use crate::acl::{Acl, User, Users};
use crate::protocol::Protocol;
use crate::registry::ClientRecord;

use super::subscriptions::Subscriptions;

/// `CLIENT REPLY ON|OFF|SKIP`: whether the client gets the replies to
/// its requests. Pub/sub frames (confirmations, messages) always go out,
/// as redis-server sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Every reply (the default; `CLIENT REPLY ON`).
    On,
    /// No reply until `CLIENT REPLY ON` (whose `+OK` is sent).
    Off,
    /// No reply to the next `n` requests: `CLIENT REPLY SKIP` sets 2, for
    /// itself and the request after it.
    Skip(u8),
}

impl ReplyMode {
    /// The mode `CLIENT REPLY <arg>` sets, from the current one; `None`
    /// for an argument that is no mode (`-ERR syntax error`).
    pub fn set(self, arg: &[u8]) -> Option<ReplyMode> {
        Some(if arg.eq_ignore_ascii_case(b"on") {
            ReplyMode::On
        } else if arg.eq_ignore_ascii_case(b"off") {
            ReplyMode::Off
        } else if arg.eq_ignore_ascii_case(b"skip") {
            // SKIP while OFF changes nothing.
            if self == ReplyMode::Off {
                self
            } else {
                ReplyMode::Skip(2)
            }
        } else {
            return None;
        })
    }

    /// Called once per request, after it took its place (and after a
    /// `CLIENT REPLY` changed the mode): whether its reply is dropped.
    /// Counts a skipped request off.
    #[inline]
    pub fn silences(&mut self) -> bool {
        match *self {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip(n) => {
                *self = if n > 1 {
                    ReplyMode::Skip(n - 1)
                } else {
                    ReplyMode::On
                };
                true
            }
        }
    }
}

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
    /// `CLIENT REPLY`: which replies the client gets.
    pub reply_mode: ReplyMode,
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
            reply_mode: ReplyMode::On,
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

#[cfg(test)]
mod tests {
    use super::ReplyMode::{self, *};

    /// Runs requests through the mode: `Some(arg)` is `CLIENT REPLY arg`;
    /// returns which replies were dropped.
    fn run(requests: &[Option<&str>]) -> Vec<bool> {
        let mut mode = ReplyMode::On;
        requests
            .iter()
            .map(|r| {
                if let Some(next) = r.and_then(|arg| mode.set(arg.as_bytes())) {
                    mode = next;
                }
                mode.silences()
            })
            .collect()
    }

    #[test]
    fn skip_drops_its_own_reply_and_the_next_one() {
        assert_eq!(run(&[Some("skip"), None, None]), [true, true, false]);
        // A second SKIP is itself skipped, and skips the request after it.
        assert_eq!(
            run(&[Some("SKIP"), Some("skip"), None, None]),
            [true, true, true, false]
        );
    }

    #[test]
    fn off_drops_everything_until_on_whose_ok_is_sent() {
        assert_eq!(
            run(&[Some("off"), None, Some("skip"), None, Some("On"), None]),
            [true, true, true, true, false, false]
        );
        assert_eq!(Off.set(b"skip"), Some(Off));
    }

    #[test]
    fn a_bad_mode_is_no_mode_and_still_counts_as_a_request() {
        assert_eq!(On.set(b"maybe"), None);
        assert_eq!(
            run(&[Some("skip"), Some("maybe"), None]),
            [true, true, false]
        );
    }
}
