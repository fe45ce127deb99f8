//! Commands keyway answers itself: connection commands (`PING`, `ECHO`,
//! `QUIT`, `SELECT`, `HELLO`, `AUTH`, `RESET`), the client's own `CLIENT`
//! state, `COMMAND COUNT`, and `CLUSTER KEYSLOT`/`INFO` from the proxy's view.
//! Every reply is written in the protocol the client chose with `HELLO`.

use bytes::{Bytes, BytesMut};

use crate::cluster::{Slot, SLOT_COUNT};
use crate::command::{CommandSpec, CommandTable};
use crate::protocol::{encode, parse_i64, Protocol, Request};
use crate::worker::Shared;

use super::client::{ClientInfo, ReplyMode};
use super::login;
use crate::acl::DEFAULT_USER;

/// What the session does after a local command.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The reply is in the output buffer.
    Reply,
    /// The reply is in the output buffer; close the connection after it.
    Quit,
    /// Not answered locally after all: send it to any master.
    Forward,
}

/// Answers `request` (whose table entry is `spec`) into `out`.
pub fn execute(
    spec: &CommandSpec,
    request: &Request,
    client: &mut ClientInfo,
    shared: &Shared,
    table: &CommandTable,
    out: &mut BytesMut,
) -> Outcome {
    let arg = |i: usize| request.get(i).unwrap_or_default();
    let proto = client.proto;
    match spec.name() {
        "ping" if request.argc() > 2 => {
            encode::error(out, b"ERR wrong number of arguments for 'ping' command")
        }
        // A RESP2 client in subscribed mode gets `["pong", message]`.
        "ping" if proto == Protocol::Resp2 && client.subscriptions.any() => {
            encode::array_header(out, 2);
            encode::bulk(out, b"pong");
            encode::bulk(out, request.get(1).unwrap_or_default());
        }
        "ping" => match request.get(1) {
            Some(message) => encode::bulk(out, message),
            None => encode::simple(out, b"PONG"),
        },
        "echo" => encode::bulk(out, arg(1)),
        "quit" => {
            encode::simple(out, b"OK");
            return Outcome::Quit;
        }
        "select" => select(arg(1), out),
        "hello" => hello(request, client, shared, out),
        "auth" => auth(request, client, shared, out),
        "reset" => {
            client.log_out(&shared.acl);
            client.set_read_replicas(false);
            client.record.names().name = None;
            client.set_protocol(Protocol::Resp2);
            client.reply_mode = ReplyMode::On;
            client.record.set_no_evict(false);
            encode::simple(out, b"RESET");
        }
        "readonly" | "readwrite" => {
            client.set_read_replicas(spec.name() == "readonly");
            encode::simple(out, b"OK");
        }
        "command|count" => encode::integer(out, table.len() as i64),
        "command" | "command|info" | "command|docs" | "command|list" | "command|getkeys"
        | "command|getkeysandflags" | "command|help" => return Outcome::Forward,
        // Redis's own help text, like COMMAND HELP.
        "client|help" => return Outcome::Forward,
        "client|id" => encode::integer(out, client.id as i64),
        "client|getname" => match &client.record.names().name {
            Some(name) => encode::bulk(out, name),
            None => encode::null(out, proto),
        },
        "client|setname" => match valid_name(arg(2)) {
            Ok(name) => {
                client.record.names().name = name;
                encode::simple(out, b"OK");
            }
            Err(text) => encode::error(out, text),
        },
        "client|setinfo" => client_setinfo(arg(2), arg(3), client, out),
        "client|info" => encode::verbatim(out, proto, client.record.line().as_bytes()),
        "client|list" => match shared.registry.list(request) {
            Ok(lines) => encode::verbatim(out, proto, lines.as_bytes()),
            Err(text) => encode::error(out, text.as_bytes()),
        },
        "client|kill" => return client_kill(request, client, shared, out),
        "client|no-evict" => match on_off(arg(2)) {
            Some(on) => {
                client.record.set_no_evict(on);
                encode::simple(out, b"OK");
            }
            None => encode::error(out, b"ERR syntax error"),
        },
        // Redis 7.2+: keyway's backend connections are shared, so it
        // cannot keep one client's reads from touching keys.
        "client|no-touch" => match on_off(arg(2)) {
            Some(false) => encode::simple(out, b"OK"),
            Some(true) => encode::error(
                out,
                b"ERR CLIENT NO-TOUCH ON is not supported by keyway: its connections to the cluster are shared by many clients, so it cannot keep one client's commands from touching keys",
            ),
            None => encode::error(out, b"ERR syntax error"),
        },
        // The session drops the replies the mode says (this one's too).
        "client|reply" => match client.reply_mode.set(arg(2)) {
            Some(mode) => {
                client.reply_mode = mode;
                encode::simple(out, b"OK");
            }
            None => encode::error(out, b"ERR syntax error"),
        },
        "client|tracking" => client_tracking(request, out),
        "client|caching" => encode::error(
            out,
            b"ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ),
        "client|getredir" => encode::integer(out, -1),
        "client|trackinginfo" => {
            encode::map_header(out, proto, 3);
            encode::bulk(out, b"flags");
            encode::set_header(out, proto, 1);
            encode::bulk(out, b"off");
            encode::bulk(out, b"redirect");
            encode::integer(out, -1);
            encode::bulk(out, b"prefixes");
            encode::array_header(out, 0);
        }
        // The container alone (an unknown subcommand) too: the node words
        // that error.
        name if name == "acl" || name.starts_with("acl|") => {
            if !super::acl_command::execute(spec, request, client, shared, table, out) {
                return Outcome::Forward;
            }
        }
        "cluster|keyslot" => encode::integer(out, Slot::of_key(arg(2)).get() as i64),
        "cluster|info" => encode::verbatim(out, proto, cluster_info(shared).as_bytes()),
        other => {
            let text = format!(
                "ERR '{}' is not supported by keyway yet",
                other.replace('|', " ").to_uppercase()
            );
            encode::error(out, text.as_bytes());
        }
    }
    Outcome::Reply
}

fn select(index: &[u8], out: &mut BytesMut) {
    match std::str::from_utf8(index).ok().and_then(|s| s.parse::<i64>().ok()) {
        Some(0) => encode::simple(out, b"OK"),
        Some(_) => encode::error(
            out,
            b"ERR DB index is out of range: a Redis Cluster has only database 0, so keyway accepts only SELECT 0",
        ),
        None => encode::error(out, b"ERR value is not an integer or out of range"),
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`, as redis-server
/// does it: options are checked first, then the credentials; only then are
/// the name and the protocol changed, and the reply is in the new protocol.
fn hello(request: &Request, client: &mut ClientInfo, shared: &Shared, out: &mut BytesMut) {
    let version = shared.view.server_version();
    let mut proto = client.proto;
    if let Some(asked) = request.get(1) {
        let Some(asked) = parse_i64(asked) else {
            return encode::error(
                out,
                b"ERR Protocol version is not an integer or out of range",
            );
        };
        proto = match Protocol::from_version(asked) {
            Some(Protocol::Resp3) if !speaks_resp3(&version) => {
                let text = format!(
                    "NOPROTO the cluster runs Redis {version}, which has no RESP3; use HELLO 2"
                );
                return encode::error(out, text.as_bytes());
            }
            Some(p) => p,
            None => return encode::error(out, b"NOPROTO unsupported protocol version"),
        };
    }
    let mut credentials = None;
    let mut new_name = None;
    let mut i = 2;
    while i < request.argc() {
        let option = request.arg(i);
        let more = request.argc() - 1 - i;
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            credentials = Some((request.arg(i + 1), request.arg(i + 2)));
            i += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            match valid_name(request.arg(i + 1)) {
                Ok(name) => new_name = Some(name),
                Err(text) => return encode::error(out, text),
            }
            i += 2;
        } else {
            let text = format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            );
            return encode::error(out, text.as_bytes());
        }
    }
    match credentials {
        Some((user, password)) => {
            if let Err(text) = login::log_in(client, shared, "HELLO", user, password) {
                return encode::error(out, text);
            }
        }
        None if client.user.is_none() => return encode::error(out, HELLO_NOAUTH),
        None => {}
    }
    if let Some(name) = new_name {
        client.record.names().name = name;
    }
    client.set_protocol(proto);
    encode::map_header(out, proto, 7);
    let text_fields: [(&[u8], &[u8]); 2] =
        [(b"server", b"redis"), (b"version", version.as_bytes())];
    for (key, value) in text_fields {
        encode::bulk(out, key);
        encode::bulk(out, value);
    }
    for (key, value) in [(&b"proto"[..], proto.version()), (b"id", client.id as i64)] {
        encode::bulk(out, key);
        encode::integer(out, value);
    }
    // A standalone master: clients must not switch to cluster mode.
    for (key, value) in [(&b"mode"[..], &b"standalone"[..]), (b"role", b"master")] {
        encode::bulk(out, key);
        encode::bulk(out, value);
    }
    encode::bulk(out, b"modules");
    encode::array_header(out, 0);
}

/// Whether Redis `version` (e.g. `7.0.15`) speaks RESP3: 6.0 and later.
fn speaks_resp3(version: &str) -> bool {
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    major.map_or(true, |m| m >= 6)
}

/// `HELLO` without `AUTH` from a client that has not authenticated.
const HELLO_NOAUTH: &[u8] = b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// `AUTH [user] password`, as redis-server answers it.
fn auth(request: &Request, client: &mut ClientInfo, shared: &Shared, out: &mut BytesMut) {
    let verdict = match request.argc() {
        2 if shared.acl.users().default_user().nopass() => Err(&b"ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"[..]),
        2 => login::log_in(client, shared, "AUTH", DEFAULT_USER.as_bytes(), request.arg(1)),
        3 => login::log_in(client, shared, "AUTH", request.arg(1), request.arg(2)),
        _ => Err(&b"ERR syntax error"[..]),
    };
    match verdict {
        Ok(()) => encode::simple(out, b"OK"),
        Err(text) => encode::error(out, text),
    }
}

/// `CLIENT TRACKING OFF` is honoured (tracking is never on); `ON` is
/// refused with the options named, since keyway does not forward
/// invalidation messages yet. Never accepted and then silently ignored.
fn client_tracking(request: &Request, out: &mut BytesMut) {
    let mode = request.get(2).unwrap_or_default();
    if mode.eq_ignore_ascii_case(b"OFF") {
        return encode::simple(out, b"OK");
    }
    if !mode.eq_ignore_ascii_case(b"ON") {
        return encode::error(out, b"ERR syntax error");
    }
    let options: Vec<String> = request
        .args()
        .skip(3)
        .map(|a| String::from_utf8_lossy(a).to_uppercase())
        .collect();
    let asked = if options.is_empty() {
        "ON".to_string()
    } else {
        format!("ON {}", options.join(" "))
    };
    let text = format!(
        "ERR CLIENT TRACKING {asked} is not supported by keyway: it does not forward the cluster's invalidation messages, so client-side caching would serve stale data; turn client-side caching off in the client"
    );
    encode::error(out, text.as_bytes());
}

/// A client name as `CLIENT SETNAME` accepts it: printable, no spaces.
/// Empty clears the name.
fn valid_name(name: &[u8]) -> Result<Option<Bytes>, &'static [u8]> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(b"ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok((!name.is_empty()).then(|| Bytes::copy_from_slice(name)))
}

fn client_setinfo(attr: &[u8], value: &[u8], client: &mut ClientInfo, out: &mut BytesMut) {
    if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        let text = format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(attr)
        );
        return encode::error(out, text.as_bytes());
    }
    let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
    if attr.eq_ignore_ascii_case(b"lib-name") {
        client.record.names().lib_name = value;
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        client.record.names().lib_ver = value;
    } else {
        let text = format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attr)
        );
        return encode::error(out, text.as_bytes());
    }
    encode::simple(out, b"OK");
}

/// `CLIENT KILL`: the new form answers how many clients it killed, the old
/// one (`CLIENT KILL addr`) `+OK` or `-ERR No such client`. A client that
/// kills itself gets its reply, then the connection closes.
fn client_kill(
    request: &Request,
    client: &ClientInfo,
    shared: &Shared,
    out: &mut BytesMut,
) -> Outcome {
    let users = shared.acl.users();
    match shared
        .registry
        .kill(request, client.id, |user| users.get(user).is_some())
    {
        Err(text) => encode::error(out, text.as_bytes()),
        Ok(0) if request.argc() == 3 => encode::error(out, b"ERR No such client"),
        Ok(_) if request.argc() == 3 => encode::simple(out, b"OK"),
        Ok(killed) => encode::integer(out, killed as i64),
    }
    if client.record.is_killed() {
        Outcome::Quit
    } else {
        Outcome::Reply
    }
}

/// `on` / `off`, any case.
fn on_off(arg: &[u8]) -> Option<bool> {
    if arg.eq_ignore_ascii_case(b"on") {
        Some(true)
    } else if arg.eq_ignore_ascii_case(b"off") {
        Some(false)
    } else {
        None
    }
}

/// `CLUSTER INFO` as keyway sees the cluster.
fn cluster_info(shared: &Shared) -> String {
    let topology = shared.view.topology().load();
    let covered = topology.covered_slots();
    let state = if covered == SLOT_COUNT as usize {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{covered}\r\ncluster_slots_ok:{covered}\r\ncluster_known_nodes:{nodes}\r\ncluster_size:{nodes}\r\ncluster_current_epoch:{epoch}\r\n",
        nodes = topology.nodes().len(),
        epoch = topology.epoch(),
    )
}
