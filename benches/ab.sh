#!/usr/bin/env bash
# Two keyway binaries against each other, interleaved on one throwaway 3+3
# cluster: the way to measure a change ("before" vs "after") on a noisy
# machine. Prints ops/s and keyway CPU per op (utime+stime from /proc) for
# each, and their ratio, per test and pipeline depth (medians of ROUNDS).
#
#   benches/ab.sh OLD_BINARY NEW_BINARY
#
# Environment: N (requests per run, 200000), ROUNDS (5), CLIENTS (50),
# PIPELINES ("1 16"), TESTS ("set get"), KEYWAY_WORKERS (1); OLD_CONFIG /
# NEW_CONFIG (a config file for that binary) and OLD_AUTH / NEW_AUTH (the
# credentials its clients send, as redis-cli/redis-benchmark flags), e.g.
# the same binary twice, the new one with an ACL user that has key patterns:
#
#   printf '[auth]\nusers = ["bench on >pw ~key:* ~bench:* &* +@all"]\n' >/tmp/acl.toml
#   NEW_CONFIG=/tmp/acl.toml NEW_AUTH="--user bench -a pw" benches/ab.sh BIN BIN
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=docker/cluster.sh
source "$root/docker/cluster.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY" >&2
    exit 2
fi
bins=("$1" "$2")
N=${N:-200000}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-1 16}
TESTS=${TESTS:-set get}
WORKERS=${KEYWAY_WORKERS:-1}
TCK=$(getconf CLK_TCK)

tmp=$(mktemp -d -t keyway-ab.XXXXXX)
pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_cluster
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

ensure_redis
start_cluster "$tmp/cluster"
ports=()
configs=("${OLD_CONFIG:-}" "${NEW_CONFIG:-}")
read -r -a auth0 <<<"${OLD_AUTH:-}"
read -r -a auth1 <<<"${NEW_AUTH:-}"
auth_of() { if [ "$1" = 0 ]; then echo "${auth0[@]}"; else echo "${auth1[@]}"; fi; }
for i in 0 1; do
    port=$(free_ports 1)
    config=()
    [ -z "${configs[$i]}" ] || config=(--config "${configs[$i]}")
    read -r -a admin <<<"$(keyway_admin_args "${bins[$i]}")"
    "${bins[$i]}" "${config[@]}" "${admin[@]}" --listen "127.0.0.1:$port" --cluster "$CLUSTER_SEEDS" \
        --workers "$WORKERS" --log-level warn >"$tmp/keyway$i.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
    deadline=$((SECONDS + 30))
    # shellcheck disable=SC2046 # the credentials are separate flags
    until redis-cli --no-auth-warning -p "$port" $(auth_of "$i") set bench:ready 1 2>/dev/null | grep -q OK; do
        [ "$SECONDS" -lt "$deadline" ] || { tail "$tmp/keyway$i.log" >&2; exit 1; }
        sleep 0.1
    done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
results=$tmp/results
for round in $(seq "$ROUNDS"); do
    for t in $TESTS; do
        for p in $PIPELINES; do
            for i in 0 1; do
                before=$(ticks "${pids[$i]}")
                # shellcheck disable=SC2046
                ops=$(redis-benchmark -p "${ports[$i]}" $(auth_of "$i") -c "$CLIENTS" -n "$N" -r 100000 -d 64 \
                    -P "$p" -t "$t" --csv 2>/dev/null | awk -F'"' 'NR==2 {print $4}')
                used=$(($(ticks "${pids[$i]}") - before))
                echo "$t $p $i $ops $used" >>"$results"
            done
        done
    done
    echo "round $round done" >&2
done

python3 - "$results" "$N" "$TCK" <<'PY'
import statistics, sys
path, n, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
for line in open(path):
    t, p, i, ops, used = line.split()
    runs.setdefault((t, int(p), int(i)), []).append((float(ops), int(used) / tck * 1e6 / n))
print(f"{'test':6} {'P':>3} {'old ops/s':>11} {'new ops/s':>11} {'new/old':>8} {'old us/op':>10} {'new us/op':>10} {'new/old':>8}")
for (t, p) in sorted({(t, p) for t, p, _ in runs}):
    old, new = runs[(t, p, 0)], runs[(t, p, 1)]
    oo, no = statistics.median(o for o, _ in old), statistics.median(o for o, _ in new)
    oc, nc = statistics.median(c for _, c in old), statistics.median(c for _, c in new)
    print(f"{t.upper():6} {p:>3} {oo:>11.0f} {no:>11.0f} {no / oo:>8.2f} {oc:>10.2f} {nc:>10.2f} {nc / oc:>8.2f}")
PY
