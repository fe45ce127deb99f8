//! What the client-authentication tests share: redis-server 7.0's exact
//! replies (observed on 7.0.15), the users that both keyway and the
//! reference [`Standalone`] server are configured with, and a [`Pair`] of
//! connections that sends the same requests to both and compares the raw
//! replies byte for byte.

use super::cluster::Cluster;
use super::proxy::{Launch, Proxy, Ready};
use super::resp::{encode, RawClient};
use super::standalone::Standalone;
use super::OP_TIMEOUT;

/// Any command but AUTH, HELLO, QUIT and RESET before logging in.
pub const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
/// HELLO without `AUTH user pass` before logging in.
pub const HELLO_NOAUTH: &str = "-NOAUTH HELLO must be called with the client already \
     authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate \
     the client and select the RESP protocol version at the same time\r\n";
/// A wrong password, an unknown user, or a user that is `off`.
pub const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
/// A key outside the user's `~`/`%R~`/`%W~` patterns.
pub const NOPERM_KEY: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";
/// A channel outside the user's `&` patterns.
pub const NOPERM_CHANNEL: &str =
    "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n";
pub const OK: &str = "+OK\r\n";

/// A command the user may not run: `name` is lower case, a subcommand as
/// `container|sub` (`config|set`).
pub fn noperm_command(name: &str) -> String {
    format!("-NOPERM this user has no permissions to run the '{name}' command\r\n")
}

/// The default user's password (keyway's `auth.password`,
/// redis-server's `requirepass`).
pub const DEFAULT_PASSWORD: &str = "defpw";

/// Every kind of ACL rule, in keyway's `auth.users` syntax (and redis-server's
/// `user` directive without the word `user`).
pub const USERS: &[&str] = &[
    "admin on >adminpw ~* &* +@all",
    // Key patterns read-write, read-only and write-only; channel patterns;
    // categories; a command taken away from a category.
    "alice on >alicepw ~app:* %R~cache:* %W~log:* &chan:* \
     +@read +@write +@pubsub +@transaction +@connection -flushall",
    // nopass: any password; a category taken away, a subcommand given back.
    "bob on nopass ~* &* +@all -@dangerous +config|get",
    // off: cannot log in.
    "carol off >carolpw ~* +@all",
    // nocommands then one command; allkeys, allchannels.
    "dave on >davepw allkeys allchannels nocommands +get",
    // resetpass forgets the first password; resetkeys the first pattern.
    "erin on >oldpw resetpass >erinpw allcommands -@dangerous ~* resetkeys ~e:* &*",
];

/// Waits for a keyway with [`USERS`] by logging in as `admin`.
pub const AS_ADMIN: Ready = Ready::ServingAs {
    user: "admin",
    password: "adminpw",
};

/// keyway's `[auth]` section with [`DEFAULT_PASSWORD`] and [`USERS`], then
/// `extra` (more `[auth]` keys).
pub fn auth_toml(extra: &str) -> String {
    let users: Vec<String> = USERS.iter().map(|u| format!("  \"{u}\",\n")).collect();
    format!(
        "[auth]\npassword = \"{DEFAULT_PASSWORD}\"\nusers = [\n{}]\n{extra}",
        users.concat()
    )
}

/// A keyway with [`auth_toml`]`(extra)` in front of `cluster`, and a
/// standalone redis-server with the same users and password.
pub fn keyway_and_redis(cluster: &Cluster, extra: &str) -> (Proxy, Standalone) {
    let launch = Launch {
        ready: AS_ADMIN,
        ..Launch::default()
    };
    let proxy = Proxy::start_configured(cluster, &auth_toml(extra), launch);
    let server = Standalone::start(USERS, Some(DEFAULT_PASSWORD));
    (proxy, server)
}

/// `expected`, a RESP2 reply from a table, as RESP3 sends it: the null
/// bulk string `$-1` becomes `_` (the only difference in these tables).
pub fn in_resp3(expected: &str) -> String {
    expected.replace("$-1\r\n", "_\r\n")
}

/// A `HELLO` reply with the client id masked (it differs between any two
/// servers); keyway's other fields are redis-server's.
pub fn masked_hello(reply: &str) -> String {
    match reply.split_once("$2\r\nid\r\n:") {
        Some((head, rest)) => {
            let after = rest.split_once("\r\n").map_or("", |(_, a)| a);
            format!("{head}$2\r\nid\r\n:<id>\r\n{after}")
        }
        None => reply.to_string(),
    }
}

/// Two raw connections, one to keyway and one to the reference
/// redis-server, sent the same requests.
///
/// `keyway` is any address: the tests' tables also run with a second,
/// identical standalone server there, which checks every expected reply
/// against redis-server alone (and passes without keyway).
pub struct Pair {
    pub keyway: RawClient,
    pub redis: RawClient,
}

impl Pair {
    /// Fresh, anonymous connections to keyway's address and to `server`.
    pub fn new(keyway: &str, server: &Standalone) -> Pair {
        Pair {
            keyway: RawClient::connect(keyway, OP_TIMEOUT),
            redis: server.raw_client(),
        }
    }

    /// Fresh connections to both, logged in as `user` with `AUTH`.
    pub fn login(keyway: &str, server: &Standalone, user: &str, password: &str) -> Pair {
        let mut pair = Pair::new(keyway, server);
        pair.expect(&["AUTH", user, password], OK);
        pair
    }

    /// Sends `args` to both and returns (keyway's reply, redis-server's).
    pub fn both(&mut self, args: &[&str]) -> (String, String) {
        (self.keyway.cmd(args), self.redis.cmd(args))
    }

    /// Sends `args` to both, asserts the replies are equal byte for byte and
    /// returns it.
    pub fn same(&mut self, args: &[&str]) -> String {
        let (ours, theirs) = self.both(args);
        assert_eq!(
            ours, theirs,
            "keyway differs from redis-server for {args:?}"
        );
        ours
    }

    /// Like [`Pair::same`], and the reply is `expected`: checked against
    /// redis-server first, so a wrong table fails as such.
    pub fn expect(&mut self, args: &[&str], expected: &str) {
        let (ours, theirs) = self.both(args);
        assert_eq!(theirs, expected, "redis-server's reply to {args:?}");
        assert_eq!(
            ours, theirs,
            "keyway differs from redis-server for {args:?}"
        );
    }

    /// Each row of `table` with [`Pair::expect`]; in RESP3 (`resp3`) the
    /// expected replies are converted with [`in_resp3`].
    pub fn table(&mut self, table: &[(&[&str], &str)], resp3: bool) {
        for (args, expected) in table {
            let expected = if resp3 {
                in_resp3(expected)
            } else {
                expected.to_string()
            };
            self.expect(args, &expected);
        }
    }

    /// Like [`Pair::table`], pipelined: every request written in one go to
    /// each side, then as many replies read; they must be the expected ones
    /// in the same order.
    pub fn pipelined_table(&mut self, table: &[(&[&str], &str)], resp3: bool) {
        let mut bytes = Vec::new();
        for (args, _) in table {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            bytes.extend(encode(&args));
        }
        self.keyway.send(&bytes);
        self.redis.send(&bytes);
        let ours: Vec<String> = table.iter().map(|_| self.keyway.reply_text()).collect();
        let theirs: Vec<String> = table.iter().map(|_| self.redis.reply_text()).collect();
        for (((args, expected), ours), theirs) in table.iter().zip(&ours).zip(&theirs) {
            let expected = if resp3 {
                in_resp3(expected)
            } else {
                expected.to_string()
            };
            assert_eq!(
                *theirs, expected,
                "pipelined: redis-server's reply to {args:?}"
            );
            assert_eq!(
                ours, theirs,
                "pipelined: keyway differs from redis-server for {args:?}"
            );
        }
    }

    /// Says `HELLO 3 AUTH user password` to both: the same reply but for
    /// the client id.
    pub fn hello3(&mut self, user: &str, password: &str) {
        let (ours, theirs) = self.both(&["HELLO", "3", "AUTH", user, password]);
        assert!(theirs.starts_with("%7\r\n"), "redis-server: {theirs:?}");
        assert_eq!(
            masked_hello(&ours),
            masked_hello(&theirs),
            "HELLO 3 AUTH {user}"
        );
    }
}
