//! A failover shows up as latency, not errors (see [`crate::hold`]): a
//! request that did not reach a master (its connection refused, the slot
//! without master, the node answering `-CLUSTERDOWN`, `-LOADING` or
//! `-MASTERDOWN`) is held, and every later request of the client waits
//! behind it, so the client's order stays; all of them go again, routed
//! by the slot map current then, when this worker's holds retry the
//! client. A read whose connection broke after it was sent goes again too
//! (a read is safe to repeat); a write then fails, saying it may have run.
//! A node that answered nothing in time or something malformed is not
//! asked again: the client gets that error.

use std::rc::Rc;
use std::time::Duration;

use crate::backend::BackendError;
use crate::cluster::{Access, Slot};
use crate::hold::Retry;
use crate::protocol::{encode, Request};
use crate::router::{self, Route};

use super::Session;

impl Session {
    /// Deals with entry `token` failing with `error` on a shared
    /// connection: held when it never reached the node, sent again when
    /// it is a read; true then (else the client gets the error).
    pub(super) fn survive(&self, token: u64, error: &BackendError) -> bool {
        match error {
            BackendError::Unreachable(_) => {
                self.park(token);
                true
            }
            BackendError::Lost(_) => {
                if self.routed(token).map(|(_, access)| access) != Some(Access::Read) {
                    return false;
                }
                let budgets = self.worker.redirect_budgets();
                let within = self
                    .replies
                    .borrow_mut()
                    .followed(token)
                    .is_some_and(|followed| followed.hold(budgets).is_ok());
                if within {
                    self.restart(token);
                }
                within
            }
            BackendError::Refused(..) | BackendError::Timeout(..) | BackendError::BadReply(_) => {
                false
            }
        }
    }

    /// Holds entry `token`, a request several nodes answer together
    /// (`DBSIZE`, `KEYS`, `PUBLISH`'s node, ...) of which some node could
    /// not be reached or failed before it answered, to send it again whole
    /// to the nodes of the slot map current then: when it is a read, or
    /// when it ran nowhere (`ran_nowhere`; a write may have run on the
    /// other nodes), and not `WAIT` (its wait is over). True when held (or
    /// failed at the hold's limit).
    pub(super) fn hold_gather(&self, token: u64, ran_nowhere: bool) -> bool {
        let read = || self.routed(token).map(|(_, access)| access) == Some(Access::Read);
        if self.is_blocked_on(token) || !(ran_nowhere || read()) {
            return false;
        }
        self.park(token);
        true
    }

    /// Holds entry `token` until this worker's holds retry this client, or
    /// fails it when it was held for `cluster.failover_hold_ms` already, or
    /// when the worker holds `cluster.failover_hold_max_requests`.
    pub(super) fn park(&self, token: u64) {
        let budgets = self.worker.redirect_budgets();
        let within = match self.replies.borrow_mut().followed(token) {
            Some(followed) => followed.hold(budgets),
            None => return,
        };
        if let Err(held) = self.admit_held(within) {
            let slot = self.routed(token).and_then(|(slot, _)| slot);
            let max = self.worker.live().failover_hold_max;
            let text = crate::hold::refusal(held, slot, max);
            return self.complete_local(token, |out| encode::error(out, text.as_bytes()));
        }
        self.replies.borrow_mut().hold(token);
        if !self.parked.replace(true) {
            if let Some(me) = self.me.upgrade() {
                self.worker.holds.park(me);
            }
        }
    }

    /// While this client is parked, a new request waits behind the held
    /// ones: counted as held, or failed at once (true) when the worker
    /// holds its maximum.
    pub(super) fn refused_behind_held(&self, token: u64) -> bool {
        if !self.parked.get() || self.admit_held(Ok(())).is_ok() {
            return false;
        }
        let max = self.worker.live().failover_hold_max;
        let text = crate::hold::refusal(None, None, max);
        self.complete_local(token, |out| encode::error(out, text.as_bytes()));
        true
    }

    /// Counts one more request this client holds, as [`Holds::admit`]
    /// decides given the request's own budget check `within`.
    ///
    /// [`Holds::admit`]: crate::hold::Holds::admit
    fn admit_held(&self, within: Result<(), Duration>) -> Result<(), Option<Duration>> {
        let max = self.worker.live().failover_hold_max;
        self.worker.holds.admit(within, max)?;
        self.held_requests.set(self.held_requests.get() + 1);
        Ok(())
    }

    /// Entry `token`'s slot (when it has one) and whether it only reads;
    /// `None` once answered. Transactions count as writes.
    fn routed(&self, token: u64) -> Option<(Option<Slot>, Access)> {
        let raw = self.replies.borrow().request(token)?.0.clone();
        if self.transactions.borrow().find(token).is_some() {
            return Some((None, Access::Write));
        }
        let request = Request::reparse(&raw, self.worker.live().limits)?;
        let table = self.worker.commands();
        let access = table.lookup(&request).map_or(Access::Write, Access::of);
        let slot = match router::route(&table, &request) {
            Route::Slot(slot, _) | Route::Blocking(slot) | Route::Publish(slot) => Some(slot),
            _ => None,
        };
        Some((slot, access))
    }
}

impl Retry for Session {
    fn retry(self: Rc<Self>) {
        self.worker.holds.uncount(self.held_requests.take());
        self.parked.set(false);
        self.release_held();
        Session::flush(&self);
    }
}
