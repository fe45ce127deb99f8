//! TLS material on both sides, and its rotation.
//!
//! - [`ServerTls`]: the certificate keyway presents on `tls.listen`, and
//!   the CAs it checks client certificates against.
//! - [`ClusterTls`]: what keyway's connections to the nodes use
//!   (`[cluster.tls]`): the CAs, the client certificate, the name to check.
//!
//! Both are [`Reloadable`]: the files are read again on SIGHUP and when
//! one of them changes on disk (checked every `tls.reload_interval_s`).
//! New handshakes take the new configuration; connections already open
//! keep the one they started with. A file that does not load (half
//! written, a key that is not the certificate's) is refused with a log
//! line naming it, and the previous material stays in use.
//!
//! The handshakes and record I/O themselves are [`crate::net`]'s.

mod material;
mod verify;
pub mod x509;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tracing::{info, warn};

pub use material::{ClientAuth, ClientFiles, ServerFiles, TlsError, Verify};

/// The listener's material.
pub type ServerTls = Reloadable<ServerConfig>;

/// Loads what a [`Reloadable`] holds: the configuration, and the leaf
/// certificate whose expiry is reported.
type Loader<C> =
    Box<dyn Fn() -> Result<(C, Option<CertificateDer<'static>>), TlsError> + Send + Sync>;

/// A rustls configuration read from files, re-read when they change.
pub struct Reloadable<C> {
    /// `listener` label of the expiry metric: `client` or `cluster`.
    label: &'static str,
    /// The files it is read from (for change checks and messages).
    paths: Vec<PathBuf>,
    load: Loader<C>,
    current: ArcSwap<C>,
    loaded: Mutex<Loaded>,
}

/// What the last load attempt saw.
struct Loaded {
    /// The files' identities then: a change triggers a reload.
    stamp: Vec<Option<Stamp>>,
    /// The leaf certificate's `notAfter` (Unix seconds), if any.
    not_after: Option<i64>,
}

/// A file's identity: rotation by rename changes the inode, an in-place
/// rewrite the size or the modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl<C> Reloadable<C> {
    fn new(label: &'static str, paths: Vec<PathBuf>, load: Loader<C>) -> Result<Self, TlsError> {
        let stamp = stamps(&paths);
        let (config, leaf) = load()?;
        Ok(Reloadable {
            label,
            paths,
            load,
            current: ArcSwap::from_pointee(config),
            loaded: Mutex::new(Loaded {
                stamp,
                not_after: leaf.as_deref().and_then(x509::not_after),
            }),
        })
    }

    /// The configuration new handshakes use.
    pub fn config(&self) -> Arc<C> {
        self.current.load_full()
    }

    /// Reads the files again when one changed since the last attempt, or
    /// always with `force` (SIGHUP), and logs what happened; then sets
    /// `keyway_tls_certificate_expiry_seconds` to the time left.
    pub fn reload(&self, force: bool) {
        let stamp = stamps(&self.paths);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if force || stamp != loaded.stamp {
            loaded.stamp = stamp;
            self.load_again(&mut loaded);
        }
        if let Some(not_after) = loaded.not_after {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            crate::metrics::tls_certificate_expiry(self.label, (not_after - now) as f64);
        }
    }

    /// Loads the files; keeps the material in use when they do not load.
    fn load_again(&self, loaded: &mut Loaded) {
        match (self.load)() {
            Ok((config, leaf)) => {
                self.current.store(Arc::new(config));
                loaded.not_after = leaf.as_deref().and_then(x509::not_after);
                info!(
                    listener = self.label,
                    "TLS material ({}) loaded again; new connections use it",
                    self.describe()
                );
            }
            Err(e) => warn!(
                listener = self.label,
                "TLS material not reloaded, the previous one stays in use: {e}"
            ),
        }
    }

    fn describe(&self) -> String {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        paths.join(", ")
    }
}

impl ServerTls {
    /// Reads the listener's files; fails on the first unusable one.
    pub fn load(files: ServerFiles) -> Result<ServerTls, TlsError> {
        let paths = [
            Some(&files.cert_file),
            Some(&files.key_file),
            files.ca_file.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let load = move || material::server_config(&files).map(|(c, leaf)| (c, Some(leaf)));
        Reloadable::new("client", paths, Box::new(load))
    }
}

/// What connections to the nodes use: the rustls configuration and the
/// name to check nodes against.
pub struct ClusterTls {
    material: Reloadable<ClientConfig>,
    /// `cluster.tls.server_name`: checked and sent as SNI instead of the
    /// node's own host.
    server_name: Option<ServerName<'static>>,
}

impl ClusterTls {
    /// Reads the files; fails on the first unusable one. Warns when
    /// certificates are not checked.
    pub fn load(files: ClientFiles, server_name: Option<String>) -> Result<ClusterTls, TlsError> {
        let server_name = match server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| TlsError {
                path: "cluster.tls.server_name".into(),
                why: format!("{name:?} is not a DNS name or IP address: {e}"),
            })?),
            None => None,
        };
        if files.verify == Verify::None {
            warn!("cluster.tls.verify = \"none\": node certificates are not checked; anyone on the path can read and change the traffic (use it for tests only)");
        }
        let paths = [&files.ca_file, &files.cert_file, &files.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let load = move || material::client_config(&files);
        Ok(ClusterTls {
            material: Reloadable::new("cluster", paths, Box::new(load))?,
            server_name,
        })
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.material.config()
    }

    /// The name a node at `host` is checked against.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host:?} is no name to check a certificate against ({e}); set cluster.tls.server_name")),
        }
    }

    /// See [`Reloadable::reload`].
    pub fn reload(&self, force: bool) {
        self.material.reload(force);
    }
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("files", &self.material.paths)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl<C> std::fmt::Debug for Reloadable<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloadable")
            .field("label", &self.label)
            .field("paths", &self.paths)
            .finish()
    }
}

/// Checks the files of `listener` and `cluster` every `every` (the first
/// time at once), reloading what changed and keeping the expiry metric
/// current.
pub async fn watch(
    listener: Option<Arc<ServerTls>>,
    cluster: Option<Arc<ClusterTls>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(listener) = &listener {
            listener.reload(false);
        }
        if let Some(cluster) = &cluster {
            cluster.reload(false);
        }
    }
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| Stamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
