//! The ACL part of the admission step: is the client authenticated, and
//! may its user run this command on these keys and channels. A refusal is
//! answered with redis-server's error and recorded in `ACL LOG`.

use std::time::Duration;

use bytes::Bytes;

use crate::acl::log::{Entry, Reason};
use crate::acl::Denial;
use crate::command::CommandSpec;
use crate::protocol::Request;

use super::super::client::ClientInfo;
use super::Session;

/// The reply to any command but `AUTH`, `HELLO`, `QUIT` and `RESET` before
/// the client authenticated.
const NOAUTH: &str = "NOAUTH Authentication required.";

impl Session {
    /// `Err` with the error text when the client's user may not run
    /// `request` (whose table entry is `spec`). A user allowed everything
    /// costs one atomic load and a flag test.
    #[inline]
    pub(super) fn check_access(&self, spec: &CommandSpec, request: &Request) -> Result<(), String> {
        let mut client = self.client.borrow_mut();
        client.refresh_user(&self.worker.shared.acl);
        let denial = match &client.user {
            Some(user) if user.unrestricted() => {
                return if user.nopass() && spec.flags().is_admin() {
                    node_admin_from_afar(spec, &client)
                } else {
                    Ok(())
                };
            }
            // AUTH, HELLO, QUIT, RESET: always allowed, as in redis-server.
            _ if spec.flags().is_no_auth() => return Ok(()),
            None => return Err(NOAUTH.to_string()),
            Some(user) => match user.check(spec, request) {
                Ok(()) => return Ok(()),
                Err(denial) => denial,
            },
        };
        let (reason, object) = match denial {
            Denial::Command => (Reason::Command, spec.name().to_string()),
            Denial::Key(i) => (Reason::Key, lossy(request.arg(i))),
            Denial::Channel(i) => (Reason::Channel, lossy(request.arg(i))),
        };
        let in_multi = self.transactions.borrow().multi.is_some();
        self.worker.shared.acl.log().add(Entry::now(
            reason,
            if in_multi { "multi" } else { "toplevel" },
            object,
            client
                .user
                .as_ref()
                .map_or_else(String::new, |u| u.name().to_string()),
            client.record.line().trim_end().to_string(),
        ));
        Err(denial.error(spec))
    }

    /// Answers `request` with `reply` only after `delay` (an authentication
    /// attempt from an address past `auth.max_failures`), in its place in
    /// the reply order.
    pub(super) fn reply_after(&self, delay: Duration, request: Request, reply: Bytes) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let proto = self.client.borrow().proto;
        let token = self
            .replies
            .borrow_mut()
            .push_pending(request.into_raw(), proto);
        tokio::task::spawn_local(async move {
            tokio::time::sleep(delay).await;
            me.complete(token, reply);
            me.release_held();
            me.flush();
        });
    }
}

/// Changing every node's configuration through a keyway without
/// passwords: only from loopback, as redis-server's protected mode would.
fn node_admin_from_afar(spec: &CommandSpec, client: &ClientInfo) -> Result<(), String> {
    let changes_nodes = matches!(
        spec.name(),
        "config|set" | "config|resetstat" | "config|rewrite"
    );
    if changes_nodes && !crate::acl::is_local(client.record.peer.ip()) {
        return Err(format!(
            "ERR '{}' through keyway changes every node of the cluster, so with no password set it is allowed only to loopback clients; set auth.password (or ACL users) and use a user with +@admin",
            spec.name().replace('|', " ").to_uppercase()
        ));
    }
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
