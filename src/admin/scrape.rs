//! What `/metrics` and `/health/ready` answer: the recorder's metrics
//! (events counted as they happen, see [`crate::metrics`]), the figures
//! read at scrape time (clients, readiness, the workers' read counts), the
//! workers' per-command counts and durations ([`crate::stats::commands`])
//! and per-node figures ([`crate::stats::backends`]), and the process collector's `process_*` figures from `/proc`.

use std::fmt::Write;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::Snapshot;
use crate::worker::Shared;

/// The whole `/metrics` text.
pub fn render(shared: &Shared, handle: &PrometheusHandle) -> String {
    let topology = shared.view.topology().load();
    crate::metrics::snapshot(&Snapshot {
        ready: shared.not_ready().is_none(),
        clients: shared.registry.connected(),
        census: shared.registry.census(),
        max_clients: shared.live.load().max_clients.get(),
        replicas: topology.replica_count(),
        replicas_lagging: shared.view.replicas_lagging(),
        reads: shared.reads.totals(),
        failovers: shared.view.failovers(),
        replies_buffered: shared.registry.buffered(),
    });
    let mut text = handle.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let table = shared.view.commands().load();
    shared.commands_answered.render(&table, &mut text);
    let nodes: Vec<(std::sync::Arc<str>, &'static str)> = topology
        .nodes()
        .iter()
        .flat_map(|node| {
            let replicas = node.replicas.iter().map(|r| (r.clone(), "replica"));
            std::iter::once((node.addr.clone(), "master")).chain(replicas)
        })
        .collect();
    shared.backends.render(&nodes, &mut text);
    shared.pubsub.render(&mut text);
    process(&mut text);
    text
}

/// The unit of `/proc`'s times: Linux reports them in USER_HZ, 100 per
/// second on every architecture keyway builds for.
const USER_HZ: f64 = 100.0;

/// keyway's open file descriptors. Linux 6.2 and later give the count as
/// the size of `/proc/self/fd` (microseconds); older kernels say 0 there,
/// and the directory is listed (about 1 ms per thousand clients).
fn open_fds() -> Option<f64> {
    let dir = "/proc/self/fd";
    match std::fs::metadata(dir).map(|m| m.len()) {
        Ok(n) if n > 0 => Some(n as f64),
        _ => std::fs::read_dir(dir).ok().map(|d| d.count() as f64),
    }
}

/// The standard process collector's figures, from `/proc/self`.
fn process(out: &mut String) {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let stat = read("/proc/self/stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let status = read("/proc/self/status");
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            let value = l.strip_prefix(key)?.trim().strip_suffix("kB")?;
            value.trim().parse::<f64>().ok().map(|v| v * 1024.0)
        })
    };
    let boot = read("/proc/stat").lines().find_map(|l| {
        l.strip_prefix("btime ")
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let limits = read("/proc/self/limits");
    let max_fds = limits.lines().find_map(|l| {
        let soft = l
            .strip_prefix("Max open files")?
            .split_whitespace()
            .next()?;
        soft.parse::<f64>().ok()
    });
    let open_fds = open_fds();
    let families = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            field(14).zip(field(15)).map(|(u, s)| (u + s) / USER_HZ),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kib("VmRSS:"),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            kib("VmSize:"),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            field(22)
                .zip(boot)
                .map(|(ticks, boot)| boot + ticks / USER_HZ),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max_fds,
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}
