//! Redirections a node answers instead of a reply: `-MOVED`, `-ASK`,
//! `-TRYAGAIN` (Redis Cluster spec), and the refusals of a node that
//! cannot serve now (`-CLUSTERDOWN`: the cluster is down, e.g. for the
//! second between a master being marked failed and its replica taking
//! over; `-LOADING`; `-MASTERDOWN`), parsed from the raw error bytes, and
//! the one decision of what to do with them ([`decide`]), shared by whole
//! requests and the parts of split ones.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Slot;

/// First pause before retrying after `-TRYAGAIN`; doubles per retry.
pub const TRYAGAIN_BACKOFF: Duration = Duration::from_millis(5);

/// How many redirects a request may follow (`client.max_redirects`,
/// `client.max_tryagain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// `MOVED` and `ASK` together.
    pub redirects: u32,
    /// `TRYAGAIN`.
    pub tryagains: u32,
    /// How long a request may be held while its shard has no master that
    /// serves it (`cluster.failover_hold_ms`, see [`crate::hold`]).
    pub failover_hold: Duration,
}

/// How many redirects one request (or one part of a split request)
/// followed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Followed {
    /// `MOVED` and `ASK` followed.
    pub redirects: u16,
    /// `TRYAGAIN` retried.
    pub tryagains: u16,
    /// When the request was first held (see [`Followed::hold`]), in 16 ms
    /// ticks of a process-wide clock; 0 while never held. 16 bits keep a
    /// reply's place small.
    pub held_since: u16,
    /// Sent again, to the master, after the replica it went to failed or
    /// answered a null (once).
    pub off_replica: bool,
    /// Last sent to a replica (a read). A resend after a redirect, or
    /// under the master policy, leaves it as it was: at worst a null or a
    /// failure is then asked of the master once more.
    pub on_replica: bool,
}

impl Followed {
    /// Counts one more `MOVED`/`ASK` (or another resend that spends that
    /// budget, such as healing `-NOSCRIPT`): the attempt number, or `None`
    /// when that is over the budget.
    pub fn spend_redirect(&mut self, budgets: Budgets) -> Option<u32> {
        spend(&mut self.redirects, budgets.redirects)
    }

    /// Counts one more `TRYAGAIN`: the attempt number, or `None` when that
    /// is over the budget.
    pub fn spend_tryagain(&mut self, budgets: Budgets) -> Option<u32> {
        spend(&mut self.tryagains, budgets.tryagains)
    }
}

impl Followed {
    /// Holds the request once more (see [`crate::hold`]): `Ok` while it
    /// has been held for less than the budget, counted from the first
    /// time; else `Err` with how long it was held.
    pub fn hold(&mut self, budgets: Budgets) -> Result<(), Duration> {
        let now = clock();
        if self.held_since == 0 {
            self.held_since = now;
        }
        let held = CLOCK_TICK * u32::from(now.wrapping_sub(self.held_since));
        if held < budgets.failover_hold {
            Ok(())
        } else {
            Err(held)
        }
    }
}

/// The unit of [`clock`].
const CLOCK_TICK: Duration = Duration::from_millis(16);

/// [`CLOCK_TICK`]s since this clock was first read, never 0 (which means
/// "never held"). It wraps after 17 minutes, longer than the longest hold
/// allowed (`cluster.failover_hold_ms` ≤ 10 minutes).
fn clock() -> u16 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    let ticks = start.elapsed().as_millis() / CLOCK_TICK.as_millis();
    (ticks as u16).wrapping_add(1).max(1)
}

fn spend(used: &mut u16, max: u32) -> Option<u32> {
    *used = used.saturating_add(1);
    (u32::from(*used) <= max).then_some(u32::from(*used))
}

/// What to do with a node's reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Not a redirect, or the `TRYAGAIN` budget is spent (the node's error
    /// already says "retry later"): the reply stands.
    Deliver,
    /// `MOVED`: patch the slot map (which asks for a refresh) and resend
    /// to `addr`.
    Moved {
        /// The slot that moved.
        slot: Slot,
        /// Its new master.
        addr: &'a str,
    },
    /// `ASK`: resend to `addr`, preceded by `ASKING`.
    Ask {
        /// The importing node.
        addr: &'a str,
    },
    /// `TRYAGAIN` (the kind, for metrics): resend the same way after this
    /// pause.
    RetryAfter(Duration, &'static str),
    /// The node cannot serve now (the kind, for metrics: `clusterdown`,
    /// `loading`, `masterdown`): hold the request (see [`crate::hold`]).
    Hold(&'static str),
    /// The `MOVED`/`ASK` budget is spent: a plain client cannot follow the
    /// node's error, so it gets this one instead (the text after `-`).
    GiveUp(String),
}

/// Decides what to do with `reply` (a whole RESP reply from a node) for a
/// request that followed `followed` redirects so far, counting the one it
/// follows now. Pure: no sockets, no clock.
pub fn decide<'a>(reply: &'a [u8], followed: &mut Followed, budgets: Budgets) -> Decision<'a> {
    if reply.first() != Some(&b'-') {
        return Decision::Deliver;
    }
    let Some(redirect) = parse(reply) else {
        return Decision::Deliver;
    };
    if let Redirect::Unserved(kind) = redirect {
        return Decision::Hold(kind);
    }
    let attempt = match redirect {
        Redirect::TryAgain => followed.spend_tryagain(budgets),
        _ => followed.spend_redirect(budgets),
    };
    let Some(attempt) = attempt else {
        return match redirect {
            Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } => {
                Decision::GiveUp(budget_spent(slot, budgets.redirects))
            }
            Redirect::TryAgain | Redirect::Unserved(_) => Decision::Deliver,
        };
    };
    match redirect {
        Redirect::Moved { slot, addr } => Decision::Moved { slot, addr },
        Redirect::Ask { addr, .. } => Decision::Ask { addr },
        Redirect::TryAgain | Redirect::Unserved(_) => {
            let pause = TRYAGAIN_BACKOFF * 2u32.saturating_pow(attempt.min(8) - 1);
            Decision::RetryAfter(pause, "tryagain")
        }
    }
}

impl Decision<'_> {
    /// The redirect kind for `keyway`'s metrics, if this follows one.
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            Decision::Moved { .. } => Some("moved"),
            Decision::Ask { .. } => Some("ask"),
            Decision::RetryAfter(_, kind) | Decision::Hold(kind) => Some(kind),
            Decision::Deliver | Decision::GiveUp(_) => None,
        }
    }
}

/// What a node's error reply asks the proxy to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect<'a> {
    /// The slot lives on `addr` now: update the map and resend there.
    Moved {
        /// The slot.
        slot: Slot,
        /// `host:port` of its new master.
        addr: &'a str,
    },
    /// This one request must go to `addr`, preceded by `ASKING`.
    Ask {
        /// The slot being migrated.
        slot: Slot,
        /// `host:port` of the importing node.
        addr: &'a str,
    },
    /// A multi-key request hit a slot mid-migration: retry after a pause.
    TryAgain,
    /// The node cannot serve now, and did not run the command: the cluster
    /// is down as it sees it (`clusterdown`), it is loading its data
    /// (`loading`), or it is a replica that lost its master (`masterdown`).
    Unserved(&'static str),
}

/// The error a client gets instead of a `MOVED`/`ASK` it cannot follow
/// once keyway followed `max` of them for `slot` (the text after `-`).
fn budget_spent(slot: Slot, max: u32) -> String {
    format!(
        "TRYAGAIN keyway followed {max} MOVED/ASK redirects for slot {slot} without reaching its master; the cluster is resharding, retry shortly"
    )
}

/// Error prefixes of nodes that cannot serve now, with their kind.
const UNSERVED: [(&[u8], &str); 3] = [
    (b"CLUSTERDOWN", "clusterdown"),
    (b"LOADING", "loading"),
    (b"MASTERDOWN", "masterdown"),
];

/// The redirect in `reply`, if it is one (`reply` is a whole RESP error).
pub fn parse(reply: &[u8]) -> Option<Redirect<'_>> {
    let line = reply.strip_prefix(b"-")?;
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    if line.starts_with(b"TRYAGAIN") {
        return Some(Redirect::TryAgain);
    }
    for (prefix, kind) in UNSERVED {
        if line.starts_with(prefix) {
            return Some(Redirect::Unserved(kind));
        }
    }
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let kind = words.next()?;
    let slot = Slot::new(words.next()?.parse().ok()?)?;
    let addr = words.next()?;
    // An empty host ("MOVED 3999 :6380") means "the node you asked"; keyway
    // then leaves the error to the client and refreshes the map instead.
    if addr.starts_with(':') || addr.is_empty() || addr.starts_with('?') {
        return None;
    }
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { slot, addr }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_redirects() {
        let slot = Slot::new(3999).unwrap();
        assert_eq!(
            parse(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Moved {
                slot,
                addr: "127.0.0.1:6381"
            })
        );
        assert_eq!(
            parse(b"-ASK 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Ask {
                slot,
                addr: "127.0.0.1:6381"
            })
        );
        assert_eq!(
            parse(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Redirect::TryAgain)
        );
    }

    const BUDGETS: Budgets = Budgets {
        redirects: 2,
        tryagains: 3,
        failover_hold: Duration::from_millis(1000),
    };

    #[test]
    fn nodes_that_cannot_serve_hold_the_request_for_the_failover_budget() {
        for (reply, kind) in [
            (&b"-CLUSTERDOWN The cluster is down\r\n"[..], "clusterdown"),
            (
                b"-LOADING Redis is loading the dataset in memory\r\n",
                "loading",
            ),
            (b"-MASTERDOWN Link with MASTER is down\r\n", "masterdown"),
        ] {
            let mut followed = Followed::default();
            assert_eq!(decide(reply, &mut followed, BUDGETS), Decision::Hold(kind));
            assert_eq!(followed, Followed::default(), "no redirect budget spent");
        }
        let mut followed = Followed::default();
        assert_eq!(followed.hold(BUDGETS), Ok(()));
        let first = followed.held_since;
        assert_ne!(first, 0);
        assert_eq!(followed.hold(BUDGETS), Ok(()));
        assert_eq!(followed.held_since, first, "counted from the first hold");
        followed.held_since = first.wrapping_sub(1500 / 16);
        let held = followed
            .hold(BUDGETS)
            .expect_err("1.5 s is over a 1 s budget");
        assert!(held >= Duration::from_millis(1488), "{held:?}");
    }

    #[test]
    fn replies_that_are_not_redirects_stand() {
        let mut followed = Followed::default();
        for reply in [
            &b"+OK\r\n"[..],
            b"$1\r\n-\r\n",
            b"-ERR wrong type\r\n",
            b"-MOVED 1 :6380\r\n",
        ] {
            assert_eq!(decide(reply, &mut followed, BUDGETS), Decision::Deliver);
        }
        assert_eq!(followed, Followed::default(), "nothing was spent");
    }

    #[test]
    fn moved_and_ask_share_one_budget_then_give_up_naming_the_slot() {
        let mut followed = Followed::default();
        let moved = decide(b"-MOVED 7 10.0.0.1:6379\r\n", &mut followed, BUDGETS);
        assert_eq!(
            moved,
            Decision::Moved {
                slot: Slot::new(7).unwrap(),
                addr: "10.0.0.1:6379"
            }
        );
        assert_eq!(moved.kind(), Some("moved"));
        let ask = decide(b"-ASK 7 10.0.0.2:6379\r\n", &mut followed, BUDGETS);
        assert_eq!(
            ask,
            Decision::Ask {
                addr: "10.0.0.2:6379"
            }
        );
        assert_eq!(followed.redirects, 2);
        let Decision::GiveUp(text) = decide(b"-MOVED 7 10.0.0.1:6379\r\n", &mut followed, BUDGETS)
        else {
            panic!("the third redirect is over a budget of 2");
        };
        assert!(
            text.starts_with("TRYAGAIN keyway followed 2 MOVED/ASK redirects for slot 7"),
            "{text}"
        );
        assert_eq!(followed.tryagains, 0);
    }

    #[test]
    fn tryagain_backs_off_doubling_then_the_nodes_error_stands() {
        let mut followed = Followed::default();
        let reply = b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n";
        let pauses: Vec<_> = (0..3)
            .map(|_| decide(reply, &mut followed, BUDGETS))
            .collect();
        assert_eq!(
            pauses,
            [5, 10, 20].map(|ms| Decision::RetryAfter(Duration::from_millis(ms), "tryagain"))
        );
        assert_eq!(decide(reply, &mut followed, BUDGETS), Decision::Deliver);
        assert_eq!(followed.redirects, 0, "TRYAGAIN spends its own budget");
    }

    #[test]
    fn the_backoff_stops_doubling_after_eight_retries() {
        let mut followed = Followed {
            tryagains: 20,
            ..Followed::default()
        };
        let budgets = Budgets {
            redirects: 0,
            tryagains: 100,
            failover_hold: Duration::ZERO,
        };
        assert_eq!(
            decide(b"-TRYAGAIN x\r\n", &mut followed, budgets),
            Decision::RetryAfter(TRYAGAIN_BACKOFF * 128, "tryagain")
        );
    }

    #[test]
    fn other_errors_are_not_redirects() {
        assert_eq!(parse(b"-ERR wrong type\r\n"), None);
        assert_eq!(parse(b"-MOVED 99999 h:1\r\n"), None);
        assert_eq!(parse(b"-MOVED 1\r\n"), None);
        assert_eq!(parse(b"-MOVED 1 :6380\r\n"), None);
        assert_eq!(parse(b"+MOVED 1 h:1\r\n"), None);
        assert_eq!(parse(b"-MOVEDX 1 h:1\r\n"), None);
    }
}
