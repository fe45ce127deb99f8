//! Taking a client's request in: first the one admission step
//! ([`Session::admit`]: what this client may send now: authentication, ACL
//! rules, subscribed mode; for every request whatever its route), then
//! routing: queued in `MULTI`, a transaction or subscription command, a
//! local answer, a refusal, or a place in the reply order and a start
//! towards its node(s).

use crate::command::{CommandSpec, CommandTable, RouteClass};
use crate::protocol::{encode, Protocol, Request};
use crate::router::{self, Rejection, Route};
use crate::stats::commands::UNKNOWN;

use super::super::local::{self, Outcome};
use super::super::login;
use super::{Session, Target, NO_TARGET};

impl Session {
    /// Takes a new request's place in the queue and starts it on its way.
    /// False when the client asked to close (`QUIT`).
    pub(super) fn submit(&self, request: Request) -> bool {
        let table = self.worker.commands();
        let spec = table.lookup(&request);
        // The request's first place counts it, by command.
        let command = spec.map_or(UNKNOWN, |s| s.acl_id() as u16);
        self.replies.borrow_mut().stamp(Some(command));
        let more = self.submit_spec(&table, spec, request);
        self.replies.borrow_mut().stamp(None);
        // Pub/sub confirmations go out whatever `CLIENT REPLY` says, as
        // from redis-server; the request still counts against a SKIP.
        if self.client.borrow_mut().reply_mode.silences()
            && !spec.is_some_and(|s| s.class() == RouteClass::Subscription)
        {
            self.replies.borrow_mut().silence_last();
        }
        more
    }

    fn submit_spec(
        &self,
        table: &CommandTable,
        spec: Option<&CommandSpec>,
        request: Request,
    ) -> bool {
        let worker = &self.worker;
        if let Err(mut refusal) = self.admit(spec, &request) {
            // As redis-server: a refused command fails the transaction,
            // and a refused EXEC discards it, quoting the error without
            // its generic `ERR` code (`NOPERM` and such stay).
            self.abort_multi();
            if spec.is_some_and(|s| s.name() == "exec") {
                self.transactions.borrow_mut().reset();
                self.note_multi();
                let error = refusal.strip_prefix("ERR ").unwrap_or(&refusal);
                refusal = format!("EXECABORT Transaction discarded because of: {error}");
            }
            self.push_local(|out| encode::error(out, refusal.as_bytes()));
            return true;
        }
        if let Some(spec) = spec {
            self.note_eval(spec.name(), &request);
        }
        let route = router::route_spec(spec, &request);
        if self.transactions.borrow().multi.is_some() {
            if let Some(queued) = self.queue_in_multi(table, &request, &route) {
                self.note_multi();
                return queued;
            }
        }
        let target = match route {
            Route::Transaction(spec, slot) => {
                self.transaction(spec.name(), slot, request);
                self.note_multi();
                return true;
            }
            Route::Subscription(spec, _) => {
                self.subscription(spec.name(), &request);
                return true;
            }
            Route::Local(spec) => {
                let delay =
                    login::attempt_delay(spec, &request, &self.client.borrow(), &worker.shared);
                let mut outcome = Outcome::Reply;
                let reply = self.build_reply(|out| {
                    let mut client = self.client.borrow_mut();
                    outcome =
                        local::execute(spec, &request, &mut client, &worker.shared, table, out);
                });
                if spec.name() == "reset" {
                    self.unsubscribe_all();
                    self.transactions.borrow_mut().reset();
                    self.note_multi();
                }
                match outcome {
                    Outcome::Forward => Target::AnyMaster,
                    Outcome::Reply | Outcome::Quit if !delay.is_zero() => {
                        self.reply_after(delay, request, reply);
                        return outcome != Outcome::Quit;
                    }
                    Outcome::Reply | Outcome::Quit => {
                        self.replies.borrow_mut().push_ready(reply);
                        return outcome != Outcome::Quit;
                    }
                }
            }
            Route::Reject(rejection) => {
                self.push_local(|out| rejection.write_reply(&request, out));
                return true;
            }
            route @ (Route::Slot(..)
            | Route::Publish(_)
            | Route::AnyNode
            | Route::FanOut(_)
            | Route::AllNodes
            | Route::Diagnostics(_)
            | Route::WaitReplicas
            | Route::Info
            | Route::Scan
            | Route::Split(_)
            | Route::Blocking(_)) => {
                if let Route::FanOut(_) = route {
                    self.note_script_command(&request);
                }
                let Some(target) = Target::of(route, &request) else {
                    self.push_local(|out| encode::error(out, NO_TARGET));
                    return true;
                };
                target
            }
        };
        let proto = self.client.borrow().proto;
        let token = self
            .replies
            .borrow_mut()
            .push_pending(request.into_raw(), proto);
        self.start(token, target);
        true
    }

    /// The admission step, before routing (`spec` is the request's table
    /// entry): `Err` with the error text (after `-`) when this client may
    /// not send `request` now. In redis-server's order: unknown commands
    /// get their own error first (from the router), then wrong arities
    /// (so that, as there, a wrong `EXEC` discards the transaction), then
    /// authentication, the user's rules, subscribed mode.
    pub(super) fn admit(
        &self,
        spec: Option<&CommandSpec>,
        request: &Request,
    ) -> Result<(), String> {
        let Some(spec) = spec else {
            return Ok(());
        };
        if !spec.arity_ok(request.argc()) {
            return Err(Rejection::WrongArity(spec).text(request));
        }
        self.check_access(spec, request)?;
        match self.refused_while_subscribed(spec) {
            Some(name) => Err(format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")),
            None => Ok(()),
        }
    }

    /// The command's name if this is a RESP2 client in subscribed mode and
    /// the command is not one it may send there (as redis-server decides).
    fn refused_while_subscribed(&self, spec: &CommandSpec) -> Option<String> {
        let client = self.client.borrow();
        if client.proto != Protocol::Resp2 || !client.subscriptions.any() {
            return None;
        }
        let allowed = spec.class() == RouteClass::Subscription
            || matches!(spec.name(), "ping" | "quit" | "reset");
        (!allowed).then(|| spec.name().to_string())
    }

    /// Shows the commands queued in `MULTI` (if in one) to `CLIENT LIST`.
    pub(super) fn note_multi(&self) {
        let queued = self.transactions.borrow().multi.as_ref().map(|q| q.count());
        self.client.borrow().record.set_multi(queued);
    }
}
