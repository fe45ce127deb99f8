use bytes::BytesMut;

use super::*;
use crate::protocol::{decode, Limits};

fn run(what: Diagnostic, args: &[&str], parts: &[(&str, &[u8])], proto: Protocol) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let report = Report::new(what, &Request::from_args(&args));
    let parts = parts.iter().map(|(node, bytes)| {
        let (value, _) = decode(bytes, &Limits::default()).unwrap().unwrap();
        (*node, value)
    });
    let mut out = BytesMut::new();
    reply(&report, parts, proto, &mut out);
    out.to_vec()
}

/// A RESP2 slowlog entry without its args, client and name.
fn entry(id: i64, time: i64) -> String {
    format!(":{id}\r\n:{time}\r\n:5\r\n*0\r\n$0\r\n\r\n$0\r\n\r\n")
}

#[test]
fn slowlog_entries_newest_first_with_their_node() {
    let a = format!("*2\r\n*6\r\n{}*6\r\n{}", entry(1, 20), entry(0, 10));
    let b = format!("*1\r\n*6\r\n{}", entry(7, 15));
    let parts: [(&str, &[u8]); 2] = [("a:1", a.as_bytes()), ("b:2", b.as_bytes())];
    let all = run(
        Diagnostic::Slowlog,
        &["SLOWLOG", "GET", "-1"],
        &parts,
        Protocol::Resp2,
    );
    let expected = format!(
        "*3\r\n*7\r\n{}$3\r\na:1\r\n*7\r\n{}$3\r\nb:2\r\n*7\r\n{}$3\r\na:1\r\n",
        entry(1, 20),
        entry(7, 15),
        entry(0, 10)
    );
    assert_eq!(String::from_utf8(all).unwrap(), expected);
    let two = run(
        Diagnostic::Slowlog,
        &["SLOWLOG", "GET", "2"],
        &parts,
        Protocol::Resp2,
    );
    assert!(two.starts_with(b"*2\r\n"));
    let default = Report::new(
        Diagnostic::Slowlog,
        &Request::from_args(&[b"SLOWLOG", b"GET"]),
    );
    assert_eq!(default.limit, Some(10));
}

#[test]
fn latency_latest_and_history_name_the_node() {
    let a: &[u8] = b"*1\r\n*4\r\n$7\r\ncommand\r\n:100\r\n:5\r\n:9\r\n";
    let b: &[u8] = b"*0\r\n";
    let latest = run(
        Diagnostic::LatencyLatest,
        &["LATENCY", "LATEST"],
        &[("a:1", a), ("b:2", b)],
        Protocol::Resp2,
    );
    assert_eq!(
        latest,
        b"*1\r\n*5\r\n$7\r\ncommand\r\n:100\r\n:5\r\n:9\r\n$3\r\na:1\r\n"
    );
    // By event; per event the largest spike first, whichever node sent it.
    let a: &[u8] =
        b"*2\r\n*4\r\n$7\r\ncommand\r\n:100\r\n:5\r\n:9\r\n*4\r\n$4\r\nfork\r\n:90\r\n:1\r\n:1\r\n";
    let b: &[u8] = b"*1\r\n*4\r\n$7\r\ncommand\r\n:99\r\n:30\r\n:30\r\n";
    let latest = run(
        Diagnostic::LatencyLatest,
        &["LATENCY", "LATEST"],
        &[("a:1", a), ("b:2", b)],
        Protocol::Resp2,
    );
    assert_eq!(
        latest,
        &b"*3\r\n*5\r\n$7\r\ncommand\r\n:99\r\n:30\r\n:30\r\n$3\r\nb:2\r\n\
           *5\r\n$7\r\ncommand\r\n:100\r\n:5\r\n:9\r\n$3\r\na:1\r\n\
           *5\r\n$4\r\nfork\r\n:90\r\n:1\r\n:1\r\n$3\r\na:1\r\n"[..]
    );
    let a: &[u8] = b"*2\r\n*2\r\n:10\r\n:5\r\n*2\r\n:30\r\n:6\r\n";
    let b: &[u8] = b"*1\r\n*2\r\n:20\r\n:7\r\n";
    let history = run(
        Diagnostic::LatencyHistory,
        &["LATENCY", "HISTORY", "command"],
        &[("a:1", a), ("b:2", b)],
        Protocol::Resp2,
    );
    assert_eq!(
        history,
        &b"*3\r\n*3\r\n:10\r\n:5\r\n$3\r\na:1\r\n*3\r\n:20\r\n:7\r\n$3\r\nb:2\r\n*3\r\n:30\r\n:6\r\n$3\r\na:1\r\n"[..]
    );
}

#[test]
fn latency_texts_keep_their_type_and_name_the_node() {
    let doctor = run(
        Diagnostic::NodeTexts,
        &["LATENCY", "DOCTOR"],
        &[
            ("a:1", b"=8\r\ntxt:fine\r\n"),
            ("b:2", b"=8\r\ntxt:slow\r\n"),
        ],
        Protocol::Resp3,
    );
    let text = "# node a:1\nfine\n# node b:2\nslow\n";
    assert_eq!(
        doctor,
        format!("={}\r\ntxt:{text}\r\n", text.len() + 4).as_bytes()
    );
    let graph = run(
        Diagnostic::NodeTexts,
        &["LATENCY", "GRAPH", "command"],
        &[("a:1", b"$5\r\ngraph\r\n"), ("b:2", b"-ERR No samples\r\n")],
        Protocol::Resp2,
    );
    let text = "# node a:1\ngraph\n# node b:2\nERR No samples\n";
    assert_eq!(graph, format!("${}\r\n{text}\r\n", text.len()).as_bytes());
    let none = run(
        Diagnostic::NodeTexts,
        &["LATENCY", "GRAPH", "x"],
        &[
            ("a:1", b"-ERR No samples\r\n"),
            ("b:2", b"-ERR No samples\r\n"),
        ],
        Protocol::Resp2,
    );
    assert_eq!(none, b"-ERR No samples\r\n");
}

#[test]
fn latency_histograms_sum_cumulative_buckets() {
    // a: 2 calls up to 4us, 3 up to 16us; b: 1 call up to 8us.
    let a: &[u8] = b"%1\r\n$3\r\nset\r\n%2\r\n$5\r\ncalls\r\n:3\r\n$14\r\nhistogram_usec\r\n%2\r\n:4\r\n:2\r\n:16\r\n:3\r\n";
    let b: &[u8] = b"%1\r\n$3\r\nset\r\n%2\r\n$5\r\ncalls\r\n:1\r\n$14\r\nhistogram_usec\r\n%1\r\n:8\r\n:1\r\n";
    let merged = run(
        Diagnostic::LatencyHistogram,
        &["LATENCY", "HISTOGRAM"],
        &[("a:1", a), ("b:2", b)],
        Protocol::Resp3,
    );
    assert_eq!(
        merged,
        &b"%1\r\n$3\r\nset\r\n%2\r\n$5\r\ncalls\r\n:4\r\n$14\r\nhistogram_usec\r\n%3\r\n:4\r\n:2\r\n:8\r\n:3\r\n:16\r\n:4\r\n"[..]
    );
}

#[test]
fn function_stats_take_the_running_script() {
    let idle: &[u8] = b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2\r\n";
    let busy: &[u8] =
        b"*4\r\n$14\r\nrunning_script\r\n*2\r\n$4\r\nname\r\n$1\r\nf\r\n$7\r\nengines\r\n*0\r\n";
    let stats = run(
        Diagnostic::FunctionStats,
        &["FUNCTION", "STATS"],
        &[("a:1", idle), ("b:2", busy)],
        Protocol::Resp2,
    );
    assert_eq!(
        stats,
        &b"*4\r\n$14\r\nrunning_script\r\n*2\r\n$4\r\nname\r\n$1\r\nf\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2\r\n"[..]
    );
    let none = run(
        Diagnostic::FunctionStats,
        &["FUNCTION", "STATS"],
        &[("a:1", idle)],
        Protocol::Resp2,
    );
    assert_eq!(none, idle);
}

#[test]
fn kill_prefers_ok_then_unkillable_then_notbusy() {
    let kill = |parts: &[(&str, &[u8])]| {
        run(
            Diagnostic::Kill,
            &["SCRIPT", "KILL"],
            parts,
            Protocol::Resp2,
        )
    };
    let notbusy: &[u8] = b"-NOTBUSY No scripts in execution right now.\r\n";
    let busy: &[u8] = b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";
    let unkillable: &[u8] = b"-UNKILLABLE Sorry the script already executed write commands\r\n";
    assert_eq!(
        kill(&[("a", notbusy), ("b", b"+OK\r\n"), ("c", notbusy)]),
        b"+OK\r\n"
    );
    assert_eq!(kill(&[("a", notbusy), ("b", unkillable)]), unkillable);
    assert_eq!(kill(&[("a", busy), ("b", notbusy)]), busy);
    assert_eq!(kill(&[("a", notbusy), ("b", notbusy)]), notbusy);
}

#[test]
fn the_first_error_is_the_reply() {
    let parts: [(&str, &[u8]); 2] = [("a:1", b"*0\r\n"), ("b:2", b"-ERR boom\r\n")];
    let latest = run(
        Diagnostic::LatencyLatest,
        &["LATENCY", "LATEST"],
        &parts,
        Protocol::Resp2,
    );
    assert_eq!(latest, b"-ERR boom\r\n");
}
