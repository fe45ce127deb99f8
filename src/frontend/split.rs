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
use crate::backend::{BackendError, ReplyTarget};
use crate::cluster::redirect::{self, Redirect};
use crate::cluster::{Slot, Topology};
use crate::protocol::{encode, Protocol};
use crate::worker::Worker;

use super::fanout::Collector;
use super::session::{NO_TOPOLOGY, TRYAGAIN_BACKOFF};

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
        });
        let me: Rc<dyn ReplyTarget> = split.clone();
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
                        .map_err(Err),
                    Err(text) => Err(Ok(error(text))),
                };
                if let Err(reply) = sent {
                    failed.push((i, reply));
                }
            }
        }
        for (i, reply) in failed {
            split.finish(i, reply);
        }
    }

    /// The connections to the master of `slot` in `topology`, or the error
    /// for a slot without one.
    fn conns(&self, slot: Slot, topology: &Topology) -> Result<Rc<NodeConns>, &'static str> {
        match topology.master_of(slot) {
            Some(index) => Ok(self.worker.master(topology, index)),
            None if topology.epoch() == 0 => Err(NO_TOPOLOGY),
            None => Err("CLUSTERDOWN Hash slot not served"),
        }
    }

    /// Sends part `part` to its slot's master in `topology`.
    fn send_by_map(&self, part: usize, topology: &Topology) {
        let slot = self.plan.borrow().slot(part);
        self.send(part, self.conns(slot, topology), false);
    }

    /// Sends part `part` on `conns` (with `ASKING` first when `asking`), or
    /// ends it with the error in `conns` or the one sending gives.
    fn send(&self, part: usize, conns: Result<Rc<NodeConns>, &'static str>, asking: bool) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let sent = match conns {
            Ok(conns) => {
                let me: Rc<dyn ReplyTarget> = me;
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
            Err(text) => return self.finish(part, Ok(error(text))),
        };
        if let Err(e) = sent {
            self.finish(part, Err(e));
        }
    }

    /// Follows a redirect of part `part`, as `Session::follow` does for a
    /// whole request and within the same budgets (counted per part). False
    /// when a `TRYAGAIN` budget is spent: that reply then stands.
    ///
    /// A `TRYAGAIN` is retried where it came from: on the slot's master by
    /// the current map (the source, while some keys have moved and some
    /// not), or, when it answered an `ASK`, on the importing node again,
    /// with `ASKING`. That node answers a multi-key request only once it
    /// holds every key (or owns the slot), so the retry reads nothing stale,
    /// and it spends no `MOVED`/`ASK` budget going back through the source.
    fn follow(&self, part: usize, redirect: Redirect<'_>) -> bool {
        let config = &self.worker.shared.config;
        let attempt = {
            let mut plan = self.plan.borrow_mut();
            let p = plan.progress(part);
            let (used, max) = match redirect {
                Redirect::TryAgain => (&mut p.tryagains, config.max_tryagain),
                _ => (&mut p.redirects, config.max_redirects),
            };
            *used = used.saturating_add(1);
            (u32::from(*used) <= max).then_some(u32::from(*used))
        };
        let Some(attempt) = attempt else {
            if let Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } = redirect {
                let text = redirect::budget_spent(slot, config.max_redirects);
                self.finish(part, Ok(error(&text)));
                return true;
            }
            return false;
        };
        match redirect {
            Redirect::Moved { slot, addr } => {
                crate::metrics::redirect("moved");
                self.worker.shared.view.report_moved(slot, addr);
                self.send(part, Ok(self.worker.node(addr)), false);
            }
            Redirect::Ask { addr, .. } => {
                crate::metrics::redirect("ask");
                self.send(part, Ok(self.worker.node(addr)), true);
            }
            Redirect::TryAgain => {
                crate::metrics::redirect("tryagain");
                let Some(me) = self.me.upgrade() else {
                    return true;
                };
                let pause = TRYAGAIN_BACKOFF * 2u32.saturating_pow(attempt.min(8) - 1);
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
                    ReplyTarget::flush(&*me);
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

impl ReplyTarget for Split {
    fn deliver(&self, part: u64, reply: Result<Bytes, BackendError>) {
        let part = part as usize;
        if let Ok(bytes) = &reply {
            let followed = bytes.first() == Some(&b'-')
                && redirect::parse(bytes).is_some_and(|r| self.follow(part, r));
            if followed {
                return;
            }
        }
        self.finish(part, reply);
    }

    fn flush(&self) {
        if self.missing.get() == 0 {
            self.collector.flush_gathered();
        }
    }
}

/// The error reply `-text`.
fn error(text: &str) -> Bytes {
    let mut out = BytesMut::new();
    encode::error(&mut out, text.as_bytes());
    out.freeze()
}
