//! The session's side of transactions (their state: [`super::transaction_state`]):
//! `MULTI` queues locally, `EXEC` sends the whole transaction as one
//! request, `WATCH` goes on a dedicated connection whose requests take
//! their own lane in the session's ordering.

use crate::backend::conn::Conn;
use crate::cluster::Access;
use crate::cluster::Slot;
use crate::command::CommandTable;
use crate::protocol::{encode, Request};
use crate::router::Route;

use super::transaction_state::{nil_exec, Destination, InFlight, Watch, EXECABORT};
use super::{Session, Target};

/// The error for keys of two slots in one transaction (or its `WATCH`).
const CROSSSLOT: &[u8] = b"CROSSSLOT Keys in request don't hash to the same slot (a transaction and the keys it WATCHes must be in one slot: use a {hash tag})";

impl Session {
    /// Inside `MULTI`: queues `request` and answers `+QUEUED`, or refuses
    /// it (the transaction then aborts at `EXEC`). `None` for the commands
    /// that run at once even inside `MULTI` (`EXEC`, `DISCARD`, `MULTI`,
    /// `WATCH`, `QUIT`, `RESET`); otherwise whether to keep reading.
    pub(super) fn queue_in_multi(
        &self,
        table: &CommandTable,
        request: &Request,
        route: &Route<'_>,
    ) -> Option<bool> {
        let slot = match route {
            Route::Transaction(spec, _) if spec.name() == "unwatch" => None,
            Route::Transaction(..) => return None,
            Route::Local(spec) => match spec.name() {
                "quit" | "reset" => return None,
                // The node answers these as keyway would.
                "ping" | "echo" => None,
                name if name == "command" || name.starts_with("command|") => None,
                name => {
                    return Some(self.refuse_in_multi(
                        name,
                        "keyway answers it itself, outside the node's transaction; send it before MULTI or after EXEC",
                    ))
                }
            },
            // A channel is not a key: PUBLISH may join any transaction
            // (its count is then the node's own).
            Route::Publish(_) => None,
            Route::Slot(slot, _) | Route::Blocking(slot) => Some(*slot),
            // Inside MULTI, WAIT does not block: the node answers at once.
            Route::WaitReplicas => None,
            Route::AnyNode => None,
            Route::FanOut(_) | Route::Diagnostics(_) | Route::Info | Route::Scan => {
                return Some(self.refuse_in_multi(
                    request_name(table, request),
                    "it runs on every master, and a transaction runs on one; send it before MULTI or after EXEC",
                ))
            }
            Route::AllNodes => {
                return Some(self.refuse_in_multi(
                    request_name(table, request),
                    "it runs on every node, and a transaction runs on one; send it before MULTI or after EXEC",
                ))
            }
            Route::Subscription(spec, _) => {
                return Some(self.refuse_in_multi(
                    spec.name(),
                    "subscribe before MULTI or after EXEC",
                ))
            }
            // Keys of several slots: never one node's transaction.
            Route::Split(_) => {
                self.abort_multi();
                self.push_local(|out| encode::error(out, CROSSSLOT));
                return Some(true);
            }
            Route::Reject(rejection) => {
                self.abort_multi();
                self.push_local(|out| rejection.write_reply(request, out));
                return Some(true);
            }
        };
        let mut transactions = self.transactions.borrow_mut();
        let watched = transactions.watch.as_ref().map(|w| w.slot);
        let queued = transactions.multi.as_mut()?;
        let watch_ok = match (slot, watched) {
            (Some(slot), Some(watched)) => slot == watched,
            _ => true,
        };
        if !queued.admits(slot) || !watch_ok {
            queued.abort();
            drop(transactions);
            self.push_local(|out| encode::error(out, CROSSSLOT));
            return Some(true);
        }
        queued.push(request.raw(), slot);
        drop(transactions);
        self.push_local(|out| encode::simple(out, b"QUEUED"));
        Some(true)
    }

    /// Refuses a command inside `MULTI`, which then aborts at `EXEC`.
    fn refuse_in_multi(&self, name: &str, why: &str) -> bool {
        self.abort_multi();
        let text = format!(
            "ERR '{}' cannot be queued in a transaction through keyway: {why}",
            name.replace('|', " ")
        );
        self.push_local(|out| encode::error(out, text.as_bytes()));
        true
    }

    pub(super) fn abort_multi(&self) {
        if let Some(queued) = self.transactions.borrow_mut().multi.as_mut() {
            queued.abort();
        }
    }

    /// `MULTI`, `EXEC`, `DISCARD`, `WATCH` (keys in `slot`) or `UNWATCH`,
    /// with redis-server's replies and errors.
    pub(super) fn transaction(&self, name: &str, slot: Option<Slot>, request: Request) {
        let proto = self.client.borrow().proto;
        let mut transactions = self.transactions.borrow_mut();
        let error: &[u8] = match name {
            "multi" if transactions.multi.is_some() => b"ERR MULTI calls can not be nested",
            "multi" => {
                transactions.multi = Some(Default::default());
                drop(transactions);
                return self.push_local(|out| encode::simple(out, b"OK"));
            }
            "exec" => {
                let Some(queued) = transactions.multi.take() else {
                    drop(transactions);
                    return self.push_local(|out| encode::error(out, b"ERR EXEC without MULTI"));
                };
                let watch = transactions.watch.take();
                drop(transactions);
                if queued.is_aborted() {
                    return self.push_local(|out| encode::error(out, EXECABORT));
                }
                if watch.as_ref().is_some_and(|w| !w.holds(proto)) {
                    return self.push_local(|out| nil_exec(out, proto));
                }
                let destination = match watch {
                    Some(watch) => Destination::Watched(Some(watch)),
                    None => Destination::Shared(queued.slot()),
                };
                let (request, replies) = queued.into_request();
                let token = self.replies.borrow_mut().push_pending(request, proto);
                self.transactions.borrow_mut().in_flight.push(InFlight {
                    token,
                    replies,
                    destination,
                });
                return self.restart_transaction(token);
            }
            "discard" if transactions.multi.take().is_none() => b"ERR DISCARD without MULTI",
            "discard" | "unwatch" => {
                // Both end the watch, as on redis-server.
                transactions.watch = None;
                drop(transactions);
                return self.push_local(|out| encode::simple(out, b"OK"));
            }
            "watch" if transactions.multi.is_some() => b"ERR WATCH inside MULTI is not allowed",
            _ => {
                drop(transactions);
                return self.watch(slot, request);
            }
        };
        drop(transactions);
        self.push_local(|out| encode::error(out, error));
    }

    /// `WATCH` keys of `slot`: on the client's dedicated connection to the
    /// slot's master, opened by its first `WATCH`.
    fn watch(&self, slot: Option<Slot>, request: Request) {
        let proto = self.client.borrow().proto;
        let Some(slot) = slot else {
            // WATCH has at least one key; the router checked its slot.
            return self.push_local(|out| encode::simple(out, b"OK"));
        };
        let mut transactions = self.transactions.borrow_mut();
        let current = transactions
            .watch
            .as_ref()
            .map(|w| (w.slot, !w.holds(proto)));
        match current {
            Some((watched, _)) if watched != slot => {
                drop(transactions);
                return self.push_local(|out| encode::error(out, CROSSSLOT));
            }
            Some((_, true)) => {
                // Lost already: EXEC answers nil whatever is watched now.
                drop(transactions);
                return self.push_local(|out| encode::simple(out, b"OK"));
            }
            Some(_) => {}
            None => {
                let topology = self.worker.topology();
                let index = match self.worker.for_slot(&topology, slot, Access::Write) {
                    Ok(index) => index,
                    Err(no_node) => {
                        drop(transactions);
                        return self
                            .push_local(|out| encode::error(out, no_node.text().as_bytes()));
                    }
                };
                let Some(permit) = self.worker.blocking.try_acquire() else {
                    drop(transactions);
                    let text = self.worker.blocking.exhausted();
                    return self.push_local(|out| encode::error(out, text.as_bytes()));
                };
                let addr = topology.nodes()[index as usize].addr.clone();
                let conn = self.worker.dedicated(&addr, proto);
                let lane = transactions.next_lane();
                transactions.watch = Some(Watch::new(slot, conn, lane, proto, permit));
            }
        }
        let Some(watch) = transactions.watch.as_mut() else {
            return;
        };
        watch.sent += 1;
        let target = Target::Watched(watch.conn.clone(), watch.lane);
        drop(transactions);
        let token = self
            .replies
            .borrow_mut()
            .push_pending(request.into_raw(), proto);
        self.start(token, target);
    }

    /// Sends entry `token` (a `WATCH`, or a transaction under it) on the
    /// connection holding the client's watch; a transaction's watch ends
    /// once its `EXEC` is on the way.
    pub(super) fn send_watched(&self, token: u64, conn: &Conn) {
        if let Err(e) = self.send_on(token, conn, false) {
            // The connection is down, and the watch with it.
            self.void_watch();
            if self.transactions.borrow().find(token).is_some() {
                self.complete_nil_exec(token);
            } else {
                self.complete_local(token, |out| e.write_reply(out));
            }
        }
        let mut transactions = self.transactions.borrow_mut();
        let spent = transactions.in_flight.iter_mut().find(|t| t.token == token);
        let spent = match spent {
            Some(InFlight {
                destination: Destination::Watched(watch),
                ..
            }) => watch.take(),
            _ => None,
        };
        drop(transactions);
        // The transaction writes to the watched slot's master.
        if let Some(watch) = spent {
            let topology = self.worker.topology();
            if let Ok(index) = self.worker.for_slot(&topology, watch.slot, Access::Write) {
                self.wrote(watch.slot, &topology.nodes()[index as usize].addr);
            }
        }
    }

    /// Sends the transaction at entry `token` (again) where it goes.
    pub(super) fn restart_transaction(&self, token: u64) {
        let target = match self
            .transactions
            .borrow()
            .find(token)
            .map(|t| &t.destination)
        {
            Some(Destination::Shared(Some(slot))) => Some(Target::Slot(*slot, Access::Write)),
            Some(Destination::Shared(None)) => Some(Target::AnyMaster),
            Some(Destination::Watched(Some(w))) => Some(Target::Watched(w.conn.clone(), w.lane)),
            // Its watch went with its first attempt.
            Some(Destination::Watched(None)) => None,
            None => return,
        };
        match target {
            Some(target) => self.start(token, target),
            None => self.complete_nil_exec(token),
        }
    }

    /// Sends a held `WATCH` on the watch's connection, or answers it when
    /// the watch is gone (`UNWATCH` came) or lost (`EXEC` will be nil).
    pub(super) fn restart_watch(&self, token: u64) {
        let proto = self.replies.borrow().request(token).map(|(_, p)| p);
        let target = match (&self.transactions.borrow().watch, proto) {
            (Some(w), Some(proto)) if w.holds(proto) => {
                Some(Target::Watched(w.conn.clone(), w.lane))
            }
            _ => None,
        };
        match target {
            Some(target) => self.start(token, target),
            None => self.complete_local(token, |out| encode::simple(out, b"OK")),
        }
    }

    /// A request sent on the watch's connection was redirected: the slot
    /// moved. The first `WATCH` follows it (a new connection to the new
    /// master; nothing was watched yet); otherwise the watch is lost and a
    /// transaction under it answers nil (it ran nothing).
    pub(super) fn redirected_on_watch(&self, token: u64, addr: &str, asking: bool) {
        if self.transactions.borrow().find(token).is_some() {
            self.void_watch();
            return self.complete_nil_exec(token);
        }
        let mut transactions = self.transactions.borrow_mut();
        let first = !asking
            && transactions
                .watch
                .as_ref()
                .is_some_and(|w| w.sent == 1 && !w.void);
        if first {
            let lane = transactions.next_lane();
            if let Some(watch) = transactions.watch.as_mut() {
                let conn = self.worker.dedicated(addr, watch.proto);
                std::mem::replace(&mut watch.conn, conn.clone()).retire();
                watch.lane = lane;
                drop(transactions);
                let mut sent = self.sent.get();
                sent.lane = lane;
                self.sent.set(sent);
                return self.send_watched(token, &conn);
            }
        }
        drop(transactions);
        self.void_watch();
        self.complete_local(token, |out| encode::simple(out, b"OK"));
    }

    /// The client's watch is lost: its `EXEC` answers nil.
    pub(super) fn void_watch(&self) {
        if let Some(watch) = self.transactions.borrow_mut().watch.as_mut() {
            watch.void = true;
        }
    }

    /// Answers the transaction at entry `token` with `EXEC`'s nil.
    fn complete_nil_exec(&self, token: u64) {
        let Some(proto) = self.replies.borrow().request(token).map(|(_, p)| p) else {
            return;
        };
        self.complete_local(token, |out| nil_exec(out, proto));
    }
}

/// The command's table name, for an error about it.
fn request_name<'t>(table: &'t CommandTable, request: &Request) -> &'t str {
    table.lookup(request).map_or("", |spec| spec.name())
}
