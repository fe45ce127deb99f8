//! A real Redis Cluster of 6 `redis-server` processes (3 masters, 3
//! replicas) on free loopback ports, owned by one test; a test may add a
//! master. [`Cluster::start_tls`] starts one whose nodes speak TLS only
//! (see [`super::tls`]); every helper here then speaks TLS to them.
//!
//! Everything the cluster starts is killed and reaped on `Drop` (also when
//! the test panics), and each child also carries `PR_SET_PDEATHSIG` in case
//! the test process itself is killed.

pub use super::slotmap::SlotRange;
use super::slotmap::{parse_slots, text};
use super::tls::{self, NodeTls};
use super::util::{die_with_parent, free_ports, poll_until, run_bounded, tail, TempDir};
use super::SLOTS;
use redis::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NODES: usize = 6;
/// How long start-up, convergence and failover may take before we panic.
pub(crate) const CONVERGE_TIMEOUT: Duration = Duration::from_secs(45);
/// `cluster-node-timeout`: short, so failover tests are quick.
const NODE_TIMEOUT_MS: u32 = 2000;

struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
}

/// A running 3+3 Redis Cluster owned by one test.
pub struct Cluster {
    nodes: Mutex<Vec<Node>>,
    dir: TempDir,
    /// `requirepass` and `masterauth` of every node, if the cluster has one.
    password: Option<String>,
    /// TLS only (`port 0`, `tls-port`, `tls-cluster`, `tls-replication`,
    /// `tls-auth-clients`): the nodes' certificates, and the harness's.
    tls: Option<Arc<NodeTls>>,
}

/// The password of each password-protected node, by port, so that every
/// helper connecting to a node (`connect`, `query`, ...) authenticates
/// without being told. Ports are unique while a cluster holds them.
static PASSWORDS: Mutex<BTreeMap<u16, String>> = Mutex::new(BTreeMap::new());

fn password_of(port: u16) -> Option<String> {
    PASSWORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&port)
        .cloned()
}

/// The server binary the cluster's nodes run: `$KEYWAY_TEST_SERVER` (e.g.
/// a `valkey-server`, so the cluster tests run against Valkey too), else
/// `redis-server`. The standalone reference server and `redis-cli` stay
/// Redis's.
pub fn node_server() -> String {
    std::env::var("KEYWAY_TEST_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// Panics with an explanation when redis-server/redis-cli (or the node
/// server chosen by [`node_server`]) are missing: the suite must fail
/// loudly, never skip.
pub fn require_redis() {
    for bin in [
        "redis-server".to_string(),
        "redis-cli".to_string(),
        node_server(),
    ] {
        let ok = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`{bin}` is not installed or not on PATH: keyway's integration tests need a real \
             Redis Cluster. Install it (Debian: apt-get install -y redis-server redis-tools) \
             or run tests/run.sh, which does."
        );
    }
}

/// `127.0.0.1:port`.
fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a host:port address: {addr:?}"))
}

/// A synchronous connection to `addr` whose connect, reads and writes all
/// time out after `timeout`.
/// A node of a password-protected cluster is logged in to with its password.
pub fn connect(addr: &str, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let password = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .and_then(password_of);
    open(addr, password.as_deref(), timeout)
}

/// A connection to `addr` that logs in with `password` (a node whose
/// password a test changed).
pub fn connect_with_password(addr: &str, password: &str) -> redis::RedisResult<redis::Connection> {
    open(addr, Some(password), super::OP_TIMEOUT)
}

fn open(
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let tls = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .and_then(tls::node_tls);
    if let Some(tls) = tls {
        return tls::redis_connect(addr, tls.ca(), Some(&tls.client), password, timeout);
    }
    let url = match password {
        Some(password) => format!("redis://:{password}@{addr}/"),
        None => format!("redis://{addr}/"),
    };
    let client = redis::Client::open(url)?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// Runs `cmd` on `addr` over a fresh short-lived connection.
pub(crate) fn query<T: redis::FromRedisValue>(
    addr: &str,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let mut con = connect(addr, Duration::from_secs(2))?;
    cmd.query(&mut con)
}

/// The value of `field:` in an `INFO` reply.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

fn spawn_node(
    dir: &std::path::Path,
    port: u16,
    bus_port: u16,
    password: Option<&str>,
    tls: Option<&Arc<NodeTls>>,
) -> std::io::Result<Child> {
    let log = dir.join(format!("node-{port}.log"));
    let out = File::create(dir.join(format!("node-{port}.stdout")))?;
    let mut cmd = Command::new(node_server());
    if let Some(password) = password {
        PASSWORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port, password.to_string());
        cmd.args(["--requirepass", password])
            .args(["--masterauth", password]);
    }
    match tls {
        None => cmd.args(["--port", &port.to_string()]),
        Some(tls) => {
            tls::register_node(port, tls);
            cmd.args(["--port", "0"])
                .args(["--tls-port", &port.to_string()])
                .args(tls.server_args())
        }
    };
    cmd.args(["--cluster-port", &bus_port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--protected-mode", "no"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        // Replicas sync at once instead of waiting 5 s for more replicas.
        .args(["--repl-diskless-sync-delay", "0"])
        // A replica appears in CLUSTER SLOTS only once its replication offset
        // is non-zero; the master's periodic PING (default every 10 s) is
        // what moves it on an idle cluster.
        .args(["--repl-ping-replica-period", "1"])
        .args(["--daemonize", "no"])
        .args(["--dir", &dir.display().to_string()])
        .args(["--logfile", &log.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out));
    die_with_parent(&mut cmd).spawn()
}

impl Cluster {
    /// Starts 6 nodes, creates the cluster with `redis-cli --cluster create
    /// --cluster-replicas 1`, and waits until every node reports
    /// `cluster_state:ok`, all agree on the slot map and replicas are synced.
    /// Retries the whole start (fresh ports) on a failure such as a port
    /// race; panics with the nodes' log tails after 3 attempts.
    pub fn start() -> Cluster {
        Cluster::start_with(None, false)
    }

    /// Like [`Cluster::start`], every node with `requirepass` and
    /// `masterauth` set to `password` (the operations guide's set-up).
    pub fn start_with_password(password: &str) -> Cluster {
        Cluster::start_with(Some(password), false)
    }

    /// Like [`Cluster::start`], every node speaking TLS only: `port 0`,
    /// `tls-port` (the port in its address), `tls-cluster yes`,
    /// `tls-replication yes` and `tls-auth-clients yes`, with certificates
    /// from a fresh CA ([`Cluster::tls`]). Every helper here speaks TLS to
    /// the nodes, with the harness's client certificate.
    pub fn start_tls() -> Cluster {
        Cluster::start_with(None, true)
    }

    /// [`Cluster::start_tls`] and [`Cluster::start_with_password`] at once.
    pub fn start_tls_with_password(password: &str) -> Cluster {
        Cluster::start_with(Some(password), true)
    }

    /// The TLS material of a [`Cluster::start_tls`] cluster (panics for a
    /// plain one).
    pub fn tls(&self) -> &NodeTls {
        self.tls.as_deref().expect("not a TLS cluster")
    }

    fn start_with(password: Option<&str>, tls: bool) -> Cluster {
        require_redis();
        let tls = tls.then(|| Arc::new(NodeTls::new()));
        let mut errors = Vec::new();
        for attempt in 1..=3 {
            match Cluster::try_start(password, tls.clone()) {
                Ok(cluster) => return cluster,
                Err(e) => errors.push(format!("attempt {attempt}: {e}")),
            }
        }
        panic!("could not start a Redis Cluster:\n{}", errors.join("\n\n"));
    }

    fn try_start(password: Option<&str>, tls: Option<Arc<NodeTls>>) -> Result<Cluster, String> {
        let t0 = std::time::Instant::now();
        let dir = TempDir::new("cluster");
        let ports = free_ports(2 * NODES);
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let (port, bus_port) = (ports[i], ports[NODES + i]);
            let child = spawn_node(dir.path(), port, bus_port, password, tls.as_ref())
                .map_err(|e| format!("cannot spawn redis-server: {e}"))?;
            nodes.push(Node {
                port,
                bus_port,
                child: Some(child),
            });
        }
        let cluster = Cluster {
            nodes: Mutex::new(nodes),
            dir,
            password: password.map(str::to_string),
            tls,
        };
        for a in cluster.all_addrs() {
            cluster.wait_node_up(&a)?;
        }
        let mut create = cluster.redis_cli();
        create
            .arg("--cluster")
            .arg("create")
            .args(cluster.all_addrs())
            .args(["--cluster-replicas", "1", "--cluster-yes"]);
        let (status, output) = run_bounded(&mut create, Duration::from_secs(60));
        if !status.is_some_and(|s| s.success()) {
            return Err(format!(
                "redis-cli --cluster create failed:\n{output}\n{}",
                cluster.logs_tail(15)
            ));
        }
        if std::env::var_os("KEYWAY_HARNESS_TIMING").is_some() {
            eprintln!("cluster created after {:?}", t0.elapsed());
        }
        cluster.wait_converged(true)?;
        Ok(cluster)
    }

    /// Waits until the node at `addr` answers PING (or its process died).
    fn wait_node_up(&self, addr: &str) -> Result<(), String> {
        let port = port_of(addr);
        let up = poll_until(Duration::from_secs(10), || {
            if let Some(status) = self.try_wait(port) {
                return Some(Err(format!("redis-server on {addr} exited: {status}")));
            }
            query::<String>(addr, &redis::cmd("PING"))
                .ok()
                .map(|_| Ok(()))
        });
        match up {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("{e}\n{}", self.node_log_tail(port, 20))),
            None => Err(format!(
                "redis-server on {addr} did not answer PING within 10s\n{}",
                self.node_log_tail(port, 20)
            )),
        }
    }

    fn try_wait(&self, port: u16) -> Option<std::process::ExitStatus> {
        let mut nodes = self.nodes.lock().unwrap();
        let node = nodes.iter_mut().find(|n| n.port == port)?;
        node.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Every node's address, `127.0.0.1:port`, running or not, in start order.
    pub fn all_addrs(&self) -> Vec<String> {
        self.nodes
            .lock()
            .unwrap()
            .iter()
            .map(|n| addr(n.port))
            .collect()
    }

    /// Addresses of the nodes whose process this cluster is running now.
    pub fn alive_addrs(&self) -> Vec<String> {
        self.nodes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| addr(n.port))
            .collect()
    }

    /// Seed addresses for a client or proxy: every node, `127.0.0.1:port`.
    pub fn seeds(&self) -> Vec<String> {
        self.all_addrs()
    }

    /// PIDs of the redis-server processes currently running.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// What `read` says of the node at `addr`.
    fn of_node<T>(&self, addr: &str, read: impl FnOnce(&Node) -> T) -> T {
        let port = port_of(addr);
        let nodes = self.nodes.lock().unwrap();
        let node = nodes.iter().find(|n| n.port == port);
        read(node.unwrap_or_else(|| panic!("{addr} is not a node of this cluster")))
    }

    /// PID of the running redis-server at `addr`.
    pub fn pid_of(&self, addr: &str) -> u32 {
        self.running_pid(addr)
            .unwrap_or_else(|| panic!("{addr} is not running"))
    }

    /// PID of the redis-server at `addr`, `None` while it is not running.
    pub fn running_pid(&self, addr: &str) -> Option<u32> {
        self.of_node(addr, |n| n.child.as_ref().map(Child::id))
    }

    /// Connections to `node` blocked in a command (`flags=b` in `CLIENT LIST`).
    pub fn blocked_on(&self, node: &str) -> usize {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut self.conn(node))
            .expect("CLIENT LIST");
        list.lines().filter(|l| l.contains(" flags=b ")).count()
    }

    /// The replicas of the master at `master` (asked live with `ROLE`).
    pub fn replicas_of(&self, master: &str) -> Vec<String> {
        let port = port_of(master);
        self.replicas()
            .into_iter()
            .filter(|r| {
                let role: Vec<Value> = query(r, &redis::cmd("ROLE")).unwrap_or_default();
                matches!(role.get(2), Some(Value::Int(p)) if *p == i64::from(port))
            })
            .collect()
    }

    /// The cluster bus port of the node at `addr` (set explicitly with
    /// `--cluster-port`, never assumed to be port + 10000).
    pub fn bus_port(&self, addr: &str) -> u16 {
        self.of_node(addr, |n| n.bus_port)
    }

    fn roles(&self) -> Vec<(String, String)> {
        self.alive_addrs()
            .into_iter()
            .filter_map(|a| {
                let role: Vec<Value> = query(&a, &redis::cmd("ROLE")).ok()?;
                Some((a, text(role.first()?)))
            })
            .collect()
    }

    /// Running nodes that are masters right now (asked live with `ROLE`).
    pub fn masters(&self) -> Vec<String> {
        self.nodes_in_role("master")
    }

    /// Running nodes that are replicas right now (asked live with `ROLE`).
    pub fn replicas(&self) -> Vec<String> {
        self.nodes_in_role("slave")
    }

    /// Running nodes whose `ROLE` is `role`, sorted.
    fn nodes_in_role(&self, role: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .roles()
            .into_iter()
            .filter(|(_, r)| r == role)
            .map(|(a, _)| a)
            .collect();
        v.sort();
        v
    }

    /// The slot map as seen by the node at `addr` (`CLUSTER SLOTS`).
    pub fn slot_map_of(&self, addr: &str) -> redis::RedisResult<Vec<SlotRange>> {
        let v: Value = query(addr, redis::cmd("CLUSTER").arg("SLOTS"))?;
        parse_slots(&v).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "unexpected CLUSTER SLOTS reply",
            ))
        })
    }

    /// The slot map as seen by the first running node that answers.
    pub fn slot_map(&self) -> Vec<SlotRange> {
        self.alive_addrs()
            .iter()
            .find_map(|a| self.slot_map_of(a).ok())
            .expect("no running node answered CLUSTER SLOTS")
    }

    /// The master serving `slot` according to the cluster's slot map.
    pub fn node_of_slot(&self, slot: u16) -> String {
        self.slot_map()
            .into_iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .unwrap_or_else(|| panic!("slot {slot} is not covered"))
            .master
    }

    /// The slots owned by the master at `addr`.
    pub fn slots_of(&self, addr: &str) -> Vec<u16> {
        self.slot_map()
            .into_iter()
            .filter(|r| r.master == addr)
            .flat_map(|r| r.start..=r.end)
            .collect()
    }

    /// The node ID of the node at `addr` (`CLUSTER MYID`).
    pub fn node_id(&self, addr: &str) -> String {
        query(addr, redis::cmd("CLUSTER").arg("MYID"))
            .unwrap_or_else(|e| panic!("CLUSTER MYID on {addr}: {e}"))
    }

    /// A `redis::Client` pointed directly at one node (plain, not cluster-aware).
    /// To a TLS cluster's node it speaks TLS, with the harness's client
    /// certificate.
    pub fn client(&self, addr: &str) -> redis::Client {
        match &self.tls {
            Some(tls) => tls.client_of(addr, None),
            None => redis::Client::open(format!("redis://{addr}/")).expect("valid redis URL"),
        }
    }

    /// A synchronous connection to one node with [`super::OP_TIMEOUT`] on
    /// connect, reads and writes.
    pub fn conn(&self, addr: &str) -> redis::Connection {
        connect(addr, super::OP_TIMEOUT).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// One problem that keeps the running nodes from being converged, or
    /// `None` when they are: all `cluster_state:ok`, identical slot maps
    /// covering all 16384 slots, every replica's link up, and (with `full`)
    /// 3 masters with one replica each and all 6 nodes running.
    fn convergence_problem(&self, full: bool) -> Option<String> {
        let alive = self.alive_addrs();
        if full && alive.len() != NODES {
            return Some(format!("only {} of {NODES} nodes running", alive.len()));
        }
        let mut first: Option<(String, Vec<SlotRange>)> = None;
        for a in &alive {
            let info: String = match query(a, redis::cmd("CLUSTER").arg("INFO")) {
                Ok(i) => i,
                Err(e) => return Some(format!("{a}: CLUSTER INFO: {e}")),
            };
            if info_field(&info, "cluster_state").as_deref() != Some("ok") {
                return Some(format!("{a}: cluster_state is not ok"));
            }
            let map = match self.slot_map_of(a) {
                Ok(m) => m,
                Err(e) => return Some(format!("{a}: CLUSTER SLOTS: {e}")),
            };
            match &first {
                None => first = Some((a.clone(), map)),
                Some((b, m)) if *m != map => {
                    return Some(format!("{a} and {b} disagree on the slot map"))
                }
                _ => {}
            }
            let repl: String = match query(a, redis::cmd("INFO").arg("replication")) {
                Ok(i) => i,
                Err(e) => return Some(format!("{a}: INFO replication: {e}")),
            };
            if info_field(&repl, "role").as_deref() == Some("slave")
                && info_field(&repl, "master_link_status").as_deref() != Some("up")
            {
                return Some(format!("{a}: replica link to its master is not up"));
            }
        }
        let (_, map) = first?;
        let covered: usize = map.iter().map(|r| (r.end - r.start) as usize + 1).sum();
        if covered != SLOTS as usize {
            return Some(format!("slot map covers {covered} slots"));
        }
        if full {
            let mut masters: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &map {
                if r.replicas.len() != 1 {
                    return Some(format!("{} has {} replicas", r.master, r.replicas.len()));
                }
                *masters.entry(&r.master).or_default() += 1;
            }
            if masters.len() != 3 {
                return Some(format!("{} masters own slots", masters.len()));
            }
        }
        None
    }

    fn wait_converged(&self, full: bool) -> Result<(), String> {
        let mut last = String::new();
        let done = poll_until(CONVERGE_TIMEOUT, || match self.convergence_problem(full) {
            None => Some(()),
            Some(p) => {
                if std::env::var_os("KEYWAY_HARNESS_TIMING").is_some() && p != last {
                    eprintln!("cluster: waiting: {p}");
                }
                last = p;
                None
            }
        });
        done.ok_or_else(|| {
            format!(
                "cluster did not converge within {CONVERGE_TIMEOUT:?}: {last}\n{}",
                self.stuck_report(&last)
            )
        })
    }

    /// Waits until every running node reports `cluster_state:ok`, all agree
    /// on a slot map covering all slots and every running replica is synced.
    /// Panics with the nodes' log tails on timeout.
    pub fn wait_ok(&self) {
        if let Err(e) = self.wait_converged(false) {
            panic!("{e}");
        }
    }

    /// Kills the node at `addr` with SIGKILL and reaps it.
    pub fn kill_node(&self, addr: &str) {
        let port = port_of(addr);
        let mut nodes = self.nodes.lock().unwrap();
        let node = nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("{addr} is not a node of this cluster"));
        let mut child = node
            .child
            .take()
            .unwrap_or_else(|| panic!("{addr} is not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Restarts a killed node on the same ports with the same cluster config
    /// file, so it rejoins the cluster; returns once it answers PING (call
    /// [`Cluster::wait_ok`] to wait for it to rejoin). Call from the test's
    /// own thread (see `die_with_parent`).
    pub fn restart_node(&self, addr: &str) {
        let port = port_of(addr);
        {
            let mut nodes = self.nodes.lock().unwrap();
            let node = nodes
                .iter_mut()
                .find(|n| n.port == port)
                .unwrap_or_else(|| panic!("{addr} is not a node of this cluster"));
            assert!(node.child.is_none(), "{addr} is already running");
            let child = spawn_node(
                self.dir.path(),
                node.port,
                node.bus_port,
                self.password.as_deref(),
                self.tls.as_ref(),
            )
            .unwrap_or_else(|e| panic!("cannot respawn redis-server on {addr}: {e}"));
            node.child = Some(child);
        }
        if let Err(e) = self.wait_node_up(addr) {
            panic!("restarting {addr}: {e}");
        }
    }

    /// Like [`Cluster::restart_node`], without the data a node saved
    /// (`dump.rdb`, one file for every node of the cluster): a replica
    /// then takes a full sync from its master instead of resuming its
    /// replication stream.
    pub fn restart_node_without_data(&self, addr: &str) {
        let rdb = self.dir.path().join("dump.rdb");
        match std::fs::remove_file(&rdb) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("cannot remove {}: {e}", rdb.display())
            }
            _ => self.restart_node(addr),
        }
    }

    /// Waits until `old_master`'s slots are served by another (promoted)
    /// node and every running node reports `cluster_state:ok` with the same
    /// slot map. Returns the new masters of those slots.
    pub fn wait_for_failover(&self, old_master: &str) -> Vec<String> {
        let mut last = String::new();
        let done = poll_until(CONVERGE_TIMEOUT, || {
            if let Some(p) = self.convergence_problem(false) {
                last = p;
                return None;
            }
            let map = self.slot_map();
            if map.iter().any(|r| r.master == old_master) {
                last = format!("{old_master} still owns slots");
                return None;
            }
            Some(map.into_iter().map(|r| r.master).collect::<Vec<_>>())
        });
        match done {
            Some(mut masters) => {
                masters.sort();
                masters.dedup();
                masters
            }
            None => panic!(
                "no failover of {old_master} within {CONVERGE_TIMEOUT:?}: {last}\n{}",
                self.stuck_report(&last)
            ),
        }
    }

    /// Moves `slots` slots from master `from` to master `to` with
    /// `redis-cli --cluster reshard ... --cluster-yes`, then waits until the
    /// cluster agrees on the new map.
    pub fn reshard(&self, slots: u16, from: &str, to: &str) {
        let mut cmd = self.redis_cli();
        cmd.args(["--cluster", "reshard", from])
            .args(["--cluster-from", &self.node_id(from)])
            .args(["--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string()])
            .arg("--cluster-yes");
        let (status, output) = run_bounded(&mut cmd, Duration::from_secs(120));
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster reshard failed:\n{output}"
        );
        self.wait_ok();
    }

    /// Spreads the slots over every master by weight, also those without
    /// slots (`redis-cli --cluster rebalance --cluster-use-empty-masters`,
    /// asked of the node at `addr`), then waits until the cluster agrees
    /// on the new map. `weights` are the masters (by address) whose
    /// weight is not 1.
    pub fn rebalance(&self, addr: &str, weights: &[(&str, f64)]) {
        let mut cmd = self.redis_cli();
        cmd.args(["--cluster", "rebalance", addr])
            .arg("--cluster-use-empty-masters")
            .arg("--cluster-yes");
        if !weights.is_empty() {
            cmd.arg("--cluster-weight").args(
                weights
                    .iter()
                    .map(|(node, weight)| format!("{}={weight}", self.node_id(node))),
            );
        }
        let (status, output) = run_bounded(&mut cmd, Duration::from_secs(120));
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster rebalance failed:\n{output}"
        );
        self.wait_ok();
    }

    /// Starts one more `redis-server` (same settings, free loopback ports,
    /// stopped with the cluster), joins it as a master without slots
    /// (`redis-cli --cluster add-node`), and waits until every node knows
    /// it and it has the slot map. Returns its address; move slots to it with
    /// [`Cluster::migrate_slot`].
    pub fn add_master(&self) -> String {
        let ports = free_ports(2);
        let child = spawn_node(
            self.dir.path(),
            ports[0],
            ports[1],
            self.password.as_deref(),
            self.tls.as_ref(),
        )
        .unwrap_or_else(|e| panic!("cannot spawn redis-server: {e}"));
        self.nodes.lock().unwrap().push(Node {
            port: ports[0],
            bus_port: ports[1],
            child: Some(child),
        });
        let new = addr(ports[0]);
        if let Err(e) = self.wait_node_up(&new) {
            panic!("starting the new master {new}: {e}");
        }
        let existing = self.node_of_slot(0);
        let mut add = self.redis_cli();
        add.args(["--cluster", "add-node", &new, &existing]);
        let (status, output) = run_bounded(&mut add, Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster add-node {new} {existing} failed:\n{output}"
        );
        let id = self.node_id(&new);
        let known = poll_until(CONVERGE_TIMEOUT, || {
            let all = self.alive_addrs().iter().all(|a| {
                let nodes: redis::RedisResult<String> =
                    query(a, redis::cmd("CLUSTER").arg("NODES"));
                nodes.is_ok_and(|nodes| {
                    nodes.lines().any(|l| {
                        l.starts_with(&id)
                            && l.contains("master")
                            && l.contains(" connected")
                            && !l.contains("handshake")
                    })
                })
            });
            all.then_some(())
        });
        assert!(
            known.is_some(),
            "not every node knows the new master {new}\n{}",
            self.logs_tail(15)
        );
        // It serves nothing (CLUSTERDOWN) until it has the slot map too.
        self.wait_ok();
        new
    }

    /// `redis-cli`, with the cluster's password when it has one, and
    /// `--tls` with the CA and the harness's client certificate for a TLS
    /// cluster.
    pub fn redis_cli(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        if let Some(password) = &self.password {
            cmd.args(["-a", password, "--no-auth-warning"]);
        }
        if let Some(tls) = &self.tls {
            cmd.args(tls.cli_args());
        }
        cmd
    }

    /// What a failed wait reports: for the node `problem` names first (a
    /// convergence problem starts with its address), its `CLUSTER INFO`,
    /// `CLUSTER NODES` and a long log tail; then the other nodes' tails.
    /// The stuck node comes first because CI output is cut in the middle.
    fn stuck_report(&self, problem: &str) -> String {
        let addr = problem
            .split([' ', ','])
            .next()
            .unwrap_or("")
            .trim_end_matches(':');
        let Some(port) = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) else {
            return self.logs_tail(15);
        };
        let state = |cmd: &str, sub: &str| {
            query::<String>(addr, redis::cmd(cmd).arg(sub)).unwrap_or_else(|e| e.to_string())
        };
        let others: Vec<u16> = self.nodes.lock().unwrap().iter().map(|n| n.port).collect();
        let others: Vec<String> = others
            .into_iter()
            .filter(|p| *p != port)
            .map(|p| self.node_log_tail(p, 15))
            .collect();
        format!(
            "--- {addr}: CLUSTER INFO ---\n{}\n--- {addr}: CLUSTER NODES ---\n{}\n{}\n{}",
            state("CLUSTER", "INFO"),
            state("CLUSTER", "NODES"),
            self.node_log_tail(port, 60),
            others.join("\n")
        )
    }

    /// The last `lines` lines of every node's log, labelled.
    pub fn logs_tail(&self, lines: usize) -> String {
        let ports: Vec<u16> = self.nodes.lock().unwrap().iter().map(|n| n.port).collect();
        ports
            .into_iter()
            .map(|p| self.node_log_tail(p, lines))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn node_log_tail(&self, port: u16, lines: usize) -> String {
        let log: PathBuf = self.dir.path().join(format!("node-{port}.log"));
        let out: PathBuf = self.dir.path().join(format!("node-{port}.stdout"));
        format!(
            "--- redis-server {port} log (tail) ---\n{}\n{}",
            tail(&log, lines),
            tail(&out, 5)
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let nodes = self.nodes.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut passwords = PASSWORDS.lock().unwrap_or_else(|e| e.into_inner());
        for node in nodes.iter() {
            passwords.remove(&node.port);
            if self.tls.is_some() {
                tls::forget_node(node.port);
            }
        }
        drop(passwords);
        for node in nodes.iter_mut() {
            if let Some(child) = node.child.as_mut() {
                let _ = child.kill();
            }
        }
        for node in nodes.iter_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.wait();
            }
        }
    }
}
