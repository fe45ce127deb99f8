//! The configuration file's shape, as TOML says it: every key optional,
//! unknown keys rejected. [`super::FileConfig::validate`] turns it into the
//! typed [`super::Config`].

use serde::Deserialize;

/// The file as written; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[proxy]` section.
    #[serde(default)]
    pub proxy: ProxySection,
    /// `[cluster]` section.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// `[backend]` section.
    #[serde(default)]
    pub backend: BackendSection,
    /// `[client]` section.
    #[serde(default)]
    pub client: ClientSection,
    /// `[auth]` section.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[read]` section.
    #[serde(default)]
    pub read: ReadSection,
    /// `[admin]` section.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[tls]` section.
    #[serde(default)]
    pub tls: TlsSection,
}

/// `[tls]`: the TLS listener for clients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// `IP:port` of the TLS listener; absent or `""`: none.
    pub listen: Option<String>,
    /// PEM certificate chain keyway presents, leaf first.
    pub cert_file: Option<String>,
    /// PEM private key of that certificate.
    pub key_file: Option<String>,
    /// PEM CAs that sign client certificates.
    pub ca_file: Option<String>,
    /// `none`, `optional` or `required`: client certificates.
    pub client_auth: Option<String>,
    /// `none` or `cn`: a client certificate's common name names its ACL user.
    pub user_from_cert: Option<String>,
    /// Seconds between checks of the certificate, key and CA files.
    pub reload_interval_s: Option<u64>,
}

/// `[cluster.tls]`: TLS on connections to the nodes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsSection {
    /// Speak TLS to every node.
    pub enabled: Option<bool>,
    /// PEM CAs that sign the nodes' certificates.
    pub ca_file: Option<String>,
    /// PEM client certificate, for nodes with `tls-auth-clients yes`.
    pub cert_file: Option<String>,
    /// PEM private key of that certificate.
    pub key_file: Option<String>,
    /// The name node certificates are checked against (and SNI).
    pub server_name: Option<String>,
    /// `full`, `ca` or `none`: how much of a node's certificate is checked.
    pub verify: Option<String>,
}

/// `[admin]`: the HTTP endpoint for metrics and health checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// `IP:port` of `/metrics` and `/health/*`; `""` turns it off.
    pub listen: Option<String>,
}

/// `[proxy]`: the listening side and process.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// Address clients connect to.
    pub listen: Option<String>,
    /// Worker threads; 0 or absent = one per CPU core.
    pub workers: Option<usize>,
    /// tracing filter, e.g. `info` or `keyway=debug`.
    pub log_level: Option<String>,
    /// `text` (default) or `json`: one JSON object per log line.
    pub log_format: Option<String>,
    /// Seconds connected clients get to finish at shutdown.
    pub shutdown_grace_s: Option<u64>,
    /// Seconds between SIGTERM (readiness 503) and the listeners closing.
    pub drain_delay_s: Option<u64>,
    /// Requests taking this many microseconds or more through keyway go
    /// to keyway's slow log; negative: none.
    pub slowlog_slower_than_us: Option<i64>,
    /// Entries keyway's slow log keeps.
    pub slowlog_max_len: Option<usize>,
    /// MiB of replies keyway may hold for clients that read slower than
    /// their replies come; past it the largest holders are closed. 0 =
    /// no limit.
    pub max_memory_mb: Option<u64>,
}

/// `[cluster]`: how the topology is found and kept fresh.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Seed nodes, `host:port`.
    pub seeds: Option<Vec<String>>,
    /// Seconds between periodic topology refreshes.
    pub refresh_interval_s: Option<u64>,
    /// Milliseconds between retries while no seed answers.
    pub retry_interval_ms: Option<u64>,
    /// ACL user keyway authenticates as on every node connection.
    pub user: Option<String>,
    /// Password for every node connection (`requirepass`, or the user's).
    pub password: Option<String>,
    /// File whose first line is that password, read at every connect.
    pub password_file: Option<String>,
    /// Milliseconds a request for a shard without a reachable master is
    /// held before it fails; 0 = from the cluster's `cluster-node-timeout`.
    pub failover_hold_ms: Option<u64>,
    /// Requests one worker holds at most; past it new ones fail at once.
    pub failover_hold_max_requests: Option<usize>,
    /// `[cluster.tls]`.
    #[serde(default)]
    pub tls: ClusterTlsSection,
}

/// `[backend]`: connections from keyway to the cluster's nodes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    /// Multiplexed connections per node per worker, per protocol.
    pub connections_per_node: Option<usize>,
    /// Milliseconds to establish a connection.
    pub connect_timeout_ms: Option<u64>,
    /// Milliseconds a node may take to answer the oldest outstanding request.
    pub request_timeout_ms: Option<u64>,
    /// First reconnect delay in milliseconds; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: Option<u64>,
    /// Longest reconnect delay in milliseconds.
    pub reconnect_max_ms: Option<u64>,
    /// Dedicated connections for blocked clients, per worker.
    pub max_blocking_connections: Option<usize>,
}

/// `[client]`: limits per client connection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Largest bulk string a client may send, in bytes.
    pub max_bulk_len: Option<u64>,
    /// Requests a client may have outstanding before keyway stops reading it.
    pub max_pipeline: Option<usize>,
    /// MiB of requests a client may have outstanding, likewise.
    pub max_pipeline_mb: Option<u64>,
    /// MOVED/ASK redirects followed for one request before giving up.
    pub max_redirects: Option<u32>,
    /// TRYAGAIN retries for one request before giving up.
    pub max_tryagain: Option<u32>,
    /// Most simultaneous client connections per process.
    pub max_clients: Option<usize>,
    /// A client whose replies queued in keyway pass this many MiB is
    /// disconnected; 0 = no limit.
    pub output_limit_mb: Option<u64>,
    /// A subscriber whose unsent output passes this many MiB is disconnected.
    pub pubsub_output_limit_hard_mb: Option<u64>,
    /// ... or stays above this many MiB for `pubsub_output_limit_soft_seconds`.
    pub pubsub_output_limit_soft_mb: Option<u64>,
    /// Seconds a subscriber's output may stay above the soft limit.
    pub pubsub_output_limit_soft_seconds: Option<u64>,
    /// Milliseconds a TLS client may take to finish its handshake.
    pub handshake_timeout_ms: Option<u64>,
}

/// `[auth]`: who may use keyway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// The `default` user's password (like redis-server's `requirepass`).
    pub password: Option<String>,
    /// File whose first line is that password.
    pub password_file: Option<String>,
    /// ACL users, one line each in Redis's syntax.
    pub users: Option<Vec<String>>,
    /// A file in Redis's `users.acl` format.
    pub acl_file: Option<String>,
    /// Refuse non-loopback clients while no password is set.
    pub protected_mode: Option<bool>,
    /// Failed AUTH attempts per client address per window before delaying.
    pub max_failures: Option<u32>,
    /// The window of `max_failures`, in seconds.
    pub failure_window_s: Option<u64>,
    /// The delay of each attempt past `max_failures`, in milliseconds.
    pub failure_delay_ms: Option<u64>,
}

/// `[read]`: which node serves a read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSection {
    /// `master`, `prefer-replica`, `replica` or `any`.
    pub policy: Option<String>,
    /// With `replica`: the master serves when no replica is usable.
    pub fallback_to_master: Option<bool>,
    /// Replicas further behind their master than this many bytes of the
    /// replication stream serve no reads; 0 or absent: not sampled.
    pub max_lag_bytes: Option<u64>,
    /// After a client writes to a slot, its reads of that slot go to the
    /// master for this long; 0 or absent: off.
    pub read_your_writes_ms: Option<u64>,
}
