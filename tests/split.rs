//! Multi-key commands across slots: MGET, MSET, DEL, UNLINK, EXISTS and
//! TOUCH are split per slot, sent in parallel and merged. Every check
//! compares keyway's reply with what the masters themselves hold, read from
//! each key's master directly; while slots migrate and while a master dies.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use support::resp::{encode, read_reply};
use support::{key_for_slot, key_slot, Background, Cluster, Proxy, RawClient, OP_TIMEOUT};

type Key = Vec<u8>;

/// The master of each slot, from one `CLUSTER SLOTS`.
struct Owners(Vec<support::slotmap::SlotRange>);

impl Owners {
    fn of(cluster: &Cluster) -> Owners {
        Owners(cluster.slot_map())
    }

    fn owner(&self, key: &[u8]) -> &str {
        let slot = key_slot(key);
        let range = self.0.iter().find(|r| r.start <= slot && slot <= r.end);
        &range
            .unwrap_or_else(|| panic!("slot {slot} not covered"))
            .master
    }
}

/// What the masters hold for `keys`, read from each key's master directly
/// (GETs pipelined per node).
fn on_nodes(cluster: &Cluster, keys: &[Key]) -> HashMap<Key, Option<Vec<u8>>> {
    let owners = Owners::of(cluster);
    let mut by_node: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
    for key in keys {
        by_node.entry(owners.owner(key)).or_default().push(key);
    }
    let mut held = HashMap::new();
    for (node, keys) in by_node {
        let mut con = cluster.conn(node);
        for chunk in keys.chunks(1000) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("GET").arg(&key[..]);
            }
            let values: Vec<Option<Vec<u8>>> = pipe
                .query(&mut con)
                .unwrap_or_else(|e| panic!("GET on {node}: {e}"));
            for (key, value) in chunk.iter().zip(values) {
                held.insert((*key).clone(), value);
            }
        }
    }
    held
}

/// Sends one command with binary arguments and returns the reply's bytes.
fn call(raw: &mut RawClient, args: &[&[u8]]) -> Vec<u8> {
    raw.send(&encode(args));
    raw.reply()
}

fn command<'a>(name: &'a str, keys: impl IntoIterator<Item = &'a Key>) -> Vec<&'a [u8]> {
    std::iter::once(name.as_bytes())
        .chain(keys.into_iter().map(|k| &k[..]))
        .collect()
}

/// RESP of an MGET reply holding `values`; nulls as `proto` writes them.
fn values_reply<'a>(
    values: impl ExactSizeIterator<Item = &'a Option<Vec<u8>>>,
    resp3: bool,
) -> Vec<u8> {
    let mut out = format!("*{}\r\n", values.len()).into_bytes();
    for value in values {
        match value {
            Some(v) => {
                out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
            None if resp3 => out.extend_from_slice(b"_\r\n"),
            None => out.extend_from_slice(b"$-1\r\n"),
        }
    }
    out
}

fn int_reply(n: usize) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

fn show(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.chars().take(300).collect()
}

/// Keys on every master and in many slots: plain ones, several sharing a
/// slot through a hash tag, and binary ones (NUL, CR, LF, 0xff, spaces).
fn mixed_keys() -> Vec<Key> {
    let mut keys: Vec<Key> = (0..300)
        .map(|i| format!("split:{i}").into_bytes())
        .collect();
    keys.extend((0..60).map(|i| format!("{{tag{}}}:{i}", i % 6).into_bytes()));
    keys.extend((0..40u8).map(|i| vec![0, b'\r', b'\n', 0xff, i, b' ']));
    keys.extend((0..10u8).map(|i| vec![b'{', 0xfe, b'}', i]));
    keys
}

#[test]
fn split_commands_agree_with_the_nodes() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let keys = mixed_keys();
    let owners = Owners::of(&cluster);
    let masters: BTreeSet<&str> = keys.iter().map(|k| owners.owner(k)).collect();
    let slots: BTreeSet<u16> = keys.iter().map(|k| key_slot(k)).collect();
    assert_eq!(masters.len(), 3, "keys on every master");
    assert!(slots.len() > 250, "keys in many slots: {}", slots.len());
    let values: Vec<Vec<u8>> = (0..keys.len())
        .map(|i| match i % 4 {
            0 => Vec::new(),
            1 => format!("v{i}\r\n\0{}", "x".repeat(i)).into_bytes(),
            _ => format!("value-{i}").into_bytes(),
        })
        .collect();

    let mut raw = proxy.raw_client();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in keys.iter().zip(&values) {
        mset.extend([&k[..], &v[..]]);
    }
    assert_eq!(show(&call(&mut raw, &mset)), "+OK\r\n");
    let held = on_nodes(&cluster, &keys);
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(held[k].as_ref(), Some(v), "{} on its master", show(k));
    }

    // Reads in an order of their own, with missing keys and duplicates.
    let mut query: Vec<Key> = Vec::new();
    for (i, k) in keys.iter().enumerate().rev() {
        query.push(k.clone());
        if i % 7 == 0 {
            query.push(format!("split:missing:{i}").into_bytes());
        }
        if i % 11 == 0 {
            query.push(keys[i / 2].clone());
        }
    }
    let held = on_nodes(&cluster, &query);
    let existing = query.iter().filter(|k| held[*k].is_some()).count();
    assert!(existing < query.len() && existing > keys.len());
    let want = values_reply(query.iter().map(|k| &held[k]), false);
    let got = call(&mut raw, &command("MGET", &query));
    assert!(got == want, "MGET: got {} want {}", show(&got), show(&want));
    assert_eq!(
        call(&mut raw, &command("EXISTS", &query)),
        int_reply(existing)
    );
    assert_eq!(
        call(&mut raw, &command("TOUCH", &query)),
        int_reply(existing)
    );

    // A RESP3 client gets the same, with RESP3 nulls.
    let mut raw3 = proxy.raw_client();
    assert!(raw3.cmd(&["HELLO", "3"]).starts_with("%7"));
    let want3 = values_reply(query.iter().map(|k| &held[k]), true);
    let got3 = call(&mut raw3, &command("MGET", &query));
    assert!(
        got3 == want3,
        "RESP3 MGET: got {} want {}",
        show(&got3),
        show(&want3)
    );
    assert_eq!(
        call(&mut raw3, &command("EXISTS", &query)),
        int_reply(existing)
    );
    assert_eq!(
        call(
            &mut raw3,
            &[b"MSET", &keys[0], b"again", &keys[1], b"again"]
        ),
        b"+OK\r\n"
    );

    // DEL counts each key once, however often it is named; UNLINK the rest.
    let (first, second) = keys.split_at(keys.len() / 2);
    let mut del: Vec<Key> = first.to_vec();
    del.extend(first.iter().step_by(3).cloned());
    del.push(b"split:missing:del".to_vec());
    assert_eq!(
        call(&mut raw, &command("DEL", &del)),
        int_reply(first.len())
    );
    assert_eq!(
        call(&mut raw3, &command("UNLINK", second)),
        int_reply(second.len())
    );
    let held = on_nodes(&cluster, &keys);
    assert!(held.values().all(Option::is_none), "every key deleted");
    let nils = call(&mut raw, &command("MGET", &keys));
    assert_eq!(nils, values_reply(keys.iter().map(|_| &None), false));
    assert_eq!(call(&mut raw, &command("EXISTS", &keys)), int_reply(0));

    // Shapes Redis refuses are refused the same way, and nothing is written.
    assert_eq!(
        raw.cmd(&["MSET", "split:a", "1", "split:b"]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
    assert_eq!(
        raw.cmd(&["MGET"]),
        "-ERR wrong number of arguments for 'mget' command\r\n"
    );
    assert_eq!(raw.cmd(&["EXISTS", "split:a", "split:b"]), ":0\r\n");
    assert_eq!(raw.cmd(&["PING"]), "+PONG\r\n");
}

/// Writes `requests` in one go on a raw socket, then reads one reply per
/// request: a pipeline as a client sends it.
fn pipeline(proxy: &Proxy, requests: &[Vec<&[u8]>]) -> Vec<Vec<u8>> {
    let stream = proxy.raw_connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let bytes: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
    // Write from another thread: replies may come before the last request
    // is written, and neither side may block the other.
    let send = std::thread::spawn(move || writer.write_all(&bytes));
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let replies = requests
        .iter()
        .map(|_| read_reply(&mut reader).expect("reply"))
        .collect();
    send.join().unwrap().expect("write the pipeline");
    replies
}

#[test]
fn ten_thousand_keys_over_every_slot_range_in_a_pipeline() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    const N: usize = 10_000;
    // One key per slot, spread over the whole slot range.
    let keys: Vec<Key> = (0..N)
        .map(|i| format!("{{{}}}:big:{i}", key_for_slot((i * 16384 / N) as u16)).into_bytes())
        .collect();
    let values: Vec<Key> = (0..N)
        .map(|i| format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes())
        .collect();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in keys.iter().zip(&values) {
        mset.extend([&k[..], &v[..]]);
    }
    let reversed: Vec<Key> = keys.iter().rev().cloned().collect();
    let odd: Vec<Key> = keys.iter().skip(1).step_by(2).cloned().collect();
    let mut exists = keys.clone();
    exists.extend(keys.iter().take(100).cloned());
    let requests: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"big:before", b"1"],
        mset,
        vec![b"GET", b"big:before"],
        command("MGET", &keys),
        vec![b"INCR", b"big:counter"],
        command("MGET", &reversed),
        command("EXISTS", &exists),
        command("DEL", &odd),
        command("MGET", &keys),
        vec![b"INCR", b"big:counter"],
        vec![b"PING"],
    ];
    let replies = pipeline(&proxy, &requests);

    let all = |order: &[Key], deleted: &BTreeSet<&[u8]>| {
        let index: HashMap<&[u8], &Key> = keys.iter().map(|k| &k[..]).zip(&values).collect();
        let vals: Vec<Option<Vec<u8>>> = order
            .iter()
            .map(|k| (!deleted.contains(&k[..])).then(|| index[&k[..]].clone()))
            .collect();
        values_reply(vals.iter(), false)
    };
    let none = BTreeSet::new();
    let odd_set: BTreeSet<&[u8]> = odd.iter().map(|k| &k[..]).collect();
    let want: Vec<Vec<u8>> = vec![
        b"+OK\r\n".to_vec(),
        b"+OK\r\n".to_vec(),
        b"$1\r\n1\r\n".to_vec(),
        all(&keys, &none),
        b":1\r\n".to_vec(),
        all(&reversed, &none),
        int_reply(N + 100),
        int_reply(N / 2),
        all(&keys, &odd_set),
        b":2\r\n".to_vec(),
        b"+PONG\r\n".to_vec(),
    ];
    for (i, (got, want)) in replies.iter().zip(&want).enumerate() {
        assert!(
            got == want,
            "reply {i} of the pipeline: got {} ({} bytes), want {} ({} bytes)",
            show(got),
            got.len(),
            show(want),
            want.len()
        );
    }
    let held = on_nodes(&cluster, &keys);
    for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
        let want = (i % 2 == 0).then_some(v);
        assert_eq!(held[k].as_ref(), want, "{} on its master", show(k));
    }
}

/// What the load saw: its model of the keys, and every error.
struct LoadReport {
    model: HashMap<String, Option<String>>,
    errors: Vec<String>,
    rounds: u64,
}

/// A client thread that keeps sending cross-slot MSET, MGET, DEL and EXISTS
/// over `keys` through keyway until stopped, checking each reply against
/// its model of the keys (it is their only writer).
type Load = Background<LoadReport>;

impl Load {
    fn start(addr: String, keys: Vec<String>) -> Load {
        Background::spawn(move |rounds| {
            let mut model: HashMap<String, Option<String>> = HashMap::new();
            let mut errors = Vec::new();
            let mut con = support::cluster::connect(&addr, OP_TIMEOUT).unwrap();
            let mut round = 0u64;
            while rounds.go_on() && errors.len() < 20 {
                let r = round as usize;
                // 30 keys in a row (so the three keys of a slot often come
                // together), from a start that moves, the first one twice.
                let mut window: Vec<&String> =
                    (0..30).map(|j| &keys[(r * 17 + j) % keys.len()]).collect();
                window.push(window[0]);
                if let Err(e) = Self::round(&mut con, round, &window, &mut model) {
                    errors.push(format!("round {round}: {e}"));
                    con = support::cluster::connect(&addr, OP_TIMEOUT).unwrap();
                }
                round += 1;
                rounds.done_one();
            }
            LoadReport {
                model,
                errors,
                rounds: round,
            }
        })
    }

    fn round(
        con: &mut redis::Connection,
        round: u64,
        window: &[&String],
        model: &mut HashMap<String, Option<String>>,
    ) -> Result<(), String> {
        let mut mset = redis::cmd("MSET");
        for (j, k) in window.iter().enumerate() {
            mset.arg(k.as_str()).arg(format!("{round}:{j}"));
        }
        let () = mset.query(con).map_err(|e| format!("MSET: {e}"))?;
        for (j, k) in window.iter().enumerate() {
            model.insert(k.to_string(), Some(format!("{round}:{j}")));
        }
        let expect = |model: &HashMap<String, Option<String>>| -> Vec<Option<String>> {
            window
                .iter()
                .map(|k| model.get(*k).cloned().flatten())
                .collect()
        };
        let got: Vec<Option<String>> = redis::cmd("MGET")
            .arg(window)
            .query(con)
            .map_err(|e| format!("MGET: {e}"))?;
        if got != expect(model) {
            return Err(format!(
                "MGET {window:?} = {got:?}, want {:?}",
                expect(model)
            ));
        }
        match round % 3 {
            0 => {
                let del = &window[..10];
                let distinct: BTreeSet<&String> = del.iter().copied().collect();
                let want = distinct
                    .iter()
                    .filter(|k| model.get(**k).is_some_and(Option::is_some))
                    .count();
                let n: usize = redis::cmd("DEL")
                    .arg(del)
                    .query(con)
                    .map_err(|e| format!("DEL: {e}"))?;
                for k in distinct {
                    model.insert(k.clone(), None);
                }
                if n != want {
                    return Err(format!("DEL {del:?} = {n}, want {want}"));
                }
                let got: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(window)
                    .query(con)
                    .map_err(|e| format!("MGET after DEL: {e}"))?;
                if got != expect(model) {
                    return Err(format!(
                        "MGET after DEL = {got:?}, want {:?}",
                        expect(model)
                    ));
                }
            }
            1 => {
                let want = window
                    .iter()
                    .filter(|k| model.get(**k).is_some_and(Option::is_some))
                    .count();
                let n: usize = redis::cmd("EXISTS")
                    .arg(window)
                    .query(con)
                    .map_err(|e| format!("EXISTS: {e}"))?;
                if n != want {
                    return Err(format!("EXISTS = {n}, want {want}"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[test]
fn resharding_under_split_load_is_invisible_to_clients() {
    let cluster = Cluster::start();
    let proxy = Proxy::start(&cluster);
    let from = cluster.node_of_slot(0);
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| *m != from)
        .expect("another master");
    // Slot 0 moves step by step while the load goes on: one key there, so
    // its part sees ASK and then MOVED. Slot 1 holds three keys, moved one
    // at a time: while some have moved and some not, or while the importing
    // node lacks one, a part with all three gets TRYAGAIN (Redis's rule for
    // multi-key requests), so those states last well under keyway's TRYAGAIN
    // budget. Then redis-cli moves the source's lowest 100 slots (2..=101),
    // three keys in each. The rest of the keys stay where they are, on
    // every master.
    let mut keys = vec![format!("{{{}}}:split:0", key_for_slot(0))];
    for slot in (1..=11).chain(60..=70) {
        keys.extend((0..3).map(|j| format!("{{{}}}:split:{j}", key_for_slot(slot))));
    }
    keys.extend((0..40).map(|i| format!("split:still:{i}")));
    let load = Load::start(proxy.addr(), keys.clone());
    load.wait_progress(50, &proxy);

    let m = cluster.begin_migration(0, &from, &to);
    load.wait_progress(30, &proxy);
    while m.move_keys(1) > 0 {
        load.wait_progress(10, &proxy);
    }
    load.wait_progress(30, &proxy);
    m.finish();
    load.wait_progress(30, &proxy);
    assert_eq!(cluster.node_of_slot(0), to);

    let m = cluster.begin_migration(1, &from, &to);
    while m.move_keys(1) > 0 {
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(150));
    m.finish();
    load.wait_progress(30, &proxy);
    assert_eq!(cluster.node_of_slot(1), to);
    cluster.reshard(100, &from, &to);
    load.wait_progress(30, &proxy);
    assert_eq!(
        cluster.node_of_slot(70),
        to,
        "reshard should have moved slot 70"
    );

    let report = load.stop();
    assert!(
        report.errors.is_empty(),
        "{} client-visible errors in {} rounds during resharding:\n{}\n--- keyway log ---\n{}",
        report.errors.len(),
        report.rounds,
        report.errors.join("\n"),
        proxy.log_tail(20)
    );
    // Every acknowledged write (and delete) is what the masters hold now.
    let all: Vec<Key> = keys.iter().map(|k| k.clone().into_bytes()).collect();
    let held = on_nodes(&cluster, &all);
    for key in &keys {
        let want = report.model.get(key).cloned().flatten();
        let got = held[key.as_bytes()]
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(got, want, "{key} after resharding");
    }
}

#[test]
fn a_dead_masters_parts_are_held_until_its_replica_takes_over() {
    let cluster = Cluster::start();
    // Held for longer than the test cluster needs to fail over (its
    // cluster-node-timeout is 2 s), and a keyway that gives up after 300 ms.
    let proxy = Proxy::start_with_config(&cluster, "[cluster]\nfailover_hold_ms = 15000\n");
    let impatient = Proxy::start_with_config(&cluster, "[cluster]\nfailover_hold_ms = 300\n");
    let keys: Vec<Key> = (0..60)
        .map(|i| format!("split:fo:{i}").into_bytes())
        .collect();
    let values: Vec<Key> = (0..60).map(|i| format!("v{i}").into_bytes()).collect();
    let owners = Owners::of(&cluster);
    let victim = owners.owner(&keys[0]).to_string();
    assert_eq!(
        keys.iter()
            .map(|k| owners.owner(k))
            .collect::<BTreeSet<_>>()
            .len(),
        3
    );
    let mut raw = proxy.raw_client();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for (k, v) in keys.iter().zip(&values) {
        mset.extend([&k[..], &v[..]]);
    }
    assert_eq!(show(&call(&mut raw, &mset)), "+OK\r\n");
    let all_values = values_reply(
        values
            .iter()
            .map(|v| Some(v.clone()))
            .collect::<Vec<_>>()
            .iter(),
        false,
    );
    assert_eq!(call(&mut raw, &command("MGET", &keys)), all_values);
    // The victim's replica has every write before the victim dies.
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query(&mut cluster.conn(&victim))
        .unwrap();
    assert_eq!(synced, 1, "replica of {victim} in sync");

    cluster.kill_node(&victim);
    // Past cluster.failover_hold_ms (300 ms: the cluster needs seconds to
    // fail over), the error names the slot of the held part.
    let reply = show(&call(&mut impatient.raw_client(), &command("MGET", &keys)));
    assert!(
        reply.starts_with("-CLUSTERDOWN keyway held the request for ")
            && reply.contains(" ms and no master for slot "),
        "MGET held past 300 ms: {reply}"
    );
    // The parts on the dead master are held, not failed, until the
    // replica takes over: the client sees the values (the raw client
    // waits up to 20 s), not an error.
    let mut raw = support::resp::RawClient::connect(&proxy.addr(), Duration::from_secs(20));
    let started = Instant::now();
    let reply = call(&mut raw, &command("MGET", &keys));
    assert_eq!(
        show(&reply),
        show(&all_values),
        "MGET across a failover, after {:?}\n--- keyway log ---\n{}",
        started.elapsed(),
        proxy.log_tail(30)
    );
    eprintln!(
        "split MGET held {:?} across the failover",
        started.elapsed()
    );
    cluster.wait_for_failover(&victim);
    assert_eq!(
        call(&mut raw, &command("EXISTS", &keys)),
        int_reply(keys.len())
    );
    assert_eq!(
        call(&mut raw, &command("DEL", &keys)),
        int_reply(keys.len())
    );
}
