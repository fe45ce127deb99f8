//! Configuration: the TOML file's shape → command-line overrides → one
//! validated, typed [`Config`]. No unvalidated configuration exists past
//! [`Config::load`].

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::Limits;

mod auth;
mod client_auth;
pub mod defaults;
mod file;
mod read;
mod tls;

pub use auth::{ClusterAuth, NodeAccess};
pub use client_auth::{acl_file_lines, ClientAuth};
pub use read::{ReadPolicy, ReadSettings};
pub use tls::{ClusterTlsFiles, TlsListen};

pub use file::{
    AuthSection, BackendSection, ClientSection, ClusterSection, FileConfig, ProxySection,
    ReadSection,
};

/// A configuration problem, naming the offending key. `main` prints it and
/// exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML parser's message, which names the key.
        message: String,
    },
    /// A key has a value outside its allowed range.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The key, as written in the file (`section.key`).
        key: &'static str,
        /// What is allowed.
        reason: String,
    },
}

/// Command-line overrides; `None` leaves the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--cluster`, comma separated.
    pub cluster: Option<String>,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--log-level`.
    pub log_level: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `KEYWAY_CLUSTER_PASSWORD`: the nodes' password, over the file's
    /// `cluster.password` / `cluster.password_file`.
    pub cluster_password: Option<String>,
    /// `KEYWAY_PASSWORD`: the default user's password, over the file's
    /// `auth.password` / `auth.password_file`.
    pub password: Option<String>,
}

/// The validated configuration: the keys read once at start, and the keys
/// that may change while keyway runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys that take a restart to change.
    pub startup: Startup,
    /// Keys that may change at run time: one value, swapped whole (see
    /// `worker::Shared::live`) and read through each worker's cache.
    pub live: Live,
}

/// Keys read once at start: the sockets, threads and pools they size.
#[derive(Debug, Clone)]
pub struct Startup {
    /// Address plain clients connect to; `None` with `proxy.listen = ""`
    /// (TLS only).
    pub listen: Option<SocketAddr>,
    /// The TLS listener, if on.
    pub tls: Option<TlsListen>,
    /// TLS to the nodes, if on.
    pub cluster_tls: Option<ClusterTlsFiles>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
    /// Address of the admin HTTP endpoint, if on.
    pub admin_listen: Option<SocketAddr>,
    /// Worker threads.
    pub workers: NonZeroUsize,
    /// Seed nodes, `host:port`, never empty.
    pub seeds: Vec<String>,
    /// Multiplexed connections per node per worker, per protocol.
    pub connections_per_node: NonZeroUsize,
    /// Dedicated connections for blocked clients, per worker.
    pub max_blocking_connections: NonZeroUsize,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// `proxy.log_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event (tracing's default format).
    Text,
    /// One JSON object per event (tracing-subscriber's JSON format), for
    /// log pipelines.
    Json,
}

impl Startup {
    /// The keys whose value differs in `new`: read only at start, a
    /// reload cannot apply them.
    pub fn changed_keys(&self, new: &Startup) -> Vec<&'static str> {
        let changed = [
            ("proxy.listen", self.listen != new.listen),
            ("tls.*", self.tls != new.tls),
            ("cluster.tls.*", self.cluster_tls != new.cluster_tls),
            (
                "tls.reload_interval_s",
                self.tls_reload_interval != new.tls_reload_interval,
            ),
            ("admin.listen", self.admin_listen != new.admin_listen),
            ("proxy.workers", self.workers != new.workers),
            ("cluster.seeds", self.seeds != new.seeds),
            (
                "backend.connections_per_node",
                self.connections_per_node != new.connections_per_node,
            ),
            (
                "backend.max_blocking_connections",
                self.max_blocking_connections != new.max_blocking_connections,
            ),
            ("proxy.log_format", self.log_format != new.log_format),
        ];
        changed
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| key)
            .collect()
    }
}

/// Keys that may change while keyway runs; each request (or connection,
/// or refresh) reads the value current when it starts.
#[derive(Debug, Clone)]
pub struct Live {
    /// tracing filter.
    pub log_level: String,
    /// Period of the background topology refresh.
    pub refresh_interval: Duration,
    /// Delay between topology attempts while no node answers.
    pub retry_interval: Duration,
    /// Time to establish a backend connection.
    pub connect_timeout: Duration,
    /// Time a node may take for the oldest outstanding request.
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Parser bounds for client requests.
    pub limits: Limits,
    /// Outstanding requests per client before reading pauses.
    pub max_pipeline: NonZeroUsize,
    /// Bytes of outstanding requests per client (read, not yet answered)
    /// before reading pauses.
    pub max_pipeline_bytes: usize,
    /// Redirects followed per request.
    pub max_redirects: u32,
    /// TRYAGAIN retries per request.
    pub max_tryagain: u32,
    /// How long a request for a shard without a reachable master is held
    /// (`cluster.failover_hold_ms`); `None`: worked out from the cluster's
    /// `cluster-node-timeout` ([`crate::cluster::ClusterView::failover_hold`]).
    pub failover_hold: Option<Duration>,
    /// Requests one worker holds at most (`cluster.failover_hold_max_requests`).
    pub failover_hold_max: usize,
    /// Simultaneous client connections per process.
    pub max_clients: NonZeroUsize,
    /// Output limits for clients with subscriptions.
    pub pubsub_output_limit: OutputLimit,
    /// Bytes of replies one client may have queued in keyway (not yet
    /// written to it) before it is disconnected; `None`: no limit.
    pub output_limit: Option<usize>,
    /// Bytes of replies keyway may hold for all clients whose sockets take
    /// no more (`proxy.max_memory_mb`); `None`: no limit.
    pub max_memory: Option<usize>,
    /// How long connected clients get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// How long readiness says 503 before the listeners close at shutdown.
    pub drain_delay: Duration,
    /// Requests at least this slow through keyway go to its slow log;
    /// `None`: none do.
    pub slowlog_slower_than: Option<Duration>,
    /// Entries keyway's slow log keeps.
    pub slowlog_max_len: usize,
    /// Credentials for every node connection, if the cluster needs them.
    pub cluster_auth: Option<Arc<ClusterAuth>>,
    /// TLS to the nodes: set by the server from the material it loaded
    /// at start (the config file names the files; it does not read them).
    pub cluster_tls: Option<Arc<crate::tls::ClusterTls>>,
    /// Time a TLS client has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Who may use keyway.
    pub client_auth: ClientAuth,
    /// Which node serves a read, and when a replica may not.
    pub read: ReadSettings,
}

impl Live {
    /// What connections to the nodes need: credentials and TLS.
    pub fn node_access(&self) -> NodeAccess {
        NodeAccess {
            auth: self.cluster_auth.clone(),
            tls: self.cluster_tls.clone(),
        }
    }
}

/// When a client that reads too slowly is disconnected: its unsent output
/// passed `hard` bytes, or stayed above `soft` bytes for `soft_for` (like
/// redis-server's `client-output-buffer-limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes never to exceed.
    pub hard: usize,
    /// Bytes not to exceed for longer than `soft_for`.
    pub soft: usize,
    /// How long output may stay above `soft`.
    pub soft_for: Duration,
}

impl Config {
    /// Reads `path` (if any), applies `overrides`, and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.display().to_string(),
                    message,
                })?
            }
            None => FileConfig::default(),
        };
        file.apply(overrides).validate()
    }
}

impl FileConfig {
    /// Parses the TOML text; the error names the offending key.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Lays the command-line overrides over the file's values.
    pub fn apply(mut self, o: &Overrides) -> FileConfig {
        if let Some(listen) = &o.listen {
            self.proxy.listen = Some(listen.clone());
        }
        if let Some(cluster) = &o.cluster {
            self.cluster.seeds = Some(cluster.split(',').map(|s| s.trim().to_string()).collect());
        }
        if let Some(workers) = o.workers {
            self.proxy.workers = Some(workers);
        }
        if let Some(level) = &o.log_level {
            self.proxy.log_level = Some(level.clone());
        }
        if let Some(admin) = &o.admin_listen {
            self.admin.listen = Some(admin.clone());
        }
        if let Some(password) = &o.cluster_password {
            self.cluster.password = Some(password.clone());
            self.cluster.password_file = None;
        }
        if let Some(password) = &o.password {
            self.auth.password = Some(password.clone());
            self.auth.password_file = None;
        }
        self
    }

    /// Checks every value and turns the file into a [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        use defaults::*;
        let listen_text = self.proxy.listen.unwrap_or_else(|| LISTEN.to_string());
        let listen = match listen_text.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|_| ConfigError::Invalid {
                key: "proxy.listen",
                reason: format!(
                    "`{text}` is not an IP:port address (\"\" turns it off when tls.listen is set)"
                ),
            })?),
        };
        let tls_reload_interval = tls::reload_interval(&self.tls)?;
        let tls = tls::listener(self.tls)?;
        if listen.is_none() && tls.is_none() {
            return Err(invalid(
                "proxy.listen",
                "is \"\" and tls.listen is not set: keyway would listen nowhere",
            ));
        }
        let cluster_tls = tls::cluster(self.cluster.tls)?;
        let admin_text = self
            .admin
            .listen
            .unwrap_or_else(|| ADMIN_LISTEN.to_string());
        let admin_listen = match admin_text.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|_| ConfigError::Invalid {
                key: "admin.listen",
                reason: format!("`{text}` is not an IP:port address (\"\" turns it off)"),
            })?),
        };
        let workers = match self.proxy.workers {
            None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            Some(n) => NonZeroUsize::new(n)
                .filter(|n| n.get() <= 1024)
                .ok_or_else(|| ConfigError::Invalid {
                    key: "proxy.workers",
                    reason: format!("{n} is not between 1 and 1024"),
                })?,
        };
        let seeds = self.cluster.seeds.unwrap_or_else(|| vec![SEED.to_string()]);
        if seeds.is_empty() {
            return Err(invalid("cluster.seeds", "at least one host:port is needed"));
        }
        for seed in &seeds {
            if !is_host_port(seed) {
                return Err(ConfigError::Invalid {
                    key: "cluster.seeds",
                    reason: format!("`{seed}` is not host:port"),
                });
            }
        }
        let ms =
            |v: Option<u64>, default: u64, key: &'static str| -> Result<Duration, ConfigError> {
                match v.unwrap_or(default) {
                    0 => Err(invalid(key, "must be greater than 0")),
                    n => Ok(Duration::from_millis(n)),
                }
            };
        let refresh_s = self
            .cluster
            .refresh_interval_s
            .unwrap_or(REFRESH_INTERVAL_S);
        if refresh_s == 0 {
            return Err(invalid(
                "cluster.refresh_interval_s",
                "must be greater than 0",
            ));
        }
        let reconnect_min = ms(
            self.backend.reconnect_min_ms,
            RECONNECT_MIN_MS,
            "backend.reconnect_min_ms",
        )?;
        let reconnect_max = ms(
            self.backend.reconnect_max_ms,
            RECONNECT_MAX_MS,
            "backend.reconnect_max_ms",
        )?;
        if reconnect_max < reconnect_min {
            return Err(invalid(
                "backend.reconnect_max_ms",
                "must not be less than backend.reconnect_min_ms",
            ));
        }
        let max_bulk_len = self.client.max_bulk_len.unwrap_or(MAX_BULK_LEN);
        if max_bulk_len == 0 || max_bulk_len > 1 << 40 {
            return Err(invalid(
                "client.max_bulk_len",
                "must be between 1 and 2^40 bytes",
            ));
        }
        let nonzero = |v: Option<usize>, default: usize, key: &'static str| {
            NonZeroUsize::new(v.unwrap_or(default))
                .ok_or_else(|| invalid(key, "must be greater than 0"))
        };
        let mib = |v: Option<u64>, default: u64, key: &'static str| match v.unwrap_or(default) {
            0 => Err(invalid(key, "must be greater than 0")),
            n if n > 1 << 20 => Err(invalid(key, "must be at most 1048576 (1 TiB)")),
            n => Ok(n as usize * 1024 * 1024),
        };
        let pubsub_output_limit = OutputLimit {
            hard: mib(
                self.client.pubsub_output_limit_hard_mb,
                PUBSUB_OUTPUT_LIMIT_HARD_MB,
                "client.pubsub_output_limit_hard_mb",
            )?,
            soft: mib(
                self.client.pubsub_output_limit_soft_mb,
                PUBSUB_OUTPUT_LIMIT_SOFT_MB,
                "client.pubsub_output_limit_soft_mb",
            )?,
            soft_for: Duration::from_secs(
                self.client
                    .pubsub_output_limit_soft_seconds
                    .unwrap_or(PUBSUB_OUTPUT_LIMIT_SOFT_SECONDS),
            ),
        };
        let output_limit = match self.client.output_limit_mb {
            Some(0) => None,
            mb => Some(mib(mb, OUTPUT_LIMIT_MB, "client.output_limit_mb")?),
        };
        let max_memory = match self.proxy.max_memory_mb {
            None | Some(0) => None,
            mb => Some(mib(mb, 0, "proxy.max_memory_mb")?),
        };
        if pubsub_output_limit.soft > pubsub_output_limit.hard {
            return Err(invalid(
                "client.pubsub_output_limit_soft_mb",
                "must not be more than client.pubsub_output_limit_hard_mb",
            ));
        }
        let log_level = self
            .proxy
            .log_level
            .unwrap_or_else(|| LOG_LEVEL.to_string());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::Invalid {
                key: "proxy.log_level",
                reason: format!(
                    "`{log_level}` is not a level (error, warn, info, debug, trace) or filter"
                ),
            });
        }
        let startup = Startup {
            listen,
            tls,
            cluster_tls,
            tls_reload_interval,
            admin_listen,
            workers,
            seeds,
            connections_per_node: nonzero(
                self.backend.connections_per_node,
                CONNECTIONS_PER_NODE,
                "backend.connections_per_node",
            )?,
            max_blocking_connections: nonzero(
                self.backend.max_blocking_connections,
                MAX_BLOCKING_CONNECTIONS,
                "backend.max_blocking_connections",
            )?,
            log_format: one_of(
                "proxy.log_format",
                self.proxy.log_format.as_deref(),
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
        };
        let live = Live {
            log_level,
            refresh_interval: Duration::from_secs(refresh_s),
            retry_interval: ms(
                self.cluster.retry_interval_ms,
                RETRY_INTERVAL_MS,
                "cluster.retry_interval_ms",
            )?,
            connect_timeout: ms(
                self.backend.connect_timeout_ms,
                CONNECT_TIMEOUT_MS,
                "backend.connect_timeout_ms",
            )?,
            request_timeout: ms(
                self.backend.request_timeout_ms,
                REQUEST_TIMEOUT_MS,
                "backend.request_timeout_ms",
            )?,
            reconnect_min,
            reconnect_max,
            limits: Limits {
                max_bulk_len: max_bulk_len as usize,
                ..Limits::default()
            },
            max_pipeline: nonzero(
                self.client.max_pipeline,
                MAX_PIPELINE,
                "client.max_pipeline",
            )?,
            max_pipeline_bytes: mib(
                self.client.max_pipeline_mb,
                MAX_PIPELINE_MB,
                "client.max_pipeline_mb",
            )?,
            max_redirects: self.client.max_redirects.unwrap_or(MAX_REDIRECTS),
            max_tryagain: self.client.max_tryagain.unwrap_or(MAX_TRYAGAIN),
            failover_hold: match self.cluster.failover_hold_ms.unwrap_or(0) {
                0 => None,
                hold if hold > MAX_FAILOVER_HOLD_MS => {
                    return Err(ConfigError::Invalid {
                        key: "cluster.failover_hold_ms",
                        reason: format!("{hold} is over {MAX_FAILOVER_HOLD_MS} (10 minutes); 0 works it out from the cluster's cluster-node-timeout"),
                    })
                }
                hold => Some(Duration::from_millis(hold)),
            },
            failover_hold_max: self
                .cluster
                .failover_hold_max_requests
                .unwrap_or(FAILOVER_HOLD_MAX_REQUESTS),
            max_clients: nonzero(self.client.max_clients, MAX_CLIENTS, "client.max_clients")?,
            pubsub_output_limit,
            output_limit,
            max_memory,
            shutdown_grace: Duration::from_secs(
                self.proxy.shutdown_grace_s.unwrap_or(SHUTDOWN_GRACE_S),
            ),
            drain_delay: Duration::from_secs(self.proxy.drain_delay_s.unwrap_or(DRAIN_DELAY_S)),
            slowlog_slower_than: u64::try_from(
                self.proxy
                    .slowlog_slower_than_us
                    .unwrap_or(SLOWLOG_SLOWER_THAN_US),
            )
            .ok()
            .map(Duration::from_micros),
            slowlog_max_len: self.proxy.slowlog_max_len.unwrap_or(SLOWLOG_MAX_LEN),
            cluster_auth: ClusterAuth::from_keys(
                self.cluster.user,
                self.cluster.password,
                self.cluster.password_file,
            )?
            .map(Arc::new),
            client_auth: ClientAuth::from_section(self.auth)?,
            cluster_tls: None,
            handshake_timeout: ms(
                self.client.handshake_timeout_ms,
                HANDSHAKE_TIMEOUT_MS,
                "client.handshake_timeout_ms",
            )?,
            read: ReadSettings::from_section(&self.read)?,
        };
        Ok(Config { startup, live })
    }
}

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

/// The value of `key` among `choices` (name, value); the first is the
/// default when the key is absent.
fn one_of<T: Copy>(
    key: &'static str,
    given: Option<&str>,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let name = given.unwrap_or(choices[0].0);
    match choices.iter().find(|(n, _)| *n == name) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            Err(ConfigError::Invalid {
                key,
                reason: format!("`{name}` is not one of {}", names.join(", ")),
            })
        }
    }
}

/// `host:port` with a non-empty host and a numeric port.
fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests;
