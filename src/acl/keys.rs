//! What an ACL check needs beyond the key specs: the flags of commands
//! whose access depends on their arguments (`variable_flags`), and which
//! arguments are channels. Each as redis-server's own key extraction
//! functions decide (`setGetKeys`, `bitfieldGetKeys`,
//! `getChannelsFromCommand`). `SORT ... STORE`'s key comes with the others
//! (`CommandSpec::for_each_key_flags`, as `sortGetKeys`).

use std::ops::Range;

use crate::command::{CommandArgs, CommandSpec, KeySpecFlags};

/// A key's flags with the arguments taken into account: `SET` reads the
/// old value only with `GET`; `BITFIELD` writes only with `SET`/`INCRBY`.
pub fn actual_flags<A: CommandArgs + ?Sized>(
    spec: &CommandSpec,
    args: &A,
    flags: KeySpecFlags,
) -> KeySpecFlags {
    if !flags.contains(KeySpecFlags::VARIABLE_FLAGS) {
        return flags;
    }
    let any = |words: &[&[u8]]| {
        (2..args.argc()).any(|i| words.iter().any(|w| args.arg(i).eq_ignore_ascii_case(w)))
    };
    match spec.name() {
        "set" if !any(&[b"GET"]) => KeySpecFlags::OW | KeySpecFlags::UPDATE,
        "bitfield" if !any(&[b"SET", b"INCRBY"]) => KeySpecFlags::RO | KeySpecFlags::ACCESS,
        _ => flags,
    }
}

/// The positions of the channels a command publishes or subscribes to
/// (of `argc` arguments), and whether they are patterns. Unsubscribing
/// needs no permission.
pub fn channels(spec: &CommandSpec, argc: usize) -> Option<(Range<usize>, bool)> {
    match spec.name() {
        "publish" | "spublish" => Some((1..2.min(argc), false)),
        "subscribe" | "ssubscribe" => Some((1..argc, false)),
        "psubscribe" => Some((1..argc, true)),
        _ => None,
    }
}
