//! Key extraction: evaluates a command's key specs against a request's
//! arguments exactly as Redis does (`getKeysUsingKeySpecs` in `src/db.c`),
//! without allocating.

use super::flags::KeySpecFlags;
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec};
use super::CommandArgs;

/// Why a request's keys cannot be found. `Display` gives EVAL's wording,
/// but commands word these differently (ZUNIONSTORE says `syntax error`,
/// LMPOP `numkeys should be greater than 0`, FCALL `Bad number of keys
/// provided`), so the router does not answer with it: it forwards such a
/// request to any master, whose command answers its own error, which is
/// what Redis Cluster itself does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key count is not an integer.
    #[error("ERR value is not an integer or out of range")]
    NumKeysNotInteger,
    /// The key count is negative.
    #[error("ERR Number of keys can't be negative")]
    NumKeysNegative,
    /// The key count runs past the last argument.
    #[error("ERR Number of keys can't be greater than number of args")]
    NumKeysTooLarge,
    /// The key positions fall outside the arguments (e.g. XREAD with an
    /// unbalanced STREAMS list).
    #[error("ERR syntax error")]
    Syntax,
}

/// Inclusive key positions `first..=last`, every `step`.
#[derive(Clone, Copy)]
struct KeyRange {
    first: usize,
    last: usize,
    step: usize,
}

impl CommandSpec {
    /// Calls `f(arg_index)` for every key argument of this request, in
    /// Redis's order (spec by spec), evaluating the key specs as Redis does.
    ///
    /// - `begin_search` by index, or by keyword searched forwards from
    ///   `startfrom`, or backwards from `argc + startfrom` when negative; a
    ///   keyword that is absent means that spec has no keys (GEORADIUS
    ///   without STORE).
    /// - `find_keys` range (`lastkey` negative counts from the end, `limit`
    ///   divides the rest: XREAD) or keynum (EVAL, ZUNIONSTORE, LMPOP).
    /// - Shard channels (`not_key` specs of SPUBLISH, SSUBSCRIBE) count as
    ///   keys: they hash to a slot just like keys.
    /// - Specs flagged `incomplete` are evaluated anyway, and `unknown`
    ///   specs are skipped, except SORT's: its `STORE` key is found as
    ///   Redis's `sortGetKeys` finds it (the last `STORE`, skipping the
    ///   values of `LIMIT`, `BY` and `GET`), so a `STORE` into another slot
    ///   gets CROSSSLOT (also inside MULTI) and ACL write patterns apply to
    ///   it. `BY`/`GET` patterns are not keys (a cluster node refuses them).
    ///   A command's other hidden keys are safe for routing: all keys of a
    ///   request must share one slot, so any one of them picks the right
    ///   node, and that node answers CROSSSLOT if the hidden keys are
    ///   elsewhere. MIGRATE ... KEYS also yields its empty-string key
    ///   argument, as the specs say.
    ///
    /// On `Err`, `f` has not been called at all: every spec is checked
    /// before any key is reported. Malformed arguments never panic or loop.
    pub fn for_each_key<A: CommandArgs + ?Sized>(
        &self,
        args: &A,
        mut f: impl FnMut(usize),
    ) -> Result<(), KeyError> {
        self.for_each_key_flags(args, |i, _| f(i))
    }

    /// [`for_each_key`](Self::for_each_key), also giving each key the flags
    /// of the key spec that found it (`RW`, `access`, `insert`, ...), for
    /// ACL key patterns (`%R~`, `%W~`). Shard channels come with
    /// `not_key`.
    ///
    /// These are the spec's flags as `COMMAND` publishes them. For a spec
    /// flagged `variable_flags` (SET, BITFIELD) they are what the command
    /// may do; Redis refines them per request (SET without GET only
    /// overwrites: `OW|update`), keyway does not. A spec derived from
    /// legacy first/last/step (a backend older than 7.0) has no flags.
    #[inline]
    pub fn for_each_key_flags<A: CommandArgs + ?Sized>(
        &self,
        args: &A,
        mut f: impl FnMut(usize, KeySpecFlags),
    ) -> Result<(), KeyError> {
        // Most commands have one key, at argument 1 (GET, SET, INCR, ...):
        // nothing to evaluate.
        if let [spec @ KeySpec {
            begin: BeginSearch::Index(1),
            find: FindKeys::Range { lastkey: 0, .. },
            ..
        }] = self.key_specs.as_slice()
        {
            if args.argc() > 1 {
                f(1, spec.flags);
                return Ok(());
            }
        }
        // Two passes over the (one to three) specs instead of a buffer:
        // evaluating a spec is a few comparisons, and this way nothing is
        // reported for a request that fails.
        for spec in &self.key_specs {
            eval(spec, args)?;
        }
        for spec in &self.key_specs {
            if matches!(spec.begin, BeginSearch::Unknown) {
                if let Some(i) = self.unknown_spec_key(spec, args) {
                    f(i, spec.flags);
                }
                continue;
            }
            if let Some(r) = eval(spec, args)? {
                let mut i = r.first;
                while i <= r.last {
                    f(i, spec.flags);
                    i += r.step;
                }
            }
        }
        Ok(())
    }

    /// The key an `unknown` spec stands for, found as Redis's own
    /// `getkeys_proc` finds it: SORT's `STORE` destination, its spec the
    /// one that overwrites (`OW`; the `RO` one is `BY`/`GET`'s patterns).
    /// As `sortGetKeys`: the last `STORE` with a value; `LIMIT` takes two
    /// values, `BY` and `GET` one, which are never taken for `STORE`.
    fn unknown_spec_key<A: CommandArgs + ?Sized>(&self, spec: &KeySpec, args: &A) -> Option<usize> {
        if &*self.name != "sort" || !spec.flags.contains(KeySpecFlags::OW) {
            return None;
        }
        let mut store = None;
        let mut i = 2;
        while i < args.argc() {
            let arg = args.arg(i);
            if arg.eq_ignore_ascii_case(b"LIMIT") {
                i += 2;
            } else if arg.eq_ignore_ascii_case(b"BY") || arg.eq_ignore_ascii_case(b"GET") {
                i += 1;
            } else if arg.eq_ignore_ascii_case(b"STORE") && i + 1 < args.argc() {
                store = Some(i + 1);
            }
            i += 1;
        }
        store
    }

    /// Whether this request blocks. Blocking-flagged commands block, except
    /// XREAD and XREADGROUP, which block only with a `BLOCK` option and
    /// otherwise route like any keyed read.
    pub fn is_blocking_call<A: CommandArgs + ?Sized>(&self, args: &A) -> bool {
        if !self.flags.is_blocking() {
            return false;
        }
        match &*self.name {
            "xread" | "xreadgroup" => has_block_option(args),
            _ => true,
        }
    }
}

/// Scans XREAD/XREADGROUP options up to `STREAMS`, skipping option values so
/// a group or consumer named "BLOCK" is not mistaken for the option.
fn has_block_option<A: CommandArgs + ?Sized>(args: &A) -> bool {
    let mut i = 1;
    while i < args.argc() {
        let arg = args.arg(i);
        if arg.eq_ignore_ascii_case(b"STREAMS") {
            return false;
        }
        if arg.eq_ignore_ascii_case(b"BLOCK") {
            return true;
        }
        i += if arg.eq_ignore_ascii_case(b"GROUP") {
            3
        } else if arg.eq_ignore_ascii_case(b"COUNT") {
            2
        } else {
            1
        };
    }
    false
}

/// Evaluates one spec: `Ok(None)` when it finds no key (absent keyword,
/// zero key count, unknown spec), `Ok(Some(range))` with every position
/// inside the arguments, or the error Redis would give.
fn eval<A: CommandArgs + ?Sized>(spec: &KeySpec, args: &A) -> Result<Option<KeyRange>, KeyError> {
    // i64 throughout: spec numbers are i32, argc is usize, and their sums
    // must not overflow whatever a client sends.
    let argc = args.argc() as i64;
    let first = match &spec.begin {
        BeginSearch::Index(pos) => i64::from(*pos),
        BeginSearch::Keyword { keyword, startfrom } => {
            match find_keyword(args, argc, keyword, i64::from(*startfrom)) {
                Some(i) => i + 1,
                None => return Ok(None),
            }
        }
        BeginSearch::Unknown => return Ok(None),
    };
    let (first, last, step) = match spec.find {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => {
            let lastkey = i64::from(lastkey);
            let last = if lastkey >= 0 {
                first + lastkey
            } else if limit <= 0 {
                if first == argc && lastkey == -1 {
                    // "Keys up to the last argument", and there is none
                    // left: an optional key list, empty (`PFMERGE dest`,
                    // whose sources Redis 7.0 made optional).
                    return Ok(None);
                }
                argc + lastkey
            } else {
                // Redis only defines this for lastkey == -1: one key per
                // `limit` remaining arguments (XREAD: keys then as many IDs).
                first + ((argc - first) / i64::from(limit) + lastkey)
            };
            (first, last, step)
        }
        FindKeys::KeyNum {
            keynumidx,
            firstkey,
            step,
        } => {
            let idx = first + i64::from(keynumidx);
            if idx < 1 || idx >= argc {
                return Err(KeyError::Syntax);
            }
            let numkeys = parse_i64(args.arg(idx as usize)).ok_or(KeyError::NumKeysNotInteger)?;
            if numkeys < 0 {
                return Err(KeyError::NumKeysNegative);
            }
            if numkeys == 0 {
                // EVAL script 0: legitimately keyless.
                return Ok(None);
            }
            let first = first + i64::from(firstkey);
            let last = first.saturating_add(numkeys - 1);
            if last >= argc {
                return Err(KeyError::NumKeysTooLarge);
            }
            (first, last, step)
        }
        FindKeys::Unknown => return Ok(None),
    };
    if first < 1 || first >= argc || last < first || last >= argc || step < 1 {
        return Err(KeyError::Syntax);
    }
    Ok(Some(KeyRange {
        first: first as usize,
        last: last as usize,
        step: step as usize,
    }))
}

/// Redis's keyword search: forwards from `startfrom` up to (excluding) the
/// last argument, or backwards from `argc + startfrom` down to (excluding)
/// argument 1. Returns the keyword's index.
fn find_keyword<A: CommandArgs + ?Sized>(
    args: &A,
    argc: i64,
    keyword: &[u8],
    startfrom: i64,
) -> Option<i64> {
    let (start, end) = if startfrom > 0 {
        (startfrom, argc - 1)
    } else {
        (argc + startfrom, 1)
    };
    let forward = start <= end;
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            return None;
        }
        if args.arg(i as usize).eq_ignore_ascii_case(keyword) {
            return Some(i);
        }
        i += if forward { 1 } else { -1 };
    }
    None
}

/// Strict decimal integer, as Redis's `string2ll`: optional `-`, no `+`, no
/// spaces, no leading zeros.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == s.len(), // "0" yes, "-0" no
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    // ASCII digits are UTF-8; str::parse handles overflow (and i64::MIN).
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
