//! Route classes: what keyway does with each command.
//!
//! The class is derived from Redis's own metadata (flags, key specs, the
//! `request_policy` tip) by [`classify`], after a short list of explicit
//! overrides, each with the reason it exists. Commands added at start-up
//! from a backend's `COMMAND` reply (newer Redis, modules) go through the
//! same rules.

use super::flags::{CommandFlags, RequestPolicy, Tips};

/// How keyway handles a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// Routed by the slot of its keys (all keys must share one slot, which
    /// the caller checks). EVAL/FCALL with zero keys are still `Keyed`: with
    /// no key, the caller sends them to any master.
    Keyed,
    /// No keys; any master can answer (TIME, LOLWUT, PUBLISH which the
    /// cluster broadcasts, unknown subcommands of harmless containers).
    AnyNode,
    /// Blocks until data arrives or its timeout passes (BLPOP, BZPOPMIN,
    /// BLMOVE, ...; XREAD/XREADGROUP with BLOCK are `Keyed` and checked per
    /// call): routed by its keys like `Keyed`, on a dedicated connection.
    KeyedBlocking,
    /// Sent to the master of the slot its first argument (a channel) hashes
    /// to: PUBLISH. The cluster broadcasts it from any node, but messages
    /// published through different nodes can overtake each other on the
    /// way; through one node per channel they arrive in publish order.
    Channel,
    /// Sent to every master; their replies are merged as the [`Merge`] says
    /// (PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB).
    FanOut(Merge),
    /// Settings of each node (CONFIG SET, CONFIG RESETSTAT, CONFIG
    /// REWRITE): sent to every node of the cluster, masters and replicas;
    /// `+OK` when every node answered `+OK`, else the first error in the
    /// nodes' order, naming its node.
    AllNodes,
    /// Per-node diagnostics (SLOWLOG GET, LATENCY, FUNCTION STATS, SCRIPT
    /// and FUNCTION KILL): sent to every master, the replies merged as the
    /// [`Diagnostic`] says, naming the node each part came from.
    Diagnostics(Diagnostic),
    /// Routed like `Keyed` when all keys share one slot. Across slots, split
    /// into one request per slot (keys in the client's order, each with the
    /// arguments that follow it), sent in parallel and joined as the
    /// [`SplitJoin`] says: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH.
    Split(SplitJoin),
    /// Changes the client's subscriptions (SUBSCRIBE, PSUBSCRIBE,
    /// SSUBSCRIBE and their UNSUBSCRIBE): served by the worker's pub/sub
    /// hub. SSUBSCRIBE's channels must share one slot, like keys.
    Subscription,
    /// Answered by keyway itself (PING, ECHO, HELLO, AUTH, SELECT, COMMAND
    /// and its subcommands, CLIENT SETNAME/GETNAME/ID/INFO/LIST/KILL, CLUSTER
    /// KEYSLOT/INFO, READONLY/READWRITE).
    Local,
    /// WAIT: blocks until replicas acknowledge the client's writes; sent to
    /// the masters the client wrote to, each on a dedicated connection, and
    /// the smallest count is the answer.
    WaitReplicas,
    /// INFO: every master's sections merged, keyway's own about itself.
    Info,
    /// SCAN: the masters one after the other, keyway's cursor saying where.
    Scan,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH: the session's transaction
    /// state; WATCH is routed by its keys to a dedicated connection.
    Transaction,
    /// Refused, with a reason shown to the client.
    Unsupported(Reason),
}

/// How the masters' replies to a [`RouteClass::FanOut`] command combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Arrays of names: their sorted union, each name once.
    Union,
    /// Arrays of disjoint sets (`KEYS`: a key lives on one master): every
    /// master's elements as it sent them, one master after the other, under
    /// one header; never decoded, sorted or copied.
    Concat,
    /// Integers: their sum.
    Sum,
    /// `name, count` pairs (a map in RESP3): counts summed per name, names
    /// in the order of the first reply.
    SumPerName,
    /// Integers: the smallest (`LASTSAVE`: the oldest save).
    Min,
    /// Arrays of 0/1 (`SCRIPT EXISTS`): 1 where every master says 1.
    AllOf,
    /// One of the non-nil replies, picked at random (`RANDOMKEY`); nil when
    /// every master answered nil.
    AnyNonNil,
    /// The same reply from every master (`+OK`, a script's SHA1): that
    /// reply; different replies are an error.
    Same,
    /// `MEMORY STATS`: the masters' maps, bytes and counts summed, ratios
    /// recomputed from the sums.
    MemoryStats,
}

/// How the masters' replies to a [`RouteClass::Diagnostics`] command
/// combine (see `frontend::fanout::diagnostics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnostic {
    /// `SLOWLOG GET [count]`: entries newest first, at most `count`, each
    /// with its node's `host:port` appended (`keyway` for keyway's own).
    Slowlog,
    /// `SLOWLOG LEN`: the masters' lengths and keyway's, summed.
    SlowlogLen,
    /// `SLOWLOG RESET`: every master's and keyway's log cleared.
    SlowlogReset,
    /// `LATENCY LATEST`: every master's entries, each with its node appended,
    /// per event the largest spike first.
    LatencyLatest,
    /// `LATENCY HISTORY event`: every master's samples, each with its node
    /// appended, by timestamp.
    LatencyHistory,
    /// `LATENCY DOCTOR`, `LATENCY GRAPH`, `MEMORY DOCTOR`, `MEMORY
    /// MALLOC-STATS`: every master's text, each after a line naming its node.
    NodeTexts,
    /// `LATENCY HISTOGRAM`: calls and histogram buckets summed per command.
    LatencyHistogram,
    /// `FUNCTION STATS`: the script a master reports running, the first
    /// master's engines. On dedicated connections, like `Kill`.
    FunctionStats,
    /// `SCRIPT KILL`, `FUNCTION KILL`: on dedicated connections (a master
    /// running a script reads nothing more from the connection it came on);
    /// `+OK` when a master killed one.
    Kill,
}

impl Diagnostic {
    /// Whether each master is asked on a dedicated connection: the shared
    /// one may be stuck behind the very script the command is about.
    pub fn dedicated(self) -> bool {
        matches!(self, Diagnostic::FunctionStats | Diagnostic::Kill)
    }
}

/// How the per-slot parts of a [`RouteClass::Split`] command combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitJoin {
    /// One value per key (MGET): every part's values, back in the client's
    /// key order.
    Values,
    /// `+OK` from every part (MSET, Redis's `all_succeeded`); otherwise an
    /// error naming the keys that may have been written.
    AllOk,
    /// Integers: their sum (DEL, UNLINK, EXISTS, TOUCH; Redis's `agg_sum`).
    Sum,
}

/// Why keyway refuses a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Needs a fan-out to every master and a merge keyway does not have:
    /// whatever a newer Redis adds to SCRIPT, FUNCTION, LATENCY or SLOWLOG.
    ClusterWide,
    /// Blocking commands without keys (none in Redis 7.0; modules may
    /// have some).
    Blocking,
    /// Pub/sub commands keyway has no rule for (e.g. from a module).
    PubSub,
    /// Acts on the one node it reaches (CLUSTER *, DEBUG, SHUTDOWN,
    /// REPLICAOF, SAVE, MONITOR, ... and everything flagged `admin`).
    NodeAdmin,
    /// Changes or reads the state of the backend connection, which keyway
    /// shares between clients (ASKING, SCRIPT DEBUG, CLIENT subcommands
    /// keyway does not answer itself).
    ConnectionState,
}

impl Reason {
    /// The text after `ERR '<command>' ` in the error reply; says what to do.
    pub fn message(self) -> &'static str {
        match self {
            Reason::ClusterWide => {
                "is not supported by keyway yet: it needs a fan-out to every master; \
                 send it to each master directly"
            }
            Reason::Blocking => {
                "is not supported by keyway yet: blocking commands need a dedicated connection; \
                 poll with the non-blocking variant instead"
            }
            Reason::PubSub => {
                "is not supported by keyway: it is a pub/sub command keyway has no rule for; \
                 send it to a cluster node directly"
            }
            Reason::NodeAdmin => {
                "cannot be proxied: it acts on one node of the cluster; \
                 send it to that node directly"
            }
            Reason::ConnectionState => {
                "cannot be proxied: it changes a backend connection that keyway shares \
                 between clients"
            }
        }
    }
}

use Reason::*;
use RouteClass::*;

/// Exact-name overrides, checked first. Keep this list short: every entry
/// is a command whose flags would classify it wrongly.
const OVERRIDES: &[(&str, RouteClass)] = &[
    // keyway owns the client connection: it answers these itself.
    ("ping", Local), // flags say fan-out (request_policy:all_shards)
    ("echo", Local),
    ("quit", Local),
    ("select", Local),
    ("hello", Local),
    ("auth", Local),
    ("reset", Local),
    ("readonly", Local),  // keyway's read policy, not the backend's
    ("readwrite", Local), // idem
    ("client|setname", Local),
    ("client|getname", Local),
    ("client|setinfo", Local), // Redis 7.2+
    ("client|id", Local),
    ("client|info", Local),
    ("client|list", Local), // admin-flagged, but keyway lists its own clients
    ("client|kill", Local), // idem: kills keyway's clients, never a node's
    ("client|no-evict", Local), // keyway never evicts clients
    ("client|no-touch", Local), // Redis 7.2+; OFF honoured, ON refused
    ("client|help", Local),
    ("client|reply", Local), // keyway drops the replies itself
    // Client-side caching: keyway answers for the client (tracking stays
    // off; TRACKING ON is refused with the options named).
    ("client|tracking", Local),
    ("client|caching", Local),
    ("client|getredir", Local),
    ("client|trackinginfo", Local),
    ("cluster|keyslot", Local), // pure function of the argument
    ("cluster|info", Local),    // keyway reports its own view of the cluster
    // Served by the worker's pub/sub hub.
    ("subscribe", Subscription),
    ("unsubscribe", Subscription),
    ("psubscribe", Subscription),
    ("punsubscribe", Subscription),
    ("ssubscribe", Subscription),
    ("sunsubscribe", Subscription),
    // Flagged pubsub, yet plain routable commands.
    ("publish", Channel), // broadcast by the cluster; one node per channel keeps order
    // Introspection: every master knows its own subscribers.
    ("pubsub|channels", FanOut(Merge::Union)),
    ("pubsub|shardchannels", FanOut(Merge::Union)),
    ("pubsub|numpat", FanOut(Merge::Sum)),
    ("pubsub|numsub", FanOut(Merge::SumPerName)),
    ("pubsub|shardnumsub", FanOut(Merge::SumPerName)),
    // The keyspace is the union of the masters' keyspaces.
    ("dbsize", FanOut(Merge::Sum)),
    ("keys", FanOut(Merge::Concat)),
    ("flushall", FanOut(Merge::Same)),
    ("flushdb", FanOut(Merge::Same)),
    // A script loaded through keyway is loaded on every master.
    ("script|load", FanOut(Merge::Same)),
    ("script|flush", FanOut(Merge::Same)),
    ("script|exists", FanOut(Merge::AllOf)), // loaded means loaded everywhere
    // Functions, like scripts, live on every master.
    ("function|load", FanOut(Merge::Same)),
    ("function|delete", FanOut(Merge::Same)),
    ("function|flush", FanOut(Merge::Same)),
    ("function|restore", FanOut(Merge::Same)),
    ("function|list", FanOut(Merge::Same)),
    ("function|dump", AnyNode), // every master holds the same libraries
    ("function|help", AnyNode),
    ("script|help", AnyNode),
    // Per-node diagnostics: every master's, merged, each part naming its node.
    ("function|stats", Diagnostics(Diagnostic::FunctionStats)),
    ("function|kill", Diagnostics(Diagnostic::Kill)),
    ("script|kill", Diagnostics(Diagnostic::Kill)),
    ("slowlog|get", Diagnostics(Diagnostic::Slowlog)),
    ("slowlog|len", Diagnostics(Diagnostic::SlowlogLen)),
    ("slowlog|reset", Diagnostics(Diagnostic::SlowlogReset)),
    ("slowlog|help", AnyNode),
    ("latency|latest", Diagnostics(Diagnostic::LatencyLatest)),
    ("latency|history", Diagnostics(Diagnostic::LatencyHistory)),
    ("latency|doctor", Diagnostics(Diagnostic::NodeTexts)),
    ("latency|graph", Diagnostics(Diagnostic::NodeTexts)),
    ("memory|doctor", Diagnostics(Diagnostic::NodeTexts)),
    ("memory|malloc-stats", Diagnostics(Diagnostic::NodeTexts)),
    ("memory|purge", FanOut(Merge::Same)),
    ("memory|stats", FanOut(Merge::MemoryStats)),
    // A subcommand no table knows, of a family refused as a whole below:
    // any master answers it with its own `unknown subcommand` error.
    ("script", AnyNode),
    ("function", AnyNode),
    ("latency", AnyNode),
    ("slowlog", AnyNode),
    // Turns the (shared) backend connection into a Lua debugging session.
    ("script|debug", Unsupported(ConnectionState)),
    (
        "latency|histogram",
        Diagnostics(Diagnostic::LatencyHistogram),
    ),
    ("latency|reset", FanOut(Merge::Sum)),
    ("latency|help", AnyNode),
    ("randomkey", FanOut(Merge::AnyNonNil)),
    ("lastsave", FanOut(Merge::Min)),
    // Reading settings changes nothing; every master is configured alike.
    ("config|get", AnyNode),
    // Settings change on every node, replicas included: a replica promoted
    // later must behave as its master did (flags say admin; CONFIG SET's
    // tip says all_nodes).
    ("config|set", AllNodes),
    ("config|resetstat", AllNodes),
    ("config|rewrite", AllNodes),
    ("spublish", Keyed), // routed by the slot of its shard channel
    // Redis tips these `request_policy:multi_shard`: each key (with its
    // value) stands alone, so across slots the command is split per slot and
    // the parts joined. MSETNX has the tip too, but is all-or-nothing across
    // its keys: it stays `Keyed` (CROSSSLOT across slots), as do the other
    // multi-key commands, whose keys act together.
    ("mget", Split(SplitJoin::Values)),
    ("mset", Split(SplitJoin::AllOk)), // response_policy:all_succeeded
    ("del", Split(SplitJoin::Sum)),    // response_policy:agg_sum, as the next three
    ("unlink", Split(SplitJoin::Sum)),
    ("exists", Split(SplitJoin::Sum)), // `EXISTS k k` counts k twice: duplicates stay in their part
    ("touch", Split(SplitJoin::Sum)),
    // Flagged blocking, but block only with a BLOCK option: the caller asks
    // CommandSpec::is_blocking_call.
    ("xread", Keyed),
    ("xreadgroup", Keyed),
    // No flag says "transaction"; WATCH even has key specs.
    ("multi", Transaction),
    ("exec", Transaction),
    ("discard", Transaction),
    ("watch", Transaction),
    ("unwatch", Transaction),
    // The masters' sections together, keyway's about the server.
    ("info", Info),
    ("scan", Scan), // a cursor over every master
    // Blocks, and counts replicas of the masters the client wrote to.
    ("wait", WaitReplicas),
    // Moves keys out of the node that holds them; where keys live is the
    // cluster's business (resharding), not a client's through a proxy.
    ("migrate", Unsupported(NodeAdmin)),
    // Would flag the shared backend connection for someone else's command.
    ("asking", Unsupported(ConnectionState)),
];

/// Whole families (a container and all its subcommands), after the exact
/// overrides: flags vary inside them, the right answer does not.
fn family_override(family: &str) -> Option<RouteClass> {
    Some(match family {
        "command" => Local, // keyway answers from this very table
        "acl" => Local,     // about keyway's own users, not the nodes'
        // Topology and node management: keyway hides the topology.
        "cluster" => Unsupported(NodeAdmin),
        // Admin-flagged but per-node diagnostics or per-node state that a
        // fan-out would apply or merge; same for scripts and functions,
        // which must be loaded on every master. The subcommands keyway
        // merges are exact overrides above; the rest are refused.
        "script" | "function" | "latency" | "slowlog" => Unsupported(ClusterWide),
        "pubsub" => AnyNode, // HELP; the rest are exact overrides above
        _ => return None,
    })
}

/// Classifies one command or subcommand (`name` lowercase, `a|b` for
/// subcommands). Rules, first match wins:
/// 1. exact overrides ([`OVERRIDES`]),
/// 2. family overrides (`family_override`),
/// 3. `pubsub` flag → PubSub,
/// 4. `admin` flag → NodeAdmin,
/// 5. remaining CLIENT subcommands → ConnectionState,
/// 6. `blocking` flag → KeyedBlocking (Unsupported without keys),
/// 7. a fan-out `request_policy` tip and no keys → ClusterWide,
/// 8. key specs → Keyed,
/// 9. otherwise AnyNode.
pub(crate) fn classify(name: &str, flags: CommandFlags, tips: Tips, has_keys: bool) -> RouteClass {
    if let Some((_, class)) = OVERRIDES.iter().find(|(n, _)| *n == name) {
        return *class;
    }
    let family = name.split_once('|').map_or(name, |(family, _)| family);
    if let Some(class) = family_override(family) {
        return class;
    }
    if flags.is_pubsub() {
        return Unsupported(PubSub);
    }
    if flags.is_admin() {
        return Unsupported(NodeAdmin);
    }
    if family == "client" {
        // REPLY, NO-EVICT, NO-TOUCH and whatever comes next: all act on
        // the (shared) backend connection.
        return Unsupported(ConnectionState);
    }
    if flags.is_blocking() {
        return if has_keys {
            KeyedBlocking
        } else {
            Unsupported(Blocking)
        };
    }
    let fan_out = matches!(
        tips.request,
        RequestPolicy::AllNodes | RequestPolicy::AllShards | RequestPolicy::Special
    );
    if fan_out && !has_keys {
        return Unsupported(ClusterWide);
    }
    if has_keys {
        Keyed
    } else {
        AnyNode
    }
}

#[cfg(test)]
#[path = "class_tests.rs"]
mod tests;
