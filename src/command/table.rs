//! [`CommandTable`]: every command keyway knows, looked up by name without
//! allocating.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::flags::AclCategories;
use super::spec::CommandSpec;
use super::{CommandArgs, MAX_NAME_LEN};

/// FNV-1a: command names are short and not attacker-chosen keys of a
/// growing map (the map is built once), so SipHash's DoS resistance buys
/// nothing here and costs a few nanoseconds per request.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Where a name lives: top-level index, and subcommand index + 1 (0 for the
/// command itself).
type Slot = (u32, u32);

/// Every command and subcommand keyway knows, with how to route it. Built
/// once at start-up ([`CommandTable::builtin`], then
/// [`CommandTable::extend_from_command_reply`]) and then only read.
#[derive(Clone, Debug)]
pub struct CommandTable {
    commands: Vec<CommandSpec>,
    /// Lowercase full names (`get`, `object|encoding`) → position.
    index: HashMap<Box<[u8]>, Slot, BuildHasherDefault<Fnv>>,
    /// The next [`CommandSpec::acl_id`]: ids are handed out in insertion
    /// order and never reused.
    next_acl_id: u32,
}

impl CommandTable {
    /// The table generated from Redis 7.0.15 (`commands.txt`), embedded in
    /// the binary, with the subcommands only keyway answers.
    ///
    /// # Panics
    /// If the embedded data does not parse: a build bug that the unit tests
    /// catch.
    pub fn builtin() -> CommandTable {
        let text = [super::data::BUILTIN, super::data::KEYWAY_ONLY].concat();
        match super::data::parse(&text) {
            Ok(commands) => CommandTable::from_commands(commands),
            Err(e) => panic!("embedded {e}"),
        }
    }

    pub(crate) fn from_commands(commands: Vec<CommandSpec>) -> CommandTable {
        let mut table = CommandTable {
            commands: Vec::with_capacity(commands.len()),
            index: HashMap::default(),
            next_acl_id: 0,
        };
        for cmd in commands {
            table.insert(cmd);
        }
        table
    }

    /// Adds a top-level command (with its subcommands); the caller checked
    /// that the name is new.
    pub(crate) fn insert(&mut self, mut cmd: CommandSpec) {
        let top = self.commands.len() as u32;
        cmd.acl_id = self.take_acl_id();
        for sub in &mut cmd.subcommands {
            sub.acl_id = self.take_acl_id();
        }
        self.index.insert(cmd.name.as_bytes().into(), (top, 0));
        for (i, sub) in cmd.subcommands.iter().enumerate() {
            self.index
                .insert(sub.name.as_bytes().into(), (top, i as u32 + 1));
        }
        self.commands.push(cmd);
    }

    /// Adds a subcommand to an existing container; the caller checked that
    /// the name is new.
    pub(crate) fn insert_sub(&mut self, top: u32, mut sub: CommandSpec) {
        sub.acl_id = self.take_acl_id();
        let parent = &mut self.commands[top as usize];
        parent.subcommands.push(sub);
        let i = parent.subcommands.len() as u32;
        let name = parent.subcommands[i as usize - 1].name.as_bytes().into();
        self.index.insert(name, (top, i));
    }

    fn take_acl_id(&mut self) -> u32 {
        let id = self.next_acl_id;
        self.next_acl_id += 1;
        id
    }

    /// Position of a lowercase full name.
    #[inline]
    pub(crate) fn find(&self, name: &[u8]) -> Option<Slot> {
        self.index.get(name).copied()
    }

    fn get(&self, (top, sub): Slot) -> &CommandSpec {
        let cmd = &self.commands[top as usize];
        match sub {
            0 => cmd,
            i => &cmd.subcommands[i as usize - 1],
        }
    }

    /// Looks up the command of a request by `args[0]` (ASCII
    /// case-insensitive), descending into the subcommand `args[1]` for
    /// containers (OBJECT, XINFO, MEMORY, CLIENT, CONFIG, SCRIPT, FUNCTION,
    /// CLUSTER, COMMAND, ...). For a container whose subcommand is missing
    /// or unknown, returns the container (see
    /// [`CommandSpec::is_container`]). `None` for unknown commands.
    ///
    /// No allocation: names are lowercased into a stack buffer.
    #[inline]
    pub fn lookup<A: CommandArgs + ?Sized>(&self, args: &A) -> Option<&CommandSpec> {
        if args.argc() == 0 {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let n = lowercase_into(&mut buf, 0, args.arg(0))?;
        let slot = self.find(&buf[..n])?;
        if slot.1 != 0 {
            // `object|encoding` typed as a command name: Redis does not
            // accept that either.
            return None;
        }
        let cmd = self.get(slot);
        if cmd.is_container() && args.argc() >= 2 {
            buf[n] = b'|';
            let sub = lowercase_into(&mut buf, n + 1, args.arg(1))
                .and_then(|end| self.find(&buf[..end]))
                .filter(|s| s.0 == slot.0);
            if let Some(sub) = sub {
                return Some(self.get(sub));
            }
        }
        Some(cmd)
    }

    /// Looks up a command or subcommand by its full name (`get`,
    /// `OBJECT|encoding`), case-insensitive.
    pub fn get_by_name(&self, name: &str) -> Option<&CommandSpec> {
        let mut buf = [0u8; MAX_NAME_LEN];
        let n = lowercase_into(&mut buf, 0, name.as_bytes())?;
        self.find(&buf[..n]).map(|slot| self.get(slot))
    }

    /// Number of top-level commands (what `COMMAND COUNT` answers).
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether the table has no command at all.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Top-level commands; containers list their subcommands with
    /// [`CommandSpec::subcommands`].
    pub fn iter(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.iter()
    }

    /// One past the largest [`CommandSpec::acl_id`]: the size of an ACL
    /// bitmap over this table's commands and subcommands.
    pub fn acl_id_count(&self) -> u32 {
        self.next_acl_id
    }

    /// The container of a subcommand (`config` for `config|get`); `None`
    /// for a top-level command.
    pub fn container_of(&self, spec: &CommandSpec) -> Option<&CommandSpec> {
        let (container, _) = spec.name.split_once('|')?;
        self.get_by_name(container)
    }

    /// The commands and subcommands in any of the categories `cat`, as
    /// `ACL CAT <category>` lists them: containers and subcommands each by
    /// their own categories (a container's are usually just `slow`), and,
    /// like Redis, no module command (`module` flag).
    pub fn in_category(&self, cat: AclCategories) -> impl Iterator<Item = &CommandSpec> {
        self.commands
            .iter()
            .filter(|cmd| !cmd.flags.is_module())
            .flat_map(|cmd| std::iter::once(cmd).chain(&cmd.subcommands))
            .filter(move |spec| spec.acl_categories.intersects(cat))
    }
}

/// Writes `name` lowercased into `buf[at..]`; returns the end, or `None`
/// when it does not fit (no known name is that long).
fn lowercase_into(buf: &mut [u8; MAX_NAME_LEN], at: usize, name: &[u8]) -> Option<usize> {
    let end = at.checked_add(name.len()).filter(|&end| end <= buf.len())?;
    for (dst, src) in buf[at..end].iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(v: &'a [&'a str]) -> &'a [&'a str] {
        v
    }

    #[test]
    fn lookup_is_case_insensitive() {
        let t = CommandTable::builtin();
        assert_eq!(t.lookup(args(&["gEt", "k"])).unwrap().name(), "get");
        assert_eq!(t.lookup(args(&["GET"])).unwrap().name(), "get");
        assert!(t.lookup(args(&["nosuchcommand"])).is_none());
        assert!(t.lookup(args(&[])).is_none());
        assert!(t.lookup(args(&[&"x".repeat(1000)])).is_none());
    }

    #[test]
    fn subcommands() {
        let t = CommandTable::builtin();
        let enc = t.lookup(args(&["object", "ENCODING", "k"])).unwrap();
        assert_eq!(enc.name(), "object|encoding");
        assert_eq!(
            t.lookup(args(&["CLIENT", "setname", "x"])).unwrap().name(),
            "client|setname"
        );
        // Missing or unknown subcommand: the container, for Redis's error.
        let c = t.lookup(args(&["client"])).unwrap();
        assert!(c.is_container() && !c.arity_ok(1));
        assert_eq!(
            t.lookup(args(&["client", "nope"])).unwrap().name(),
            "client"
        );
        // A subcommand name is not a command name.
        assert!(t.lookup(args(&["object|encoding", "k"])).is_none());
        // Subcommands of another container do not match.
        assert_eq!(
            t.lookup(args(&["object", "setname"])).unwrap().name(),
            "object"
        );
        // COMMAND alone is a valid command and a container.
        assert_eq!(t.lookup(args(&["command"])).unwrap().name(), "command");
        assert_eq!(
            t.lookup(args(&["command", "count"])).unwrap().name(),
            "command|count"
        );
        assert_eq!(
            t.get_by_name("OBJECT|Encoding").unwrap().name(),
            "object|encoding"
        );
    }

    #[test]
    fn arity() {
        let t = CommandTable::builtin();
        let get = t.get_by_name("get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let mset = t.get_by_name("mset").unwrap();
        assert!(mset.arity_ok(3) && mset.arity_ok(5) && !mset.arity_ok(2));
    }

    #[test]
    fn counts() {
        let t = CommandTable::builtin();
        assert_eq!(t.len(), 240);
        assert_eq!(t.iter().count(), 240);
        assert!(!t.is_empty());
        for cmd in t.iter() {
            assert!(std::ptr::eq(t.get_by_name(cmd.name()).unwrap(), cmd));
            for sub in cmd.subcommands() {
                assert!(std::ptr::eq(t.get_by_name(sub.name()).unwrap(), sub));
            }
        }
    }

    #[test]
    fn acl_ids_are_dense() {
        let t = CommandTable::builtin();
        let mut ids: Vec<u32> = t
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
            .map(CommandSpec::acl_id)
            .collect();
        ids.sort_unstable();
        // 240 commands, 126 subcommands, and keyway's CLIENT SETINFO.
        assert_eq!(t.acl_id_count(), 367);
        assert!(ids.iter().copied().eq(0..t.acl_id_count()));
    }

    #[test]
    fn containers() {
        let t = CommandTable::builtin();
        let get = t.get_by_name("config|get").unwrap();
        let config = t.container_of(get).unwrap();
        assert!(std::ptr::eq(config, t.get_by_name("config").unwrap()));
        assert!(t.container_of(config).is_none());
        assert!(t.container_of(t.get_by_name("get").unwrap()).is_none());
    }

    #[test]
    fn acl_cat() {
        let t = CommandTable::builtin();
        let names = |cat: &str| -> Vec<&str> {
            let cat = AclCategories::from_name(cat.as_bytes()).unwrap();
            let mut v: Vec<_> = t.in_category(cat).map(CommandSpec::name).collect();
            v.sort_unstable();
            v
        };
        // `ACL CAT <category> | wc -l` of redis-server 7.0.15, in ACL CAT
        // order; keyway's CLIENT SETINFO adds one to connection and slow.
        let redis = [
            34, 87, 108, 19, 37, 24, 16, 22, 7, 5, 10, 23, 13, 65, 99, 267, 10, 75, 35, 5, 21,
        ];
        for (cat, count) in AclCategories::all().names().zip(redis) {
            let extra = usize::from(matches!(cat, "connection" | "slow"));
            assert_eq!(names(cat).len(), count + extra, "{cat}");
        }
        assert_eq!(
            names("transaction"),
            ["discard", "exec", "multi", "unwatch", "watch"]
        );
        // Containers and subcommands, each by its own categories.
        let slow = names("slow");
        assert!(slow.contains(&"config") && slow.contains(&"config|get"));
        assert!(names("admin").contains(&"config|get") && !names("admin").contains(&"config"));
        // Several categories: any of them.
        let both = AclCategories::HYPERLOGLOG | AclCategories::TRANSACTION;
        assert_eq!(t.in_category(both).count(), 10);
        assert_eq!(t.in_category(AclCategories::empty()).count(), 0);
    }
}
