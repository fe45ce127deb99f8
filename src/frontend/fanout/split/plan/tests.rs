use super::*;

use crate::command::CommandTable;
use crate::router::{self, Route};

/// Routes `args` with the built-in table; panics unless they are split.
fn plan(args: &[&[u8]]) -> Plan {
    let request = Request::from_args(args);
    match router::route(&CommandTable::builtin(), &request) {
        Route::Split(groups) => Plan::new(&request, groups),
        other => panic!(
            "{:?} not split: {other:?}",
            String::from_utf8_lossy(args[0])
        ),
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode::command(&mut out, args);
    out.to_vec()
}

fn ok(reply: &'static [u8]) -> Result<Bytes, BackendError> {
    Ok(Bytes::from_static(reply))
}

fn joined(plan: &Plan) -> Vec<u8> {
    let mut out = BytesMut::new();
    plan.join(&mut out);
    out.to_vec()
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

#[test]
fn one_part_per_slot_in_the_order_of_first_keys() {
    // {a} keys share a slot, as do {b} keys; {c} is a third slot.
    let p = plan(&[b"MGET", b"{a}1", b"{b}1", b"{a}2", b"{c}1", b"{b}1"]);
    assert_eq!(p.parts(), 3);
    assert_eq!(p.slot(0), Slot::of_key(b"a"));
    assert_eq!(p.slot(1), Slot::of_key(b"b"));
    assert_eq!(p.slot(2), Slot::of_key(b"c"));
    assert_eq!(p.request(0), resp(&[b"MGET", b"{a}1", b"{a}2"]));
    // A duplicate stays in its part, so the node counts it as Redis would.
    assert_eq!(p.request(1), resp(&[b"MGET", b"{b}1", b"{b}1"]));
    assert_eq!(p.request(2), resp(&[b"MGET", b"{c}1"]));
    // Values 0..5 of the parts, in part order, map back to key order.
    assert_eq!(p.order, [0, 2, 1, 4, 3]);
}

#[test]
fn mset_parts_keep_each_value_with_its_key() {
    let p = plan(&[b"MSET", b"{a}k", b"1", b"{b}k", b"", b"{a}j", b"x\r\ny"]);
    assert_eq!(p.parts(), 2);
    assert_eq!(
        p.request(0),
        resp(&[b"MSET", b"{a}k", b"1", b"{a}j", b"x\r\ny"])
    );
    assert_eq!(p.request(1), resp(&[b"MSET", b"{b}k", b""]));
    assert!(p.order.is_empty(), "only MGET needs the value order");
}

#[test]
fn the_slot_table_is_clean_after_each_plan() {
    let first = plan(&[b"DEL", b"{a}1", b"{b}1"]);
    let second = plan(&[b"DEL", b"{b}2", b"{c}2", b"{a}2"]);
    assert_eq!(first.slot(0), Slot::of_key(b"a"));
    assert_eq!(
        (second.slot(0), second.slot(1), second.slot(2)),
        (Slot::of_key(b"b"), Slot::of_key(b"c"), Slot::of_key(b"a"))
    );
    assert_eq!(second.request(2), resp(&[b"DEL", b"{a}2"]));
}

#[test]
fn values_come_back_in_key_order_as_the_nodes_sent_them() {
    let mut p = plan(&[b"MGET", b"{a}1", b"{b}1", b"{a}2", b"{b}2"]);
    assert!(p.set_reply(1, ok(b"*2\r\n$-1\r\n$3\r\nb\x002\r\n")));
    assert!(p.set_reply(0, ok(b"*2\r\n$2\r\na1\r\n$0\r\n\r\n")));
    assert!(!p.set_reply(0, ok(b"*0\r\n")), "a part ends once");
    assert_eq!(
        joined(&p),
        b"*4\r\n$2\r\na1\r\n$-1\r\n$0\r\n\r\n$3\r\nb\x002\r\n"
    );
    // RESP3: the nodes' nulls travel unchanged.
    let mut p = plan(&[b"MGET", b"{a}1", b"{b}1", b"{a}2"]);
    p.set_reply(0, ok(b"*2\r\n_\r\n$1\r\nx\r\n"));
    p.set_reply(1, ok(b"*1\r\n_\r\n"));
    assert_eq!(joined(&p), b"*3\r\n_\r\n_\r\n$1\r\nx\r\n");
}

#[test]
fn integers_are_summed() {
    let mut p = plan(&[b"EXISTS", b"{a}1", b"{b}1", b"{a}1", b"{c}1"]);
    p.set_reply(0, ok(b":2\r\n"));
    p.set_reply(1, ok(b":0\r\n"));
    p.set_reply(2, ok(b":1\r\n"));
    assert_eq!(joined(&p), b":3\r\n");
}

#[test]
fn the_first_error_in_key_order_is_the_reply() {
    for command in [&b"MGET"[..], b"DEL"] {
        let mut p = plan(&[command, b"{a}1", b"{b}1", b"{c}1"]);
        p.set_reply(2, ok(b"-ERR third\r\n"));
        p.set_reply(1, ok(b"-WRONGTYPE second\r\n"));
        p.set_reply(0, ok(b"*1\r\n$1\r\nx\r\n"));
        assert_eq!(joined(&p), b"-WRONGTYPE second\r\n");
        let mut p = plan(&[command, b"{a}1", b"{b}1"]);
        p.set_reply(0, Err(BackendError::Lost("n:1".into())));
        p.set_reply(1, ok(b"-ERR later\r\n"));
        assert!(text(&joined(&p)).starts_with("-ERR keyway lost the connection to node n:1"));
    }
}

#[test]
fn a_reply_that_does_not_fit_is_an_error_not_a_wrong_answer() {
    for (command, bad) in [
        (&b"MGET"[..], &b"*2\r\n$1\r\nx\r\n$1\r\ny\r\n"[..]), // one value too many
        (b"MGET", b":1\r\n"),
        (b"MGET", b"*-1\r\n"),
        (b"DEL", b"+OK\r\n"),
        (b"DEL", b":x\r\n"),
    ] {
        let mut p = plan(&[command, b"{a}1", b"{b}1"]);
        p.set_reply(0, Ok(Bytes::copy_from_slice(bad)));
        p.set_reply(
            1,
            ok(if command == b"DEL" {
                b":1\r\n"
            } else {
                b"*1\r\n$-1\r\n"
            }),
        );
        assert_eq!(
            text(&joined(&p)),
            "-ERR keyway could not merge a node's reply\r\n",
            "{}",
            text(bad)
        );
    }
}

#[test]
fn mset_is_ok_when_every_part_is() {
    let mut p = plan(&[b"MSET", b"{a}1", b"v", b"{b}1", b"v"]);
    p.set_reply(0, ok(b"+OK\r\n"));
    p.set_reply(1, ok(b"+OK\r\n"));
    assert_eq!(joined(&p), b"+OK\r\n");
}

#[test]
fn a_failed_mset_names_the_keys_that_may_have_been_written() {
    let mut p = plan(&[
        b"mset", b"{a}1", b"v", b"{b}1", b"v", b"{c}1", b"v", b"{a}2", b"v", b"{d}1", b"v",
    ]);
    p.set_reply(0, ok(b"+OK\r\n"));
    p.set_reply(1, ok(b"-OOM command not allowed\r\n"));
    p.set_reply(
        2,
        Err(BackendError::Timeout("n:2".into(), Duration::from_secs(5))),
    );
    p.set_reply(3, Err(BackendError::Unreachable("n:3".into())));
    let reply = text(&joined(&p));
    let slot = Slot::of_key(b"b");
    assert!(
        reply.starts_with(&format!(
            "-ERR keyway split MSET across 4 slots; the part for slot {slot} failed (OOM command not allowed) and 2 more part(s) failed; keys that may have been written: \"{{a}}1\" \"{{a}}2\" \"{{c}}1\""
        )),
        "{reply}"
    );
    assert!(reply.ends_with("\"{c}1\"\r\n"), "{reply}");

    let mut p = plan(&[b"MSET", b"{a}1", b"v", b"{b}1", b"v"]);
    p.set_reply(0, ok(b"-MISCONF no disk\r\n"));
    p.set_reply(1, Err(BackendError::Unreachable("n:3".into())));
    assert!(text(&joined(&p))
        .contains("(MISCONF no disk) and 1 more part(s) failed; no key was written\r\n"));
}

#[test]
fn a_failed_mset_error_stays_short_and_on_one_line() {
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("key:\r\n{i}:{}", "x".repeat(i % 100)))
        .collect();
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    for k in &keys {
        args.extend([k.as_bytes(), b"v"]);
    }
    let mut p = plan(&args);
    p.set_reply(0, Ok(Bytes::from(format!("-ERR {}\r\n", "y".repeat(5000)))));
    for i in 1..p.parts() {
        p.set_reply(i, ok(b"+OK\r\n"));
    }
    let reply = joined(&p);
    assert!(reply.len() < 1024, "{} bytes", reply.len());
    let line = &reply[..reply.len() - 2];
    assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
    assert!(text(&reply).contains("more)"));
}

#[test]
fn elements_are_framed_not_decoded() {
    let mut seen = Vec::new();
    let reply = b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n_\r\n%1\r\n+k\r\n,1.5\r\n";
    assert_eq!(elements(reply, 3, |e| seen.push(e.to_vec())), Some(()));
    assert_eq!(
        seen,
        [
            &b"$1\r\na\r\n"[..],
            b"*2\r\n:1\r\n_\r\n",
            b"%1\r\n+k\r\n,1.5\r\n"
        ]
    );
    assert_eq!(elements(b"*-1\r\n", 0, |_| {}), None);
    assert_eq!(elements(b"*0\r\n", 0, |_| {}), Some(()));
    assert_eq!(
        elements(b"*2\r\n$1\r\na\r\n:1\r\n+extra\r\n", 2, |_| {}),
        None
    );
    assert_eq!(elements(b"*2\r\n$1\r\na\r\n$5\r\nb\r\n", 2, |_| {}), None);
    // A one-element array is a whole frame: the rest is its element.
    assert_eq!(elements(b"*1\r\n", 1, |_| {}), None);
    let mut one = Vec::new();
    assert_eq!(elements(b"*1\r\n$-1\r\n", 1, |e| one.push(e)), Some(()));
    assert_eq!(one, [&b"$-1\r\n"[..]]);
}

use std::time::Duration;
