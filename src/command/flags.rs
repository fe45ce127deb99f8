//! Command flags, ACL categories, key-spec flags and request/response policy
//! tips, as Redis publishes them in `COMMAND`.
//!
//! The flag sets are small bitsets rather than `Vec<String>` so a routing
//! (or ACL) decision is a mask test, not a string compare.

use std::fmt;

/// Defines a bitset type whose bits are named after Redis's own flag names.
macro_rules! bitset {
    (
        $(#[$meta:meta])* $vis:vis struct $ty:ident($repr:ty);
        $( $(#[$fmeta:meta])* $flag:ident = $bit:expr, $text:literal; )*
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        $vis struct $ty($repr);

        impl $ty {
            $( $(#[$fmeta])* pub const $flag: $ty = $ty(1 << $bit); )*

            /// Every flag with the name Redis gives it, in bit order.
            const NAMES: &'static [($ty, &'static str)] = &[$(($ty::$flag, $text)),*];

            /// The empty set.
            pub const fn empty() -> Self {
                $ty(0)
            }

            /// Every flag keyway knows.
            pub const fn all() -> Self {
                $ty(0 $(| (1 << $bit))*)
            }

            /// Whether every flag of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any flag of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// The union of both sets.
            pub const fn union(self, other: Self) -> Self {
                $ty(self.0 | other.0)
            }

            /// The flag Redis names `name` (ASCII case-insensitive), if known.
            pub fn from_name(name: &[u8]) -> Option<Self> {
                Self::NAMES
                    .iter()
                    .find(|(_, text)| text.as_bytes().eq_ignore_ascii_case(name))
                    .map(|(flag, _)| *flag)
            }

            /// Names of the flags set, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES
                    .iter()
                    .filter(move |(flag, _)| self.contains(*flag))
                    .map(|(_, text)| *text)
            }
        }

        impl std::ops::BitOr for $ty {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                self.union(rhs)
            }
        }

        impl std::ops::BitOrAssign for $ty {
            fn bitor_assign(&mut self, rhs: Self) {
                *self = self.union(rhs);
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
    };
}

bitset! {
    /// Command flags (`COMMAND` reply, element 3), e.g. `write`, `readonly`,
    /// `admin`, `pubsub`, `blocking`.
    pub struct CommandFlags(u32);
    /// May modify the keyspace.
    WRITE = 0, "write";
    /// Only reads the keyspace.
    READONLY = 1, "readonly";
    /// May grow memory; refused under OOM.
    DENYOOM = 2, "denyoom";
    /// Implemented by a module.
    MODULE = 3, "module";
    /// Administrative: acts on the server it is sent to.
    ADMIN = 4, "admin";
    /// Pub/Sub related.
    PUBSUB = 5, "pubsub";
    /// Not allowed from scripts.
    NOSCRIPT = 6, "noscript";
    /// May block the client.
    BLOCKING = 7, "blocking";
    /// Allowed while the dataset is loading.
    LOADING = 8, "loading";
    /// Allowed on a stale replica.
    STALE = 9, "stale";
    /// Not shown in MONITOR.
    SKIP_MONITOR = 10, "skip_monitor";
    /// Not shown in SLOWLOG.
    SKIP_SLOWLOG = 11, "skip_slowlog";
    /// Allowed on an importing slot with ASKING.
    ASKING = 12, "asking";
    /// O(1) or O(log N).
    FAST = 13, "fast";
    /// Allowed before authentication.
    NO_AUTH = 14, "no_auth";
    /// May replicate even without writing the keyspace.
    MAY_REPLICATE = 15, "may_replicate";
    /// Sentinel command.
    SENTINEL = 16, "sentinel";
    /// Sentinel-only command.
    ONLY_SENTINEL = 17, "only_sentinel";
    /// Keys are optional (EVAL, FCALL with 0 keys).
    NO_MANDATORY_KEYS = 18, "no_mandatory_keys";
    /// Protected (e.g. DEBUG, MODULE) unless enabled.
    PROTECTED = 19, "protected";
    /// Module command with its own getkeys callback.
    MODULE_GETKEYS = 20, "module_getkeys";
    /// Module command that refuses cluster mode.
    MODULE_NO_CLUSTER = 21, "module_no_cluster";
    /// Refused during async loading.
    NO_ASYNC_LOADING = 22, "no_async_loading";
    /// Refused inside MULTI.
    NO_MULTI = 23, "no_multi";
    /// Key positions depend on the arguments (legacy first/last/step lie).
    MOVABLEKEYS = 24, "movablekeys";
    /// Allowed while a script or function is busy.
    ALLOW_BUSY = 25, "allow_busy";
    /// Module command with a getchannels callback (Redis 7.2+).
    MODULE_GETCHANNELS = 26, "module_getchannels";
    /// May touch keys not given as arguments (Redis 7.4+ scripts).
    TOUCHES_ARBITRARY_KEYS = 27, "touches_arbitrary_keys";
}

impl CommandFlags {
    /// `write` flag.
    pub const fn is_write(self) -> bool {
        self.contains(Self::WRITE)
    }
    /// `readonly` flag: a replica may serve it.
    pub const fn is_readonly(self) -> bool {
        self.contains(Self::READONLY)
    }
    /// `admin` flag.
    pub const fn is_admin(self) -> bool {
        self.contains(Self::ADMIN)
    }
    /// `pubsub` flag.
    pub const fn is_pubsub(self) -> bool {
        self.contains(Self::PUBSUB)
    }
    /// `blocking` flag (may block; see `CommandSpec::is_blocking_call`).
    pub const fn is_blocking(self) -> bool {
        self.contains(Self::BLOCKING)
    }
    /// `noscript` flag.
    pub const fn is_noscript(self) -> bool {
        self.contains(Self::NOSCRIPT)
    }
    /// `fast` flag.
    pub const fn is_fast(self) -> bool {
        self.contains(Self::FAST)
    }
    /// `denyoom` flag.
    pub const fn is_denyoom(self) -> bool {
        self.contains(Self::DENYOOM)
    }
    /// `movablekeys` flag.
    pub const fn is_movablekeys(self) -> bool {
        self.contains(Self::MOVABLEKEYS)
    }
    /// `no_auth` flag.
    pub const fn is_no_auth(self) -> bool {
        self.contains(Self::NO_AUTH)
    }
    /// `module` flag.
    pub const fn is_module(self) -> bool {
        self.contains(Self::MODULE)
    }
}

bitset! {
    /// ACL categories (`COMMAND` reply, element 7), as of Redis 7.0. Bit
    /// order is Redis's own, so [`names`](Self::names) lists them in the
    /// order `ACL CAT` prints them, and `AclCategories::all().names()` is
    /// the reply to `ACL CAT` without an argument. Names are without the
    /// `@` and match ASCII case-insensitively, as in `ACL CAT READ`.
    ///
    /// `COMMAND` already includes the categories Redis implies from the
    /// flags (`write` → `write`, `readonly` → `read`, `admin` → `admin` and
    /// `dangerous`, `pubsub`, `fast`, `blocking`, and `slow` when not
    /// `fast`), so nothing is derived here.
    pub struct AclCategories(u32);
    /// Reads or writes keys, databases or their metadata in a type-agnostic
    /// way (DEL, EXPIRE, SCAN, ...).
    KEYSPACE = 0, "keyspace";
    /// Reads from keys.
    READ = 1, "read";
    /// Writes to keys.
    WRITE = 2, "write";
    /// Set data type.
    SET = 3, "set";
    /// Sorted set data type.
    SORTEDSET = 4, "sortedset";
    /// List data type.
    LIST = 5, "list";
    /// Hash data type.
    HASH = 6, "hash";
    /// String data type.
    STRING = 7, "string";
    /// Bitmap operations.
    BITMAP = 8, "bitmap";
    /// HyperLogLog data type.
    HYPERLOGLOG = 9, "hyperloglog";
    /// Geospatial indexes.
    GEO = 10, "geo";
    /// Stream data type.
    STREAM = 11, "stream";
    /// Pub/Sub.
    PUBSUB = 12, "pubsub";
    /// Administrative commands.
    ADMIN = 13, "admin";
    /// O(1) commands.
    FAST = 14, "fast";
    /// Every command that is not `fast`.
    SLOW = 15, "slow";
    /// May block the client.
    BLOCKING = 16, "blocking";
    /// Potentially dangerous (all `admin` commands, and more: KEYS, SORT,
    /// FLUSHALL, ...).
    DANGEROUS = 17, "dangerous";
    /// Affects the connection or other connections (AUTH, CLIENT, ...).
    CONNECTION = 18, "connection";
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    TRANSACTION = 19, "transaction";
    /// Scripts and functions.
    SCRIPTING = 20, "scripting";
}

bitset! {
    /// Key-spec flags: how a command uses the keys one key spec finds.
    pub struct KeySpecFlags(u16);
    /// Read-only access.
    RO = 0, "RO";
    /// Read-write access.
    RW = 1, "RW";
    /// Overwrite: the old value is not read.
    OW = 2, "OW";
    /// Removes the key.
    RM = 3, "RM";
    /// Returns or copies user data.
    ACCESS = 4, "access";
    /// Updates data in place.
    UPDATE = 5, "update";
    /// Adds data, never changes existing data.
    INSERT = 6, "insert";
    /// Deletes data.
    DELETE = 7, "delete";
    /// Not a key but hashes like one (shard channels): keyway routes on it.
    NOT_KEY = 8, "not_key";
    /// The spec may miss keys (SORT ... STORE, MIGRATE ... KEYS).
    INCOMPLETE = 9, "incomplete";
    /// The flags depend on the arguments (SET ... GET).
    VARIABLE_FLAGS = 10, "variable_flags";
}

/// Where Redis suggests sending a keyless command in a cluster
/// (`request_policy` tip); the router's fan-out uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestPolicy {
    /// No tip: keyed commands go to their slot, keyless ones anywhere.
    #[default]
    Default,
    /// Every node, replicas included (`all_nodes`).
    AllNodes,
    /// Every master (`all_shards`).
    AllShards,
    /// Split the keys per shard (`multi_shard`, e.g. MSET, DEL).
    MultiShard,
    /// Needs command-specific handling (`special`, e.g. SCAN).
    Special,
}

impl RequestPolicy {
    /// Parses the text after `request_policy:`.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"all_nodes" => Self::AllNodes,
            b"all_shards" => Self::AllShards,
            b"multi_shard" => Self::MultiShard,
            b"special" => Self::Special,
            _ => return None,
        })
    }
}

/// How Redis suggests merging the replies of a fan-out
/// (`response_policy` tip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponsePolicy {
    /// No tip: concatenate arrays or take the one reply.
    #[default]
    Default,
    /// Any successful reply will do (`one_succeeded`).
    OneSucceeded,
    /// Fail unless every node succeeded (`all_succeeded`).
    AllSucceeded,
    /// Logical AND of integer replies (`agg_logical_and`).
    AggLogicalAnd,
    /// Logical OR of integer replies (`agg_logical_or`).
    AggLogicalOr,
    /// Minimum (`agg_min`, e.g. WAIT).
    AggMin,
    /// Maximum (`agg_max`).
    AggMax,
    /// Sum (`agg_sum`, e.g. DBSIZE).
    AggSum,
    /// Command-specific merge (`special`, e.g. INFO).
    Special,
}

impl ResponsePolicy {
    /// Parses the text after `response_policy:`.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"one_succeeded" => Self::OneSucceeded,
            b"all_succeeded" => Self::AllSucceeded,
            b"agg_logical_and" => Self::AggLogicalAnd,
            b"agg_logical_or" => Self::AggLogicalOr,
            b"agg_min" => Self::AggMin,
            b"agg_max" => Self::AggMax,
            b"agg_sum" => Self::AggSum,
            b"special" => Self::Special,
            _ => return None,
        })
    }
}

/// The two policy tips of a command (other tips, like
/// `nondeterministic_output`, do not affect routing and are dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tips {
    /// `request_policy:*`.
    pub request: RequestPolicy,
    /// `response_policy:*`.
    pub response: ResponsePolicy,
}

impl Tips {
    /// Folds one tip into `self`; unknown tips are ignored so newer Redis
    /// versions do not break parsing.
    pub fn add(&mut self, tip: &[u8]) {
        if let Some(p) = tip.strip_prefix(b"request_policy:") {
            self.request = RequestPolicy::from_name(p).unwrap_or_default();
        } else if let Some(p) = tip.strip_prefix(b"response_policy:") {
            self.response = ResponsePolicy::from_name(p).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let f = CommandFlags::from_name(b"WRITE").unwrap() | CommandFlags::FAST;
        assert!(f.is_write() && f.is_fast() && !f.is_readonly());
        assert_eq!(f.names().collect::<Vec<_>>(), ["write", "fast"]);
        assert_eq!(format!("{f:?}"), r#"{"write", "fast"}"#);
        assert_eq!(
            KeySpecFlags::from_name(b"not_key"),
            Some(KeySpecFlags::NOT_KEY)
        );
        assert_eq!(CommandFlags::from_name(b"nope"), None);
    }

    #[test]
    fn acl_categories() {
        // `ACL CAT` of redis-server 7.0.15, in its order.
        let redis = "keyspace read write set sortedset list hash string bitmap hyperloglog \
            geo stream pubsub admin fast slow blocking dangerous connection transaction scripting";
        let all: Vec<_> = AclCategories::all().names().collect();
        assert_eq!(all, redis.split_ascii_whitespace().collect::<Vec<_>>());
        for name in all {
            let cat = AclCategories::from_name(name.as_bytes()).unwrap();
            assert_eq!(cat.names().collect::<Vec<_>>(), [name]);
        }
        let c = AclCategories::from_name(b"READ").unwrap() | AclCategories::SCRIPTING;
        assert_eq!(c.names().collect::<Vec<_>>(), ["read", "scripting"]);
        assert!(c.contains(AclCategories::READ) && !c.contains(AclCategories::all()));
        // No `@`: callers strip it, as `ACL CAT @read` is an error in Redis.
        assert_eq!(AclCategories::from_name(b"@read"), None);
        assert_eq!(AclCategories::from_name(b"nope"), None);
    }

    #[test]
    fn tips() {
        let mut t = Tips::default();
        t.add(b"nondeterministic_output");
        t.add(b"request_policy:all_shards");
        t.add(b"response_policy:agg_sum");
        assert_eq!(t.request, RequestPolicy::AllShards);
        assert_eq!(t.response, ResponsePolicy::AggSum);
    }
}
