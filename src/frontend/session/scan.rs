//! `SCAN` over every master (the cursor: [`super::scan_cursor`]).

use std::rc::Rc;

use crate::backend::ReplySink;
use crate::cluster::{NoNode, Topology};
use crate::protocol::{encode, Request};

use super::scan_cursor::{self as scan, ScanReply, MAX_MASTERS};
use super::Session;

impl Session {
    /// Sends the `SCAN` of entry `token` to the master its cursor names in
    /// `topology`, with that master's own cursor.
    pub(super) fn scan(&self, token: u64, topology: &Topology) {
        let Some((raw, proto, me)) = self.pending(token) else {
            return;
        };
        let (order, print) = topology.scan_order();
        if order.is_empty() || order.len() > MAX_MASTERS {
            return self.complete_no_node(token, NoNode::NoTopology);
        }
        let request = Request::reparse(&raw, self.worker.live().limits);
        let position = request
            .as_ref()
            .and_then(|r| scan::position(r.arg(1), order.len(), print));
        let (Some(request), Some(position)) = (request, position) else {
            return self.complete_local(token, |out| encode::error(out, b"ERR invalid cursor"));
        };
        let bytes = scan::node_request(&request, position.cursor);
        let session: Rc<dyn ReplySink> = me;
        let target: Rc<dyn ReplySink> =
            ScanReply::new(session, token, proto, position, order.len(), print);
        let id = self.client.borrow().id;
        let conns = self.worker.conns(topology, order[position.master]);
        if let Err(e) = conns.pick(proto, id).send(&bytes, false, &target, 0) {
            if !self.survive(token, &e) {
                self.complete_local(token, |out| e.write_reply(out));
            }
        }
    }
}
