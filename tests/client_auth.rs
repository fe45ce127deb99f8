//! keyway authenticates its own clients (`[auth]`: a password for the
//! `default` user, ACL users) the way redis-server 7.0 does, byte for byte:
//! a standalone redis-server configured with the same `user` lines answers
//! every request of the tables below, and keyway must answer the same
//! bytes, in RESP2 and RESP3, one request at a time and pipelined, in
//! transactions, across split multi-key commands and for pub/sub channels.
//! The ACL commands are in `acl_commands.rs`; what has no redis-server
//! reply to compare with (password sources, the delay after failed logins,
//! protected mode, bad ACL lines at start) in `auth_config.rs`.

use crate::support;

use support::auth::{
    keyway_and_redis, masked_hello, Pair, DEFAULT_PASSWORD, HELLO_NOAUTH, NOAUTH, NOPERM_CHANNEL,
    NOPERM_KEY, OK, USERS, WRONGPASS,
};
use support::{key_slot, Cluster, Standalone};

// Left out of the tables, because they legitimately differ through a
// proxy: HELLO's client id (masked), PUBLISH's receiver count (a node
// counts its own subscribers), whatever counts or lists the keyspace
// (DBSIZE, KEYS, SCAN: the cluster also holds the harness's key), CLIENT
// ID/LIST/INFO lines, and keyway's own protected-mode wording
// (auth_config.rs).

/// Requests and redis-server's replies to them, in RESP2.
type Table<'a> = &'a [(&'a [&'a str], &'a str)];

/// Before logging in: only AUTH, HELLO, QUIT and RESET are served;
/// unknown commands and wrong arity are reported first, as redis-server
/// does; every failed login looks the same; RESET logs out.
const ANONYMOUS: Table = &[
    (&["GET", "app:1"], NOAUTH),
    (&["PING"], NOAUTH),
    (&["CLIENT", "LIST"], NOAUTH),
    (&["ACL", "WHOAMI"], NOAUTH),
    (&["SUBSCRIBE", "chan:1"], NOAUTH),
    (&["MULTI"], NOAUTH),
    (
        &["EXEC"],
        "-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n",
    ),
    (
        &["NOSUCH", "x"],
        "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
    ),
    (
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        &["AUTH"],
        "-ERR wrong number of arguments for 'auth' command\r\n",
    ),
    (&["AUTH", "a", "b", "c"], "-ERR syntax error\r\n"),
    (&["HELLO"], HELLO_NOAUTH),
    (&["HELLO", "3"], HELLO_NOAUTH),
    (&["HELLO", "2", "SETNAME", "x"], HELLO_NOAUTH),
    (
        &["HELLO", "3", "AUTH", "alice"],
        "-ERR Syntax error in HELLO option 'AUTH'\r\n",
    ),
    (
        &["HELLO", "4", "AUTH", "alice", "alicepw"],
        "-NOPROTO unsupported protocol version\r\n",
    ),
    (&["AUTH", "wrong"], WRONGPASS),
    (&["AUTH", "alice", "wrong"], WRONGPASS),
    (&["AUTH", "nosuch", "alicepw"], WRONGPASS),
    // `off`.
    (&["AUTH", "carol", "carolpw"], WRONGPASS),
    // Forgotten by `resetpass`.
    (&["AUTH", "erin", "oldpw"], WRONGPASS),
    (&["HELLO", "3", "AUTH", "alice", "wrong"], WRONGPASS),
    (&["GET", "app:1"], NOAUTH),
    (&["RESET"], "+RESET\r\n"),
    (&["AUTH", DEFAULT_PASSWORD], OK),
    (&["ACL", "WHOAMI"], "$7\r\ndefault\r\n"),
    // `nopass`: any password.
    (&["AUTH", "bob", "anything"], OK),
    (&["ACL", "WHOAMI"], "$3\r\nbob\r\n"),
    // A failed login leaves the client logged in as before.
    (&["AUTH", "alice", "wrong"], WRONGPASS),
    (&["ACL", "WHOAMI"], "$3\r\nbob\r\n"),
    (&["AUTH", "default", DEFAULT_PASSWORD], OK),
    (&["ACL", "WHOAMI"], "$7\r\ndefault\r\n"),
    (&["RESET"], "+RESET\r\n"),
    (&["GET", "app:1"], NOAUTH),
];

/// alice: `~app:* %R~cache:* %W~log:* &chan:* +@read +@write +@pubsub
/// +@transaction +@connection -flushall`. Idempotent, so it can run again
/// (pipelined, in RESP3) with the same replies. `app:1`, `app:3` and
/// `other` are on three different nodes: keyway splits the MGET/MSET.
const ALICE: Table = &[
    (&["SET", "app:1", "v"], OK),
    (&["GET", "app:1"], "$1\r\nv\r\n"),
    (&["GET", "other"], NOPERM_KEY),
    (&["SET", "log:1", "x"], OK),
    (&["GET", "log:1"], NOPERM_KEY),
    // APPEND needs only write access to its key.
    (&["APPEND", "log:1", "y"], ":2\r\n"),
    (&["SET", "cache:1", "x"], NOPERM_KEY),
    (&["GET", "cache:1"], "$-1\r\n"),
    (&["EXISTS", "cache:1"], ":0\r\n"),
    // COPY reads its source and writes its destination.
    (&["COPY", "cache:{t}1", "app:{t}2"], ":0\r\n"),
    (&["COPY", "app:{t}1", "cache:{t}2"], NOPERM_KEY),
    (&["MGET", "app:1", "app:3"], "*2\r\n$1\r\nv\r\n$-1\r\n"),
    // Refused whole, before keyway splits it across slots.
    (&["MGET", "app:1", "other"], NOPERM_KEY),
    (&["MSET", "app:1", "v", "other", "w"], NOPERM_KEY),
    (&["DEL", "other"], NOPERM_KEY),
    (
        &["FLUSHALL"],
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n",
    ),
    (
        &["CONFIG", "GET", "maxmemory"],
        "-NOPERM this user has no permissions to run the 'config|get' command\r\n",
    ),
    (
        &["CONFIG", "SET", "maxmemory", "0"],
        "-NOPERM this user has no permissions to run the 'config|set' command\r\n",
    ),
    (
        &["ACL", "WHOAMI"],
        "-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n",
    ),
    (
        &["ACL", "SETUSER", "alice", "+@all"],
        "-NOPERM this user has no permissions to run the 'acl|setuser' command\r\n",
    ),
    (
        &["EVAL", "return 1", "0"],
        "-NOPERM this user has no permissions to run the 'eval' command\r\n",
    ),
    (&["PUBLISH", "other", "m"], NOPERM_CHANNEL),
    (&["SPUBLISH", "other", "m"], NOPERM_CHANNEL),
    (&["PUBLISH", "chan:1", "m"], ":0\r\n"),
    (&["PING"], "+PONG\r\n"),
    (
        &["NOSUCH"],
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    ),
    (
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    ),
];

/// A denied command in MULTI is refused when queued and aborts EXEC.
const TRANSACTIONS: Table = &[
    (&["MULTI"], OK),
    (&["SET", "app:{m}1", "v"], "+QUEUED\r\n"),
    (&["GET", "other"], NOPERM_KEY),
    (
        &["FLUSHALL"],
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n",
    ),
    (
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    ),
    (&["MULTI"], OK),
    (&["SET", "app:{m}1", "v"], "+QUEUED\r\n"),
    (&["GET", "app:{m}1"], "+QUEUED\r\n"),
    (&["EXEC"], "*2\r\n+OK\r\n$1\r\nv\r\n"),
];

/// bob: `nopass ~* &* +@all -@dangerous +config|get`.
const BOB: Table = &[
    (&["ACL", "WHOAMI"], "$3\r\nbob\r\n"),
    (&["SET", "b:1", "v"], OK),
    (
        &["KEYS", "b:*"],
        "-NOPERM this user has no permissions to run the 'keys' command\r\n",
    ),
    (
        &["FLUSHALL"],
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n",
    ),
    (
        &["CONFIG", "SET", "maxmemory", "0"],
        "-NOPERM this user has no permissions to run the 'config|set' command\r\n",
    ),
];

/// dave: `allkeys allchannels nocommands +get`.
const DAVE: Table = &[
    (&["GET", "d:1"], "$-1\r\n"),
    (
        &["SET", "d:1", "v"],
        "-NOPERM this user has no permissions to run the 'set' command\r\n",
    ),
    (
        &["PING"],
        "-NOPERM this user has no permissions to run the 'ping' command\r\n",
    ),
];

/// erin: `>oldpw resetpass >erinpw allcommands -@dangerous ~* resetkeys
/// ~e:* &*`.
const ERIN: Table = &[
    (&["ACL", "WHOAMI"], "$4\r\nerin\r\n"),
    (&["GET", "e:1"], "$-1\r\n"),
    (&["GET", "x"], NOPERM_KEY),
    (&["PUBLISH", "any", "m"], ":0\r\n"),
    (
        &["KEYS", "e:*"],
        "-NOPERM this user has no permissions to run the 'keys' command\r\n",
    ),
];

/// Subscriptions in RESP2: a forbidden channel or pattern refuses the
/// whole command; a pattern is allowed only if a channel rule matches it
/// literally (`chan:1*` is not, though it matches `chan:*` as a glob).
const SUBSCRIBE: Table = &[
    (&["SSUBSCRIBE", "other"], NOPERM_CHANNEL),
    (&["SUBSCRIBE", "other"], NOPERM_CHANNEL),
    (&["SUBSCRIBE", "chan:1", "other"], NOPERM_CHANNEL),
    (
        &["SUBSCRIBE", "chan:1"],
        "*3\r\n$9\r\nsubscribe\r\n$6\r\nchan:1\r\n:1\r\n",
    ),
    (&["PSUBSCRIBE", "other*"], NOPERM_CHANNEL),
    (&["PSUBSCRIBE", "chan:1*"], NOPERM_CHANNEL),
    (
        &["PSUBSCRIBE", "chan:*"],
        "*3\r\n$10\r\npsubscribe\r\n$6\r\nchan:*\r\n:2\r\n",
    ),
];

/// Subscribed in RESP3, other commands still run, with the same denials.
const SUBSCRIBE_RESP3: Table = &[
    (&["SUBSCRIBE", "other"], NOPERM_CHANNEL),
    (
        &["SUBSCRIBE", "chan:1"],
        ">3\r\n$9\r\nsubscribe\r\n$6\r\nchan:1\r\n:1\r\n",
    ),
    (&["GET", "other"], NOPERM_KEY),
    (&["PUBLISH", "other", "x"], NOPERM_CHANNEL),
    (&["GET", "cache:1"], "_\r\n"),
    (
        &["UNSUBSCRIBE"],
        ">3\r\n$11\r\nunsubscribe\r\n$6\r\nchan:1\r\n:0\r\n",
    ),
];

#[test]
fn replies_match_redis_server_byte_for_byte() {
    let cluster = Cluster::start();
    let nodes = ["app:1", "app:3", "other"].map(|k| cluster.node_of_slot(key_slot(k.as_bytes())));
    assert!(
        nodes[0] != nodes[1] && nodes[0] != nodes[2],
        "the split MGET/MSET rows need keys on different nodes: {nodes:?}"
    );
    // Failed logins in the tables must not trigger the brute-force delay.
    let (proxy, server) = keyway_and_redis(&cluster, "max_failures = 1000\n");
    replies_match(&proxy.addr(), &server);
}

/// The same tables with a second, identical redis-server in keyway's
/// place: every expected reply is redis-server 7.0's own (this passes
/// without keyway).
#[test]
fn the_tables_are_redis_servers_own_replies() {
    let server = Standalone::start(USERS, Some(DEFAULT_PASSWORD));
    let twin = Standalone::start(USERS, Some(DEFAULT_PASSWORD));
    replies_match(&twin.addr(), &server);
}

fn replies_match(keyway: &str, server: &Standalone) {
    let mut anonymous = Pair::new(keyway, server);
    anonymous.table(ANONYMOUS, false);
    anonymous.expect(&["QUIT"], OK);
    anonymous.keyway.expect_closed();
    anonymous.redis.expect_closed();

    // alice in RESP2: one request at a time, then all of it pipelined.
    let mut alice = Pair::login(keyway, server, "alice", "alicepw");
    alice.table(ALICE, false);
    alice.table(TRANSACTIONS, false);
    let all: Vec<(&[&str], &str)> = ALICE.iter().chain(TRANSACTIONS).copied().collect();
    Pair::login(keyway, server, "alice", "alicepw").pipelined_table(&all, false);

    // alice in RESP3, logged in and named by HELLO; RESET logs out and
    // goes back to RESP2.
    let mut alice3 = Pair::new(keyway, server);
    let hello = ["HELLO", "3", "AUTH", "alice", "alicepw", "SETNAME", "app-1"];
    let (ours, theirs) = alice3.both(&hello);
    assert!(theirs.starts_with("%7\r\n"), "{theirs:?}");
    assert_eq!(masked_hello(&ours), masked_hello(&theirs));
    alice3.expect(&["CLIENT", "GETNAME"], "$5\r\napp-1\r\n");
    alice3.table(ALICE, true);
    alice3.table(TRANSACTIONS, true);
    alice3.pipelined_table(&all, true);
    alice3.expect(&["RESET"], "+RESET\r\n");
    alice3.expect(&["GET", "app:1"], NOAUTH);
    alice3.expect(
        &["GET"],
        "-ERR wrong number of arguments for 'get' command\r\n",
    );

    for (user, password, table) in [
        ("bob", "anything", BOB),
        ("dave", "davepw", DAVE),
        ("erin", "erinpw", ERIN),
    ] {
        Pair::login(keyway, server, user, password).table(table, false);
        let mut resp3 = Pair::new(keyway, server);
        resp3.hello3(user, password);
        resp3.table(table, true);
    }

    // Pub/sub: subscribe, receive what admin publishes, unsubscribe.
    let mut subscriber = Pair::login(keyway, server, "alice", "alicepw");
    subscriber.table(SUBSCRIBE, false);
    let mut admin = Pair::login(keyway, server, "admin", "adminpw");
    // How many receivers PUBLISH counts differs (a node counts only its
    // own subscribers); what the subscriber gets does not.
    let _ = admin.both(&["PUBLISH", "chan:1", "hi"]);
    // A message published through a node reaches the other nodes over the
    // cluster bus a moment later, so keyway's subscription (on some node)
    // may still get the tables' earlier `PUBLISH chan:1 m`: skip those.
    let mut ours = Vec::new();
    while ours.len() < 2 {
        let message = subscriber.keyway.reply_text();
        if !message.ends_with("$1\r\nm\r\n") {
            ours.push(message);
        }
    }
    let mut theirs = vec![subscriber.redis.reply_text(), subscriber.redis.reply_text()];
    ours.sort();
    theirs.sort();
    assert_eq!(
        theirs,
        [
            "*3\r\n$7\r\nmessage\r\n$6\r\nchan:1\r\n$2\r\nhi\r\n",
            "*4\r\n$8\r\npmessage\r\n$6\r\nchan:*\r\n$6\r\nchan:1\r\n$2\r\nhi\r\n",
        ]
    );
    assert_eq!(ours, theirs, "the messages alice receives");
    subscriber.table(
        &[
            (
                &["UNSUBSCRIBE", "chan:1"],
                "*3\r\n$11\r\nunsubscribe\r\n$6\r\nchan:1\r\n:1\r\n",
            ),
            (
                &["PUNSUBSCRIBE", "chan:*"],
                "*3\r\n$12\r\npunsubscribe\r\n$6\r\nchan:*\r\n:0\r\n",
            ),
            (&["GET", "other"], NOPERM_KEY),
        ],
        false,
    );
    let mut subscriber3 = Pair::new(keyway, server);
    subscriber3.hello3("alice", "alicepw");
    subscriber3.table(SUBSCRIBE_RESP3, false);
}
