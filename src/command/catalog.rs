//! The README's list of commands per route class, rendered from the table,
//! so the documentation cannot drift from what keyway does.
//!
//! What each class does is hand-written here, beside `row`; which
//! commands belong to it comes from the table. A unit test compares the
//! rendering with README.md's section between [`BEGIN`] and [`END`], and
//! rewrites that section when run with `KEYWAY_BLESS=1`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::class::{Diagnostic, Merge, Reason, RouteClass, SplitJoin};
use super::table::CommandTable;

/// The line that opens the generated section in README.md.
pub const BEGIN: &str =
    "<!-- commands: generated from src/command/catalog.rs and the command table; \
     regenerate with `KEYWAY_BLESS=1 cargo test --lib readme` -->";

/// The line that closes the generated section in README.md.
pub const END: &str = "<!-- end of commands -->";

/// One row of the section: its place, its title and what keyway does.
struct Row {
    order: u8,
    title: &'static str,
    about: String,
}

/// The row a class belongs to. Exhaustive on purpose: a new class (or
/// reason) does not compile until it is documented here.
fn row(class: RouteClass) -> Row {
    let (order, title, about): (u8, &str, &str) = match class {
        RouteClass::Keyed => (
            0,
            "single slot",
            "sent to the master of the keys' slot; keys in several slots → `-CROSSSLOT` \
             (use a `{hash tag}`). `EVAL`/`EVALSHA`/`FCALL` (and `_RO`) with no key go to \
             any master, and so does a request whose key count or `STREAMS` list a node \
             refuses (its error is the reply); `XREAD`/`XREADGROUP` with `BLOCK` go the \
             blocking way",
        ),
        RouteClass::Split(_) => (
            1,
            "split per slot",
            "keys in one slot: as any single-slot command. Across slots: one request per \
             slot (keys in the client's order; duplicates stay, so `EXISTS k k` is 2), sent \
             in parallel to each slot's master and joined as noted. The first error in key \
             order is the reply; a failed `MSET` says which slot failed and which keys may \
             have been written. Not atomic across slots",
        ),
        RouteClass::KeyedBlocking => (
            2,
            "blocking",
            "to the master of the keys' slot on a dedicated connection (at most \
             `backend.max_blocking_connections` per worker), closed at once if the client \
             leaves",
        ),
        RouteClass::AnyNode => (3, "any master", "keyless; sent to any master"),
        RouteClass::FanOut(_) => (
            4,
            "every master",
            "sent to every master, the replies merged as noted",
        ),
        RouteClass::AllNodes => (
            5,
            "every node",
            "sent to every node of the cluster, masters and replicas (but not those the \
             cluster marks failed): the masters in the order of their lowest slot, then the \
             others by address. `+OK` when every node answered `+OK`; otherwise the first \
             error in that order, the node's own text with its node appended \
             (`-ERR Unknown option ... (node host:port)`), or keyway's error for a node it \
             cannot reach. Not atomic: the nodes that answered `+OK` did it",
        ),
        RouteClass::Scan => (
            6,
            "`SCAN`",
            "the masters one after the other (in the order of their lowest slot); keyway's \
             cursor holds the master, its own cursor and a fingerprint of the slot map. While \
             the map holds still, a full iteration returns every key that existed throughout; \
             if it changed (resharding, failover, a new master), the iteration starts over \
             from the first master, so keys may come twice but none is missed. keyway sees a \
             change at its next refresh (`cluster.refresh_interval_s`, or a `MOVED`)",
        ),
        RouteClass::Info => (
            7,
            "`INFO`",
            "asked of every master; `Server`, `Clients` and `Cluster` describe keyway \
             (`redis_version` of the cluster, `redis_mode:standalone`, `cluster_enabled:0` \
             so clients stay in plain mode, keyway's port, pid, uptime, clients), `Stats` has \
             keyway's connection and read counters; `Keyway` (asked by name, and in `INFO`, \
             `default`, `all`, `everything`) has keyway's headline figures: readiness, slot \
             map, failovers seen, commands processed, errors by kind, the 50th and 99th \
             percentile bucket of their time through keyway, backend connections, pub/sub; \
             the other sections are the masters' together: numbers summed (`used_memory`, \
             `keys`/`expires` per db, hits, `Commandstats` calls and time, with `usec_per_call` \
             recomputed, ...) with `_human` forms recomputed, states, durations and offsets \
             their largest (`Latencystats` percentiles: the slowest master's), timestamps \
             their oldest, every master's replicas listed",
        ),
        RouteClass::Diagnostics(_) => (
            8,
            "diagnostics",
            "asked of every master, each part naming its node (`host:port`) as noted. \
             `FUNCTION STATS` and the `KILL`s go on dedicated connections, so they reach a \
             master busy with a script; a `KILL` answers `+OK` if a master killed one, else \
             `-UNKILLABLE`, else the masters' other error, else `-NOTBUSY`",
        ),
        RouteClass::WaitReplicas => (
            9,
            "replication",
            "to every master the client wrote to (all masters if none yet), each on a \
             dedicated connection after a `PING` (so the node waits for everything it \
             replicated up to then, the client's writes included), once the client's earlier \
             requests are answered; the smallest count is the reply",
        ),
        RouteClass::Channel => (
            10,
            "channel",
            "to the master of the channel's slot (the cluster broadcasts it; one node per \
             channel keeps messages in order); the count of receivers it answers counts \
             keyway's subscribed clients, as one redis-server counts its own (see Pub/sub)",
        ),
        RouteClass::Subscription => (
            11,
            "subscriptions",
            "served by the worker's pub/sub hub (see below)",
        ),
        RouteClass::Transaction => (12, "transactions", "see below"),
        RouteClass::Local => (
            13,
            "local",
            "answered by keyway, in the client's protocol. `COMMAND` and its `INFO`, \
             `DOCS`, `LIST`, `GETKEYS`, `HELP`, and `CLIENT HELP` go to any master; \
             `CLIENT TRACKING ON` is refused, naming the options; `CLIENT REPLY OFF|SKIP` \
             drops the replies it says, as redis-server (pub/sub messages still go out). \
             `AUTH`, `HELLO` and `ACL` \
             are about keyway's own users (see Authentication); `ACL HELP` goes to any master",
        ),
        RouteClass::Unsupported(reason) => {
            let (order, title) = match reason {
                Reason::ClusterWide => (14, "not yet: every master"),
                Reason::Blocking => (15, "not yet: keyless blocking"),
                Reason::PubSub => (16, "refused: pub/sub"),
                Reason::NodeAdmin => (17, "never: one node's administration"),
                Reason::ConnectionState => (18, "never: connection state"),
            };
            let about = format!("`-ERR '<command>' {}`", reason.message());
            return Row {
                order,
                title,
                about,
            };
        }
    };
    Row {
        order,
        title,
        about: about.to_string(),
    }
}

/// How a command's replies combine, shown beside its name.
fn note(class: RouteClass) -> Option<&'static str> {
    Some(match class {
        RouteClass::FanOut(merge) => match merge {
            Merge::Union => "union",
            Merge::Concat => "every master's, as each sent them",
            Merge::Sum => "summed",
            Merge::SumPerName => "summed per name",
            Merge::Min => "the smallest",
            Merge::AllOf => "1 where every master says 1",
            Merge::AnyNonNil => "a random non-nil reply",
            Merge::Same => "the same reply from every master",
            Merge::MemoryStats => "bytes and counts summed, ratios recomputed from the sums",
        },
        RouteClass::Diagnostics(kind) => match kind {
            Diagnostic::Slowlog => {
                "entries newest first, at most `count` (10; negative: all), node appended; \
                 keyway's own slow requests among them, node `keyway`"
            }
            Diagnostic::SlowlogLen => "the masters' and keyway's own summed",
            Diagnostic::SlowlogReset => "every master's and keyway's own cleared",
            Diagnostic::LatencyLatest => {
                "every master's entries, node appended, the largest spike first per event"
            }
            Diagnostic::LatencyHistory => "samples by timestamp, node appended",
            Diagnostic::NodeTexts => "every master's text after a line `# node host:port`",
            Diagnostic::LatencyHistogram => "calls and buckets summed per command",
            Diagnostic::FunctionStats => "the running script a master reports, the engines",
            Diagnostic::Kill => "`+OK` if a master killed one",
        },
        RouteClass::Split(join) => match join {
            SplitJoin::Values => "values in key order",
            SplitJoin::AllOk => "`+OK` from every part",
            SplitJoin::Sum => "summed",
        },
        _ => return None,
    })
}

/// The section, markers included: one item per route class with what
/// keyway does and every command of that class in `table` (subcommands as
/// `CLIENT LIST`, containers through their subcommands).
pub fn markdown(table: &CommandTable) -> String {
    let mut rows: BTreeMap<u8, (Row, Vec<String>)> = BTreeMap::new();
    let mut leaves: Vec<_> = table
        .iter()
        .flat_map(|cmd| {
            let subs: Vec<_> = cmd.subcommands().collect();
            if subs.is_empty() {
                vec![cmd]
            } else {
                subs
            }
        })
        .collect();
    leaves.sort_by_key(|spec| spec.name());
    for spec in leaves {
        let row = row(spec.class());
        let mut name = format!("`{}`", spec.name().replace('|', " ").to_uppercase());
        if let Some(note) = note(spec.class()) {
            write!(name, " ({note})").expect("writing to a String");
        }
        rows.entry(row.order)
            .or_insert_with(|| (row, Vec::new()))
            .1
            .push(name);
    }
    let mut out = format!("{BEGIN}\n");
    for (row, names) in rows.into_values() {
        writeln!(
            out,
            "- **{}** ({}): {}.\n  {}",
            row.title,
            names.len(),
            row.about,
            names.join(", ")
        )
        .expect("writing to a String");
    }
    out.push_str(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's section must be the rendering of the builtin table;
    /// `KEYWAY_BLESS=1` rewrites it instead.
    #[test]
    fn readme_lists_the_commands_of_each_class() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let start = readme
            .find(BEGIN)
            .expect("README.md lacks the BEGIN marker");
        let end = readme[start..]
            .find(END)
            .expect("README.md lacks the END marker")
            + start;
        let current = &readme[start..end + END.len()];
        let rendered = markdown(&CommandTable::builtin());
        if std::env::var_os("KEYWAY_BLESS").is_some() {
            let updated = format!(
                "{}{rendered}{}",
                &readme[..start],
                &readme[end + END.len()..]
            );
            std::fs::write(path, updated).expect("rewriting README.md");
            return;
        }
        assert!(
            current == rendered,
            "README.md's command list is out of date with the command table; \
             regenerate it with `KEYWAY_BLESS=1 cargo test --lib readme`"
        );
    }

    #[test]
    fn every_class_is_listed_with_its_commands() {
        let text = markdown(&CommandTable::builtin());
        for expected in [
            "`GET`",
            "`MGET` (values in key order)",
            "`DBSIZE` (summed)",
            "`CLIENT LIST`",
            "`CONFIG SET`",
            "`BLPOP`",
            "`SHUTDOWN`",
            Reason::NodeAdmin.message(),
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        // Containers appear through their subcommands only.
        assert!(!text.contains("`CLIENT`,") && !text.contains("`OBJECT`,"));
    }
}
