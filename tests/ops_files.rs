//! The operations files in `conf/` checked by the tools that read them:
//! the Prometheus alert rules and their unit tests and the scrape config
//! (`promtool`), the Grafana dashboard (valid JSON), and the systemd unit
//! (`systemd-analyze verify`, where systemd is installed); and every
//! metric name those files use checked against a real keyway's `/metrics`.
//!
//! `tests/run.sh` installs promtool (Debian's `prometheus` package) and
//! python3; with the `CI` environment variable set a missing one fails the
//! test, otherwise the test prints a note and skips it.

use crate::support;

use support::http::Scrape;
use support::pubsub_client::PubSubClient;
use support::replicas::read_config;
use support::tls::{Pki, Spec};
use support::tools::{installed, required};
use support::util::{free_ports, run_bounded, TempDir};
use support::{key_slot, poll_until, Cluster, Proxy};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A file of the repository, by its path from the top.
fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `tool args...` from the top of the repository; fails the test with
/// its output unless it succeeds. Returns that output.
fn check(tool: &str, args: &[&str]) -> String {
    let (status, output) = run_bounded(
        Command::new(tool)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "{tool} {} failed ({status:?}):\n{output}",
        args.join(" ")
    );
    output
}

#[test]
fn alert_rules_are_valid_and_pass_their_tests() {
    if !required("promtool", "prometheus") {
        return;
    }
    let out = check(
        "promtool",
        &["check", "rules", "conf/prometheus/keyway-alerts.yml"],
    );
    eprintln!("{out}");
    let out = check(
        "promtool",
        &["test", "rules", "conf/prometheus/keyway-alerts.test.yml"],
    );
    eprintln!("{out}");
}

#[test]
fn scrape_config_is_valid() {
    if !required("promtool", "prometheus") {
        return;
    }
    let out = check(
        "promtool",
        &["check", "config", "conf/prometheus/scrape.yml"],
    );
    eprintln!("{out}");
}

#[test]
fn grafana_dashboard_is_json() {
    if !required("python3", "python3") {
        return;
    }
    check(
        "python3",
        &["-m", "json.tool", "conf/grafana/keyway-dashboard.json"],
    );
}

/// `systemd-analyze verify` on the unit with ExecStart pointed at
/// /bin/true (keyway is not installed here). It exits 0 on warnings, so
/// any line it prints about the unit fails the test.
#[test]
fn systemd_unit_verifies() {
    if !installed("systemd-analyze") {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(repo_file("conf/keyway.service")).expect("read unit");
    let exec = "ExecStart=/usr/local/bin/keyway ";
    assert!(
        unit.contains(exec),
        "no `{exec}` line in conf/keyway.service"
    );
    let dir = TempDir::new("unit");
    let path = dir.path().join("keyway.service");
    std::fs::write(&path, unit.replace(exec, "ExecStart=/bin/true ")).expect("write unit");
    let out = check("systemd-analyze", &["verify", path.to_str().unwrap()]);
    let complaints: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("keyway.service"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify conf/keyway.service:\n{}",
        complaints.join("\n")
    );
}

/// The files whose metric names must be ones keyway exports: the alert
/// rules, their unit tests (input series too) and the dashboard.
const METRIC_USERS: [&str; 3] = [
    "conf/prometheus/keyway-alerts.yml",
    "conf/prometheus/keyway-alerts.test.yml",
    "conf/grafana/keyway-dashboard.json",
];

/// Every `keyway_[a-z0-9_]+` and `process_[a-z_]+` name in `text` that
/// starts a word (so `xkeyway_a` is not one), anywhere: expressions,
/// annotations, comments, series of the rule tests.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    for (prefix, digits) in [("keyway_", true), ("process_", false)] {
        for (at, _) in text.match_indices(prefix) {
            let starts_word = at == 0 || {
                let b = bytes[at - 1];
                !(b.is_ascii_alphanumeric() || b == b'_')
            };
            if !starts_word {
                continue;
            }
            let len = text[at + prefix.len()..]
                .bytes()
                .take_while(|&b| {
                    b.is_ascii_lowercase() || b == b'_' || (digits && b.is_ascii_digit())
                })
                .count();
            if len > 0 {
                names.insert(text[at..at + prefix.len() + len].to_string());
            }
        }
    }
    names
}

/// The metric families of a `/metrics` text, by name, with their type
/// (`# TYPE` lines; a sample of a family without one counts as
/// `untyped`).
fn families(scrape: &str) -> BTreeMap<String, String> {
    let mut families: BTreeMap<String, String> = scrape
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect();
    let samples: Vec<String> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for name in samples {
        let family = family_of(&name, &families).to_string();
        families.entry(family).or_insert_with(|| "untyped".into());
    }
    families
}

/// The family `name` belongs to: a histogram's or summary's `_bucket`,
/// `_sum` and `_count` series belong to the histogram; any other name is
/// its own family.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|kind| kind == "histogram" || kind == "summary")
            {
                return base;
            }
        }
    }
    name
}

#[test]
fn metric_names_are_found_where_an_expression_uses_them() {
    let text = "rate(keyway_commands_total{command=\"get\"}[5m]) / \
                process_open_fds{job=\"keyway\"} xkeyway_not_one keyway_ \
                (keyway_command_duration_seconds_bucket) process_max_fds2";
    let found: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(
        found,
        [
            "keyway_command_duration_seconds_bucket",
            "keyway_commands_total",
            "process_max_fds",
            "process_open_fds",
        ]
    );
    let scrape = "# TYPE keyway_d histogram\nkeyway_d_bucket{le=\"1\"} 1\n\
                  keyway_d_sum 1\nkeyway_d_count 1\nkeyway_x_count 3\n";
    let families = families(scrape);
    assert_eq!(
        families.keys().collect::<Vec<_>>(),
        ["keyway_d", "keyway_x_count"]
    );
    assert_eq!(family_of("keyway_d_bucket", &families), "keyway_d");
    assert_eq!(family_of("keyway_x_count", &families), "keyway_x_count");
}

/// Every metric the alert rules, their tests and the dashboard name is one
/// keyway exports: a real keyway in front of a real cluster, given some of
/// each kind of traffic, is scraped and each name looked up among the
/// families of the scrape (histogram series by their family). A renamed or
/// misspelt metric fails here, not silently in Grafana or Prometheus.
///
/// The traffic: SET/GET, a CROSSSLOT error, SUBSCRIBE and PUBLISH (the
/// pub/sub families), an ASK redirect and a backend failure. The last two
/// because their counters have labels (kind; node and kind) and appear with
/// their first event: a keyway that never saw one does not list them.
/// keyway serves TLS too (a certificate made here), for the certificate
/// expiry `KeywayCertificateExpiresSoon` watches.
#[test]
fn ops_files_use_only_metrics_keyway_exports() {
    let cluster = Cluster::start();
    let pki = Pki::new("ops files CA");
    let certificate = pki.issue("keyway", &Spec::server("localhost"));
    let tls = format!(
        "[tls]\nlisten = \"127.0.0.1:{}\"\ncert_file = {:?}\nkey_file = {:?}\n",
        free_ports(1)[0],
        certificate.cert,
        certificate.key
    );
    // Reads go to replicas, so that killing one fails a backend connection.
    let config = read_config("policy = \"replica\"") + &tls;
    let proxy = Proxy::start_with_config(&cluster, &config);
    let mut client = proxy.raw_client();
    for n in 0..10 {
        let key = format!("ops:metrics:{n}");
        assert_eq!(client.cmd(&["SET", &key, "v"]), "+OK\r\n");
        // From a replica: the value may not be there yet.
        let got = client.cmd(&["GET", &key]);
        assert!(got.starts_with('$'), "GET {key}: {got:?}");
    }
    let crossslot = client.cmd(&["RENAME", "{a}x", "{b}y"]);
    assert!(crossslot.starts_with("-CROSSSLOT"), "{crossslot:?}");

    // ASK: the slot of a key nobody wrote is migrating, so its owner sends
    // keyway to the importing master, which has no such key either.
    let ask_key = "ops:metrics:ask";
    let slot = key_slot(ask_key.as_bytes());
    let owner = cluster.node_of_slot(slot);
    let importer = cluster
        .masters()
        .into_iter()
        .find(|m| *m != owner)
        .expect("a second master");
    let migration = cluster.begin_migration(slot, &owner, &importer);
    assert_eq!(client.cmd(&["GET", ask_key]), "$-1\r\n");
    migration.finish();

    let mut subscriber = PubSubClient::connect(&proxy.addr());
    let confirmed = subscriber.cmd(&["SUBSCRIBE", "ops:news"]);
    assert!(confirmed.contains("subscribe"), "{confirmed:?}");
    // The receiver count is the node's that got the PUBLISH: not checked.
    let published = client.cmd(&["PUBLISH", "ops:news", "hello"]);
    assert!(published.starts_with(':'), "{published:?}");
    let message = subscriber.frame();
    assert!(message.contains("hello"), "{message:?}");

    // A backend failure: the replica a GET was read from is killed, and
    // the next GETs of its shard fail over to the master.
    let read_key = "ops:metrics:0";
    let master = cluster.node_of_slot(key_slot(read_key.as_bytes()));
    let replica = cluster
        .replicas_of(&master)
        .into_iter()
        .next()
        .expect("a replica");
    cluster.kill_node(&replica);
    let admin = proxy.admin_addr();
    let scrape = poll_until(Duration::from_secs(15), || {
        let got = client.cmd(&["GET", read_key]);
        assert!(
            got.starts_with('$'),
            "GET {read_key} with {replica} dead: {got:?}"
        );
        let scrape = Scrape::take(&admin);
        let failed = !scrape.samples("keyway_backend_failures_total").is_empty();
        let delivered = scrape.value("keyway_pubsub_messages_delivered_total") >= Some(1.0);
        (failed && delivered).then_some(scrape)
    })
    .unwrap_or_else(|| {
        panic!(
            "no backend failure or no pub/sub delivery counted (replica {replica} killed):\n{}",
            Scrape::take(&admin).text
        )
    });
    let exported = families(&scrape.text);
    eprintln!("{} families exported:", exported.len());
    for (name, kind) in &exported {
        eprintln!("  {name} {kind}");
    }

    let mut unknown: Vec<String> = Vec::new();
    for file in METRIC_USERS {
        let text =
            std::fs::read_to_string(repo_file(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let names = metric_names(&text);
        assert!(!names.is_empty(), "no metric name found in {file}");
        eprintln!("{file}: {} names", names.len());
        for name in &names {
            let family = family_of(name, &exported);
            if !exported.contains_key(family) {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names keyway does not export ({} of them):\n  {}\n\nthe scrape:\n{}",
        unknown.len(),
        unknown.join("\n  "),
        scrape.text
    );
}
