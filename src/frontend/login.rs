//! `AUTH` and `HELLO ... AUTH`: credentials checked against keyway's users.
//! A failure is answered as redis-server words it, counted per client
//! address (past `auth.max_failures`, attempts from that address are
//! delayed: [`attempt_delay`]), counted in `keyway_auth_failures_total`,
//! and recorded in `ACL LOG`; the password itself is never logged.

use std::time::Duration;

use crate::acl::log::{Entry, Reason};
use crate::command::CommandSpec;
use crate::frontend::client_errors::{self, ClientError};
use crate::protocol::Request;
use crate::worker::Shared;

use super::client::ClientInfo;

/// The reply to credentials that do not match an enabled user.
pub const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";

/// Logs the client in as `user` if `password` is one of its own; `command`
/// (`AUTH` or `HELLO`) names the attempt in `ACL LOG`.
pub fn log_in(
    client: &mut ClientInfo,
    shared: &Shared,
    command: &str,
    user: &[u8],
    password: &[u8],
) -> Result<(), &'static [u8]> {
    let found = shared.acl.users().authenticate(user, password).cloned();
    match found {
        Some(user) => {
            tracing::Span::current().record("user", &**user.name());
            client.log_in(user);
            Ok(())
        }
        None => {
            let limits = shared.live.load().client_auth.throttle;
            shared.acl.throttle.failed(client.record.peer.ip(), limits);
            crate::metrics::auth_failed("wrongpass");
            let name = String::from_utf8_lossy(user);
            client_errors::log(ClientError::WrongPass, client.record.peer, &name);
            shared.acl.log().add(Entry::now(
                Reason::Auth,
                "toplevel",
                command.to_string(),
                String::from_utf8_lossy(user).into_owned(),
                client.record.line().trim_end().to_string(),
            ));
            Err(WRONGPASS)
        }
    }
}

/// `tls.user_from_cert = "cn"`: logs a client whose verified certificate
/// names an enabled user (its common name) in as that user, without a
/// password, as redis-server's `tls-auth-clients-user CN` does. A name
/// that is no user (or a disabled one) leaves the client as it was:
/// `default` when that needs no password, else not logged in.
pub fn log_in_by_certificate(client: &mut ClientInfo, shared: &Shared, certificate: &[u8]) {
    let Some(name) = crate::tls::x509::subject_common_name(certificate) else {
        return;
    };
    let user = shared
        .acl
        .users()
        .get(name.as_bytes())
        .filter(|u| u.enabled())
        .cloned();
    match user {
        Some(user) => client.log_in(user),
        None => tracing::debug!(
            user = %name,
            "client certificate names no enabled user; not logged in by it"
        ),
    }
}

/// How long to hold the reply to `request` (`spec` its entry): past
/// `auth.max_failures` failures from the client's address, an `AUTH` or a
/// `HELLO` with `AUTH` waits `auth.failure_delay_ms`; anything else, no
/// time.
pub fn attempt_delay(
    spec: &CommandSpec,
    request: &Request,
    client: &ClientInfo,
    shared: &Shared,
) -> Duration {
    let attempt = match spec.name() {
        "auth" => true,
        "hello" => request
            .args()
            .skip(2)
            .any(|a| a.eq_ignore_ascii_case(b"AUTH")),
        _ => false,
    };
    if !attempt {
        return Duration::ZERO;
    }
    let limits = shared.live.load().client_auth.throttle;
    shared.acl.throttle.delay(client.record.peer.ip(), limits)
}
