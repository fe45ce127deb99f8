//! Extension from hand-built `COMMAND` replies in both protocol shapes.

use bytes::Bytes;

use super::super::{
    AclCategories, BeginSearch, CommandSpec, CommandTable, FindKeys, KeySpecFlags, RouteClass,
};
use crate::protocol::Value;

fn bulk(s: &str) -> Value {
    Value::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn simple(s: &str) -> Value {
    Value::Simple(Bytes::copy_from_slice(s.as_bytes()))
}

/// A key/value object: a RESP3 map, or a RESP2 flat array.
fn object(resp3: bool, pairs: Vec<(&str, Value)>) -> Value {
    if resp3 {
        Value::Map(pairs.into_iter().map(|(k, v)| (simple(k), v)).collect())
    } else {
        Value::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [simple(k), v])
                .collect(),
        )
    }
}

/// RESP3 sends flag lists as sets, RESP2 as arrays.
fn list(resp3: bool, items: &[&str]) -> Value {
    let items = items.iter().map(|s| simple(s)).collect();
    if resp3 {
        Value::Set(items)
    } else {
        Value::Array(items)
    }
}

/// `mymod.get key [key ...]`-like: one RO range spec starting at 1.
fn mymod_get(resp3: bool, name: &str) -> Value {
    let spec = object(
        resp3,
        vec![
            ("notes", bulk("")),
            ("flags", list(resp3, &["RO", "access"])),
            (
                "begin_search",
                object(
                    resp3,
                    vec![
                        ("type", bulk("index")),
                        ("spec", object(resp3, vec![("index", Value::Int(1))])),
                    ],
                ),
            ),
            (
                "find_keys",
                object(
                    resp3,
                    vec![
                        ("type", bulk("range")),
                        (
                            "spec",
                            object(
                                resp3,
                                vec![
                                    ("lastkey", Value::Int(-1)),
                                    ("keystep", Value::Int(1)),
                                    ("limit", Value::Int(0)),
                                ],
                            ),
                        ),
                    ],
                ),
            ),
        ],
    );
    Value::Array(vec![
        bulk(name),
        Value::Int(-2),
        list(resp3, &["readonly", "module", "some_future_flag"]),
        Value::Int(1),
        Value::Int(-1),
        Value::Int(1),
        list(resp3, &["@read", "@fast", "@some_future_category"]),
        list(resp3, &[]),
        Value::Array(vec![spec]),
        Value::Array(vec![]),
    ])
}

/// Every command and subcommand's ACL id, by name.
fn acl_ids(table: &CommandTable) -> Vec<(String, u32)> {
    let mut ids: Vec<_> = table
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
        .map(|s| (s.name().to_owned(), s.acl_id()))
        .collect();
    ids.sort();
    ids
}

fn check_mymod(resp3: bool) {
    let mut table = CommandTable::builtin();
    let before = table.len();
    let builtin_ids = acl_ids(&table);
    let next_id = table.acl_id_count();
    let reply = Value::Array(vec![
        mymod_get(resp3, "MyMod.Get"),
        // Known commands are kept as they are.
        mymod_get(resp3, "get"),
    ]);
    assert_eq!(table.extend_from_command_reply(&reply), 1);
    assert_eq!(table.len(), before + 1);
    // Idempotent.
    assert_eq!(table.extend_from_command_reply(&reply), 0);

    let args: &[&str] = &["MYMOD.GET", "a", "b"];
    let spec = table.lookup(args).unwrap();
    assert_eq!(spec.name(), "mymod.get");
    assert_eq!(spec.class(), RouteClass::Keyed);
    assert!(spec.flags().is_readonly() && spec.flags().is_module());
    assert_eq!(
        spec.key_specs()[0].flags,
        KeySpecFlags::RO | KeySpecFlags::ACCESS
    );
    assert_eq!(spec.key_specs()[0].begin, BeginSearch::Index(1));
    let mut keys = Vec::new();
    spec.for_each_key(args, |i| keys.push(i)).unwrap();
    assert_eq!(keys, [1, 2]);
    assert_eq!(table.get_by_name("get").unwrap().arity(), 2);

    // Unknown categories ignored; the new command's id appended.
    assert_eq!(
        spec.acl_categories(),
        AclCategories::READ | AclCategories::FAST
    );
    assert_eq!(spec.acl_id(), next_id);
    assert_eq!(table.acl_id_count(), next_id + 1);
    let mut ids = acl_ids(&table);
    ids.retain(|(name, _)| name != "mymod.get");
    assert_eq!(ids, builtin_ids);
    // Like Redis's ACL CAT, no module command.
    assert!(table
        .in_category(AclCategories::READ)
        .all(|s| s.name() != "mymod.get"));
}

#[test]
fn module_command_resp2() {
    check_mymod(false);
}

#[test]
fn module_command_resp3() {
    check_mymod(true);
}

#[test]
fn new_subcommand_of_a_known_container() {
    let mut table = CommandTable::builtin();
    let builtin_ids = acl_ids(&table);
    let next_id = table.acl_id_count();
    // CLIENT NO-TOUCH arrived in Redis 7.2.
    let no_touch = Value::Array(vec![
        bulk("client|no-touch"),
        Value::Int(3),
        list(false, &["noscript", "loading", "stale"]),
        Value::Int(0),
        Value::Int(0),
        Value::Int(0),
        list(false, &["@slow", "@connection"]),
        list(false, &[]),
        Value::Array(vec![]),
        Value::Array(vec![]),
    ]);
    let mut client = match mymod_get(false, "client") {
        Value::Array(fields) => fields,
        _ => unreachable!(),
    };
    client[9] = Value::Array(vec![no_touch]);
    assert_eq!(
        table.extend_from_command_reply(&Value::Array(vec![Value::Array(client)])),
        1
    );
    let args: &[&str] = &["client", "NO-TOUCH", "on"];
    let spec = table.lookup(args).unwrap();
    assert_eq!(spec.name(), "client|no-touch");
    // Learned at start-up, yet classified by the same overrides.
    assert_eq!(spec.class(), RouteClass::Local);
    assert_eq!(
        spec.acl_categories(),
        AclCategories::CONNECTION | AclCategories::SLOW
    );
    assert_eq!(spec.acl_id(), next_id);
    assert_eq!(table.acl_id_count(), next_id + 1);
    assert_eq!(table.container_of(spec).unwrap().name(), "client");
    let mut ids = acl_ids(&table);
    ids.retain(|(name, _)| name != "client|no-touch");
    assert_eq!(ids, builtin_ids);
    let connection: Vec<_> = table
        .in_category(AclCategories::CONNECTION)
        .map(CommandSpec::name)
        .collect();
    assert!(connection.contains(&"client|no-touch"));
}

#[test]
fn redis6_entry_uses_legacy_keys() {
    let mut table = CommandTable::builtin();
    let old = Value::Array(vec![
        bulk("oldmod.set"),
        Value::Int(3),
        list(false, &["write"]),
        Value::Int(1),
        Value::Int(1),
        Value::Int(1),
        list(false, &["@write"]),
    ]);
    assert_eq!(table.extend_from_command_reply(&Value::Array(vec![old])), 1);
    let spec = table.get_by_name("oldmod.set").unwrap();
    assert_eq!(spec.class(), RouteClass::Keyed);
    assert_eq!(spec.acl_categories(), AclCategories::WRITE);
    assert_eq!(
        spec.key_specs()[0].find,
        FindKeys::Range {
            lastkey: 0,
            step: 1,
            limit: 0
        }
    );
}

#[test]
fn malformed_entries_are_skipped() {
    let mut table = CommandTable::builtin();
    let before = table.len();
    let zero_step = Value::Array(vec![
        bulk("bad.step"),
        Value::Int(2),
        list(false, &[]),
        Value::Int(1),
        Value::Int(1),
        Value::Int(0),
        list(false, &[]),
        list(false, &[]),
        Value::Array(vec![object(
            false,
            vec![
                ("begin_search", object(false, vec![("type", bulk("index"))])),
                ("find_keys", object(false, vec![("type", bulk("range"))])),
            ],
        )]),
    ]);
    let odd = [
        Value::Nil,
        Value::Int(3),
        Value::Array(vec![]),
        Value::Array(vec![bulk("no.arity")]),
        Value::Array(vec![Value::Int(1), Value::Int(2)]),
        Value::Array(vec![
            bulk("bad|name"),
            Value::Int(1),
            list(false, &[]),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
        ]),
        Value::Array(vec![
            bulk(&"x".repeat(100)),
            Value::Int(1),
            list(false, &[]),
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
        ]),
        zero_step,
    ];
    assert_eq!(
        table.extend_from_command_reply(&Value::Array(odd.to_vec())),
        0
    );
    assert_eq!(table.extend_from_command_reply(&Value::Nil), 0);
    assert_eq!(
        table.extend_from_command_reply(&Value::Error(Bytes::from_static(b"ERR x"))),
        0
    );
    assert_eq!(table.len(), before);
}
