//! Credentials keyway presents to the cluster's nodes (`cluster.user`,
//! `cluster.password`, `cluster.password_file`, `KEYWAY_CLUSTER_PASSWORD`).
//! A password never appears in `Debug` output or in logs.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tls::ClusterTls;

use super::ConfigError;

/// What every connection to a node needs besides its address: the
/// credentials and, when the cluster speaks TLS, the TLS material.
#[derive(Clone, Debug, Default)]
pub struct NodeAccess {
    /// `AUTH` credentials, when the cluster needs them.
    pub auth: Option<Arc<ClusterAuth>>,
    /// TLS to the nodes (`[cluster.tls]`), when on.
    pub tls: Option<Arc<ClusterTls>>,
}

/// How keyway authenticates to every node it connects to.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterAuth {
    /// The ACL user; `None` authenticates as `default` (`requirepass`).
    pub user: Option<String>,
    /// Where the password comes from.
    password: Password,
}

/// Where the nodes' password comes from.
#[derive(Clone, PartialEq, Eq)]
enum Password {
    /// Given in the file or the environment.
    Given(String),
    /// The first line of this file, read at every connect, so a password
    /// changed in the file is used by the next connection.
    File(PathBuf),
}

impl fmt::Debug for ClusterAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = match &self.password {
            Password::Given(_) => "(given)".to_string(),
            Password::File(path) => format!("(file {})", path.display()),
        };
        f.debug_struct("ClusterAuth")
            .field("user", &self.user)
            .field("password", &password)
            .finish()
    }
}

impl ClusterAuth {
    /// The credentials `[cluster]` describes, or `None` for a cluster
    /// without authentication. A password file must be readable now; a user
    /// needs a password.
    pub fn from_keys(
        user: Option<String>,
        password: Option<String>,
        password_file: Option<String>,
    ) -> Result<Option<ClusterAuth>, ConfigError> {
        let password = match (password, password_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "cluster.password_file",
                    "set cluster.password or cluster.password_file, not both",
                ))
            }
            (Some(given), None) => Password::Given(given),
            (None, Some(path)) => Password::File(PathBuf::from(path)),
            (None, None) if user.is_some() => {
                return Err(invalid(
                    "cluster.user",
                    "needs cluster.password or cluster.password_file",
                ))
            }
            (None, None) => return Ok(None),
        };
        if user.as_deref() == Some("") {
            return Err(invalid("cluster.user", "must not be empty"));
        }
        let auth = ClusterAuth { user, password };
        if let Err(e) = auth.password() {
            return Err(invalid("cluster.password_file", &e.to_string()));
        }
        Ok(Some(auth))
    }

    /// The password now: the given one, or the password file's first line
    /// (read now).
    pub fn password(&self) -> io::Result<String> {
        match &self.password {
            Password::Given(password) => Ok(password.clone()),
            Password::File(path) => password_file(path),
        }
    }
}

/// The password on the first line of the file at `path` (the line's end
/// trimmed); an error names the file.
pub(super) fn password_file(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or_default().trim_end();
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has no password on its first line", path.display()),
        ));
    }
    Ok(line.to_string())
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}
