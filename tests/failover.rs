//! keyway while the cluster changes under it: slots migrating under load
//! (ASK and MOVED), a master dying (failover), a cluster that is down when
//! keyway starts, and configuration errors at start-up.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::cluster::connect;
use support::{
    key_for_slot, poll_until, run_keyway, Background, Cluster, Proxy, Ready, OP_TIMEOUT,
};

/// What a [`Load`] saw: every acknowledged write and every error.
struct LoadReport {
    acked: HashMap<String, Acked>,
    errors: Vec<LoadError>,
    ops: u64,
}

/// A failed operation: when it was sent, when it failed, and why.
#[derive(Clone)]
struct LoadError {
    started: Instant,
    failed: Instant,
    what: String,
}

/// One acknowledged write: the value and when the SET was sent.
struct Acked {
    value: String,
    at: Instant,
}

/// A client thread that keeps writing new keys in `slots` through keyway
/// and reading back older ones, until stopped. Each iteration: SET a new
/// key, GET it, GET an older key of the same run; any error or wrong value
/// is recorded and the connection re-opened.
type Load = Background<LoadReport>;

impl Load {
    fn start(addr: String, slots: &[u16], run: &str) -> Load {
        let tags: Vec<String> = slots.iter().map(|&s| key_for_slot(s)).collect();
        let run = run.to_string();
        Background::spawn(move |rounds| {
            let mut report = LoadReport {
                acked: HashMap::new(),
                errors: Vec::new(),
                ops: 0,
            };
            let mut written: Vec<String> = Vec::new();
            let mut con = None;
            let mut i: u64 = 0;
            // Bounded: at most 10 minutes even if never stopped.
            let deadline = Instant::now() + Duration::from_secs(600);
            while rounds.go_on() && Instant::now() < deadline {
                let started = Instant::now();
                if con.is_none() {
                    match connect(&addr, OP_TIMEOUT) {
                        Ok(c) => con = Some(c),
                        Err(e) => {
                            report.errors.push(LoadError {
                                started,
                                failed: Instant::now(),
                                what: format!("connect: {e}"),
                            });
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                }
                let c = con.as_mut().expect("connected");
                let key = format!("{{{}}}:{run}:{i}", tags[(i % tags.len() as u64) as usize]);
                let value = format!("v{i}");
                let old = (!written.is_empty())
                    .then(|| written[(i as usize * 7919) % written.len()].clone());
                let result = (|| -> Result<(), String> {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .query::<()>(c)
                        .map_err(|e| format!("SET {key}: {e}"))?;
                    let got: Option<String> = redis::cmd("GET")
                        .arg(&key)
                        .query(c)
                        .map_err(|e| format!("GET {key}: {e}"))?;
                    if got.as_deref() != Some(value.as_str()) {
                        return Err(format!("GET {key} = {got:?}, want {value:?}"));
                    }
                    Ok(())
                })();
                match result {
                    Ok(()) => {
                        report
                            .acked
                            .insert(key.clone(), Acked { value, at: started });
                        written.push(key);
                    }
                    Err(e) => {
                        report.errors.push(LoadError {
                            started,
                            failed: Instant::now(),
                            what: e,
                        });
                        con = None;
                    }
                }
                if let (Some(old), Some(c)) = (old, con.as_mut()) {
                    let want = report.acked.get(&old).map(|a| a.value.clone());
                    match redis::cmd("GET").arg(&old).query::<Option<String>>(c) {
                        Ok(got) if got == want => {}
                        Ok(got) => report.errors.push(LoadError {
                            started,
                            failed: Instant::now(),
                            what: format!("GET {old} = {got:?}, want {want:?}"),
                        }),
                        Err(e) => {
                            report.errors.push(LoadError {
                                started,
                                failed: Instant::now(),
                                what: format!("GET {old}: {e}"),
                            });
                            con = None;
                        }
                    }
                }
                i += 1;
                rounds.done_one();
            }
            report.ops = i;
            report
        })
    }
}

fn show(errors: &[LoadError]) -> String {
    errors
        .iter()
        .take(15)
        .map(|e| e.what.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads every acknowledged write back through keyway, in pipelines.
fn assert_all_readable(proxy: &Proxy, acked: &HashMap<String, Acked>) {
    let mut con = proxy.conn();
    let entries: Vec<(&String, &String)> = acked.iter().map(|(k, a)| (k, &a.value)).collect();
    for chunk in entries.chunks(1000) {
        let mut pipe = redis::pipe();
        for (k, _) in chunk {
            pipe.cmd("GET").arg(*k);
        }
        let got: Vec<Option<String>> = pipe.query(&mut con).expect("read-back pipeline");
        for ((k, v), g) in chunk.iter().zip(got) {
            assert_eq!(
                g.as_deref(),
                Some(v.as_str()),
                "acknowledged write of {k} lost"
            );
        }
    }
}

#[test]
fn resharding_under_load_is_invisible_to_clients() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let from = cluster.node_of_slot(0);
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| *m != from)
        .expect("another master");
    // redis-cli reshard takes the source's lowest slots: after 0 and 1 move
    // by hand, `reshard(100)` moves 2..=101.
    let slots: Vec<u16> = (0..=11).chain(60..=70).collect();
    let load = Load::start(proxy.addr(), &slots, "reshard");
    load.wait_progress(300, &proxy);

    // Slot 0 step by step: clients keep going while the slot is MIGRATING
    // (new keys → ASK to the target), while keys move in small batches
    // (moved keys → ASK), and after the slot is reassigned (MOVED).
    let m = cluster.begin_migration(0, &from, &to);
    load.wait_progress(200, &proxy);
    while m.move_keys(5) > 0 {
        load.wait_progress(20, &proxy);
    }
    load.wait_progress(200, &proxy);
    m.finish();
    load.wait_progress(200, &proxy);
    assert_eq!(cluster.node_of_slot(0), to);

    // Slot 1 in one go, then 100 slots with redis-cli, under the same load.
    cluster.migrate_slot(1, &from, &to);
    load.wait_progress(200, &proxy);
    cluster.reshard(100, &from, &to);
    load.wait_progress(200, &proxy);
    assert_eq!(
        cluster.node_of_slot(70),
        to,
        "reshard should have moved slot 70"
    );

    let report = load.stop();
    assert!(
        report.errors.is_empty(),
        "{} client-visible errors in {} ops during resharding:\n{}",
        report.errors.len(),
        report.ops,
        show(&report.errors)
    );
    assert_all_readable(&proxy, &report.acked);
}

/// When one of `replicas` first answers `ROLE` as a master (polled every
/// 5 ms, for at most 30 s).
pub(crate) fn first_promotion(mut replicas: Vec<redis::Connection>) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for replica in &mut replicas {
            let role: redis::RedisResult<redis::Value> = redis::cmd("ROLE").query(replica);
            if let Ok(redis::Value::Array(fields)) = role {
                if fields.first() == Some(&redis::Value::BulkString(b"master".to_vec())) {
                    return Instant::now();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no replica became master within 30 s");
}

/// When a `SET` of `key` through keyway at `addr` first succeeds (tried
/// every 5 ms on a fresh connection after each failure, for at most 30 s).
fn first_served(addr: &str, key: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let set = connect(addr, OP_TIMEOUT)
            .and_then(|mut con| redis::cmd("SET").arg(key).arg("1").query::<()>(&mut con));
        if set.is_ok() {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("keyway did not serve {key} within 30 s");
}

#[test]
fn master_failover_heals_after_the_failover_window() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let slots: Vec<u16> = (0..32).map(|i| i * 512 + 7).collect();
    let load = Load::start(proxy.addr(), &slots, "failover");
    load.wait_progress(300, &proxy);

    let victim = cluster.node_of_slot(0);
    let victim_slots: Vec<u16> = slots
        .iter()
        .copied()
        .filter(|&s| cluster.node_of_slot(s) == victim)
        .collect();
    // Measured, not asserted: when a replica first calls itself master
    // (the cluster's own time), and when keyway first serves the slot.
    let replicas: Vec<redis::Connection> = cluster
        .replicas_of(&victim)
        .iter()
        .map(|r| cluster.conn(r))
        .collect();
    let probe = format!("{{{}}}:first", key_for_slot(victim_slots[0]));
    let killed_at = Instant::now();
    cluster.kill_node(&victim);
    let promoted = std::thread::spawn(move || first_promotion(replicas));
    let addr = proxy.addr();
    let served = std::thread::spawn(move || first_served(&addr, &probe));
    let masters = cluster.wait_for_failover(&victim);
    assert!(!masters.contains(&victim));
    let healed = Instant::now();
    let (promoted, served) = (promoted.join().unwrap(), served.join().unwrap());
    eprintln!(
        "failover: a replica called itself master {:?} after the kill, keyway served the slot {:?} after it ({} ms after the promotion)",
        promoted - killed_at,
        served - killed_at,
        served.duration_since(killed_at).as_millis() as i64
            - promoted.duration_since(killed_at).as_millis() as i64
    );

    // keyway has caught up once a fresh client can use every slot the
    // victim owned; from then on, no more errors are allowed.
    let recovered = poll_until(Duration::from_secs(20), || {
        let mut con = connect(&proxy.addr(), OP_TIMEOUT).ok()?;
        for &s in &victim_slots {
            let k = format!("{{{}}}:probe", key_for_slot(s));
            redis::cmd("SET")
                .arg(&k)
                .arg("1")
                .query::<()>(&mut con)
                .ok()?;
        }
        Some(Instant::now())
    });
    let recovered = recovered.unwrap_or_else(|| {
        panic!(
            "keyway still fails on the failed-over slots 20 s after the failover\n--- keyway log ---\n{}",
            proxy.log_tail(40)
        )
    });
    eprintln!(
        "failover: cluster healed after {:?}, keyway after {:?}",
        healed - killed_at,
        recovered - killed_at
    );
    load.wait_progress(500, &proxy);

    // The old master comes back as a replica; clients do not notice.
    cluster.restart_node(&victim);
    cluster.wait_ok();
    assert!(
        cluster.replicas().contains(&victim),
        "{victim} should rejoin as a replica"
    );
    load.wait_progress(300, &proxy);

    let report = load.stop();
    let before: Vec<_> = report
        .errors
        .iter()
        .filter(|e| e.failed < killed_at)
        .cloned()
        .collect();
    assert!(
        before.is_empty(),
        "errors before the kill:\n{}",
        show(&before)
    );
    let after: Vec<_> = report
        .errors
        .iter()
        .filter(|e| e.started >= recovered)
        .cloned()
        .collect();
    assert!(
        after.is_empty(),
        "{} errors after keyway had recovered ({} during the failover window):\n{}",
        after.len(),
        report.errors.len() - after.len(),
        show(&after)
    );
    // Every write acknowledged after recovery is readable (earlier ones to
    // the dead master may be lost: replication is asynchronous), and so is
    // every write to the masters that never failed.
    let victim_slot_set: std::collections::HashSet<u16> = victim_slots.into_iter().collect();
    let keep: HashMap<String, Acked> = report
        .acked
        .into_iter()
        .filter(|(k, a)| {
            a.at >= recovered || !victim_slot_set.contains(&support::key_slot(k.as_bytes()))
        })
        .collect();
    assert_all_readable(&proxy, &keep);
}

#[test]
fn starts_with_every_seed_down_and_serves_once_the_cluster_is_up() {
    let cluster = Cluster::start();
    let seeds: Vec<String> = cluster.seeds().into_iter().take(3).collect();
    for node in cluster.all_addrs() {
        cluster.kill_node(&node);
    }

    // keyway must start (and answer PING) with no seed reachable...
    let proxy = Proxy::spawn(&seeds, &[], Ready::Ping);
    let mut raw = proxy.raw_client();
    let reply = raw.cmd(&["SET", "down:k", "v"]);
    assert!(
        reply.starts_with("-CLUSTERDOWN"),
        "SET with the cluster down: {reply:?}"
    );
    let reply = raw.cmd(&["GET", "down:k"]);
    assert!(
        reply.starts_with("-CLUSTERDOWN"),
        "GET with the cluster down: {reply:?}"
    );
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");

    // ...and serve once the same nodes come back.
    for node in cluster.all_addrs() {
        cluster.restart_node(&node);
    }
    cluster.wait_ok();
    let served = poll_until(Duration::from_secs(30), || {
        let reply = raw.cmd(&["SET", "down:k", "v"]);
        (reply == "+OK\r\n").then_some(())
    });
    assert!(
        served.is_some(),
        "keyway did not serve within 30 s of the cluster coming back\n--- keyway log ---\n{}",
        proxy.log_tail(40)
    );
    assert_eq!(raw.cmd(&["GET", "down:k"]), "$1\r\nv\r\n");
    let mut con = proxy.conn();
    for slot in (0..16384).step_by(997) {
        let k = key_for_slot(slot);
        let () = redis::cmd("SET").arg(&k).arg(slot).query(&mut con).unwrap();
        let v: u16 = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
        assert_eq!(v, slot);
    }
}

#[test]
fn config_errors_exit_2_naming_the_key() {
    let base = ["--listen", "127.0.0.1:0", "--cluster", "127.0.0.1:1"];

    let (status, out) = run_keyway(&[&base[..], &["--workers", "0"]].concat());
    assert_eq!(
        status.code(),
        Some(2),
        "--workers 0 should exit 2; output:\n{out}"
    );
    assert!(
        out.contains("workers"),
        "--workers 0: message should name the key:\n{out}"
    );

    let dir = support::util::TempDir::new("conf");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[proxy]\nlisten = \"127.0.0.1:0\"\nbogus_key = 1\n").unwrap();
    let (status, out) = run_keyway(&["--config", file.to_str().unwrap()]);
    assert_eq!(
        status.code(),
        Some(2),
        "unknown key should exit 2; output:\n{out}"
    );
    assert!(
        out.contains("bogus_key"),
        "message should name the unknown key:\n{out}"
    );

    std::fs::write(&file, "[cluster]\nseeds = \"not-a-list\"\n").unwrap();
    let (status, out) = run_keyway(&["--config", file.to_str().unwrap()]);
    assert_eq!(
        status.code(),
        Some(2),
        "bad value should exit 2; output:\n{out}"
    );
    assert!(out.contains("seeds"), "message should name the key:\n{out}");

    let missing = dir.path().join("missing.toml");
    let (status, out) = run_keyway(&["--config", missing.to_str().unwrap()]);
    assert_eq!(
        status.code(),
        Some(2),
        "missing config file should exit 2; output:\n{out}"
    );
    assert!(
        out.contains("missing.toml"),
        "message should name the file:\n{out}"
    );
}
