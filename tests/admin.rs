//! The admin HTTP endpoint (`admin.listen`, `--admin-listen`): `/metrics`
//! counts what went through keyway exactly and lints clean with promtool,
//! `/health/ready` follows the cluster and SIGTERM, the endpoint stays
//! bounded under bad or idle clients, a taken port stops keyway at start,
//! and SIGHUP reloads are counted.

use crate::support;

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::http::{self, label, Scrape};
use support::resp::{encode, read_reply};
use support::tools;
use support::{key_for_slot, key_slot, poll_until, run_keyway, Cluster, Proxy, Ready, OP_TIMEOUT};

/// 100 STRLEN and 37 INCR (commands the harness never sends) are counted
/// exactly, with a histogram whose buckets are cumulative; the gauges
/// describe a healthy 3-master cluster; the process collector reports;
/// and `promtool check metrics` finds nothing to say about the text.
#[test]
fn metrics_count_commands_exactly_and_pass_promtool() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let admin = proxy.admin_addr();

    // Several connections: likely on both workers, whose figures a
    // scrape sums.
    let mut cons: Vec<redis::Connection> = (0..4).map(|_| proxy.conn()).collect();
    for i in 0..100 {
        let len: i64 = redis::cmd("STRLEN")
            .arg(format!("admin:strlen:{i}"))
            .query(&mut cons[i % 4])
            .unwrap();
        assert_eq!(len, 0);
    }
    let mut con = proxy.conn();
    for i in 1..=37 {
        let n: i64 = redis::cmd("INCR")
            .arg("admin:incr")
            .query(&mut con)
            .unwrap();
        assert_eq!(n, i);
    }
    // Error replies, by kind: keyway's CROSSSLOT, and a node's WRONGTYPE.
    for _ in 0..3 {
        let refused = redis::cmd("RENAME")
            .arg("admin:{a}")
            .arg("admin:{b}")
            .query::<()>(&mut con)
            .unwrap_err();
        assert_eq!(refused.code(), Some("CROSSSLOT"), "{refused}");
    }
    let wrongtype = redis::cmd("LPUSH")
        .arg("admin:incr")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(wrongtype.code(), Some("WRONGTYPE"), "{wrongtype}");

    let response = http::get(&admin, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let kind = response.header("Content-Type").unwrap_or_default();
    assert!(
        kind.starts_with("text/plain; version=0.0.4"),
        "Content-Type {kind:?}"
    );
    let scrape = Scrape {
        text: response.body,
    };
    assert_eq!(
        scrape.expect("keyway_commands_total{command=\"strlen\"}"),
        100.0
    );
    assert_eq!(
        scrape.expect("keyway_command_errors_total{kind=\"crossslot\"}"),
        3.0
    );
    assert_eq!(
        scrape.expect("keyway_command_errors_total{kind=\"other\"}"),
        1.0
    );
    assert_eq!(
        scrape.expect("keyway_commands_total{command=\"incr\"}"),
        37.0
    );

    let histogram = "keyway_command_duration_seconds";
    assert_eq!(
        scrape.expect(&format!(
            "{histogram}_bucket{{command=\"strlen\",le=\"+Inf\"}}"
        )),
        100.0
    );
    assert_eq!(
        scrape.expect(&format!("{histogram}_count{{command=\"strlen\"}}")),
        100.0
    );
    assert_eq!(
        scrape.expect(&format!("{histogram}_count{{command=\"incr\"}}")),
        37.0
    );
    let sum = scrape.expect(&format!("{histogram}_sum{{command=\"strlen\"}}"));
    assert!(
        sum > 0.0 && sum < 100.0 * OP_TIMEOUT.as_secs_f64(),
        "strlen's durations sum to {sum} s"
    );
    // Every command's buckets: bounds rising, counts cumulative, the
    // last `+Inf` and equal to the command's count and total.
    let buckets = scrape.samples(&format!("{histogram}_bucket"));
    let mut commands: Vec<String> = buckets
        .iter()
        .map(|(labels, _)| label(labels, "command"))
        .collect();
    commands.dedup();
    assert!(commands.contains(&"strlen".to_string()), "{commands:?}");
    for command in &commands {
        let mine: Vec<(f64, f64)> = buckets
            .iter()
            .filter(|(labels, _)| &label(labels, "command") == command)
            .map(|(labels, count)| {
                let le = label(labels, "le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse()
                        .unwrap_or_else(|_| panic!("le {le:?} of {command}"))
                };
                (le, *count)
            })
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{command}'s buckets are not cumulative with rising bounds: {mine:?}"
        );
        let (last_le, last) = *mine.last().expect("buckets");
        assert_eq!(last_le, f64::INFINITY, "{command}'s last bucket");
        let count = scrape.expect(&format!("{histogram}_count{{command=\"{command}\"}}"));
        let total = scrape.expect(&format!("keyway_commands_total{{command=\"{command}\"}}"));
        assert_eq!(
            (last, count),
            (total, total),
            "{command}: +Inf bucket, _count and keyway_commands_total differ"
        );
    }

    assert_eq!(scrape.expect("keyway_ready"), 1.0);
    let clients = scrape.expect("keyway_clients_connected");
    assert!(clients >= 5.0, "5 clients connected, gauge says {clients}");
    assert_eq!(scrape.expect("keyway_slots_covered"), 16384.0);
    assert_eq!(scrape.expect("keyway_masters"), 3.0);
    let rss = scrape.expect("process_resident_memory_bytes");
    assert!(rss > 0.0, "process_resident_memory_bytes {rss}");
    assert!(scrape.expect("process_open_fds") > 0.0);
    assert_eq!(scrape.expect("keyway_clients_blocked"), 0.0);
    assert_eq!(scrape.expect("keyway_clients_subscribed"), 0.0);
    let resp2 = scrape.expect("keyway_clients_by_protocol{protocol=\"resp2\"}");
    assert!(
        resp2 >= 5.0,
        "5 RESP2 clients connected, gauge says {resp2}"
    );
    assert_eq!(
        scrape.expect("keyway_clients_by_protocol{protocol=\"resp3\"}"),
        0.0
    );
    assert_eq!(
        scrape.expect("keyway_topology_refreshes_total{trigger=\"start\"}"),
        1.0
    );
    // Per node: all 6 listed with their role; the masters served the
    // traffic above, so each has connections open and answered requests
    // whose round trips are in the histogram; nothing is left in flight
    // and nothing reconnected. Replicas serve no reads by default.
    let backend = |family: &str, node: &str, role: &str| {
        scrape.expect(&format!("{family}{{node=\"{node}\",role=\"{role}\"}}"))
    };
    for master in cluster.masters() {
        assert!(backend("keyway_backend_connections", &master, "master") >= 1.0);
        assert_eq!(
            backend("keyway_backend_requests_in_flight", &master, "master"),
            0.0
        );
        assert_eq!(
            backend("keyway_backend_reconnects_total", &master, "master"),
            0.0
        );
        let round_trips = backend(
            "keyway_backend_request_duration_seconds_count",
            &master,
            "master",
        );
        assert!(round_trips >= 1.0, "{master}: {round_trips} round trips");
    }
    for replica in cluster.replicas() {
        assert_eq!(
            backend("keyway_backend_connections", &replica, "replica"),
            0.0
        );
        assert_eq!(
            backend(
                "keyway_backend_request_duration_seconds_count",
                &replica,
                "replica"
            ),
            0.0
        );
    }
    let nodes = scrape.samples("keyway_backend_connections").len();
    assert_eq!(nodes, 6, "{}", scrape.text);
    // Round trips on masters: at least the 138 commands sent above
    // (STRLEN, INCR, LPUSH; CROSSSLOT never left keyway).
    let round_trips: f64 = scrape
        .samples("keyway_backend_request_duration_seconds_count")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(round_trips >= 138.0, "{round_trips} round trips in all");
    drop(cons);
    drop(con);
    // Closed connections are counted by reason: four left, one said QUIT.
    let mut quitter = TcpStream::connect(proxy.addr()).unwrap();
    quitter.write_all(b"QUIT\r\n").unwrap();
    let closed = |reason: &str| {
        let series = format!("keyway_clients_closed_total{{reason=\"{reason}\"}}");
        Scrape::take(&admin).value(&series).unwrap_or(0.0)
    };
    let counted = poll_until(Duration::from_secs(5), || {
        (closed("client_left") >= 4.0 && closed("quit_or_protocol_error") >= 1.0).then_some(())
    });
    assert!(
        counted.is_some(),
        "closed: client_left {}, quit {}",
        closed("client_left"),
        closed("quit_or_protocol_error")
    );

    if tools::required("promtool", "prometheus") {
        let (status, output) = tools::run_with_stdin(
            "promtool",
            &["check", "metrics"],
            scrape.text.as_bytes(),
            Duration::from_secs(30),
        );
        assert!(
            status.is_some_and(|s| s.success()) && output.trim().is_empty(),
            "promtool check metrics: {status:?}\n{output}\n--- the scrape ---\n{}",
            scrape.text
        );
    }
}

/// One change of what `/health/ready` answered, `at` after the start of
/// the watch (status 0: no answer).
#[derive(Clone, Debug)]
struct Seen {
    at: Duration,
    status: u16,
    body: String,
}

/// Polls `/health/ready` every 50 ms in a thread, recording each change,
/// until dropped.
struct ReadyWatch {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadyWatch {
    fn start(admin: &str, start: Instant) -> ReadyWatch {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (admin, theirs, stopped) = (admin.to_string(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let (status, body) = match http::request(&admin, "GET", "/health/ready") {
                    Ok(r) => (r.status, r.body),
                    Err(e) => (0, e.to_string()),
                };
                let mut seen = theirs.lock().unwrap();
                if seen
                    .last()
                    .map_or(true, |last| last.status != status || last.body != body)
                {
                    seen.push(Seen {
                        at: start.elapsed(),
                        status,
                        body,
                    });
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        ReadyWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// When the watch first saw `status` at or after `since`.
    fn first(&self, status: u16, since: Duration) -> Option<Duration> {
        self.seen()
            .iter()
            .find(|s| s.status == status && s.at >= since)
            .map(|s| s.at)
    }
}

impl Drop for ReadyWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// With no cluster keyway is live but not ready, and says why; in front
/// of a healthy cluster it is ready; a master killed turns it not ready
/// within seconds (its connections fail, refreshes turn fast, the master
/// does not answer), and the failover's end makes it ready again.
#[test]
fn readiness_follows_the_cluster() {
    // Nothing listens on port 1.
    let lonely = Proxy::spawn(&["127.0.0.1:1".to_string()], &[], Ready::Ping);
    let admin = lonely.admin_addr();
    let mut last = None;
    let unready = poll_until(Duration::from_secs(10), || {
        let r = http::get(&admin, "/health/ready");
        let done = r.status == 503 && r.body.contains("no cluster node answered");
        last = Some(r.clone());
        done.then_some(r)
    })
    .unwrap_or_else(|| panic!("no 503 naming the unreachable cluster; last {last:?}"));
    assert!(
        unready
            .body
            .starts_with("not ready: no cluster node answered: 127.0.0.1:1"),
        "{unready:?}"
    );
    let live = http::get(&admin, "/health/live");
    assert_eq!((live.status, live.body.as_str()), (200, "live\n"));
    assert_eq!(Scrape::take(&admin).expect("keyway_ready"), 0.0);
    drop(lonely);

    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let admin = proxy.admin_addr();
    let ready = http::get(&admin, "/health/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(Scrape::take(&admin).expect("keyway_ready"), 1.0);

    // Traffic to every master, so keyway's workers hold connections to
    // each (as they do in service).
    let mut con = proxy.conn();
    let masters = cluster.masters();
    for master in &masters {
        let key = key_for_slot(cluster.slots_of(master)[0]);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg("v")
            .query(&mut con)
            .unwrap();
    }
    let victim = masters[1].clone();
    let victim_key = key_for_slot(cluster.slots_of(&victim)[0]);

    let start = Instant::now();
    let watch = ReadyWatch::start(&admin, start);
    poll_until(Duration::from_secs(2), || {
        (!watch.seen().is_empty()).then_some(())
    })
    .expect("the watch answers");
    let killed = start.elapsed();
    cluster.kill_node(&victim);
    let off = poll_until(Duration::from_secs(15), || watch.first(503, killed));
    cluster.wait_for_failover(&victim);
    let failed_over = start.elapsed();
    // Ready again: the first 200 after the 503 (which may come before
    // the harness saw the cluster converge), then watched a second more.
    let on = off.and_then(|off| {
        poll_until(Duration::from_secs(30), || {
            watch
                .first(200, off)
                .filter(|_| watch.seen().last().is_some_and(|last| last.status == 200))
        })
    });
    std::thread::sleep(Duration::from_secs(1));
    let seen = watch.seen();
    drop(watch);
    eprintln!(
        "master {victim} killed at {killed:?}; the cluster's failover complete at {failed_over:?}; /health/ready:"
    );
    for s in &seen {
        eprintln!("  {:>10.3?} {} {:?}", s.at, s.status, s.body);
    }
    let off = off.unwrap_or_else(|| {
        panic!("/health/ready stayed 200 for 15 s after killing {victim}: {seen:?}")
    });
    let on = on.unwrap_or_else(|| {
        panic!("/health/ready not 200 again within 30 s of the failover: {seen:?}")
    });
    let after_failover = match on.checked_sub(failed_over) {
        Some(later) => format!("{later:?} after"),
        None => format!("{:?} before", failed_over - on),
    };
    eprintln!(
        "readiness: 200 -> 503 {:?} after the kill; 503 -> 200 {:?} after the kill, {after_failover} the harness saw the failover complete",
        off - killed,
        on - killed,
    );
    assert!(
        off - killed <= Duration::from_secs(10),
        "/health/ready took {:?} to turn 503",
        off - killed
    );
    // From the kill: 503s, each with a documented reason, then 200 for
    // good (no flapping, no request unanswered).
    for s in seen.iter().filter(|s| s.at > killed) {
        if s.at < on {
            assert_eq!(s.status, 503, "between the kill and the recovery: {s:?}");
            let reason = s
                .body
                .strip_prefix("not ready: ")
                .unwrap_or_else(|| panic!("{s:?}"));
            assert!(
                reason.contains(&format!("master {victim} does not answer keyway"))
                    || reason.contains(&format!(
                        "master {victim} is marked failed by the cluster (failover pending)"
                    ))
                    || reason.contains("of 16384 slots have no master"),
                "unexpected reason {reason:?}"
            );
        } else {
            assert_eq!(
                (s.status, s.body.as_str()),
                (200, "ready\n"),
                "after the recovery at {on:?}: {s:?}"
            );
        }
    }

    // Served again on the dead master's slots.
    let v: Option<String> = redis::cmd("GET").arg(&victim_key).query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    // The one failover was seen; the workers' connections to the dead
    // master failed (counted by kind) and tried again.
    let scrape = Scrape::take(&admin);
    assert_eq!(
        scrape.expect("keyway_failovers_total"),
        1.0,
        "{}",
        scrape.text
    );
    let failures: f64 = scrape
        .samples("keyway_backend_failures_total")
        .iter()
        .filter(|(labels, _)| labels.contains(&format!("node=\"{victim}\"")))
        .map(|(_, n)| n)
        .sum();
    assert!(failures >= 1.0, "{}", scrape.text);
    let reconnects = scrape.expect(&format!(
        "keyway_backend_reconnects_total{{node=\"{victim}\",role=\"unknown\"}}"
    ));
    assert!(reconnects >= 1.0, "{}", scrape.text);
}

/// SIGTERM: `/health/ready` answers 503 "shutting down" at once, while
/// for `proxy.drain_delay_s` clients old and new are still served; then
/// the listeners close, a pipeline in flight is answered whole, and
/// keyway exits 0.
#[test]
fn sigterm_turns_readiness_off_before_listeners_close() {
    const DELAY: Duration = Duration::from_secs(3);
    let cluster = Cluster::start();
    let mut proxy = Proxy::start_with_config(&cluster, "[proxy]\ndrain_delay_s = 3\n");
    let (admin, addr) = (proxy.admin_addr(), proxy.addr());
    let mut old = proxy.raw_client();
    assert_eq!(old.cmd(&["SET", "admin:drain:k", "v"]), "+OK\r\n");
    let ready = http::get(&admin, "/health/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    let start = Instant::now();
    // SAFETY: kill(2) on our own child process.
    unsafe {
        libc::kill(proxy.pid() as libc::pid_t, libc::SIGTERM);
    }
    let off = poll_until(Duration::from_secs(2), || {
        let r = http::get(&admin, "/health/ready");
        (r.status == 503).then(|| (start.elapsed(), r))
    });
    let (off, response) = off.expect("/health/ready still 200 2 s after SIGTERM");
    assert_eq!(response.body, "not ready: shutting down\n");
    assert_eq!(http::get(&admin, "/health/live").status, 200);

    // The client connected before is served during the delay: a whole
    // pipeline.
    let pipeline: Vec<u8> = (0..1000)
        .flat_map(|_| encode(&[b"INCR", b"admin:drain:count"]))
        .collect();
    old.send(&pipeline);
    for i in 1..=1000 {
        assert_eq!(old.reply_text(), format!(":{i}\r\n"));
    }

    // A new client's pipeline in flight when the listeners close: a BLPOP
    // that waits for a push made after they closed, then GETs.
    let list = "admin:drain:list";
    let node = cluster.node_of_slot(key_slot(list.as_bytes()));
    let mut in_flight = proxy.raw_client();
    let mut pipeline = encode(&[b"BLPOP", list.as_bytes(), b"0"]);
    for _ in 0..200 {
        pipeline.extend(encode(&[b"GET", b"admin:drain:k"]));
    }
    in_flight.send(&pipeline);
    poll_until(Duration::from_secs(5), || {
        (cluster.blocked_on(&node) > 0).then_some(())
    })
    .expect("the BLPOP reaches its node");

    // New clients are served until the delay ends, then refused.
    let mut last_served = None;
    let mut failed_at_close = Vec::new();
    let refused = poll_until(DELAY + Duration::from_secs(5), || {
        let at = start.elapsed();
        let Ok(stream) = TcpStream::connect(&addr) else {
            return Some(at);
        };
        stream.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        let sent = reader
            .get_mut()
            .write_all(&encode(&[b"GET", b"admin:drain:k"]));
        match sent.and_then(|()| read_reply(&mut reader)) {
            Ok(reply) if reply == b"$1\r\nv\r\n" => last_served = Some(at),
            other => failed_at_close.push((at, format!("{other:?}"))),
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    })
    .expect("keyway still accepts new clients 8 s after SIGTERM");
    eprintln!(
        "SIGTERM: /health/ready 503 after {off:?}; new clients served until {last_served:?}; \
         refused from {refused:?}; failed around the close: {failed_at_close:?}"
    );
    assert!(off < Duration::from_secs(1), "503 only after {off:?}");
    let last_served = last_served.expect("no new client served during the delay");
    assert!(
        last_served >= DELAY - Duration::from_millis(800),
        "new clients served only until {last_served:?} of a {DELAY:?} delay"
    );
    assert!(
        refused >= DELAY - Duration::from_millis(50) && refused <= DELAY + Duration::from_secs(3),
        "listeners closed {refused:?} after SIGTERM, drain_delay_s = 3"
    );
    for (at, what) in &failed_at_close {
        assert!(
            *at >= DELAY - Duration::from_millis(300),
            "a new client failed at {at:?}, before the delay ended: {what}"
        );
    }

    // The idle client connected before is closed now.
    old.expect_closed();
    // The pipeline in flight is answered whole, then closed.
    let () = redis::cmd("LPUSH")
        .arg(list)
        .arg("last")
        .query(&mut cluster.conn(&node))
        .unwrap();
    assert_eq!(
        in_flight.reply_text(),
        "*2\r\n$16\r\nadmin:drain:list\r\n$4\r\nlast\r\n"
    );
    for i in 0..200 {
        assert_eq!(in_flight.reply_text(), "$1\r\nv\r\n", "GET {i} of 200");
    }
    in_flight.expect_closed();

    let status = proxy.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "keyway should exit 0 after draining, got {status:?}\n{}",
        proxy.log_tail(20)
    );
}

/// A request head far past 8 KiB is refused (431) or cut at once; a
/// client that sends nothing, or a byte a second, is closed after the 5 s
/// deadline; 200 idle connections do not take keyway down nor slow its
/// clients, and once they leave `/metrics` answers again with no file
/// descriptor left behind; methods and paths get their status.
#[test]
fn admin_endpoint_bad_input_stays_bounded() {
    support::util::raise_nofile_limit();
    let cluster = Cluster::start();
    let mut proxy = Proxy::start(&cluster);
    let admin = proxy.admin_addr();
    let mut con = proxy.conn();
    let () = redis::cmd("SET")
        .arg("admin:bounded")
        .arg("v")
        .query(&mut con)
        .unwrap();

    // Methods, paths, HEAD.
    let post = http::request(&admin, "POST", "/metrics").unwrap();
    assert_eq!(post.status, 405, "{post:?}");
    let missing = http::get(&admin, "/nosuchpath");
    assert_eq!(missing.status, 404, "{missing:?}");
    let head = http::request(&admin, "HEAD", "/health/live").unwrap();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.body, "", "HEAD has no body");
    assert_eq!(head.header("Content-Length"), Some("5"));
    let index = http::get(&admin, "/");
    assert_eq!(index.status, 200);
    assert!(index.body.contains("/metrics"), "{index:?}");

    // Slow clients, in threads of their own: one silent, one sending a
    // byte a second. Each gives how long keyway kept it. Both connect
    // before the flood of idle connections below, which would otherwise
    // leave them no room.
    let (connected, slow_ones) = std::sync::mpsc::channel::<()>();
    let silent = {
        let (admin, connected) = (admin.clone(), connected.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut stream = http::connect(&admin).unwrap();
            let _ = connected.send(());
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            let mut rest = Vec::new();
            let result = stream.read_to_end(&mut rest);
            (start.elapsed(), format!("{result:?} {rest:?}"))
        })
    };
    let dribble = {
        let admin = admin.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut stream = http::connect(&admin).unwrap();
            let _ = connected.send(());
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let head = b"GET /metrics HTTP/1.1\r\nHost: slowly-sent-head\r\n";
            for byte in head.iter() {
                if let Err(e) = stream.write_all(&[*byte]) {
                    return (start.elapsed(), format!("write: {e}"));
                }
                let mut buf = [0u8; 64];
                match stream.read(&mut buf) {
                    Ok(0) => return (start.elapsed(), "closed".to_string()),
                    Ok(n) => return (start.elapsed(), format!("answered {:?}", &buf[..n])),
                    Err(e) if is_timeout(&e) => {}
                    Err(e) => return (start.elapsed(), format!("read: {e}")),
                }
            }
            (start.elapsed(), "never closed".to_string())
        })
    };

    for _ in 0..2 {
        slow_ones
            .recv_timeout(Duration::from_secs(10))
            .expect("the slow clients connect");
    }

    // 1 MiB of request line, never ending.
    let start = Instant::now();
    let mut huge = http::connect(&admin).unwrap();
    let mut writer = huge.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut line = b"GET /".to_vec();
        line.resize(1 << 20, b'a');
        writer.write_all(&line)
    });
    let mut answer = Vec::new();
    let read = huge.read_to_end(&mut answer);
    let took = start.elapsed();
    let written = feeder.join().unwrap();
    let outcome = if answer.is_empty() {
        assert!(
            matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset) || read.is_ok(),
            "1 MiB request line: {read:?}"
        );
        format!("connection closed without an answer ({read:?})")
    } else {
        let response = http::parse(&answer).expect("an HTTP response");
        assert_eq!(response.status, 431, "{response:?}");
        format!("431 ({read:?})")
    };
    eprintln!("1 MiB request line: {outcome} after {took:?}; the writer: {written:?}");
    assert!(
        took < Duration::from_secs(2),
        "the 1 MiB head took {took:?}"
    );
    assert_eq!(http::get(&admin, "/health/live").status, 200);

    // 200 idle connections at once.
    let before = Scrape::take(&admin).expect("process_open_fds");
    let idle: Vec<TcpStream> = (0..200)
        .map(|i| http::connect(&admin).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        let v: Option<String> = redis::cmd("GET")
            .arg("admin:bounded")
            .query(&mut con)
            .unwrap();
        slowest = slowest.max(start.elapsed());
        assert_eq!(v.as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(25));
    }
    // The endpoint itself is full: a request is answered or closed, at
    // once either way, never left hanging.
    let start = Instant::now();
    let probe = http::request(&admin, "GET", "/health/live");
    let probe_took = start.elapsed();
    assert!(
        proxy.is_running(),
        "keyway died under 200 admin connections"
    );
    eprintln!(
        "200 idle admin connections: slowest of 20 GETs through keyway {slowest:?}; \
         /health/live meanwhile {:?} in {probe_took:?}",
        probe.as_ref().map(|r| r.status)
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a GET through keyway took {slowest:?}"
    );
    assert!(
        probe_took < Duration::from_secs(1),
        "/health/live hung {probe_took:?} while the endpoint was full"
    );
    drop(idle);
    let again = poll_until(Duration::from_secs(3), || {
        http::request(&admin, "GET", "/metrics")
            .ok()
            .filter(|r| r.status == 200)
    });
    again.expect("/metrics does not answer after the idle connections left");
    // Every connection's descriptor is released (allow a few for
    // backend reconnections and this very scrape).
    let mut fds = f64::NAN;
    let released = poll_until(Duration::from_secs(5), || {
        fds = Scrape::take(&admin).expect("process_open_fds");
        (fds <= before + 5.0).then_some(())
    });
    assert!(
        released.is_some(),
        "keyway's open fds went from {before} to {fds} and stayed"
    );

    let (silent_took, silent_end) = silent.join().unwrap();
    let (dribble_took, dribble_end) = dribble.join().unwrap();
    eprintln!(
        "slow clients closed: silent after {silent_took:?} ({silent_end}), \
         a byte a second after {dribble_took:?} ({dribble_end})"
    );
    for (what, took, end) in [
        ("silent", silent_took, &silent_end),
        ("byte-a-second", dribble_took, &dribble_end),
    ] {
        assert!(
            took >= Duration::from_secs(4)
                && took <= Duration::from_secs(6) + Duration::from_millis(500),
            "the {what} client was closed after {took:?} ({end}); the deadline is 5 s"
        );
    }
    assert!(
        !dribble_end.starts_with("answered") && dribble_end != "never closed",
        "{dribble_end}"
    );
    assert!(
        silent_end.starts_with("Ok(0) []") || silent_end.contains("reset"),
        "{silent_end}"
    );
    assert!(proxy.is_running());
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// An admin address already taken stops keyway at start: exit code 2 and
/// a message naming `admin.listen`.
#[test]
fn a_taken_admin_port_stops_keyway_with_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, output) = run_keyway(&[
        "--listen",
        "127.0.0.1:0",
        "--cluster",
        "127.0.0.1:1",
        "--admin-listen",
        &addr,
    ]);
    assert_eq!(status.code(), Some(2), "{status:?}\n{output}");
    assert!(
        output.contains("admin.listen") && output.contains(&addr),
        "the message names neither admin.listen nor {addr}:\n{output}"
    );
    drop(taken);
}

/// SIGHUP reloads are counted by result, from 0 at start.
#[test]
fn sighup_reload_counts() {
    let cluster = Cluster::start();
    let good = "[proxy]\nshutdown_grace_s = 5\n";
    let proxy = Proxy::start_with_config(&cluster, good);
    let admin = proxy.admin_addr();
    let ok = "keyway_config_reloads_total{result=\"ok\"}";
    let error = "keyway_config_reloads_total{result=\"error\"}";
    let counts = || {
        let scrape = Scrape::take(&admin);
        (scrape.expect(ok), scrape.expect(error))
    };
    assert_eq!(counts(), (0.0, 0.0));
    proxy.reload(good);
    assert_eq!(counts(), (1.0, 0.0));
    proxy.reload("[proxy]\nno_such_key = 1\n");
    assert_eq!(counts(), (1.0, 1.0));
    proxy.reload("this is [not toml\n");
    assert_eq!(counts(), (1.0, 2.0));
    proxy.reload(good);
    assert_eq!(counts(), (2.0, 2.0));
}
