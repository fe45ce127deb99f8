//! Who may use keyway (`[auth]`): the default user's password
//! (`auth.password`, `auth.password_file`, `KEYWAY_PASSWORD`), ACL users
//! (`auth.users` lines or `auth.acl_file`), protected mode, and the delay
//! of repeated failed authentications. The users are built (and every
//! line checked) here, so a bad line stops start-up or a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::acl::throttle::Limits;
use crate::acl::{UserLine, Users};
use crate::command::CommandTable;

use super::file::AuthSection;
use super::ConfigError;

/// `auth.max_failures` default.
pub const MAX_FAILURES: u32 = 10;
/// `auth.failure_window_s` default.
pub const FAILURE_WINDOW_S: u64 = 10;
/// `auth.failure_delay_ms` default.
pub const FAILURE_DELAY_MS: u64 = 1000;

/// The client side's authentication settings, checked.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// The users the configuration defines.
    pub users: Arc<Users>,
    /// Where `ACL SAVE` writes and `ACL LOAD` reads, if configured.
    pub acl_file: Option<PathBuf>,
    /// Refuse non-loopback clients while the default user needs no
    /// password.
    pub protected_mode: bool,
    /// When failed authentications from one address are delayed.
    pub throttle: Limits,
}

impl ClientAuth {
    /// Checks `[auth]` and builds its users.
    pub fn from_section(auth: AuthSection) -> Result<ClientAuth, ConfigError> {
        let password = match (auth.password, auth.password_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "auth.password_file",
                    "set auth.password or auth.password_file, not both".into(),
                ))
            }
            (Some(p), None) => Some(p),
            (None, Some(path)) => {
                let password = super::auth::password_file(Path::new(&path));
                Some(password.map_err(|e| invalid("auth.password_file", e.to_string()))?)
            }
            (None, None) => None,
        };
        if password.as_deref() == Some("") {
            return Err(invalid("auth.password", "must not be empty".into()));
        }
        let (lines, key) = match (auth.users, &auth.acl_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "auth.acl_file",
                    "set auth.users or auth.acl_file, not both".into(),
                ))
            }
            (Some(users), None) => {
                let lines = users
                    .into_iter()
                    .enumerate()
                    .map(|(i, text)| UserLine {
                        origin: format!("auth.users[{i}]"),
                        text,
                    })
                    .collect();
                (lines, "auth.users")
            }
            (None, Some(path)) => (
                acl_file_lines(path).map_err(|e| invalid("auth.acl_file", e))?,
                "auth.acl_file",
            ),
            (None, None) => (Vec::new(), "auth.users"),
        };
        let users = Users::build(password.as_deref(), &lines, &CommandTable::builtin())
            .map_err(|e| invalid(key, e.to_string()))?;
        let max_failures = auth.max_failures.unwrap_or(MAX_FAILURES);
        if max_failures == 0 {
            return Err(invalid(
                "auth.max_failures",
                "must be greater than 0".into(),
            ));
        }
        Ok(ClientAuth {
            users: Arc::new(users),
            acl_file: auth.acl_file.map(PathBuf::from),
            protected_mode: auth.protected_mode.unwrap_or(true),
            throttle: Limits {
                max_failures,
                window: Duration::from_secs(auth.failure_window_s.unwrap_or(FAILURE_WINDOW_S)),
                delay: Duration::from_millis(auth.failure_delay_ms.unwrap_or(FAILURE_DELAY_MS)),
            },
        })
    }
}

/// The user lines of an ACL file.
pub fn acl_file_lines(path: &str) -> Result<Vec<UserLine>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Users::file_lines(path, &text).map_err(|e| e.to_string())
}

fn invalid(key: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { key, reason }
}
