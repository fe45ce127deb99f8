//! The `[auth]` settings that have no redis-server reply to compare with:
//! where the default user's password comes from, the delay after repeated
//! failed logins from one IP, protected mode for clients from other
//! addresses (and who may CONFIG SET), and refusing to start on a bad ACL
//! line. What redis-server does too is compared byte for byte in
//! `client_auth.rs` and `acl_commands.rs`.

use crate::support;

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use support::auth::{auth_toml, noperm_command, AS_ADMIN, NOAUTH, OK, WRONGPASS};
use support::resp::{connect_from, encode};
use support::util::TempDir;
use support::{run_keyway, Cluster, Launch, Proxy, RawClient, Ready, OP_TIMEOUT};

/// Where the default user's password comes from (`auth.password`,
/// `auth.password_file`, `KEYWAY_PASSWORD`), users without a password,
/// and the delay after repeated failed logins from one IP.
#[test]
fn passwords_and_the_delay_after_failed_logins() {
    let cluster = Cluster::start();
    let dir = TempDir::new("auth");

    // The first line of the password file.
    let file = dir.path().join("keyway.pass");
    std::fs::write(&file, "filepw\nnot-this-line\n").unwrap();
    let launch = Launch {
        ready: Ready::ServingAs {
            user: "default",
            password: "filepw",
        },
        ..Launch::default()
    };
    let toml = format!("[auth]\npassword_file = \"{}\"\n", file.display());
    let from_file = Proxy::start_configured(&cluster, &toml, launch);
    let mut client = from_file.raw_client();
    assert_eq!(client.cmd(&["GET", "k"]), NOAUTH);
    assert_eq!(client.cmd(&["AUTH", "not-this-line"]), WRONGPASS);
    assert_eq!(client.cmd(&["AUTH", "filepw"]), OK);
    assert_eq!(client.cmd(&["ACL", "WHOAMI"]), "$7\r\ndefault\r\n");
    let mut resp3 = from_file.raw_client();
    let hello = resp3.cmd(&["HELLO", "3", "AUTH", "default", "filepw"]);
    assert!(hello.starts_with("%7\r\n"), "{hello:?}");
    assert_eq!(resp3.cmd(&["GET", "k"]), "_\r\n");

    // KEYWAY_PASSWORD overrides auth.password.
    let launch = Launch {
        env: &[("KEYWAY_PASSWORD", "envpw")],
        ready: Ready::ServingAs {
            user: "default",
            password: "envpw",
        },
        ..Launch::default()
    };
    let from_env = Proxy::start_configured(&cluster, "[auth]\npassword = \"configpw\"\n", launch);
    let mut client = from_env.raw_client();
    assert_eq!(client.cmd(&["AUTH", "configpw"]), WRONGPASS);
    assert_eq!(client.cmd(&["AUTH", "envpw"]), OK);

    // Users but no password: still no anonymous access. (keyway's rule;
    // redis-server would leave its default user `nopass` and log every
    // client in.)
    let launch = Launch {
        ready: AS_ADMIN,
        ..Launch::default()
    };
    let toml = "[auth]\nusers = [\"admin on >adminpw ~* &* +@all\"]\n";
    let users_only = Proxy::start_configured(&cluster, toml, launch);
    let mut client = users_only.raw_client();
    assert_eq!(client.cmd(&["GET", "k"]), NOAUTH);
    assert_eq!(client.cmd(&["AUTH", "admin", "adminpw"]), OK);

    // A keyway that slows down repeated failed logins, listening on every
    // address so that a client can also come from 127.0.0.2.
    let launch = Launch {
        listen_ip: "0.0.0.0",
        ready: AS_ADMIN,
        ..Launch::default()
    };
    let extra = "max_failures = 10\nfailure_window_s = 10\nfailure_delay_ms = 1000\n";
    let guarded = Proxy::start_configured(&cluster, &auth_toml(extra), launch);

    // A real client logs in from its URL: AUTH in RESP2, HELLO 3 AUTH in
    // RESP3 (successful logins are not failures).
    for query in ["", "?protocol=resp3"] {
        let url = format!("redis://alice:alicepw@{}/{query}", guarded.addr());
        let mut con = redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(OP_TIMEOUT))
            .unwrap_or_else(|e| panic!("log in as alice {query}: {e}"));
        con.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
        let () = redis::cmd("SET")
            .arg("app:rc")
            .arg("v")
            .query(&mut con)
            .unwrap();
        let v: String = redis::cmd("GET").arg("app:rc").query(&mut con).unwrap();
        assert_eq!(v, "v");
        let denied = redis::cmd("GET")
            .arg("other")
            .query::<Option<String>>(&mut con)
            .unwrap_err();
        assert_eq!(denied.code(), Some("NOPERM"), "{denied}");
    }

    // After 10 failures from one IP within 10 s, each further login attempt
    // from that IP is answered after 1 s, even a right one; replies stay
    // in order. Another IP (127.0.0.2) is not slowed down.
    let mut attacker = guarded.raw_client();
    for i in 0..10 {
        let attempt: &[&str] = if i % 2 == 0 {
            &["AUTH", "admin", "guess"]
        } else {
            &["HELLO", "3", "AUTH", "admin", "guess"]
        };
        let t = Instant::now();
        assert_eq!(attacker.cmd(attempt), WRONGPASS, "attempt {}", i + 1);
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "attempt {} is within the limit, yet took {:?}",
            i + 1,
            t.elapsed()
        );
    }
    let delayed = |client: &mut RawClient, args: &[&str], expected: &str| {
        let t = Instant::now();
        assert_eq!(client.cmd(args), expected, "{args:?}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "{args:?} past the limit answered after {took:?}, not ~1 s"
        );
    };
    delayed(&mut attacker, &["AUTH", "admin", "guess"], WRONGPASS);
    delayed(&mut guarded.raw_client(), &["AUTH", "admin", "adminpw"], OK);
    let mut pipelined = guarded.raw_client();
    let mut requests = encode(&[b"AUTH", b"admin", b"guess"]);
    requests.extend(encode(&[b"AUTH", b"admin", b"adminpw"]));
    requests.extend(encode(&[b"ACL", b"WHOAMI"]));
    let t = Instant::now();
    pipelined.send(&requests);
    assert_eq!(pipelined.reply_text(), WRONGPASS);
    assert_eq!(pipelined.reply_text(), OK);
    assert_eq!(pipelined.reply_text(), "$5\r\nadmin\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );

    // With a password, protected mode does not refuse 127.0.0.2 either.
    let mut elsewhere = RawClient::new(connect_from("127.0.0.2", &guarded.addr(), OP_TIMEOUT));
    assert_eq!(elsewhere.cmd(&["GET", "k"]), NOAUTH);
    let t = Instant::now();
    assert_eq!(elsewhere.cmd(&["AUTH", "admin", "adminpw"]), OK);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "another IP is not delayed: {:?}",
        t.elapsed()
    );
}

/// What a client connecting from `local_ip` first gets: a reply sent as
/// soon as it connects (redis-server's protected mode does that), or else
/// the reply to a PING.
fn first_reply(addr: &str, local_ip: &str) -> (String, RawClient) {
    let stream = connect_from(local_ip, addr, OP_TIMEOUT);
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let greeted = match stream.peek(&mut [0u8; 1]) {
        Ok(_) => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("reading from {addr} as {local_ip}: {e}"),
    };
    stream.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
    if !greeted {
        (&stream).write_all(&encode(&[b"PING"])).unwrap();
    }
    let mut client = RawClient::new(stream);
    (client.reply_text(), client)
}

/// With neither a password nor users, keyway serves only loopback clients
/// (127.0.0.1, ::1) unless `protected_mode = false`, and then lets only
/// loopback clients change the cluster's config; with users, CONFIG SET
/// needs `+@admin`.
#[test]
fn protected_mode_and_who_may_config_set() {
    let cluster = Cluster::start();
    let on_all_ips = Launch {
        listen_ip: "0.0.0.0",
        ..Launch::default()
    };
    let config_set = ["CONFIG", "SET", "slowlog-log-slower-than", "10000"];

    let protected = Proxy::start_configured(&cluster, "", on_all_ips);
    let (reply, mut refused) = first_reply(&protected.addr(), "127.0.0.2");
    // keyway words its own DENIED text; only the error code is redis-server's.
    assert!(reply.starts_with("-DENIED "), "{reply:?}");
    refused.expect_closed();
    let (reply, mut local) = first_reply(&protected.addr(), "127.0.0.1");
    assert_eq!(reply, "+PONG\r\n");
    assert_eq!(local.cmd(&config_set), OK, "a loopback client may");

    let open = Proxy::start_configured(&cluster, "[auth]\nprotected_mode = false\n", on_all_ips);
    let (reply, mut remote) = first_reply(&open.addr(), "127.0.0.2");
    assert_eq!(reply, "+PONG\r\n");
    assert_eq!(remote.cmd(&["GET", "k"]), "$-1\r\n");
    // Without users nobody is an admin: only loopback clients may change
    // the nodes' config. keyway's wording; -ERR or -NOPERM.
    let refusal = remote.cmd(&config_set);
    assert!(
        refusal.starts_with("-ERR") || refusal.starts_with("-NOPERM"),
        "{refusal:?}"
    );
    let (_, mut local) = first_reply(&open.addr(), "127.0.0.1");
    assert_eq!(local.cmd(&config_set), OK);

    let launch = Launch {
        ready: AS_ADMIN,
        ..Launch::default()
    };
    let with_users = Proxy::start_configured(&cluster, &auth_toml(""), launch);
    let mut admin = with_users.raw_client();
    assert_eq!(admin.cmd(&["AUTH", "admin", "adminpw"]), OK);
    assert_eq!(admin.cmd(&config_set), OK);
    for (user, password) in [("alice", "alicepw"), ("bob", "x")] {
        let mut client = with_users.raw_client();
        assert_eq!(client.cmd(&["AUTH", user, password]), OK);
        assert_eq!(
            client.cmd(&config_set),
            noperm_command("config|set"),
            "{user}"
        );
    }
}

/// A bad ACL line in `auth.users` or in `auth.acl_file` stops keyway at
/// start with exit status 2 and a message naming the user, the rule and
/// why.
#[test]
fn a_bad_acl_line_stops_keyway_at_start() {
    let dir = TempDir::new("auth-config");
    let config = dir.path().join("keyway.toml");
    for (line, named, why) in [
        ("alice on >pw +@nosuch", "+@nosuch", &["unknown"][..]),
        ("alice on >pw +nosuchcommand", "nosuchcommand", &["unknown"]),
        (
            "alice on >pw bogus ~x",
            "bogus",
            &["unknown", "syntax", "invalid"],
        ),
        (
            "alice on >pw %Q~x",
            "%Q~x",
            &["unknown", "syntax", "invalid"],
        ),
    ] {
        let toml = format!("[auth]\npassword = \"pw\"\nusers = [\"{line}\"]\n");
        std::fs::write(&config, toml).unwrap();
        let (status, output) = run_keyway(&["-c", config.to_str().unwrap()]);
        assert_eq!(status.code(), Some(2), "{line}: {output}");
        let lower = output.to_lowercase();
        assert!(
            output.contains("alice") && output.contains(named),
            "{line}: {output}"
        );
        assert!(why.iter().any(|w| lower.contains(w)), "{line}: {output}");
    }

    let acl_file = dir.path().join("users.acl");
    std::fs::write(
        &acl_file,
        "user admin on >adminpw ~* +@all\nuser alice on >pw ~app:* +@nosuch\n",
    )
    .unwrap();
    let toml = format!("[auth]\nacl_file = \"{}\"\n", acl_file.display());
    std::fs::write(&config, toml).unwrap();
    let (status, output) = run_keyway(&["-c", config.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains(acl_file.to_str().unwrap()) && output.contains("+@nosuch"),
        "names the file and the rule: {output}"
    );
}
