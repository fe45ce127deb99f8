//! `ACL ...` answered by keyway about its own users, in redis-server 7.0's
//! shapes (both protocols). The subcommands that change users (`SETUSER`,
//! `DELUSER`, `LOAD`) swap the whole set of users; the clients of a
//! deleted user are disconnected, as redis-server does. Who may run which
//! subcommand is the ACL rules' business (`@admin`), checked before.

use std::io::Read;

use bytes::BytesMut;

use crate::acl::{User, Users, DEFAULT_USER};
use crate::command::{AclCategories, CommandSpec, CommandTable};
use crate::protocol::{encode, parse_i64, Protocol, Request};
use crate::worker::Shared;

use super::client::ClientInfo;

/// Entries `ACL LOG` shows without a count.
const LOG_DEFAULT_COUNT: usize = 10;

/// Answers `ACL <subcommand>` (`spec` its entry) into `out`; false when
/// a node should answer it instead (`ACL HELP`, an unknown subcommand).
pub fn execute(
    spec: &CommandSpec,
    request: &Request,
    client: &ClientInfo,
    shared: &Shared,
    table: &CommandTable,
    out: &mut BytesMut,
) -> bool {
    let proto = client.proto;
    let users = shared.acl.users();
    match spec.name() {
        "acl|whoami" => {
            let name = client.user.as_ref().map_or(DEFAULT_USER, |u| &**u.name());
            encode::bulk(out, name.as_bytes());
        }
        "acl|users" => {
            encode::array_header(out, users.iter().count());
            for user in users.iter() {
                encode::bulk(out, user.name().as_bytes());
            }
        }
        "acl|list" => {
            encode::array_header(out, users.iter().count());
            for user in users.iter() {
                encode::bulk(out, user.describe().as_bytes());
            }
        }
        "acl|getuser" => match users.get(request.arg(2)) {
            Some(user) => getuser(user, proto, out),
            None => encode::null(out, proto),
        },
        "acl|cat" => cat(request, table, out),
        "acl|dryrun" => dryrun(request, &users, table, out),
        "acl|log" => log(request, shared, proto, out),
        "acl|setuser" => setuser(request, shared, table, out),
        "acl|deluser" => deluser(request, shared, out),
        "acl|save" => save(shared, &users, out),
        "acl|load" => load(shared, table, out),
        "acl|genpass" => genpass(request, out),
        _ => return false,
    }
    true
}

/// `ACL GETUSER`'s map: flags, passwords, commands, keys, channels,
/// selectors (keyway has none).
fn getuser(user: &User, proto: Protocol, out: &mut BytesMut) {
    encode::map_header(out, proto, 6);
    encode::bulk(out, b"flags");
    let flags = user.flags();
    encode::set_header(out, proto, flags.len());
    for flag in flags {
        encode::bulk(out, flag.as_bytes());
    }
    encode::bulk(out, b"passwords");
    let hashes: Vec<String> = user.password_hashes().collect();
    encode::array_header(out, hashes.len());
    for hash in hashes {
        encode::bulk(out, hash.as_bytes());
    }
    for (field, value) in [
        ("commands", user.describe_commands()),
        ("keys", user.describe_keys()),
        ("channels", user.channel_patterns()),
    ] {
        encode::bulk(out, field.as_bytes());
        encode::bulk(out, value.as_bytes());
    }
    encode::bulk(out, b"selectors");
    encode::array_header(out, 0);
}

/// `ACL CAT`: every category, or the commands of one.
fn cat(request: &Request, table: &CommandTable, out: &mut BytesMut) {
    let Some(name) = request.get(2) else {
        let names: Vec<&str> = AclCategories::all().names().collect();
        encode::array_header(out, names.len());
        for name in names {
            encode::bulk(out, name.as_bytes());
        }
        return;
    };
    let Some(category) = AclCategories::from_name(name) else {
        let text = format!("ERR Unknown category '{}'", String::from_utf8_lossy(name));
        return encode::error(out, text.as_bytes());
    };
    let names: Vec<&str> = table.in_category(category).map(CommandSpec::name).collect();
    encode::array_header(out, names.len());
    for name in names {
        encode::bulk(out, name.as_bytes());
    }
}

/// `ACL DRYRUN user command [arg ...]`: `+OK`, or why the user may not.
fn dryrun(request: &Request, users: &Users, table: &CommandTable, out: &mut BytesMut) {
    let Some(user) = users.get(request.arg(2)) else {
        let text = format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(request.arg(2))
        );
        return encode::error(out, text.as_bytes());
    };
    let args: Vec<&[u8]> = request.args().skip(3).collect();
    let Some(spec) = table.lookup(args.as_slice()) else {
        let text = format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(args[0])
        );
        return encode::error(out, text.as_bytes());
    };
    if !spec.arity_ok(args.len()) {
        let text = format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name()
        );
        return encode::error(out, text.as_bytes());
    }
    match user.check(spec, args.as_slice()) {
        Ok(()) => encode::simple(out, b"OK"),
        Err(denial) => encode::bulk(out, denial.explain(spec, args.as_slice()).as_bytes()),
    }
}

/// `ACL LOG [count | RESET]`.
fn log(request: &Request, shared: &Shared, proto: Protocol, out: &mut BytesMut) {
    let count = match request.get(2) {
        None => LOG_DEFAULT_COUNT,
        Some(arg) if arg.eq_ignore_ascii_case(b"RESET") => {
            shared.acl.log().reset();
            return encode::simple(out, b"OK");
        }
        Some(arg) => match parse_i64(arg).filter(|&n| n >= 0) {
            Some(n) => n as usize,
            None => return encode::error(out, b"ERR value is out of range, must be positive"),
        },
    };
    let log = shared.acl.log();
    let entries: Vec<_> = log.newest(count).collect();
    encode::array_header(out, entries.len());
    for entry in entries {
        encode::map_header(out, proto, 7);
        encode::bulk(out, b"count");
        encode::integer(out, entry.count as i64);
        for (field, value) in [
            ("reason", entry.reason.name()),
            ("context", entry.context),
            ("object", &entry.object),
            ("username", &entry.username),
        ] {
            encode::bulk(out, field.as_bytes());
            encode::bulk(out, value.as_bytes());
        }
        encode::bulk(out, b"age-seconds");
        encode::double(out, proto, entry.at.elapsed().as_secs_f64());
        encode::bulk(out, b"client-info");
        encode::bulk(out, entry.client_info.as_bytes());
    }
}

/// `ACL SETUSER name [rule ...]`: all rules or none.
fn setuser(request: &Request, shared: &Shared, table: &CommandTable, out: &mut BytesMut) {
    let Ok(name) = std::str::from_utf8(request.arg(2)) else {
        return encode::error(out, b"ERR Usernames must be valid UTF-8");
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return encode::error(
            out,
            b"ERR Usernames can't contain spaces or null characters",
        );
    }
    let rules: Vec<&[u8]> = request.args().skip(3).collect();
    match shared
        .acl
        .change(|users| users.with_user(name, &rules, table).map(|next| (next, ())))
    {
        Ok(()) => encode::simple(out, b"OK"),
        Err((rule, e)) => {
            let text = format!("ERR Error in ACL SETUSER modifier '{rule}': {e}");
            encode::error(out, text.as_bytes());
        }
    }
}

/// `ACL DELUSER name [name ...]`: how many were deleted; their clients are
/// disconnected.
fn deluser(request: &Request, shared: &Shared, out: &mut BytesMut) {
    let names: Vec<&str> = request
        .args()
        .skip(2)
        .filter_map(|n| std::str::from_utf8(n).ok())
        .collect();
    if names.contains(&DEFAULT_USER) {
        return encode::error(out, b"ERR The 'default' user cannot be removed");
    }
    let deleted = shared
        .acl
        .change(|users| Ok::<_, ()>(users.without(&names)));
    shared.registry.kill_users(&names);
    encode::integer(out, deleted.unwrap_or(0) as i64);
}

/// `ACL SAVE`: the users to `auth.acl_file`.
fn save(shared: &Shared, users: &Users, out: &mut BytesMut) {
    let live = shared.live.load();
    let Some(path) = &live.client_auth.acl_file else {
        return encode::error(out, NO_ACL_FILE);
    };
    // Written beside, then renamed: a crash never leaves half a file.
    let temp = path.with_extension("acl.tmp");
    let written =
        std::fs::write(&temp, users.to_file()).and_then(|()| std::fs::rename(&temp, path));
    match written {
        Ok(()) => encode::simple(out, b"OK"),
        Err(e) => {
            let text = format!(
                "ERR There was an error trying to save the ACLs to {}: {e}",
                path.display()
            );
            encode::error(out, text.as_bytes());
        }
    }
}

/// `ACL LOAD`: the users of `auth.acl_file`, replacing every user; the
/// default user stays as it is unless the file defines it.
fn load(shared: &Shared, table: &CommandTable, out: &mut BytesMut) {
    let live = shared.live.load();
    let Some(path) = &live.client_auth.acl_file else {
        return encode::error(out, NO_ACL_FILE);
    };
    let lines = match crate::config::acl_file_lines(&path.display().to_string()) {
        Ok(lines) => lines,
        Err(e) => return encode::error(out, format!("ERR {e}").as_bytes()),
    };
    let result = shared
        .acl
        .change(|users| -> Result<_, crate::acl::LineError> {
            let next = Users::from_lines(users.default_user(), &lines, table)?;
            let gone = users.missing_in(&next);
            Ok((next, gone))
        });
    match result {
        Ok(gone) => {
            let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
            shared.registry.kill_users(&gone);
            encode::simple(out, b"OK");
        }
        Err(e) => encode::error(out, format!("ERR {e}").as_bytes()),
    }
}

/// The reply to `ACL SAVE`/`LOAD` without `auth.acl_file`.
const NO_ACL_FILE: &[u8] = b"ERR This keyway is not configured to use an ACL file. Set auth.acl_file in keyway's config file (instead of auth.users) to save and load users";

/// `ACL GENPASS [bits]`: random hex from the kernel's generator.
fn genpass(request: &Request, out: &mut BytesMut) {
    let bits = match request.get(2).map(parse_i64) {
        None => 256,
        Some(Some(n)) if (1..=4096).contains(&n) => n as usize,
        Some(_) => return encode::error(out, b"ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
    };
    let mut bytes = vec![0u8; bits.div_ceil(8)];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        return encode::error(out, b"ERR keyway cannot read /dev/urandom for ACL GENPASS");
    }
    let hex = crate::acl::hex(&bytes);
    encode::bulk(out, &hex.as_bytes()[..bits.div_ceil(4)]);
}
