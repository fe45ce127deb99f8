//! Moving a slot between masters by hand, one step at a time (`SETSLOT
//! IMPORTING/MIGRATING`, `MIGRATE ... KEYS` in batches, `SETSLOT NODE`), so
//! a test can act while the slot is half-way (ASK) as well as after (MOVED).

use super::cluster::{query, Cluster, CONVERGE_TIMEOUT};
use super::util::poll_until;
use redis::Value;

impl Cluster {
    /// Starts moving `slot` from master `from` to master `to`: `SETSLOT
    /// IMPORTING` on `to`, then `SETSLOT MIGRATING` on `from`. Keys move only
    /// when the returned [`Migration`] is told to, so a test can act mid-way.
    pub fn begin_migration(&self, slot: u16, from: &str, to: &str) -> Migration<'_> {
        let m = Migration {
            cluster: self,
            slot,
            from: from.to_string(),
            to: to.to_string(),
            from_id: self.node_id(from),
            to_id: self.node_id(to),
        };
        m.setslot(to, "IMPORTING", &m.from_id);
        m.setslot(from, "MIGRATING", &m.to_id);
        m
    }

    /// Moves `slot` from `from` to `to` completely (begin, move every key,
    /// finish) and waits until all nodes agree.
    pub fn migrate_slot(&self, slot: u16, from: &str, to: &str) {
        let m = self.begin_migration(slot, from, to);
        m.move_all_keys();
        m.finish();
    }
}

/// A slot migration in progress (see [`Cluster::begin_migration`]).
pub struct Migration<'a> {
    cluster: &'a Cluster,
    slot: u16,
    from: String,
    to: String,
    from_id: String,
    to_id: String,
}

impl Migration<'_> {
    fn setslot(&self, on: &str, state: &str, id: &str) {
        let r: redis::RedisResult<()> = query(
            on,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(self.slot)
                .arg(state)
                .arg(id),
        );
        r.unwrap_or_else(|e| panic!("CLUSTER SETSLOT {} {state} on {on}: {e}", self.slot));
    }

    /// Moves up to `batch` of the slot's keys with `MIGRATE ... KEYS`;
    /// returns how many it moved (0 when the source has none left).
    pub fn move_keys(&self, batch: usize) -> usize {
        let keys: Vec<Vec<u8>> = query(
            &self.from,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(self.slot)
                .arg(batch),
        )
        .unwrap_or_else(|e| panic!("GETKEYSINSLOT on {}: {e}", self.from));
        if keys.is_empty() {
            return 0;
        }
        let (host, port) = self.to.rsplit_once(':').expect("host:port");
        let r: redis::RedisResult<Value> = query(
            &self.from,
            redis::cmd("MIGRATE")
                .arg(host)
                .arg(port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys),
        );
        r.unwrap_or_else(|e| {
            panic!(
                "MIGRATE slot {} {} -> {}: {e}",
                self.slot, self.from, self.to
            )
        });
        keys.len()
    }

    /// Moves every key of the slot still on the source.
    pub fn move_all_keys(&self) {
        while self.move_keys(100) > 0 {}
    }

    /// Assigns the slot to the target on every master (`SETSLOT NODE`,
    /// target first, then source) and waits until the cluster agrees.
    pub fn finish(self) {
        self.setslot(&self.to, "NODE", &self.to_id);
        self.setslot(&self.from, "NODE", &self.to_id);
        for m in self.cluster.masters() {
            if m != self.to && m != self.from {
                self.setslot(&m, "NODE", &self.to_id);
            }
        }
        let slot = self.slot;
        let to = self.to.clone();
        let agreed = poll_until(CONVERGE_TIMEOUT, || {
            let all = self.cluster.alive_addrs().iter().all(|a| {
                self.cluster.slot_map_of(a).is_ok_and(|map| {
                    map.iter()
                        .any(|r| r.start <= slot && slot <= r.end && r.master == to)
                })
            });
            all.then_some(())
        });
        assert!(
            agreed.is_some(),
            "nodes did not agree that slot {slot} moved to {to}"
        );
        self.cluster.wait_ok();
    }
}
