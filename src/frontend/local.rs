//! Commands keyway answers itself: connection commands (`PING`, `ECHO`,
//! `QUIT`, `SELECT`, `HELLO`, `AUTH`, `RESET`), the client's own `CLIENT`
//! state, `COMMAND COUNT`, and `CLUSTER KEYSLOT`/`INFO` from the proxy's view.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::cluster::{Slot, SLOT_COUNT};
use crate::command::{CommandSpec, CommandTable};
use crate::protocol::{encode, Request};
use crate::worker::Shared;

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

/// What keyway knows about one client, as `CLIENT INFO` shows it.
#[derive(Debug)]
pub struct ClientInfo {
    /// `CLIENT ID`.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    connected: Instant,
}

impl ClientInfo {
    /// A client that just connected.
    pub fn new(id: u64, peer: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            peer,
            name: None,
            lib_name: None,
            lib_ver: None,
            connected: Instant::now(),
        }
    }
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
    match spec.name() {
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
        "auth" => encode::error(
            out,
            b"ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        "reset" => {
            client.name = None;
            encode::simple(out, b"RESET");
        }
        "readonly" | "readwrite" => encode::simple(out, b"OK"),
        "command|count" => encode::integer(out, table.len() as i64),
        "command" | "command|info" | "command|docs" | "command|list" | "command|getkeys"
        | "command|getkeysandflags" => return Outcome::Forward,
        "client|id" => encode::integer(out, client.id as i64),
        "client|getname" => match &client.name {
            Some(name) => encode::bulk(out, name),
            None => encode::null_bulk(out),
        },
        "client|setname" => match valid_name(arg(2)) {
            Ok(name) => {
                client.name = name;
                encode::simple(out, b"OK");
            }
            Err(text) => encode::error(out, text),
        },
        "client|setinfo" => client_setinfo(arg(2), arg(3), client, out),
        "client|info" => encode::bulk(out, client_line(client).as_bytes()),
        "cluster|keyslot" => encode::integer(out, Slot::of_key(arg(2)).get() as i64),
        "cluster|info" => encode::bulk(out, cluster_info(shared).as_bytes()),
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

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`, RESP2 only for now.
fn hello(request: &Request, client: &mut ClientInfo, shared: &Shared, out: &mut BytesMut) {
    if let Some(version) = request.get(1) {
        match std::str::from_utf8(version)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(2) => {}
            Some(_) => {
                return encode::error(
                    out,
                    b"NOPROTO sorry, this protocol version is not supported",
                )
            }
            None => {
                return encode::error(
                    out,
                    b"ERR Protocol version is not an integer or out of range",
                )
            }
        }
    }
    let mut i = 2;
    let mut new_name = None;
    while i < request.argc() {
        let option = request.arg(i);
        if option.eq_ignore_ascii_case(b"AUTH") && i + 2 < request.argc() {
            // No password is configured on keyway's client side yet, so
            // every user is accepted, as redis-server's default user does.
            i += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && i + 1 < request.argc() {
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
    if let Some(name) = new_name {
        client.name = name;
    }
    let version = shared.view.server_version();
    let fields: [(&[u8], Field); 7] = [
        (b"server", Field::Bulk(b"redis")),
        (b"version", Field::Bulk(version.as_bytes())),
        (b"proto", Field::Int(2)),
        (b"id", Field::Int(client.id as i64)),
        (b"mode", Field::Bulk(b"standalone")),
        (b"role", Field::Bulk(b"master")),
        (b"modules", Field::EmptyArray),
    ];
    encode::array_header(out, fields.len() * 2);
    for (key, value) in fields {
        encode::bulk(out, key);
        match value {
            Field::Bulk(v) => encode::bulk(out, v),
            Field::Int(n) => encode::integer(out, n),
            Field::EmptyArray => encode::array_header(out, 0),
        }
    }
}

enum Field<'a> {
    Bulk(&'a [u8]),
    Int(i64),
    EmptyArray,
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
        client.lib_name = value;
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        client.lib_ver = value;
    } else {
        let text = format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(attr)
        );
        return encode::error(out, text.as_bytes());
    }
    encode::simple(out, b"OK");
}

/// One `CLIENT INFO` line, in redis-server's `key=value` form.
fn client_line(client: &ClientInfo) -> String {
    fn text(v: &Option<Bytes>) -> std::borrow::Cow<'_, str> {
        v.as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
    }
    format!(
        "id={} addr={} name={} age={} db=0 resp=2 lib-name={} lib-ver={}\n",
        client.id,
        client.peer,
        text(&client.name),
        client.connected.elapsed().as_secs(),
        text(&client.lib_name),
        text(&client.lib_ver),
    )
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
