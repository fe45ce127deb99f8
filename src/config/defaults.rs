//! Defaults, also written in `conf/keyway.toml`.

/// `proxy.listen`.
pub const LISTEN: &str = "127.0.0.1:6380";
/// `proxy.log_level`.
pub const LOG_LEVEL: &str = "info";
/// `cluster.seeds`.
pub const SEED: &str = "127.0.0.1:7000";
/// `cluster.refresh_interval_s`.
pub const REFRESH_INTERVAL_S: u64 = 10;
/// `cluster.retry_interval_ms`.
pub const RETRY_INTERVAL_MS: u64 = 1000;
/// `backend.connections_per_node`.
pub const CONNECTIONS_PER_NODE: usize = 1;
/// `backend.connect_timeout_ms`.
pub const CONNECT_TIMEOUT_MS: u64 = 1000;
/// `backend.request_timeout_ms`.
pub const REQUEST_TIMEOUT_MS: u64 = 5000;
/// `backend.reconnect_min_ms`.
pub const RECONNECT_MIN_MS: u64 = 50;
/// `backend.reconnect_max_ms`.
pub const RECONNECT_MAX_MS: u64 = 2000;
/// `backend.max_blocking_connections`.
pub const MAX_BLOCKING_CONNECTIONS: usize = 1000;
/// `client.max_bulk_len`: 512 MiB, like redis-server's proto-max-bulk-len.
pub const MAX_BULK_LEN: u64 = 512 * 1024 * 1024;
/// `client.max_pipeline`.
pub const MAX_PIPELINE: usize = 1024;
/// `client.max_pipeline_mb`.
pub const MAX_PIPELINE_MB: u64 = 64;
/// `client.max_redirects`.
pub const MAX_REDIRECTS: u32 = 5;
/// `client.max_tryagain`.
pub const MAX_TRYAGAIN: u32 = 10;
/// Largest `cluster.failover_hold_ms`.
pub const MAX_FAILOVER_HOLD_MS: u64 = 600_000;
/// `cluster.failover_hold_max_requests`.
pub const FAILOVER_HOLD_MAX_REQUESTS: usize = 100_000;
/// `proxy.shutdown_grace_s`.
pub const SHUTDOWN_GRACE_S: u64 = 30;
/// `proxy.drain_delay_s`.
pub const DRAIN_DELAY_S: u64 = 0;
/// `proxy.slowlog_slower_than_us` (redis-server's default).
pub const SLOWLOG_SLOWER_THAN_US: i64 = 10_000;
/// `proxy.slowlog_max_len` (redis-server's default).
pub const SLOWLOG_MAX_LEN: usize = 128;
/// `admin.listen`.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9736";
/// `client.max_clients`: like redis-server's maxclients.
pub const MAX_CLIENTS: usize = 10_000;
/// `client.output_limit_mb`.
pub const OUTPUT_LIMIT_MB: u64 = 256;
/// `client.pubsub_output_limit_hard_mb`: like redis-server's
/// `client-output-buffer-limit pubsub 32mb 8mb 60`.
pub const PUBSUB_OUTPUT_LIMIT_HARD_MB: u64 = 32;
/// `client.pubsub_output_limit_soft_mb`.
pub const PUBSUB_OUTPUT_LIMIT_SOFT_MB: u64 = 8;
/// `client.pubsub_output_limit_soft_seconds`.
pub const PUBSUB_OUTPUT_LIMIT_SOFT_SECONDS: u64 = 60;
/// `client.handshake_timeout_ms`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
