//! Extending the table from a backend's decoded `COMMAND` reply, so
//! commands of newer Redis versions and of modules route too.
//!
//! A `COMMAND` entry is an array: name, arity, flags, first key, last key,
//! step, ACL categories (6.0+), tips (7.0+), key specs (7.0+), subcommands
//! (7.0+). Key specs and their parts are maps in RESP3 and flat key/value
//! arrays in RESP2; `Value::map_get` reads both. Anything malformed is
//! skipped, never trusted and never a panic: the reply comes from the
//! network.

use super::flags::{AclCategories, CommandFlags, KeySpecFlags, Tips};
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use super::{CommandTable, MAX_NAME_LEN};
use crate::protocol::Value;

impl CommandTable {
    /// Adds the commands and subcommands that the backend knows and the
    /// table does not, from a decoded `COMMAND` reply (RESP2 or RESP3).
    /// Returns how many were added (commands plus subcommands). Known
    /// commands are kept as they are: the embedded table is the reviewed
    /// one. Malformed entries are skipped.
    pub fn extend_from_command_reply(&mut self, reply: &Value) -> usize {
        let Some(entries) = reply.as_array() else {
            return 0;
        };
        let mut added = 0;
        for entry in entries {
            let Some(mut cmd) = parse_entry(entry, None) else {
                continue;
            };
            match self.find(cmd.name.as_bytes()) {
                None => {
                    added += 1 + cmd.subcommands.len();
                    self.insert(cmd);
                }
                Some((top, 0)) => {
                    for sub in std::mem::take(&mut cmd.subcommands) {
                        if self.find(sub.name.as_bytes()).is_none() {
                            self.insert_sub(top, sub);
                            added += 1;
                        }
                    }
                }
                // A top-level name that is a subcommand name: impossible
                // with `|` excluded from top-level names; ignore.
                Some(_) => {}
            }
        }
        added
    }
}

/// One `COMMAND` entry; `parent` is the container's name for subcommands.
fn parse_entry(entry: &Value, parent: Option<&str>) -> Option<CommandSpec> {
    let fields = entry.as_array()?;
    let raw_name = std::str::from_utf8(fields.first()?.as_bytes()?).ok()?;
    let name = raw_name.to_ascii_lowercase();
    // Subcommands are named `container|sub` (7.0); accept a bare `sub`.
    let name = match (parent, name.split_once('|')) {
        (None, None) => name,
        (Some(p), Some((family, sub))) if family == p && !sub.is_empty() => name,
        (Some(p), None) => format!("{p}|{name}"),
        _ => return None,
    };
    let valid = |b: u8| b.is_ascii_graphic() && !b.is_ascii_uppercase();
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(valid) {
        return None;
    }
    let int = |i: usize| -> Option<i32> { i32::try_from(fields.get(i)?.as_int()?).ok() };
    let arity = int(1)?;
    let mut flags = CommandFlags::empty();
    for f in fields.get(2)?.as_array()? {
        // Flags of a newer Redis keyway does not know cannot matter to it.
        flags |= f
            .as_bytes()
            .and_then(CommandFlags::from_name)
            .unwrap_or_default();
    }
    let legacy = (int(3)?, int(4)?, int(5)?);
    let mut categories = AclCategories::empty();
    for cat in fields.get(6).and_then(Value::as_array).unwrap_or_default() {
        // `@read`. A category of a newer Redis is dropped: no ACL rule
        // keyway accepts can name it.
        let name = cat.as_bytes().unwrap_or_default();
        categories |=
            AclCategories::from_name(name.strip_prefix(b"@").unwrap_or(name)).unwrap_or_default();
    }
    let mut tips = Tips::default();
    for tip in fields.get(7).and_then(Value::as_array).unwrap_or_default() {
        tips.add(tip.as_bytes().unwrap_or_default());
    }
    let mut key_specs = Vec::new();
    match fields.get(8) {
        Some(specs) => {
            for spec in specs.as_array()? {
                key_specs.push(parse_key_spec(spec)?);
            }
        }
        // Before 7.0 there are no key specs: derive one from the legacy
        // triple, as Redis does for its own legacy commands.
        None => key_specs.extend(KeySpec::from_legacy(legacy.0, legacy.1, legacy.2)),
    }
    if !key_specs.iter().all(KeySpec::is_well_formed) {
        return None;
    }
    let mut cmd = CommandSpec::new(
        name.into(),
        arity,
        flags,
        categories,
        legacy,
        tips,
        key_specs,
    );
    if parent.is_none() {
        let subs = fields.get(9).and_then(Value::as_array).unwrap_or_default();
        cmd.subcommands = subs
            .iter()
            .filter_map(|s| parse_entry(s, Some(&cmd.name)))
            .collect();
        cmd.subcommands.sort_by(|a, b| a.name.cmp(&b.name));
        cmd.subcommands.dedup_by(|a, b| a.name == b.name);
    }
    Some(cmd)
}

/// One key spec: `flags`, `begin_search {type, spec}`, `find_keys {type, spec}`.
fn parse_key_spec(spec: &Value) -> Option<KeySpec> {
    let mut flags = KeySpecFlags::empty();
    if let Some(list) = spec.map_get("flags").and_then(Value::as_array) {
        for f in list {
            flags |= f
                .as_bytes()
                .and_then(KeySpecFlags::from_name)
                .unwrap_or_default();
        }
    }
    let num = |v: &Value, key| -> Option<i32> { i32::try_from(v.map_get(key)?.as_int()?).ok() };

    let bs = spec.map_get("begin_search")?;
    let begin = match bs.map_get("type")?.as_bytes()? {
        b"index" => BeginSearch::Index(num(bs.map_get("spec")?, "index")?),
        b"keyword" => {
            let s = bs.map_get("spec")?;
            BeginSearch::Keyword {
                keyword: s.map_get("keyword")?.as_bytes()?.into(),
                startfrom: num(s, "startfrom")?,
            }
        }
        _ => BeginSearch::Unknown,
    };
    let fk = spec.map_get("find_keys")?;
    let find = match fk.map_get("type")?.as_bytes()? {
        b"range" => {
            let s = fk.map_get("spec")?;
            FindKeys::Range {
                lastkey: num(s, "lastkey")?,
                step: num(s, "keystep")?,
                limit: num(s, "limit")?,
            }
        }
        b"keynum" => {
            let s = fk.map_get("spec")?;
            FindKeys::KeyNum {
                keynumidx: num(s, "keynumidx")?,
                firstkey: num(s, "firstkey")?,
                step: num(s, "keystep")?,
            }
        }
        _ => FindKeys::Unknown,
    };
    Some(KeySpec { flags, begin, find })
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
