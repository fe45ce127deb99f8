//! Client errors in the log: one `warn` line per class (malformed RESP, a
//! failed login, a client refused at `client.max_clients` or by protected
//! mode, a subscriber too slow), at most one per class every [`PERIOD`],
//! saying how many of that class were left out since the last one. A
//! misbehaving client, or thousands of them, cannot flood the log; the
//! metrics count every one.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing::warn;

/// Shortest time between two lines of one class.
pub const PERIOD: Duration = Duration::from_secs(10);

/// The classes, each limited on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Malformed RESP; the connection was closed.
    Protocol,
    /// `AUTH`/`HELLO AUTH` with a wrong user or password.
    WrongPass,
    /// Refused at `client.max_clients`.
    MaxClients,
    /// Refused by protected mode (no password, not a loopback client).
    ProtectedMode,
    /// A subscriber past `client.pubsub_output_limit_*`, closed.
    SlowSubscriber,
    /// A client past `client.output_limit_mb`, closed.
    SlowReader,
    /// A client holding the most replies when all slow readers' passed
    /// `proxy.max_memory_mb`, closed.
    OverMemory,
}

impl ClientError {
    fn what(self) -> &'static str {
        match self {
            ClientError::Protocol => "client sent malformed RESP; closed it",
            ClientError::WrongPass => "client failed to log in (wrong user or password)",
            ClientError::MaxClients => "client refused: client.max_clients reached",
            ClientError::ProtectedMode => {
                "client refused: protected mode (no password set, not a loopback client)"
            }
            ClientError::SlowSubscriber => {
                "subscriber reads too slowly; closed it (client.pubsub_output_limit_*)"
            }
            ClientError::SlowReader => {
                "client reads its replies too slowly; closed it (client.output_limit_mb)"
            }
            ClientError::OverMemory => {
                "client holds the most unsent replies while keyway holds more than proxy.max_memory_mb for slow readers; closed it"
            }
        }
    }
}

/// When each class may log next, and how many it left out meanwhile.
struct Limiter {
    next_ms: AtomicU64,
    left_out: AtomicU64,
}

static LIMITERS: [Limiter; 7] = [const {
    Limiter {
        next_ms: AtomicU64::new(0),
        left_out: AtomicU64::new(0),
    }
}; 7];

/// Milliseconds since the first call.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Whether a line of `class` may be written now (`Some(left out since)`).
fn admit(class: ClientError, now: u64) -> Option<u64> {
    let limiter = &LIMITERS[class as usize];
    let next = limiter.next_ms.load(Ordering::Relaxed);
    let due = now >= next
        && limiter
            .next_ms
            .compare_exchange(
                next,
                now + PERIOD.as_millis() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
    if due {
        Some(limiter.left_out.swap(0, Ordering::Relaxed))
    } else {
        limiter.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Logs an error of `class` by the client at `peer` (with `detail`, e.g.
/// the parser's message), unless one of its class was logged less than
/// [`PERIOD`] ago.
#[cold]
pub fn log(class: ClientError, peer: SocketAddr, detail: &dyn Display) {
    if let Some(left_out) = admit(class, now_ms()) {
        warn!(%peer, detail = %detail, left_out, "{}", class.what());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_class_per_period_counting_those_left_out() {
        // Its own class and clock values: other tests may log too.
        let class = ClientError::SlowSubscriber;
        let start = 1_000_000_000;
        assert_eq!(admit(class, start), Some(0));
        for _ in 0..5 {
            assert_eq!(admit(class, start + 10), None);
        }
        assert_eq!(
            admit(ClientError::ProtectedMode, start + 10),
            Some(0),
            "classes apart"
        );
        let period = PERIOD.as_millis() as u64;
        assert_eq!(admit(class, start + period - 1), None);
        assert_eq!(admit(class, start + period), Some(6));
        assert_eq!(admit(class, start + period + 1), None);
    }
}
