//! Where a request goes: the command table's class for the command, its keys'
//! slot, or the reason it is refused. Pure: no sockets, no topology.

use bytes::BytesMut;

use crate::cluster::Slot;
use crate::command::{
    CommandArgs, CommandSpec, CommandTable, Diagnostic, Merge, Reason, RouteClass, SplitJoin,
};
use crate::protocol::{encode, Request};

pub use crate::cluster::Access;

/// The decision for one request.
#[derive(Debug)]
pub enum Route<'t> {
    /// To the master serving this slot.
    Slot(Slot, Access),
    /// `PUBLISH`: to the master of the channel's slot (one node per
    /// channel keeps messages in publish order); its count of receivers
    /// counts keyway's subscribers as one redis-server would.
    Publish(Slot),
    /// To any master (keyless commands, scripts without keys).
    AnyNode,
    /// To every master, their replies merged.
    FanOut(Merge),
    /// To every node, masters and replicas: `+OK` from all, or the first
    /// error naming its node.
    AllNodes,
    /// To every master, their replies merged naming the node of each part.
    Diagnostics(Diagnostic),
    /// `WAIT`: to the masters the client wrote to, on dedicated connections.
    WaitReplicas,
    /// `INFO`: to every master, merged with keyway's own sections.
    Info,
    /// `SCAN`: to the master keyway's cursor names.
    Scan,
    /// Keys in several slots, of a command keyway splits per slot.
    Split(KeyGroups),
    /// To the master serving this slot, on a dedicated connection: the
    /// command may block.
    Blocking(Slot),
    /// keyway answers it itself.
    Local(&'t CommandSpec),
    /// MULTI, EXEC, DISCARD, WATCH or UNWATCH; for WATCH, the slot its
    /// keys share.
    Transaction(&'t CommandSpec, Option<Slot>),
    /// Changes the client's subscriptions; for shard channels, the slot
    /// they share (`None` when the command names none).
    Subscription(&'t CommandSpec, Option<Slot>),
    /// Refused; the reply says why.
    Reject(Rejection<'t>),
}

/// Where the keys of a request to split sit: key `k` is argument
/// `1 + k * step`, followed by `step - 1` arguments of its own (MSET's
/// value). The router checks this shape before it says [`Route::Split`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyGroups {
    /// How the parts' replies combine.
    pub join: SplitJoin,
    /// Arguments per key, the key included (1, or 2 for MSET).
    pub step: usize,
    /// Number of keys (duplicates included).
    pub count: usize,
    /// Whether the command writes (`WAIT` then asks every part's master).
    pub access: Access,
}

/// Why a request is refused before it reaches the cluster.
#[derive(Debug)]
pub enum Rejection<'t> {
    /// No such command (in the table or learned from the cluster).
    UnknownCommand,
    /// Wrong number of arguments.
    WrongArity(&'t CommandSpec),
    /// Keys in more than one slot.
    CrossSlot,
    /// A class keyway does not serve (yet).
    Unsupported(&'t CommandSpec, Reason),
}

impl CommandArgs for Request {
    fn argc(&self) -> usize {
        Request::argc(self)
    }

    fn arg(&self, i: usize) -> &[u8] {
        Request::arg(self, i)
    }
}

/// Routes `request` using `table`.
pub fn route<'t>(table: &'t CommandTable, request: &Request) -> Route<'t> {
    route_spec(table.lookup(request), request)
}

/// [`route`] for a request whose command the caller looked up already
/// (`None`: unknown).
#[inline]
pub fn route_spec<'t>(spec: Option<&'t CommandSpec>, request: &Request) -> Route<'t> {
    let Some(spec) = spec else {
        return Route::Reject(Rejection::UnknownCommand);
    };
    if !spec.arity_ok(request.argc()) {
        return Route::Reject(Rejection::WrongArity(spec));
    }
    match spec.class() {
        RouteClass::Local => Route::Local(spec),
        RouteClass::FanOut(merge) => Route::FanOut(merge),
        RouteClass::AllNodes => Route::AllNodes,
        RouteClass::Diagnostics(what) => Route::Diagnostics(what),
        RouteClass::Channel => Route::Publish(Slot::of_key(request.arg(1))),
        RouteClass::Subscription if request.argc() == 1 => Route::Subscription(spec, None),
        RouteClass::Subscription => match keyed(spec, request) {
            Route::Slot(slot, _) => Route::Subscription(spec, Some(slot)),
            Route::AnyNode => Route::Subscription(spec, None),
            rejected => rejected,
        },
        RouteClass::AnyNode => Route::AnyNode,
        RouteClass::WaitReplicas => Route::WaitReplicas,
        RouteClass::Info => Route::Info,
        RouteClass::Scan => Route::Scan,
        RouteClass::Transaction => match keyed(spec, request) {
            Route::Slot(slot, _) => Route::Transaction(spec, Some(slot)),
            Route::AnyNode => Route::Transaction(spec, None),
            rejected => rejected,
        },
        RouteClass::Unsupported(reason) => Route::Reject(Rejection::Unsupported(spec, reason)),
        RouteClass::KeyedBlocking => blocking(keyed(spec, request)),
        RouteClass::Keyed if spec.is_blocking_call(request) => blocking(keyed(spec, request)),
        RouteClass::Keyed => keyed(spec, request),
        // One slot: exactly the `Keyed` path. Only a CROSSSLOT is split.
        RouteClass::Split(join) => match keyed(spec, request) {
            Route::Reject(Rejection::CrossSlot) => split(spec, request, join),
            route => route,
        },
    }
}

/// The key groups of a cross-slot request of a [`RouteClass::Split`]
/// command. Keys must start at argument 1, evenly spaced, each with as many
/// arguments as the others; otherwise (MSET with a value missing) the reply
/// is Redis's own arity error, never a part sent with the wrong arguments.
fn split<'t>(spec: &'t CommandSpec, request: &Request, join: SplitJoin) -> Route<'t> {
    let (mut count, mut step, mut even) = (0usize, 0usize, true);
    let keys = spec.for_each_key(request, |i| {
        match count {
            0 => even &= i == 1,
            1 => step = i - 1,
            _ => even &= i == 1 + count * step,
        }
        count += 1;
    });
    if keys.is_err() || !even || step == 0 || count * step != request.argc() - 1 {
        return Route::Reject(Rejection::WrongArity(spec));
    }
    let access = Access::of(spec);
    Route::Split(KeyGroups {
        join,
        step,
        count,
        access,
    })
}

/// A keyed route, made blocking.
fn blocking(route: Route<'_>) -> Route<'_> {
    match route {
        Route::Slot(slot, _) => Route::Blocking(slot),
        other => other,
    }
}

/// The one slot all keys share, or `CROSSSLOT`; keyless calls (e.g.
/// `EVAL script 0`) may go to any master. So may a request whose keys
/// cannot be found (a bad `numkeys`, an unbalanced `STREAMS` list): a
/// node finds no key in it either, so it runs the command, which answers
/// its own error, worded as each command words it (`FCALL` says `Bad
/// number of keys provided`, `ZUNION` `syntax error`, `LMPOP` `numkeys
/// should be greater than 0`, ...). Redis Cluster does the same.
fn keyed<'t>(spec: &'t CommandSpec, request: &Request) -> Route<'t> {
    let mut slot: Option<Slot> = None;
    let mut cross = false;
    let keys = spec.for_each_key(request, |i| {
        if cross {
            // Decided: the rest need no hashing (a split hashes them itself).
            return;
        }
        let s = Slot::of_key(request.arg(i));
        match slot {
            None => slot = Some(s),
            Some(first) if first != s => cross = true,
            Some(_) => {}
        }
    });
    match (keys, slot) {
        (Err(_), _) => Route::AnyNode,
        (Ok(()), _) if cross => Route::Reject(Rejection::CrossSlot),
        (Ok(()), Some(slot)) => Route::Slot(slot, Access::of(spec)),
        (Ok(()), None) => Route::AnyNode,
    }
}

impl Rejection<'_> {
    /// Appends the Redis-style error reply for `request`.
    pub fn write_reply(&self, request: &Request, out: &mut BytesMut) {
        encode::error(out, self.text(request).as_bytes());
    }

    /// The Redis-style error text for `request` (without the `-`).
    pub fn text(&self, request: &Request) -> String {
        match self {
            Rejection::UnknownCommand => unknown_command(request),
            Rejection::WrongArity(spec) => {
                format!("ERR wrong number of arguments for '{}' command", spec.name())
            }
            Rejection::CrossSlot => {
                "CROSSSLOT Keys in request don't hash to the same slot (use a {hash tag} to put related keys in one slot)"
                    .to_string()
            }
            Rejection::Unsupported(spec, reason) => {
                format!("ERR '{}' {}", spec.name().replace('|', " "), reason.message())
            }
        }
    }
}

/// redis-server's text: the name and the start of the arguments.
fn unknown_command(request: &Request) -> String {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(truncated(request.arg(0)))
    );
    for arg in request.args().skip(1) {
        if text.len() > 256 {
            break;
        }
        text.push('\'');
        text.push_str(&String::from_utf8_lossy(truncated(arg)));
        text.push_str("' ");
    }
    text
}

fn truncated(arg: &[u8]) -> &[u8] {
    &arg[..arg.len().min(128)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of<'t>(table: &'t CommandTable, args: &[&str]) -> Route<'t> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        route(table, &Request::from_args(&args))
    }

    #[test]
    fn multi_key_commands_split_only_across_slots() {
        let table = CommandTable::builtin();
        let one_slot = route_of(&table, &["MGET", "{t}a", "{t}b"]);
        assert!(matches!(one_slot, Route::Slot(s, Access::Read) if s == Slot::of_key(b"t")));
        let groups = |args: &[&str]| match route_of(&table, args) {
            Route::Split(groups) => Some(groups),
            _ => None,
        };
        let split = |join, step, count, access| {
            Some(KeyGroups {
                join,
                step,
                count,
                access,
            })
        };
        assert_eq!(
            groups(&["MGET", "a", "b", "a"]),
            split(SplitJoin::Values, 1, 3, Access::Read)
        );
        assert_eq!(
            groups(&["mset", "a", "1", "b", "2"]),
            split(SplitJoin::AllOk, 2, 2, Access::Write)
        );
        for (name, access) in [
            ("DEL", Access::Write),
            ("UNLINK", Access::Write),
            ("EXISTS", Access::Read),
            ("TOUCH", Access::Read),
        ] {
            assert_eq!(
                groups(&[name, "a", "b"]),
                split(SplitJoin::Sum, 1, 2, access),
                "{name}"
            );
        }
        // A value missing: Redis's arity error, not a split.
        assert!(matches!(
            route_of(&table, &["MSET", "a", "1", "b"]),
            Route::Reject(Rejection::WrongArity(spec)) if spec.name() == "mset"
        ));
        // All-or-nothing commands stay CROSSSLOT.
        assert!(matches!(
            route_of(&table, &["MSETNX", "a", "1", "b", "2"]),
            Route::Reject(Rejection::CrossSlot)
        ));
    }

    #[test]
    fn keys_that_cannot_be_found_go_to_a_node() {
        let table = CommandTable::builtin();
        // The node's command answers its own error (FCALL's `Bad number of
        // keys provided`, ZUNION's `syntax error`, ...).
        for args in [
            &["FCALL", "f", "notanumber", "k"][..],
            &["EVAL", "s", "-1", "k"],
            &["ZUNION", "3", "k"],
            &["BLMPOP", "0", "x", "k", "LEFT"],
            &["XREAD", "BLOCK", "0", "STREAMS", "k"],
        ] {
            assert!(matches!(route_of(&table, args), Route::AnyNode), "{args:?}");
        }
    }
}
