//! Tests of the slot map's parsers and patches.

use super::*;
use bytes::Bytes;

fn bulk(s: &str) -> Value {
    Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn shard(ranges: &[i64], nodes: Vec<Value>) -> Value {
    Value::Array(vec![
        bulk("slots"),
        Value::Array(ranges.iter().map(|&n| Value::Int(n)).collect()),
        bulk("nodes"),
        Value::Array(nodes),
    ])
}

fn node(endpoint: &str, port: i64, role: &str) -> Value {
    node_in(endpoint, port, role, "online")
}

fn node_in(endpoint: &str, port: i64, role: &str, health: &str) -> Value {
    Value::Array(vec![
        bulk("id"),
        bulk("abc"),
        bulk("port"),
        Value::Int(port),
        bulk("ip"),
        bulk(endpoint),
        bulk("endpoint"),
        bulk(endpoint),
        bulk("role"),
        bulk(role),
        bulk("health"),
        bulk(health),
    ])
}

#[test]
fn shards_reply_maps_every_range_to_its_master() {
    let reply = Value::Array(vec![
        shard(
            &[0, 5460],
            vec![
                node("127.0.0.1", 7001, "replica"),
                node("127.0.0.1", 7000, "master"),
            ],
        ),
        shard(&[5461, 10922], vec![node("127.0.0.1", 7002, "master")]),
        shard(
            &[10923, 16000, 16001, 16383],
            vec![node("", 7003, "master")],
        ),
        shard(&[], vec![node("127.0.0.1", 7009, "master")]),
    ]);
    let t = Topology::from_shards(&reply, "10.0.0.9:7003", false).unwrap();
    assert_eq!(t.covered_slots(), 16384);
    let addr = |s: u16| &*t.nodes()[t.master_of(Slot::new(s).unwrap()).unwrap() as usize].addr;
    assert_eq!(addr(0), "127.0.0.1:7000");
    assert_eq!(addr(5461), "127.0.0.1:7002");
    assert_eq!(addr(16383), "10.0.0.9:7003");
    assert_eq!(t.nodes().len(), 3);
}

#[test]
fn every_node_is_known_masters_first_then_the_others_by_address() {
    let reply = Value::Array(vec![
        shard(
            &[5461, 16383],
            vec![
                node("127.0.0.1", 7005, "replica"),
                node("127.0.0.1", 7002, "master"),
                node_in("127.0.0.1", 7008, "replica", "fail"),
            ],
        ),
        shard(
            &[0, 5460],
            vec![
                node("127.0.0.1", 7000, "master"),
                node_in("", 7004, "replica", "loading"),
                node("127.0.0.1", 7003, "replica"),
            ],
        ),
        // A master with no slot yet, and its replica.
        shard(
            &[],
            vec![
                node("127.0.0.1", 7009, "master"),
                node("127.0.0.1", 7001, "replica"),
            ],
        ),
    ]);
    let t = Topology::from_shards(&reply, "10.0.0.9:7000", false).unwrap();
    assert_eq!(t.nodes().len(), 2, "only masters with slots serve slots");
    let all = t.all_nodes();
    assert_eq!(
        all.iter().map(|a| &**a).collect::<Vec<_>>(),
        [
            "127.0.0.1:7000", // the master of slot 0
            "127.0.0.1:7002",
            "10.0.0.9:7004", // no endpoint: the answering node's host
            "127.0.0.1:7001",
            "127.0.0.1:7003",
            "127.0.0.1:7005",
            "127.0.0.1:7009",
        ],
        "the failed replica 7008 is left out"
    );
    assert!(t.knows("127.0.0.1:7005") && t.knows("127.0.0.1:7002"));
    assert!(!t.knows("127.0.0.1:7008"));
    // Reads may go only to online replicas: not loading, not failed.
    let replicas_of = |slot: u16| {
        let index = t.master_of(Slot::new(slot).unwrap()).unwrap();
        let node = &t.nodes()[index as usize];
        node.replicas
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(replicas_of(0), ["127.0.0.1:7003"]);
    assert_eq!(replicas_of(5461), ["127.0.0.1:7005"]);

    // A replica more (or less) is a new map; a MOVED to a replica makes it
    // a master, listed once.
    let fewer = Value::Array(reply.as_array().unwrap()[..2].to_vec());
    let fewer = Topology::from_shards(&fewer, "10.0.0.9:7000", false).unwrap();
    assert!(!fewer.same_map(&t) && !t.same_map(&fewer));
    assert!(t.same_map(&t.clone().with_epoch(4)));
    let moved = t.with_slot_moved(Slot::new(0).unwrap(), "127.0.0.1:7003", 5);
    let all = moved.all_nodes();
    assert_eq!(&*all[0], "127.0.0.1:7003");
    assert_eq!(all.iter().filter(|a| &***a == "127.0.0.1:7003").count(), 1);
    assert_eq!(all.len(), 7, "7000 still serves slots 1..=5460");
}

#[test]
fn slots_reply_and_uncovered_slots() {
    let reply = Value::Array(vec![Value::Array(vec![
        Value::Int(0),
        Value::Int(99),
        Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("id")]),
        Value::Array(vec![bulk("127.0.0.1"), Value::Int(7001), bulk("id2")]),
    ])]);
    let t = Topology::from_slots(&reply, "x:1").unwrap();
    assert_eq!(t.covered_slots(), 100);
    assert!(t.master_of(Slot::new(100).unwrap()).is_none());
    let all = t.all_nodes();
    assert_eq!(
        all.iter().map(|a| &**a).collect::<Vec<_>>(),
        ["127.0.0.1:7000", "127.0.0.1:7001"],
        "the replica after its master"
    );
}

#[test]
fn bad_replies_are_errors_not_panics() {
    let err = Value::Error(Bytes::from_static(
        b"ERR This instance has cluster support disabled",
    ));
    assert!(matches!(
        Topology::from_shards(&err, "a:1", false),
        Err(TopologyError::ErrorReply(_))
    ));
    let out_of_range = Value::Array(vec![shard(&[0, 16384], vec![node("h", 1, "master")])]);
    assert!(Topology::from_shards(&out_of_range, "a:1", false).is_err());
    let reversed = Value::Array(vec![shard(&[10, 5], vec![node("h", 1, "master")])]);
    assert!(Topology::from_shards(&reversed, "a:1", false).is_err());
    assert!(Topology::from_slots(&Value::Int(3), "a:1").is_err());
}

#[test]
fn moved_patches_one_slot_and_drops_empty_nodes() {
    let reply = Value::Array(vec![
        shard(&[0, 0], vec![node("h", 1, "master")]),
        shard(&[1, 16383], vec![node("h", 2, "master")]),
    ]);
    let t = Topology::from_shards(&reply, "a:1", false)
        .unwrap()
        .with_epoch(1);
    let moved = t.with_slot_moved(Slot::new(0).unwrap(), "h:2", 2);
    assert_eq!(moved.epoch(), 2);
    assert_eq!(moved.nodes().len(), 1);
    assert_eq!(&*moved.nodes()[0].addr, "h:2");
    assert!(!moved.same_map(&t));
    assert!(t.same_map(&t.clone().with_epoch(9)));
    let (order, print) = t.scan_order();
    assert_eq!(order.len(), t.nodes().len());
    assert_eq!(t.clone().with_epoch(9).scan_order(), (order.clone(), print));
    let first = t.master_of(Slot::new(0).unwrap()).unwrap();
    assert_eq!(order[0], first, "the master of slot 0 comes first");
    assert_ne!(
        moved.scan_order().1,
        print,
        "a moved slot changes the fingerprint"
    );
}

#[test]
fn masters_the_cluster_marks_failed_still_serve_their_slots_and_are_listed() {
    let reply = Value::Array(vec![
        shard(
            &[0, 8191],
            vec![
                node_in("127.0.0.1", 7000, "master", "fail"),
                node("127.0.0.1", 7003, "replica"),
            ],
        ),
        shard(&[8192, 16383], vec![node("127.0.0.1", 7001, "master")]),
    ]);
    let t = Topology::from_shards(&reply, "127.0.0.1:7001", false).unwrap();
    assert_eq!(t.covered_slots(), 16384);
    assert_eq!(
        t.failed_masters().iter().map(|a| &**a).collect::<Vec<_>>(),
        ["127.0.0.1:7000"]
    );
}

#[test]
fn a_replica_serving_its_masters_slots_was_promoted() {
    let before = Topology::from_shards(
        &Value::Array(vec![shard(
            &[0, 16383],
            vec![
                node("127.0.0.1", 7000, "master"),
                node("127.0.0.1", 7001, "replica"),
            ],
        )]),
        "127.0.0.1:7000",
        false,
    )
    .unwrap();
    assert!(before.promoted_since(&before).is_empty());
    let after = Topology::from_shards(
        &Value::Array(vec![shard(
            &[0, 16383],
            vec![
                node("127.0.0.1", 7001, "master"),
                node_in("127.0.0.1", 7000, "replica", "fail"),
            ],
        )]),
        "127.0.0.1:7001",
        false,
    )
    .unwrap();
    assert_eq!(
        after.promoted_since(&before),
        vec![Arc::from("127.0.0.1:7001")]
    );
    // A slot-less master given slots by a resharding was no replica.
    assert!(one_shard(&[]).promoted_since(&Topology::empty()).is_empty());
}

/// A node with its replication offset, as `CLUSTER SHARDS` reports it.
fn node_at(port: i64, role: &str, health: &str, offset: i64) -> Value {
    let Value::Array(mut fields) = node_in("127.0.0.1", port, role, health) else {
        unreachable!()
    };
    fields.extend([bulk("replication-offset"), Value::Int(offset)]);
    Value::Array(fields)
}

#[test]
fn a_shards_master_is_chosen_by_health_never_by_position() {
    // Valkey 9 after a failover: the dead master stays in the shard,
    // listed first and still `master`, beside the promoted replica.
    let valkey = Value::Array(vec![shard(
        &[0, 16383],
        vec![
            node_at(22401, "master", "fail", 900),
            node_at(22405, "master", "online", 1000),
        ],
    )]);
    let t = Topology::from_shards(&valkey, "127.0.0.1:22405", false).unwrap();
    assert_eq!(&*t.nodes()[0].addr, "127.0.0.1:22405");
    assert!(t.failed_masters().is_empty());
    assert!(!t.knows("127.0.0.1:22401"), "a failed node is not kept");
    // Redis 7.0's shape: the dead node in a shard of its own, no slots.
    let redis = Value::Array(vec![
        shard(&[], vec![node_at(7000, "master", "fail", 900)]),
        shard(&[0, 16383], vec![node_at(7003, "master", "online", 1000)]),
    ]);
    let t = Topology::from_shards(&redis, "127.0.0.1:7003", false).unwrap();
    assert_eq!(&*t.nodes()[0].addr, "127.0.0.1:7003");
    // Two healthy masters claiming one shard (a moment of a manual
    // failover): the one furthest in replication; then `loading` before
    // `fail`.
    for (nodes, chosen) in [
        (
            vec![
                node_at(1, "master", "online", 5),
                node_at(2, "master", "online", 7),
            ],
            "127.0.0.1:2",
        ),
        (
            vec![
                node_at(1, "master", "fail", 9),
                node_at(2, "master", "loading", 1),
                node_at(3, "replica", "online", 9),
            ],
            "127.0.0.1:2",
        ),
    ] {
        let t = Topology::from_shards(&Value::Array(vec![shard(&[0, 16383], nodes)]), "x:1", false)
            .unwrap();
        assert_eq!(&*t.nodes()[0].addr, chosen);
    }
}

/// A node with `port 0` and `tls-port` (`tls-cluster yes`) lists only
/// `tls-port`; with TLS keyway connects there, and a node listing both is
/// reached at the port that matches keyway's side.
#[test]
fn with_tls_nodes_are_reached_at_their_tls_port() {
    let tls_node = |port: i64, tls_port: Option<i64>, role: &str| {
        let mut fields = vec![bulk("id"), bulk("abc")];
        if port != 0 {
            fields.extend([bulk("port"), Value::Int(port)]);
        }
        if let Some(tls_port) = tls_port {
            fields.extend([bulk("tls-port"), Value::Int(tls_port)]);
        }
        fields.extend([
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("health"),
            bulk("online"),
        ]);
        Value::Array(fields)
    };
    let reply = Value::Array(vec![shard(
        &[0, 16383],
        vec![
            tls_node(0, Some(27001), "master"),
            tls_node(7002, Some(27002), "replica"),
        ],
    )]);
    let t = Topology::from_shards(&reply, "127.0.0.1:27001", true).unwrap();
    assert_eq!(&*t.nodes()[0].addr, "127.0.0.1:27001");
    assert_eq!(&*t.nodes()[0].replicas[0], "127.0.0.1:27002");
    let plain = Topology::from_shards(&reply, "127.0.0.1:27001", false);
    assert!(
        plain.is_err(),
        "a master with only a TLS port is unreachable in plain"
    );
}
