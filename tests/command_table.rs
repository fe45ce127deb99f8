//! The whole command table, walked: every command and subcommand keyway
//! knows is sent through keyway with a plausible minimal argument list.
//! Refused commands must answer keyway's documented refusal, exactly.
//! Every other command must answer, within a timeout, a reply of the same
//! shape as the node's own answer to the same command sent directly to the
//! master of the keys' slot: errors with the same code (`ERR`,
//! `WRONGTYPE`, ...) and text (commands sent to every node add the node
//! that refused first, the master of slot 0), other replies of the same
//! RESP type (their
//! contents may differ: INFO, CLUSTER INFO, RANDOMKEY, merged replies).
//! Refused commands are never sent to a node (SHUTDOWN, DEBUG, FAILOVER,
//! ...). Destructive commands (FLUSHALL, ...) run last; every command gets
//! keys of its own, one set through keyway and one directly, so both sides
//! start from the same (empty) state.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::time::Duration;

use keyway::command::{CommandSpec, CommandTable, Reason, RouteClass};
use support::resp::{connect_stream, encode, read_reply};
use support::{key_slot, Cluster, Proxy};

/// Longer than any command of the walk takes (blocking ones time out after
/// 0.1 s): a reply that takes longer is a hang.
const HANG: Duration = Duration::from_secs(5);

/// Arguments for the commands the generic builder cannot satisfy: real
/// numbers, short timeouts for blocking commands, valid scripts. `K1`,
/// `K2`, ... stand for keys (in the `{walk}` slot, fresh per command and
/// per side).
const ARGS: &[(&str, &[&str])] = &[
    ("bitop", &["AND", "K1", "K2"]),
    ("blmove", &["K1", "K2", "LEFT", "RIGHT", "0.1"]),
    ("blmpop", &["0.1", "1", "K1", "LEFT"]),
    ("blpop", &["K1", "0.1"]),
    ("brpop", &["K1", "0.1"]),
    ("brpoplpush", &["K1", "K2", "0.1"]),
    ("bzmpop", &["0.1", "1", "K1", "MIN"]),
    ("bzpopmax", &["K1", "0.1"]),
    ("bzpopmin", &["K1", "0.1"]),
    ("eval", &["return 1", "1", "K1"]),
    ("eval_ro", &["return 1", "1", "K1"]),
    // SHA1 of `return 1`, cached on the node by EVAL above.
    (
        "evalsha",
        &["e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "1", "K1"],
    ),
    (
        "evalsha_ro",
        &["e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "1", "K1"],
    ),
    ("fcall", &["nosuchfunction", "1", "K1"]),
    ("fcall_ro", &["nosuchfunction", "1", "K1"]),
    // REPLACE: keyway loads it on every master, the node is one of them.
    (
        "function|load",
        &[
            "REPLACE",
            "#!lua name=walk\nredis.register_function('walk', function() return 1 end)",
        ],
    ),
    ("georadius", &["K1", "0", "0", "1", "m"]),
    ("georadius_ro", &["K1", "0", "0", "1", "m"]),
    (
        "geosearch",
        &["K1", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m"],
    ),
    (
        "geosearchstore",
        &["K1", "K2", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m"],
    ),
    ("linsert", &["K1", "BEFORE", "1", "1"]),
    ("lmove", &["K1", "K2", "LEFT", "RIGHT"]),
    ("lmpop", &["1", "K1", "LEFT"]),
    // Fails before it connects anywhere: the key does not exist.
    ("scan", &["0"]),
    ("script|load", &["return 1"]),
    ("wait", &["1", "100"]),
    ("xgroup|create", &["K1", "g", "$", "MKSTREAM"]),
    ("xread", &["BLOCK", "100", "STREAMS", "K1", "0"]),
    ("xreadgroup", &["GROUP", "g", "c", "STREAMS", "K1", ">"]),
    ("xtrim", &["K1", "MAXLEN", "1"]),
    ("zlexcount", &["K1", "-", "+"]),
    ("zmpop", &["1", "K1", "MIN"]),
    ("zrangebylex", &["K1", "-", "+"]),
    ("zremrangebylex", &["K1", "-", "+"]),
    ("zrevrangebylex", &["K1", "+", "-"]),
];

/// Commands for which keyway words an error its own way, on purpose.
const OWN_ERRORS: &[&str] = &[
    // SELECT n: keyway explains that a cluster has only database 0.
    "select",
    // keyway answers CLIENT SETINFO (Redis 7.2) itself, with 7.2's errors,
    // where a 7.0 node does not know it.
    "client|setinfo",
    // ACL SAVE/LOAD without auth.acl_file: keyway names its own key, where
    // the node's text suggests CONFIG REWRITE.
    "acl|save",
    "acl|load",
];

/// Run last, in this order: they wipe what the others may have left.
const DESTRUCTIVE: &[&str] = &["script|flush", "function|flush", "flushdb", "flushall"];

/// What the walk did with one command.
enum Outcome {
    /// Refused with the documented error.
    Refused,
    /// Answered (by a node or by keyway) like the node answers; whether
    /// both answers were errors.
    Compared { errors: bool },
    /// Failed; the text says how.
    Failed(String),
}

/// Sends `args` on a fresh connection to `addr`; the reply's raw bytes, or
/// what went wrong (a timeout is a hang).
fn exchange(addr: &str, args: &[String]) -> Result<Vec<u8>, String> {
    let stream = connect_stream(addr, HANG);
    let mut reader = BufReader::new(stream);
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    reader
        .get_mut()
        .write_all(&encode(&args))
        .map_err(|e| format!("write: {e}"))?;
    read_reply(&mut reader).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no reply within {HANG:?} (hangs)")
        }
        _ => format!("no reply: {e}"),
    })
}

/// A reply's shape: `-CODE` for errors, otherwise its RESP type byte.
fn shape(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    if text.starts_with('-') {
        text.split([' ', '\r'])
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        text.chars().next().map(String::from).unwrap_or_default()
    }
}

/// The request for `spec`: its name, then the override arguments, or as
/// many `1`s as its arity asks with the key positions (per the command's
/// key specs) turned into `K1`, `K2`, ...
fn request(spec: &CommandSpec, overrides: &BTreeMap<&str, &[&str]>) -> Vec<String> {
    let mut args: Vec<String> = spec.name().split('|').map(str::to_uppercase).collect();
    if let Some(extra) = overrides.get(spec.name()) {
        args.extend(extra.iter().map(|a| a.to_string()));
        return args;
    }
    while args.len() < spec.arity().unsigned_abs() as usize {
        args.push("1".to_string());
    }
    let view: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut keys = Vec::new();
    if spec.for_each_key(&view[..], |i| keys.push(i)).is_ok() {
        for (n, i) in keys.into_iter().enumerate() {
            args[i] = format!("K{}", n + 1);
        }
    }
    args
}

/// `args` with `K<n>` replaced by fresh keys of the `{walk}` slot, distinct
/// per command (`index`) and per side, so both sides start from no key.
fn with_keys(args: &[String], index: usize, side: char) -> Vec<String> {
    args.iter()
        .map(|a| match a.strip_prefix('K') {
            Some(n) if n.parse::<u8>().is_ok() => format!("{{walk}}{side}{index}:{n}"),
            _ => a.clone(),
        })
        .collect()
}

/// Where the walk sends commands, and what the README documents.
struct Walk {
    /// keyway's address.
    proxy: String,
    /// The master of the `{walk}` slot, asked directly.
    node: String,
    /// The master of slot 0: the first node a command sent to every node
    /// reaches, which keyway names in its error.
    first: String,
    /// README.md, whose refusal texts keyway's must match.
    readme: String,
}

impl Walk {
    /// Walks one command: refused ones must say keyway's documented
    /// refusal; the others must answer through keyway like the node answers
    /// directly.
    fn one(&self, spec: &CommandSpec, args: &[String], index: usize) -> Outcome {
        let through = match exchange(&self.proxy, &with_keys(args, index, 'p')) {
            Ok(reply) => reply,
            Err(e) => return Outcome::Failed(format!("through keyway: {e}")),
        };
        let through_text = String::from_utf8_lossy(&through).into_owned();
        // Like the router: a wrong arity is Redis's error, whatever the class.
        match spec.class() {
            RouteClass::Unsupported(reason) if spec.arity_ok(args.len()) => {
                return self.refusal(spec, reason, &through_text)
            }
            _ => {}
        }
        let direct = match exchange(&self.node, &with_keys(args, index, 'd')) {
            Ok(reply) => reply,
            Err(e) => return Outcome::Failed(format!("directly: {e}")),
        };
        let (mine, theirs) = (shape(&through), shape(&direct));
        if mine != theirs {
            return Outcome::Failed(format!(
                "keyway answered {mine} ({}), the node {theirs} ({})",
                clip(&through_text),
                clip(&String::from_utf8_lossy(&direct))
            ));
        }
        // keyway forwards the node's errors as they are; the keys differ
        // only by their side's letter.
        let mut direct_text = String::from_utf8_lossy(&direct).replace("{walk}d", "{walk}p");
        if spec.class() == RouteClass::AllNodes {
            let text = direct_text.trim_end_matches("\r\n");
            direct_text = format!("{text} (node {})\r\n", self.first);
        }
        if mine.starts_with('-')
            && through_text != direct_text
            && !OWN_ERRORS.contains(&spec.name())
        {
            return Outcome::Failed(format!(
                "keyway answered the error {}, the node {}",
                clip(&through_text),
                clip(&direct_text)
            ));
        }
        Outcome::Compared {
            errors: mine.starts_with('-'),
        }
    }

    /// `reply` must be `-ERR '<name>' <the reason's message>`, and README.md
    /// must document that message.
    fn refusal(&self, spec: &CommandSpec, reason: Reason, reply: &str) -> Outcome {
        let name = spec.name().replace('|', " ");
        let expected = format!("-ERR '{name}' {}\r\n", reason.message());
        if reply != expected {
            return Outcome::Failed(format!("expected refusal {expected:?}, got {reply:?}"));
        }
        let message = &reply[format!("-ERR '{name}' ").len()..reply.len() - 2];
        let documented = format!("`-ERR '<COMMAND>' {message}`");
        if self.readme.contains(&documented) {
            Outcome::Refused
        } else {
            Outcome::Failed(format!("README.md does not document {documented}"))
        }
    }
}

fn clip(text: &str) -> String {
    text.chars()
        .take(160)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

#[test]
fn every_command_routes_or_is_refused_as_documented() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let node = cluster.node_of_slot(key_slot(b"{walk}"));
    let table = CommandTable::builtin();
    let overrides: BTreeMap<&str, &[&str]> = ARGS.iter().copied().collect();
    let walk = Walk {
        proxy: proxy.addr(),
        node: node.clone(),
        first: cluster.node_of_slot(0),
        readme: std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md"),
    };
    // The walk covers every command the cluster's nodes know.
    let count = exchange(&node, &["COMMAND".into(), "COUNT".into()]).expect("COMMAND COUNT");
    assert_eq!(
        String::from_utf8_lossy(&count),
        format!(":{}\r\n", table.len()),
        "the nodes know other commands than keyway's table"
    );

    // Every subcommand, and every container alone and with an unknown
    // subcommand (Redis's arity and `unknown subcommand` errors).
    let mut cases: Vec<(&CommandSpec, Vec<String>)> = Vec::new();
    for cmd in table.iter() {
        if !cmd.is_container() {
            cases.push((cmd, request(cmd, &overrides)));
            continue;
        }
        let name = cmd.name().to_uppercase();
        cases.push((cmd, vec![name.clone()]));
        cases.push((cmd, vec![name, "nosuchsubcommand".into()]));
        cases.extend(cmd.subcommands().map(|sub| (sub, request(sub, &overrides))));
    }
    cases.sort_by_key(|(spec, args)| {
        let last = DESTRUCTIVE.iter().position(|d| *d == spec.name());
        (last, spec.name().to_string(), args.len())
    });

    let (mut refused, mut compared, mut local, mut errors) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (index, (spec, args)) in cases.iter().enumerate() {
        let outcome = walk.one(spec, args, index);
        match outcome {
            Outcome::Refused => refused += 1,
            Outcome::Compared { errors: both } => {
                errors += usize::from(both);
                match spec.class() {
                    RouteClass::Local => local += 1,
                    _ => compared += 1,
                }
            }
            Outcome::Failed(why) => {
                failures.push(format!("{} ({:?}): {why}", args.join(" "), spec.class()))
            }
        }
    }
    eprintln!(
        "command table walk: {} requests; {compared} routed and compared with the node, \
         {local} answered by keyway and compared ({errors} of these {} were errors on both \
         sides), {refused} refused as documented, {} failures",
        cases.len(),
        compared + local,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} commands misbehave through keyway:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
