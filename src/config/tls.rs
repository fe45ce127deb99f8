//! `[tls]` (the client-facing TLS listener) and `[cluster.tls]` (TLS to
//! the cluster's nodes), checked and typed. The files themselves are read
//! at start by [`crate::tls`], which names the one that does not load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::{ClientAuth, ClientFiles, ServerFiles, Verify};

use super::file::{ClusterTlsSection, TlsSection};
use super::{invalid, one_of, ConfigError};

/// Default `tls.reload_interval_s`.
const RELOAD_INTERVAL_S: u64 = 60;
/// CAs used for nodes when `cluster.tls.ca_file` is not set: Debian's
/// bundle of public CAs (managed Redis offerings use public CAs).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS listener (`[tls]` with `listen` set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListen {
    /// Where TLS clients connect.
    pub addr: SocketAddr,
    /// Certificate, key, client CAs, client certificate policy.
    pub files: ServerFiles,
    /// `tls.user_from_cert = "cn"`: a client certificate's common name
    /// logs the client in as that ACL user.
    pub user_from_cert: bool,
}

/// TLS to the nodes (`[cluster.tls]` with `enabled = true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    /// CAs, client certificate, checks.
    pub files: ClientFiles,
    /// The name node certificates are checked against (and sent as SNI)
    /// instead of each node's host.
    pub server_name: Option<String>,
}

/// `[tls]`, typed; `None` when there is no TLS listener.
pub fn listener(section: TlsSection) -> Result<Option<TlsListen>, ConfigError> {
    let addr = match section.listen.as_deref() {
        None | Some("") => return Ok(None),
        Some(text) => text.parse().map_err(|_| ConfigError::Invalid {
            key: "tls.listen",
            reason: format!("`{text}` is not an IP:port address (\"\" turns it off)"),
        })?,
    };
    let cert_file = section
        .cert_file
        .ok_or_else(|| invalid("tls.cert_file", "is needed with tls.listen"))?;
    let key_file = section
        .key_file
        .ok_or_else(|| invalid("tls.key_file", "is needed with tls.listen"))?;
    let client_auth = one_of(
        "tls.client_auth",
        section.client_auth.as_deref(),
        &[
            ("none", ClientAuth::None),
            ("optional", ClientAuth::Optional),
            ("required", ClientAuth::Required),
        ],
    )?;
    if client_auth != ClientAuth::None && section.ca_file.is_none() {
        return Err(invalid(
            "tls.ca_file",
            "is needed when tls.client_auth checks client certificates",
        ));
    }
    let user_from_cert = one_of(
        "tls.user_from_cert",
        section.user_from_cert.as_deref(),
        &[("none", false), ("cn", true)],
    )?;
    if user_from_cert && client_auth == ClientAuth::None {
        return Err(invalid(
            "tls.user_from_cert",
            "needs tls.client_auth = \"optional\" or \"required\"",
        ));
    }
    Ok(Some(TlsListen {
        addr,
        files: ServerFiles {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: section.ca_file.map(PathBuf::from),
            client_auth,
        },
        user_from_cert,
    }))
}

/// `tls.reload_interval_s`.
pub fn reload_interval(section: &TlsSection) -> Result<Duration, ConfigError> {
    match section.reload_interval_s.unwrap_or(RELOAD_INTERVAL_S) {
        0 => Err(invalid("tls.reload_interval_s", "must be greater than 0")),
        s => Ok(Duration::from_secs(s)),
    }
}

/// `[cluster.tls]`, typed; `None` unless `enabled = true`.
pub fn cluster(section: ClusterTlsSection) -> Result<Option<ClusterTlsFiles>, ConfigError> {
    if section.enabled != Some(true) {
        return Ok(None);
    }
    let verify = one_of(
        "cluster.tls.verify",
        section.verify.as_deref(),
        &[
            ("full", Verify::Full),
            ("ca", Verify::Ca),
            ("none", Verify::None),
        ],
    )?;
    if section.cert_file.is_some() != section.key_file.is_some() {
        return Err(invalid(
            "cluster.tls.cert_file",
            "and cluster.tls.key_file go together",
        ));
    }
    let ca_file = match (section.ca_file, verify) {
        (Some(file), _) => Some(PathBuf::from(file)),
        (None, Verify::None) => None,
        (None, _) => Some(PathBuf::from(SYSTEM_CAS)),
    };
    Ok(Some(ClusterTlsFiles {
        files: ClientFiles {
            ca_file,
            cert_file: section.cert_file.map(PathBuf::from),
            key_file: section.key_file.map(PathBuf::from),
            verify,
        },
        server_name: section.server_name.filter(|name| !name.is_empty()),
    }))
}
