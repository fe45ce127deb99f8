//! Router benches: `router::route` with the built-in command table beside a
//! naive router that lowercases the command name into a `String`, looks it up
//! in a SipHash `HashMap<String, (arity, first key index)>` and hashes the
//! key with a bitwise CRC16 after copying its hash tag.
//!
//! Requests (parsed once, outside the timing loop): GET, SET, MGET of 10 keys
//! in one slot, EVAL with 2 keys, and an unknown command. The naive router
//! hashes only the first key (its table has no last key or step), so for MGET
//! and EVAL it does less work than keyway, which checks every key's slot.
//!
//!     cargo bench --bench route
//!     cargo bench --bench route -- --warm-up-time 1 --measurement-time 2

use std::collections::HashMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keyway::command::CommandTable;
use keyway::protocol::Request;
use keyway::router::{route, Rejection, Route};

#[path = "support/naive_slot.rs"]
mod naive_slot;
use naive_slot::naive_slot;

/// The baseline's decision.
#[derive(Debug, PartialEq, Eq)]
enum NaiveRoute {
    Slot(u16),
    AnyNode,
    WrongArity,
    Unknown,
}

/// The baseline: command name → (Redis arity, index of the first key or 0).
struct NaiveRouter {
    table: HashMap<String, (i32, usize)>,
}

impl NaiveRouter {
    /// Same commands as keyway's table; scripts hash the key after `numkeys`.
    fn new(table: &CommandTable) -> NaiveRouter {
        let mut map: HashMap<String, (i32, usize)> = table
            .iter()
            .map(|spec| {
                let first = spec.legacy_key_range().0.max(0) as usize;
                (spec.name().to_string(), (spec.arity(), first))
            })
            .collect();
        for script in [
            "eval",
            "evalsha",
            "eval_ro",
            "evalsha_ro",
            "fcall",
            "fcall_ro",
        ] {
            if let Some(entry) = map.get_mut(script) {
                entry.1 = 3;
            }
        }
        NaiveRouter { table: map }
    }

    fn route(&self, request: &Request) -> NaiveRoute {
        let name = String::from_utf8_lossy(request.arg(0)).to_lowercase();
        let Some(&(arity, first)) = self.table.get(&name) else {
            return NaiveRoute::Unknown;
        };
        let argc = request.argc() as i32;
        if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
            return NaiveRoute::WrongArity;
        }
        match request.get(first) {
            Some(key) if first > 0 => NaiveRoute::Slot(naive_slot(key)),
            _ => NaiveRoute::AnyNode,
        }
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    let value = [b'v'; 64];
    let mget_keys: Vec<String> = (b'a'..=b'j')
        .map(|c| format!("{{t}}{}", c as char))
        .collect();
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(mget_keys.iter().map(|k| k.as_bytes()));
    vec![
        ("get", Request::from_args(&[b"GET", b"user:1000:profile"])),
        (
            "set",
            Request::from_args(&[b"SET", b"user:1000:profile", &value]),
        ),
        ("mget_10_keys_one_slot", Request::from_args(&mget)),
        (
            "eval_2_keys",
            Request::from_args(&[b"EVAL", b"return 1", b"2", b"{t}a", b"{t}b", b"arg"]),
        ),
        (
            "unknown_command",
            Request::from_args(&[b"NOSUCHCMD", b"key"]),
        ),
    ]
}

/// Both routers agree on where each request goes.
fn check(table: &CommandTable, naive: &NaiveRouter, name: &str, request: &Request) {
    match (route(table, request), naive.route(request)) {
        (Route::Slot(s, _), NaiveRoute::Slot(n)) => assert_eq!(s.get(), n, "{name}"),
        (Route::Reject(Rejection::UnknownCommand), NaiveRoute::Unknown) => {}
        (k, n) => panic!("{name}: keyway {k:?}, naive {n:?}"),
    }
}

fn routing(c: &mut Criterion) {
    let table = CommandTable::builtin();
    let naive = NaiveRouter::new(&table);
    for (name, request) in requests() {
        check(&table, &naive, name, &request);
        let mut g = c.benchmark_group(format!("route/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("keyway", |b| b.iter(|| route(&table, black_box(&request))));
        g.bench_function("naive", |b| b.iter(|| naive.route(black_box(&request))));
        g.finish();
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
