//! Reads from replicas as the nodes see them: `[read]` configs, per-node
//! `INFO commandstats` after `CONFIG RESETSTAT`, replication offsets,
//! shards and keys spread over them, and a node stopped with `SIGSTOP`.
//! Shared by `replica_reads` and `replica_failures`.

use super::cluster::{info_field, Cluster, SlotRange};
use super::{key_for_slot, poll_until, Proxy, SLOTS};
use std::time::Duration;

/// How long keyway may take to notice a replica went away or came back.
pub const NOTICE: Duration = Duration::from_secs(15);

/// keyway's config file with `[read]` holding `lines`.
pub fn read_config(lines: &str) -> String {
    format!("[read]\n{lines}\n")
}

/// `INFO section` asked of the node at `addr` directly.
pub fn info(cluster: &Cluster, addr: &str, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut cluster.conn(addr))
        .unwrap_or_else(|e| panic!("INFO {section} on {addr}: {e}"))
}

/// `cmd`'s line of the node's `INFO commandstats` (`calls=N,...`),
/// `None` when the node has not seen it since its stats were reset.
pub fn stat(cluster: &Cluster, addr: &str, cmd: &str) -> Option<String> {
    let prefix = format!("cmdstat_{cmd}:");
    let stats = info(cluster, addr, "commandstats");
    let line = stats.lines().find_map(|l| l.strip_prefix(&prefix));
    line.map(str::to_string)
}

/// How many times the node ran `cmd` since its stats were reset.
pub fn calls(cluster: &Cluster, addr: &str, cmd: &str) -> u64 {
    let line = stat(cluster, addr, cmd).unwrap_or_else(|| "calls=0,".into());
    let n = line["calls=".len()..].split(',').next().unwrap();
    n.parse()
        .unwrap_or_else(|_| panic!("{addr}: cmdstat_{cmd}:{line}"))
}

/// `CONFIG RESETSTAT` sent to every running node directly.
pub fn reset_stats(cluster: &Cluster) {
    for addr in cluster.alive_addrs() {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut cluster.conn(&addr))
            .unwrap_or_else(|e| panic!("CONFIG RESETSTAT on {addr}: {e}"));
    }
}

/// A replication offset (`field`) of the node at `addr`.
pub fn offset(cluster: &Cluster, addr: &str, field: &str) -> u64 {
    let info = info(cluster, addr, "replication");
    let value = info_field(&info, field).and_then(|o| o.parse().ok());
    value.unwrap_or_else(|| panic!("{addr}: no {field} in {info}"))
}

/// Waits until every running replica has applied all its master had
/// written when this was called.
pub fn wait_replicated(cluster: &Cluster) {
    for master in cluster.masters() {
        let target = offset(cluster, &master, "master_repl_offset");
        for replica in cluster.replicas_of(&master) {
            let caught_up = poll_until(Duration::from_secs(10), || {
                (offset(cluster, &replica, "slave_repl_offset") >= target).then_some(())
            });
            assert!(caught_up.is_some(), "{replica} lags {master}");
        }
    }
}

/// The shard (master and its one replica) serving `slot`.
pub fn shard_of(map: &[SlotRange], slot: u16) -> &SlotRange {
    map.iter()
        .find(|r| r.start <= slot && slot <= r.end)
        .unwrap_or_else(|| panic!("slot {slot} is not covered"))
}

/// The replica of a shard; the harness gives each master exactly one.
pub fn replica(shard: &SlotRange) -> &str {
    assert_eq!(shard.replicas.len(), 1, "{shard:?}");
    &shard.replicas[0]
}

/// `n` keys spread evenly over the slots, each with its slot; `tag` keeps
/// tests from sharing keys.
pub fn spread_keys(tag: &str, n: u32) -> Vec<(String, u16)> {
    (0..n)
        .map(|i| {
            let slot = (i * u32::from(SLOTS) / n) as u16;
            (format!("{{{}}}:{tag}", key_for_slot(slot)), slot)
        })
        .collect()
}

/// One key in each shard (the first slot of its range), with that shard;
/// a new cluster has one slot range per master.
pub fn key_per_shard(cluster: &Cluster, tag: &str) -> Vec<(String, SlotRange)> {
    let map = cluster.slot_map();
    assert_eq!(map.len(), 3, "{map:?}");
    let key = |r: &SlotRange| format!("{{{}}}:{tag}", key_for_slot(r.start));
    map.into_iter().map(|r| (key(&r), r)).collect()
}

/// Each key with a value naming it, `prefix:key`.
pub fn with_values<T>(keys: &[(String, T)], prefix: &str) -> Vec<(String, String)> {
    keys.iter()
        .map(|(k, _)| (k.clone(), format!("{prefix}:{k}")))
        .collect()
}

/// SETs every key to its value through keyway, in one pipeline.
pub fn write_all(proxy: &Proxy, pairs: &[(String, String)]) {
    let mut pipe = redis::pipe();
    for (k, v) in pairs {
        pipe.cmd("SET").arg(k).arg(v).ignore();
    }
    let set: redis::RedisResult<()> = pipe.query(&mut proxy.conn());
    set.expect("SETs through keyway");
}

/// GET `key` through `con`.
pub fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

/// `value` as a RESP bulk string.
pub fn bulk(value: &str) -> String {
    format!("${}\r\n{value}\r\n", value.len())
}

/// A node of a cluster stopped with `SIGSTOP`: it keeps its sockets (the
/// kernel still accepts connections for it) but answers nothing, until
/// [`Stopped::resume`] or drop (also when the test panics) sends `SIGCONT`.
pub struct Stopped<'a> {
    cluster: &'a Cluster,
    addr: String,
    pid: u32,
}

impl Cluster {
    /// Stops the node at `addr` with `SIGSTOP`; it goes on when the
    /// returned guard is resumed or dropped.
    pub fn stop_node(&self, addr: &str) -> Stopped<'_> {
        let pid = self.pid_of(addr);
        signal(pid, libc::SIGSTOP).unwrap_or_else(|e| panic!("SIGSTOP {addr}: {e}"));
        Stopped {
            cluster: self,
            addr: addr.to_string(),
            pid,
        }
    }
}

impl Stopped<'_> {
    /// The stopped node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `SIGCONT`: the node goes on where it stopped.
    pub fn resume(self) {}
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        // Borrowing the cluster keeps its child (this pid) unreaped; a
        // node killed meanwhile needs nothing.
        if self.cluster.running_pid(&self.addr) == Some(self.pid) {
            // Never panics here: this may run while a test panics.
            let _ = signal(self.pid, libc::SIGCONT);
        }
    }
}

/// Sends `sig` to `pid`.
fn signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: plain kill(2) on a child of this process that is not reaped.
    match unsafe { libc::kill(pid as libc::pid_t, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
