//! Sending a request on its way, in order: the ordering rule decides
//! whether it waits ([`super::order`]); then it goes to its node's shared
//! connection, to every master or every node ([`Gather`]), as parts per
//! slot ([`Split`]), or on a dedicated connection; node replies that are
//! redirects are followed here ([`redirect::decide`]).

use std::rc::Rc;
use std::sync::Arc;

use crate::backend::conn::Conn;
use crate::backend::pool::NodeConns;
use crate::backend::{BackendError, ReplySink};
use crate::cluster::redirect::{self, Decision};
use crate::cluster::{Access, NoNode, NodeIndex, Slot, Topology};
use crate::config::ReadPolicy;
use crate::protocol::{encode, Request};
use crate::router::{self, Route};

use super::super::fanout::info::Own;
use super::super::fanout::split::{Plan, Split};
use super::super::fanout::{Gather, Join};
use super::order::{self, Next, Queue, Way, SHARED_LANE};
use super::transaction_state::TransactionReplies;
use super::{Session, Target, NO_TARGET};

impl Session {
    /// Sends a new request, unless the ordering rule ([`order::must_hold`])
    /// says it waits for the requests in flight: then it is held until they
    /// are answered.
    pub(super) fn start(&self, token: u64, target: Target) {
        let worker = &self.worker;
        let topology = worker.topology();
        let epoch = topology.epoch();
        {
            let replies = self.replies.borrow();
            let Some((_, proto)) = replies.request(token) else {
                return;
            };
            let way = Way {
                epoch,
                proto,
                lane: target.lane(),
            };
            let next = Next {
                way,
                dedicated: target.is_dedicated(),
            };
            let queue = Queue {
                // This request counts as in flight itself.
                in_flight: replies.in_flight().saturating_sub(1),
                held: replies.held(),
                blocked: self.blocked.borrow().is_some(),
            };
            if order::must_hold(self.sent.get(), next, queue, self.force_send.replace(false)) {
                drop(replies);
                if !self.refused_behind_held(token) {
                    self.replies.borrow_mut().hold(token);
                }
                return;
            }
            self.sent.set(way);
        }
        let conns = match target {
            Target::AllMasters(merge) => return self.fan_out(token, Join::Merge(merge), &topology),
            Target::AllNodes => {
                let nodes = worker.all_nodes(&topology);
                drop(topology);
                return self.gather(token, Join::AllOk, nodes);
            }
            Target::Diagnostics(mut report) if report.dedicated() => {
                report.take_keyways_part(&worker.shared);
                let masters = topology.nodes().iter().map(|n| n.addr.clone()).collect();
                return self.to_each_dedicated(token, masters, Join::Diagnostics(report), None);
            }
            Target::Diagnostics(mut report) => {
                report.take_keyways_part(&worker.shared);
                return self.fan_out(token, Join::Diagnostics(report), &topology);
            }
            Target::Info(keyway) => {
                let own = Box::new(Own::of(&worker.shared, keyway));
                return self.fan_out(token, Join::Info(own), &topology);
            }
            Target::WaitReplicas => return self.wait_replicas(token, &topology),
            Target::Publish(slot, channel) => {
                // PUBLISH is no read: a replica never serves it.
                return match worker.for_slot(&topology, slot, Access::Write) {
                    Ok(index) => {
                        let addr = topology.nodes()[index as usize].addr.clone();
                        let conns = worker.conns(&topology, index);
                        drop(topology);
                        let census = worker.shared.subscribers.clone();
                        let join = Join::Receivers(Box::new((channel, census)));
                        self.gather(token, join, vec![(addr, conns)])
                    }
                    Err(no_node) => self.complete_no_node(token, no_node),
                };
            }
            Target::Scan => return self.scan(token, &topology),
            Target::Split(plan) => return self.split(token, plan, &topology),
            Target::Blocking(slot) => {
                return match worker.for_slot(&topology, slot, Access::Write) {
                    Ok(index) => {
                        let addr = topology.nodes()[index as usize].addr.clone();
                        drop(topology);
                        self.wrote(slot, &addr);
                        self.block(token, addr, false)
                    }
                    Err(no_node) => self.complete_no_node(token, no_node),
                };
            }
            Target::Slot(slot, Access::Write) => {
                match worker.for_slot(&topology, slot, Access::Write) {
                    Ok(index) => {
                        self.wrote(slot, &topology.nodes()[index as usize].addr);
                        Ok(worker.conns(&topology, index))
                    }
                    Err(no_node) => Err(no_node),
                }
            }
            Target::Slot(slot, Access::Read) => {
                let client = self.client.borrow().id;
                let mut policy = self.read_policy([slot].into_iter());
                if policy == ReadPolicy::Master {
                    worker
                        .slot_conns(&topology, slot, Access::Read, policy, client)
                        .map(|(conns, _)| conns)
                } else {
                    let mut replies = self.replies.borrow_mut();
                    let followed = replies.followed(token);
                    // Sent again after its replica failed, or answered a
                    // null: the master answers.
                    if followed.as_ref().is_some_and(|f| f.off_replica) {
                        policy = ReadPolicy::Master;
                    }
                    let served = worker.slot_conns(&topology, slot, Access::Read, policy, client);
                    if let (Some(followed), Ok((_, on_replica))) = (followed, &served) {
                        followed.on_replica = *on_replica;
                    }
                    served.map(|(conns, _)| conns)
                }
            }
            Target::AnyMaster => worker.any_master(&topology),
            Target::Watched(conn, _) => {
                drop(topology);
                return self.send_watched(token, &conn);
            }
        };
        drop(topology);
        self.send(token, conns, false);
    }

    /// Sends the held requests, in order, once nothing sent before them is
    /// still in flight, under the slot map current now.
    pub(super) fn release_held(&self) {
        // Not while parked: the holds release this client (see `hold`).
        while !self.parked.get() {
            let tokens = self.replies.borrow_mut().release();
            if tokens.is_empty() {
                return;
            }
            // The first goes out whatever it is (nothing is in flight);
            // `start` holds the ones after it again if the protocol, the
            // map or the connection changes.
            let mut sent = self.sent.get();
            sent.epoch = self.worker.topology().epoch();
            let first = self.replies.borrow().request(tokens.start).map(|(_, p)| p);
            if let Some(proto) = first {
                sent.proto = proto;
                self.force_send.set(true);
            }
            self.sent.set(sent);
            for token in tokens {
                self.restart(token);
            }
            self.force_send.set(false);
        }
    }

    /// Sends the request of entry `token` on `conns` (with `ASKING` first
    /// when `asking`), or answers it with the error in `conns`.
    pub(super) fn send(&self, token: u64, conns: Result<Rc<NodeConns>, NoNode>, asking: bool) {
        let conns = match conns {
            Ok(conns) => conns,
            Err(NoNode::SlotNotServed) => return self.park(token),
            Err(no_node) => return self.complete_no_node(token, no_node),
        };
        let proto = match self.replies.borrow().request(token) {
            Some((_, proto)) => proto,
            None => return,
        };
        let client = self.client.borrow().id;
        if let Err(e) = self.send_on(token, conns.pick(proto, client), asking) {
            if !self.survive(token, &e) {
                self.complete_local(token, |out| e.write_reply(out));
            }
        }
    }

    /// Queues the request of entry `token` on `conn`: as one request, or,
    /// for a transaction, as `MULTI` … `EXEC` with one reply per command.
    pub(super) fn send_on(
        &self,
        token: u64,
        conn: &Conn,
        asking: bool,
    ) -> Result<(), BackendError> {
        let replies = self.replies.borrow();
        let (Some((request, _)), Some(me)) = (replies.request(token), self.me.upgrade()) else {
            return Ok(());
        };
        let me: Rc<dyn ReplySink> = me;
        let transaction = self.transactions.borrow().find(token).map(|t| t.replies);
        match transaction {
            None => conn.send(request, asking, &me, token),
            Some(count) => {
                let collect: Rc<dyn ReplySink> = TransactionReplies::new(me, token, count);
                conn.send_many(request, count, asking, &collect)
            }
        }
    }

    /// Follows a redirect for entry `token` as [`redirect::decide`] says;
    /// false when the node's reply stands.
    pub(super) fn follow(&self, token: u64, reply: &[u8]) -> bool {
        let budgets = self.worker.redirect_budgets();
        let decision = match self.replies.borrow_mut().followed(token) {
            Some(followed) => redirect::decide(reply, followed, budgets),
            None => return false,
        };
        if let Some(kind) = decision.kind() {
            crate::metrics::redirect(kind);
        }
        match decision {
            Decision::Deliver => return false,
            Decision::GiveUp(text) => {
                self.complete_local(token, |out| encode::error(out, text.as_bytes()))
            }
            Decision::Moved { slot, addr } => {
                self.worker.shared.view.report_moved(slot, addr);
                self.resend(token, addr, false);
            }
            Decision::Ask { addr } => self.resend(token, addr, true),
            Decision::Hold(_) => self.park(token),
            Decision::RetryAfter(pause, _) => {
                let Some(me) = self.me.upgrade() else {
                    return true;
                };
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(pause).await;
                    me.restart(token);
                    me.release_held();
                    me.flush();
                });
            }
        }
        true
    }

    /// Sends entry `token` again, to `addr`, the way it went before: on a
    /// dedicated connection if it is the blocking command in flight.
    pub(super) fn resend(&self, token: u64, addr: &str, asking: bool) {
        if self.sent.get().lane != SHARED_LANE {
            return self.redirected_on_watch(token, addr, asking);
        }
        if self.is_blocked_on(token) {
            self.block(token, addr.into(), asking);
        } else {
            self.send(token, Ok(self.worker.node(addr)), asking);
        }
    }

    /// Routes entry `token` again from scratch and starts it (after
    /// `TRYAGAIN`, or when it was held). Entries already answered are skipped.
    pub(super) fn restart(&self, token: u64) {
        if self.transactions.borrow().find(token).is_some() {
            return self.restart_transaction(token);
        }
        let Some(raw) = self
            .replies
            .borrow()
            .request(token)
            .map(|(raw, _)| raw.clone())
        else {
            return;
        };
        // The bytes parsed once already; this cannot fail, but if it did the
        // client must still get an answer.
        let Some(request) = Request::reparse(&raw, self.worker.live().limits) else {
            return self.complete_local(token, |out| encode::error(out, NO_TARGET));
        };
        let table = self.worker.commands();
        let target = match router::route(&table, &request) {
            Route::Transaction(..) => {
                drop(table);
                return self.restart_watch(token);
            }
            // Local commands keyway forwards after all (`COMMAND INFO`,
            // ...) go to any master.
            Route::Local(_) => Target::AnyMaster,
            route => match Target::of(route, &request) {
                Some(target) => target,
                None => {
                    drop(table);
                    return self.complete_local(token, |out| encode::error(out, NO_TARGET));
                }
            },
        };
        drop(table);
        self.start(token, target);
    }

    /// Sends entry `token` to every master of `topology`; a [`Gather`]
    /// merges the replies into the entry.
    pub(super) fn fan_out(&self, token: u64, join: Join, topology: &Topology) {
        let masters = (0..topology.nodes().len()).map(|index| {
            let addr = topology.nodes()[index].addr.clone();
            (addr, self.worker.conns(topology, index as NodeIndex))
        });
        self.gather(token, join, masters.collect());
    }

    /// Sends entry `token` to each of `nodes` (an address and its
    /// connections), part `i` to `nodes[i]`; a [`Gather`] joins the
    /// replies into the entry.
    pub(super) fn gather(&self, token: u64, join: Join, nodes: Vec<(Arc<str>, Rc<NodeConns>)>) {
        if nodes.is_empty() {
            return self.complete_no_node(token, NoNode::NoTopology);
        }
        let Some((request, proto, me)) = self.pending(token) else {
            return;
        };
        let id = self.client.borrow().id;
        let addrs = nodes.iter().map(|(addr, _)| addr.clone()).collect();
        let gather: Rc<dyn ReplySink> = Gather::new(me, token, join, proto, addrs);
        for (part, (_, conns)) in nodes.iter().enumerate() {
            let part = part as u64;
            if let Err(e) = conns.pick(proto, id).send(&request, false, &gather, part) {
                gather.deliver(part, Err(e));
            }
        }
    }

    /// Sends entry `token` as one part per slot of its keys; a [`Split`]
    /// joins the replies into the entry.
    pub(super) fn split(&self, token: u64, mut plan: Plan, topology: &Topology) {
        let Some((_, proto, me)) = self.pending(token) else {
            return;
        };
        if plan.access() == Access::Write {
            for part in 0..plan.parts() {
                let slot = plan.slot(part);
                if let Ok(index) = self.worker.for_slot(topology, slot, Access::Write) {
                    self.wrote(slot, &topology.nodes()[index as usize].addr);
                }
            }
        }
        plan.read_by(self.read_policy((0..plan.parts()).map(|part| plan.slot(part))));
        let client = self.client.borrow().id;
        Split::start(
            self.worker.clone(),
            me,
            token,
            proto,
            client,
            plan,
            topology,
        );
    }

    /// Where this client's reads of `slots` go: the master while it holds
    /// a `WATCH` (what it reads then decides its transaction) or when it
    /// wrote to one of them within `read.read_your_writes_ms`; a replica
    /// when it sent `READONLY`; else as `read.policy` says.
    pub(super) fn read_policy(&self, slots: impl Iterator<Item = Slot>) -> ReadPolicy {
        let policy = if self.transactions.borrow().watch.is_some() {
            return ReadPolicy::Master;
        } else if self.client.borrow().read_replicas {
            ReadPolicy::PreferReplica
        } else {
            self.worker.live().read.policy
        };
        if policy != ReadPolicy::Master && self.writes.borrow().read_on_master(slots) {
            return ReadPolicy::Master;
        }
        policy
    }

    /// Remembers that a write of this client to `slot` went to the master
    /// at `master` (see [`super::writes::Writes`]).
    pub(super) fn wrote(&self, slot: Slot, master: &Arc<str>) {
        let window = self.worker.live().read.read_your_writes;
        self.writes.borrow_mut().wrote(slot, master, window);
    }
}
