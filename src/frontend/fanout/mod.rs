//! Requests that need several nodes, and the joining of their replies:
//! commands every master answers together ([`Gather`], merged as the
//! command's [`Merge`] says in [`merge`], or as `INFO` ([`info`]) and the
//! per-node diagnostics ([`diagnostics`]) need), commands every node,
//! replicas included, must accept ([`merge::all_ok`]), and multi-key
//! commands split per slot ([`split`]). The first error among the parts is
//! the reply. Each part knows its node, for merges that name it.

pub mod diagnostics;
pub mod info;
pub mod memory;
pub mod merge;
pub mod split;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::backend::{BackendError, ReplySink};
use crate::command::Merge;
use crate::protocol::{encode, parse_i64, Protocol};
use crate::pubsub::census::{receivers, Census};

use diagnostics::Report;
use info::Own;
use merge::{all_ok, decode_part, merge};

/// How a [`Gather`] joins its parts.
pub enum Join {
    /// As the command's [`Merge`] says.
    Merge(Merge),
    /// `INFO`: the masters' sections merged, keyway's own in place of
    /// those about the server (see [`info`]).
    Info(Box<Own>),
    /// Per-node diagnostics, merged naming each part's node (see
    /// [`diagnostics`]).
    Diagnostics(Report),
    /// `+OK` from every node, else the first error naming its node (see
    /// [`merge::all_ok`]).
    AllOk,
    /// `PUBLISH` of this channel to one node: its count of receivers, with
    /// keyway's subscriber connections replaced by their clients.
    Receivers(Box<(Bytes, Arc<Census>)>),
}

/// Receives a merged reply; implemented by sessions.
pub trait Collector {
    /// The merged reply for entry `token`, in chunks to be written one
    /// after another. May be called while the request is being sent (when
    /// a node is down at once).
    fn gathered(&self, token: u64, chunks: Vec<Bytes>);
    /// Called after a batch of backend replies completed a merge: the
    /// collector may now send held requests and write what is ready.
    fn flush_gathered(&self);
    /// A node of entry `token` could not be reached, or its connection
    /// broke before it answered (`ran_nowhere`: no node got the request):
    /// true when the collector takes the request back, to send it again
    /// whole (the parts' replies are dropped); else the merged reply
    /// carries the error.
    fn node_failed(&self, token: u64, ran_nowhere: bool) -> bool;
}

/// The parts of one fanned-out request.
pub struct Gather {
    collector: Rc<dyn Collector>,
    token: u64,
    join: Join,
    proto: Protocol,
    /// The node of each part, by part number.
    nodes: Vec<Arc<str>>,
    parts: RefCell<Vec<Option<Result<Bytes, BackendError>>>>,
    missing: Cell<usize>,
}

impl Gather {
    /// A collector for the replies to entry `token` of `nodes`, part `i`
    /// coming from `nodes[i]` (a `host:port`).
    pub fn new(
        collector: Rc<dyn Collector>,
        token: u64,
        join: Join,
        proto: Protocol,
        nodes: Vec<Arc<str>>,
    ) -> Rc<Gather> {
        let parts = nodes.len();
        Rc::new(Gather {
            collector,
            token,
            join,
            proto,
            nodes,
            parts: RefCell::new(vec![None; parts]),
            missing: Cell::new(parts),
        })
    }
}

impl ReplySink for Gather {
    fn deliver(&self, part: u64, reply: Result<Bytes, BackendError>) {
        {
            let mut parts = self.parts.borrow_mut();
            let Some(slot @ None) = parts.get_mut(part as usize) else {
                return;
            };
            *slot = Some(reply);
        }
        self.missing.set(self.missing.get() - 1);
        if self.missing.get() > 0 {
            return;
        }
        let parts = std::mem::take(&mut *self.parts.borrow_mut());
        let node_failed = parts.iter().any(|p| {
            matches!(
                p,
                Some(Err(BackendError::Unreachable(_) | BackendError::Lost(_)))
            )
        });
        let ran_nowhere = || {
            let unreachable = |p: &Option<_>| matches!(p, Some(Err(BackendError::Unreachable(_))));
            parts.iter().all(unreachable)
        };
        if node_failed && self.collector.node_failed(self.token, ran_nowhere()) {
            return;
        }
        let parts = self
            .nodes
            .iter()
            .zip(parts)
            .filter_map(|(n, p)| Some((n, p?)));
        let mut out = BytesMut::new();
        let chunks = match &self.join {
            Join::Merge(how) => merge(*how, parts.map(|(_, p)| p), self.proto),
            Join::Info(own) => {
                info::reply(parts.map(|(_, p)| p), self.proto, own, &mut out);
                vec![out.freeze()]
            }
            Join::Diagnostics(report) => {
                let parts = parts.map(|(node, p)| (&**node, decode_part(p)));
                diagnostics::reply(report, parts, self.proto, &mut out);
                vec![out.freeze()]
            }
            Join::AllOk => {
                all_ok(parts.map(|(node, p)| (&**node, p)), &mut out);
                vec![out.freeze()]
            }
            Join::Receivers(publish) => {
                let (channel, census) = &**publish;
                for (node, part) in parts {
                    match part {
                        Ok(reply) => match reply
                            .strip_prefix(b":")
                            .and_then(|r| r.strip_suffix(b"\r\n"))
                            .and_then(parse_i64)
                        {
                            Some(n) => {
                                encode::integer(&mut out, receivers(census, channel, node, n))
                            }
                            None => out.extend_from_slice(&reply), // an error
                        },
                        Err(e) => e.write_reply(&mut out),
                    }
                }
                vec![out.freeze()]
            }
        };
        self.collector.gathered(self.token, chunks);
    }

    fn flush(&self) {
        if self.missing.get() == 0 {
            self.collector.flush_gathered();
        }
    }
}
