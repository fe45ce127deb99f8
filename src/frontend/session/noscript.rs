//! The session's side of [`crate::script_cache`]: `SCRIPT LOAD`/`FLUSH` and
//! `EVAL` bodies passing through are remembered, and an `EVALSHA` of a
//! remembered script that a master answers `-NOSCRIPT` is healed and sent
//! again.

use bytes::BytesMut;
use tracing::info;

use crate::cluster::NodeIndex;
use crate::protocol::{encode, Request};

use super::Session;

impl Session {
    /// Remembers the script of a `SCRIPT LOAD` (forgets all on `SCRIPT
    /// FLUSH`); other requests are left alone.
    pub(super) fn note_script_command(&self, request: &Request) {
        if request.argc() < 2 || !request.arg(0).eq_ignore_ascii_case(b"script") {
            return;
        }
        let scripts = &self.worker.shared.scripts;
        match request.arg(1) {
            sub if sub.eq_ignore_ascii_case(b"load") && request.argc() == 3 => {
                scripts.remember(request.arg(2))
            }
            sub if sub.eq_ignore_ascii_case(b"flush") => scripts.clear(),
            _ => {}
        }
    }

    /// Remembers the script of an `EVAL`/`EVAL_RO` (`spec_name`), so that
    /// an `EVALSHA` of it can be healed later.
    pub(super) fn note_eval(&self, spec_name: &str, request: &Request) {
        if matches!(spec_name, "eval" | "eval_ro") && request.argc() > 1 {
            let worker = &self.worker;
            let mut seen = worker.seen_scripts.borrow_mut();
            seen.remember(request.arg(1), &worker.shared.scripts);
        }
    }

    /// Entry `token` got `-NOSCRIPT`: if it is an `EVALSHA` of a script
    /// that passed through keyway (and its redirect budget allows), loads the
    /// script on every master, on the connections this client uses, and
    /// sends the request again. False when the error stands.
    ///
    /// Requests the client pipelined after it may run before it on that
    /// master; this happens once per script and master.
    pub(super) fn reload_script(&self, token: u64) -> bool {
        let Some((raw, proto)) = self
            .replies
            .borrow()
            .request(token)
            .map(|(raw, proto)| (raw.clone(), proto))
        else {
            return false;
        };
        let Some(request) = Request::reparse(&raw, self.worker.live().limits) else {
            return false;
        };
        let name = request.arg(0);
        let evalsha =
            name.eq_ignore_ascii_case(b"evalsha") || name.eq_ignore_ascii_case(b"evalsha_ro");
        let body = match request.get(1) {
            Some(sha) if evalsha => self.worker.shared.scripts.get(sha),
            _ => None,
        };
        let Some(body) = body else {
            return false;
        };
        let budgets = self.worker.redirect_budgets();
        let spent = self
            .replies
            .borrow_mut()
            .followed(token)
            .and_then(|f| f.spend_redirect(budgets));
        if spent.is_none() {
            return false;
        }
        let mut load = BytesMut::new();
        encode::command(&mut load, &[b"SCRIPT", b"LOAD", &body]);
        let id = self.client.borrow().id;
        let topology = self.worker.topology();
        for index in 0..topology.nodes().len() {
            let conns = self.worker.conns(&topology, index as NodeIndex);
            // A node that is down fails the EVALSHA sent after it too.
            let _ = conns.pick(proto, id).send_unanswered(&load);
        }
        drop(topology);
        info!(client = id, sha = %String::from_utf8_lossy(request.arg(1)), "NOSCRIPT for a script keyway has seen; loading it on every master again");
        self.restart(token);
        true
    }
}
