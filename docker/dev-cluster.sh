#!/usr/bin/env bash
# The newcomer's command: a throwaway 3+3 Redis Cluster with keyway in front.
#
#   docker/dev-cluster.sh            # keyway on 127.0.0.1:6380
#   KEYWAY_PORT=7000 docker/dev-cluster.sh
#
# Builds keyway (release), starts the cluster in a temp dir, starts keyway,
# and stops everything and removes the temp dir on Ctrl-C or exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/cluster.sh
source "$here/cluster.sh"

port=${KEYWAY_PORT:-6380}
tmp=$(mktemp -d -t keyway-dev.XXXXXX)
keyway_pid=""

cleanup() {
    trap - INT TERM EXIT
    if [ -n "$keyway_pid" ]; then
        kill "$keyway_pid" 2>/dev/null || true
        wait "$keyway_pid" 2>/dev/null || true
    fi
    stop_cluster
    rm -rf "$tmp"
    echo "stopped keyway and the cluster; removed $tmp"
}
trap cleanup INT TERM EXIT

ensure_redis
(cd "$root" && cargo build --release)
start_cluster "$tmp/cluster"

"$root/target/release/keyway" --listen "127.0.0.1:$port" --cluster "$CLUSTER_SEEDS" \
    --log-level "${KEYWAY_LOG_LEVEL:-info}" &
keyway_pid=$!

deadline=$((SECONDS + 30))
until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; do
    if ! kill -0 "$keyway_pid" 2>/dev/null; then
        echo "keyway exited during start-up" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "keyway did not answer PING on port $port within 30 s" >&2
        exit 1
    fi
    sleep 0.1
done

echo
echo "keyway is ready: redis-cli -p $port"
echo "cluster seeds: $CLUSTER_SEEDS (all node ports: $CLUSTER_PORTS)"
echo "cluster files: $CLUSTER_DIR"
echo "Ctrl-C stops everything."
wait "$keyway_pid"
