//! Parser of the generated table text (`commands.txt`, written by
//! `generate.py`; its header documents the format).
//!
//! The parser is strict: the embedded file is checked in, so anything it
//! does not understand (an unknown flag after regenerating with a newer
//! Redis, a typo) is a bug that the unit test must catch.

use super::flags::{AclCategories, CommandFlags, KeySpecFlags, Tips};
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};

/// The table generated from Redis 7.0.15, embedded at compile time.
pub(crate) const BUILTIN: &str = include_str!("commands.txt");

/// Subcommands keyway answers itself that Redis 7.0 lacks, in the same
/// format, read after [`BUILTIN`]: client libraries send `CLIENT SETINFO`
/// (Redis 7.2) on connect, and through keyway it works whatever the
/// cluster's version. Flags and ACL categories are Redis 7.2's (its
/// `connection`, and the implied `slow`).
pub(crate) const KEYWAY_ONLY: &str =
    "client|setinfo -4 0 0 0 loading,noscript,stale connection,slow -\n";

/// A line of the table text that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("command table line {line}: {reason}")]
pub struct DataError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses the whole text into top-level commands (sorted by name) with
/// their subcommands attached.
pub(crate) fn parse(text: &str) -> Result<Vec<CommandSpec>, DataError> {
    let mut top = Vec::new();
    let mut subs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason| DataError {
            line: i + 1,
            reason,
        };
        let spec = parse_line(line).map_err(at)?;
        if spec.name.contains('|') {
            subs.push((i + 1, spec));
        } else {
            top.push(spec);
        }
    }
    top.sort_by(|a, b| a.name.cmp(&b.name));
    if top.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(DataError {
            line: 0,
            reason: "duplicate command",
        });
    }
    for (line, sub) in subs {
        let parent = sub.name.split('|').next().unwrap_or_default();
        let pos = top
            .binary_search_by(|c| (*c.name).cmp(parent))
            .map_err(|_| DataError {
                line,
                reason: "subcommand of an unknown command",
            })?;
        top[pos].subcommands.push(sub);
    }
    for cmd in &mut top {
        cmd.subcommands.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(top)
}

/// `name arity first last step flags acl_categories tips key_spec...`
fn parse_line(line: &str) -> Result<CommandSpec, &'static str> {
    let mut fields = line.split_ascii_whitespace();
    let mut next = |what| fields.next().ok_or(what);
    let name = next("missing name")?;
    let arity = int(next("missing arity")?)?;
    let first = int(next("missing first key")?)?;
    let last = int(next("missing last key")?)?;
    let step = int(next("missing key step")?)?;
    let flags = list(next("missing flags")?, CommandFlags::empty(), |f| {
        CommandFlags::from_name(f.as_bytes()).ok_or("unknown command flag")
    })?;
    let categories = list(
        next("missing ACL categories")?,
        AclCategories::empty(),
        |c| AclCategories::from_name(c.as_bytes()).ok_or("unknown ACL category"),
    )?;
    let mut tips = Tips::default();
    for tip in items(next("missing tips")?) {
        tips.add(tip.as_bytes());
    }
    let key_specs = fields.map(key_spec).collect::<Result<Vec<_>, _>>()?;
    if name.len() > super::MAX_NAME_LEN || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("name too long or not lowercase");
    }
    if !key_specs.iter().all(KeySpec::is_well_formed) {
        return Err("malformed key spec");
    }
    Ok(CommandSpec::new(
        name.into(),
        arity,
        flags,
        categories,
        (first, last, step),
        tips,
        key_specs,
    ))
}

/// `flags;begin_search;find_keys`
fn key_spec(text: &str) -> Result<KeySpec, &'static str> {
    let mut parts = text.split(';');
    let (Some(flags), Some(begin), Some(find), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("key spec is not flags;begin_search;find_keys");
    };
    let flags = list(flags, KeySpecFlags::empty(), |f| {
        KeySpecFlags::from_name(f.as_bytes()).ok_or("unknown key spec flag")
    })?;
    let begin = match begin.split_once('=') {
        None if begin == "unknown" => BeginSearch::Unknown,
        Some(("index", n)) => BeginSearch::Index(int(n)?),
        Some(("keyword", rest)) => {
            let (keyword, startfrom) = rest.split_once(',').ok_or("keyword needs a startfrom")?;
            BeginSearch::Keyword {
                keyword: keyword.as_bytes().into(),
                startfrom: int(startfrom)?,
            }
        }
        _ => return Err("unknown begin_search"),
    };
    let find = match find.split_once('=') {
        None if find == "unknown" => FindKeys::Unknown,
        Some(("range", rest)) => {
            let [lastkey, step, limit] = three(rest)?;
            FindKeys::Range {
                lastkey,
                step,
                limit,
            }
        }
        Some(("keynum", rest)) => {
            let [keynumidx, firstkey, step] = three(rest)?;
            FindKeys::KeyNum {
                keynumidx,
                firstkey,
                step,
            }
        }
        _ => return Err("unknown find_keys"),
    };
    Ok(KeySpec { flags, begin, find })
}

fn int(s: &str) -> Result<i32, &'static str> {
    s.parse().map_err(|_| "not an integer")
}

fn three(s: &str) -> Result<[i32; 3], &'static str> {
    let mut it = s.split(',').map(int);
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c), None) => Ok([a?, b?, c?]),
        _ => Err("expected three comma-separated integers"),
    }
}

/// Items of a comma list where `-` means empty.
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|item| !item.is_empty() && *item != "-")
}

fn list<T: std::ops::BitOr<Output = T>>(
    s: &str,
    empty: T,
    mut one: impl FnMut(&str) -> Result<T, &'static str>,
) -> Result<T, &'static str> {
    items(s).try_fold(empty, |acc, item| Ok(acc | one(item)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses() {
        let cmds = parse(BUILTIN).unwrap();
        // COMMAND COUNT of Redis 7.0.15.
        assert_eq!(cmds.len(), 240);
        let subs: usize = cmds.iter().map(|c| c.subcommands.len()).sum();
        assert_eq!(subs, 126);
    }

    #[test]
    fn line_format() {
        let text = "# comment\n\
            georadius -6 1 1 1 denyoom,movablekeys,write geo,slow,write - \
            RO,access;index=1;range=0,1,0 OW,update;keyword=STORE,6;range=0,1,0\n\
            object -2 0 0 0 - slow -\n\
            object|encoding 3 2 2 1 readonly keyspace,read,slow nondeterministic_output \
            RO;index=2;range=0,1,0\n";
        let cmds = parse(text).unwrap();
        assert_eq!(cmds.len(), 2);
        let geo = &cmds[0];
        assert_eq!(geo.arity(), -6);
        assert!(geo.flags().is_write() && geo.flags().is_movablekeys());
        assert_eq!(
            geo.acl_categories(),
            AclCategories::WRITE | AclCategories::GEO | AclCategories::SLOW
        );
        assert_eq!(
            geo.key_specs()[1].begin,
            BeginSearch::Keyword {
                keyword: b"STORE".as_slice().into(),
                startfrom: 6
            }
        );
        let enc = &cmds[1].subcommands[0];
        assert_eq!(enc.name(), "object|encoding");
        assert_eq!(
            enc.acl_categories().names().collect::<Vec<_>>(),
            ["keyspace", "read", "slow"]
        );
        assert_eq!(enc.key_specs().len(), 1);
    }

    #[test]
    fn builtin_categories() {
        let cmds = parse(BUILTIN).unwrap();
        let specs = cmds
            .iter()
            .flat_map(|c| std::iter::once(c).chain(&c.subcommands));
        for spec in specs {
            // Redis gives every command `fast` or `slow`, never both.
            let cats = spec.acl_categories();
            let speed = AclCategories::FAST | AclCategories::SLOW;
            assert!(
                cats.intersects(speed) && !cats.contains(speed),
                "{}",
                spec.name()
            );
            // Redis's implied categories (`setImplicitACLCategories`) are
            // in COMMAND's reply already.
            let f = spec.flags();
            let implied = [
                (f.is_write(), AclCategories::WRITE),
                (
                    f.is_readonly() && !cats.contains(AclCategories::SCRIPTING),
                    AclCategories::READ,
                ),
                (
                    f.is_admin(),
                    AclCategories::ADMIN | AclCategories::DANGEROUS,
                ),
                (f.is_pubsub(), AclCategories::PUBSUB),
                (f.is_fast(), AclCategories::FAST),
                (f.is_blocking(), AclCategories::BLOCKING),
                (!f.is_fast(), AclCategories::SLOW),
            ];
            for (flagged, implies) in implied {
                assert!(!flagged || cats.contains(implies), "{}", spec.name());
            }
        }
    }

    #[test]
    fn errors_name_the_line() {
        let bad = [
            ("get 2 1 1 1 readonly,bogus - -\n", "unknown command flag"),
            (
                "get 2 1 1 1 readonly read,@fast -\n",
                "unknown ACL category",
            ),
            ("get 2 1 1 1 readonly\n", "missing ACL categories"),
            ("get 2 1 1 1 readonly read\n", "missing tips"),
            ("get x 1 1 1 - - -\n", "not an integer"),
            ("get 2 1 1\n", "missing key step"),
            (
                "get 2 1 1 1 - - - RO;index=1\n",
                "key spec is not flags;begin_search;find_keys",
            ),
            (
                "get 2 1 1 1 - - - RO;index=1;range=0,0,0\n",
                "malformed key spec",
            ),
            (
                "get 2 1 1 1 - - - RO;nowhere=1;range=0,1,0\n",
                "unknown begin_search",
            ),
            ("x|y 2 0 0 0 - - -\n", "subcommand of an unknown command"),
            ("GET 2 1 1 1 - - -\n", "name too long or not lowercase"),
        ];
        for (text, reason) in bad {
            let err = parse(&format!("# header\n{text}")).unwrap_err();
            assert_eq!(err.reason, reason, "{text}");
            assert_eq!(err.line, 2, "{text}");
        }
    }
}
