//! Client-side access control, as redis-server 7.0 does it: users with
//! passwords (kept only as SHA-256), command rules by category, command and
//! subcommand, key patterns with read/write access, channel patterns
//! ([`User`]); the set of users, swapped whole when it changes ([`Acl`]);
//! `ACL LOG` ([`log`]); and the delay of repeated failed authentications
//! ([`throttle`]).
//!
//! Files: `rules.rs` (one rule's syntax), `user.rs` (a user, its checks),
//! `keys.rs` (keys and channels the key specs do not describe),
//! `users.rs` (the set, from the configuration), `glob.rs` (Redis's glob
//! matching), `log.rs`, `throttle.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

pub mod glob;
mod keys;
pub mod log;
mod rules;
pub mod throttle;
mod user;
mod users;

pub use rules::{PasswordHash, RuleError};
pub use user::{hex, Denial, User};
pub use users::{LineError, UserLine, Users, DEFAULT_USER};

/// Whether a client at `ip` is local, as redis-server's protected mode
/// decides: exactly 127.0.0.1 or ::1 (also as an IPv4-mapped address).
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST)
        }
    }
}

/// SHA-256 of a password.
pub fn sha256(password: &[u8]) -> PasswordHash {
    Sha256::digest(password).into()
}

/// The users of the process, shared by every worker.
#[derive(Debug)]
pub struct Acl {
    users: ArcSwap<Users>,
    /// Bumped at every change, so a session notices with one load that
    /// its user may have changed; starts at 1.
    generation: AtomicU64,
    /// Serializes the read-modify-write of `ACL SETUSER` and friends.
    edit: Mutex<()>,
    log: Mutex<log::Log>,
    /// Failed authentications per client address.
    pub throttle: throttle::Throttle,
}

impl Acl {
    /// The store, with `users`.
    pub fn new(users: Users) -> Acl {
        Acl {
            users: ArcSwap::from_pointee(users),
            generation: AtomicU64::new(1),
            edit: Mutex::new(()),
            log: Mutex::default(),
            throttle: throttle::Throttle::default(),
        }
    }

    /// The users now.
    pub fn users(&self) -> Arc<Users> {
        self.users.load_full()
    }

    /// Changes at every change of the users.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces every user (a configuration reload, `ACL LOAD`).
    pub fn replace(&self, users: Users) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        self.store(users);
    }

    /// Changes the users with `change`, which sees the current ones and
    /// returns the next ones (or an error, changing nothing).
    pub fn change<R, E>(
        &self,
        change: impl FnOnce(&Users) -> Result<(Users, R), E>,
    ) -> Result<R, E> {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let (next, result) = change(&self.users.load())?;
        self.store(next);
        Ok(result)
    }

    fn store(&self, users: Users) {
        self.users.store(Arc::new(users));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// `ACL LOG`.
    pub fn log(&self) -> MutexGuard<'_, log::Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}
