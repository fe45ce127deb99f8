#!/usr/bin/env bash
# keyway's own instructions per request (user space, all threads), counted
# by valgrind's callgrind while one redis-benchmark client (-c 1, -P PIPELINE)
# sends GETs and SETs through it. Unlike times on a shared machine, the count
# barely moves between runs (within 0.1% at -P 1, about 1% at -P 16), so it
# shows what a change to the request path costs or saves, down to a few
# percent. It counts an atomic operation as one instruction, however long
# it takes. One client at
# -P 1 means no batching: every request pays one full turn of the event
# loop; at -P 16 the per-request work (parse, route, queue, reply) shows.
#
#   benches/instructions.sh BINARY [BINARY ...]
#
# Environment: N (requests counted per test, 20000), TESTS ("get set"),
# PIPELINE (1), KEYWAY_CONFIG (a config file for every binary) and AUTH (the
# credentials clients send, as redis-cli/redis-benchmark flags, e.g.
# "--user bench -a pw" with a config whose [auth] defines that user).
# Needs valgrind (apt-get install -y valgrind).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=docker/cluster.sh
source "$root/docker/cluster.sh"

if [ $# -lt 1 ]; then
    echo "usage: $0 BINARY [BINARY ...]" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }
N=${N:-20000}
TESTS=${TESTS:-get set}
PIPELINE=${PIPELINE:-1}
config=()
[ -z "${KEYWAY_CONFIG:-}" ] || config=(--config "$KEYWAY_CONFIG")
read -r -a auth <<<"${AUTH:-}"

tmp=$(mktemp -d -t keyway-instructions.XXXXXX)
vg_pid=""
cleanup() {
    trap - INT TERM EXIT
    [ -z "$vg_pid" ] || kill "$vg_pid" 2>/dev/null || true
    stop_cluster
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

ensure_redis
start_cluster "$tmp/cluster"

printf '%-40s %-5s %3s %12s\n' binary test P 'instr/req'
for bin in "$@"; do
    for t in $TESTS; do
        port=$(free_ports 1)
        out=$tmp/callgrind.$t
        read -r -a admin <<<"$(keyway_admin_args "$bin")"
        valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
            "$bin" "${config[@]}" "${admin[@]}" --listen "127.0.0.1:$port" --cluster "$CLUSTER_SEEDS" \
            --workers 1 --log-level warn >"$tmp/valgrind.log" 2>&1 &
        vg_pid=$!
        deadline=$((SECONDS + 120))
        until redis-cli --no-auth-warning -p "$port" "${auth[@]}" set bench:ready 1 2>/dev/null | grep -q OK; do
            [ "$SECONDS" -lt "$deadline" ] || { tail "$tmp/valgrind.log" >&2; exit 1; }
            sleep 0.2
        done
        # Warm up (slot map, connections, buffers), then count N requests.
        redis-benchmark -p "$port" "${auth[@]}" -c 1 -P "$PIPELINE" -n 2000 -r 100000 -d 64 -t "$t" >/dev/null 2>&1
        callgrind_control -z "$vg_pid" >/dev/null 2>&1
        redis-benchmark -p "$port" "${auth[@]}" -c 1 -P "$PIPELINE" -n "$N" -r 100000 -d 64 -t "$t" >/dev/null 2>&1
        callgrind_control -d "$vg_pid" >/dev/null 2>&1
        instr=$(awk '/^totals:/ {print $2}' "$out.1")
        kill "$vg_pid"
        wait "$vg_pid" 2>/dev/null || true
        vg_pid=""
        rm -f "$out" "$out".*
        printf '%-40s %-5s %3s %12.0f\n' "$bin" "$t" "$PIPELINE" "$(echo "$instr / $N" | bc -l)"
    done
done
