//! The one background task that fetches the cluster's topology: at start,
//! when a worker asks (after `MOVED` or a backend failure; requests coalesce),
//! and every refresh interval (every second while `read.max_lag_bytes` is
//! on). Each round also asks every master for `INFO replication`: whether
//! it answers (readiness, [`ClusterView::unready`]) and its replicas'
//! offsets ([`super::lag`]). While no node answers, keyway keeps serving
//! (`-CLUSTERDOWN`) and keeps retrying.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backend::control::{self, Link};
use crate::backend::node_loss::NodeLosses;
use arc_swap::ArcSwap;

use crate::config::{Live, NodeAccess};
use crate::protocol::Value;

use super::lag::{Lags, MasterOffsets};
use super::topology::Topology;
use super::ClusterView;

/// Shortest time between two refreshes triggered by workers, so a burst of
/// `MOVED` during a migration costs one round of queries, not hundreds.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// After a worker asks for a refresh (a `MOVED`, a node that stopped
/// answering), the map is re-read this often for [`FAST_WINDOW`]: a failover
/// or a resharding is under way, and the cluster's new map should reach the
/// workers soon after the cluster settles, not a full refresh interval
/// later (requests for a shard without master are held until then, see
/// [`crate::hold`]). The [`DEBOUNCE`] is part of the period.
const FAST_REFRESH: Duration = Duration::from_millis(100);
/// How long refreshes stay frequent after the last request for one.
const FAST_WINDOW: Duration = Duration::from_secs(10);

/// How often rounds run while replicas' lag is watched: replicas report
/// their offset to their master once a second.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// The kept control connections, by node address.
type Links = HashMap<String, Link>;

/// Runs until the process ends; call inside a tokio runtime. Each round
/// reads the live configuration current then (intervals, timeouts).
pub async fn run(
    view: Arc<ClusterView>,
    live: Arc<ArcSwap<Live>>,
    seeds: Vec<String>,
    losses: Arc<NodeLosses>,
) {
    let mut epoch = 0u64;
    let mut commands_loaded = false;
    let mut warned = false;
    let mut fast_until = Instant::now();
    let mut links = Links::new();
    let mut lags = Lags::default();
    let mut trigger = "start";
    let mut answered: Option<String> = None;
    // The last map read (before the lag filter), to see failovers.
    let mut previous: Option<Topology> = None;
    loop {
        let config = live.load_full();
        crate::metrics::topology_refresh(trigger);
        let asked = Asked {
            answered: &answered,
            seeds: &seeds,
            losses: &losses,
        };
        match fetch(&asked, &view, &config, &mut links).await {
            Ok((topology, from)) => {
                answered = Some(from.clone());
                if warned {
                    info!(node = %from, "cluster reachable again");
                    warned = false;
                }
                // Before the first slot map lets clients in, so that none
                // sees the built-in table or version where the cluster's differ.
                if !commands_loaded {
                    commands_loaded = load_commands(&view, &config, &from).await;
                }
                if let Some(before) = &previous {
                    for promoted in topology.promoted_since(before) {
                        info!(node = %promoted, "failover seen: a replica now serves its master's slots");
                        view.failover_seen();
                    }
                }
                let read: &Topology = previous.insert(topology.clone());
                // The lag filter needs every master's answer first. Without
                // it the map is published before the masters are asked, so
                // a hung master (it answers only at the timeout) never
                // delays the new map of a failover.
                let mut silent = None;
                let topology = match config.read.max_lag_bytes {
                    Some(max) => {
                        silent = Some(ask_masters(&mut links, &mut lags, &topology, &config).await);
                        lags.judge(topology, max)
                    }
                    None => {
                        lags.clear();
                        topology
                    }
                };
                view.set_replicas_lagging(lags.lagging());
                links.retain(|addr, _| topology.knows(addr) || seeds.contains(addr));
                publish(&view, &mut epoch, topology, &from);
                let silent = match silent {
                    Some(silent) => silent,
                    None => ask_masters(&mut links, &mut lags, read, &config).await,
                };
                view.set_unready(unready(read, &silent));
            }
            Err(reason) => {
                view.set_unready(Some(format!("no cluster node answered: {reason}")));
                if !warned {
                    warn!(
                        ?seeds,
                        %reason,
                        "no cluster node answered; clients get -CLUSTERDOWN until one does; retrying every {:?}",
                        config.retry_interval
                    );
                    warned = true;
                }
            }
        }
        let mut wait = if warned {
            config.retry_interval
        } else if Instant::now() < fast_until {
            FAST_REFRESH
                .saturating_sub(DEBOUNCE)
                .min(config.refresh_interval)
        } else {
            config.refresh_interval
        };
        if config.read.max_lag_bytes.is_some() {
            wait = wait.min(LAG_INTERVAL);
        }
        trigger = if warned { "retry" } else { "interval" };
        if tokio::time::timeout(wait, view.wake.notified())
            .await
            .is_ok()
        {
            fast_until = Instant::now() + FAST_WINDOW;
            trigger = "requested";
        }
        apply_moved(&view, &mut epoch);
        tokio::time::sleep(DEBOUNCE).await;
        apply_moved(&view, &mut epoch);
    }
}

/// Publishes `topology` (read from `from`) under a new epoch, unless it is
/// the map workers have already.
fn publish(view: &ClusterView, epoch: &mut u64, topology: Topology, from: &str) {
    let current = view.topology.load();
    if current.epoch() != 0 && topology.same_map(&current) {
        return;
    }
    *epoch += 1;
    let topology = topology.with_epoch(*epoch);
    info!(
        epoch = *epoch,
        from = %from,
        masters = topology.nodes().len(),
        nodes = topology.all_nodes().len(),
        covered = topology.covered_slots(),
        "topology updated"
    );
    crate::metrics::topology_updated(*epoch, topology.covered_slots(), topology.nodes().len());
    view.topology.store(Arc::new(topology));
}

/// Publishes the slot moves workers reported since the last look.
fn apply_moved(view: &ClusterView, epoch: &mut u64) {
    let moved = view.take_moved();
    if moved.is_empty() {
        return;
    }
    let mut topology = Topology::clone(&view.topology.load());
    for (slot, addr) in &moved {
        *epoch += 1;
        topology = topology.with_slot_moved(*slot, addr, *epoch);
    }
    debug!(
        epoch = *epoch,
        moves = moved.len(),
        "slot map patched from MOVED"
    );
    crate::metrics::topology_updated(*epoch, topology.covered_slots(), topology.nodes().len());
    view.topology.store(Arc::new(topology));
}

/// A connection to a node lost within this long (a dead or hung node) makes
/// the refresh ask that node last.
const RECENTLY_LOST: Duration = Duration::from_secs(30);

/// Whom a refresh round asks for the map.
struct Asked<'a> {
    /// The node that answered last time.
    answered: &'a Option<String>,
    /// `cluster.seeds`.
    seeds: &'a [String],
    /// Connections lost, by node, for every worker.
    losses: &'a NodeLosses,
}

/// Asks the node that answered last time, the known masters, then the
/// seeds, until one gives a usable map; a node whose connection was lost
/// recently only after all of them.
async fn fetch(
    asked: &Asked<'_>,
    view: &ClusterView,
    config: &Live,
    links: &mut Links,
) -> Result<(Topology, String), String> {
    let known = view.topology.load();
    // The node that answered last time first: a dead master (a failover
    // under way) costs a refresh round nothing then; a hung one, whose
    // connection timed out, is asked last (it would take the answer timeout).
    let (lost, fine): (Vec<String>, Vec<String>) = asked
        .answered
        .clone()
        .into_iter()
        .chain(known.nodes().iter().map(|n| n.addr.to_string()))
        .chain(asked.seeds.iter().cloned())
        .partition(|addr| asked.losses.lost_within(addr, RECENTLY_LOST));
    let candidates = fine.into_iter().chain(lost);
    let mut last_error = String::from("no node to ask");
    let mut tried = Vec::new();
    for addr in candidates {
        if tried.contains(&addr) {
            continue;
        }
        let link = links
            .entry(addr.clone())
            .or_insert_with(|| Link::new(&addr));
        match fetch_from(link, &addr, config).await {
            Ok(topology) if topology.covered_slots() > 0 => return Ok((topology, addr)),
            Ok(_) => last_error = format!("{addr}: no slot is assigned yet"),
            Err(e) => last_error = format!("{addr}: {e}"),
        }
        tried.push(addr);
    }
    Err(last_error)
}

/// How long a node may take to answer `CLUSTER SHARDS` (after connecting)
/// before the next one is asked, or `INFO replication` before it counts as
/// silent: a healthy node answers in milliseconds, and a hung one must not
/// hold up the map while a failover is under way.
const MAP_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

async fn fetch_from(link: &mut Link, addr: &str, config: &Live) -> Result<Topology, String> {
    let timeout = config.connect_timeout + config.request_timeout.min(MAP_ANSWER_TIMEOUT);
    let access = config.node_access();
    let shards = link
        .query(&[b"CLUSTER", b"SHARDS"], timeout, &access)
        .await
        .map_err(|e| e.to_string())?;
    match Topology::from_shards(&shards, addr, access.tls.is_some()) {
        Ok(t) => Ok(t),
        Err(_) if shards.is_error() => {
            // Before Redis 7 there is no CLUSTER SHARDS.
            let slots = link
                .query(&[b"CLUSTER", b"SLOTS"], timeout, &access)
                .await
                .map_err(|e| e.to_string())?;
            Topology::from_slots(&slots, addr).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Asks every master of `topology` for `INFO replication`, all at once:
/// whether each answers (readiness), and its replicas' offsets, recorded
/// in `lags`. A master that does not answer in time leaves its replicas
/// judged as before. Returns the masters that did not answer.
async fn ask_masters(
    links: &mut Links,
    lags: &mut Lags,
    topology: &Topology,
    config: &Live,
) -> Vec<String> {
    // A hung master must not hold up the next refresh round.
    let timeout = config.connect_timeout + config.request_timeout.min(MAP_ANSWER_TIMEOUT);
    let mut asked = tokio::task::JoinSet::new();
    for node in topology.nodes() {
        let addr = node.addr.to_string();
        let mut link = links.remove(&addr).unwrap_or_else(|| Link::new(&addr));
        let access = config.node_access();
        asked.spawn(async move {
            let info = link
                .query(&[b"INFO", b"replication"], timeout, &access)
                .await;
            (addr, link, info)
        });
    }
    let mut silent = Vec::new();
    while let Some(joined) = asked.join_next().await {
        let Ok((addr, link, info)) = joined else {
            continue;
        };
        match info {
            Ok(Value::Bulk(text)) => match MasterOffsets::parse(&String::from_utf8_lossy(&text)) {
                Some(offsets) => lags.record(topology, &addr, &offsets),
                None => debug!(node = %addr, "not a master any more; lag not sampled"),
            },
            // Answered, if not as asked (e.g. an ACL without INFO).
            Ok(other) => debug!(node = %addr, reply = ?other, "INFO replication refused"),
            Err(e) => {
                debug!(node = %addr, error = %e, "INFO replication not answered");
                silent.push(addr.clone());
            }
        }
        links.insert(addr, link);
    }
    silent.sort();
    silent
}

/// Why keyway is not ready to serve every slot, if it is not: a slot
/// without master, a master the cluster marks failed, or one that did
/// not answer keyway (`silent`).
fn unready(topology: &Topology, silent: &[String]) -> Option<String> {
    let uncovered = super::SLOT_COUNT as usize - topology.covered_slots();
    if uncovered > 0 {
        return Some(format!("{uncovered} of 16384 slots have no master"));
    }
    if let Some(failed) = topology.failed_masters().first() {
        return Some(format!(
            "master {failed} is marked failed by the cluster (failover pending)"
        ));
    }
    silent
        .first()
        .map(|addr| format!("master {addr} does not answer keyway"))
}

/// Extends the command table with what the node knows and keyway's embedded
/// table does not (newer commands, modules). True once done.
async fn load_commands(view: &ClusterView, config: &Live, addr: &str) -> bool {
    let timeout = config.connect_timeout + config.request_timeout;
    let access = config.node_access();
    match control::query(addr, &[b"COMMAND"], timeout, &access).await {
        Ok(reply @ Value::Array(_)) => {
            let mut table = crate::command::CommandTable::clone(&view.commands.load());
            let added = table.extend_from_command_reply(&reply);
            if added > 0 {
                info!(added, from = %addr, "commands learned from the cluster");
                view.commands.store(Arc::new(table));
            }
            load_server_version(view, addr, timeout, &access).await;
            load_node_timeout(view, config, addr, timeout, &access).await;
            true
        }
        Ok(other) => {
            warn!(from = %addr, reply = ?other, "COMMAND failed; using the built-in command table");
            true
        }
        Err(e) => {
            debug!(from = %addr, error = %e, "COMMAND not loaded yet");
            false
        }
    }
}

/// Records the cluster's `cluster-node-timeout` (`CONFIG GET`), from which
/// the automatic `cluster.failover_hold_ms` follows; logs the hold in use.
async fn load_node_timeout(
    view: &ClusterView,
    config: &Live,
    addr: &str,
    timeout: Duration,
    access: &NodeAccess,
) {
    let asked = control::query(
        addr,
        &[b"CONFIG", b"GET", b"cluster-node-timeout"],
        timeout,
        access,
    )
    .await;
    let node_timeout = match &asked {
        Ok(Value::Array(pair)) => match pair.get(1) {
            Some(Value::Bulk(ms)) => std::str::from_utf8(ms).ok().and_then(|ms| ms.parse().ok()),
            _ => None,
        },
        _ => None,
    };
    match node_timeout {
        Some(ms) => view.set_node_timeout(Duration::from_millis(ms)),
        None => {
            warn!(from = %addr, reply = ?asked, "CONFIG GET cluster-node-timeout not answered; the failover hold assumes Redis's default 15000 ms")
        }
    }
    match config.failover_hold {
        Some(hold) => info!(
            hold_ms = hold.as_millis() as u64,
            "failover hold: cluster.failover_hold_ms"
        ),
        None => info!(
            hold_ms = view.failover_hold().as_millis() as u64,
            "failover hold: cluster-node-timeout x 2 + 1 s (cluster.failover_hold_ms = 0)"
        ),
    }
}

/// Records the nodes' `redis_version` for `HELLO` and `INFO`.
async fn load_server_version(
    view: &ClusterView,
    addr: &str,
    timeout: Duration,
    access: &NodeAccess,
) {
    let Ok(Value::Bulk(info)) = control::query(addr, &[b"INFO", b"server"], timeout, access).await
    else {
        return;
    };
    let version = String::from_utf8_lossy(&info)
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:").map(str::to_string));
    if let Some(version) = version {
        view.server_version.store(Arc::new(version));
    }
}
