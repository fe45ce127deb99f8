//! Commands counted by name with the time each took through keyway
//! (`keyway_commands_total`, `keyway_command_duration_seconds`): from the
//! read that brought the request in to its reply being taken for the
//! client's socket. Each worker records into its own [`WorkerCommands`]
//! (one writer: plain adds, no locked instruction, nothing shared between
//! workers on the request path); a scrape sums the workers'.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::command::CommandTable;

use super::histogram::{Histogram, Totals};
use super::{add, PerWorker};

/// Commands (and subcommands) counted apart, by ACL id; ids past it (a
/// table extended by far more than today's commands) count as `other`.
pub const CAPACITY: usize = 512;

/// The id commands not in the table are counted under (`unknown`).
pub const UNKNOWN: u16 = (CAPACITY - 1) as u16;

/// Where ids past the capacity are counted (`other`).
const OTHER: usize = CAPACITY - 2;

/// The kinds error replies are counted by (`keyway_command_errors_total`).
pub const ERROR_KINDS: [&str; 9] = [
    "moved",
    "ask",
    "tryagain",
    "crossslot",
    "clusterdown",
    "timeout",
    "backend",
    "refused",
    "other",
];

/// The kind of error reply `reply` (it starts with `-`): a redirect keyway
/// could not follow, a cluster state, keyway's own errors about a node
/// (`timeout`; `backend`: cannot connect, lost, malformed reply), a
/// refusal of the client (`NOAUTH`, `NOPERM`, `WRONGPASS`, client limit),
/// or `other` (the node's own errors, `WRONGTYPE` and the like).
pub fn error_kind(reply: &[u8]) -> usize {
    const PREFIXES: [(&[u8], usize); 12] = [
        (b"-MOVED", 0),
        (b"-ASK", 1),
        (b"-TRYAGAIN", 2),
        (b"-CROSSSLOT", 3),
        (b"-CLUSTERDOWN keyway cannot", 6),
        (b"-CLUSTERDOWN", 4),
        (b"-ERR keyway got no reply", 5),
        (b"-ERR keyway", 6),
        (b"-NOAUTH", 7),
        (b"-NOPERM", 7),
        (b"-WRONGPASS", 7),
        (b"-ERR max number of clients", 7),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| reply.starts_with(prefix))
        .map_or(ERROR_KINDS.len() - 1, |&(_, kind)| kind)
}

/// One worker's figures; only that worker's thread writes them.
pub struct WorkerCommands {
    by_id: Box<[Histogram]>,
    errors: [AtomicU64; ERROR_KINDS.len()],
}

impl Default for WorkerCommands {
    fn default() -> WorkerCommands {
        WorkerCommands {
            by_id: (0..CAPACITY).map(|_| Histogram::default()).collect(),
            errors: Default::default(),
        }
    }
}

impl WorkerCommands {
    /// Counts an error reply of kind `kind` (see [`error_kind`]).
    #[cold]
    pub fn record_error(&self, kind: usize) {
        add(&self.errors[kind.min(ERROR_KINDS.len() - 1)], 1);
    }

    /// Counts command `id` (a [`crate::command::CommandSpec::acl_id`], or
    /// [`UNKNOWN`]), which took `took`.
    #[inline]
    pub fn record(&self, id: u16, took: Duration) {
        let index = match id {
            UNKNOWN => UNKNOWN as usize,
            id => (id as usize).min(OTHER),
        };
        self.by_id[index].record(took);
    }
}

/// Every worker's figures.
pub type CommandStats = PerWorker<WorkerCommands>;

impl CommandStats {
    /// Every command that ran, by id, summed over the workers.
    pub fn totals(&self) -> Vec<(u16, Totals)> {
        let workers = self.workers();
        let mut out = Vec::new();
        for id in 0..CAPACITY {
            let mut totals = Totals::default();
            for worker in workers.iter() {
                worker.by_id[id].add_to(&mut totals);
            }
            if totals.count() > 0 {
                out.push((id as u16, totals));
            }
        }
        out
    }

    /// Error replies by kind (see [`ERROR_KINDS`]), summed over the workers.
    pub fn errors(&self) -> [u64; ERROR_KINDS.len()] {
        let workers = self.workers();
        let mut totals = [0; ERROR_KINDS.len()];
        for worker in workers.iter() {
            for (total, count) in totals.iter_mut().zip(&worker.errors) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// The three families in Prometheus' text format, commands named as in
    /// `table` (`config|get` for a subcommand).
    pub fn render(&self, table: &CommandTable, out: &mut String) {
        out.push_str(
            "# HELP keyway_command_errors_total Error replies keyway sent to clients, by kind.\n",
        );
        out.push_str("# TYPE keyway_command_errors_total counter\n");
        for (kind, count) in ERROR_KINDS.iter().zip(self.errors()) {
            let _ = writeln!(
                out,
                "keyway_command_errors_total{{kind=\"{kind}\"}} {count}"
            );
        }
        let names = CommandNames::of(table);
        let totals = self.totals();
        let name = |id: u16| names.name(id);
        out.push_str("# HELP keyway_commands_total Commands keyway answered, by command.\n");
        out.push_str("# TYPE keyway_commands_total counter\n");
        for (id, t) in &totals {
            let _ = writeln!(
                out,
                "keyway_commands_total{{command=\"{}\"}} {}",
                name(*id),
                t.count()
            );
        }
        out.push_str("# HELP keyway_command_duration_seconds Time from reading a request to its reply being taken for the client, by command.\n");
        out.push_str("# TYPE keyway_command_duration_seconds histogram\n");
        for (id, t) in &totals {
            let labels = format!("command=\"{}\"", name(*id));
            t.render("keyway_command_duration_seconds", &labels, out);
        }
    }
}

/// Every command's and subcommand's name, by ACL id, as the figures
/// name them.
pub struct CommandNames(Vec<Option<String>>);

impl CommandNames {
    /// The names of `table`'s commands.
    pub fn of(table: &CommandTable) -> CommandNames {
        let mut names = vec![None; table.acl_id_count() as usize];
        for spec in table.iter() {
            for s in std::iter::once(spec).chain(spec.subcommands()) {
                if let Some(slot) = names.get_mut(s.acl_id() as usize) {
                    *slot = Some(s.name().to_string());
                }
            }
        }
        CommandNames(names)
    }

    /// The name of command `id` (`config|get` for a subcommand),
    /// `unknown` for [`UNKNOWN`], `other` past the figures' capacity.
    pub fn name(&self, id: u16) -> &str {
        match self.0.get(id as usize) {
            _ if id == UNKNOWN => "unknown",
            Some(Some(name)) if (id as usize) < OTHER => name.as_str(),
            _ => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_buckets_and_workers_are_summed() {
        let stats = CommandStats::default();
        let (a, b) = (stats.for_worker(), stats.for_worker());
        a.record(3, Duration::from_micros(50));
        a.record(3, Duration::from_micros(300));
        b.record(3, Duration::from_secs(20));
        b.record(UNKNOWN, Duration::ZERO);
        let totals = stats.totals();
        assert_eq!(totals.len(), 2);
        let (id, t) = &totals[0];
        assert_eq!(*id, 3);
        assert_eq!((t.buckets[0], t.buckets[2], t.buckets[16]), (1, 1, 1));
        assert_eq!(t.count(), 3);
        assert!((t.sum_seconds() - 20.00035).abs() < 1e-9);
    }

    #[test]
    fn error_replies_are_counted_by_kind() {
        let kind = |reply: &[u8]| ERROR_KINDS[error_kind(reply)];
        assert_eq!(kind(b"-MOVED 1 h:1\r\n"), "moved");
        assert_eq!(kind(b"-CROSSSLOT Keys in request\r\n"), "crossslot");
        assert_eq!(kind(b"-CLUSTERDOWN The cluster is down\r\n"), "clusterdown");
        assert_eq!(
            kind(b"-CLUSTERDOWN keyway cannot connect to node\r\n"),
            "backend"
        );
        assert_eq!(kind(b"-ERR keyway got no reply from node\r\n"), "timeout");
        assert_eq!(kind(b"-ERR keyway lost the connection\r\n"), "backend");
        assert_eq!(kind(b"-NOPERM this user has no permissions\r\n"), "refused");
        assert_eq!(kind(b"-WRONGTYPE Operation against a key\r\n"), "other");
        let stats = CommandStats::default();
        let worker = stats.for_worker();
        worker.record_error(error_kind(b"-TRYAGAIN x\r\n"));
        worker.record_error(error_kind(b"-TRYAGAIN x\r\n"));
        let mut text = String::new();
        stats.render(&CommandTable::builtin(), &mut text);
        assert!(text.contains("keyway_command_errors_total{kind=\"tryagain\"} 2\n"));
        assert!(text.contains("keyway_command_errors_total{kind=\"moved\"} 0\n"));
    }

    #[test]
    fn the_text_names_commands_and_has_cumulative_buckets() {
        let table = CommandTable::builtin();
        let get = table.get_by_name("get").unwrap().acl_id() as u16;
        let stats = CommandStats::default();
        let worker = stats.for_worker();
        for _ in 0..100 {
            worker.record(get, Duration::from_micros(200));
        }
        worker.record(UNKNOWN, Duration::from_micros(1));
        let mut text = String::new();
        stats.render(&table, &mut text);
        assert!(text.contains("keyway_commands_total{command=\"get\"} 100\n"));
        assert!(text.contains("keyway_commands_total{command=\"unknown\"} 1\n"));
        assert!(text
            .contains("keyway_command_duration_seconds_bucket{command=\"get\",le=\"0.0001\"} 0\n"));
        assert!(text.contains(
            "keyway_command_duration_seconds_bucket{command=\"get\",le=\"0.00025\"} 100\n"
        ));
        assert!(text
            .contains("keyway_command_duration_seconds_bucket{command=\"get\",le=\"+Inf\"} 100\n"));
        assert!(text.contains("keyway_command_duration_seconds_count{command=\"get\"} 100\n"));
    }
}
