//! keyway's ACL commands answer about keyway's own users, as redis-server
//! 7.0 answers about its own: `ACL WHOAMI`, `USERS`, `CAT`, `DRYRUN` and
//! the errors byte for byte; `GETUSER`, `LIST` and `LOG` with the same
//! shape, field names and deterministic values. Users change at run time
//! (`ACL SETUSER`, `DELUSER`, admins only), `ACL SAVE`/`LOAD` use
//! `auth.acl_file`, and `CLIENT LIST`/`CLIENT KILL USER` know who each
//! client is.

use crate::support;

use std::path::Path;

use redis::Value;
use support::auth::{
    keyway_and_redis, noperm_command, Pair, AS_ADMIN, DEFAULT_PASSWORD, NOPERM_KEY, OK, USERS,
    WRONGPASS,
};
use support::util::TempDir;
use support::{Cluster, Launch, Proxy, RawClient, Standalone, OP_TIMEOUT};

/// `ACL CAT`'s categories, in redis-server 7.0's order.
const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A RESP2 array of bulk strings.
fn bulk_array(items: &[&str]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for item in items {
        out.push_str(&format!("${}\r\n{item}\r\n", item.len()));
    }
    out
}

/// A bulk string.
fn bulk(text: &str) -> String {
    format!("${}\r\n{text}\r\n", text.len())
}

/// The admin's requests whose replies are deterministic, with redis-server
/// 7.0's replies (RESP2; see [`support::auth::in_resp3`]).
fn acl_table() -> Vec<(&'static [&'static str], String)> {
    let key = |k: &str| {
        bulk(&format!(
            "This user has no permissions to access the '{k}' key"
        ))
    };
    let command = |c: &str| {
        bulk(&format!(
            "This user has no permissions to run the '{c}' command"
        ))
    };
    let users = ["admin", "alice", "bob", "carol", "dave", "default", "erin"];
    vec![
        (&["ACL", "WHOAMI"][..], bulk("admin")),
        (&["ACL", "USERS"], bulk_array(&users)),
        (&["ACL", "CAT"], bulk_array(CATEGORIES)),
        (&["ACL", "CAT", "nosuch"], "-ERR Unknown category 'nosuch'\r\n".into()),
        (&["ACL", "GETUSER", "nosuch"], "$-1\r\n".into()),
        (&["ACL", "DRYRUN", "alice", "GET", "app:1"], OK.into()),
        (&["ACL", "DRYRUN", "alice", "GET", "other"], key("other")),
        (&["ACL", "DRYRUN", "alice", "SET", "cache:1", "x"], key("cache:1")),
        (&["ACL", "DRYRUN", "alice", "GET", "log:1"], key("log:1")),
        (&["ACL", "DRYRUN", "alice", "FLUSHALL"], command("flushall")),
        (
            &["ACL", "DRYRUN", "alice", "CONFIG", "SET", "maxmemory", "0"],
            command("config|set"),
        ),
        (
            &["ACL", "DRYRUN", "alice", "PUBLISH", "other", "x"],
            bulk("This user has no permissions to access the 'other' channel"),
        ),
        (&["ACL", "DRYRUN", "bob", "CONFIG", "GET", "maxmemory"], OK.into()),
        (&["ACL", "DRYRUN", "dave", "SET", "x", "y"], command("set")),
        (
            &["ACL", "DRYRUN", "nosuch", "GET", "x"],
            "-ERR User 'nosuch' not found\r\n".into(),
        ),
        (
            &["ACL", "DRYRUN", "alice", "NOSUCHCMD"],
            "-ERR Command 'NOSUCHCMD' not found\r\n".into(),
        ),
        (
            &["ACL", "DRYRUN", "alice", "GET"],
            "-ERR wrong number of arguments for 'get' command\r\n".into(),
        ),
        (
            &["ACL", "SETUSER", "x", "+@nosuch"],
            "-ERR Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL\r\n"
                .into(),
        ),
        (
            &["ACL", "SETUSER", "x", "bogus"],
            "-ERR Error in ACL SETUSER modifier 'bogus': Syntax error\r\n".into(),
        ),
        (
            &["ACL", "DELUSER", "default"],
            "-ERR The 'default' user cannot be removed\r\n".into(),
        ),
        (&["ACL", "DELUSER", "nosuch"], ":0\r\n".into()),
        (
            &["CLIENT", "KILL", "USER", "nosuch"],
            "-ERR No such user 'nosuch'\r\n".into(),
        ),
        (&["ACL", "LOG", "RESET"], OK.into()),
        (&["ACL", "LOG"], "*0\r\n".into()),
    ]
}

fn parse(reply: &str) -> Value {
    redis::parse_redis_value(reply.as_bytes())
        .unwrap_or_else(|e| panic!("unparsable reply {reply:?}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

/// The (name, value) pairs of a reply that is a map in RESP3 and a flat
/// array of names and values in RESP2.
fn pairs(v: &Value, resp3: bool) -> Vec<(String, Value)> {
    match (v, resp3) {
        (Value::Map(m), true) => m.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        (Value::Array(a), false) if a.len() % 2 == 0 => a
            .chunks(2)
            .map(|kv| (text(&kv[0]), kv[1].clone()))
            .collect(),
        (other, _) => panic!("not a map in RESP{}: {other:?}", if resp3 { 3 } else { 2 }),
    }
}

/// The strings of an array (or, in RESP3, a set).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// `ACL GETUSER`: field names in order, flags and passwords exactly,
/// `selectors` as a value, and the kind of the rule descriptions (their
/// wording is free: only their meaning must be the same).
fn getuser_shape(reply: &str, resp3: bool) -> Vec<String> {
    pairs(&parse(reply), resp3)
        .into_iter()
        .map(|(name, value)| match (name.as_str(), &value) {
            ("flags", Value::Set(_)) if resp3 => format!("flags: {:?}", strings(&value)),
            ("flags", Value::Array(_)) if !resp3 => format!("flags: {:?}", strings(&value)),
            ("passwords", _) => format!("passwords: {:?}", strings(&value)),
            ("selectors", _) => format!("selectors: {value:?}"),
            (_, Value::BulkString(_)) => format!("{name}: a string"),
            _ => format!("{name}: {value:?}"),
        })
        .collect()
}

/// One `ACL LOG` entry's field names and deterministic values; the age
/// and the client description are checked for their type.
fn log_entries(reply: &str, resp3: bool) -> Vec<(Vec<String>, [String; 5])> {
    let Value::Array(entries) = parse(reply) else {
        panic!("ACL LOG is not an array: {reply:?}");
    };
    entries
        .iter()
        .map(|entry| {
            let fields = pairs(entry, resp3);
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("no {name} in {entry:?}"))
            };
            match get("age-seconds") {
                Value::Double(_) if resp3 => {}
                Value::BulkString(b) if !resp3 => {
                    let age = String::from_utf8_lossy(&b).parse::<f64>();
                    assert!(age.is_ok(), "age-seconds {b:?}");
                }
                other => panic!("age-seconds {other:?}"),
            }
            let info = text(&get("client-info"));
            assert!(info.contains("id=") && info.contains(" user="), "{info}");
            let names = fields.iter().map(|(k, _)| k.clone()).collect();
            let values =
                ["count", "reason", "context", "object", "username"].map(|f| text(&get(f)));
            (names, values)
        })
        .collect()
}

#[test]
fn acl_commands_match_redis_server() {
    let cluster = Cluster::start();
    let (proxy, server) = keyway_and_redis(&cluster, "max_failures = 1000\n");
    acl_commands_match(&proxy.addr(), &server);
}

/// The same checks with a second, identical redis-server in keyway's
/// place: the expected replies are redis-server 7.0's own.
#[test]
fn the_acl_expectations_are_redis_servers_own_replies() {
    let server = Standalone::start(USERS, Some(DEFAULT_PASSWORD));
    let twin = Standalone::start(USERS, Some(DEFAULT_PASSWORD));
    acl_commands_match(&twin.addr(), &server);
}

fn acl_commands_match(keyway: &str, server: &Standalone) {
    let rows = acl_table();
    let table: Vec<(&[&str], &str)> = rows.iter().map(|(a, e)| (*a, e.as_str())).collect();
    let mut admin = Pair::login(keyway, server, "admin", "adminpw");
    admin.table(&table, false);
    let mut admin3 = Pair::new(keyway, server);
    admin3.hello3("admin", "adminpw");
    admin3.table(&table, true);

    for (pair, resp3) in [(&mut admin, false), (&mut admin3, true)] {
        for user in ["admin", "alice", "bob", "carol", "dave", "default", "erin"] {
            let (ours, theirs) = pair.both(&["ACL", "GETUSER", user]);
            let expected = getuser_shape(&theirs, resp3);
            let names: Vec<&str> = expected
                .iter()
                .map(|f| f.split(':').next().unwrap())
                .collect();
            assert_eq!(
                names,
                [
                    "flags",
                    "passwords",
                    "commands",
                    "keys",
                    "channels",
                    "selectors"
                ]
            );
            assert_eq!(getuser_shape(&ours, resp3), expected, "ACL GETUSER {user}");
        }
        // Each user's line starts `user NAME on|off`; the rules' wording is free.
        let (ours, theirs) = pair.both(&["ACL", "LIST"]);
        let starts = |reply: &str| -> Vec<String> {
            strings(&parse(reply))
                .iter()
                .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
                .collect()
        };
        assert_eq!(starts(&ours), starts(&theirs), "ACL LIST");
        assert_eq!(starts(&theirs)[1], "user alice on");
        // Which commands a category holds, in any order.
        for category in ["pubsub", "dangerous", "read", "admin"] {
            let (ours, theirs) = pair.both(&["ACL", "CAT", category]);
            let (mut ours, mut theirs) = (strings(&parse(&ours)), strings(&parse(&theirs)));
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "ACL CAT {category}");
        }
    }

    // ACL LOG: a refused key, command and channel, a key refused inside
    // MULTI, the same key again (counted in the first entry, which moves to
    // the front), failed AUTH and HELLO AUTH. Newest first.
    let mut alice = Pair::login(keyway, server, "alice", "alicepw");
    for args in [
        &["GET", "other"][..],
        &["FLUSHALL"],
        &["PUBLISH", "other", "x"],
        &["MULTI"],
        &["GET", "other"],
        &["DISCARD"],
        &["GET", "other"],
        &["AUTH", "alice", "wrong"],
    ] {
        alice.same(args);
    }
    Pair::new(keyway, server).same(&["HELLO", "3", "AUTH", "nosuch", "x"]);
    let names = [
        "count",
        "reason",
        "context",
        "object",
        "username",
        "age-seconds",
        "client-info",
    ];
    let expected = [
        ["1", "auth", "toplevel", "HELLO", "nosuch"],
        ["1", "auth", "toplevel", "AUTH", "alice"],
        ["2", "key", "toplevel", "other", "alice"],
        ["1", "key", "multi", "other", "alice"],
        ["1", "channel", "toplevel", "other", "alice"],
        ["1", "command", "toplevel", "flushall", "alice"],
    ];
    for (pair, resp3) in [(&mut admin, false), (&mut admin3, true)] {
        let (ours, theirs) = pair.both(&["ACL", "LOG"]);
        let theirs = log_entries(&theirs, resp3);
        for (entry, values) in theirs.iter().zip(&expected) {
            assert_eq!(entry.0, names);
            assert_eq!(&entry.1, values);
        }
        assert_eq!(theirs.len(), expected.len());
        assert_eq!(
            log_entries(&ours, resp3),
            theirs,
            "ACL LOG in RESP{}",
            2 + resp3 as u8
        );
        let (ours, theirs) = pair.both(&["ACL", "LOG", "2"]);
        assert_eq!(
            log_entries(&ours, resp3),
            log_entries(&theirs, resp3),
            "ACL LOG 2"
        );
        assert_eq!(log_entries(&theirs, resp3).len(), 2);
    }
    admin.expect(&["ACL", "LOG", "RESET"], OK);
    admin.expect(&["ACL", "LOG"], "*0\r\n");
}

/// sha256 of `defpw`, `adminpw`, `alicepw`, `gracepw`: `#<hex>` passwords
/// in an ACL file.
const DEFPW_SHA: &str = "b37db67013f3dcac34c2309b369cc0d6c5b546550d4462d5fc1369619dc267a9";
const ADMINPW_SHA: &str = "5fcf82bc15aef42cd3ec93e6d4b51c04df110cf77ee715f62f3f172ff8ed9de9";
const ALICEPW_SHA: &str = "6624974ea2baffac164422e4490376c1c31313cd97724ae8ce62fb3f0a0370f2";
const GRACEPW_SHA: &str = "167107151f416f7ef550362ba746e1872d8caab2df8e0fbbaa7e149816448fac";

/// An ACL file: hashed and clear-text passwords.
fn write_acl_file(path: &Path) {
    let users = format!(
        "user default on #{DEFPW_SHA} ~* &* +@all\n\
         user admin on #{ADMINPW_SHA} ~* &* +@all\n\
         user alice on >alicepw ~app:* &chan:* +@all -@admin -@dangerous\n"
    );
    std::fs::write(path, users).unwrap();
}

#[test]
fn users_change_at_run_time() {
    let cluster = Cluster::start();
    let dir = TempDir::new("acl");
    let acl_file = dir.path().join("users.acl");
    write_acl_file(&acl_file);
    let toml = format!(
        "[auth]\nacl_file = \"{}\"\nmax_failures = 1000\n",
        acl_file.display()
    );
    let launch = Launch {
        ready: AS_ADMIN,
        ..Launch::default()
    };
    let proxy = Proxy::start_configured(&cluster, &toml, launch);
    change_users(&proxy.addr(), &acl_file);
}

/// The same steps against redis-server started with the same `aclfile`.
#[test]
fn users_change_at_run_time_in_redis_server_too() {
    let dir = TempDir::new("acl");
    let acl_file = dir.path().join("users.acl");
    write_acl_file(&acl_file);
    let server = Standalone::start_with_acl_file(&acl_file);
    change_users(&server.addr(), &acl_file);
}

fn login(addr: &str, user: &str, password: &str) -> RawClient {
    let mut client = RawClient::connect(addr, OP_TIMEOUT);
    assert_eq!(client.cmd(&["AUTH", user, password]), OK, "AUTH {user}");
    client
}

fn change_users(addr: &str, acl_file: &Path) {
    let mut admin = login(addr, "admin", "adminpw");
    assert_eq!(admin.cmd(&["CLIENT", "SETNAME", "admin-1"]), OK);

    // CLIENT LIST and CLIENT INFO show who each client is.
    let mut alice = login(addr, "alice", "alicepw");
    assert_eq!(alice.cmd(&["CLIENT", "SETNAME", "alice-1"]), OK);
    let info = alice.cmd(&["CLIENT", "INFO"]);
    assert!(info.contains(" user=alice "), "{info}");
    assert_eq!(
        alice.cmd(&["CLIENT", "LIST"]),
        noperm_command("client|list")
    );
    let list = admin.cmd(&["CLIENT", "LIST"]);
    for (name, user) in [("alice-1", "alice"), ("admin-1", "admin")] {
        let line = list.lines().find(|l| l.contains(&format!(" name={name} ")));
        assert!(
            line.is_some_and(|l| l.contains(&format!(" user={user} "))),
            "{name} as user={user}:\n{list}"
        );
    }

    // CLIENT KILL USER closes every connection of that user, RESP3 too.
    let mut alice3 = RawClient::connect(addr, OP_TIMEOUT);
    assert!(alice3
        .cmd(&["HELLO", "3", "AUTH", "alice", "alicepw"])
        .starts_with("%7\r\n"));
    let alice2 = login(addr, "alice", "alicepw");
    assert_eq!(admin.cmd(&["CLIENT", "KILL", "USER", "alice"]), ":3\r\n");
    for mut killed in [alice, alice2, alice3] {
        killed.expect_closed();
    }
    assert_eq!(admin.cmd(&["PING"]), "+PONG\r\n");

    // Only admins change users.
    let mut alice = login(addr, "alice", "alicepw");
    for (args, name) in [
        (&["ACL", "SETUSER", "alice", "+@admin"][..], "acl|setuser"),
        (&["ACL", "DELUSER", "admin"], "acl|deluser"),
        (&["ACL", "SAVE"], "acl|save"),
    ] {
        assert_eq!(alice.cmd(args), noperm_command(name), "{args:?}");
    }

    // A new user, at once usable with its rules.
    let setuser = ["ACL", "SETUSER", "frank", "on", ">frankpw", "~f:*", "+@all"];
    assert_eq!(admin.cmd(&setuser), OK);
    let mut frank = login(addr, "frank", "frankpw");
    assert_eq!(frank.cmd(&["GET", "f:1"]), "$-1\r\n");
    assert_eq!(frank.cmd(&["GET", "x"]), NOPERM_KEY);

    // `off`: no new logins, on any connection (each may be served by
    // another worker); a connection already logged in stays, as in
    // redis-server 7.0.
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "frank", "off"]), OK);
    for _ in 0..4 {
        let mut client = RawClient::connect(addr, OP_TIMEOUT);
        assert_eq!(client.cmd(&["AUTH", "frank", "frankpw"]), WRONGPASS);
    }
    assert_eq!(frank.cmd(&["GET", "f:1"]), "$-1\r\n");
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "frank", "on"]), OK);
    let frank2 = login(addr, "frank", "frankpw");

    // ACL DELUSER disconnects the user's clients.
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "frank"]), ":1\r\n");
    for mut gone in [frank, frank2] {
        gone.expect_closed();
    }
    let mut client = RawClient::connect(addr, OP_TIMEOUT);
    assert_eq!(client.cmd(&["AUTH", "frank", "frankpw"]), WRONGPASS);

    // ACL SAVE writes the file: every user, passwords hashed.
    let setuser = ["ACL", "SETUSER", "grace", "on", ">gracepw", "~g:*", "+@all"];
    assert_eq!(admin.cmd(&setuser), OK);
    assert_eq!(admin.cmd(&["ACL", "SAVE"]), OK);
    let saved = std::fs::read_to_string(acl_file).unwrap();
    let mut users: Vec<&str> = saved.lines().collect();
    users.sort();
    let expected = [
        format!("user admin on #{ADMINPW_SHA} "),
        format!("user alice on #{ALICEPW_SHA} "),
        format!("user default on #{DEFPW_SHA} "),
        format!("user grace on #{GRACEPW_SHA} "),
    ];
    assert_eq!(users.len(), expected.len(), "{saved}");
    for (line, start) in users.iter().zip(&expected) {
        assert!(line.starts_with(start.as_str()), "{line:?} vs {start:?}");
    }
    assert!(!saved.contains("pw "), "no clear-text password: {saved}");

    // ACL LOAD replaces every user with the file's.
    let mut file = saved;
    file.push_str("user henry on >henrypw ~* +@all\n");
    std::fs::write(acl_file, &file).unwrap();
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "ivan", "on", ">ivanpw"]), OK);
    assert_eq!(admin.cmd(&["ACL", "LOAD"]), OK);
    // redis-server 7.0 then closes the connections of every user but
    // `default` (this one too, after the reply); that is not required
    // here: a fresh connection goes on.
    let mut admin = login(addr, "admin", "adminpw");
    let users = ["admin", "alice", "default", "grace", "henry"];
    assert_eq!(admin.cmd(&["ACL", "USERS"]), bulk_array(&users));
    login(addr, "henry", "henrypw");
    login(addr, "grace", "gracepw");

    // A bad file changes nothing.
    file.push_str("user bad on +@nosuch\n");
    std::fs::write(acl_file, &file).unwrap();
    let refused = admin.cmd(&["ACL", "LOAD"]);
    assert!(refused.starts_with("-ERR "), "{refused}");
    assert_eq!(admin.cmd(&["ACL", "USERS"]), bulk_array(&users));
}
