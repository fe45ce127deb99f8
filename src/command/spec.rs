//! One command's routing metadata: [`CommandSpec`] and its [`KeySpec`]s.

use super::class::RouteClass;
use super::flags::{
    AclCategories, CommandFlags, KeySpecFlags, RequestPolicy, ResponsePolicy, Tips,
};

/// Where a key spec starts looking for keys (Redis `begin_search`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// Keys start at this argument index (>= 1).
    Index(i32),
    /// Keys start right after `keyword` (ASCII case-insensitive), searched
    /// forwards from `startfrom`, or backwards from `argc + startfrom` when
    /// `startfrom` is negative.
    Keyword {
        /// The keyword, as Redis spells it (e.g. `STREAMS`).
        keyword: Box<[u8]>,
        /// First index searched; negative counts from the end.
        startfrom: i32,
    },
    /// Redis cannot describe it (e.g. SORT's `STORE`); keyway skips it.
    Unknown,
}

/// How many keys follow the start (Redis `find_keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the start to `lastkey` (relative to the start; negative:
    /// relative to the end), every `step` (>= 1). With `lastkey == -1` and
    /// `limit > 0`, only `1/limit` of the remaining arguments are keys
    /// (XREAD: `STREAMS k1 k2 id1 id2`).
    Range {
        /// Last key, relative to the start, or to the end when negative.
        lastkey: i32,
        /// Distance between keys (>= 1).
        step: i32,
        /// Divisor of the remaining arguments when `lastkey` is negative.
        limit: i32,
    },
    /// The argument at `keynumidx` (relative to the start) holds the number
    /// of keys, which begin at `firstkey` (relative to the start), every
    /// `step` (>= 1).
    KeyNum {
        /// Index of the key count, relative to the start.
        keynumidx: i32,
        /// Index of the first key, relative to the start.
        firstkey: i32,
        /// Distance between keys (>= 1).
        step: i32,
    },
    /// Redis cannot describe it; keyway skips the spec.
    Unknown,
}

/// One Redis key spec: where a group of keys sits in the arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// How the command uses these keys.
    pub flags: KeySpecFlags,
    /// Where the search starts.
    pub begin: BeginSearch,
    /// Which arguments after the start are keys.
    pub find: FindKeys,
}

impl KeySpec {
    /// The spec Redis derives from legacy first/last/step (Redis 6 replies
    /// have no key specs); `None` when the command declares no key.
    pub fn from_legacy(first: i32, last: i32, step: i32) -> Option<KeySpec> {
        if first <= 0 || step <= 0 || (last >= 0 && last < first) {
            return None;
        }
        let lastkey = if last < 0 { last } else { last - first };
        Some(KeySpec {
            flags: KeySpecFlags::empty(),
            begin: BeginSearch::Index(first),
            find: FindKeys::Range {
                lastkey,
                step,
                limit: 0,
            },
        })
    }

    /// Whether the numbers can be evaluated without dividing by zero or
    /// looping forever; malformed specs are rejected when the table is built.
    pub(crate) fn is_well_formed(&self) -> bool {
        let begin_ok = match &self.begin {
            BeginSearch::Index(i) => *i >= 1,
            BeginSearch::Keyword { keyword, .. } => !keyword.is_empty(),
            BeginSearch::Unknown => true,
        };
        let find_ok = match self.find {
            FindKeys::Range { step, limit, .. } => step >= 1 && limit >= 0,
            FindKeys::KeyNum {
                keynumidx,
                firstkey,
                step,
            } => step >= 1 && keynumidx >= 0 && firstkey >= 0,
            FindKeys::Unknown => true,
        };
        begin_ok && find_ok
    }
}

/// Everything keyway knows about one command or subcommand.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub(crate) name: Box<str>,
    pub(crate) arity: i32,
    pub(crate) flags: CommandFlags,
    pub(crate) acl_categories: AclCategories,
    /// Set by `CommandTable::insert`/`insert_sub`; [`UNASSIGNED`] before.
    pub(crate) acl_id: u32,
    pub(crate) legacy: (i32, i32, i32),
    pub(crate) tips: Tips,
    pub(crate) key_specs: Vec<KeySpec>,
    pub(crate) class: RouteClass,
    pub(crate) subcommands: Vec<CommandSpec>,
}

/// The ACL id of a spec not (yet) in a table.
pub(crate) const UNASSIGNED: u32 = u32::MAX;

impl CommandSpec {
    /// Builds a spec and classifies it; key specs that are not well formed
    /// are dropped (they could only mislead routing).
    pub(crate) fn new(
        name: Box<str>,
        arity: i32,
        flags: CommandFlags,
        acl_categories: AclCategories,
        legacy: (i32, i32, i32),
        tips: Tips,
        mut key_specs: Vec<KeySpec>,
    ) -> CommandSpec {
        key_specs.retain(KeySpec::is_well_formed);
        let class = super::class::classify(&name, flags, tips, !key_specs.is_empty());
        CommandSpec {
            name,
            arity,
            flags,
            acl_categories,
            acl_id: UNASSIGNED,
            legacy,
            tips,
            key_specs,
            class,
            subcommands: Vec::new(),
        }
    }

    /// Lowercase name; subcommands are `container|sub` (`object|encoding`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Redis arity: positive means exactly that many arguments (command name
    /// included), negative means at least `-arity`.
    pub fn arity(&self) -> i32 {
        self.arity
    }

    /// Command flags.
    pub fn flags(&self) -> CommandFlags {
        self.flags
    }

    /// ACL categories, as `COMMAND` reports them (implicit ones included).
    pub fn acl_categories(&self) -> AclCategories {
        self.acl_categories
    }

    /// This command's or subcommand's index in an ACL bitmap: dense from 0
    /// over the table it belongs to (see [`CommandTable::acl_id_count`]),
    /// stable for the table's life, as extending it only appends.
    ///
    /// [`CommandTable::acl_id_count`]: super::CommandTable::acl_id_count
    pub fn acl_id(&self) -> u32 {
        self.acl_id
    }

    /// How keyway handles this command.
    pub fn class(&self) -> RouteClass {
        self.class
    }

    /// The key specs, in Redis's order.
    pub fn key_specs(&self) -> &[KeySpec] {
        &self.key_specs
    }

    /// Legacy `(first key, last key, step)`; only a hint for commands with
    /// `movablekeys`.
    pub fn legacy_key_range(&self) -> (i32, i32, i32) {
        self.legacy
    }

    /// Redis's `request_policy` tip.
    pub fn request_policy(&self) -> RequestPolicy {
        self.tips.request
    }

    /// Redis's `response_policy` tip.
    pub fn response_policy(&self) -> ResponsePolicy {
        self.tips.response
    }

    /// Whether this is a container (CLIENT, OBJECT, ...) whose real commands
    /// are its subcommands. `CommandTable::lookup` returns the container
    /// itself when the subcommand is missing or unknown, so the caller can
    /// answer like Redis (`wrong number of arguments` or `unknown subcommand`).
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// The subcommands of a container, sorted by name.
    pub fn subcommands(&self) -> impl Iterator<Item = &CommandSpec> {
        self.subcommands.iter()
    }

    /// Arity check like Redis: `arity > 0` exact, `arity < 0` minimum.
    /// `argc` counts the command name (and for a subcommand, its container
    /// name too: `OBJECT ENCODING k` has argc 3).
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity.unsigned_abs() as usize;
        match self.arity {
            a if a > 0 => argc == arity,
            a if a < 0 => argc >= arity,
            // Arity 0 is not a valid Redis arity; do not refuse what we
            // cannot check (a module might report it).
            _ => true,
        }
    }
}
