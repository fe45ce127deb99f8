//! `INFO [section ...]`: asked of every master with the client's own
//! arguments (so each node decides which sections they name), then merged
//! into one Redis-shaped text. The sections about the server and its
//! clients describe keyway itself (`Server`, `Clients`, `Cluster` with
//! `cluster_enabled:0`, so a client does not switch to cluster mode, and
//! keyway's connection and read counters in `Stats`); the others are the masters'
//! together: numbers summed (`used_memory`, `keys` per db, hits, ...) with
//! their `_human` forms recomputed, states (`loading`, `..._in_progress`),
//! durations and offsets their largest, timestamps their oldest, texts the first master's unless
//! another reports something other than `ok`; replicas of every master are
//! listed in `Replication`.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use crate::backend::BackendError;
use crate::protocol::{encode, Protocol};
use crate::worker::Shared;

use super::merge::values;

/// What keyway reports about itself.
#[derive(Clone, Debug)]
pub struct Own {
    /// The cluster's `redis_version`.
    pub redis_version: String,
    /// The port clients connect to.
    pub tcp_port: u16,
    /// Seconds since keyway started.
    pub uptime: u64,
    /// Clients connected now.
    pub connected_clients: usize,
    /// `client.max_clients`.
    pub max_clients: usize,
    /// Clients waiting in a blocking command (or `WAIT`).
    pub blocked_clients: usize,
    /// Clients accepted since start.
    pub connections_received: u64,
    /// Clients refused at `client.max_clients`.
    pub rejected_connections: u64,
    /// Reads keyway sent to masters, and to replicas.
    pub reads_served: (u64, u64),
    /// Replicas skipped for lag now.
    pub replicas_lagging: usize,
    /// The `# Keyway` section, when the client asked for it.
    pub keyway: Option<Vec<(String, String)>>,
}

impl Own {
    /// What keyway reports about itself now; with `keyway`, its own
    /// section too.
    pub fn of(shared: &Shared, keyway: bool) -> Own {
        let registry = &shared.registry;
        Own {
            redis_version: shared.view.server_version().to_string(),
            tcp_port: shared
                .startup
                .listen
                .or(shared.startup.tls.as_ref().map(|t| t.addr))
                .map_or(0, |a| a.port()),
            uptime: shared.started.elapsed().as_secs(),
            connected_clients: registry.connected(),
            max_clients: shared.live.load().max_clients.get(),
            blocked_clients: registry.blocked(),
            connections_received: registry.accepted(),
            rejected_connections: registry.rejected(),
            reads_served: shared.reads.totals(),
            replicas_lagging: shared.view.replicas_lagging(),
            keyway: keyway.then(|| keyway_section(shared)),
        }
    }
}

/// Whether `INFO` with these arguments (after the command name) shows the
/// `# Keyway` section: no argument, `default`, `all`, `everything` or
/// `keyway`, as redis-server picks its own sections.
pub fn asks_keyway<'a>(mut args: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut any = false;
    let asked = args.any(|arg| {
        any = true;
        [&b"keyway"[..], b"default", b"all", b"everything"]
            .iter()
            .any(|s| arg.eq_ignore_ascii_case(s))
    });
    asked || !any
}

/// keyway's headline figures, as `/metrics` has them, for people without
/// Prometheus: readiness, the slot map, clients, commands (count, errors
/// by kind, the bucket bounds of the 50th and 99th percentile of their
/// time through keyway), backend connections and pub/sub.
fn keyway_section(shared: &Shared) -> Vec<(String, String)> {
    use crate::stats::commands::ERROR_KINDS;
    use crate::stats::histogram::Totals;
    let topology = shared.view.topology().load();
    let census = shared.registry.census();
    let mut all = Totals::default();
    for (_, t) in shared.commands_answered.totals() {
        all.add(&t);
    }
    let usec = |q: f64| match all.quantile_bound(q) {
        Some(s) if s.is_finite() => ((s * 1e6).round() as u64).to_string(),
        Some(_) => "inf".to_string(),
        None => "0".to_string(),
    };
    let errors = shared.commands_answered.errors();
    let errors: Vec<String> = ERROR_KINDS
        .iter()
        .zip(errors)
        .map(|(kind, n)| format!("{kind}={n}"))
        .collect();
    let backends = shared.backends.totals();
    let sum = |f: fn(&crate::stats::backends::NodeTotals) -> u64| -> u64 {
        backends.values().map(f).sum()
    };
    let pubsub = shared.pubsub.totals();
    let not_ready = shared.not_ready();
    let lines: Vec<(&str, String)> = vec![
        ("ready", u8::from(not_ready.is_none()).to_string()),
        ("not_ready_reason", not_ready.unwrap_or_default()),
        ("topology_epoch", topology.epoch().to_string()),
        ("slots_covered", topology.covered_slots().to_string()),
        ("masters", topology.nodes().len().to_string()),
        ("replicas", topology.replica_count().to_string()),
        (
            "replicas_lagging",
            shared.view.replicas_lagging().to_string(),
        ),
        ("failovers_seen", shared.view.failovers().to_string()),
        ("clients_subscribed", census.subscribed.to_string()),
        ("clients_resp3", census.resp3.to_string()),
        ("commands_processed", all.count().to_string()),
        ("command_errors", errors.join(",")),
        (
            "command_latency_usec",
            format!("p50_le={},p99_le={}", usec(0.5), usec(0.99)),
        ),
        ("backend_connections", sum(|t| t.connections).to_string()),
        (
            "backend_requests_in_flight",
            sum(|t| t.in_flight).to_string(),
        ),
        ("backend_reconnects", sum(|t| t.reconnects).to_string()),
        (
            "pubsub_topics",
            pubsub.topics.iter().sum::<u64>().to_string(),
        ),
        ("pubsub_messages_delivered", pubsub.delivered.to_string()),
    ];
    lines.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One `# Name` section: its lines, `field:value`, in order.
struct Section {
    name: String,
    lines: Vec<(String, String)>,
}

/// Splits an `INFO` text into sections.
fn sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("# ") {
            out.push(Section {
                name: name.to_string(),
                lines: Vec::new(),
            });
        } else if let (Some((field, value)), Some(section)) = (line.split_once(':'), out.last_mut())
        {
            section.lines.push((field.to_string(), value.to_string()));
        }
    }
    out
}

/// How the masters' values of one field combine.
fn combine(field: &str, values: &[&str]) -> String {
    if let Some(ints) = values
        .iter()
        .map(|v| v.parse::<i64>().ok())
        .collect::<Option<Vec<_>>>()
    {
        // 0/1 states (`loading`, `rdb_bgsave_in_progress`, ...), durations,
        // offsets and ids do not add up: the largest stands for them all.
        let largest = [
            "loading",
            "_in_progress",
            "_enabled",
            "_scheduled",
            "_active",
            "_sec",
            "_seconds",
            "_ms",
            "_usec",
            "_offset",
            "_id",
            "_port",
            "_pid",
            "_hz",
            "_bits",
        ]
        .iter()
        .any(|s| field.ends_with(s));
        let oldest = field.ends_with("_time") || field.ends_with("_timestamp");
        let n = if oldest {
            ints.iter().copied().filter(|n| *n >= 0).min().unwrap_or(-1)
        } else if largest {
            ints.iter().copied().max().unwrap_or(0)
        } else {
            ints.iter().sum()
        };
        return n.to_string();
    }
    if let Some(floats) = values
        .iter()
        .map(|v| v.parse::<f64>().ok())
        .collect::<Option<Vec<_>>>()
    {
        let additive = field.starts_with("used_cpu_");
        let x = if additive {
            floats.iter().sum()
        } else {
            floats.iter().copied().fold(f64::MIN, f64::max)
        };
        return format!("{x:.2}");
    }
    if values.iter().any(|v| v.contains('=')) {
        return combine_pairs(values);
    }
    let first = values.first().copied().unwrap_or_default();
    let odd = values.iter().find(|v| **v != first && first == "ok");
    odd.unwrap_or(&first).to_string()
}

/// `a=1,b=2` values (keyspace, command and error stats): each number
/// combined as a field of its own, except the averages, recomputed.
fn combine_pairs(values: &[&str]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut per_key: Vec<Vec<&str>> = Vec::new();
    for value in values {
        for pair in value.split(',') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match order.iter().position(|o| *o == k) {
                Some(i) => per_key[i].push(v),
                None => {
                    order.push(k);
                    per_key.push(vec![v]);
                }
            }
        }
    }
    let total = |key: &str| -> f64 {
        order
            .iter()
            .position(|o| *o == key)
            .map(|i| {
                per_key[i]
                    .iter()
                    .filter_map(|v| v.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0)
    };
    let mut out = String::new();
    for (k, vs) in order.iter().zip(&per_key) {
        let merged = match *k {
            // Weighted by the keys that have a TTL.
            "avg_ttl" => {
                let expires: Vec<f64> = pairs_of(values, "expires");
                let ttls: Vec<f64> = vs.iter().filter_map(|v| v.parse().ok()).collect();
                let weight: f64 = expires.iter().sum();
                let sum: f64 = ttls.iter().zip(&expires).map(|(t, e)| t * e).sum();
                let avg = if weight > 0.0 { sum / weight } else { 0.0 };
                (avg.round() as i64).to_string()
            }
            "usec_per_call" => {
                let calls = total("calls");
                let per = if calls > 0.0 {
                    total("usec") / calls
                } else {
                    0.0
                };
                format!("{per:.2}")
            }
            _ => combine(k, vs),
        };
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{k}={merged}");
    }
    out
}

/// The numbers under `key` in each `a=1,b=2` value (0 where missing).
fn pairs_of(values: &[&str], key: &str) -> Vec<f64> {
    values
        .iter()
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == key)
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(0.0)
        })
        .collect()
}

/// Redis's `bytesToHuman`.
fn human(n: i64) -> String {
    let n = n.max(0) as f64;
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024.0 {
        return format!("{}B", n as i64);
    }
    let mut d = n;
    for unit in UNITS {
        d /= 1024.0;
        if d < 1024.0 {
            return format!("{d:.2}{unit}");
        }
    }
    format!("{}B", n as i64)
}

/// Merges one section as every master reported it.
fn merge_section(name: &str, parts: &[&Section]) -> Vec<(String, String)> {
    let mut fields: Vec<&str> = Vec::new();
    for part in parts {
        for (field, _) in &part.lines {
            if !fields.contains(&field.as_str()) {
                fields.push(field);
            }
        }
    }
    let replication = name == "Replication";
    let mut replicas = Vec::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for field in fields {
        let values: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.lines.iter().find(|(f, _)| f == field))
            .map(|(_, v)| v.as_str())
            .collect();
        if replication && field.starts_with("slave") && field[5..].parse::<u32>().is_ok() {
            replicas.extend(values.iter().map(|v| v.to_string()));
            continue;
        }
        out.push((field.to_string(), combine(field, &values)));
    }
    // `x_human` says `x` in bytes.
    for i in 0..out.len() {
        if let Some(base) = out[i].0.strip_suffix("_human") {
            let bytes = out
                .iter()
                .find(|(f, _)| f == base)
                .and_then(|(_, v)| v.parse().ok());
            if let Some(bytes) = bytes {
                out[i].1 = human(bytes);
            }
        }
    }
    if replication {
        let at = out
            .iter()
            .position(|(f, _)| f == "connected_slaves")
            .map_or(out.len(), |i| i + 1);
        let listed = replicas.into_iter().enumerate();
        out.splice(at..at, listed.map(|(i, r)| (format!("slave{i}"), r)));
    }
    out
}

/// keyway's own lines for a section it describes itself; `None` for the
/// masters' sections.
fn own_section(name: &str, own: &Own) -> Option<Vec<(String, String)>> {
    let pairs = |v: &[(&str, String)]| v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Some(match name {
        "Server" => pairs(&[
            ("redis_version", own.redis_version.clone()),
            ("redis_mode", "standalone".into()),
            ("keyway_version", env!("CARGO_PKG_VERSION").into()),
            ("arch_bits", (usize::BITS).to_string()),
            ("process_id", std::process::id().to_string()),
            ("tcp_port", own.tcp_port.to_string()),
            ("uptime_in_seconds", own.uptime.to_string()),
            ("uptime_in_days", (own.uptime / 86_400).to_string()),
        ]),
        "Clients" => pairs(&[
            ("connected_clients", own.connected_clients.to_string()),
            ("maxclients", own.max_clients.to_string()),
            ("blocked_clients", own.blocked_clients.to_string()),
            ("tracking_clients", "0".into()),
        ]),
        "Cluster" => pairs(&[("cluster_enabled", "0".into())]),
        _ => return None,
    })
}

/// Builds the client's `INFO` text from the masters' texts.
pub fn merge(texts: &[String], own: &Own) -> String {
    let parsed: Vec<Vec<Section>> = texts.iter().map(|t| sections(t)).collect();
    let Some(first) = parsed.first() else {
        return String::new();
    };
    let mut names: Vec<&str> = first.iter().map(|s| s.name.as_str()).collect();
    for other in &parsed[1..] {
        for s in other {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    let mut out = String::new();
    for name in names {
        let parts: Vec<&Section> = parsed
            .iter()
            .filter_map(|p| p.iter().find(|s| s.name == name))
            .collect();
        let mut lines = own_section(name, own).unwrap_or_else(|| merge_section(name, &parts));
        if name == "Stats" {
            for (field, value) in [
                ("total_connections_received", own.connections_received),
                ("rejected_connections", own.rejected_connections),
            ] {
                if let Some(line) = lines.iter_mut().find(|(f, _)| f == field) {
                    line.1 = value.to_string();
                }
            }
            let (master, replica) = own.reads_served;
            lines.extend([
                ("reads_served_by_master".to_string(), master.to_string()),
                ("reads_served_by_replica".to_string(), replica.to_string()),
                (
                    "replicas_lagging".to_string(),
                    own.replicas_lagging.to_string(),
                ),
            ]);
        }
        section(&mut out, name, lines);
    }
    if let Some(lines) = &own.keyway {
        section(&mut out, "Keyway", lines.clone());
    }
    out
}

/// Appends one `# Name` section.
fn section(out: &mut String, name: &str, lines: Vec<(String, String)>) {
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    let _ = write!(out, "# {name}\r\n");
    for (field, value) in lines {
        let _ = write!(out, "{field}:{value}\r\n");
    }
}

/// Appends the client's `INFO` reply, in `proto`, from the masters'
/// replies (the first failure among them is the reply instead).
pub fn reply(
    parts: impl Iterator<Item = Result<Bytes, BackendError>>,
    proto: Protocol,
    own: &Own,
    out: &mut BytesMut,
) {
    let Some(values) = values(parts, proto, out) else {
        return;
    };
    let texts: Option<Vec<String>> = values
        .iter()
        .map(|v| {
            v.as_bytes()
                .map(|t| String::from_utf8_lossy(t).into_owned())
        })
        .collect();
    match texts {
        Some(texts) => encode::verbatim(out, proto, merge(&texts, own).as_bytes()),
        None => encode::error(out, b"ERR keyway could not merge a node's INFO reply"),
    }
}

#[cfg(test)]
#[path = "info_tests.rs"]
mod tests;
