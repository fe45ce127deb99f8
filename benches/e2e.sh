#!/usr/bin/env bash
# End-to-end benchmark: redis-benchmark straight at the cluster (--cluster)
# versus the same load through keyway, interleaved, on one throwaway 3+3
# cluster.
#
#   benches/e2e.sh              # throughput table (default)
#   benches/e2e.sh conns        # memory of idle client connections
#   benches/e2e.sh all          # both
#
# Environment: N (requests per run, 200000), ROUNDS (3), CLIENTS (50),
# PIPELINES ("1 16"), TESTS ("set get"), KEYWAY_WORKERS (1: keyway and
# redis share 2 cores, so one worker is the fairer default), CONNS (10000),
# KEYWAY_BIN (default target/release/keyway, built here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/cluster.sh
source "$root/docker/cluster.sh"

mode=${1:-throughput}
N=${N:-200000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-1 16}
TESTS=${TESTS:-set get}
WORKERS=${KEYWAY_WORKERS:-1}
CONNS=${CONNS:-10000}
TCK=$(getconf CLK_TCK)

case $mode in throughput | conns | all) ;; *)
    echo "usage: $0 [throughput|conns|all]" >&2
    exit 2
    ;;
esac

# Room for CONNS sockets in the client script and in keyway.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

tmp=$(mktemp -d -t keyway-bench.XXXXXX)
keyway_pid=""
cleanup() {
    trap - INT TERM EXIT
    if [ -n "$keyway_pid" ]; then
        kill "$keyway_pid" 2>/dev/null || true
        wait "$keyway_pid" 2>/dev/null || true
    fi
    stop_cluster
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

ensure_redis
if [ -z "${KEYWAY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin keyway)
    KEYWAY_BIN=$root/target/release/keyway
fi
start_cluster "$tmp/cluster"
seed_port=${CLUSTER_PORTS%% *}

kport=$(free_ports 1)
"$KEYWAY_BIN" --listen "127.0.0.1:$kport" --cluster "$CLUSTER_SEEDS" \
    --workers "$WORKERS" --log-level warn >"$tmp/keyway.log" 2>&1 &
keyway_pid=$!
deadline=$((SECONDS + 30))
until redis-cli -p "$kport" set bench:ready 1 2>/dev/null | grep -q OK; do
    if ! kill -0 "$keyway_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
        echo "keyway did not start serving; log:" >&2
        tail -n 30 "$tmp/keyway.log" >&2
        exit 1
    fi
    sleep 0.1
done

# keyway's user+system CPU so far, in clock ticks (fields 14 and 15; the
# command name in field 2 holds no spaces for keyway).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$keyway_pid/stat"; }

# rps_of CSV_FILE TEST: the requests/s column of redis-benchmark --csv.
rps_of() { awk -F'"' -v t="${2^^}" '$2 == t {print $4}' "$1"; }

run_bench() { # run_bench {direct|keyway} TEST P
    local kind=$1 t=$2 p=$3 out="$tmp/out.csv" before after
    local args=(-c "$CLIENTS" -r 100000 -d 64 -t "$t" -P "$p" -n "$N" -q --csv)
    if [ "$kind" = direct ]; then
        redis-benchmark --cluster -h 127.0.0.1 -p "$seed_port" "${args[@]}" >"$out"
        echo "$t $p direct $(rps_of "$out" "$t") 0"
    else
        before=$(cpu_ticks)
        redis-benchmark -h 127.0.0.1 -p "$kport" "${args[@]}" >"$out"
        after=$(cpu_ticks)
        echo "$t $p keyway $(rps_of "$out" "$t") $((after - before))"
    fi
}

throughput() {
    local results="$tmp/results" r p t
    : >"$results"
    echo "throughput: N=$N clients=$CLIENTS rounds=$ROUNDS keyway workers=$WORKERS" >&2
    for r in $(seq "$ROUNDS"); do
        for p in $PIPELINES; do
            for t in $TESTS; do
                run_bench direct "$t" "$p" | tee -a "$results" >&2
                run_bench keyway "$t" "$p" | tee -a "$results" >&2
            done
        done
        echo "round $r done" >&2
    done
    # Medians over the rounds; CPU per op from keyway's ticks over N ops.
    awk -v n="$N" -v tck="$TCK" '
        function median(s,   a, k, i, j, x) {
          k = split(s, a, " ")
          for (i = 2; i <= k; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
          return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        { key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; order[++m] = key }
          if ($3 == "direct") d[key] = d[key] " " $4; else { k[key] = k[key] " " $4; c[key] = c[key] " " $5 } }
        END {
          printf "%-6s %3s %14s %14s %8s %16s\n", "test", "P", "direct ops/s", "keyway ops/s", "ratio", "keyway us CPU/op"
          for (i = 1; i <= m; i++) {
            key = order[i]; split(key, tp, " ")
            dm = median(d[key]); km = median(k[key]); cm = median(c[key])
            printf "%-6s %3s %14.0f %14.0f %8.2f %16.2f\n", toupper(tp[1]), tp[2], dm, km, (dm > 0 ? km / dm : 0), cm / tck * 1e6 / n
          }
        }' "$results"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# conns_memory NAME PID PORT: RSS growth of PID while CONNS idle clients
# (each has sent one PING, so the server has set the session up) are open.
conns_memory() {
    python3 - "$1" "$2" "$3" "$CONNS" <<'PY'
import socket, sys, time
name, pid, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PING\r\n")
    socks.append(s)
for s in socks:
    reply = s.recv(64)
    assert reply.startswith(b"+PONG"), reply
time.sleep(1)
after = rss()
print(f"{name:8} {n} idle connections: RSS {before} KiB -> {after} KiB, "
      f"{(after - before) / n:.2f} KiB per connection")
for s in socks:
    s.close()
PY
}

conns() {
    echo "idle connections: CONNS=$CONNS (open files limit $(ulimit -n))" >&2
    conns_memory keyway "$keyway_pid" "$kport"
    # Baseline: one redis-server node holding the same connections.
    local node_pid=${CLUSTER_PIDS%% *}
    redis-cli -p "$seed_port" config set maxclients $((CONNS + 1000)) >/dev/null
    conns_memory redis "$node_pid" "$seed_port"
}

case $mode in
throughput) throughput ;;
conns) conns ;;
all)
    throughput
    conns
    ;;
esac
