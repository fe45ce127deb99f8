//! One ACL rule in Redis's syntax (`on`, `>password`, `~pattern`,
//! `%R~pattern`, `&channel`, `+@read`, `-flushall`, `+config|get`, ...)
//! and the errors redis-server gives for a bad one.

use std::fmt;

use crate::command::{AclCategories, CommandSpec, CommandTable};

use super::glob::Pattern;

/// A password's SHA-256; keyway keeps no password in clear.
pub type PasswordHash = [u8; 32];

/// `~pattern` (read and write), `%R~pattern`, `%W~pattern`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    /// Grants reading.
    pub read: bool,
    /// Grants writing.
    pub write: bool,
    /// The glob pattern.
    pub pattern: Pattern,
}

/// Why a rule is refused; `Display` is redis-server's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A command or category keyway does not know.
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    /// Not a rule at all.
    #[error("Syntax error")]
    Syntax,
    /// A key pattern after `~*` / `allkeys`.
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    KeysAfterAll,
    /// A channel pattern after `&*` / `allchannels`.
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    ChannelsAfterAll,
    /// `<password` or `!hash` for a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` that is not 64 lowercase hex digits.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    /// `(...)` selectors (Redis 7.0) and `clearselectors`.
    #[error("keyway does not support ACL selectors; give the user one set of rules")]
    Selectors,
    /// `+command|argument` for a command without subcommands.
    #[error("keyway does not support first-argument rules (+command|argument); allow or deny the whole command")]
    FirstArg,
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `on`.
    On,
    /// `off`.
    Off,
    /// `nopass`.
    NoPass,
    /// `resetpass`.
    ResetPass,
    /// `>password` or `#hash`.
    AddPassword(PasswordHash),
    /// `<password` or `!hash`.
    RemovePassword(PasswordHash),
    /// `sanitize-payload` (true) or `skip-sanitize-payload`.
    Sanitize(bool),
    /// `allkeys` or `~*`.
    AllKeys,
    /// `resetkeys`.
    ResetKeys,
    /// `~pattern`, `%R~pattern`, `%W~pattern`, `%RW~pattern`.
    Keys(KeyPattern),
    /// `allchannels` or `&*`.
    AllChannels,
    /// `resetchannels`.
    ResetChannels,
    /// `&pattern`.
    Channels(Pattern),
    /// A command rule.
    Command(CommandRule),
    /// `reset`.
    Reset,
}

/// A rule about commands: `+`/`-` with `@all`, a category, a command or a
/// subcommand (`allcommands` is `+@all`, `nocommands` is `-@all`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandRule {
    /// `+@all` / `-@all`.
    All(bool),
    /// `+@category` / `-@category`, with the category's name.
    Category(bool, AclCategories, Box<str>),
    /// `+name` / `-name`: a command (with its subcommands) or one
    /// subcommand (`config|get`), lowercase.
    Command(bool, Box<str>),
}

impl Rule {
    /// Parses one rule, case-insensitively where Redis is.
    pub fn parse(op: &[u8]) -> Result<Rule, RuleError> {
        let lower = op.to_ascii_lowercase();
        let word = |w: &str| lower == w.as_bytes();
        Ok(match op.first() {
            _ if word("on") => Rule::On,
            _ if word("off") => Rule::Off,
            _ if word("nopass") => Rule::NoPass,
            _ if word("resetpass") => Rule::ResetPass,
            _ if word("sanitize-payload") => Rule::Sanitize(true),
            _ if word("skip-sanitize-payload") => Rule::Sanitize(false),
            _ if word("allkeys") || op == b"~*" => Rule::AllKeys,
            _ if word("resetkeys") => Rule::ResetKeys,
            _ if word("allchannels") || op == b"&*" => Rule::AllChannels,
            _ if word("resetchannels") => Rule::ResetChannels,
            _ if word("allcommands") => Rule::Command(CommandRule::All(true)),
            _ if word("nocommands") => Rule::Command(CommandRule::All(false)),
            _ if word("reset") => Rule::Reset,
            _ if word("clearselectors") => return Err(RuleError::Selectors),
            Some(b'>') => Rule::AddPassword(super::sha256(&op[1..])),
            Some(b'<') => Rule::RemovePassword(super::sha256(&op[1..])),
            Some(b'#') => Rule::AddPassword(parse_hash(&op[1..])?),
            Some(b'!') => Rule::RemovePassword(parse_hash(&op[1..])?),
            Some(b'~') => Rule::Keys(KeyPattern {
                read: true,
                write: true,
                pattern: Pattern::new(&op[1..]),
            }),
            Some(b'%') => Rule::Keys(key_pattern_with_access(&op[1..])?),
            Some(b'&') => Rule::Channels(Pattern::new(&op[1..])),
            Some(b'(') => return Err(RuleError::Selectors),
            Some(&sign @ (b'+' | b'-')) => {
                Rule::Command(CommandRule::parse(sign == b'+', &lower[1..])?)
            }
            _ => return Err(RuleError::Syntax),
        })
    }
}

/// `%R~p`, `%W~p`, `%RW~p` (after the `%`).
fn key_pattern_with_access(op: &[u8]) -> Result<KeyPattern, RuleError> {
    let tilde = op
        .iter()
        .position(|&b| b == b'~')
        .ok_or(RuleError::Syntax)?;
    let (mut read, mut write) = (false, false);
    for &b in &op[..tilde] {
        match b.to_ascii_uppercase() {
            b'R' => read = true,
            b'W' => write = true,
            _ => return Err(RuleError::Syntax),
        }
    }
    if !read && !write {
        return Err(RuleError::Syntax);
    }
    Ok(KeyPattern {
        read,
        write,
        pattern: Pattern::new(&op[tilde + 1..]),
    })
}

/// A `#` hash: exactly 64 lowercase hex digits.
fn parse_hash(hex: &[u8]) -> Result<PasswordHash, RuleError> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if hex.len() != 64 {
        return Err(RuleError::BadHash);
    }
    let mut hash = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let (hi, lo) = (digit(pair[0]), digit(pair[1]));
        hash[i] = (hi.ok_or(RuleError::BadHash)? << 4) | lo.ok_or(RuleError::BadHash)?;
    }
    Ok(hash)
}

impl CommandRule {
    /// `@all`, `@category`, `command` or `command|sub` (lowercase, after
    /// the sign).
    fn parse(allow: bool, name: &[u8]) -> Result<CommandRule, RuleError> {
        let text = std::str::from_utf8(name).map_err(|_| RuleError::UnknownCommand)?;
        if let Some(category) = text.strip_prefix('@') {
            if category == "all" {
                return Ok(CommandRule::All(allow));
            }
            let cat =
                AclCategories::from_name(category.as_bytes()).ok_or(RuleError::UnknownCommand)?;
            return Ok(CommandRule::Category(allow, cat, category.into()));
        }
        if text.is_empty() {
            return Err(RuleError::UnknownCommand);
        }
        Ok(CommandRule::Command(allow, text.into()))
    }

    /// Checks that the command the rule names exists in `table`.
    pub fn check(&self, table: &CommandTable) -> Result<(), RuleError> {
        let CommandRule::Command(_, name) = self else {
            return Ok(());
        };
        match name.split_once('|') {
            None => table
                .get_by_name(name)
                .map(|_| ())
                .ok_or(RuleError::UnknownCommand),
            Some((container, _)) => {
                let top = table
                    .get_by_name(container)
                    .ok_or(RuleError::UnknownCommand)?;
                if !top.is_container() {
                    return Err(RuleError::FirstArg);
                }
                table
                    .get_by_name(name)
                    .map(|_| ())
                    .ok_or(RuleError::UnknownCommand)
            }
        }
    }

    /// Whether the rule is about `spec` (a command's rule covers its
    /// subcommands).
    pub fn names(&self, spec: &CommandSpec) -> bool {
        match self {
            CommandRule::All(_) => true,
            CommandRule::Category(_, cat, _) => spec.acl_categories().contains(*cat),
            CommandRule::Command(_, name) => {
                let full = spec.name();
                full == &**name
                    || (full.len() > name.len()
                        && full.starts_with(&**name)
                        && full.as_bytes()[name.len()] == b'|')
            }
        }
    }

    /// `+` (true) or `-`.
    pub fn allows(&self) -> bool {
        match self {
            CommandRule::All(allow)
            | CommandRule::Category(allow, ..)
            | CommandRule::Command(allow, _) => *allow,
        }
    }
}

impl fmt::Display for CommandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.allows() { '+' } else { '-' };
        match self {
            CommandRule::All(_) => write!(f, "{sign}@all"),
            CommandRule::Category(_, _, name) => write!(f, "{sign}@{name}"),
            CommandRule::Command(_, name) => write!(f, "{sign}{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_passwords_and_patterns() {
        assert_eq!(Rule::parse(b"ON"), Ok(Rule::On));
        assert_eq!(Rule::parse(b"allkeys"), Ok(Rule::AllKeys));
        assert_eq!(Rule::parse(b"~*"), Ok(Rule::AllKeys));
        assert_eq!(Rule::parse(b"&*"), Ok(Rule::AllChannels));
        assert_eq!(
            Rule::parse(b">pw"),
            Ok(Rule::AddPassword(super::super::sha256(b"pw")))
        );
        let hash = super::super::hex(&super::super::sha256(b"pw"));
        assert_eq!(
            Rule::parse(format!("#{hash}").as_bytes()),
            Ok(Rule::AddPassword(super::super::sha256(b"pw")))
        );
        assert_eq!(Rule::parse(b"#abc"), Err(RuleError::BadHash));
        assert_eq!(
            Rule::parse(format!("#{}", hash.to_uppercase()).as_bytes()),
            Err(RuleError::BadHash)
        );
        assert_eq!(
            Rule::parse(b"%R~cache:*"),
            Ok(Rule::Keys(KeyPattern {
                read: true,
                write: false,
                pattern: Pattern::new(b"cache:*")
            }))
        );
        assert_eq!(Rule::parse(b"%X~a"), Err(RuleError::Syntax));
        assert_eq!(Rule::parse(b"%~a"), Err(RuleError::Syntax));
        assert_eq!(Rule::parse(b"bogus"), Err(RuleError::Syntax));
        assert_eq!(Rule::parse(b"(+get ~x)"), Err(RuleError::Selectors));
    }

    #[test]
    fn command_rules() {
        let table = CommandTable::builtin();
        assert_eq!(
            Rule::parse(b"+@ALL"),
            Ok(Rule::Command(CommandRule::All(true)))
        );
        assert_eq!(
            Rule::parse(b"nocommands"),
            Ok(Rule::Command(CommandRule::All(false)))
        );
        assert_eq!(Rule::parse(b"+@nosuch"), Err(RuleError::UnknownCommand));
        let Ok(Rule::Command(rule)) = Rule::parse(b"+CONFIG|get") else {
            panic!()
        };
        assert_eq!(rule.to_string(), "+config|get");
        assert_eq!(rule.check(&table), Ok(()));
        let Ok(Rule::Command(rule)) = Rule::parse(b"-nosuchcommand") else {
            panic!()
        };
        assert_eq!(rule.check(&table), Err(RuleError::UnknownCommand));
        let Ok(Rule::Command(rule)) = Rule::parse(b"+select|0") else {
            panic!()
        };
        assert_eq!(rule.check(&table), Err(RuleError::FirstArg));
        let Ok(Rule::Command(config)) = Rule::parse(b"+config") else {
            panic!()
        };
        assert!(config.names(table.get_by_name("config|set").unwrap()));
        assert!(!config.names(table.get_by_name("get").unwrap()));
    }
}
