//! Failed authentications per client address: past `auth.max_failures`
//! within `auth.failure_window_s`, further attempts from that address are
//! answered only after `auth.failure_delay_ms`, so a password cannot be
//! guessed at line rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered before expired windows are pruned.
const PRUNE_AT: usize = 4096;

/// The limits, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed per window before attempts are delayed.
    pub max_failures: u32,
    /// The window.
    pub window: Duration,
    /// The delay of each attempt past the limit.
    pub delay: Duration,
}

/// Failures per address in the current window.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// How long to hold an attempt from `addr` before answering it.
    pub fn delay(&self, addr: IpAddr, limits: Limits) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&addr) {
            Some((start, n)) if start.elapsed() < limits.window && *n >= limits.max_failures => {
                limits.delay
            }
            _ => Duration::ZERO,
        }
    }

    /// Counts a failed attempt from `addr`.
    pub fn failed(&self, addr: IpAddr, limits: Limits) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= PRUNE_AT {
            failures.retain(|_, (start, _)| start.elapsed() < limits.window);
        }
        let now = Instant::now();
        let window = failures.entry(addr).or_insert((now, 0));
        if now.duration_since(window.0) >= limits.window {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_after_the_limit_per_address() {
        let limits = Limits {
            max_failures: 3,
            window: Duration::from_secs(60),
            delay: Duration::from_millis(500),
        };
        let throttle = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(throttle.delay(a, limits), Duration::ZERO);
            throttle.failed(a, limits);
        }
        assert_eq!(throttle.delay(a, limits), limits.delay);
        assert_eq!(throttle.delay(b, limits), Duration::ZERO);
        let short = Limits {
            window: Duration::ZERO,
            ..limits
        };
        assert_eq!(throttle.delay(a, short), Duration::ZERO);
    }
}
