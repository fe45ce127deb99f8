#!/usr/bin/env bash
# Heap allocations per request on keyway's single-key GET/SET path, measured
# on the real release binary under valgrind's DHAT (no code change).
#
# For each pipeline depth P, keyway runs twice (one worker): once serving
# `redis-benchmark -c 10 -t get,set -P P -n N1`, once with -n N2. Start-up,
# connection set-up and shutdown are the same in both runs, so
#
#   allocs per request = (blocks(N2) - blocks(N1)) / (2 * (N2 - N1))
#
# (-t get,set sends N SETs and N GETs). The topology refresh period is set to
# an hour so periodic refreshes, which allocate, do not scale with run time.
#
#   benches/alloc.sh                      # own throwaway 3+3 cluster
#   SEED=127.0.0.1:7101 benches/alloc.sh  # an existing cluster
#
# Environment: SEED (host:port[,...]; unset: start a cluster with
# docker/cluster.sh), N1 (5000), N2 (25000), PIPELINES ("1 16"), KEYWAY_BIN
# (default target/release/keyway, built here), STACKS (5: per-request
# allocation sites to print from the DHAT profiles when the count is not 0;
# 0 for none), KEEP (1: keep the DHAT files and print their directory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/cluster.sh
source "$root/docker/cluster.sh"
CLUSTER_PIDS="" # stop_cluster must only ever stop a cluster started here

N1=${N1:-5000}
N2=${N2:-25000}
PIPELINES=${PIPELINES:-1 16}
STACKS=${STACKS:-5}
KEEP=${KEEP:-0}

if ! command -v valgrind >/dev/null; then
    echo "valgrind is required (apt-get install valgrind)" >&2
    exit 2
fi
if [ "$N2" -le "$N1" ]; then
    echo "N2 ($N2) must be greater than N1 ($N1)" >&2
    exit 2
fi

tmp=$(mktemp -d -t keyway-alloc.XXXXXX)
keyway_pid=""
stop_keyway() {
    [ -n "$keyway_pid" ] || return 0
    kill -TERM "$keyway_pid" 2>/dev/null || true
    wait "$keyway_pid" 2>/dev/null || true
    keyway_pid=""
}
cleanup() {
    trap - INT TERM EXIT
    stop_keyway
    stop_cluster
    if [ "$KEEP" = 1 ]; then echo "DHAT files kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup INT TERM EXIT

ensure_redis
if [ -z "${KEYWAY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin keyway)
    KEYWAY_BIN=$root/target/release/keyway
fi
if [ -z "${SEED:-}" ]; then
    start_cluster "$tmp/cluster"
    SEED=$CLUSTER_SEEDS
fi
cat >"$tmp/keyway.toml" <<'TOML'
[cluster]
refresh_interval_s = 3600
TOML

# measure P N: sets `blocks` to the heap blocks DHAT counted over one keyway
# life serving `redis-benchmark -P P -n N`; the profile is left in
# $tmp/dhat-P-N.json. Not run in a subshell, so the trap sees keyway_pid.
measure() {
    local p=$1 n=$2 kport log="$tmp/dhat-$1-$2.log"
    kport=$(free_ports 1)
    local admin=()
    read -r -a admin <<<"$(keyway_admin_args "$KEYWAY_BIN")"
    valgrind --tool=dhat --dhat-out-file="$tmp/dhat-$p-$n.json" --log-file="$log" \
        "$KEYWAY_BIN" --config "$tmp/keyway.toml" "${admin[@]}" --listen "127.0.0.1:$kport" \
        --cluster "$SEED" --workers 1 --log-level warn >"$tmp/keyway-$p-$n.out" 2>&1 &
    keyway_pid=$!
    local deadline=$((SECONDS + 120))
    until redis-cli -p "$kport" set alloc:ready 1 2>/dev/null | grep -q OK; do
        if ! kill -0 "$keyway_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "keyway did not start serving under valgrind; output:" >&2
            tail -n 30 "$tmp/keyway-$p-$n.out" "$log" >&2
            exit 1
        fi
        sleep 0.2
    done
    redis-benchmark -p "$kport" -c 10 -n "$n" -t get,set -P "$p" -q >"$tmp/rb-$p-$n.out"
    stop_keyway
    # "==PID== Total:     1,234 bytes in 56 blocks"
    blocks=$(awk '/ Total: / {gsub(",", "", $(NF - 1)); print $(NF - 1)}' "$log")
    if [ -z "$blocks" ]; then
        echo "no DHAT total in $log" >&2
        exit 1
    fi
}

# sites OLD.json NEW.json K: the K program points whose block count grew
# most from OLD to NEW, with the growth per request and their keyway frames.
sites() {
    python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
old, new = (json.load(open(f)) for f in sys.argv[1:3])
k, requests = int(sys.argv[3]), int(sys.argv[4])
def by_stack(prof):
    out = {}
    for pp in prof["pps"]:
        # Frames read "0xADDR: function (file.rs:line)"; drop the address.
        stack = tuple(prof["ftbl"][f].split(": ", 1)[-1] for f in pp["fs"])
        out[stack] = out.get(stack, 0) + pp["tbk"]  # tbk: total blocks
    return out
def is_allocator(frame):
    return any(s in frame for s in ("vgpreload", "library/alloc/", "std/src/alloc", "sys/alloc"))
a, b = by_stack(old), by_stack(new)
grown = sorted(((b[s] - a.get(s, 0), s) for s in b), reverse=True)[:k]
for n, stack in grown:
    if n / requests < 0.005:
        break
    print(f"  {n / requests:.3f} allocs/request at:")
    for f in [f for f in stack if not is_allocator(f)][:8]:
        print("    " + f[:160])
PY
}

echo "allocations per request: N1=$N1 N2=$N2, 10 clients, GET+SET, 1 worker, seed $SEED" >&2
printf '%-3s %12s %12s %16s\n' P "blocks(N1)" "blocks(N2)" "allocs/request"
for p in $PIPELINES; do
    measure "$p" "$N1"
    b1=$blocks
    measure "$p" "$N2"
    b2=$blocks
    per=$(awk -v a="$b1" -v b="$b2" -v n1="$N1" -v n2="$N2" 'BEGIN {printf "%.3f", (b - a) / (2 * (n2 - n1))}')
    printf '%-3s %12s %12s %16s\n' "$p" "$b1" "$b2" "$per"
    if [ "$STACKS" -gt 0 ] && awk -v x="$per" 'BEGIN {exit !(x >= 0.05)}'; then
        sites "$tmp/dhat-$p-$N1.json" "$tmp/dhat-$p-$N2.json" "$STACKS" $((2 * (N2 - N1)))
    fi
done
