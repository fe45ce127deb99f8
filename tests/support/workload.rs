//! Client load for fault tests: threads that each run one request (or a
//! few) in a loop on their own connection, with no retries, recording every
//! error and the longest time between two successes; and the writers and
//! readers the fault tests share: writers `SET` a new key and `INCR` their
//! counter per round (every acknowledged increment remembered), readers
//! `GET` the writers' keys; and timed clients whose every request's
//! latency is kept, for percentiles before and during a fault.

use std::time::{Duration, Instant};

use super::cluster::connect;
use super::{key_for_slot, Background, Proxy};

/// The clients' socket timeout: longer than the cluster needs to fail over.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client thread saw.
#[derive(Default)]
pub struct Seen {
    /// Failed rounds: when, and the error.
    pub errors: Vec<(Instant, String)>,
    /// Longest time between two successful rounds.
    pub longest_gap: Duration,
    /// Rounds that succeeded (for a writer: `INCR`s acknowledged).
    pub acked: u64,
    /// Rounds run.
    pub ops: u64,
    /// When each successful round started and how long it took (kept only
    /// by [`timed_client`]s).
    pub latencies: Vec<(Instant, Duration)>,
}

/// The keys' hash tags: 32 slots spread over every master.
pub fn tags() -> Vec<String> {
    (0..32).map(|i| key_for_slot(i * 512 + 7)).collect()
}

/// A client that runs `round` (given its round number) in a loop on one
/// connection to `addr`, reconnecting after an error, until stopped.
pub fn client(
    addr: String,
    round: impl Fn(&mut redis::Connection, u64) -> redis::RedisResult<()> + Send + 'static,
) -> Background<Seen> {
    run(move || connect(&addr, CLIENT_TIMEOUT), false, round)
}

/// Like [`client`], also keeping each successful round's start and
/// duration in [`Seen::latencies`].
pub fn timed_client(
    addr: String,
    round: impl Fn(&mut redis::Connection, u64) -> redis::RedisResult<()> + Send + 'static,
) -> Background<Seen> {
    run(move || connect(&addr, CLIENT_TIMEOUT), true, round)
}

/// Runs `round` in a loop on a connection from `connect`, a new one after
/// an error, until stopped; `timed`: keeping each round's latency.
fn run<C: 'static>(
    connect: impl Fn() -> redis::RedisResult<C> + Send + 'static,
    timed: bool,
    round: impl Fn(&mut C, u64) -> redis::RedisResult<()> + Send + 'static,
) -> Background<Seen> {
    Background::spawn(move |rounds| {
        let mut seen = Seen::default();
        let mut con = None;
        let mut last_ok = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(300);
        while rounds.go_on() && Instant::now() < deadline {
            let c = match &mut con {
                Some(c) => c,
                None => match connect() {
                    Ok(c) => con.insert(c),
                    Err(e) => {
                        seen.errors.push((Instant::now(), format!("connect: {e}")));
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            let started = Instant::now();
            match round(c, seen.ops) {
                Ok(()) => {
                    if timed {
                        seen.latencies.push((started, started.elapsed()));
                    }
                    seen.longest_gap = seen.longest_gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                    seen.acked += 1;
                }
                Err(e) => {
                    seen.errors.push((Instant::now(), e.to_string()));
                    con = None;
                }
            }
            seen.ops += 1;
            rounds.done_one();
        }
        seen
    })
}

/// One writer's round on `c`: `SET {tag}:w{w}:{i}`, then `INCR
/// {tag}:count:{w}`, the tag chosen by `i`.
fn write_round(
    c: &mut impl redis::ConnectionLike,
    tags: &[String],
    w: usize,
    i: u64,
) -> redis::RedisResult<()> {
    let tag = &tags[(i as usize + w) % tags.len()];
    redis::cmd("SET")
        .arg(format!("{{{tag}}}:w{w}:{i}"))
        .arg(i)
        .query::<()>(c)?;
    redis::cmd("INCR")
        .arg(format!("{{{tag}}}:count:{w}"))
        .query::<i64>(c)
        .map(drop)
}

/// Writer `w` straight against the cluster (`seeds`), with the `redis`
/// crate's cluster-aware client (its own slot map, `MOVED`/`ASK`, retries
/// with backoff), doing what [`writer`] does: the reference keyway's lost
/// writes are compared with.
pub fn cluster_writer(seeds: Vec<String>, w: usize, tags: Vec<String>) -> Background<Seen> {
    let connect = move || {
        let nodes: Vec<String> = seeds.iter().map(|s| format!("redis://{s}")).collect();
        redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(CLIENT_TIMEOUT)
            .response_timeout(CLIENT_TIMEOUT)
            .build()?
            .get_connection()
    };
    run(connect, false, move |c, i| write_round(c, &tags, w, i))
}

/// Writer `w`: per round, `SET {tag}:w{w}:{round}` and `INCR {tag}:count:{w}`.
pub fn writer(addr: String, w: usize, tags: Vec<String>) -> Background<Seen> {
    client(addr, move |c, i| write_round(c, &tags, w, i))
}

/// Reader `r`: per round, `GET` one of writer `r`'s keys.
pub fn reader(addr: String, r: usize, tags: Vec<String>) -> Background<Seen> {
    client(addr, move |c, i| {
        let tag = &tags[(i as usize * 7 + r) % tags.len()];
        redis::cmd("GET")
            .arg(format!("{{{tag}}}:w{r}:{}", i / 2))
            .query::<Option<String>>(c)
            .map(drop)
    })
}

/// Client `p` of only the keys tagged `tags` (chosen so that they avoid
/// a shard): per round one request, `SET` (even rounds) or `GET` (odd) of
/// `{tag}:probe:{p}`, each timed.
pub fn prober(addr: String, p: usize, tags: Vec<String>) -> Background<Seen> {
    timed_client(addr, move |c, i| {
        let key = format!("{{{}}}:probe:{p}", tags[(i as usize / 2 + p) % tags.len()]);
        if i % 2 == 0 {
            redis::cmd("SET").arg(key).arg(i).query::<()>(c)
        } else {
            redis::cmd("GET")
                .arg(key)
                .query::<Option<String>>(c)
                .map(drop)
        }
    })
}

/// The 99th percentile of the latencies in `seen` of rounds started in
/// `from..to`, and how many there were; `None` without any.
pub fn p99(seen: &[Seen], from: Instant, to: Instant) -> Option<(Duration, usize)> {
    let mut all: Vec<Duration> = seen
        .iter()
        .flat_map(|s| &s.latencies)
        .filter(|(at, _)| from <= *at && *at < to)
        .map(|(_, took)| *took)
        .collect();
    all.sort_unstable();
    let at = (all.len() * 99).div_ceil(100).checked_sub(1)?;
    Some((all[at], all.len()))
}

/// Writer `w`'s increments the cluster kept, summed over `tags`, read
/// through `con`.
pub fn kept_increments(con: &mut redis::Connection, w: usize, tags: &[String]) -> u64 {
    tags.iter()
        .map(|tag| {
            redis::cmd("GET")
                .arg(format!("{{{tag}}}:count:{w}"))
                .query::<Option<u64>>(con)
                .expect("GET through keyway")
                .unwrap_or(0)
        })
        .sum()
}

/// How many acknowledged increments the cluster lost, over `writers`.
pub fn lost_increments(con: &mut redis::Connection, writers: &[Seen], tags: &[String]) -> u64 {
    lost_increments_since(con, writers, tags, &[])
}

/// Like [`lost_increments`], for writers that started on counters that
/// already held `before[w]` increments (missing: 0).
pub fn lost_increments_since(
    con: &mut redis::Connection,
    writers: &[Seen],
    tags: &[String],
    before: &[u64],
) -> u64 {
    writers
        .iter()
        .enumerate()
        .map(|(w, seen)| {
            let expected = before.get(w).copied().unwrap_or(0) + seen.acked;
            expected.saturating_sub(kept_increments(con, w, tags))
        })
        .sum()
}

/// The first few errors of `seen`, for a failure message.
fn first_errors(seen: &Seen) -> &[(Instant, String)] {
    &seen.errors[..3.min(seen.errors.len())]
}

/// Fails, with `proxy`'s log, unless each client of `seen` (named `kind`)
/// saw at most one error, after `since`, saying its request may or may
/// not have run: the one it had in flight when a node failed.
pub fn assert_at_most_one_unknown_outcome(
    kind: &str,
    seen: &[Seen],
    since: Instant,
    proxy: &Proxy,
) {
    for (i, seen) in seen.iter().enumerate() {
        assert!(
            seen.errors.len() <= 1,
            "{kind} {i} saw {} errors (at most its one request in flight at the fault may fail), the first: {:?}\n--- keyway log ---\n{}",
            seen.errors.len(),
            first_errors(seen),
            proxy.log_tail(30)
        );
        for (at, error) in &seen.errors {
            assert!(
                error.contains("may or may not have run") && *at >= since,
                "{kind} {i}: {error}"
            );
        }
    }
}

/// Fails, with `proxy`'s log, unless no client of `seen` (named `kind`)
/// saw an error.
pub fn assert_no_errors(kind: &str, seen: &[Seen], proxy: &Proxy) {
    for (i, seen) in seen.iter().enumerate() {
        assert!(
            seen.errors.is_empty(),
            "{kind} {i} saw {} errors, the first: {:?}\n--- keyway log ---\n{}",
            seen.errors.len(),
            first_errors(seen),
            proxy.log_tail(30)
        );
    }
}

/// `n` clients of `client`, connected at once (multiplexed, async), each
/// doing `rounds` SET-then-GET of its own keys (`{prefix}c{c}:k{i}`),
/// checked; returns the connections, all still open. Panics naming up to
/// 10 clients that failed.
pub async fn concurrent_clients(
    client: &redis::Client,
    n: u32,
    rounds: u32,
    prefix: &str,
    timeout: std::time::Duration,
) -> Vec<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    let mut tasks = Vec::new();
    for c in 0..n {
        let client = client.clone();
        let config = config.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut con = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| format!("client {c}: connect: {e}"))?;
            for i in 0..rounds {
                let k = format!("{prefix}c{c}:k{i}");
                let v = format!("{c}/{i}");
                let () = redis::cmd("SET")
                    .arg(&k)
                    .arg(&v)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| format!("client {c}: SET {k}: {e}"))?;
                let got: String = redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| format!("client {c}: GET {k}: {e}"))?;
                if got != v {
                    return Err(format!("client {c}: GET {k} = {got:?}, want {v:?}"));
                }
            }
            Ok::<_, String>(con)
        }));
    }
    let mut errors = Vec::new();
    let mut open = Vec::new();
    for t in tasks {
        match t.await.expect("client task panicked") {
            Ok(con) => open.push(con),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {n} clients failed, e.g.:\n{}",
        errors.len(),
        errors[..errors.len().min(10)].join("\n")
    );
    open
}
