//! What keyway does with bad, odd or unsupported input on a raw socket:
//! the same error texts as redis-server, a close only where redis-server
//! closes, never a hang (every read has a timeout), and never any effect on
//! other clients.

use crate::support;

use support::{Cluster, Proxy, RawClient};

/// Asserts that `reply` starts with `prefix`, showing both otherwise.
fn assert_starts(reply: &str, prefix: &str, what: &str) {
    assert!(
        reply.starts_with(prefix),
        "{what}: expected a reply starting with {prefix:?}, got {reply:?}"
    );
}

/// Sends malformed bytes on a fresh connection: keyway must answer
/// `-ERR Protocol error...` and close, while `bystander` keeps working.
fn protocol_error(proxy: &Proxy, bystander: &mut RawClient, input: &[u8]) {
    let mut raw = proxy.raw_client();
    raw.send(input);
    let what = format!("input {:?}", String::from_utf8_lossy(input));
    assert_starts(&raw.reply_text(), "-ERR Protocol error", &what);
    raw.expect_closed();
    assert_eq!(
        bystander.cmd(&["PING"]),
        "+PONG\r\n",
        "bystander after {what}"
    );
}

#[test]
fn bad_and_unusual_input() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut bystander = proxy.raw_client();
    assert_eq!(
        bystander.cmd(&["SET", "bystander", "still here"]),
        "+OK\r\n"
    );

    // Malformed RESP: error reply, then the connection is closed.
    protocol_error(&proxy, &mut bystander, b"*1\r\n$x\r\n");
    protocol_error(&proxy, &mut bystander, b"*abc\r\n");
    protocol_error(&proxy, &mut bystander, b"*3000000000\r\n");
    protocol_error(&proxy, &mut bystander, b"*1\r\n+PING\r\n");
    protocol_error(&proxy, &mut bystander, b"*2\r\n$3\r\nGET\r\n:1\r\n");
    protocol_error(&proxy, &mut bystander, b"SET a \"b\r\n");
    // Oversized bulk (above the 512 MiB default limit), declared up front.
    protocol_error(&proxy, &mut bystander, b"*1\r\n$600000000\r\n");
    // A good command, then garbage in the same write: the good one is
    // answered first.
    let mut raw = proxy.raw_client();
    raw.send(b"*1\r\n$4\r\nPING\r\n*1\r\n$-5\r\n");
    assert_eq!(raw.reply_text(), "+PONG\r\n");
    assert_starts(
        &raw.reply_text(),
        "-ERR Protocol error",
        "negative bulk length",
    );
    raw.expect_closed();
    assert_eq!(
        bystander.cmd(&["GET", "bystander"]),
        "$10\r\nstill here\r\n"
    );

    let mut raw = proxy.raw_client();
    // A top-level '$' is not RESP: like redis-server, keyway reads the line
    // as an inline command named "$5" (and the next line as HELLO).
    raw.send(b"$5\r\nhello\r\n");
    let reply = raw.reply_text();
    assert_starts(&reply, "-ERR unknown command", "top-level bulk");
    assert!(
        reply.contains("$5"),
        "should name the command '$5': {reply:?}"
    );
    let hello = raw.reply_text();
    assert!(
        hello.starts_with('*') && hello.contains("proto"),
        "inline HELLO: {hello:?}"
    );

    // Unknown command and wrong arity: an error, and the connection stays usable.
    assert_starts(
        &raw.cmd(&["NOSUCHCMD", "x"]),
        "-ERR unknown command",
        "unknown command",
    );
    assert_eq!(
        raw.cmd(&["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_starts(
        &raw.cmd(&["SET", "k"]),
        "-ERR wrong number of arguments for 'set' command",
        "SET arity",
    );
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");

    // Inline commands, including quoting and blank lines.
    raw.send(b"PING\r\n");
    assert_eq!(raw.reply_text(), "+PONG\r\n");
    raw.send(b"SET inline \"b c\"\r\n\r\nGET inline\r\n");
    assert_eq!(raw.reply_text(), "+OK\r\n");
    assert_eq!(raw.reply_text(), "$3\r\nb c\r\n");
    raw.send(b"ping\n");
    assert_eq!(raw.reply_text(), "+PONG\r\n");

    // A request split across many writes is reassembled.
    for byte in b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$2\r\nok\r\n" {
        raw.send(&[*byte]);
    }
    assert_eq!(raw.reply_text(), "+OK\r\n");
    // Several requests in one write are all answered, in order.
    raw.send(
        b"*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n",
    );
    assert_eq!(raw.reply_text(), "$2\r\nok\r\n");
    assert_eq!(raw.reply_text(), "+PONG\r\n");
    assert_eq!(raw.reply_text(), "$2\r\nhi\r\n");

    // Connection-level commands keyway answers itself.
    assert_starts(&raw.cmd(&["HELLO", "4"]), "-NOPROTO", "HELLO 4");
    let hello2 = raw.cmd(&["HELLO", "2"]);
    assert!(
        hello2.starts_with('*') && hello2.contains("proto"),
        "HELLO 2: {hello2:?}"
    );
    assert_starts(&raw.cmd(&["SELECT", "1"]), "-ERR", "SELECT 1");
    assert_eq!(raw.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n");
    assert_eq!(raw.cmd(&["CLIENT", "SETNAME", "proto-test"]), "+OK\r\n");
    assert_eq!(raw.cmd(&["CLIENT", "GETNAME"]), "$10\r\nproto-test\r\n");
    assert_starts(
        &raw.cmd(&["CLIENT", "SETNAME", "has space"]),
        "-ERR",
        "CLIENT SETNAME with a space",
    );
    let count = raw.cmd(&["COMMAND", "COUNT"]);
    let n: i64 = count
        .strip_prefix(':')
        .and_then(|s| s.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("COMMAND COUNT: {count:?}"));
    assert!(n >= 200, "COMMAND COUNT = {n}");
    assert_eq!(raw.cmd(&["ECHO", "x\r\ny"]), "$4\r\nx\r\ny\r\n");

    // Not proxied: a clear error naming the command, not a hang.
    let reply = raw.cmd(&["CLUSTER", "MYID"]);
    assert_starts(&reply, "-ERR", "CLUSTER MYID");
    assert!(
        reply.to_uppercase().contains("'CLUSTER MYID'"),
        "the error should name the command, got {reply:?}"
    );
    // After all that, the same connection still works.
    assert_eq!(raw.cmd(&["GET", "split"]), "$2\r\nok\r\n");
    assert_eq!(
        bystander.cmd(&["GET", "bystander"]),
        "$10\r\nstill here\r\n"
    );

    // QUIT answers +OK and closes.
    assert_eq!(raw.cmd(&["QUIT"]), "+OK\r\n");
    raw.expect_closed();
}
