//! Every metric keyway emits, named once, with one emit function each.
//! Events that happen per connection, per redirect or per failure are
//! counted here; nothing is emitted per request. [`describe`] registers the
//! descriptions; an exporter (Prometheus) installs the recorder that makes
//! them visible. With no recorder installed, each call is a no-op.

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

const CLIENTS_ACCEPTED: &str = "keyway_client_connections_total";
const CLIENTS_REJECTED: &str = "keyway_client_rejections_total";
const CLIENTS_CLOSED: &str = "keyway_clients_closed_total";
const CLIENTS_BLOCKED: &str = "keyway_clients_blocked";
const CLIENTS_SUBSCRIBED: &str = "keyway_clients_subscribed";
const CLIENTS_BY_PROTOCOL: &str = "keyway_clients_by_protocol";
const AUTH_FAILURES: &str = "keyway_auth_failures_total";
const PROTOCOL_ERRORS: &str = "keyway_client_protocol_errors_total";
const SLOW_SUBSCRIBERS: &str = "keyway_slow_subscribers_closed_total";
const REDIRECTS: &str = "keyway_redirects_total";
const BACKEND_FAILURES: &str = "keyway_backend_failures_total";
const TOPOLOGY_UPDATES: &str = "keyway_topology_updates_total";
const TOPOLOGY_EPOCH: &str = "keyway_topology_epoch";
const TOPOLOGY_REFRESHES: &str = "keyway_topology_refreshes_total";
const FAILOVERS: &str = "keyway_failovers_total";
const SLOTS_COVERED: &str = "keyway_slots_covered";
const MASTERS: &str = "keyway_masters";
const REPLICAS: &str = "keyway_replicas";
const REPLICAS_LAGGING: &str = "keyway_replicas_lagging";
const READY: &str = "keyway_ready";
const CLIENTS_CONNECTED: &str = "keyway_clients_connected";
const CLIENTS_MAX: &str = "keyway_clients_max";
const READS: &str = "keyway_reads_total";
const REQUESTS_HELD: &str = "keyway_requests_held";
const REPLIES_BUFFERED: &str = "keyway_replies_buffered_bytes";
const CONFIG_RELOADS: &str = "keyway_config_reloads_total";
const TLS_HANDSHAKE_FAILURES: &str = "keyway_tls_handshake_failures_total";
const TLS_CERTIFICATE_EXPIRY: &str = "keyway_tls_certificate_expiry_seconds";

/// Registers every metric's unit and description.
pub fn describe() {
    describe_counter!(
        CLIENTS_ACCEPTED,
        Unit::Count,
        "Client connections accepted."
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        Unit::Count,
        "Client TLS handshakes that failed, by reason (plaintext, unknown_ca, expired, no_client_cert, bad_certificate, protocol, timeout, io)."
    );
    describe_gauge!(
        TLS_CERTIFICATE_EXPIRY,
        Unit::Seconds,
        "Seconds until the TLS certificate keyway presents expires: to clients (listener=client) and to the cluster's nodes (listener=cluster)."
    );
    describe_counter!(
        CLIENTS_REJECTED,
        Unit::Count,
        "Client connections refused at client.max_clients."
    );
    describe_counter!(
        CLIENTS_CLOSED,
        Unit::Count,
        "Client connections closed, by reason (client_left, quit_or_protocol_error, killed, shutdown, write_ended, output_limit, max_memory)."
    );
    describe_gauge!(
        CLIENTS_BLOCKED,
        Unit::Count,
        "Clients waiting in a blocking command (BLPOP, XREAD BLOCK, WAIT, ...)."
    );
    describe_gauge!(
        CLIENTS_SUBSCRIBED,
        Unit::Count,
        "Clients with at least one pub/sub subscription."
    );
    describe_gauge!(
        CLIENTS_BY_PROTOCOL,
        Unit::Count,
        "Registered clients by the protocol they speak (resp2, resp3)."
    );
    describe_counter!(
        AUTH_FAILURES,
        Unit::Count,
        "Failed AUTH (and HELLO AUTH) attempts, and clients refused by protected mode (reason)."
    );
    describe_counter!(
        PROTOCOL_ERRORS,
        Unit::Count,
        "Client connections closed for malformed RESP."
    );
    describe_counter!(
        SLOW_SUBSCRIBERS,
        Unit::Count,
        "Subscribers disconnected for passing client.pubsub_output_limit_*."
    );
    describe_counter!(
        REDIRECTS,
        Unit::Count,
        "MOVED, ASK and TRYAGAIN replies followed, and CLUSTERDOWN, LOADING and MASTERDOWN replies that held their request, by kind."
    );
    describe_gauge!(
        REQUESTS_HELD,
        Unit::Count,
        "Requests held while their shard has no reachable master (failover; cluster.failover_hold_ms)."
    );
    describe_gauge!(
        REPLIES_BUFFERED,
        Unit::Bytes,
        "Reply bytes keyway holds for clients whose sockets take no more (slow readers; proxy.max_memory_mb bounds it)."
    );
    describe_counter!(
        BACKEND_FAILURES,
        Unit::Count,
        "Backend connection failures, by node and kind (unreachable, lost, timeout, bad_reply)."
    );
    describe_counter!(
        TOPOLOGY_UPDATES,
        Unit::Count,
        "Slot map changes published to the workers."
    );
    describe_gauge!(TOPOLOGY_EPOCH, Unit::Count, "Epoch of the slot map in use.");
    describe_counter!(
        TOPOLOGY_REFRESHES,
        Unit::Count,
        "Rounds of asking the cluster for its slot map, by trigger (start, interval, requested after MOVED or a node failure, retry while none answers)."
    );
    describe_counter!(
        FAILOVERS,
        Unit::Count,
        "Replicas seen serving their former master's slots (a failover), by the topology refresh."
    );
    describe_gauge!(
        SLOTS_COVERED,
        Unit::Count,
        "Slots with a known master (16384 when healthy)."
    );
    describe_gauge!(MASTERS, Unit::Count, "Masters in the slot map.");
    describe_gauge!(
        REPLICAS,
        Unit::Count,
        "Replicas of the slot map's masters that may serve reads."
    );
    describe_gauge!(
        REPLICAS_LAGGING,
        Unit::Count,
        "Replicas serving no reads because they trail their master by more than read.max_lag_bytes."
    );
    describe_gauge!(
        READY,
        Unit::Count,
        "1 when /health/ready answers 200: every slot has a reachable master and keyway is not draining."
    );
    describe_gauge!(CLIENTS_CONNECTED, Unit::Count, "Clients connected now.");
    describe_gauge!(CLIENTS_MAX, Unit::Count, "client.max_clients.");
    describe_counter!(
        READS,
        Unit::Count,
        "Read commands sent to one node, by the role of the node (master, replica)."
    );
    describe_counter!(
        CONFIG_RELOADS,
        Unit::Count,
        "Configuration reloads (SIGHUP), by result (ok, error)."
    );
    // Exported from the start at 0, so that an alert on their increase
    // sees the first event.
    for counter in [
        counter!(CLIENTS_REJECTED),
        counter!(PROTOCOL_ERRORS),
        counter!(SLOW_SUBSCRIBERS),
        counter!(CONFIG_RELOADS, "result" => "ok"),
        counter!(CONFIG_RELOADS, "result" => "error"),
    ] {
        counter.increment(0);
    }
}

/// The figures read when scraped rather than counted as they happen.
pub struct Snapshot {
    /// What `/health/ready` answers: 200 (true) or 503.
    pub ready: bool,
    /// Clients connected now.
    pub clients: usize,
    /// Registered clients counted by state.
    pub census: crate::registry::Census,
    /// `client.max_clients`.
    pub max_clients: usize,
    /// Replicas that may serve reads.
    pub replicas: usize,
    /// Replicas skipped for lag.
    pub replicas_lagging: usize,
    /// Reads sent to masters and to replicas since start.
    pub reads: (u64, u64),
    /// Failovers seen since start.
    pub failovers: u64,
    /// Reply bytes held for clients whose sockets take no more.
    pub replies_buffered: usize,
}

/// Sets the gauges and counters of `snapshot`.
pub fn snapshot(snapshot: &Snapshot) {
    gauge!(READY).set(if snapshot.ready { 1.0 } else { 0.0 });
    gauge!(CLIENTS_CONNECTED).set(snapshot.clients as f64);
    let census = snapshot.census;
    gauge!(CLIENTS_BLOCKED).set(census.blocked as f64);
    gauge!(CLIENTS_SUBSCRIBED).set(census.subscribed as f64);
    let resp2 = census.registered.saturating_sub(census.resp3);
    gauge!(CLIENTS_BY_PROTOCOL, "protocol" => "resp2").set(resp2 as f64);
    gauge!(CLIENTS_BY_PROTOCOL, "protocol" => "resp3").set(census.resp3 as f64);
    gauge!(CLIENTS_MAX).set(snapshot.max_clients as f64);
    gauge!(REPLICAS).set(snapshot.replicas as f64);
    gauge!(REPLICAS_LAGGING).set(snapshot.replicas_lagging as f64);
    counter!(READS, "role" => "master").absolute(snapshot.reads.0);
    counter!(READS, "role" => "replica").absolute(snapshot.reads.1);
    counter!(FAILOVERS).absolute(snapshot.failovers);
    gauge!(REPLIES_BUFFERED).set(snapshot.replies_buffered as f64);
}

/// A SIGHUP reload was applied (`ok`) or refused (`error`).
pub fn config_reloaded(result: &'static str) {
    counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

/// A client connection was accepted.
pub fn client_accepted() {
    counter!(CLIENTS_ACCEPTED).increment(1);
}

/// A client connection ended, for `reason`.
pub fn client_closed(reason: &'static str) {
    counter!(CLIENTS_CLOSED, "reason" => reason).increment(1);
}

/// A client connection was refused (client limit).
pub fn client_rejected() {
    counter!(CLIENTS_REJECTED).increment(1);
}

/// An authentication failed; `reason` is `wrongpass` or `protected_mode`.
pub fn auth_failed(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// A client sent malformed RESP and was disconnected.
pub fn protocol_error() {
    counter!(PROTOCOL_ERRORS).increment(1);
}

/// A subscriber that read too slowly was disconnected.
pub fn slow_subscriber_closed() {
    counter!(SLOW_SUBSCRIBERS).increment(1);
}

/// A redirect was followed (`kind` is `moved`, `ask` or `tryagain`), or a
/// node's refusal held its request (`clusterdown`, `loading`, `masterdown`).
pub fn redirect(kind: &'static str) {
    counter!(REDIRECTS, "kind" => kind).increment(1);
}

/// A backend connection to `node` failed; `kind` is `unreachable`,
/// `lost`, `timeout` or `bad_reply`.
pub fn backend_failure(node: &str, kind: &'static str) {
    counter!(BACKEND_FAILURES, "node" => node.to_string(), "kind" => kind).increment(1);
}

/// A round of the topology refresh began, for `trigger`.
pub fn topology_refresh(trigger: &'static str) {
    counter!(TOPOLOGY_REFRESHES, "trigger" => trigger).increment(1);
}

/// A new slot map was published.
pub fn topology_updated(epoch: u64, covered: usize, masters: usize) {
    counter!(TOPOLOGY_UPDATES).increment(1);
    gauge!(TOPOLOGY_EPOCH).set(epoch as f64);
    gauge!(SLOTS_COVERED).set(covered as f64);
    gauge!(MASTERS).set(masters as f64);
}

/// `count` more requests are held (negative: released) for a shard
/// without a reachable master.
pub fn requests_held(count: f64) {
    gauge!(REQUESTS_HELD).increment(count);
}

/// A client's TLS handshake failed, for `reason`.
pub fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

/// The certificate keyway presents as `listener` (`client` or `cluster`)
/// expires in `seconds`.
pub fn tls_certificate_expiry(listener: &'static str, seconds: f64) {
    gauge!(TLS_CERTIFICATE_EXPIRY, "listener" => listener).set(seconds);
}
