//! Debian's `prometheus-redis-exporter` (redis_exporter 1.45) pointed at
//! keyway, the way an operator monitors a Redis server with it: every
//! command it sends through keyway is answered (`redis_up 1`, no scrape
//! error, no failed command in its log), and what it exports is what
//! keyway and the cluster behind it hold — the keyspace gauges, a key
//! count by `SCAN`, keyway's clients, the masters' command, hit and miss
//! counters and replicas, and the slow log and latency spikes of a script
//! that ran 100 ms.
//!
//! With default flags the exporter sends `CLIENT SETNAME`, `CONFIG GET *`,
//! `INFO ALL`, `LATENCY LATEST`, `SLOWLOG LEN` and `SLOWLOG GET 1` per
//! scrape; `--count-keys` adds `SELECT` and `SCAN`. keyway reports
//! `cluster_enabled:0`, so the exporter treats it as one server and sends
//! no `CLUSTER INFO`.
//!
//! `tests/run.sh` installs the exporter (Debian's
//! `prometheus-redis-exporter`); with `CI` set a missing one fails the
//! test, otherwise the test prints a note and skips it.

use crate::support;

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::Value;
use support::cluster::info_field;
use support::http::{self, label, Scrape};
use support::tools;
use support::util::{die_with_parent, free_ports, poll_until, TempDir};
use support::{key_for_slot, Cluster, Proxy};

/// The exporter's binary, as Debian installs it.
const EXPORTER: &str = "prometheus-redis-exporter";

/// How long the exporter may take to serve its first `/metrics`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `slowlog-log-slower-than` (µs) and `latency-monitor-threshold` (ms) set
/// through keyway: far below the script's 100 ms, far above what the
/// cluster's other commands take.
const SLOW_USEC: u64 = 50_000;
const LATENCY_MS: u64 = 50;

/// A Lua script that keeps its node busy for at least 100 ms by the
/// node's own clock (`TIME`), whatever the machine's speed.
const BUSY_100MS: &str = "local s = redis.call('TIME') \
    while true do \
      local t = redis.call('TIME') \
      if (t[1] - s[1]) * 1000000 + (t[2] - s[2]) >= 100000 then return 1 end \
    end";

/// A running exporter, killed (and its log shown, on a failure) on drop.
struct Exporter {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Exporter {
    /// Starts the exporter against `redis://{redis_addr}` with `--debug`
    /// (its log then names every command it sends and every error reply)
    /// and `extra` flags, on a free port; waits until `/metrics` answers.
    /// Retries on a fresh port when the chosen one was taken meanwhile.
    fn start(redis_addr: &str, extra: &[&str]) -> Exporter {
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            let dir = TempDir::new("exporter");
            let log = dir.path().join("exporter.log");
            let port = free_ports(1)[0];
            let out = File::create(&log).expect("create exporter log");
            let mut cmd = Command::new(EXPORTER);
            cmd.arg(format!("--redis.addr=redis://{redis_addr}"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--debug")
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("dup log")))
                .stderr(Stdio::from(out));
            let child = die_with_parent(&mut cmd)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {EXPORTER}: {e}"));
            let mut exporter = Exporter {
                child: Some(child),
                port,
                log,
                _dir: dir,
            };
            match exporter.wait_serving() {
                Ok(()) => return exporter,
                Err(e) if e.contains("address already in use") => failures.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{EXPORTER} could not bind a port:\n{}", failures.join("\n"));
    }

    fn wait_serving(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let served = poll_until(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                return Some(Err(format!("{EXPORTER} exited at start: {status}")));
            }
            match get_metrics(&addr) {
                Ok(r) if r.status == 200 => Some(Ok(())),
                _ => None,
            }
        });
        match served {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("{e}\n{}", self.log_tail(20))),
            None => Err(format!(
                "{EXPORTER} did not serve /metrics within {START_TIMEOUT:?}\n{}",
                self.log_tail(20)
            )),
        }
    }

    /// Where the exporter serves `/metrics`.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One scrape: the exporter asks keyway afresh on every request.
    fn scrape(&self) -> Scrape {
        let addr = self.addr();
        let response =
            get_metrics(&addr).unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
        assert_eq!(
            response.status,
            200,
            "{EXPORTER} answered {response:?}\n{}",
            self.log_tail(20)
        );
        Scrape {
            text: response.body,
        }
    }

    /// Everything the exporter logged so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Its last `lines` log lines, each cut at 300 characters (with
    /// `--debug` a line holds a whole `INFO ALL` reply).
    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| l.chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {EXPORTER} log (tail) at test failure ---\n{}",
                self.log_tail(40)
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `GET /metrics` as HTTP/1.0: the exporter (Go's HTTP server) then
/// sends the body unchunked and closes the connection after it, as
/// [`http::send_raw`] reads responses.
fn get_metrics(addr: &str) -> io::Result<http::Response> {
    http::send_raw(addr, b"GET /metrics HTTP/1.0\r\nHost: exporter\r\n\r\n")
}

/// The commands the exporter logged it sent (`--debug`), as `NAME` or
/// `NAME SUBCOMMAND` for those with one, e.g. `CONFIG GET`.
fn commands_sent(log: &str) -> BTreeSet<String> {
    const WITH_SUBCOMMAND: &[&str] = &["CLIENT", "CONFIG", "LATENCY", "SLOWLOG", "CLUSTER"];
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("running command: ")? + "running command: ".len()..];
            let (name, args) = rest.split_once(" [")?;
            let sub = args.split([' ', ']']).next().unwrap_or_default();
            Some(if WITH_SUBCOMMAND.contains(&name) {
                format!("{name} {sub}")
            } else {
                name.to_string()
            })
        })
        .collect()
}

/// The lines of the exporter's log that report a failure: an error reply
/// to one of its commands (`c.Do() - err`), or anything logged at error
/// or warning level.
fn failures_logged(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("c.Do() - err") || l.contains("level=error") || l.contains("level=warn")
        })
        .map(|l| l.chars().take(300).collect())
        .collect()
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn array(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// What keyway answers to the exporter's slow log and latency commands:
/// `SLOWLOG LEN`, the newest `SLOWLOG GET 1` entry as (id, µs), and the
/// `LATENCY LATEST` entries of event `command` as (timestamp, ms).
#[derive(Debug, PartialEq)]
struct Diagnostics {
    slowlog_len: i64,
    newest_slow: Option<(i64, i64)>,
    command_spikes: Vec<(i64, i64)>,
}

impl Diagnostics {
    fn ask(con: &mut redis::Connection) -> Diagnostics {
        let slowlog_len: i64 = redis::cmd("SLOWLOG").arg("LEN").query(con).unwrap();
        let newest: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").arg(1).query(con).unwrap();
        let newest_slow = newest.first().map(|entry| {
            let entry = array(entry);
            (int(&entry[0]), int(&entry[2]))
        });
        let latest: Vec<Value> = redis::cmd("LATENCY").arg("LATEST").query(con).unwrap();
        let command_spikes = latest
            .iter()
            .map(array)
            .filter(|entry| text(&entry[0]) == "command")
            .map(|entry| (int(&entry[1]), int(&entry[2])))
            .collect();
        Diagnostics {
            slowlog_len,
            newest_slow,
            command_spikes,
        }
    }
}

/// `INFO keyspace` of every master, `db0`'s `keys` and `expires` summed.
fn masters_keyspace(cluster: &Cluster) -> (i64, i64) {
    let mut sums = (0, 0);
    for master in cluster.masters() {
        let info: String = redis::cmd("INFO")
            .arg("keyspace")
            .query(&mut cluster.conn(&master))
            .unwrap();
        let Some(db0) = info_field(&info, "db0") else {
            continue;
        };
        for part in db0.split(',') {
            match part.split_once('=') {
                Some(("keys", n)) => sums.0 += n.parse::<i64>().unwrap(),
                Some(("expires", n)) => sums.1 += n.parse::<i64>().unwrap(),
                _ => {}
            }
        }
    }
    sums
}

#[test]
fn redis_exporter_scrapes_keyway_like_a_redis_server() {
    if !tools::required(EXPORTER, "prometheus-redis-exporter") {
        return;
    }
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let mut con = proxy.conn();

    // The operator's set-up, through keyway (which sets every node): log
    // what takes 50 ms or more, and start from empty logs.
    for (name, value) in [
        ("slowlog-log-slower-than", SLOW_USEC),
        ("latency-monitor-threshold", LATENCY_MS),
    ] {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut con)
            .unwrap();
    }
    let () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let _: i64 = redis::cmd("LATENCY").arg("RESET").query(&mut con).unwrap();

    // 50 strings, 5 with a TTL, and one key of each other type, under a
    // prefix of this test's own.
    let prefix = format!("exporter:{}:", std::process::id());
    for i in 0..50 {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}s:{i}"))
            .arg(i)
            .query(&mut con)
            .unwrap();
    }
    for i in 0..5 {
        let () = redis::cmd("SET")
            .arg(format!("{prefix}ttl:{i}"))
            .arg(i)
            .arg("EX")
            .arg(3600)
            .query(&mut con)
            .unwrap();
    }
    let _: i64 = redis::cmd("RPUSH")
        .arg(format!("{prefix}list"))
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(format!("{prefix}hash"))
        .arg("f")
        .arg("v")
        .arg("g")
        .arg("w")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("SADD")
        .arg(format!("{prefix}set"))
        .arg("x")
        .arg("y")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{prefix}zset"))
        .arg(1)
        .arg("m")
        .query(&mut con)
        .unwrap();
    let written = 50 + 5 + 4;
    let expiring = 5;

    let exporter = Exporter::start(&proxy.addr(), &[&format!("--count-keys=db0={prefix}*")]);

    // Clients: this test holds `con` and 3 idle connections; the exporter
    // is connected while it scrapes. keyway counts a closed connection
    // out a moment after it closes, hence the polling.
    let idle: Vec<redis::Connection> = (0..3).map(|_| proxy.conn()).collect();
    let held = 1 + idle.len();
    let mut clients = 0.0;
    let first = poll_until(Duration::from_secs(10), || {
        let scrape = exporter.scrape();
        clients = scrape.expect("redis_connected_clients");
        (clients == (held + 1) as f64).then_some(scrape)
    })
    .unwrap_or_else(|| {
        panic!(
            "redis_connected_clients stayed {clients}, not {} (this test's {held} and the exporter)",
            held + 1
        )
    });

    // Up, no scrape error, and talking to keyway itself: keyway's port,
    // the cluster's Redis version, one server rather than a cluster.
    assert_eq!(first.expect("redis_up"), 1.0);
    assert_eq!(
        first.samples("redis_exporter_last_scrape_error"),
        vec![("{err=\"\"}".to_string(), 0.0)],
        "the exporter's last scrape failed"
    );
    first.expect("redis_exporter_last_scrape_connect_time_seconds");
    let node_info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut cluster.conn(&cluster.masters()[0]))
        .unwrap();
    let version = info_field(&node_info, "redis_version").expect("redis_version");
    let instance = first.samples("redis_instance_info");
    assert_eq!(instance.len(), 1, "{instance:?}");
    let (labels, _) = &instance[0];
    assert_eq!(label(labels, "tcp_port"), proxy.port().to_string());
    assert_eq!(label(labels, "redis_version"), version);
    assert_eq!(label(labels, "redis_mode"), "standalone");
    assert_eq!(first.expect("redis_cluster_enabled"), 0.0);

    // The keyspace: what keyway's DBSIZE says, which is every master's
    // keys together, the ones written here among them.
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    let (master_keys, master_expires) = masters_keyspace(&cluster);
    let keys = first.expect("redis_db_keys{db=\"db0\"}");
    assert_eq!(keys, dbsize as f64, "redis_db_keys against keyway's DBSIZE");
    assert_eq!(dbsize, master_keys, "keyway's DBSIZE against the masters'");
    assert!(keys >= written as f64, "{keys} keys, {written} written");
    assert_eq!(master_expires, expiring);
    assert_eq!(
        first.expect("redis_db_keys_expiring{db=\"db0\"}"),
        expiring as f64
    );
    // --count-keys: SCAN through keyway finds exactly the keys written.
    assert_eq!(
        first.expect(&format!("redis_keys_count{{db=\"db0\",key=\"{prefix}*\"}}")),
        written as f64
    );

    // Replication: every master's replica, by port.
    let replicas = cluster.replicas();
    assert_eq!(
        first.expect("redis_connected_slaves"),
        replicas.len() as f64
    );
    let seen: BTreeSet<String> = first
        .samples("redis_connected_slave_offset_bytes")
        .iter()
        .map(|(labels, _)| label(labels, "slave_port"))
        .collect();
    let expected: BTreeSet<String> = replicas
        .iter()
        .map(|r| r.rsplit(':').next().unwrap().to_string())
        .collect();
    assert_eq!(seen, expected, "replicas by port");

    // Traffic between two scrapes: 40 INCR (a command nothing else sends
    // here), 10 reads that hit and 7 that miss, and one script that keeps
    // a master busy for 100 ms.
    for _ in 0..40 {
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{prefix}counter"))
            .query(&mut con)
            .unwrap();
    }
    for i in 0..10 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{prefix}s:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(v, Some(i.to_string()));
    }
    for i in 0..7 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{prefix}missing:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(v, None);
    }
    let busy_key = format!("{{{}}}:{prefix}busy", key_for_slot(0));
    let _: i64 = redis::cmd("EVAL")
        .arg(BUSY_100MS)
        .arg(1)
        .arg(&busy_key)
        .query(&mut con)
        .unwrap();

    // The second scrape, taken while keyway's own answers to the
    // exporter's slow log and latency commands hold still around it.
    let (second, diagnostics) = poll_until(Duration::from_secs(10), || {
        let before = Diagnostics::ask(&mut con);
        let scrape = exporter.scrape();
        (Diagnostics::ask(&mut con) == before).then_some((scrape, before))
    })
    .expect("keyway's SLOWLOG and LATENCY answers kept changing");

    assert_eq!(second.expect("redis_up"), 1.0);
    assert_eq!(
        second.samples("redis_exporter_last_scrape_error"),
        vec![("{err=\"\"}".to_string(), 0.0)]
    );
    assert_eq!(second.expect("redis_commands_total{cmd=\"incr\"}"), 40.0);
    assert_eq!(first.value("redis_commands_total{cmd=\"incr\"}"), None);
    let delta = |name: &str| second.expect(name) - first.expect(name);
    assert_eq!(delta("redis_keyspace_hits_total"), 10.0);
    assert_eq!(delta("redis_keyspace_misses_total"), 7.0);
    let processed = delta("redis_commands_processed_total");
    assert!(processed >= 58.0, "commands processed rose by {processed}");
    assert_eq!(
        second.expect("redis_db_keys{db=\"db0\"}"),
        keys + 1.0,
        "the INCR counter is one more key"
    );

    // The script in the slow log: SLOWLOG LEN and the newest entry of
    // SLOWLOG GET 1, as keyway answers them.
    assert!(diagnostics.slowlog_len >= 1, "{diagnostics:?}");
    assert_eq!(
        second.expect("redis_slowlog_length"),
        diagnostics.slowlog_len as f64
    );
    let (id, usec) = diagnostics.newest_slow.expect("a slow log entry");
    assert!(
        usec >= 100_000,
        "the script took {usec} µs: {diagnostics:?}"
    );
    assert_eq!(second.expect("redis_slowlog_last_id"), id as f64);
    assert_eq!(
        second.expect("redis_last_slow_execution_duration_seconds"),
        usec as f64 / 1e6
    );

    // And in LATENCY LATEST, as event `command` of the busy master. (One
    // master only: keyway lists every master's entries, so with spikes on
    // several the same event name comes once per master, and the exporter
    // keeps one `event_name` series, the first master's, not the worst.)
    let spike = second.expect("redis_latency_spike_duration_seconds{event_name=\"command\"}");
    assert!(spike >= 0.1, "a latency spike of {spike} s");
    assert!(
        diagnostics
            .command_spikes
            .iter()
            .any(|&(at, ms)| ms as f64 / 1e3 == spike
                && second.expect("redis_latency_spike_last{event_name=\"command\"}") == at as f64),
        "spike of {spike} s not among keyway's LATENCY LATEST: {diagnostics:?}"
    );

    // The commands the exporter sent through keyway, none refused.
    let log = exporter.log();
    let sent = commands_sent(&log);
    eprintln!("{EXPORTER} sent: {sent:?}");
    for command in [
        "CLIENT SETNAME",
        "CONFIG GET",
        "INFO",
        "LATENCY LATEST",
        "SLOWLOG LEN",
        "SLOWLOG GET",
        "SELECT",
        "SCAN",
    ] {
        assert!(sent.contains(command), "{command} not in {sent:?}");
    }
    let failures = failures_logged(&log);
    assert!(
        failures.is_empty(),
        "{EXPORTER} logged failures:\n{}",
        failures.join("\n")
    );
    drop(idle);
}

/// The control: the same exporter pointed at a port where nothing
/// listens reports `redis_up 0` and a scrape error, and logs it — so the
/// checks above can fail.
#[test]
fn redis_exporter_reports_a_dead_address_as_down() {
    if !tools::required(EXPORTER, "prometheus-redis-exporter") {
        return;
    }
    let dead = format!("127.0.0.1:{}", free_ports(1)[0]);
    let exporter = Exporter::start(&dead, &[]);
    let scrape = exporter.scrape();
    assert_eq!(scrape.expect("redis_up"), 0.0);
    let errors = scrape.samples("redis_exporter_last_scrape_error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, 1.0, "{errors:?}");
    assert!(
        !failures_logged(&exporter.log()).is_empty(),
        "no failure logged:\n{}",
        exporter.log_tail(20)
    );
}
