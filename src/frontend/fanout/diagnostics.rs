//! Per-node diagnostics merged from every master, each part naming the
//! node it came from (its `host:port`, as keyway reaches it):
//!
//! - `SLOWLOG GET [count]`: the entries newest first (timestamp, then id),
//!   at most `count` (10 by default, all when negative), each as its node
//!   sent it with the node appended as one more element, keyway's own slow
//!   requests ([`crate::stats::slowlog`]) among them with node `keyway`;
//!   `SLOWLOG LEN` sums the masters' and keyway's lengths; `SLOWLOG RESET`
//!   clears keyway's and answers `+OK` when every master did;
//! - `LATENCY LATEST`: every master's entries, the node appended to each,
//!   by event name and, per event, the largest spike first;
//! - `LATENCY HISTORY event`: every master's `[timestamp, latency]`
//!   samples, the node appended, oldest first;
//! - `LATENCY DOCTOR`, `LATENCY GRAPH event`: every master's text after a
//!   line `# node host:port` (a node's error, such as GRAPH's "no samples",
//!   stands in for its text), verbatim when the nodes sent verbatim;
//! - `LATENCY HISTOGRAM [command ...]`: per command, `calls` summed and
//!   the `histogram_usec` buckets summed. A node's buckets count calls up
//!   to each bound (cumulative) and every node uses the same bounds, so the
//!   cluster's count at a bound is the sum of each node's count at or
//!   below it;
//! - `FUNCTION STATS`: `running_script` as the master running one reports
//!   it (nil when none does), `engines` as the first master reports them;
//! - `SCRIPT KILL`, `FUNCTION KILL`: `+OK` when a master killed a script;
//!   otherwise `-UNKILLABLE`, then any other error (a node that failed, or
//!   `-BUSY` for the wrong KILL), then `-NOTBUSY`.
//!
//! Otherwise the first error among the parts is the reply.

use bytes::{Bytes, BytesMut};

use crate::command::Diagnostic;
use crate::protocol::{encode, Protocol, Request, Value};
use crate::stats::commands::CommandNames;
use crate::worker::Shared;

/// The node keyway's own slow log entries name.
const KEYWAY: &str = "keyway";

/// `SLOWLOG GET`'s count when the request names none (as Redis).
const SLOWLOG_DEFAULT: usize = 10;

/// What to merge, and how many `SLOWLOG GET` entries to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    what: Diagnostic,
    /// At most this many entries (`SLOWLOG GET`); `None`: all.
    limit: Option<usize>,
    /// keyway's own slow log entries (`SLOWLOG GET`), newest first.
    keyway: Vec<Value>,
    /// keyway's own slow log length (`SLOWLOG LEN`).
    keyway_len: usize,
}

impl Report {
    /// The merge for `request`, a `what` command.
    pub fn new(what: Diagnostic, request: &Request) -> Report {
        let limit = match (what, request.argc()) {
            (Diagnostic::Slowlog, 2) => Some(SLOWLOG_DEFAULT),
            // Negative: all. Not a number: every node refuses it anyway.
            (Diagnostic::Slowlog, _) => std::str::from_utf8(request.arg(2))
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        Report {
            what,
            limit,
            keyway: Vec::new(),
            keyway_len: 0,
        }
    }

    /// Takes keyway's own part as the request is sent: its slow log's
    /// entries or length; `SLOWLOG RESET` clears it.
    pub fn take_keyways_part(&mut self, shared: &Shared) {
        let log = &shared.slowlog;
        match self.what {
            Diagnostic::Slowlog => {
                let names = CommandNames::of(&shared.view.commands().load());
                let bulk = |s: &str| Value::Bulk(Bytes::copy_from_slice(s.as_bytes()));
                self.keyway = log
                    .newest(self.limit)
                    .iter()
                    .map(|e| {
                        Value::Array(vec![
                            Value::Int(e.id as i64),
                            Value::Int(e.unix_s),
                            Value::Int(e.took_us as i64),
                            Value::Array(vec![bulk(names.name(e.command))]),
                            bulk(&e.client.to_string()),
                            bulk(&e.name),
                        ])
                    })
                    .collect();
            }
            Diagnostic::SlowlogLen => self.keyway_len = log.len(),
            Diagnostic::SlowlogReset => log.reset(),
            _ => {}
        }
    }

    /// Whether each master is asked on a dedicated connection.
    pub fn dedicated(&self) -> bool {
        self.what.dedicated()
    }
}

/// Merges the masters' replies, each with its node, into `out`, in `proto`.
pub fn reply<'a>(
    report: &Report,
    parts: impl Iterator<Item = (&'a str, Value)>,
    proto: Protocol,
    out: &mut BytesMut,
) {
    let parts: Vec<(&str, Value)> = parts.collect();
    let error = parts.iter().map(|(_, v)| v).find(|v| v.is_error());
    match (report.what, error) {
        (Diagnostic::Kill, _) => kill(&parts, proto, out),
        (Diagnostic::NodeTexts, _) => texts(&parts, proto, out),
        (_, Some(error)) => error.encode(out, proto),
        (Diagnostic::Slowlog, None) => {
            let mut entries = entries(&parts);
            let own = report.keyway.iter();
            entries.extend(own.map(|e| (KEYWAY, e.as_array().unwrap_or_default())));
            // Newest first: by timestamp, then by id (a node's own order).
            let key = |entry: &[Value]| {
                let int = |i: usize| entry.get(i).and_then(Value::as_int).unwrap_or(0);
                (int(1), int(0))
            };
            entries.sort_by_key(|(_, entry)| std::cmp::Reverse(key(entry)));
            entries.truncate(report.limit.unwrap_or(usize::MAX));
            tagged(&entries, proto, out);
        }
        (Diagnostic::SlowlogLen, None) => {
            let masters: i64 = parts.iter().filter_map(|(_, v)| v.as_int()).sum();
            encode::integer(out, masters + report.keyway_len as i64);
        }
        (Diagnostic::SlowlogReset, None) => encode::simple(out, b"OK"),
        (Diagnostic::LatencyLatest, None) => {
            // Per event, the worst spike first: a reader that keeps one
            // entry per event name (redis_exporter does) keeps the worst.
            let mut latest = entries(&parts);
            let key = |entry: &[Value]| {
                let event = entry.first().and_then(Value::as_bytes).unwrap_or_default();
                let max = entry.get(3).and_then(Value::as_int).unwrap_or(0);
                (event.to_vec(), std::cmp::Reverse(max))
            };
            latest.sort_by_cached_key(|(_, entry)| key(entry));
            tagged(&latest, proto, out)
        }
        (Diagnostic::LatencyHistory, None) => {
            let mut samples = entries(&parts);
            let time = |sample: &[Value]| sample.first().and_then(Value::as_int).unwrap_or(0);
            samples.sort_by_key(|(_, sample)| time(sample));
            tagged(&samples, proto, out);
        }
        (Diagnostic::LatencyHistogram, None) => histograms(&parts, proto, out),
        (Diagnostic::FunctionStats, None) => function_stats(&parts, proto, out),
    }
}

/// Every element of every node's array reply, with its node.
fn entries<'v>(parts: &'v [(&'v str, Value)]) -> Vec<(&'v str, &'v [Value])> {
    parts
        .iter()
        .flat_map(|(node, reply)| {
            let items = reply.as_array().unwrap_or_default();
            items
                .iter()
                .map(move |entry| (*node, entry.as_array().unwrap_or_default()))
        })
        .collect()
}

/// An array of `entries`, each with its node appended.
fn tagged(entries: &[(&str, &[Value])], proto: Protocol, out: &mut BytesMut) {
    encode::array_header(out, entries.len());
    for (node, entry) in entries {
        encode::array_header(out, entry.len() + 1);
        entry.iter().for_each(|v| v.encode(out, proto));
        encode::bulk(out, node.as_bytes());
    }
}

/// `LATENCY DOCTOR` / `GRAPH`: each node's text after a line naming it.
fn texts(parts: &[(&str, Value)], proto: Protocol, out: &mut BytesMut) {
    if let Some((_, error)) = parts
        .first()
        .filter(|_| parts.iter().all(|(_, v)| v.is_error()))
    {
        return error.encode(out, proto);
    }
    let mut text = Vec::new();
    let mut verbatim = false;
    for (node, reply) in parts {
        text.extend_from_slice(format!("# node {node}\n").as_bytes());
        let body = match reply {
            Value::Error(e) => e,
            Value::Verbatim(t) => {
                verbatim = true;
                t
            }
            other => other.as_bytes().unwrap_or_default(),
        };
        text.extend_from_slice(body);
        if !body.ends_with(b"\n") {
            text.push(b'\n');
        }
    }
    match verbatim {
        true => encode::verbatim(out, proto, &text),
        false => encode::bulk(out, &text),
    }
}

/// `SCRIPT KILL` / `FUNCTION KILL`: see the module docs for the order.
fn kill(parts: &[(&str, Value)], proto: Protocol, out: &mut BytesMut) {
    let rank = |reply: &Value| match reply {
        Value::Error(e) if e.starts_with(b"UNKILLABLE") => 1,
        Value::Error(e) if e.starts_with(b"NOTBUSY") => 3,
        Value::Error(_) => 2,
        _ => 0, // +OK: this master killed it.
    };
    match parts.iter().map(|(_, v)| v).min_by_key(|v| rank(v)) {
        Some(reply) => reply.encode(out, proto),
        None => encode::error(out, b"ERR no master answered"),
    }
}

/// `LATENCY HISTOGRAM`: see the module docs.
fn histograms(parts: &[(&str, Value)], proto: Protocol, out: &mut BytesMut) {
    /// One command: calls summed, and each node's `(bound, count up to it)`.
    struct Command<'v> {
        name: &'v [u8],
        calls: i64,
        nodes: Vec<Vec<(i64, i64)>>,
    }
    let mut commands: Vec<Command> = Vec::new();
    for (_, reply) in parts {
        for (name, detail) in reply.pairs() {
            let Some(name) = name.as_bytes() else {
                continue;
            };
            let i = match commands.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    commands.push(Command {
                        name,
                        calls: 0,
                        nodes: Vec::new(),
                    });
                    commands.len() - 1
                }
            };
            let command = &mut commands[i];
            command.calls += detail.map_get("calls").and_then(Value::as_int).unwrap_or(0);
            let buckets = detail.map_get("histogram_usec").map(Value::pairs);
            command.nodes.push(
                buckets
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(bound, n)| Some((bound.as_int()?, n.as_int()?)))
                    .collect(),
            );
        }
    }
    encode::map_header(out, proto, commands.len());
    for command in &commands {
        let mut bounds: Vec<i64> = command.nodes.iter().flatten().map(|(b, _)| *b).collect();
        bounds.sort_unstable();
        bounds.dedup();
        encode::bulk(out, command.name);
        encode::map_header(out, proto, 2);
        encode::bulk(out, b"calls");
        encode::integer(out, command.calls);
        encode::bulk(out, b"histogram_usec");
        encode::map_header(out, proto, bounds.len());
        for bound in bounds {
            // Each node's count up to `bound`: at its last bound not above it.
            let count: i64 = command
                .nodes
                .iter()
                .filter_map(|buckets| buckets.iter().rev().find(|(b, _)| *b <= bound))
                .map(|(_, n)| n)
                .sum();
            encode::integer(out, bound);
            encode::integer(out, count);
        }
    }
}

/// `FUNCTION STATS`: see the module docs.
fn function_stats(parts: &[(&str, Value)], proto: Protocol, out: &mut BytesMut) {
    let running = parts
        .iter()
        .filter_map(|(_, stats)| stats.map_get("running_script"))
        .find(|script| **script != Value::Nil);
    let engines = parts
        .first()
        .and_then(|(_, stats)| stats.map_get("engines"));
    encode::map_header(out, proto, 2);
    encode::bulk(out, b"running_script");
    match running {
        Some(script) => script.encode(out, proto),
        None => encode::null(out, proto),
    }
    encode::bulk(out, b"engines");
    match engines {
        Some(engines) => engines.encode(out, proto),
        None => encode::map_header(out, proto, 0),
    }
}

#[cfg(test)]
#[path = "diagnostics_tests.rs"]
mod tests;
