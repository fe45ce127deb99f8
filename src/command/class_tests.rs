//! One test per route class, against the embedded Redis 7.0 table.

use super::super::CommandTable;
use super::{Reason, RouteClass};

fn class_of(table: &CommandTable, request: &str) -> RouteClass {
    let args: Vec<&str> = request.split(' ').collect();
    table.lookup(&args[..]).expect(request).class()
}

fn assert_all(requests: &[&str], expected: RouteClass) {
    let table = CommandTable::builtin();
    for request in requests {
        assert_eq!(class_of(&table, request), expected, "{request}");
    }
}

#[test]
fn keyed() {
    assert_all(
        &[
            "GET k",
            "SET k v",
            "MSETNX a 1",
            "EVAL s 0",
            "FCALL f 0",
            "SPUBLISH ch m",
            "XREAD STREAMS s 0",
            "XREADGROUP GROUP g c STREAMS s >",
            "OBJECT ENCODING k",
            "MEMORY USAGE k",
            "XINFO STREAM s",
            "SORT k",
            "XGROUP CREATE s g $",
        ],
        RouteClass::Keyed,
    );
}

#[test]
fn split_per_slot_as_redis_tips_say() {
    use super::super::{RequestPolicy, ResponsePolicy, SplitJoin};
    let table = CommandTable::builtin();
    for (request, join, response) in [
        ("MGET a b", SplitJoin::Values, ResponsePolicy::Default),
        (
            "MSET a 1 b 2",
            SplitJoin::AllOk,
            ResponsePolicy::AllSucceeded,
        ),
        ("DEL a b", SplitJoin::Sum, ResponsePolicy::AggSum),
        ("UNLINK a b", SplitJoin::Sum, ResponsePolicy::AggSum),
        ("EXISTS a b", SplitJoin::Sum, ResponsePolicy::AggSum),
        ("TOUCH a b", SplitJoin::Sum, ResponsePolicy::AggSum),
    ] {
        let args: Vec<&str> = request.split(' ').collect();
        let spec = table.lookup(&args[..]).expect(request);
        assert_eq!(spec.class(), RouteClass::Split(join), "{request}");
        assert_eq!(
            spec.request_policy(),
            RequestPolicy::MultiShard,
            "{request}"
        );
        assert_eq!(spec.response_policy(), response, "{request}");
    }
    // Also tipped multi_shard, but all-or-nothing: never split.
    let msetnx = table.lookup(&["MSETNX", "a", "1"][..]).unwrap();
    assert_eq!(msetnx.request_policy(), RequestPolicy::MultiShard);
    assert_eq!(msetnx.class(), RouteClass::Keyed);
}

#[test]
fn any_node() {
    assert_all(
        &["TIME", "LOLWUT", "OBJECT HELP", "OBJECT nosuch"],
        RouteClass::AnyNode,
    );
}

#[test]
fn publish_goes_by_channel() {
    assert_all(&["PUBLISH ch m"], RouteClass::Channel);
}

#[test]
fn local() {
    assert_all(
        &[
            "PING",
            "ECHO x",
            "QUIT",
            "SELECT 0",
            "HELLO 3",
            "AUTH p",
            "RESET",
            "COMMAND",
            "COMMAND COUNT",
            "COMMAND INFO get",
            "COMMAND DOCS",
            "COMMAND GETKEYS get k",
            "CLIENT SETNAME x",
            "CLIENT GETNAME",
            "CLIENT ID",
            "CLIENT INFO",
            "CLIENT LIST",
            "CLIENT KILL ID 1",
            "CLIENT NO-EVICT on",
            "CLIENT TRACKING on",
            "CLIENT CACHING yes",
            "CLIENT GETREDIR",
            "CLIENT TRACKINGINFO",
            "CLUSTER KEYSLOT k",
            "CLUSTER INFO",
            "READONLY",
            "READWRITE",
            // About keyway's own users.
            "ACL SETUSER u",
            "ACL WHOAMI",
            "ACL LOG",
            "ACL CAT",
        ],
        RouteClass::Local,
    );
}

#[test]
fn keyspace_and_scripts_fan_out() {
    use super::super::Merge;
    assert_all(&["DBSIZE"], RouteClass::FanOut(Merge::Sum));
    assert_all(&["KEYS *"], RouteClass::FanOut(Merge::Concat));
    assert_all(
        &["FLUSHALL", "FLUSHDB ASYNC", "SCRIPT LOAD s", "SCRIPT FLUSH"],
        RouteClass::FanOut(Merge::Same),
    );
}

#[test]
fn diagnostics_merge_every_master() {
    use super::super::{Diagnostic::*, Merge};
    let cases = [
        ("SLOWLOG GET 5", RouteClass::Diagnostics(Slowlog)),
        ("LATENCY LATEST", RouteClass::Diagnostics(LatencyLatest)),
        (
            "LATENCY HISTORY command",
            RouteClass::Diagnostics(LatencyHistory),
        ),
        ("LATENCY DOCTOR", RouteClass::Diagnostics(NodeTexts)),
        ("MEMORY DOCTOR", RouteClass::Diagnostics(NodeTexts)),
        ("MEMORY MALLOC-STATS", RouteClass::Diagnostics(NodeTexts)),
        ("LATENCY GRAPH command", RouteClass::Diagnostics(NodeTexts)),
        (
            "LATENCY HISTOGRAM get",
            RouteClass::Diagnostics(LatencyHistogram),
        ),
        ("FUNCTION STATS", RouteClass::Diagnostics(FunctionStats)),
        ("FUNCTION KILL", RouteClass::Diagnostics(Kill)),
        ("SCRIPT KILL", RouteClass::Diagnostics(Kill)),
        ("SLOWLOG LEN", RouteClass::Diagnostics(SlowlogLen)),
        ("LATENCY RESET", RouteClass::FanOut(Merge::Sum)),
        ("SLOWLOG RESET", RouteClass::Diagnostics(SlowlogReset)),
        ("SLOWLOG HELP", RouteClass::AnyNode),
        ("LATENCY HELP", RouteClass::AnyNode),
    ];
    for (command, class) in cases {
        assert_all(&[command], class);
    }
    assert!(FunctionStats.dedicated() && Kill.dedicated() && !Slowlog.dedicated());
}

#[test]
fn cluster_wide() {
    use super::super::Merge;
    assert_all(&["MEMORY STATS"], RouteClass::FanOut(Merge::MemoryStats));
    assert_all(
        &["SCRIPT DEBUG YES"],
        RouteClass::Unsupported(Reason::ConnectionState),
    );
}

#[test]
fn scripts_functions_and_the_keyspace_fan_out() {
    use super::super::Merge;
    assert_all(&["SCRIPT EXISTS a b"], RouteClass::FanOut(Merge::AllOf));
    assert_all(
        &[
            "FUNCTION LOAD x",
            "FUNCTION DELETE x",
            "FUNCTION FLUSH",
            "FUNCTION LIST",
            "MEMORY PURGE",
        ],
        RouteClass::FanOut(Merge::Same),
    );
    assert_all(&["RANDOMKEY"], RouteClass::FanOut(Merge::AnyNonNil));
    assert_all(&["LASTSAVE"], RouteClass::FanOut(Merge::Min));
    assert_all(
        &["CONFIG GET maxmemory", "FUNCTION DUMP"],
        RouteClass::AnyNode,
    );
}

#[test]
fn settings_change_on_every_node() {
    assert_all(
        &[
            "CONFIG SET maxmemory 1",
            "CONFIG SET maxmemory 1 maxmemory-policy allkeys-lru",
            "CONFIG RESETSTAT",
            "CONFIG REWRITE",
        ],
        RouteClass::AllNodes,
    );
    assert_all(
        &["CONFIG GET maxmemory", "CONFIG HELP"],
        RouteClass::AnyNode,
    );
}

#[test]
fn scan_walks_the_masters() {
    assert_all(
        &["SCAN 0", "SCAN 0 MATCH k* COUNT 10 TYPE string"],
        RouteClass::Scan,
    );
}

#[test]
fn info_is_merged_from_the_masters() {
    assert_all(&["INFO", "INFO memory keyspace"], RouteClass::Info);
}

#[test]
fn wait_asks_the_masters_written_to() {
    assert_all(&["WAIT 1 0"], RouteClass::WaitReplicas);
}

#[test]
fn transactions() {
    assert_all(
        &["MULTI", "EXEC", "DISCARD", "WATCH k", "UNWATCH"],
        RouteClass::Transaction,
    );
}

#[test]
fn blocking() {
    assert_all(
        &[
            "BLPOP a 0",
            "BRPOP a 0",
            "BLMOVE a b LEFT LEFT 0",
            "BZPOPMIN z 0",
            "BLMPOP 0 1 a LEFT",
        ],
        RouteClass::KeyedBlocking,
    );
}

#[test]
fn pubsub() {
    assert_all(
        &[
            "SUBSCRIBE c",
            "PSUBSCRIBE c*",
            "SSUBSCRIBE c",
            "UNSUBSCRIBE",
            "PUNSUBSCRIBE",
            "SUNSUBSCRIBE",
        ],
        RouteClass::Subscription,
    );
    use super::super::Merge;
    assert_all(
        &["PUBSUB CHANNELS", "PUBSUB SHARDCHANNELS x*"],
        RouteClass::FanOut(Merge::Union),
    );
    assert_all(&["PUBSUB NUMPAT"], RouteClass::FanOut(Merge::Sum));
    assert_all(
        &["PUBSUB NUMSUB a b", "PUBSUB SHARDNUMSUB a"],
        RouteClass::FanOut(Merge::SumPerName),
    );
    assert_all(&["PUBSUB HELP"], RouteClass::AnyNode);
}

#[test]
fn node_admin() {
    assert_all(
        &[
            "CLUSTER NODES",
            "CLUSTER SLOTS",
            "CLUSTER SETSLOT 1 NODE x",
            "CLUSTER nosuch",
            "MONITOR",
            "SHUTDOWN",
            "DEBUG OBJECT k",
            "REPLICAOF h p",
            "SLAVEOF h p",
            "SAVE",
            "BGSAVE",
            "BGREWRITEAOF",
            "SYNC",
            "PSYNC a 1",
            "FAILOVER",
            "CLIENT PAUSE 10",
            "MIGRATE h p k 0 1",
            "MODULE LIST",
        ],
        RouteClass::Unsupported(Reason::NodeAdmin),
    );
}

#[test]
fn connection_state() {
    assert_all(
        &["ASKING", "CLIENT nosuch"],
        RouteClass::Unsupported(Reason::ConnectionState),
    );
}

#[test]
fn every_builtin_command_is_classified_sensibly() {
    let table = CommandTable::builtin();
    for cmd in table
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
    {
        // A command with keys is never routed anywhere at random.
        if !cmd.key_specs().is_empty() {
            assert_ne!(cmd.class(), RouteClass::AnyNode, "{}", cmd.name());
        }
        // Writes routed by slot must have keys to route by.
        if cmd.class() == RouteClass::Keyed {
            assert!(!cmd.key_specs().is_empty(), "{}", cmd.name());
        }
    }
}

#[test]
fn messages_say_what_to_do() {
    for reason in [
        Reason::ClusterWide,
        Reason::Blocking,
        Reason::PubSub,
        Reason::NodeAdmin,
        Reason::ConnectionState,
    ] {
        let msg = reason.message();
        assert!(
            !msg.is_empty() && !msg.contains('\n') && !msg.contains('\r'),
            "{reason:?}"
        );
    }
    assert!(Reason::ClusterWide
        .message()
        .contains("fan-out to every master"));
}
