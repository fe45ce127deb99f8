//! Key extraction against the embedded Redis 7.0 table.

use std::sync::OnceLock;

use super::super::{CommandArgs, CommandTable, KeyError, KeySpecFlags};

fn table() -> &'static CommandTable {
    static TABLE: OnceLock<CommandTable> = OnceLock::new();
    TABLE.get_or_init(CommandTable::builtin)
}

/// Key positions of a request (split on spaces).
fn keys(request: &str) -> Result<Vec<usize>, KeyError> {
    let args: Vec<&str> = request.split(' ').collect();
    let spec = table().lookup(&args[..]).expect("known command");
    let mut out = Vec::new();
    spec.for_each_key(&args[..], |i| out.push(i))?;
    Ok(out)
}

/// Key names of a request, to make the expectations readable.
fn key_names(request: &str) -> Vec<&str> {
    let args: Vec<&str> = request.split(' ').collect();
    keys(request)
        .unwrap()
        .into_iter()
        .map(|i| args[i])
        .collect()
}

#[test]
fn single_and_multi_key() {
    assert_eq!(keys("GET k"), Ok(vec![1]));
    assert_eq!(keys("SET k v EX 10"), Ok(vec![1]));
    assert_eq!(key_names("MSET a 1 b 2 c 3"), ["a", "b", "c"]);
    assert_eq!(key_names("MGET a b c"), ["a", "b", "c"]);
    assert_eq!(key_names("DEL a b"), ["a", "b"]);
    assert_eq!(key_names("BITOP AND dest s1 s2"), ["dest", "s1", "s2"]);
    assert_eq!(key_names("LMOVE src dst LEFT RIGHT"), ["src", "dst"]);
    // An optional key list may be empty, as redis-server accepts it.
    assert_eq!(key_names("PFMERGE dest"), ["dest"]);
    assert_eq!(key_names("PFMERGE dest s1 s2"), ["dest", "s1", "s2"]);
}

#[test]
fn numkeys() {
    assert_eq!(key_names("EVAL return 2 k1 k2 a1"), ["k1", "k2"]);
    assert_eq!(key_names("EVALSHA abc 1 k1 a1"), ["k1"]);
    assert_eq!(key_names("FCALL f 2 k1 k2"), ["k1", "k2"]);
    assert_eq!(key_names("FCALL_RO f 1 k1"), ["k1"]);
    // Zero keys: legitimately keyless (the caller picks any master).
    assert_eq!(keys("EVAL return 0"), Ok(vec![]));
    assert_eq!(keys("EVAL return 0 a1 a2"), Ok(vec![]));
    assert_eq!(keys("EVAL return 3 k1 k2"), Err(KeyError::NumKeysTooLarge));
    assert_eq!(keys("EVAL return -1 k1"), Err(KeyError::NumKeysNegative));
    assert_eq!(keys("EVAL return x k1"), Err(KeyError::NumKeysNotInteger));
    assert_eq!(keys("EVAL return 01 k1"), Err(KeyError::NumKeysNotInteger));
    assert_eq!(keys("EVAL return +1 k1"), Err(KeyError::NumKeysNotInteger));
    assert_eq!(
        keys("EVAL return 99999999999999999999 k1"),
        Err(KeyError::NumKeysNotInteger)
    );
    assert_eq!(
        keys("EVAL return 9223372036854775807 k1"),
        Err(KeyError::NumKeysTooLarge)
    );
    assert_eq!(
        KeyError::NumKeysTooLarge.to_string(),
        "ERR Number of keys can't be greater than number of args"
    );
    // Destination then numkeys sources.
    assert_eq!(
        key_names("ZUNIONSTORE dst 2 a b WEIGHTS 1 2"),
        ["dst", "a", "b"]
    );
    assert_eq!(key_names("ZINTERCARD 2 a b LIMIT 1"), ["a", "b"]);
    assert_eq!(key_names("LMPOP 2 a b LEFT COUNT 2"), ["a", "b"]);
    assert_eq!(key_names("ZMPOP 1 z MIN"), ["z"]);
    assert_eq!(key_names("BLMPOP 0 2 a b RIGHT"), ["a", "b"]);
    // Like Redis, `LEFT` counts as the third key; the node then refuses it.
    assert_eq!(key_names("LMPOP 3 a b LEFT"), ["a", "b", "LEFT"]);
    assert_eq!(keys("LMPOP 5 a b LEFT"), Err(KeyError::NumKeysTooLarge));
}

#[test]
fn keyword_search() {
    assert_eq!(key_names("XREAD COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
    assert_eq!(key_names("xread block 0 streams s1 $"), ["s1"]);
    assert_eq!(
        key_names("XREADGROUP GROUP g c COUNT 1 STREAMS s1 s2 > >"),
        ["s1", "s2"]
    );
    // A stream named like the keyword: Redis takes the first STREAMS.
    assert_eq!(key_names("XREAD STREAMS streams 0"), ["streams"]);
    // Unbalanced: as Redis, integer division; the node reports the error.
    assert_eq!(key_names("XREAD STREAMS s1 s2 0"), ["s1"]);
    // No room for a single key/ID pair: Redis refuses the spec.
    assert_eq!(keys("XREAD STREAMS s1"), Err(KeyError::Syntax));
    assert_eq!(keys("XREAD COUNT 1 STREAMS"), Ok(vec![]));
    // GEORADIUS: STORE/STOREDIST are optional keyword specs.
    assert_eq!(key_names("GEORADIUS src 1 2 3 km"), ["src"]);
    assert_eq!(
        key_names("GEORADIUS src 1 2 3 km STORE dst"),
        ["src", "dst"]
    );
    assert_eq!(
        key_names("GEORADIUS src 1 2 3 km COUNT 5 STOREDIST dst"),
        ["src", "dst"]
    );
    // MIGRATE: index 3 (empty key) and, searching backwards, KEYS.
    assert_eq!(key_names("MIGRATE h 6379 k 0 5000"), ["k"]);
    assert_eq!(
        key_names("MIGRATE h 6379  0 5000 COPY KEYS a b"),
        ["", "a", "b"]
    );
}

#[test]
fn sort_sees_its_source_and_store_destination() {
    // STORE is an `unknown` spec in Redis 7.0, found as sortGetKeys finds
    // it; BY/GET patterns are not keys.
    assert_eq!(key_names("SORT k"), ["k"]);
    assert_eq!(key_names("SORT k BY w_* GET o_* STORE dst"), ["k", "dst"]);
    assert_eq!(key_names("SORT k store dst ALPHA"), ["k", "dst"]);
    // The last STORE wins, as SORT itself takes the last one.
    assert_eq!(key_names("SORT k STORE a STORE b"), ["k", "b"]);
    // Option values named STORE are not the option.
    assert_eq!(key_names("SORT k BY STORE GET STORE"), ["k"]);
    assert_eq!(key_names("SORT k LIMIT STORE STORE"), ["k"]);
    assert_eq!(key_names("SORT k LIMIT 0 1 STORE d"), ["k", "d"]);
    // STORE without a value: no key (SORT answers a syntax error).
    assert_eq!(key_names("SORT k STORE"), ["k"]);
    // SORT_RO has no STORE.
    assert_eq!(key_names("SORT_RO k LIMIT 0 1"), ["k"]);
    assert_eq!(key_names("SORT_RO k STORE dst"), ["k"]);
    // The destination is written: OW and update, as COMMAND says.
    let args = ["SORT", "k", "STORE", "dst"];
    let spec = table().lookup(&args[..]).unwrap();
    let mut flags = Vec::new();
    spec.for_each_key_flags(&args[..], |i, f| flags.push((i, f)))
        .unwrap();
    assert_eq!(flags[1].0, 3);
    assert!(flags[1].1.contains(KeySpecFlags::OW) && flags[1].1.contains(KeySpecFlags::UPDATE));
}

#[test]
fn subcommand_keys() {
    assert_eq!(key_names("OBJECT ENCODING k"), ["k"]);
    assert_eq!(key_names("XINFO STREAM s FULL"), ["s"]);
    assert_eq!(key_names("MEMORY USAGE k SAMPLES 5"), ["k"]);
    assert_eq!(key_names("XGROUP CREATE s g $"), ["s"]);
    assert_eq!(keys("CLIENT SETNAME x"), Ok(vec![]));
}

#[test]
fn shard_channels_count_as_keys() {
    assert_eq!(key_names("SPUBLISH ch msg"), ["ch"]);
    assert_eq!(key_names("SSUBSCRIBE a b"), ["a", "b"]);
    assert_eq!(keys("PUBLISH ch msg"), Ok(vec![]));
}

/// Key positions of a request with their key-spec flags.
fn keys_flags(request: &str) -> Result<Vec<(usize, KeySpecFlags)>, KeyError> {
    let args: Vec<&str> = request.split(' ').collect();
    let spec = table().lookup(&args[..]).expect("known command");
    let mut out = Vec::new();
    spec.for_each_key_flags(&args[..], |i, flags| out.push((i, flags)))?;
    Ok(out)
}

#[test]
fn key_flags() {
    use KeySpecFlags as F;
    // SET may read the old value (GET): the spec says so for every SET.
    let set = F::RW | F::ACCESS | F::UPDATE | F::VARIABLE_FLAGS;
    assert_eq!(keys_flags("SET k v"), Ok(vec![(1, set)]));
    let ro = F::RO | F::ACCESS;
    assert_eq!(keys_flags("MGET a b"), Ok(vec![(1, ro), (2, ro)]));
    assert_eq!(
        keys_flags("LMOVE src dst LEFT RIGHT"),
        Ok(vec![
            (1, F::RW | F::ACCESS | F::DELETE),
            (2, F::RW | F::INSERT)
        ])
    );
    assert_eq!(
        keys_flags("XREAD STREAMS a b 0 0"),
        Ok(vec![(2, ro), (3, ro)])
    );
    // EVAL's keys: Redis cannot tell how the script uses them.
    let eval = F::RW | F::ACCESS | F::UPDATE;
    assert_eq!(
        keys_flags("EVAL return 2 k1 k2 a1"),
        Ok(vec![(3, eval), (4, eval)])
    );
    assert_eq!(keys_flags("EVAL return 0 a1"), Ok(vec![]));
    assert_eq!(keys_flags("SPUBLISH ch msg"), Ok(vec![(1, F::NOT_KEY)]));
    // Errors as for_each_key: nothing reported.
    assert_eq!(
        keys_flags("EVAL return 3 k1"),
        Err(KeyError::NumKeysTooLarge)
    );
}

#[test]
fn no_callback_on_error() {
    // ZUNIONSTORE's first spec (the destination) succeeds, yet nothing is
    // reported when the second fails: a caller never routes on half the
    // keys.
    let spec = table().get_by_name("zunionstore").unwrap();
    let args: &[&str] = &["ZUNIONSTORE", "dst", "5", "a"];
    let mut called = false;
    assert_eq!(
        spec.for_each_key(args, |_| called = true),
        Err(KeyError::NumKeysTooLarge)
    );
    assert!(!called);
}

#[test]
fn blocking_call() {
    let is_blocking = |request: &str| {
        let args: Vec<&str> = request.split(' ').collect();
        table()
            .lookup(&args[..])
            .unwrap()
            .is_blocking_call(&args[..])
    };
    assert!(is_blocking("BLPOP a 0"));
    assert!(is_blocking("BLMPOP 0 1 a LEFT"));
    assert!(!is_blocking("LPOP a"));
    assert!(!is_blocking("XREAD COUNT 1 STREAMS s 0"));
    assert!(is_blocking("XREAD COUNT 1 BLOCK 0 STREAMS s 0"));
    assert!(is_blocking("xreadgroup group g c block 10 streams s >"));
    // Group and consumer named BLOCK, and a stream named BLOCK.
    assert!(!is_blocking("XREADGROUP GROUP BLOCK BLOCK STREAMS s >"));
    assert!(!is_blocking("XREAD STREAMS BLOCK 0"));
}

/// Tiny deterministic PRNG (xorshift) so the test needs no dependency and
/// always runs the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn malformed_args_never_panic() {
    // Arguments that steer the key specs: keywords, key counts of every
    // sign and size, and plain words.
    const WORDS: &[&str] = &[
        "k",
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-2",
        "99999999999",
        "x",
        "",
        "STREAMS",
        "KEYS",
        "STORE",
        "STOREDIST",
        "BLOCK",
        "GROUP",
        "COUNT",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut specs = Vec::new();
    for cmd in table().iter() {
        specs.push(cmd);
        specs.extend(cmd.subcommands());
    }
    for spec in specs {
        // Container subcommands need the container name first.
        let words: Vec<&str> = spec.name().split('|').collect();
        for _ in 0..300 {
            let extra = (rng.next() % 7) as usize;
            let mut args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            for _ in 0..extra {
                args.push(WORDS[(rng.next() % WORDS.len() as u64) as usize].into());
            }
            let argc = args.argc();
            let _ = spec.is_blocking_call(&args);
            let _ = spec.arity_ok(argc);
            let _ = table().lookup(&args);
            let mut n = 0;
            let result = spec.for_each_key(&args, |i| {
                assert!(
                    i >= 1 && i < argc,
                    "{}: key index {i} of {argc}",
                    spec.name()
                );
                n += 1;
            });
            assert!(n <= argc, "{}", spec.name());
            if result.is_err() {
                assert_eq!(n, 0);
            }
        }
    }
}
