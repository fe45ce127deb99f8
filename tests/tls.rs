//! TLS on both sides (issue 15), with certificates made by `openssl` at
//! test time ([`support::tls`]):
//!
//! - clients: `redis-cli --tls`, `redis-benchmark --tls` and the `redis`
//!   crate on keyway's TLS port beside the plain one (or alone, with
//!   `proxy.listen = ""`); mutual TLS required and optional; RSA, ECDSA,
//!   Ed25519 and chained server certificates; handshakes that fail
//!   (plaintext, unknown CA, expired, no client certificate, stalled) are
//!   closed and counted by reason while other clients go on; 500 clients,
//!   10,000-command pipelines and 16 MiB values over TLS; a client
//!   certificate's CN names its ACL user; certificates rotated on disk or
//!   by SIGHUP, a bad pair refused, the expiry gauge;
//! - the cluster: keyway in front of a 3+3 cluster whose nodes speak TLS
//!   only (`tls-cluster`, `tls-replication`, `tls-auth-clients`), alone
//!   and with a password: every kind of backend connection, resharding
//!   and failover under writes; `verify = "full"` checks the name,
//!   `verify = "ca"` does not.

use crate::support;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::http::Scrape;
use support::proxy::keyway_bin;
use support::pubsub_client::check_channel_and_shard_channel;
use support::tls::{self, CertKey, KeyType, Pki, Spec, TlsClient};
use support::util::{die_with_parent, free_ports, raise_nofile_limit, run_bounded, tail, TempDir};
use support::workload::{
    assert_no_errors, concurrent_clients, lost_increments, tags, writer, Seen,
};
use support::{
    key_for_slot, key_slot, poll_until, Background, Cluster, Launch, Proxy, Ready, OP_TIMEOUT,
};

// ---------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------

/// keyway's side of client TLS: a CA (which also signs client
/// certificates), keyway's certificate, and the port of its TLS listener.
struct Front {
    pki: Pki,
    server: CertKey,
    port: u16,
}

impl Front {
    /// An ECDSA server certificate for 127.0.0.1 and localhost.
    fn new() -> Front {
        Front::with(Spec::server("keyway"))
    }

    fn with(spec: Spec) -> Front {
        let pki = Pki::new("keyway test client-side CA");
        let server = pki.issue("server", &spec);
        Front {
            pki,
            server,
            port: free_ports(1)[0],
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// keyway's `[tls]` section, `extra` lines appended to it.
    fn section(&self, client_auth: &str, extra: &str) -> String {
        format!(
            "[tls]\nlisten = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n\
             client_auth = \"{client_auth}\"\n{extra}",
            self.addr(),
            self.server.cert.display(),
            self.server.key.display(),
            self.pki.ca().display()
        )
    }

    /// A client certificate with CN `cn` from keyway's CA.
    fn client(&self, cn: &str) -> CertKey {
        self.pki.issue(&format!("client-{cn}"), &Spec::client(cn))
    }

    /// A TLS connection to keyway, the handshake done.
    fn connect(&self, client: Option<&CertKey>) -> io::Result<TlsClient> {
        TlsClient::connect(&self.addr(), self.pki.ca(), client)
    }

    /// A TLS connection that answered PING, or why not (the handshake
    /// or the first read failed: with TLS 1.3, a server refuses a client's
    /// certificate after the client finished its side of the handshake).
    fn ping(&self, client: Option<&CertKey>) -> Result<TlsClient, String> {
        let mut con = self
            .connect(client)
            .map_err(|e| format!("handshake: {e}"))?;
        match con.try_cmd(&["PING"]) {
            Ok(reply) if reply == "+PONG\r\n" => Ok(con),
            Ok(reply) => Err(format!("PING answered {reply:?}")),
            Err(e) => Err(format!("PING: {e}")),
        }
    }

    /// A `redis` crate connection over TLS.
    fn redis(&self, client: Option<&CertKey>) -> redis::Connection {
        tls::redis_connect(&self.addr(), self.pki.ca(), client, None, OP_TIMEOUT)
            .unwrap_or_else(|e| panic!("redis over TLS to keyway: {e}"))
    }
}

/// `keyway_tls_handshake_failures_total{reason}` now (0 when absent).
fn failures(proxy: &Proxy, reason: &str) -> f64 {
    Scrape::take(&proxy.admin_addr())
        .value(&format!(
            "keyway_tls_handshake_failures_total{{reason=\"{reason}\"}}"
        ))
        .unwrap_or(0.0)
}

/// Waits until the failures counted for `reason` reach `at_least`.
fn wait_failures(proxy: &Proxy, reason: &str, at_least: f64) {
    let seen = poll_until(Duration::from_secs(10), || {
        (failures(proxy, reason) >= at_least).then_some(())
    });
    assert!(
        seen.is_some(),
        "keyway_tls_handshake_failures_total{{reason=\"{reason}\"}} stayed below {at_least}:\n{}\n--- keyway log ---\n{}",
        Scrape::take(&proxy.admin_addr())
            .text
            .lines()
            .filter(|l| l.contains("keyway_tls"))
            .collect::<Vec<_>>()
            .join("\n"),
        proxy.log_tail(30)
    );
}

/// `keyway_tls_certificate_expiry_seconds{listener}`.
fn expiry_gauge(proxy: &Proxy, listener: &str) -> f64 {
    Scrape::take(&proxy.admin_addr()).expect(&format!(
        "keyway_tls_certificate_expiry_seconds{{listener=\"{listener}\"}}"
    ))
}

/// Seconds from now until `t` (negative once past).
fn seconds_until(t: SystemTime) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() - now
}

/// Fails unless the expiry gauge of `listener` says the time left on
/// `cert` (within an hour: it may be computed at load or at scrape).
fn assert_expiry(proxy: &Proxy, listener: &str, cert: &CertKey) {
    let gauge = expiry_gauge(proxy, listener);
    let left = seconds_until(cert.not_after);
    let validity = cert
        .not_after
        .duration_since(cert.not_before)
        .unwrap()
        .as_secs_f64();
    assert!(
        gauge > 0.0 && gauge <= validity && (gauge - left).abs() < 3600.0,
        "expiry gauge {{listener=\"{listener}\"}} = {gauge}, the certificate has {left:.0} s left of {validity:.0}"
    );
}

/// `redis-cli -p PORT --tls --cacert CA [--cert --key] ARGS`, its output.
fn redis_cli_tls(front: &Front, client: Option<&CertKey>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &front.port.to_string()])
        .args(["--tls", "--cacert", front.pki.ca().to_str().unwrap()]);
    if let Some(pair) = client {
        cmd.args(["--cert", pair.cert.to_str().unwrap()])
            .args(["--key", pair.key.to_str().unwrap()]);
    }
    cmd.args(args);
    let (status, output) = run_bounded(&mut cmd, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "redis-cli --tls {args:?} failed:\n{output}"
    );
    output
}

#[test]
fn redis_cli_benchmark_and_the_redis_crate_over_tls_beside_the_plain_port() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));

    // redis-cli over TLS: a SET and a GET through keyway.
    assert_eq!(
        redis_cli_tls(&front, None, &["SET", "tls:cli", "hello"]).trim(),
        "OK"
    );
    assert_eq!(
        redis_cli_tls(&front, None, &["GET", "tls:cli"]).trim(),
        "hello"
    );

    // The redis crate over TLS, on keys of every master.
    let mut con = front.redis(None);
    for slot in [0, 6000, 12000, 16383] {
        let key = format!("{{{}}}:tls:crate", key_for_slot(slot));
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(slot)
            .query(&mut con)
            .unwrap();
        let v: u16 = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
        assert_eq!(v, slot);
    }

    // The plain port keeps serving beside it: the same data.
    let mut plain = proxy.conn();
    let v: String = redis::cmd("GET").arg("tls:cli").query(&mut plain).unwrap();
    assert_eq!(v, "hello");
    let () = redis::cmd("SET")
        .arg("tls:plain")
        .arg("p")
        .query(&mut plain)
        .unwrap();
    let v: String = redis::cmd("GET").arg("tls:plain").query(&mut con).unwrap();
    assert_eq!(v, "p");

    // redis-benchmark --tls through keyway.
    let mut bench = Command::new("redis-benchmark");
    bench
        .args(["-h", "127.0.0.1", "-p", &front.port.to_string()])
        .args(["--tls", "--cacert", front.pki.ca().to_str().unwrap()])
        .args(["-n", "2000", "-c", "4", "-P", "4", "-t", "set,get", "-q"]);
    let (status, output) = run_bounded(&mut bench, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success())
            && output.contains("SET: ")
            && output.contains("GET: ")
            && !output.contains("rror"),
        "redis-benchmark --tls through keyway:\n{output}\n--- keyway log ---\n{}",
        proxy.log_tail(20)
    );

    // The server certificate's time left is exported.
    assert_expiry(&proxy, "client", &front.server);
}

/// The TCP ports process `pid` listens on (its sockets in `LISTEN` state,
/// from `/proc`).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let link = link.to_str()?;
                Some(
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st ... inode (field 9).
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                if let Some(port) = fields[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.insert(port);
                }
            }
        }
    }
    ports
}

/// A keyway started without `--listen` (so the file's `proxy.listen`
/// decides), waited for on its TLS port; killed on drop.
struct TlsOnly {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl TlsOnly {
    fn start(cluster: &Cluster, front: &Front, toml: &str) -> TlsOnly {
        let dir = TempDir::new("tls-only");
        let config = dir.path().join("keyway.toml");
        std::fs::write(&config, toml).unwrap();
        let log = dir.path().join("keyway.log");
        let out = std::fs::File::create(&log).unwrap();
        let seeds: Vec<String> = cluster.seeds().into_iter().take(3).collect();
        let mut cmd = Command::new(keyway_bin());
        cmd.args(["--config", config.to_str().unwrap()])
            .args(["--cluster", &seeds.join(",")])
            .args(["--workers", "2", "--admin-listen", "127.0.0.1:0"])
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let child = die_with_parent(&mut cmd).spawn().unwrap();
        let mut keyway = TlsOnly {
            child,
            log,
            _dir: dir,
        };
        let mut last = String::new();
        let ready = poll_until(Duration::from_secs(30), || {
            if let Ok(Some(status)) = keyway.child.try_wait() {
                return Some(Err(format!("keyway exited: {status}")));
            }
            let served =
                front
                    .ping(None)
                    .and_then(|mut con| match con.try_cmd(&["SET", "tls:only", "1"]) {
                        Ok(r) if r == "+OK\r\n" => Ok(()),
                        other => Err(format!("SET: {other:?}")),
                    });
            match served {
                Ok(()) => Some(Ok(())),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        match ready {
            Some(Ok(())) => keyway,
            Some(Err(e)) => panic!("{e}\n{}", tail(&keyway.log, 40)),
            None => panic!(
                "keyway not serving on its TLS port within 30 s: {last}\n{}",
                tail(&keyway.log, 40)
            ),
        }
    }
}

impl Drop for TlsOnly {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- keyway log (tail) ---\n{}", tail(&self.log, 40));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `tests/run.sh` installs redis-py.
const REDIS_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/redis-py");

/// redis-py, the client most Python applications use, with `ssl=True`:
/// the server certificate checked against the CA, then a client
/// certificate too (mutual TLS), a pipeline of 100 INCRs.
#[test]
fn redis_py_with_ssl_true() {
    let importable = Command::new("python3")
        .args(["-c", "import redis"])
        .env("PYTHONPATH", REDIS_PY)
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        let note = format!("redis-py is not in {REDIS_PY} (tests/run.sh installs it)");
        assert!(std::env::var_os("CI").is_none(), "{note}, and CI is set");
        eprintln!("SKIPPED: {note}");
        return;
    }
    let cluster = Cluster::start();
    let front = Front::new();
    let alice = front.client("alice");
    let _proxy = Proxy::start_with_config(&cluster, &front.section("optional", ""));
    let script = r#"
import sys, redis
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
plain = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca)
plain.set("tls:py", "v1")
assert plain.get("tls:py") == b"v1", plain.get("tls:py")
mutual = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca,
                     ssl_certfile=cert, ssl_keyfile=key)
pipe = mutual.pipeline(transaction=False)
for _ in range(100):
    pipe.incr("tls:py:n")
replies = pipe.execute()
print(replies[-1], mutual.get("tls:py").decode())
"#;
    let port = front.port.to_string();
    let (status, out) = run_bounded(
        Command::new("python3")
            .env("PYTHONPATH", REDIS_PY)
            .args(["-c", script, &port])
            .arg(front.pki.ca())
            .arg(&alice.cert)
            .arg(&alice.key),
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "redis-py over TLS:\n{out}"
    );
    assert_eq!(out.trim(), "100 v1", "{out}");
}

#[test]
fn proxy_listen_empty_serves_tls_only() {
    let cluster = Cluster::start();
    let front = Front::new();
    let keyway = TlsOnly::start(
        &cluster,
        &front,
        &format!("[proxy]\nlisten = \"\"\n{}", front.section("none", "")),
    );
    let mut con = front.redis(None);
    let v: String = redis::cmd("GET").arg("tls:only").query(&mut con).unwrap();
    assert_eq!(v, "1");
    // Listening: the TLS port and the admin endpoint, nothing else.
    let ports = listening_ports(keyway.child.id());
    assert!(ports.contains(&front.port), "{ports:?}");
    assert_eq!(
        ports.len(),
        2,
        "a plain listener beside TLS and admin: {ports:?}\n{}",
        tail(&keyway.log, 20)
    );
}

#[test]
fn mutual_tls_required_refuses_missing_foreign_and_expired_certificates() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(&cluster, &front.section("required", ""));
    // A client already connected, with a certificate: undisturbed by the
    // refusals below.
    let alice = front.client("alice");
    let mut bystander = front.ping(Some(&alice)).expect("with a certificate");

    // No certificate.
    let before = failures(&proxy, "no_client_cert");
    let refused = front.ping(None);
    assert!(refused.is_err(), "a client without certificate was served");
    wait_failures(&proxy, "no_client_cert", before + 1.0);
    let (_, output) = run_bounded(
        Command::new("redis-cli")
            .args(["-p", &front.port.to_string(), "--tls"])
            .args(["--cacert", front.pki.ca().to_str().unwrap()])
            .arg("PING"),
        Duration::from_secs(20),
    );
    assert!(
        !output.contains("PONG"),
        "redis-cli without a certificate was served: {output}"
    );

    // A certificate of another CA.
    let foreign = Pki::new("another CA").issue("mallory", &Spec::client("mallory"));
    let before = failures(&proxy, "unknown_ca");
    assert!(
        front.ping(Some(&foreign)).is_err(),
        "a certificate of an unknown CA was accepted"
    );
    wait_failures(&proxy, "unknown_ca", before + 1.0);

    // An expired certificate of the right CA.
    let expired = front
        .pki
        .issue("expired-client", &Spec::client("old").expired());
    let before = failures(&proxy, "expired");
    assert!(
        front.ping(Some(&expired)).is_err(),
        "an expired client certificate was accepted"
    );
    wait_failures(&proxy, "expired", before + 1.0);

    // Certificates of every key type, and a chain, are accepted; redis-cli
    // with a certificate too.
    for (name, spec) in [
        ("rsa", Spec::client("rsa").key(KeyType::Rsa)),
        ("ed25519", Spec::client("ed25519").key(KeyType::Ed25519)),
        ("chained", Spec::client("chained").chained()),
    ] {
        let pair = front.pki.issue(name, &spec);
        front
            .ping(Some(&pair))
            .unwrap_or_else(|e| panic!("{name} client certificate: {e}"));
    }
    assert_eq!(
        redis_cli_tls(&front, Some(&alice), &["PING"]).trim(),
        "PONG"
    );

    assert_eq!(bystander.cmd(&["SET", "tls:bystander", "1"]), "+OK\r\n");
    assert_eq!(bystander.cmd(&["GET", "tls:bystander"]), "$1\r\n1\r\n");
    // The plain port asks for no certificate.
    let mut plain = proxy.conn();
    let pong: String = redis::cmd("PING").query(&mut plain).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn mutual_tls_optional_serves_clients_with_and_without_certificate() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(&cluster, &front.section("optional", ""));
    let alice = front.client("alice");
    let mut with = front.ping(Some(&alice)).expect("with a certificate");
    let mut without = front.ping(None).expect("without a certificate");
    assert_eq!(with.cmd(&["SET", "tls:opt", "a"]), "+OK\r\n");
    assert_eq!(without.cmd(&["GET", "tls:opt"]), "$1\r\na\r\n");
    let mut con = front.redis(Some(&alice));
    let v: String = redis::cmd("GET").arg("tls:opt").query(&mut con).unwrap();
    assert_eq!(v, "a");
    // A certificate that is presented is still checked.
    let foreign = Pki::new("another CA").issue("mallory", &Spec::client("mallory"));
    let before = failures(&proxy, "unknown_ca");
    assert!(
        front.ping(Some(&foreign)).is_err(),
        "optional: a certificate of an unknown CA was accepted"
    );
    wait_failures(&proxy, "unknown_ca", before + 1.0);
}

#[test]
fn server_certificates_of_every_key_type_and_a_chain() {
    let cluster = Cluster::start();
    for (name, spec) in [
        ("rsa", Spec::server("keyway").key(KeyType::Rsa)),
        ("ecdsa", Spec::server("keyway").key(KeyType::EcdsaP256)),
        ("ed25519", Spec::server("keyway").key(KeyType::Ed25519)),
        ("chained", Spec::server("keyway").chained()),
    ] {
        let front = Front::with(spec.clone());
        let _proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));
        let mut con = front
            .ping(None)
            .unwrap_or_else(|e| panic!("{name} server certificate: {e}"));
        assert_eq!(con.peer_leaf(), front.server.leaf_der(), "{name}");
        let chain: Vec<Vec<u8>> = tls::certs_of(&front.server.cert)
            .iter()
            .map(|c| c.to_vec())
            .collect();
        assert_eq!(con.peer_chain(), chain, "{name}: the whole chain is sent");
        assert_eq!(con.cmd(&["SET", "tls:kt", name]), "+OK\r\n");
        // OpenSSL's client (redis-cli) agrees.
        assert_eq!(redis_cli_tls(&front, None, &["GET", "tls:kt"]).trim(), name);
    }
}

#[test]
fn plaintext_on_the_tls_port_is_closed_and_counted() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));
    let mut bystander = front.ping(None).expect("a TLS client");
    let before = failures(&proxy, "plaintext");
    let mut raw = support::resp::connect_stream(&front.addr(), Duration::from_secs(10));
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    match raw.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("plaintext on the TLS port was not closed: {e} (got {got:?})"),
    }
    // Nothing a RESP client would take for a reply (a TLS alert at most).
    assert!(
        got.is_empty() || got[0] == 0x15,
        "plaintext on the TLS port answered {:?}",
        String::from_utf8_lossy(&got)
    );
    wait_failures(&proxy, "plaintext", before + 1.0);
    assert_eq!(bystander.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn an_expired_server_certificate_is_refused_by_clients() {
    let cluster = Cluster::start();
    let front = Front::with(Spec::server("keyway").expired());
    let proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));
    let err = front.connect(None).err().expect("rustls refuses it");
    assert!(format!("{err:?}").contains("Expired"), "rustls: {err:?}");
    let err = tls::redis_connect(&front.addr(), front.pki.ca(), None, None, OP_TIMEOUT)
        .err()
        .expect("the redis crate refuses it");
    assert!(
        err.to_string().to_lowercase().contains("expired"),
        "redis crate: {err}"
    );
    // keyway says so before the clients do.
    let gauge = expiry_gauge(&proxy, "client");
    assert!(
        gauge <= 0.0,
        "expiry gauge of an expired certificate: {gauge}"
    );
    // The plain port serves.
    let pong: String = redis::cmd("PING").query(&mut proxy.conn()).unwrap();
    assert_eq!(pong, "PONG");
}

/// Waits (bounded by the socket's read timeout) until the peer closes
/// `stream`; panics if it does not.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what} was not closed by keyway: {e}"),
    }
}

#[test]
fn stalled_handshakes_are_cut_while_other_clients_are_served() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(
        &cluster,
        &front.section("none", "[client]\nhandshake_timeout_ms = 500\n"),
    );
    let before = failures(&proxy, "timeout");
    // 20 connections that never send a byte, and one that stops after
    // its ClientHello.
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| support::resp::connect_stream(&front.addr(), Duration::from_secs(10)))
        .collect();
    let mut hello = support::resp::connect_stream(&front.addr(), Duration::from_secs(10));
    let mut half = rustls::ClientConnection::new(
        tls::client_config(front.pki.ca(), None),
        "127.0.0.1".try_into().unwrap(),
    )
    .unwrap();
    half.write_tls(&mut hello).unwrap();

    // Meanwhile, other TLS clients connect and are served.
    let mut other = front
        .ping(None)
        .expect("a TLS client beside the stalled ones");
    for i in 0..50 {
        assert_eq!(other.cmd(&["SET", "tls:other", &i.to_string()]), "+OK\r\n");
    }
    // The stalled ones are cut.
    for s in &mut silent {
        expect_closed(s, "a silent connection");
    }
    expect_closed(&mut hello, "a handshake stalled after its ClientHello");
    wait_failures(&proxy, "timeout", before + 21.0);
    assert_eq!(other.cmd(&["GET", "tls:other"]), "$2\r\n49\r\n");
    front.ping(None).expect("a new TLS client after the cut");
}

#[tokio::test]
async fn five_hundred_concurrent_tls_clients() {
    raise_nofile_limit();
    let cluster = Cluster::start();
    let front = Front::new();
    let _proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));
    let client = tls::redis_client(&front.addr(), front.pki.ca(), None, None);
    let timeout = Duration::from_secs(20);
    let mut open = concurrent_clients(&client, 500, 5, "tls:", timeout).await;
    assert_eq!(open.len(), 500);
    for con in open.iter_mut().step_by(25) {
        let pong: String = redis::cmd("PING").query_async(con).await.unwrap();
        assert_eq!(pong, "PONG");
    }
}

#[test]
fn a_10000_command_pipeline_and_a_16_mib_value_over_tls() {
    let cluster = Cluster::start();
    let front = Front::new();
    let _proxy = Proxy::start_with_config(&cluster, &front.section("none", ""));
    let mut con = front.redis(None);
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    let keys: Vec<String> = (0..5000u32)
        .map(|i| format!("{{{}}}:tp{i}", key_for_slot(((i * 7919) % 16384) as u16)))
        .collect();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("SET").arg(k).arg(format!("value-of:{k}"));
    }
    for k in keys.iter().rev() {
        pipe.cmd("GET").arg(k);
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).expect("10,000 commands over TLS");
    assert_eq!(replies.len(), 10_000);
    for (i, r) in replies[..5000].iter().enumerate() {
        assert_eq!(*r, redis::Value::Okay, "reply {i}");
    }
    for (r, k) in replies[5000..].iter().zip(keys.iter().rev()) {
        let got: String = redis::from_redis_value(r).unwrap();
        assert_eq!(
            got,
            format!("value-of:{k}"),
            "GET {k}: replies out of order"
        );
    }

    // 16 MiB, every byte value, both ways.
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let () = redis::cmd("SET")
        .arg("tls:big")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("tls:big").query(&mut con).unwrap();
    assert!(back == big, "16 MiB value came back different");
    // And raw, split into records as rustls likes.
    let mut raw = front.ping(None).unwrap();
    let len = raw.cmd(&["STRLEN", "tls:big"]);
    assert_eq!(len, format!(":{}\r\n", big.len()));
}

#[test]
fn a_client_certificates_cn_logs_in_as_its_acl_user() {
    let cluster = Cluster::start();
    let front = Front::new();
    let toml = format!(
        "[auth]\nusers = [\n  \"admin on >adminpw ~* &* +@all\",\n  \
         \"alice on >alicepw ~app:* &* +@all\",\n  \"carol off >carolpw ~* +@all\",\n]\n{}",
        front.section("optional", "user_from_cert = \"cn\"\n")
    );
    let proxy = Proxy::start_configured(
        &cluster,
        &toml,
        Launch {
            ready: Ready::ServingAs {
                user: "admin",
                password: "adminpw",
            },
            ..Launch::default()
        },
    );
    // CN=alice: logged in as alice, with alice's rules, no AUTH.
    let alice = front.client("alice");
    let mut con = front.ping(Some(&alice)).expect("alice's certificate");
    assert_eq!(con.cmd(&["ACL", "WHOAMI"]), "$5\r\nalice\r\n");
    assert_eq!(con.cmd(&["SET", "app:1", "x"]), "+OK\r\n");
    assert!(
        con.cmd(&["SET", "other:1", "x"]).starts_with("-NOPERM"),
        "alice's key patterns apply"
    );
    let mut crate_con = front.redis(Some(&alice));
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query(&mut crate_con)
        .unwrap();
    assert_eq!(who, "alice");

    // No such user, a user that is off, no certificate: not logged in.
    const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
    for cn in ["nobody", "carol"] {
        let pair = front.client(cn);
        let mut con = front
            .connect(Some(&pair))
            .unwrap_or_else(|e| panic!("CN={cn}: {e}"));
        assert_eq!(con.cmd(&["GET", "app:1"]), NOAUTH, "CN={cn}");
        // AUTH still works on it.
        assert_eq!(con.cmd(&["AUTH", "alice", "alicepw"]), "+OK\r\n");
        assert_eq!(con.cmd(&["ACL", "WHOAMI"]), "$5\r\nalice\r\n");
    }
    let mut anonymous = front.connect(None).unwrap();
    assert_eq!(anonymous.cmd(&["GET", "app:1"]), NOAUTH);
    // The plain port: AUTH as usual.
    let mut plain = proxy.raw_client();
    assert_eq!(plain.cmd(&["GET", "app:1"]), NOAUTH);
}

/// The configuration of the rotation tests: certificates checked every
/// `interval` seconds.
fn rotation_config(front: &Front, interval: u64) -> String {
    front.section("none", &format!("reload_interval_s = {interval}\n"))
}

/// Waits until a new TLS connection is presented `leaf`.
fn wait_presented(front: &Front, leaf: &[u8], proxy: &Proxy) {
    let seen = poll_until(Duration::from_secs(15), || {
        let con = front.connect(None).ok()?;
        (con.peer_leaf() == leaf).then_some(())
    });
    assert!(
        seen.is_some(),
        "new connections are not presented the new certificate\n--- keyway log ---\n{}",
        proxy.log_tail(30)
    );
}

/// Warnings in keyway's log that name `name`.
fn warnings_naming(proxy: &Proxy, name: &str) -> usize {
    proxy
        .log_tail(100_000)
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(name))
        .count()
}

#[test]
fn a_certificate_changed_on_disk_is_presented_to_new_connections() {
    let cluster = Cluster::start();
    let front = Front::new();
    let proxy = Proxy::start_with_config(&cluster, &rotation_config(&front, 1));
    let mut old = front.ping(None).unwrap();
    let original = front.server.leaf_der();
    assert_eq!(old.peer_leaf(), original);
    assert_expiry(&proxy, "client", &front.server);

    // A new certificate (another key, CN, serial, validity) by rename.
    let next = front
        .pki
        .issue_spare("next", &Spec::server("keyway-rotated").days(10));
    let rotated = tls::replace_pair(&front.server, &next);
    wait_presented(&front, &next.leaf_der(), &proxy);
    assert_ne!(next.leaf_der(), original);
    // The connection opened before goes on with the old one.
    assert_eq!(old.cmd(&["SET", "tls:rot", "1"]), "+OK\r\n");
    assert_eq!(old.peer_leaf(), original);
    let poll = poll_until(Duration::from_secs(10), || {
        let gauge = expiry_gauge(&proxy, "client");
        ((gauge - seconds_until(rotated.not_after)).abs() < 3600.0).then_some(())
    });
    assert!(
        poll.is_some(),
        "the expiry gauge follows the new certificate (10 days): {}",
        expiry_gauge(&proxy, "client")
    );

    // A certificate whose key is not the one in the key file: refused,
    // logged naming the file; the previous pair stays in use.
    let mismatched = front
        .pki
        .issue_spare("mismatched", &Spec::server("keyway-mismatched"));
    let named = |p: &Proxy| warnings_naming(p, "server.crt") + warnings_naming(p, "server.key");
    let before = named(&proxy);
    tls::write_atomically(&front.server.cert, &mismatched.cert_pem());
    let logged = poll_until(Duration::from_secs(10), || {
        (named(&proxy) > before).then_some(())
    });
    assert!(
        logged.is_some(),
        "no warning names the refused file\n{}",
        proxy.log_tail(30)
    );
    for _ in 0..5 {
        let con = front.ping(None).expect("still served after a bad pair");
        assert_eq!(con.peer_leaf(), next.leaf_der(), "the previous pair stays");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Half a certificate file: refused the same way.
    let pem = next.cert_pem();
    let before = named(&proxy);
    tls::write_atomically(&front.server.cert, &pem[..pem.len() / 2]);
    let logged = poll_until(Duration::from_secs(10), || {
        (named(&proxy) > before).then_some(())
    });
    assert!(
        logged.is_some(),
        "no warning names the half-written file\n{}",
        proxy.log_tail(30)
    );
    let con = front
        .ping(None)
        .expect("still served after a half-written file");
    assert_eq!(con.peer_leaf(), next.leaf_der());

    // A good pair again: taken.
    tls::replace_pair(&front.server, &mismatched);
    wait_presented(&front, &mismatched.leaf_der(), &proxy);
    assert_eq!(old.cmd(&["GET", "tls:rot"]), "$1\r\n1\r\n");
}

#[test]
fn sighup_rereads_the_certificate() {
    let cluster = Cluster::start();
    let front = Front::new();
    let toml = rotation_config(&front, 3600);
    let proxy = Proxy::start_with_config(&cluster, &toml);
    let mut old = front.ping(None).unwrap();
    let original = front.server.leaf_der();
    let next = front
        .pki
        .issue_spare("next", &Spec::server("keyway-sighup").key(KeyType::Rsa));
    tls::replace_pair(&front.server, &next);
    // Not checked on disk for an hour: still the old one...
    std::thread::sleep(Duration::from_secs(2));
    let con = front.ping(None).unwrap();
    assert_eq!(con.peer_leaf(), original);
    // ... until SIGHUP.
    proxy.reload(&toml);
    wait_presented(&front, &next.leaf_der(), &proxy);
    assert_eq!(old.cmd(&["PING"]), "+PONG\r\n");
}

// ---------------------------------------------------------------------
// Cluster side
// ---------------------------------------------------------------------

/// keyway's `[cluster.tls]` for `cluster`, with a client certificate of
/// the cluster's CA (`CN=keyway`), `extra` lines appended.
fn cluster_section(cluster: &Cluster, extra: &str) -> String {
    let pair = cluster
        .tls()
        .pki()
        .issue("keyway-client", &Spec::client("keyway"));
    format!(
        "[cluster.tls]\nenabled = true\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n{extra}",
        cluster.tls().ca().display(),
        pair.cert.display(),
        pair.key.display()
    )
}

/// The harness's own TLS cluster: every node speaks TLS only, and every
/// helper (slot map, node IDs, `redis-cli --tls` resharding, kill,
/// failover, restart) works against it.
#[test]
fn harness_tls_cluster_converges_reshards_and_fails_over() {
    let cluster = Cluster::start_tls();
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    let seed = cluster.seeds()[0].clone();

    // The nodes announce TLS ports only.
    let shards: redis::Value = redis::cmd("CLUSTER")
        .arg("SHARDS")
        .query(&mut cluster.conn(&seed))
        .unwrap();
    let text = format!("{shards:?}");
    assert!(text.contains("tls-port"), "{text}");
    // A plain client is not served on a node's port.
    let mut plain = support::resp::connect_stream(&seed, OP_TIMEOUT);
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("PONG"),
        "a TLS node served plaintext"
    );
    // Nor a TLS client without a certificate (tls-auth-clients yes).
    assert!(
        TlsClient::connect(&seed, cluster.tls().ca(), None)
            .and_then(|mut c| c.try_cmd(&["PING"]))
            .is_err(),
        "a TLS node served a client without certificate"
    );

    // Data, and a slot migrated by hand (MIGRATE over TLS).
    let slot = 42;
    let from = cluster.node_of_slot(slot);
    let to = cluster.masters().into_iter().find(|m| *m != from).unwrap();
    let tag = key_for_slot(slot);
    let mut src = cluster.conn(&from);
    for i in 0..50 {
        let () = redis::cmd("SET")
            .arg(format!("{{{tag}}}:{i}"))
            .arg(i)
            .query(&mut src)
            .unwrap();
    }
    cluster.migrate_slot(slot, &from, &to);
    assert_eq!(cluster.node_of_slot(slot), to);
    let n: usize = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut cluster.conn(&to))
        .unwrap();
    assert_eq!(n, 50);
    // redis-cli --tls reshards.
    cluster.reshard(10, &to, &from);

    // Kill a master: its replica takes over; restarted, it rejoins.
    let victim = cluster.node_of_slot(0);
    cluster.kill_node(&victim);
    let masters = cluster.wait_for_failover(&victim);
    assert!(!masters.contains(&victim));
    cluster.restart_node(&victim);
    cluster.wait_ok();
    assert!(cluster.replicas().contains(&victim));
    assert_eq!(cluster.masters().len(), 3);
    // `cluster.client()` speaks TLS too.
    let mut con = cluster
        .client(&cluster.node_of_slot(slot))
        .get_connection()
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg(format!("{{{tag}}}:7"))
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "7");
}

/// Sends what opens every kind of backend connection through `proxy`
/// (shared RESP2 and RESP3, dedicated for blocking commands and
/// transactions, pub/sub) and checks each answer: data types, a split
/// MSET/MGET, SCAN over every master, MULTI/EXEC, BLPOP woken by a push,
/// SUBSCRIBE and SSUBSCRIBE.
fn every_kind_of_backend_connection(cluster: &Cluster, proxy: &Proxy) {
    let mut con = proxy.conn();
    // Data types.
    let () = redis::cmd("SET")
        .arg("tls:s")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let v: String = redis::cmd("GET").arg("tls:s").query(&mut con).unwrap();
    assert_eq!(v, "v");
    let n: i64 = redis::cmd("HSET")
        .arg("tls:h")
        .arg("f")
        .arg("1")
        .arg("g")
        .arg("2")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let h: Vec<(String, String)> = redis::cmd("HGETALL").arg("tls:h").query(&mut con).unwrap();
    assert_eq!(h.len(), 2);
    let n: i64 = redis::cmd("RPUSH")
        .arg("tls:l")
        .arg(&["a", "b", "c"])
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 3);
    let l: Vec<String> = redis::cmd("LRANGE")
        .arg("tls:l")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(l, ["a", "b", "c"]);
    let n: i64 = redis::cmd("SADD")
        .arg("tls:set")
        .arg(&["x", "y"])
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("SCARD").arg("tls:set").query(&mut con).unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("ZADD")
        .arg("tls:z")
        .arg(2)
        .arg("two")
        .arg(1)
        .arg("one")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let z: Vec<String> = redis::cmd("ZRANGE")
        .arg("tls:z")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(z, ["one", "two"]);

    // A cross-slot MSET/MGET, split over every master.
    let keys: Vec<String> = (0..300).map(|i| format!("tls:scan:{i}")).collect();
    let masters: BTreeSet<String> = keys
        .iter()
        .map(|k| cluster.node_of_slot(key_slot(k.as_bytes())))
        .collect();
    assert_eq!(masters.len(), 3);
    let mut mset = redis::cmd("MSET");
    for k in &keys {
        mset.arg(k).arg(format!("v:{k}"));
    }
    let () = mset.query(&mut con).unwrap();
    let values: Vec<String> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    let want: Vec<String> = keys.iter().map(|k| format!("v:{k}")).collect();
    assert_eq!(values, want);

    // SCAN walks every master.
    let found: BTreeSet<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg("tls:scan:*")
        .arg("COUNT")
        .arg(50)
        .clone()
        .iter(&mut con)
        .unwrap()
        .collect();
    assert_eq!(found, keys.iter().cloned().collect::<BTreeSet<_>>());

    // MULTI/EXEC.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("{tls:tx}:a")
        .cmd("INCRBY")
        .arg("{tls:tx}:b")
        .arg(5)
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b), (1, 5));

    // RESP3.
    let mut resp3 = proxy.raw_client();
    assert!(resp3.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(resp3.cmd(&["GET", "tls:s"]), "$1\r\nv\r\n");

    // BLPOP on a dedicated connection, woken by a push.
    let mut blocked = proxy.conn();
    let waiter = std::thread::spawn(move || {
        redis::cmd("BLPOP")
            .arg("tls:queue")
            .arg(10)
            .query::<Option<(String, String)>>(&mut blocked)
    });
    let node = cluster.node_of_slot(key_slot(b"tls:queue"));
    poll_until(Duration::from_secs(5), || {
        (cluster.blocked_on(&node) > 0).then_some(())
    })
    .expect("the BLPOP reaches its TLS node");
    let _: i64 = redis::cmd("LPUSH")
        .arg("tls:queue")
        .arg("job")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Some(("tls:queue".to_string(), "job".to_string()))
    );

    // Pub/sub: a channel and a shard channel.
    check_channel_and_shard_channel(&proxy.addr(), &mut con, "tls");
}

#[test]
fn keyway_serves_a_tls_cluster_through_every_kind_of_connection() {
    let cluster = Cluster::start_tls();
    let front = Front::new();
    let proxy = Proxy::start_with_config(
        &cluster,
        &format!(
            "{}{}",
            front.section("none", ""),
            cluster_section(&cluster, "")
        ),
    );
    every_kind_of_backend_connection(&cluster, &proxy);
    // TLS end to end: a TLS client, keyway, TLS nodes.
    let mut con = front.ping(None).unwrap();
    assert_eq!(con.cmd(&["GET", "tls:s"]), "$1\r\nv\r\n");
    // The nodes see keyway's certificate: its connections are TLS ones.
    let node = cluster.node_of_slot(key_slot(b"tls:s"));
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut cluster.conn(&node))
        .unwrap();
    assert!(clients.lines().count() > 1, "{clients}");
    // The client certificate's time left, for alerts.
    let gauge = expiry_gauge(&proxy, "cluster");
    assert!(
        gauge > 29.0 * 86_400.0 && gauge <= 30.0 * 86_400.0 + 3600.0,
        "cluster expiry gauge {gauge}"
    );
}

#[test]
fn keyway_serves_a_tls_cluster_with_a_password() {
    const PASSWORD: &str = "kw-tls-secret";
    let cluster = Cluster::start_tls_with_password(PASSWORD);
    let proxy = Proxy::start_with_config(
        &cluster,
        &format!(
            "[cluster]\npassword = \"{PASSWORD}\"\n{}",
            cluster_section(&cluster, "")
        ),
    );
    every_kind_of_backend_connection(&cluster, &proxy);
    failover_loses_no_acknowledged_increment(&cluster, &proxy);
    let log = proxy.log_tail(400);
    assert!(!log.contains("authentication to"), "{log}");
}

#[test]
fn resharding_a_tls_cluster_under_writes_costs_no_error() {
    let cluster = Cluster::start_tls();
    let proxy = Proxy::start_with_config(&cluster, &cluster_section(&cluster, ""));
    let tags = tags();
    let writers: Vec<Background<Seen>> = (0..4)
        .map(|w| writer(proxy.addr(), w, tags.clone()))
        .collect();
    for w in &writers {
        w.wait_progress(100, &proxy);
    }
    let from = cluster.node_of_slot(0);
    let to = cluster.node_of_slot(16383);
    cluster.reshard(1000, &from, &to);
    assert_eq!(cluster.node_of_slot(0), to);
    for w in &writers {
        w.wait_progress(100, &proxy);
    }
    let seen: Vec<Seen> = writers.into_iter().map(Background::stop).collect();
    assert_no_errors("writer", &seen, &proxy);
    let lost = lost_increments(&mut proxy.conn(), &seen, &tags);
    assert_eq!(lost, 0, "acknowledged writes lost while resharding");
}

/// What the incrementing client of [`failover_loses_no_acknowledged_increment`] saw.
#[derive(Default)]
struct Counted {
    /// INCRs acknowledged.
    acked: u64,
    /// The value the last acknowledged INCR returned.
    last: i64,
    /// The highest value whose INCR a replica confirmed (`WAIT 1`).
    confirmed: i64,
    /// Errors, in order.
    errors: Vec<String>,
}

/// Kills the master of a counter's slot while a client `INCR`s it through
/// `proxy` (each increment followed by `WAIT 1 500`): the increments
/// resume after the failover, confirmations resume once the old master is
/// back as a replica, and the counter ends at least at the last
/// acknowledged and the highest confirmed value (asynchronous replication
/// may lose an unconfirmed increment at the kill, nothing else).
fn failover_loses_no_acknowledged_increment(cluster: &Cluster, proxy: &Proxy) {
    let key = format!("{{{}}}:tls:counter", key_for_slot(7));
    let counted = Arc::new(Mutex::new(Counted::default()));
    let (addr, k, seen) = (proxy.addr(), key.clone(), counted.clone());
    let load = Background::spawn(move |rounds| {
        let mut con = None;
        while rounds.go_on() {
            let c = match &mut con {
                Some(c) => c,
                None => match support::cluster::connect(&addr, Duration::from_secs(10)) {
                    Ok(x) => con.insert(x),
                    Err(err) => {
                        seen.lock().unwrap().errors.push(format!("connect: {err}"));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            match redis::cmd("INCR").arg(&k).query::<i64>(c) {
                Ok(n) => {
                    {
                        let mut seen = seen.lock().unwrap();
                        seen.acked += 1;
                        seen.last = n;
                    }
                    match redis::cmd("WAIT").arg(1).arg(500).query::<i64>(c) {
                        Ok(replicas) if replicas >= 1 => {
                            let mut seen = seen.lock().unwrap();
                            seen.confirmed = seen.confirmed.max(n);
                        }
                        Ok(_) => {}
                        Err(err) => {
                            seen.lock().unwrap().errors.push(format!("WAIT: {err}"));
                            con = None;
                        }
                    }
                }
                Err(err) => {
                    seen.lock().unwrap().errors.push(format!("INCR: {err}"));
                    con = None;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            rounds.done_one();
        }
    });
    load.wait_progress(50, proxy);
    let victim = cluster.node_of_slot(key_slot(key.as_bytes()));
    cluster.kill_node(&victim);
    let masters = cluster.wait_for_failover(&victim);
    assert!(!masters.contains(&victim));
    let wait_for = |what: &str, done: &dyn Fn(&Counted) -> bool| {
        let ok = poll_until(Duration::from_secs(30), || {
            done(&counted.lock().unwrap()).then_some(())
        });
        let seen = counted.lock().unwrap();
        assert!(
            ok.is_some(),
            "{what} did not resume after the failover ({} acknowledged, errors: {:?})\n--- keyway log ---\n{}",
            seen.acked,
            &seen.errors[..seen.errors.len().min(5)],
            proxy.log_tail(30)
        );
    };
    // INCRs resume on the promoted replica.
    let acked = counted.lock().unwrap().acked;
    wait_for("INCR", &|c| c.acked >= acked + 20);
    // The old master rejoins as a replica: WAIT confirms again.
    cluster.restart_node(&victim);
    cluster.wait_ok();
    let last = counted.lock().unwrap().last;
    wait_for("WAIT 1", &|c| c.confirmed > last);
    load.stop();
    let seen = counted.lock().unwrap();
    let value: i64 = redis::cmd("GET")
        .arg(&key)
        .query(&mut proxy.conn())
        .unwrap();
    assert!(
        value >= seen.last && value >= seen.confirmed,
        "the counter is {value}; the last INCR acknowledged returned {}, the highest confirmed {}",
        seen.last,
        seen.confirmed
    );
    eprintln!(
        "TLS failover: {} INCRs acknowledged, counter {value}, {} client errors: {:?}",
        seen.acked,
        seen.errors.len(),
        &seen.errors[..seen.errors.len().min(3)]
    );
}

#[test]
fn a_tls_cluster_fails_over_under_increments() {
    let cluster = Cluster::start_tls();
    let proxy = Proxy::start_with_config(&cluster, &cluster_section(&cluster, ""));
    failover_loses_no_acknowledged_increment(&cluster, &proxy);
}

#[test]
fn verify_full_checks_the_nodes_name_and_verify_ca_does_not() {
    let cluster = Cluster::start_tls();
    let ping_only = Launch {
        ready: Ready::Ping,
        ..Launch::default()
    };
    // The nodes' certificates name 127.0.0.1 and localhost.
    let wrong = Proxy::start_configured(
        &cluster,
        &cluster_section(
            &cluster,
            "server_name = \"wrong.example\"\nverify = \"full\"\n",
        ),
        ping_only,
    );
    let mut client = wrong.raw_client();
    let reply = client.cmd(&["SET", "tls:v", "1"]);
    assert!(reply.starts_with("-CLUSTERDOWN"), "{reply}");
    drop(wrong);

    for extra in [
        "server_name = \"wrong.example\"\nverify = \"ca\"\n",
        "server_name = \"localhost\"\nverify = \"full\"\n",
        "verify = \"full\"\n",
    ] {
        let proxy = Proxy::start_configured(&cluster, &cluster_section(&cluster, extra), ping_only);
        let mut client = proxy.raw_client();
        let served = poll_until(Duration::from_secs(15), || {
            (client.cmd(&["SET", "tls:v", "1"]) == "+OK\r\n").then_some(())
        });
        assert!(served.is_some(), "{extra}: {}", proxy.log_tail(20));
    }

    // `verify = "none"` works, with a warning at start.
    let proxy =
        Proxy::start_with_config(&cluster, &cluster_section(&cluster, "verify = \"none\"\n"));
    let log = proxy.log_tail(200);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("verify")),
        "no warning about verify = none:\n{log}"
    );

    // Another CA's nodes: refused.
    let foreign = Pki::new("another CA");
    let pair = foreign.issue("keyway", &Spec::client("keyway"));
    let toml = format!(
        "[cluster.tls]\nenabled = true\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        foreign.ca().display(),
        pair.cert.display(),
        pair.key.display()
    );
    let proxy = Proxy::start_configured(&cluster, &toml, ping_only);
    let reply = proxy.raw_client().cmd(&["GET", "tls:v"]);
    assert!(reply.starts_with("-CLUSTERDOWN"), "{reply}");
}
