//! Every metric keyway emits, named once, with one emit function each.
//! Events that happen per connection, per redirect or per failure are
//! counted here; nothing is emitted per request. [`describe`] registers the
//! descriptions; an exporter (Prometheus) installs the recorder that makes
//! them visible. With no recorder installed, each call is a no-op.

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

const CLIENTS_ACCEPTED: &str = "keyway_client_connections_total";
const CLIENTS_REJECTED: &str = "keyway_client_rejections_total";
const AUTH_FAILURES: &str = "keyway_auth_failures_total";
const PROTOCOL_ERRORS: &str = "keyway_client_protocol_errors_total";
const SLOW_SUBSCRIBERS: &str = "keyway_slow_subscribers_closed_total";
const REDIRECTS: &str = "keyway_redirects_total";
const BACKEND_FAILURES: &str = "keyway_backend_failures_total";
const TOPOLOGY_UPDATES: &str = "keyway_topology_updates_total";
const TOPOLOGY_EPOCH: &str = "keyway_topology_epoch";
const SLOTS_COVERED: &str = "keyway_slots_covered";
const MASTERS: &str = "keyway_masters";

/// Registers every metric's unit and description.
pub fn describe() {
    describe_counter!(
        CLIENTS_ACCEPTED,
        Unit::Count,
        "Client connections accepted."
    );
    describe_counter!(
        CLIENTS_REJECTED,
        Unit::Count,
        "Client connections refused at client.max_clients."
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
        "MOVED, ASK and TRYAGAIN replies followed, by kind."
    );
    describe_counter!(
        BACKEND_FAILURES,
        Unit::Count,
        "Backend connection failures, by kind (unreachable, lost, timeout, bad_reply)."
    );
    describe_counter!(
        TOPOLOGY_UPDATES,
        Unit::Count,
        "Slot map changes published to the workers."
    );
    describe_gauge!(TOPOLOGY_EPOCH, Unit::Count, "Epoch of the slot map in use.");
    describe_gauge!(
        SLOTS_COVERED,
        Unit::Count,
        "Slots with a known master (16384 when healthy)."
    );
    describe_gauge!(MASTERS, Unit::Count, "Masters in the slot map.");
}

/// A client connection was accepted.
pub fn client_accepted() {
    counter!(CLIENTS_ACCEPTED).increment(1);
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

/// A redirect was followed; `kind` is `moved`, `ask` or `tryagain`.
pub fn redirect(kind: &'static str) {
    counter!(REDIRECTS, "kind" => kind).increment(1);
}

/// A backend connection failed; `kind` is `unreachable`, `lost`, `timeout` or `bad_reply`.
pub fn backend_failure(kind: &'static str) {
    counter!(BACKEND_FAILURES, "kind" => kind).increment(1);
}

/// A new slot map was published.
pub fn topology_updated(epoch: u64, covered: usize, masters: usize) {
    counter!(TOPOLOGY_UPDATES).increment(1);
    gauge!(TOPOLOGY_EPOCH).set(epoch as f64);
    gauge!(SLOTS_COVERED).set(covered as f64);
    gauge!(MASTERS).set(masters as f64);
}
