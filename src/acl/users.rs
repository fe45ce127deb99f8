//! Every user keyway knows, built from the configuration (`auth.password`,
//! `auth.users`, `auth.acl_file`) and changed whole by `ACL SETUSER`,
//! `ACL DELUSER` and `ACL LOAD`: each change makes a new [`Users`], so a
//! request always sees one consistent set.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::command::CommandTable;

use super::rules::RuleError;
use super::user::User;

/// The name of the user every client starts as.
pub const DEFAULT_USER: &str = "default";

/// One user line and where it came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLine {
    /// Where the line is: `auth.users[2]`, `/etc/keyway/users.acl:3`.
    pub origin: String,
    /// The line, without the leading `user` of the ACL file format.
    pub text: String,
}

/// A user line keyway cannot take, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// Where the line is.
    pub origin: String,
    /// The line as written.
    pub line: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.origin, self.line, self.reason)
    }
}

/// Every user, by name (sorted, as `ACL USERS` lists them).
#[derive(Clone, Debug)]
pub struct Users {
    by_name: BTreeMap<Arc<str>, Arc<User>>,
}

impl Users {
    /// The users of a configuration: `default` (`on nopass ~* &* +@all`;
    /// with `password` instead of `nopass`; `off` when there are user
    /// lines but no password, so that defining users closes the door to
    /// anonymous clients), then each line, which defines a user (a
    /// `default` line replaces the default user whole).
    pub fn build(
        password: Option<&str>,
        lines: &[UserLine],
        table: &CommandTable,
    ) -> Result<Users, LineError> {
        let mut default = User::new(DEFAULT_USER);
        let (state, pass) = match password {
            Some(p) => ("on", format!(">{p}")),
            None if lines.is_empty() => ("on", "nopass".to_string()),
            None => ("off", "resetpass".to_string()),
        };
        for rule in [state, &pass, "~*", "&*", "+@all"] {
            default
                .apply(rule.as_bytes(), table)
                .expect("the default user's rules are valid");
        }
        Users::from_lines(&Arc::new(default), lines, table)
    }

    /// `default` as given, then each line, which defines a user (a
    /// `default` line replaces the default user whole).
    pub fn from_lines(
        default: &Arc<User>,
        lines: &[UserLine],
        table: &CommandTable,
    ) -> Result<Users, LineError> {
        let mut users = Users {
            by_name: BTreeMap::new(),
        };
        users
            .by_name
            .insert(default.name().clone(), default.clone());
        let mut defined: Vec<&str> = Vec::new();
        for line in lines {
            let error = |reason: String| LineError {
                origin: line.origin.clone(),
                line: line.text.clone(),
                reason,
            };
            let mut words = line.text.split_whitespace();
            let name = words.next().ok_or_else(|| error("no user name".into()))?;
            if defined.contains(&name) {
                return Err(error(format!(
                    "user '{name}' is defined twice; define each user once"
                )));
            }
            defined.push(name);
            let mut user = User::new(name);
            for word in words {
                user.apply(word.as_bytes(), table)
                    .map_err(|e| error(format!("rule '{word}': {e}")))?;
            }
            users.by_name.insert(user.name().clone(), Arc::new(user));
        }
        Ok(users)
    }

    /// The lines of a file in Redis's `users.acl` format: `user NAME
    /// rules...`, one per line; blank lines and `#` comments skipped.
    pub fn file_lines(path: &str, text: &str) -> Result<Vec<UserLine>, LineError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let origin = format!("{path}:{}", i + 1);
            match trimmed.split_once(char::is_whitespace) {
                Some(("user", rest)) => lines.push(UserLine {
                    origin,
                    text: rest.trim().to_string(),
                }),
                _ => {
                    return Err(LineError {
                        origin,
                        line: trimmed.to_string(),
                        reason: "line should start with the 'user' keyword".into(),
                    })
                }
            }
        }
        Ok(lines)
    }

    /// The user named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Arc<User>> {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.by_name.get(n))
    }

    /// The user a client starts as.
    pub fn default_user(&self) -> &Arc<User> {
        &self.by_name[DEFAULT_USER]
    }

    /// Whether clients need no `AUTH`: the default user is on with
    /// `nopass`.
    pub fn open(&self) -> bool {
        let default = self.default_user();
        default.enabled() && default.nopass()
    }

    /// The user `name` if it is on and `password` is one of its own.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<&Arc<User>> {
        self.get(name)
            .filter(|u| u.enabled() && u.password_ok(password))
    }

    /// Every user, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<User>> {
        self.by_name.values()
    }

    /// A copy with `name` created or changed by `rules` (all or nothing,
    /// as `ACL SETUSER`): `Err` names the first rule refused.
    pub fn with_user(
        &self,
        name: &str,
        rules: &[&[u8]],
        table: &CommandTable,
    ) -> Result<Users, (String, RuleError)> {
        let mut user = match self.by_name.get(name) {
            Some(u) => User::clone(u),
            None => User::new(name),
        };
        for rule in rules {
            user.apply(rule, table)
                .map_err(|e| (String::from_utf8_lossy(rule).into_owned(), e))?;
        }
        let mut next = self.clone();
        next.by_name.insert(user.name().clone(), Arc::new(user));
        Ok(next)
    }

    /// A copy without the users named (never `default`), and how many
    /// there were.
    pub fn without(&self, names: &[&str]) -> (Users, usize) {
        let mut next = self.clone();
        let removed = names
            .iter()
            .filter(|n| **n != DEFAULT_USER && next.by_name.remove(**n).is_some())
            .count();
        (next, removed)
    }

    /// The names of the users that `next` no longer has.
    pub fn missing_in(&self, next: &Users) -> Vec<String> {
        self.by_name
            .keys()
            .filter(|name| !next.by_name.contains_key(*name))
            .map(|name| name.to_string())
            .collect()
    }

    /// The users in Redis's `users.acl` format (what `ACL SAVE` writes).
    pub fn to_file(&self) -> String {
        self.iter().map(|u| u.describe() + "\n").collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> UserLine {
        UserLine {
            origin: "auth.users[0]".into(),
            text: text.into(),
        }
    }

    #[test]
    fn default_user_with_and_without_password() {
        let table = CommandTable::builtin();
        let open = Users::build(None, &[], &table).unwrap();
        assert!(open.open());
        assert!(open.default_user().unrestricted());
        let closed = Users::build(Some("pw"), &[], &table).unwrap();
        assert!(!closed.open());
        assert!(closed.authenticate(b"default", b"pw").is_some());
        assert!(closed.authenticate(b"default", b"nope").is_none());
        assert!(closed.authenticate(b"nobody", b"pw").is_none());
        assert_eq!(
            closed.default_user().describe(),
            format!(
                "user default on #{} ~* &* +@all",
                super::super::hex(&super::super::sha256(b"pw"))
            )
        );
    }

    #[test]
    fn lines_define_users_and_bad_lines_name_the_rule() {
        let table = CommandTable::builtin();
        let closed = Users::build(None, &[line("alice on >pw")], &table).unwrap();
        assert!(
            !closed.open(),
            "users without a password: the default user is off"
        );
        assert!(closed.authenticate(b"default", b"").is_none());
        let users = Users::build(
            None,
            &[line(
                "alice on >pw ~app:* %R~cache:* &chan:* +@read +@write -flushall",
            )],
            &table,
        )
        .unwrap();
        let alice = users.authenticate(b"alice", b"pw").unwrap();
        assert_eq!(
            alice.describe(),
            format!(
                "user alice on #{} ~app:* %R~cache:* resetchannels &chan:* -@all +@read +@write -flushall",
                super::super::hex(&super::super::sha256(b"pw"))
            )
        );
        let err = Users::build(None, &[line("bob on +@nosuch")], &table).unwrap_err();
        assert_eq!(
            err.to_string(),
            "auth.users[0]: `bob on +@nosuch`: rule '+@nosuch': Unknown command or category name in ACL"
        );
        let twice = Users::build(None, &[line("bob on"), line("bob off")], &table);
        assert!(twice.unwrap_err().reason.contains("defined twice"));
    }

    #[test]
    fn acl_file_format() {
        let text = "# keyway users\n\nuser alice on nopass ~* +@all\n";
        let lines = Users::file_lines("users.acl", text).unwrap();
        assert_eq!(
            lines,
            vec![UserLine {
                origin: "users.acl:3".into(),
                text: "alice on nopass ~* +@all".into()
            }]
        );
        let err = Users::file_lines("users.acl", "alice on\n").unwrap_err();
        assert_eq!(err.origin, "users.acl:1");
    }

    #[test]
    fn setuser_is_all_or_nothing_and_deluser_keeps_default() {
        let table = CommandTable::builtin();
        let users = Users::build(None, &[], &table).unwrap();
        let (rule, e) = users
            .with_user("bob", &[b"on", b"+@nosuch"], &table)
            .unwrap_err();
        assert_eq!((rule.as_str(), e), ("+@nosuch", RuleError::UnknownCommand));
        let users = users.with_user("bob", &[b"on", b">pw"], &table).unwrap();
        assert!(users.authenticate(b"bob", b"pw").is_some());
        let (users, removed) = users.without(&["bob", "default", "nobody"]);
        assert_eq!(removed, 1);
        assert!(users.get(b"default").is_some() && users.get(b"bob").is_none());
    }
}
