//! Wake-ups between tasks of one worker thread.
//!
//! A worker's tasks share its thread, so telling a task "look again" needs
//! neither a lock nor atomics: a flag and the task's waker in `Cell`s.
//! tokio's `Notify` takes its waiter lock on every poll of a waiting
//! `Notified` and on every `notify_one` that finds a waiter, and the hot
//! path pokes a waiting task once per batch.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes one task of this thread, at most one permit stored (like
/// `tokio::sync::Notify::notify_one`). Meant for a single waiting task.
#[derive(Default)]
pub struct LocalNotify {
    notified: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl LocalNotify {
    /// Wakes the waiting task, or lets its next wait end at once.
    pub fn notify_one(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Ready once [`LocalNotify::notify_one`] was called since the last
    /// wait ended; consumes that permit.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.notified.replace(false) {
            return Poll::Ready(());
        }
        let waker = match self.waker.take() {
            Some(waker) if waker.will_wake(cx.waker()) => waker,
            _ => cx.waker().clone(),
        };
        self.waker.set(Some(waker));
        Poll::Pending
    }

    /// Waits for [`LocalNotify::notify_one`].
    pub async fn notified(&self) {
        poll_fn(|cx| self.poll_notified(cx)).await
    }
}

/// Calls [`LocalNotify::notify_one`] when dropped: tells a waiting task
/// that the holder ended, whether it returned or panicked.
pub struct NotifyOnDrop(pub Rc<LocalNotify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_permit_ends_the_next_wait_and_only_that_one() {
        let notify = LocalNotify::default();
        notify.notify_one();
        notify.notify_one();
        notify.notified().await;
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(notify.poll_notified(&mut cx).is_pending());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_a_waiting_task() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let notify = Rc::new(LocalNotify::default());
                let waiter = tokio::task::spawn_local({
                    let notify = notify.clone();
                    async move { notify.notified().await }
                });
                tokio::task::yield_now().await;
                assert!(!waiter.is_finished());
                notify.notify_one();
                tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                    .await
                    .expect("the waiting task was not woken")
                    .unwrap();
            })
            .await;
    }
}
