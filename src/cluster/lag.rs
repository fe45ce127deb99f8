//! Replication lag (`read.max_lag_bytes`): how many bytes of its master's
//! replication stream each replica has not applied yet, from the masters'
//! `INFO replication`, and which replicas are too far behind to serve
//! reads. Pure: the refresh task asks the masters and hands the replies in.
//!
//! How fresh the figure is: a master lists each replica's offset as of the
//! replica's last `REPLCONF ACK`, which a replica sends every second; the
//! refresh task asks once a second. So a replica that falls behind is seen
//! within about 2 s, and a healthy replica under steady writes looks up to
//! one second of writes behind: set `max_lag_bytes` above that.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::Topology;

/// What one master's `INFO replication` says about offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterOffsets {
    /// `master_repl_offset`: how far the master's stream goes.
    pub master: u64,
    /// Each connected replica (`slaveN:ip=...,port=...,offset=...`): its
    /// `host`, `port` and acknowledged offset.
    pub replicas: Vec<(String, u16, u64)>,
}

impl MasterOffsets {
    /// Parses `INFO replication` of a node that is a master; `None` for a
    /// replica (a master demoted since the slot map was read) or a reply
    /// without `master_repl_offset`.
    pub fn parse(info: &str) -> Option<MasterOffsets> {
        let mut master = None;
        let mut is_master = false;
        let mut replicas = Vec::new();
        for line in info.lines().map(str::trim_end) {
            if line == "role:master" {
                is_master = true;
            } else if let Some(offset) = line.strip_prefix("master_repl_offset:") {
                master = offset.parse().ok();
            } else if line.starts_with("slave") {
                if let Some(replica) = line.split_once(':').and_then(|(_, v)| replica(v)) {
                    replicas.push(replica);
                }
            }
        }
        let master = master.filter(|_| is_master)?;
        Some(MasterOffsets { master, replicas })
    }
}

/// `ip=127.0.0.1,port=7004,state=online,offset=1234,lag=0`: an online
/// replica's host, port and offset.
fn replica(fields: &str) -> Option<(String, u16, u64)> {
    let mut host = None;
    let mut port = None;
    let mut offset = None;
    let mut online = false;
    for field in fields.split(',') {
        match field.split_once('=')? {
            ("ip", v) => host = Some(v.to_string()),
            ("port", v) => port = v.parse().ok(),
            ("offset", v) => offset = v.parse().ok(),
            ("state", v) => online = v == "online",
            _ => {}
        }
    }
    online.then_some((host?, port?, offset?))
}

/// How far behind each replica was at its master's last answer, and the
/// replicas that serve no reads for it.
#[derive(Debug, Default)]
pub struct Lags {
    /// Bytes behind, by replica address; `None`: its master does not list
    /// it as an online replica (its link is down, or it is resyncing).
    behind: HashMap<Arc<str>, Option<u64>>,
    /// The replicas over the limit at the last [`Lags::judge`].
    lagging: Vec<Arc<str>>,
}

impl Lags {
    /// Records master `master`'s answer for its replicas in `topology`. A
    /// master that did not answer leaves its replicas as they were.
    pub fn record(&mut self, topology: &Topology, master: &str, offsets: &MasterOffsets) {
        let Some(node) = topology.nodes().iter().find(|n| &*n.addr == master) else {
            return;
        };
        for addr in &node.replicas {
            let behind = offsets
                .find(addr, &node.replicas)
                .map(|acked| offsets.master.saturating_sub(acked));
            self.behind.insert(addr.clone(), behind);
        }
    }

    /// `topology` without the replicas more than `max` bytes behind (or not
    /// replicating), logging each replica that starts or stops lagging.
    pub fn judge(&mut self, topology: Topology, max: u64) -> Topology {
        self.behind.retain(|addr, _| topology.knows(addr));
        let over = |addr: &Arc<str>| match self.behind.get(addr) {
            Some(Some(behind)) => *behind > max,
            Some(None) => true,
            None => false,
        };
        let lagging: Vec<Arc<str>> = topology
            .nodes()
            .iter()
            .flat_map(|n| n.replicas.iter())
            .filter(|a| over(a))
            .cloned()
            .collect();
        for addr in lagging.iter().filter(|a| !self.lagging.contains(a)) {
            match self.behind.get(addr) {
                Some(Some(behind)) => {
                    warn!(replica = %addr, behind, max_lag_bytes = max, "replica lags its master: reads skip it until it catches up")
                }
                _ => {
                    warn!(replica = %addr, "replica is not replicating from its master: reads skip it until it is")
                }
            }
        }
        for addr in self.lagging.iter().filter(|a| !lagging.contains(a)) {
            if topology.knows(addr) {
                info!(replica = %addr, "replica caught up with its master: reads use it again");
            }
        }
        let kept = topology.without_replicas(&lagging);
        self.lagging = lagging;
        kept
    }

    /// How many replicas serve no reads for lag now.
    pub fn lagging(&self) -> usize {
        self.lagging.len()
    }

    /// Forgets everything (lag sampling was turned off).
    pub fn clear(&mut self) {
        *self = Lags::default();
    }
}

impl MasterOffsets {
    /// The acknowledged offset of replica `addr` (one of `replicas`, the
    /// master's replicas in the slot map): listed under the same
    /// `host:port`, or, when the master sees another address (NAT, an
    /// announced IP), under the same port when that port is unique.
    fn find(&self, addr: &str, replicas: &[Arc<str>]) -> Option<u64> {
        let (host, port) = host_port(addr)?;
        let listed = |r: &&(String, u16, u64)| r.1 == port;
        if let Some(exact) = self.replicas.iter().filter(listed).find(|r| r.0 == host) {
            return Some(exact.2);
        }
        let ours = replicas
            .iter()
            .filter(|a| host_port(a).is_some_and(|(_, p)| p == port));
        let mut theirs = self.replicas.iter().filter(listed);
        match (theirs.next(), theirs.next()) {
            (Some(only), None) if ours.count() == 1 => Some(only.2),
            _ => None,
        }
    }
}

/// `host:port` (or `[v6]:port`) split.
fn host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((
        host.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::one_shard;
    use crate::cluster::Slot;

    const INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=7003,state=online,offset=9000,lag=0\r\n\
        slave1:ip=127.0.0.1,port=7004,state=online,offset=10000,lag=1\r\n\
        slave2:ip=127.0.0.1,port=7005,state=wait_bgsave,offset=0,lag=0\r\n\
        master_failover_state:no-failover\r\nmaster_repl_offset:10000\r\n";

    fn replicas(t: &Topology) -> Vec<&str> {
        let master = t.master_of(Slot::of_key(b"k")).unwrap();
        let node = &t.nodes()[master as usize];
        node.replicas.iter().map(|a| &**a).collect()
    }

    #[test]
    fn a_masters_info_gives_its_offset_and_its_online_replicas() {
        let offsets = MasterOffsets::parse(INFO).unwrap();
        assert_eq!(offsets.master, 10000);
        assert_eq!(
            offsets.replicas,
            [
                ("127.0.0.1".to_string(), 7003, 9000),
                ("127.0.0.1".to_string(), 7004, 10000)
            ]
        );
        let replica_info = "role:slave\r\nmaster_repl_offset:10\r\n";
        assert_eq!(MasterOffsets::parse(replica_info), None);
    }

    #[test]
    fn replicas_over_the_limit_or_not_replicating_are_left_out_until_they_catch_up() {
        let t = one_shard(&[7003, 7004, 7005]);
        let mut lags = Lags::default();
        lags.record(&t, "127.0.0.1:7000", &MasterOffsets::parse(INFO).unwrap());
        let judged = lags.judge(t.clone(), 500);
        // 7003 is 1000 behind; 7005 is still syncing.
        assert_eq!(replicas(&judged), ["127.0.0.1:7004"]);
        assert_eq!(lags.lagging(), 2);
        let wider = lags.judge(t.clone(), 5000);
        assert_eq!(replicas(&wider), ["127.0.0.1:7003", "127.0.0.1:7004"]);
        let caught_up = INFO.replace("offset=9000", "offset=10000");
        let caught_up = caught_up.replace("wait_bgsave,offset=0", "online,offset=10000");
        lags.record(
            &t,
            "127.0.0.1:7000",
            &MasterOffsets::parse(&caught_up).unwrap(),
        );
        assert_eq!(replicas(&lags.judge(t.clone(), 500)).len(), 3);
        assert_eq!(lags.lagging(), 0);
    }

    #[test]
    fn a_replica_the_master_sees_under_another_ip_is_found_by_its_port() {
        let t = one_shard(&[7003, 7004]);
        let natted = INFO.replace("ip=127.0.0.1,port=7003", "ip=10.1.2.3,port=7003");
        let mut lags = Lags::default();
        lags.record(
            &t,
            "127.0.0.1:7000",
            &MasterOffsets::parse(&natted).unwrap(),
        );
        // Found: 1000 bytes behind, within 5000 (not found would mean
        // "not replicating", and left out).
        assert_eq!(replicas(&lags.judge(t.clone(), 5000)).len(), 2);
        assert_eq!(replicas(&lags.judge(t, 500)), ["127.0.0.1:7004"]);
    }

    #[test]
    fn replicas_never_sampled_serve_reads() {
        let t = one_shard(&[7003]);
        assert_eq!(replicas(&Lags::default().judge(t, 1)), ["127.0.0.1:7003"]);
    }
}
