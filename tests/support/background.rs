//! A client load that runs in its own thread until stopped, counting its
//! rounds, so a test can wait for progress (proof it is not stuck) while it
//! reshards or kills nodes, then stop it and read its report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{poll_until, Proxy};

/// A load thread whose result is `R`.
pub struct Background<R> {
    rounds: Rounds,
    handle: JoinHandle<R>,
}

/// What the load's thread shares with the test: whether to go on, and its
/// count of finished rounds.
#[derive(Clone, Default)]
pub struct Rounds {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
}

impl Rounds {
    /// False once the test asked the load to stop.
    pub fn go_on(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Counts one finished round.
    pub fn done_one(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl<R: Send + 'static> Background<R> {
    /// Runs `body` in a new thread; it should loop while
    /// [`Rounds::go_on`], calling [`Rounds::done_one`] per round.
    pub fn spawn(body: impl FnOnce(Rounds) -> R + Send + 'static) -> Background<R> {
        let rounds = Rounds::default();
        let theirs = rounds.clone();
        Background {
            rounds,
            handle: std::thread::spawn(move || body(theirs)),
        }
    }

    /// Waits until the load has done `n` more rounds; panics with keyway's
    /// log when it made no progress for 30 s.
    pub fn wait_progress(&self, n: u64, proxy: &Proxy) {
        let target = self.rounds.done() + n;
        let done = poll_until(Duration::from_secs(30), || {
            (self.rounds.done() >= target).then_some(())
        });
        assert!(
            done.is_some(),
            "the load made no progress for 30 s (stuck after {} rounds)\n--- keyway log ---\n{}",
            self.rounds.done(),
            proxy.log_tail(40)
        );
    }

    /// How many rounds the load has finished so far.
    pub fn done(&self) -> u64 {
        self.rounds.done()
    }

    /// Stops the load and returns what it reports.
    pub fn stop(self) -> R {
        self.rounds.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("load thread panicked")
    }
}
