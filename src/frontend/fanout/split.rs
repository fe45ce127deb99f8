//! Multi-key commands across slots (MGET, MSET, DEL, UNLINK, EXISTS,
//! TOUCH): a request whose keys fall in several slots becomes one request
//! per slot ([`Plan`]); the parts go out in parallel, each on the shared
//! connection of its slot's master, and [`Split`] joins their replies into
//! the one reply the client expects, as the command's [`SplitJoin`](crate::command::SplitJoin) says.
//!
//! Per slot, not per node: a node refuses a multi-key command across slots
//! even when it serves them all. Parts are numbered in the order of their
//! first key, so the first error among them is the error of the earliest
//! key. Each part follows its own `MOVED`/`ASK`/`TRYAGAIN` within the same
//! budgets as a whole request, so resharding stays invisible to the client.
//!
//! A request whose keys share one slot never comes here: the router sends
//! it like any keyed command.

mod plan;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};

use crate::backend::pool::NodeConns;
use crate::backend::{BackendError, ReplySink};
use crate::cluster::redirect::{self, Decision};
use crate::cluster::{Access, NoNode, Slot, Topology};
use crate::config::ReadPolicy;
use crate::hold::Retry;
use crate::protocol::{encode, Protocol};
use crate::worker::Worker;

use super::Collector;

pub use plan::Plan;

/// A request in flight as parts: sends them, follows each part's
/// redirects, and hands the joined reply to the session.
pub struct Split {
    me: Weak<Split>,
    worker: Rc<Worker>,
    collector: Rc<dyn Collector>,
    token: u64,
    proto: Protocol,
    client: u64,
    plan: RefCell<Plan>,
    missing: Cell<usize>,
    /// Parts held while their shard has no reachable master.
    parked: RefCell<Vec<usize>>,
}

impl Split {
    /// Sends every part of `plan` (entry `token` of client `client`, replies
    /// in `proto`) to its slot's master in `topology`; the joined reply goes
    /// to `collector.gathered(token, ..)`, possibly before this returns
    /// (when nodes are unreachable).
    pub fn start(
        worker: Rc<Worker>,
        collector: Rc<dyn Collector>,
        token: u64,
        proto: Protocol,
        client: u64,
        plan: Plan,
        topology: &Topology,
    ) {
        let parts = plan.parts();
        let split = Rc::new_cyclic(|me| Split {
            me: me.clone(),
            worker,
            collector,
            token,
            proto,
            client,
            plan: RefCell::new(plan),
            missing: Cell::new(parts),
            parked: RefCell::default(),
        });
        let me: Rc<dyn ReplySink> = split.clone();
        // One pass over the plan; parts that fail at once end after it
        // (the last part to end joins them all, which reads the plan).
        let mut failed = Vec::new();
        {
            let plan = split.plan.borrow();
            for i in 0..plan.parts() {
                let sent = match split.conns(plan.slot(i), topology) {
                    Ok(conns) => conns
                        .pick(proto, client)
                        .send(plan.request(i), false, &me, i as u64)
                        .map_err(Ok),
                    Err(no_node) => Err(Err(no_node)),
                };
                if let Err(why) = sent {
                    failed.push((i, why));
                }
            }
        }
        for (i, why) in failed {
            split.unsent(i, why);
        }
    }

    /// The connections to the node serving `slot` in `topology` for this
    /// split's access (a replica's for a read, as the policy says), or why
    /// there is none.
    fn conns(&self, slot: Slot, topology: &Topology) -> Result<Rc<NodeConns>, NoNode> {
        let (access, policy) = {
            let plan = self.plan.borrow();
            (plan.access(), plan.read_policy())
        };
        self.worker
            .slot_conns(topology, slot, access, policy, self.client)
            .map(|(conns, _)| conns)
    }

    /// A read part that failed on a replica (it went down, or stopped
    /// answering) is sent once more, to its slot's master, as a whole read
    /// is (see [`Worker::read_failed_on`]). True when it was sent again.
    fn read_again(&self, part: usize, error: &BackendError) -> bool {
        let topology = self.worker.topology();
        let on_replica = !topology.nodes().iter().any(|n| n.addr == *error.addr());
        let first = on_replica && {
            let mut plan = self.plan.borrow_mut();
            plan.access() == Access::Read
                && !std::mem::replace(&mut plan.progress(part).followed.off_replica, true)
        };
        if first {
            self.worker.read_failed_on(error.addr());
            let slot = self.plan.borrow().slot(part);
            let master = ReadPolicy::Master;
            let conns = self
                .worker
                .slot_conns(&topology, slot, Access::Read, master, self.client);
            self.send(part, conns.map(|(conns, _)| conns), false);
        }
        first
    }

    /// Sends part `part` to its slot's master in `topology`.
    fn send_by_map(&self, part: usize, topology: &Topology) {
        let slot = self.plan.borrow().slot(part);
        self.send(part, self.conns(slot, topology), false);
    }

    /// Sends part `part` on `conns` (with `ASKING` first when `asking`), or
    /// ends it with the error in `conns` or the one sending gives.
    fn send(&self, part: usize, conns: Result<Rc<NodeConns>, NoNode>, asking: bool) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let sent = match conns {
            Ok(conns) => {
                let me: Rc<dyn ReplySink> = me;
                // Queueing never calls back into this split.
                let mut plan = self.plan.borrow_mut();
                let sent = conns.pick(self.proto, self.client).send(
                    plan.request(part),
                    asking,
                    &me,
                    part as u64,
                );
                plan.progress(part).asked = asking.then_some(conns);
                sent
            }
            Err(no_node) => return self.unsent(part, Err(no_node)),
        };
        if let Err(e) = sent {
            self.unsent(part, Ok(e));
        }
    }

    /// Part `part` could not be sent, for `why`: held while its shard has
    /// no reachable master (see [`crate::hold`]), else ended with the error.
    fn unsent(&self, part: usize, why: Result<BackendError, NoNode>) {
        match why {
            Ok(e) if !self.survive(part, &e) => self.finish(part, Err(e)),
            Ok(_) => {}
            Err(NoNode::SlotNotServed) => self.park(part),
            Err(no_node) => self.finish(part, Ok(error(&no_node.text()))),
        }
    }

    /// Deals with part `part` failing with `error`, as a whole request's
    /// failure is: held when it never reached the node, sent again when it
    /// is a read; true then (else the part ends with the error).
    fn survive(&self, part: usize, error: &BackendError) -> bool {
        match error {
            BackendError::Unreachable(_) => {
                self.park(part);
                true
            }
            BackendError::Lost(_) => {
                let budgets = self.worker.redirect_budgets();
                let resend = {
                    let mut plan = self.plan.borrow_mut();
                    plan.access() == Access::Read
                        && plan.progress(part).followed.hold(budgets).is_ok()
                };
                if resend {
                    self.send_by_map(part, &self.worker.topology());
                }
                resend
            }
            BackendError::Refused(..) | BackendError::Timeout(..) | BackendError::BadReply(_) => {
                false
            }
        }
    }

    /// Holds part `part` until this worker's holds retry this split, or
    /// ends it with the error for a request held too long (or one too many).
    fn park(&self, part: usize) {
        let budgets = self.worker.redirect_budgets();
        let max = self.worker.live().failover_hold_max;
        let within = self.plan.borrow_mut().progress(part).followed.hold(budgets);
        if let Err(held) = self.worker.holds.admit(within, max) {
            let slot = self.plan.borrow().slot(part);
            let text = crate::hold::refusal(held, Some(slot), max);
            return self.finish(part, Ok(error(&text)));
        }
        let mut parked = self.parked.borrow_mut();
        parked.push(part);
        if parked.len() == 1 {
            if let Some(me) = self.me.upgrade() {
                self.worker.holds.park(me);
            }
        }
    }

    /// Follows a redirect of part `part` as [`redirect::decide`] says,
    /// within the same budgets as a whole request (counted per part).
    /// False when the reply stands.
    ///
    /// A `TRYAGAIN` is retried where it came from: on the slot's master by
    /// the current map (the source, while some keys have moved and some
    /// not), or, when it answered an `ASK`, on the importing node again,
    /// with `ASKING`. That node answers a multi-key request only once it
    /// holds every key (or owns the slot), so the retry reads nothing stale,
    /// and it spends no `MOVED`/`ASK` budget going back through the source.
    fn follow(&self, part: usize, reply: &[u8]) -> bool {
        let budgets = self.worker.redirect_budgets();
        let decision = redirect::decide(
            reply,
            &mut self.plan.borrow_mut().progress(part).followed,
            budgets,
        );
        if let Some(kind) = decision.kind() {
            crate::metrics::redirect(kind);
        }
        match decision {
            Decision::Deliver => return false,
            Decision::GiveUp(text) => self.finish(part, Ok(error(&text))),
            Decision::Moved { slot, addr } => {
                self.worker.shared.view.report_moved(slot, addr);
                self.send(part, Ok(self.worker.node(addr)), false);
            }
            Decision::Ask { addr } => self.send(part, Ok(self.worker.node(addr)), true),
            Decision::Hold(_) => self.park(part),
            Decision::RetryAfter(pause, _) => {
                let Some(me) = self.me.upgrade() else {
                    return true;
                };
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(pause).await;
                    let asked = me.plan.borrow_mut().progress(part).asked.clone();
                    match asked {
                        Some(conns) => me.send(part, Ok(conns), true),
                        None => {
                            let topology = me.worker.topology();
                            me.send_by_map(part, &topology);
                        }
                    }
                    ReplySink::flush(&*me);
                });
            }
        }
        true
    }

    /// Records part `part`'s final reply; the last one joins them all.
    fn finish(&self, part: usize, reply: Result<Bytes, BackendError>) {
        if !self.plan.borrow_mut().set_reply(part, reply) {
            return;
        }
        let left = self.missing.get() - 1;
        self.missing.set(left);
        if left == 0 {
            let mut out = BytesMut::new();
            self.plan.borrow().join(&mut out);
            self.collector.gathered(self.token, vec![out.freeze()]);
        }
    }
}

impl ReplySink for Split {
    fn deliver(&self, part: u64, reply: Result<Bytes, BackendError>) {
        let part = part as usize;
        let followed = match &reply {
            Ok(bytes) => self.follow(part, bytes),
            Err(error) => self.read_again(part, error) || self.survive(part, error),
        };
        if !followed {
            self.finish(part, reply);
        }
    }

    fn flush(&self) {
        if self.missing.get() == 0 {
            self.collector.flush_gathered();
        }
    }
}

impl Retry for Split {
    fn retry(self: Rc<Self>) {
        let parked = std::mem::take(&mut *self.parked.borrow_mut());
        self.worker.holds.uncount(parked.len());
        let topology = self.worker.topology();
        for part in parked {
            self.send_by_map(part, &topology);
        }
        ReplySink::flush(&*self);
    }
}

/// The error reply `-text`.
fn error(text: &str) -> Bytes {
    let mut out = BytesMut::new();
    encode::error(&mut out, text.as_bytes());
    out.freeze()
}
