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
//!
//! A second walk sends invalid invocations derived from the same table:
//! every command and subcommand with one argument too few (and one too
//! many where the arity is exact), every key count (`numkeys`) replaced by
//! a word, a negative number, zero and more than there are arguments, and
//! every `STREAMS` list unbalanced. keyway's error must be the node's, word
//! for word, except the cases [`INVALID_OWN_ERRORS`] lists.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::time::Duration;

use keyway::command::{BeginSearch, CommandSpec, CommandTable, FindKeys, Reason, RouteClass};
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

/// Invalid invocations for which keyway's error differs from a 7.0
/// node's, on purpose: (command, why).
const INVALID_OWN_ERRORS: &[(&str, &str)] = &[(
    "client|setinfo",
    "keyway knows CLIENT SETINFO (Redis 7.2) and says its arity error, \
     where a 7.0 node says `unknown subcommand`",
)];

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
    /// Commands whose errors keyway words its own way.
    own_errors: Vec<&'static str>,
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
        // (keyway itself answers a wrong arity.)
        if spec.class() == RouteClass::AllNodes && spec.arity_ok(args.len()) {
            let text = direct_text.trim_end_matches("\r\n");
            direct_text = format!("{text} (node {})\r\n", self.first);
        }
        if mine.starts_with('-')
            && through_text != direct_text
            && !self.own_errors.contains(&spec.name())
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
        let documented = format!("`-ERR '<command>' {message}`");
        if self.readme.contains(&documented) {
            Outcome::Refused
        } else {
            Outcome::Failed(format!("README.md does not document {documented}"))
        }
    }

    /// A walk through `proxy` in front of `cluster`, exempting `own_errors`
    /// from the comparison of error texts.
    fn new(cluster: &Cluster, proxy: &Proxy, own_errors: Vec<&'static str>) -> Walk {
        Walk {
            proxy: proxy.addr(),
            node: cluster.node_of_slot(key_slot(b"{walk}")),
            first: cluster.node_of_slot(0),
            readme: std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
                .expect("README.md"),
            own_errors,
        }
    }

    /// Walks every case; the failures, each naming its request.
    fn all(&self, cases: &[(&CommandSpec, Vec<String>)]) -> (Tally, Vec<String>) {
        let mut tally = Tally::default();
        let mut failures = Vec::new();
        for (index, (spec, args)) in cases.iter().enumerate() {
            match self.one(spec, args, index) {
                Outcome::Refused => tally.refused += 1,
                Outcome::Compared { errors: both } => {
                    tally.errors += usize::from(both);
                    match spec.class() {
                        RouteClass::Local => tally.local += 1,
                        _ => tally.compared += 1,
                    }
                }
                Outcome::Failed(why) => {
                    failures.push(format!("{} ({:?}): {why}", args.join(" "), spec.class()))
                }
            }
        }
        (tally, failures)
    }
}

/// Sends `requests` (split on spaces) on one connection to `addr`; their
/// replies, in order.
fn in_order(addr: &str, requests: &[&str]) -> Vec<String> {
    let mut reader = BufReader::new(connect_stream(addr, HANG));
    let mut replies = Vec::new();
    for request in requests {
        let args: Vec<&[u8]> = request.split(' ').map(str::as_bytes).collect();
        reader.get_mut().write_all(&encode(&args)).expect("write");
        let reply = read_reply(&mut reader).expect("reply");
        replies.push(String::from_utf8_lossy(&reply).into_owned());
    }
    replies
}

fn clip(text: &str) -> String {
    text.chars()
        .take(160)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

/// What a walk counted.
#[derive(Default)]
struct Tally {
    /// Routed to a node and compared with its direct answer.
    compared: usize,
    /// Answered by keyway and compared with the node's answer.
    local: usize,
    /// Compared, and errors on both sides.
    errors: usize,
    /// Refused as documented.
    refused: usize,
}

#[test]
fn every_command_routes_or_is_refused_as_documented() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let table = CommandTable::builtin();
    let overrides: BTreeMap<&str, &[&str]> = ARGS.iter().copied().collect();
    let walk = Walk::new(&cluster, &proxy, OWN_ERRORS.to_vec());
    let node = walk.node.clone();
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

    let (tally, failures) = walk.all(&cases);
    let Tally {
        compared,
        local,
        errors,
        refused,
    } = tally;
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

/// The invalid variants of a valid request `args` for `spec`: one argument
/// too few, and one too many for an exact arity (containers have their own
/// cases in the first walk); each key count replaced by what Redis refuses
/// (a word, a negative number, zero, more than the arguments); a `STREAMS`
/// list with an ID missing. Refused commands get only the arity cases
/// (keyway checks the arity first, and they then reach no node).
fn invalid(spec: &CommandSpec, args: &[String]) -> Vec<Vec<String>> {
    let mut cases = Vec::new();
    if spec.is_container() {
        return cases;
    }
    let words = spec.name().split('|').count();
    let arity = spec.arity().unsigned_abs() as usize;
    if arity > words {
        cases.push(args[..arity - 1].to_vec());
    }
    if spec.arity() > 0 {
        let mut more = args.to_vec();
        more.push("1".into());
        cases.push(more);
    }
    if matches!(spec.class(), RouteClass::Unsupported(_)) {
        return cases;
    }
    let view: Vec<&str> = args.iter().map(String::as_str).collect();
    for key_spec in spec.key_specs() {
        let start = match &key_spec.begin {
            BeginSearch::Index(i) => Some(*i as usize),
            BeginSearch::Keyword { keyword, .. } => view
                .iter()
                .position(|a| a.as_bytes().eq_ignore_ascii_case(keyword))
                .map(|i| i + 1),
            BeginSearch::Unknown => None,
        };
        let Some(start) = start else { continue };
        match key_spec.find {
            FindKeys::KeyNum { keynumidx, .. } => {
                let at = start + keynumidx as usize;
                let too_many = args.len().to_string();
                for count in ["notanumber", "-1", "0", too_many.as_str()] {
                    let mut case = args.to_vec();
                    case[at] = count.into();
                    cases.push(case);
                }
            }
            // XREAD's `STREAMS k1 k2 id1 id2`: one ID short.
            FindKeys::Range { limit, .. } if limit > 1 => {
                cases.push(args[..args.len() - 1].to_vec());
            }
            _ => {}
        }
    }
    cases
}

#[test]
fn invalid_invocations_answer_the_nodes_errors() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let table = CommandTable::builtin();
    let mut overrides: BTreeMap<&str, &[&str]> = ARGS.iter().copied().collect();
    // A function that exists, so FCALL checks its key count (it looks the
    // function up first), and EVALSHA's script on every master.
    for name in ["function|load", "script|load"] {
        let mut request: Vec<String> = name.split('|').map(str::to_uppercase).collect();
        request.extend(overrides[name].iter().map(|a| a.to_string()));
        let reply = exchange(&proxy.addr(), &request).expect("load");
        assert!(
            !reply.starts_with(b"-"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    overrides.insert("fcall", &["walk", "1", "K1"]);
    overrides.insert("fcall_ro", &["walk", "1", "K1"]);
    let own: Vec<&str> = INVALID_OWN_ERRORS.iter().map(|(name, _)| *name).collect();
    let walk = Walk::new(&cluster, &proxy, own);

    let mut cases: Vec<(&CommandSpec, Vec<String>)> = Vec::new();
    for spec in table
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
    {
        let args = request(spec, &overrides);
        cases.extend(invalid(spec, &args).into_iter().map(|case| (spec, case)));
    }
    let (tally, mut failures) = walk.all(&cases);
    // Inside MULTI, an EXEC with a wrong arity discards the transaction.
    let exec = ["MULTI", "EXEC 1", "EXEC"];
    let (through, direct) = (in_order(&walk.proxy, &exec), in_order(&walk.node, &exec));
    if through != direct {
        failures.push(format!("{exec:?}: keyway {through:?}, the node {direct:?}"));
    }
    eprintln!(
        "invalid invocations: {} requests; {} compared with the node ({} errors on both sides), \
         {} refused as documented, {} failures",
        cases.len(),
        tally.compared + tally.local,
        tally.errors,
        tally.refused,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} invalid invocations answer otherwise through keyway:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
