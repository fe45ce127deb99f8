//! Reads from replicas while things go wrong: a replica that stops
//! answering (`SIGSTOP`) or dies (`SIGKILL`), slots moving between
//! masters, a master failing over, a replica lagging its master; and what
//! must hold whatever the policy: writes never reach a replica, and (with
//! `read.read_your_writes_ms`) a client reads its own writes.
//!
//! Clients keep reading while the cluster changes and count every error
//! and every wrong value; where a read is served is counted on the nodes
//! (`INFO commandstats`, see `replica_reads`) and in keyway's `INFO stats`
//! (`reads_served_by_master`, `reads_served_by_replica`,
//! `replicas_lagging`).
//!
//! keyway spreads clients, not requests, over a shard's nodes (one client
//! reads a shard from one node): readers open a fresh connection every few
//! reads, as short-lived application clients do, so that new clients meet
//! each change.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::background::Rounds;
use support::cluster::{connect, info_field, SlotRange};
use support::replicas::{
    calls, get, info, key_per_shard, read_config, replica, reset_stats, shard_of, spread_keys,
    wait_replicated, with_values, write_all, NOTICE,
};
use support::{key_for_slot, poll_until, Background, Cluster, Proxy, OP_TIMEOUT};

/// GETs a reader sends on one connection before it opens a new one.
const PER_CONNECTION: u64 = 10;

/// What a client load saw: its requests, and each error or wrong value.
#[derive(Default)]
struct Seen {
    requests: u64,
    errors: Vec<Event>,
    wrong: Vec<Event>,
}

/// A request that failed (`why`: the error) or read a wrong value (`why`:
/// what it read), sent and answered at seconds since the test started.
struct Event {
    sent: f64,
    done: f64,
    what: String,
    why: String,
}

impl Event {
    /// `what`, sent at `sent`, answered now (`t0` + seconds) with `why`.
    fn now(t0: Instant, sent: f64, what: String, why: impl std::fmt::Display) -> Event {
        let (done, why) = (secs(t0), why.to_string());
        Event {
            sent,
            done,
            what,
            why,
        }
    }
}

impl Seen {
    /// Everything the loads saw, added up.
    fn total(all: impl IntoIterator<Item = Seen>) -> Seen {
        all.into_iter().fold(Seen::default(), |mut sum, s| {
            sum.requests += s.requests;
            sum.errors.extend(s.errors);
            sum.wrong.extend(s.wrong);
            sum
        })
    }

    /// True when no request failed or read a wrong value.
    fn clean(&self) -> bool {
        self.errors.is_empty() && self.wrong.is_empty()
    }

    /// The errors and wrong values, alike ones together: how many, when,
    /// and a few of the requests.
    fn show(&self) -> String {
        let mut out = String::new();
        for (label, events) in [("errors", &self.errors), ("wrong values", &self.wrong)] {
            out.push_str(&format!(
                "{} {label} of {} requests\n",
                events.len(),
                self.requests
            ));
            let mut kinds: Vec<&str> = events.iter().map(|e| e.why.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            for why in kinds {
                let alike: Vec<&Event> = events.iter().filter(|e| e.why == why).collect();
                let first = alike.iter().map(|e| e.sent).fold(f64::MAX, f64::min);
                let last = alike.iter().map(|e| e.done).fold(0.0, f64::max);
                let some: Vec<String> = alike
                    .iter()
                    .take(4)
                    .map(|e| format!("{} ({:.2}s..{:.2}s)", e.what, e.sent, e.done))
                    .collect();
                out.push_str(&format!(
                    "  {} x {why:?}, sent from {first:.2}s, answered until {last:.2}s; e.g. {}\n",
                    alike.len(),
                    some.join(", ")
                ));
            }
        }
        out
    }
}

/// Seconds since `t0`.
fn secs(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

/// Seconds since `t0`, for the reports.
fn at(t0: Instant) -> String {
    format!("{:.2}s", secs(t0))
}

/// A client thread that GETs `pairs` round robin through keyway (from
/// `first` on), each GET checked against its value, on a fresh connection
/// every [`PER_CONNECTION`] GETs and after an error, one round per GET,
/// until stopped (at most 5 minutes).
fn reader(
    proxy: &Proxy,
    pairs: Arc<Vec<(String, String)>>,
    first: usize,
    t0: Instant,
) -> Background<Seen> {
    let addr = proxy.addr();
    Background::spawn(move |rounds: Rounds| {
        let mut seen = Seen::default();
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut con: Option<redis::Connection> = None;
        let mut i = first;
        while rounds.go_on() && Instant::now() < deadline {
            if seen.requests % PER_CONNECTION == 0 {
                con = None;
            }
            let c = match con.as_mut() {
                Some(c) => c,
                None => match connect(&addr, OP_TIMEOUT) {
                    Ok(c) => con.insert(c),
                    Err(e) => {
                        seen.errors
                            .push(Event::now(t0, secs(t0), "connect".into(), e));
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            let (k, v) = &pairs[i % pairs.len()];
            let sent = secs(t0);
            match redis::cmd("GET").arg(k).query::<Option<String>>(c) {
                Ok(got) if got.as_deref() == Some(v.as_str()) => {}
                Ok(got) => {
                    seen.wrong
                        .push(Event::now(t0, sent, format!("GET {k}"), format!("{got:?}")))
                }
                Err(e) => {
                    seen.errors
                        .push(Event::now(t0, sent, format!("GET {k}"), e));
                    con = None;
                }
            }
            seen.requests += 1;
            i += 1;
            rounds.done_one();
        }
        seen
    })
}

/// `n` [`reader`]s of `pairs`, each starting at its own place.
fn readers(
    proxy: &Proxy,
    pairs: &[(String, String)],
    n: usize,
    t0: Instant,
) -> Vec<Background<Seen>> {
    let pairs = Arc::new(pairs.to_vec());
    (0..n)
        .map(|r| reader(proxy, pairs.clone(), r * pairs.len() / n, t0))
        .collect()
}

/// Waits until each load has done `n` more rounds.
fn wait_progress(loads: &[Background<Seen>], n: u64, proxy: &Proxy) {
    for load in loads {
        load.wait_progress(n, proxy);
    }
}

/// Rounds done by all the loads.
fn done(loads: &[Background<Seen>]) -> u64 {
    loads.iter().map(Background::done).sum()
}

/// Stops the loads and adds up what they saw.
fn stop(loads: Vec<Background<Seen>>) -> Seen {
    Seen::total(loads.into_iter().map(Background::stop))
}

/// keyway's config: `[read]` with `read`, `[backend]` with `backend`.
fn config(read: &str, backend: &str) -> String {
    format!("{}\n[backend]\n{backend}\n", read_config(read))
}

/// The keys of `spread_keys(tag, n)` that `shard` serves.
fn keys_of_shard(tag: &str, n: u32, map: &[SlotRange], shard: &SlotRange) -> Vec<(String, u16)> {
    let keys = spread_keys(tag, n);
    let keys: Vec<_> = keys
        .into_iter()
        .filter(|(_, slot)| shard_of(map, *slot) == shard)
        .collect();
    assert!(keys.len() >= 10, "{tag}: {} keys in {shard:?}", keys.len());
    keys
}

/// GET counts of `master` and `replica` grown over `window` (both asked
/// directly): who serves the reads of their shard now.
fn gets_over(cluster: &Cluster, master: &str, replica: &str, window: Duration) -> (u64, u64) {
    let (m, r) = (
        calls(cluster, master, "get"),
        calls(cluster, replica, "get"),
    );
    std::thread::sleep(window);
    let (m2, r2) = (
        calls(cluster, master, "get"),
        calls(cluster, replica, "get"),
    );
    (m2 - m, r2 - r)
}

/// keyway's own `INFO stats` field `field` (a count).
fn keyway_stat(proxy: &Proxy, field: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut proxy.conn())
        .expect("INFO stats through keyway");
    info_field(&stats, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count {field} in keyway's INFO stats:\n{stats}"))
}

/// A replica that stops answering (`SIGSTOP`) while clients read from it:
/// a read it does not answer in `backend.request_timeout_ms` is sent once
/// more, elsewhere, so no client sees an error; new clients' reads go to
/// the master once keyway knows; after `SIGCONT` the replica serves them
/// again.
#[test]
fn a_stopped_replica_loses_its_reads_without_client_errors_and_gets_them_back() {
    const TIMEOUT: Duration = Duration::from_millis(1000);
    let cluster = Cluster::start();
    let read = "policy = \"replica\"";
    let backend = format!("request_timeout_ms = {}", TIMEOUT.as_millis());
    let proxy = Proxy::start_with_config(&cluster, &config(read, &backend));
    let map = cluster.slot_map();
    let shard = map[0].clone();
    let (master, replica) = (shard.master.clone(), replica(&shard).to_string());
    let keys = keys_of_shard("stopped", 300, &map, &shard);
    let pairs = with_values(&keys, "s");
    write_all(&proxy, &pairs);
    wait_replicated(&cluster);

    let t0 = Instant::now();
    let loads = readers(&proxy, &pairs, 4, t0);
    wait_progress(&loads, 100, &proxy);
    let (on_master, on_replica) =
        gets_over(&cluster, &master, &replica, Duration::from_millis(300));
    assert!(
        on_replica > 0 && on_master == 0,
        "before: master {on_master}, replica {on_replica}"
    );

    // Stopped, the replica still accepts connections (the kernel does)
    // but answers nothing: keyway's requests to it time out.
    let stopped = cluster.stop_node(&replica);
    let stopped_at = at(t0);
    // Reads move off: a new client's GETs are all answered correctly in
    // less than the request timeout (none waited on the replica), and the
    // master serves them. The probe is a client too: its errors count.
    let mut probe = Seen::default();
    let mut last = String::new();
    let master_gets = calls(&cluster, &master, "get");
    let moved_off = poll_until(NOTICE, || {
        let mut con = connect(&proxy.addr(), OP_TIMEOUT).expect("connect to keyway");
        let mut slowest = Duration::ZERO;
        for (k, v) in &pairs {
            let (start, sent) = (Instant::now(), secs(t0));
            match redis::cmd("GET").arg(k).query::<Option<String>>(&mut con) {
                Ok(got) if got.as_deref() == Some(v.as_str()) => {}
                Ok(got) => probe.wrong.push(Event::now(
                    t0,
                    sent,
                    format!("probe GET {k}"),
                    format!("{got:?}"),
                )),
                Err(e) => {
                    probe
                        .errors
                        .push(Event::now(t0, sent, format!("probe GET {k}"), e));
                    return None;
                }
            }
            slowest = slowest.max(start.elapsed());
        }
        let grew = calls(&cluster, &master, "get") > master_gets;
        last = format!("slowest GET {slowest:?}, master's GETs grew: {grew}");
        (slowest < TIMEOUT && grew).then(|| at(t0))
    });
    let moved_off = moved_off.unwrap_or_else(|| {
        panic!("reads did not move off the stopped replica {replica} within {NOTICE:?}: {last}")
    });
    wait_progress(&loads, 100, &proxy);

    stopped.resume();
    let resumed_at = at(t0);
    // Back on the replica: a window where it served GETs and the master none.
    let mut last = (0, 0);
    let back = poll_until(NOTICE, || {
        last = gets_over(&cluster, &master, &replica, Duration::from_millis(500));
        (last.0 == 0 && last.1 > 0).then(|| at(t0))
    });
    let back = back.unwrap_or_else(|| {
        panic!("reads not back on {replica} within {NOTICE:?} (GETs on master, replica in the last 500 ms: {last:?})")
    });
    wait_progress(&loads, 100, &proxy);

    let seen = Seen::total([stop(loads), probe]);
    eprintln!(
        "stopped replica: stopped at {stopped_at}, reads off it by {moved_off}, \
         resumed at {resumed_at}, reads back by {back}; {} GETs",
        seen.requests
    );
    assert!(
        seen.clean(),
        "replica {replica} of {master} stopped at {stopped_at}, reads off it by {moved_off}, \
         resumed at {resumed_at}, reads back by {back}; {} GETs:\n{}",
        seen.requests,
        seen.show()
    );
}

/// Readers of keys with known values, under `policy = "replica"`, while
/// 200 slots move between masters (`redis-cli --cluster reshard`) and then
/// the master that took them dies and its replica takes over: no read
/// fails, none reads a wrong (or missing) value, and reads go on
/// throughout.
#[test]
fn reads_see_no_error_and_no_wrong_value_through_resharding_and_failover() {
    const MOVED_SLOTS: u16 = 200;
    let cluster = Cluster::start();
    let proxy = Proxy::start_with_config(&cluster, &read_config("policy = \"replica\""));
    let from = cluster.node_of_slot(0);
    let to = cluster.masters().into_iter().find(|m| *m != from).unwrap();
    // redis-cli reshard moves the source's lowest slots first: keys in
    // every third of them, and spread over the whole map.
    let moving: Vec<(String, u16)> = (0..MOVED_SLOTS)
        .step_by(3)
        .map(|s| (format!("{{{}}}:resharded", key_for_slot(s)), s))
        .collect();
    let keys = [moving, spread_keys("failover", 150)].concat();
    let pairs = with_values(&keys, "r");
    write_all(&proxy, &pairs);
    wait_replicated(&cluster);

    let t0 = Instant::now();
    let loads = readers(&proxy, &pairs, 4, t0);
    wait_progress(&loads, 200, &proxy);

    let mut phases = vec![format!(
        "{}: resharding {MOVED_SLOTS} slots {from} -> {to}",
        at(t0)
    )];
    let before = done(&loads);
    cluster.reshard(MOVED_SLOTS, &from, &to);
    assert_eq!(cluster.node_of_slot(MOVED_SLOTS - 1), to);
    let during_reshard = done(&loads) - before;
    phases.push(format!(
        "{}: resharded ({during_reshard} GETs meanwhile)",
        at(t0)
    ));
    wait_progress(&loads, 200, &proxy);

    // The master that took the slots fails; its replica takes over.
    phases.push(format!("{}: killing master {to}", at(t0)));
    let before = done(&loads);
    cluster.kill_node(&to);
    let masters = cluster.wait_for_failover(&to);
    let during_failover = done(&loads) - before;
    phases.push(format!(
        "{}: failed over to {masters:?} ({during_failover} GETs meanwhile)",
        at(t0)
    ));
    wait_progress(&loads, 500, &proxy);

    let seen = stop(loads);
    phases.push(format!("{}: stopped after {} GETs", at(t0), seen.requests));
    let phases = phases.join("\n");
    eprintln!("{phases}");
    assert!(seen.clean(), "{phases}\n{}", seen.show());
    assert!(
        during_reshard > 0,
        "no read finished while resharding:\n{phases}"
    );
    assert!(
        during_failover > 0,
        "no read finished during the failover:\n{phases}"
    );
}

/// Pipelined MGETs over keys of every shard, so each is split into parts
/// read from the three replicas, while one replica is killed: a part lost
/// with the replica's connection is sent again, and no client sees an
/// error or a wrong value.
#[test]
fn split_reads_are_resent_when_their_replica_dies() {
    /// MGETs per pipeline, keys per MGET.
    const PIPELINE: usize = 20;
    const KEYS: usize = 6;
    let cluster = Cluster::start();
    let proxy = Proxy::start_with_config(&cluster, &read_config("policy = \"replica\""));
    let map = cluster.slot_map();
    // KEYS keys per MGET, two in each shard (keys are ordered by slot).
    let keys = spread_keys("split", 120);
    let pairs = Arc::new(with_values(&keys, "m"));
    write_all(&proxy, &pairs);
    wait_replicated(&cluster);
    let victim = replica(&map[1]).to_string();
    reset_stats(&cluster);

    let t0 = Instant::now();
    let loads: Vec<Background<Seen>> = (0..4)
        .map(|c| {
            let (addr, pairs) = (proxy.addr(), pairs.clone());
            Background::spawn(move |rounds| {
                let mut seen = Seen::default();
                let deadline = Instant::now() + Duration::from_secs(300);
                let n = pairs.len();
                let mut round = c * 7;
                while rounds.go_on() && Instant::now() < deadline {
                    let mut con = match connect(&addr, OP_TIMEOUT) {
                        Ok(con) => con,
                        Err(e) => {
                            seen.errors
                                .push(Event::now(t0, secs(t0), "connect".into(), e));
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    // MGET j reads keys spaced n / KEYS apart: every shard.
                    let mget = |j: usize| (0..KEYS).map(move |i| (round + j + i * n / KEYS) % n);
                    let mut pipe = redis::pipe();
                    for j in 0..PIPELINE {
                        let cmd = pipe.cmd("MGET");
                        for i in mget(j) {
                            cmd.arg(&pairs[i].0);
                        }
                    }
                    let sent = secs(t0);
                    match pipe.query::<Vec<Vec<Option<String>>>>(&mut con) {
                        Ok(replies) => {
                            for (j, got) in replies.iter().enumerate() {
                                let want: Vec<Option<String>> =
                                    mget(j).map(|i| Some(pairs[i].1.clone())).collect();
                                if *got != want {
                                    let keys: Vec<&str> =
                                        mget(j).map(|i| pairs[i].0.as_str()).collect();
                                    let what = format!("MGET {}", keys.join(" "));
                                    seen.wrong
                                        .push(Event::now(t0, sent, what, format!("{got:?}")));
                                }
                            }
                        }
                        Err(e) => {
                            seen.errors
                                .push(Event::now(t0, sent, "pipeline of MGETs".into(), e))
                        }
                    }
                    seen.requests += PIPELINE as u64;
                    round += 1;
                    rounds.done_one();
                }
                seen
            })
        })
        .collect();
    wait_progress(&loads, 20, &proxy);
    let served = calls(&cluster, &victim, "mget");
    assert!(served > 0, "{victim} served no MGET part before it died");

    let killed_at = at(t0);
    cluster.kill_node(&victim);
    wait_progress(&loads, 50, &proxy);
    // The dead replica's parts are served by its master from now on.
    let master = &map[1].master;
    let on_master = calls(&cluster, master, "mget");
    wait_progress(&loads, 20, &proxy);
    assert!(
        calls(&cluster, master, "mget") > on_master,
        "{master} serves no MGET part"
    );

    let seen = stop(loads);
    eprintln!(
        "split reads: replica {victim} killed at {killed_at}; {} MGETs",
        seen.requests
    );
    assert!(
        seen.clean(),
        "replica {victim} killed at {killed_at}; {} MGETs:\n{}",
        seen.requests,
        seen.show()
    );
}

/// Under `policy = "any"` and `"replica"`, several clients mix writes
/// (plain, read-and-write like `GETDEL` or `SET ... GET`, multi-key in one
/// slot and split, scripts, a transaction) with reads: every write goes to
/// a master, so no replica refused a command (`MOVED`, `READONLY`, nor any
/// rejected or failed call), while reads did reach replicas.
#[test]
fn writes_never_reach_a_replica() {
    const ROUNDS: usize = 25;
    let cluster = Cluster::start();
    let script = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])";
    for policy in ["any", "replica"] {
        let proxy =
            Proxy::start_with_config(&cluster, &read_config(&format!("policy = \"{policy}\"")));
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script)
            .query(&mut proxy.conn())
            .expect("SCRIPT LOAD through keyway");
        let shards = key_per_shard(&cluster, policy);
        let tags: Vec<String> = shards.iter().map(|(_, r)| key_for_slot(r.start)).collect();
        reset_stats(&cluster);
        // Several clients at once: under `any`, keyway reads some clients'
        // shards from the master and others' from the replica; writes go
        // to the master whoever sends them.
        std::thread::scope(|s| {
            for c in 0..4 {
                let (proxy, tags, sha) = (&proxy, &tags, &sha);
                s.spawn(move || {
                    let mut con = proxy.conn();
                    let name = format!("{policy}{c}");
                    for round in 0..ROUNDS {
                        let v = format!("v{round}");
                        for tag in tags {
                            writes_and_reads(&mut con, tag, tags, &name, &v, script, sha);
                        }
                    }
                });
            }
        });
        wait_replicated(&cluster);
        // Replicated, the last writes read back right wherever served.
        let mut con = proxy.conn();
        for (c, tag) in (0..4).flat_map(|c| tags.iter().map(move |t| (c, t))) {
            let k = format!("{{{tag}}}:{policy}{c}");
            let last = format!("v{}", ROUNDS - 1);
            assert_eq!(get(&mut con, &k), Some(last), "{policy}: GET {k}");
        }

        let mut on_replicas = 0;
        for (_, shard) in &shards {
            let replica = replica(shard);
            // A write sent to a replica is refused with MOVED, a script
            // writing there fails with READONLY (see `replica_reads`).
            let errors = info(&cluster, replica, "errorstats");
            for e in ["errorstat_MOVED", "errorstat_READONLY"] {
                assert!(
                    !errors.contains(e),
                    "{policy}: a write reached {replica}:\n{errors}"
                );
            }
            // Every command the replica ran, sent by keyway or applied
            // from its master, succeeded (the errors it counts in
            // errorstat_ERR are the test's own connections' `CLIENT
            // SETINFO`, which redis-server 7.0 does not know).
            let stats = info(&cluster, replica, "commandstats");
            for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
                let clean = line.ends_with("rejected_calls=0,failed_calls=0");
                assert!(clean, "{policy}: {replica}: {line}");
            }
            on_replicas += calls(&cluster, replica, "get") + calls(&cluster, replica, "mget");
        }
        // Not vacuous: the policy did send reads to the replicas.
        assert!(on_replicas > 0, "{policy}: no read reached a replica");
    }
}

/// One round of writes to keys `{tag}:name...` (one slot), mixed with
/// reads, through one client: plain writes, writes that also read
/// (`GETDEL`, `GETEX`, `SET ... GET`, `SORT`, `BITFIELD`), multi-key
/// writes in one slot and split over the slots of `tags`, scripts that
/// write, a transaction of writes. Each write's reply is checked (it
/// comes from the master); the reads' are not (a replica may not have
/// applied the writes yet), only that they succeed.
fn writes_and_reads(
    con: &mut redis::Connection,
    tag: &str,
    tags: &[String],
    name: &str,
    v: &str,
    script: &str,
    sha: &str,
) {
    let key = |suffix: &str| format!("{{{tag}}}:{name}{suffix}");
    let (k, n, list, other, stream, bits) = (
        &key(""),
        key(":n"),
        key(":list"),
        key(":other"),
        key(":stream"),
        key(":bits"),
    );
    let split: Vec<String> = tags
        .iter()
        .map(|t| format!("{{{t}}}:{name}:split"))
        .collect();
    let q = |cmd: &mut redis::Cmd, con: &mut redis::Connection| -> redis::Value {
        let sent = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
        cmd.query(con).unwrap_or_else(|e| panic!("{sent:?}: {e}"))
    };
    let read = |cmd: &mut redis::Cmd, con: &mut redis::Connection| {
        q(cmd, con);
    };
    let ok = redis::Value::Okay;
    assert_eq!(q(redis::cmd("SET").arg(k).arg(v), con), ok);
    read(redis::cmd("GET").arg(k), con);
    let before: i64 = redis::cmd("INCR").arg(&n).query(con).unwrap();
    read(redis::cmd("GET").arg(&n), con);
    let len: i64 = redis::cmd("LPUSH")
        .arg(&list)
        .arg("b")
        .arg("a")
        .query(con)
        .unwrap();
    let tail: String = redis::cmd("RPOPLPUSH")
        .arg(&list)
        .arg(&list)
        .query(con)
        .unwrap();
    assert!(
        len >= 2 && ["a", "b", "c"].contains(&tail.as_str()),
        "{len} {tail}"
    );
    read(redis::cmd("LRANGE").arg(&list).arg(0).arg(-1), con);
    // Writes that also read.
    let old: Option<String> = redis::cmd("SET")
        .arg(k)
        .arg("x")
        .arg("GET")
        .query(con)
        .unwrap();
    assert_eq!(old.as_deref(), Some(v));
    let x: Option<String> = redis::cmd("GETEX")
        .arg(k)
        .arg("EX")
        .arg(600)
        .query(con)
        .unwrap();
    assert_eq!(x.as_deref(), Some("x"));
    let x: Option<String> = redis::cmd("GETDEL").arg(k).query(con).unwrap();
    assert_eq!(x.as_deref(), Some("x"));
    let sorted: Vec<String> = redis::cmd("SORT")
        .arg(&list)
        .arg("ALPHA")
        .query(con)
        .unwrap();
    assert_eq!(sorted.first().map(String::as_str), Some("a"));
    let bitfield: Vec<i64> = redis::cmd("BITFIELD")
        .arg(&bits)
        .arg("SET")
        .arg("u8")
        .arg(0)
        .arg(255)
        .query(con)
        .unwrap();
    assert_eq!(bitfield.len(), 1);
    assert_eq!(
        q(redis::cmd("EXPIRE").arg(&list).arg(600), con),
        redis::Value::Int(1)
    );
    q(
        redis::cmd("XADD").arg(&stream).arg("*").arg("f").arg(v),
        con,
    );
    read(redis::cmd("XLEN").arg(&stream), con);
    // Multi-key writes: one slot (hash tag), then split over every shard.
    let mset = redis::cmd("MSET").arg(k).arg(v).arg(&other).arg(v).clone();
    assert_eq!(q(&mut mset.clone(), con), ok);
    read(redis::cmd("MGET").arg(k).arg(&other), con);
    let mut mset = redis::cmd("MSET");
    for key in &split {
        mset.arg(key).arg(v);
    }
    assert_eq!(q(&mut mset, con), ok);
    read(redis::cmd("MGET").arg(&split), con);
    read(redis::cmd("EXISTS").arg(&split), con);
    let deleted: usize = redis::cmd("DEL").arg(&split).query(con).unwrap();
    assert_eq!(deleted, tags.len());
    // Scripts that write, by body and by digest.
    let eval = |cmd: &str, body: &str, con: &mut redis::Connection| -> i64 {
        let run = redis::cmd(cmd)
            .arg(body)
            .arg(2)
            .arg(k)
            .arg(&n)
            .arg(v)
            .query(con);
        run.unwrap_or_else(|e| panic!("{cmd}: {e}"))
    };
    assert_eq!(eval("EVAL", script, con), before + 1);
    assert_eq!(eval("EVALSHA", sha, con), before + 2);
    // A transaction of writes.
    let exec: (String, i64, i64) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(k)
        .arg(v)
        .cmd("INCR")
        .arg(&n)
        .cmd("LPUSH")
        .arg(&list)
        .arg("c")
        .query(con)
        .unwrap();
    assert_eq!((exec.0.as_str(), exec.1), ("OK", before + 3));
}

/// The stale reads of `rounds` sequential rounds of `SET key i` then
/// `GET key` through one client of `proxy` (round `i` on `keys[i % n]`):
/// each GET that did not return `i`.
fn stale_reads(proxy: &Proxy, keys: &[String], rounds: usize) -> Vec<String> {
    let mut con = proxy.conn();
    let mut stale = Vec::new();
    for i in 0..rounds {
        let key = &keys[i % keys.len()];
        let () = redis::cmd("SET").arg(key).arg(i).query(&mut con).unwrap();
        let got: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        if got != Some(i.to_string()) {
            stale.push(format!("round {i}: GET {key} = {got:?}"));
        }
    }
    stale
}

/// Makes every replica apply its master's writes a few milliseconds late,
/// as a replica across a network does: each master sends its replication
/// stream with Nagle's algorithm (`repl-disable-tcp-nodelay yes`: "a delay
/// for the data to appear on the replica side, up to 40 milliseconds",
/// says redis.conf). A master applies it at a full sync: each replica is
/// restarted without data to get one.
fn delay_replication(cluster: &Cluster) {
    let full_syncs = || -> u64 {
        let syncs = |m: String| info_field(&info(cluster, &m, "stats"), "sync_full");
        let syncs = cluster.masters().into_iter().map(syncs);
        syncs
            .map(|n| n.and_then(|n| n.parse::<u64>().ok()).unwrap())
            .sum()
    };
    let before = full_syncs();
    for master in cluster.masters() {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-disable-tcp-nodelay")
            .arg("yes")
            .query::<()>(&mut cluster.conn(&master))
            .unwrap_or_else(|e| panic!("CONFIG SET repl-disable-tcp-nodelay on {master}: {e}"));
    }
    let replicas = cluster.replicas();
    for replica in &replicas {
        cluster.kill_node(replica);
        cluster.restart_node_without_data(replica);
    }
    cluster.wait_ok();
    wait_replicated(cluster);
    let synced = full_syncs() - before;
    assert!(synced >= replicas.len() as u64, "{synced} full syncs");
}

/// `read.read_your_writes_ms = 1000`: one client's 10,000 sequential
/// `SET k i`, `GET k` rounds all read `i` (the masters serve the reads);
/// without it, on the same cluster, some of the same rounds read an older
/// value, which shows the check above means something.
#[test]
fn read_your_writes_holds_for_ten_thousand_rounds_and_stale_reads_happen_without_it() {
    const ROUNDS: usize = 10_000;
    let cluster = Cluster::start();
    // Over loopback a replica is usually faster than a client's next
    // request through keyway: on this 2-core machine, 10,000 rounds
    // without read_your_writes_ms read 25 and 30 stale values (1-byte
    // values, machine loaded by a build), 3 and 0 (100 bytes), 0 (1 KB,
    // 10 KB, 100 KB). With the replication delayed as below: 4502, 5170
    // and 5166 (1 byte, 100 bytes, 1 KB), in about 2 s.
    delay_replication(&cluster);
    let ryw = "policy = \"replica\"\nread_your_writes_ms = 1000";
    let ryw = Proxy::start_with_config(&cluster, &read_config(ryw));
    let plain = Proxy::start_with_config(&cluster, &read_config("policy = \"replica\""));
    // One key per shard, written and read in turn.
    let keys = |tag: &str| -> Vec<String> {
        let keys = key_per_shard(&cluster, tag).into_iter();
        keys.map(|(k, _)| k).collect()
    };

    let t = Instant::now();
    let stale = stale_reads(&ryw, &keys("ryw"), ROUNDS);
    eprintln!(
        "read_your_writes_ms = 1000: {} stale reads in {ROUNDS} rounds ({:?})",
        stale.len(),
        t.elapsed()
    );
    assert!(
        stale.is_empty(),
        "{} stale reads: {:?}",
        stale.len(),
        &stale[..stale.len().min(20)]
    );
    // Each GET came right after its client's write to the slot: the
    // masters served them all.
    let on_masters = keyway_stat(&ryw, "reads_served_by_master");
    assert!(
        on_masters >= ROUNDS as u64,
        "reads_served_by_master:{on_masters}"
    );

    // Without it, the same rounds read values older than their own write.
    let t = Instant::now();
    let stale = stale_reads(&plain, &keys("plain"), ROUNDS);
    eprintln!(
        "read_your_writes_ms off: {} stale reads in {ROUNDS} rounds ({:?}); e.g. {:?}",
        stale.len(),
        t.elapsed(),
        stale.first()
    );
    assert!(
        !stale.is_empty(),
        "no stale read in {ROUNDS} rounds without read_your_writes_ms"
    );
    let on_replicas = keyway_stat(&plain, "reads_served_by_replica");
    assert!(
        on_replicas >= ROUNDS as u64,
        "reads_served_by_replica:{on_replicas}"
    );
}

/// `read.max_lag_bytes = 1000`: a replica stopped while its master keeps
/// writing falls behind; keyway counts it in `replicas_lagging` and sends
/// new reads to the master, and once the replica has caught up it serves
/// them again. The cluster is kept from marking it failed, and a read sent
/// to it would wait `request_timeout_ms` (30 s) past the client's 5 s
/// timeout: only the lag filter can keep the reads prompt (without it the
/// first GET below times out).
#[test]
fn a_lagging_replica_is_skipped_and_used_again_when_caught_up() {
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
    let cluster = Cluster::start();
    // A read sent to the stopped replica would wait 30 s.
    let read = "policy = \"replica\"\nmax_lag_bytes = 1000";
    let proxy = Proxy::start_with_config(&cluster, &config(read, "request_timeout_ms = 30000"));
    let shards = key_per_shard(&cluster, "lag");
    let pairs = with_values(&shards, "l");
    write_all(&proxy, &pairs);
    wait_replicated(&cluster);
    let (key, shard) = (&pairs[0], &shards[0].1);
    let (master, replica) = (shard.master.clone(), replica(shard).to_string());
    // A fresh client's GET of the key: right, and within CLIENT_TIMEOUT.
    let fresh_get = || {
        let mut con = connect(&proxy.addr(), CLIENT_TIMEOUT).expect("connect to keyway");
        let got: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(&key.0).query(&mut con);
        let got = got.unwrap_or_else(|e| panic!("GET {}: {e}", key.0));
        assert_eq!(got.as_ref(), Some(&key.1), "GET {}", key.0);
    };
    let before = calls(&cluster, &replica, "get");
    fresh_get();
    assert_eq!(
        calls(&cluster, &replica, "get"),
        before + 1,
        "{replica} serves the key"
    );
    assert_eq!(keyway_stat(&proxy, "replicas_lagging"), 0);

    // The cluster must not mark the stopped replica failed (keyway would
    // then drop it from the slot map): only its lag may move reads off.
    for node in cluster.all_addrs() {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-node-timeout")
            .arg(120_000)
            .query::<()>(&mut cluster.conn(&node))
            .unwrap_or_else(|e| panic!("CONFIG SET cluster-node-timeout on {node}: {e}"));
    }
    // A writer keeps the shard's master writing, directly.
    let tag = key_for_slot(shard.start);
    let writer = {
        let master = master.clone();
        Background::spawn(move |rounds| -> redis::RedisResult<()> {
            let mut con = connect(&master, OP_TIMEOUT)?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            while rounds.go_on() && Instant::now() < deadline {
                let key = format!("{{{tag}}}:written:{}", i % 100);
                let value = format!("{i:0>100}");
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .query::<()>(&mut con)?;
                i += 1;
                rounds.done_one();
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };
    let stopped = cluster.stop_node(&replica);
    let stopped_at = Instant::now();
    writer.wait_progress(50, &proxy);
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped_at.elapsed()));
    let lagging = poll_until(Duration::from_secs(10), || {
        (keyway_stat(&proxy, "replicas_lagging") == 1).then_some(())
    });
    assert!(
        lagging.is_some(),
        "keyway does not count {replica} as lagging"
    );
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut cluster.conn(&master))
        .unwrap();
    let line = nodes.lines().find(|l| l.contains(&replica)).unwrap();
    assert!(
        !line.contains("fail"),
        "the cluster marked {replica} failed: {line}"
    );
    let (gets, reads) = (
        calls(&cluster, &master, "get"),
        keyway_stat(&proxy, "reads_served_by_master"),
    );
    for _ in 0..5 {
        fresh_get();
    }
    assert!(
        calls(&cluster, &master, "get") >= gets + 5,
        "{master} served the reads"
    );
    assert!(keyway_stat(&proxy, "reads_served_by_master") >= reads + 5);
    writer.stop().expect("writes to the master");

    stopped.resume();
    wait_replicated(&cluster);
    let mut last = String::new();
    let back = poll_until(Duration::from_secs(10), || {
        let lagging = keyway_stat(&proxy, "replicas_lagging");
        let before = calls(&cluster, &replica, "get");
        fresh_get();
        let on_replica = calls(&cluster, &replica, "get") > before;
        last = format!("replicas_lagging:{lagging}, GET on the replica: {on_replica}");
        (lagging == 0 && on_replica).then_some(())
    });
    assert!(
        back.is_some(),
        "{replica} not used again after catching up: {last}"
    );
}
