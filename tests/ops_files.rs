//! The operations files in `conf/` checked by the tools that read them:
//! the Prometheus alert rules and their unit tests and the scrape config
//! (`promtool`), the Grafana dashboard (valid JSON), and the systemd unit
//! (`systemd-analyze verify`, where systemd is installed).
//!
//! `tests/run.sh` installs promtool (Debian's `prometheus` package) and
//! python3; with the `CI` environment variable set a missing one fails the
//! test, otherwise the test prints a note and skips it.

use crate::support::tools::{installed, required};
use crate::support::util::{run_bounded, TempDir};

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
