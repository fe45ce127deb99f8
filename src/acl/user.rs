//! One ACL user: whether it is on, its password hashes, and what it may
//! run and touch, built by applying Redis's ACL rules in order
//! ([`User::apply`]) and checked per request ([`User::check`]).

use std::sync::Arc;

use crate::command::{CommandArgs, CommandSpec, CommandTable, KeySpecFlags};

use super::glob::Pattern;
use super::rules::{CommandRule, KeyPattern, PasswordHash, Rule, RuleError};

/// One ACL user.
#[derive(Clone, Debug)]
pub struct User {
    name: Arc<str>,
    enabled: bool,
    nopass: bool,
    /// `sanitize-payload` or `skip-sanitize-payload` if given (`reset`
    /// gives the first): reported, not acted on (`RESTORE` payloads are the
    /// nodes' business).
    sanitize: Option<bool>,
    passwords: Vec<PasswordHash>,
    commands: Commands,
    keys: KeyRules,
    channels: ChannelRules,
}

/// The command rules as given (for `ACL LIST`), and what they allow.
#[derive(Clone, Debug, Default)]
struct Commands {
    rules: Vec<CommandRule>,
    /// Bit `acl_id` set when that command is allowed, for the ids the
    /// table had when the rules were applied; later ids (commands learnt
    /// from the cluster afterwards) are decided by the rules themselves.
    allowed: Vec<u64>,
    /// Whether every command is allowed (the rules end in `+@all` or
    /// allow everything there is).
    everything: bool,
}

/// Patterns of keys or channels, or all of them (`allkeys`,
/// `allchannels`).
#[derive(Clone, Debug)]
struct Patterns<P> {
    all: bool,
    patterns: Vec<P>,
}

impl<P> Default for Patterns<P> {
    fn default() -> Self {
        Patterns {
            all: false,
            patterns: Vec::new(),
        }
    }
}

impl<P: PartialEq> Patterns<P> {
    /// `allkeys` / `allchannels`: the patterns are moot.
    fn allow_all(&mut self) {
        self.all = true;
        self.patterns.clear();
    }

    /// Adds a pattern; after `all`, that is `after_all` (as redis-server).
    fn add(&mut self, pattern: P, after_all: RuleError) -> Result<(), RuleError> {
        if self.all {
            return Err(after_all);
        }
        if !self.patterns.contains(&pattern) {
            self.patterns.push(pattern);
        }
        Ok(())
    }
}

/// Key patterns, each with the access it grants.
type KeyRules = Patterns<KeyPattern>;

/// Channel patterns.
type ChannelRules = Patterns<Pattern>;

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The command is not allowed.
    Command,
    /// The key at this argument index is not allowed.
    Key(usize),
    /// The channel at this argument index is not allowed.
    Channel(usize),
}

impl Denial {
    /// `ACL DRYRUN`'s explanation, naming the key or channel.
    pub fn explain<A: CommandArgs + ?Sized>(self, spec: &CommandSpec, args: &A) -> String {
        match self {
            Denial::Command => format!(
                "This user has no permissions to run the '{}' command",
                spec.name()
            ),
            Denial::Key(i) => format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(args.arg(i))
            ),
            Denial::Channel(i) => format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(args.arg(i))
            ),
        }
    }

    /// The error a client gets (after `-`), worded as redis-server 7.0.
    pub fn error(self, spec: &CommandSpec) -> String {
        match self {
            Denial::Command => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                spec.name()
            ),
            Denial::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .to_string()
            }
            Denial::Channel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments"
                    .to_string()
            }
        }
    }
}

/// Read and write access a key needs, from its key spec's flags (as
/// redis-server's `ACLSelectorCheckKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Needs {
    read: bool,
    write: bool,
}

impl Needs {
    fn of(flags: KeySpecFlags) -> Needs {
        Needs {
            read: flags.contains(KeySpecFlags::ACCESS),
            write: flags
                .intersects(KeySpecFlags::INSERT | KeySpecFlags::DELETE | KeySpecFlags::UPDATE),
        }
    }
}

impl User {
    /// A new user as `ACL SETUSER name` makes it: off, no password, no
    /// commands, keys or channels.
    pub fn new(name: &str) -> User {
        User {
            name: name.into(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            commands: Commands::default(),
            keys: KeyRules::default(),
            channels: ChannelRules::default(),
        }
    }

    /// The user's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether the user may authenticate (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any password works (`nopass`).
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether `password` is one of the user's (any, with `nopass`). The
    /// comparison takes the same time wherever the hashes differ.
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hash = super::sha256(password);
        self.passwords
            .iter()
            .fold(false, |ok, known| ok | same_hash(known, &hash))
    }

    /// Applies one rule, as `ACL SETUSER` does with each of its arguments.
    pub fn apply(&mut self, rule: &[u8], table: &CommandTable) -> Result<(), RuleError> {
        match Rule::parse(rule)? {
            Rule::On => self.enabled = true,
            Rule::Off => self.enabled = false,
            Rule::NoPass => {
                self.nopass = true;
                self.passwords.clear();
            }
            Rule::ResetPass => {
                self.nopass = false;
                self.passwords.clear();
            }
            Rule::AddPassword(hash) => {
                self.nopass = false;
                if !self.passwords.contains(&hash) {
                    self.passwords.push(hash);
                }
            }
            Rule::RemovePassword(hash) => {
                let before = self.passwords.len();
                self.passwords.retain(|h| *h != hash);
                if self.passwords.len() == before {
                    return Err(RuleError::NoSuchPassword);
                }
            }
            Rule::Sanitize(on) => self.sanitize = Some(on),
            Rule::AllKeys => self.keys.allow_all(),
            Rule::ResetKeys => self.keys = KeyRules::default(),
            Rule::Keys(pattern) => self.keys.add(pattern, RuleError::KeysAfterAll)?,
            Rule::AllChannels => self.channels.allow_all(),
            Rule::ResetChannels => self.channels = ChannelRules::default(),
            Rule::Channels(pattern) => self.channels.add(pattern, RuleError::ChannelsAfterAll)?,
            Rule::Command(rule) => {
                rule.check(table)?;
                self.commands.add(rule, table);
            }
            Rule::Reset => {
                *self = User::new(&self.name.clone());
                self.sanitize = Some(true);
            }
        }
        Ok(())
    }

    /// Whether every command, key and channel is allowed: then
    /// [`User::check`] has nothing to check.
    pub fn unrestricted(&self) -> bool {
        self.commands.everything && self.keys.all && self.channels.all
    }

    /// Whether this user may run `args` (whose table entry is `spec`): the
    /// command, then every key (with the access its key spec says), then
    /// every channel. No allocation.
    pub fn check<A: CommandArgs + ?Sized>(
        &self,
        spec: &CommandSpec,
        args: &A,
    ) -> Result<(), Denial> {
        if !self.commands.allows(spec) {
            return Err(Denial::Command);
        }
        if !self.keys.all && !spec.key_specs().is_empty() {
            let mut denied = None;
            let _ = spec.for_each_key_flags(args, |i, flags| {
                if denied.is_none() && !flags.contains(KeySpecFlags::NOT_KEY) {
                    let needs = Needs::of(super::keys::actual_flags(spec, args, flags));
                    if !self.keys.allow(args.arg(i), needs) {
                        denied = Some(i);
                    }
                }
            });
            if let Some(i) = denied {
                return Err(Denial::Key(i));
            }
        }
        if !self.channels.all && spec.flags().is_pubsub() {
            if let Some((positions, pattern)) = super::keys::channels(spec, args.argc()) {
                for i in positions {
                    if !self.channels.allow(args.arg(i), pattern) {
                        return Err(Denial::Channel(i));
                    }
                }
            }
        }
        Ok(())
    }

    /// `ACL LIST`'s description: `user NAME on #hash ~keys &channels +@cmds`.
    pub fn describe(&self) -> String {
        let mut out = format!("user {}", self.name);
        for flag in self.flags() {
            out.push(' ');
            out.push_str(flag);
        }
        for hash in &self.passwords {
            out.push_str(" #");
            out.push_str(&hex(hash));
        }
        for part in [
            self.describe_keys(),
            self.describe_channels(),
            self.describe_commands(),
        ] {
            if !part.is_empty() {
                out.push(' ');
                out.push_str(&part);
            }
        }
        out
    }

    /// The flags `ACL GETUSER` lists, in Redis's order.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Some(true) => flags.push("sanitize-payload"),
            Some(false) => flags.push("skip-sanitize-payload"),
            None => {}
        }
        flags
    }

    /// The password hashes, in hex.
    pub fn password_hashes(&self) -> impl Iterator<Item = String> + '_ {
        self.passwords.iter().map(|h| hex(h))
    }

    /// The key rules as `ACL GETUSER` shows them (`~*`, `%R~cache:* ~app:*`).
    pub fn describe_keys(&self) -> String {
        if self.keys.all {
            return "~*".to_string();
        }
        let parts: Vec<String> = self
            .keys
            .patterns
            .iter()
            .map(|p| {
                let access = match (p.read, p.write) {
                    (true, true) => "",
                    (true, false) => "%R",
                    (false, true) => "%W",
                    (false, false) => "%",
                };
                format!("{access}~{}", String::from_utf8_lossy(p.pattern.text()))
            })
            .collect();
        parts.join(" ")
    }

    /// The channel rules as `ACL GETUSER` shows them (`&*`, `&a &b`).
    pub fn channel_patterns(&self) -> String {
        if self.channels.all {
            return "&*".to_string();
        }
        let parts: Vec<String> = self
            .channels
            .patterns
            .iter()
            .map(|p| format!("&{}", String::from_utf8_lossy(p.text())))
            .collect();
        parts.join(" ")
    }

    /// The channel rules as `ACL LIST` shows them: from `resetchannels`
    /// unless every channel is allowed.
    fn describe_channels(&self) -> String {
        match self.channel_patterns() {
            all if self.channels.all => all,
            none if none.is_empty() => "resetchannels".to_string(),
            some => format!("resetchannels {some}"),
        }
    }

    /// The command rules as given, from `-@all` or `+@all` on.
    pub fn describe_commands(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !matches!(self.commands.rules.first(), Some(CommandRule::All(_))) {
            parts.push("-@all".to_string());
        }
        parts.extend(self.commands.rules.iter().map(CommandRule::to_string));
        parts.join(" ")
    }
}

impl Commands {
    /// Adds a rule and recomputes what the rules allow. A `+@all` or
    /// `-@all` makes every rule before it moot, so they are dropped.
    fn add(&mut self, rule: CommandRule, table: &CommandTable) {
        if let CommandRule::All(_) = rule {
            self.rules.clear();
        }
        self.rules.push(rule);
        let ids = table.acl_id_count() as usize;
        self.allowed = vec![0; ids.div_ceil(64)];
        let mut everything = true;
        for spec in table
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
        {
            let id = spec.acl_id() as usize;
            if self.decide(spec) {
                self.allowed[id / 64] |= 1 << (id % 64);
            } else {
                everything = false;
            }
        }
        // Commands learnt later are allowed only by `+@all` at the end.
        self.everything = everything && matches!(self.rules.last(), Some(CommandRule::All(true)));
    }

    /// What the rules say of `spec`: the last rule that names it wins.
    fn decide(&self, spec: &CommandSpec) -> bool {
        self.rules
            .iter()
            .rev()
            .find_map(|rule| rule.names(spec).then(|| rule.allows()))
            .unwrap_or(false)
    }

    #[inline]
    fn allows(&self, spec: &CommandSpec) -> bool {
        if self.everything {
            return true;
        }
        let id = spec.acl_id() as usize;
        match self.allowed.get(id / 64) {
            Some(bits) if id < self.allowed.len() * 64 => bits & (1 << (id % 64)) != 0,
            _ => self.decide(spec),
        }
    }
}

impl KeyRules {
    #[inline]
    fn allow(&self, key: &[u8], needs: Needs) -> bool {
        self.all
            || self.patterns.iter().any(|p| {
                (p.read || !needs.read) && (p.write || !needs.write) && p.pattern.matches(key)
            })
    }
}

impl ChannelRules {
    /// A channel matches a pattern of the list; a pattern (`PSUBSCRIBE`)
    /// must be one of the list, literally.
    fn allow(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all
            || self.patterns.iter().any(|p| {
                if is_pattern {
                    p.text() == channel
                } else {
                    p.matches(channel)
                }
            })
    }
}

/// Equality of two hashes, in the same time wherever they differ.
fn same_hash(a: &PasswordHash, b: &PasswordHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex, as Redis shows password hashes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
