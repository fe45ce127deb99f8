//! The command table: how keyway routes each Redis command.
//!
//! The data comes from Redis itself. `generate.py` (beside this file) asks a
//! throwaway redis-server for `COMMAND` and writes `commands.txt`: one line
//! per command and subcommand with its arity, flags, ACL categories, policy
//! tips and key specs. That file is embedded with `include_str!` and parsed
//! once at start-up ([`CommandTable::builtin`]); then the backends' own
//! `COMMAND` reply adds what they know and the file does not, such as newer
//! commands and modules ([`CommandTable::extend_from_command_reply`]).
//!
//! Per request, the session:
//! 1. [`CommandTable::lookup`]s the [`CommandSpec`] (no allocation),
//! 2. checks [`CommandSpec::arity_ok`],
//! 3. acts on its [`RouteClass`] (keyed, split per slot, any node, local,
//!    or refused with a [`Reason`]), checking
//!    [`CommandSpec::is_blocking_call`] for XREAD,
//! 4. for keyed commands, collects the key positions with
//!    [`CommandSpec::for_each_key`] to compute the slot.
//!
//! For client-side ACLs the table also gives each command and subcommand
//! its [`AclCategories`] ([`CommandTable::in_category`] answers
//! `ACL CAT <category>`), a dense [`CommandSpec::acl_id`] to index an ACL
//! bitmap, and each key's key-spec flags
//! ([`CommandSpec::for_each_key_flags`]) for `%R~`/`%W~` key patterns.
//!
//! Files: `table.rs` (lookup), `spec.rs` (one command), `keys.rs` (key
//! extraction), `class.rs` (route classes and their overrides), `flags.rs`
//! (flag and ACL category bitsets, tips), `data.rs` (the embedded text),
//! `reply.rs` (extension from a `COMMAND` reply), `catalog.rs` (the README's
//! list of commands per class, rendered from the table).

pub mod catalog;
mod class;
mod data;
mod flags;
mod keys;
mod reply;
mod spec;
mod table;

pub use class::{Diagnostic, Merge, Reason, RouteClass, SplitJoin};
pub use data::DataError;
pub use flags::{AclCategories, CommandFlags, KeySpecFlags, RequestPolicy, ResponsePolicy};
pub use keys::KeyError;
pub use spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
pub use table::CommandTable;

/// Longest full command name (`container|subcommand`) keyway can look up;
/// longer names are unknown commands. Redis's longest is 29 bytes
/// (`cluster|count-failure-reports`); modules get room to spare.
pub const MAX_NAME_LEN: usize = 64;

/// Access to a request's arguments (`arg(0)` is the command name).
/// keyway's protocol request implements it; tests use slices.
pub trait CommandArgs {
    /// Number of arguments, command name included.
    fn argc(&self) -> usize;
    /// Argument `i`; callers only ask for `i < argc()`.
    fn arg(&self, i: usize) -> &[u8];
}

impl CommandArgs for [&[u8]] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        self[i]
    }
}

impl CommandArgs for [&str] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        self[i].as_bytes()
    }
}

impl CommandArgs for [Vec<u8>] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self[i]
    }
}

impl CommandArgs for Vec<Vec<u8>> {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self[i]
    }
}

impl CommandArgs for [bytes::Bytes] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self[i]
    }
}
