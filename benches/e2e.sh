#!/usr/bin/env bash
# End-to-end benchmark: redis-benchmark straight at the cluster (--cluster)
# versus the same load through keyway, interleaved, on one throwaway 3+3
# cluster.
#
#   benches/e2e.sh              # throughput table (default)
#   benches/e2e.sh resp3        # through keyway: RESP3 clients (-3) vs RESP2
#   benches/e2e.sh conns        # memory of idle client connections
#   benches/e2e.sh blocked      # through keyway: no blocked clients vs BLOCKED in BLPOP
#   benches/e2e.sh pubsub       # SUBS subscribers: memory each, messages delivered/s
#   benches/e2e.sh split        # through keyway: MGET of SPLIT_KEYS keys in one slot vs over as many slots
#   benches/e2e.sh keys         # KEYS * over KEYS_N keys through keyway: keyway's RSS while it sends the reply
#   benches/e2e.sh floor        # CPU per op at -P 1: a lone redis-server vs keyway, same clients and commands
#   benches/e2e.sh auth         # memory of idle clients authenticated as an ACL user with key patterns
#                               # (CPU per op of such a client: benches/ab.sh with NEW_CONFIG/NEW_AUTH)
#   benches/e2e.sh replicas     # through keyway: GET with [read] policy master vs replica vs any:
#                               # ops/s, CPU per op, share of GETs served by masters and by replicas
#   benches/e2e.sh scrape       # time of a /metrics scrape with 0 and CONNS idle clients, and GET
#                               # latency (p50/p99) and ops/s with and without a scrape every 100 ms
#   benches/e2e.sh slowreader   # GET latency (p50/p99) of a client of the same worker and shard, and
#                               # keyway's peak RSS, without and with a client that pipelines
#                               # SLOW_GETS GETs of a SLOW_MB MiB value and reads nothing
#   benches/e2e.sh tls          # TLS: redis-benchmark --tls through keyway's TLS port vs its plain
#                               # port; a lone redis-server's tls-port vs its plain port (its own
#                               # TLS cost); keyway with [cluster.tls] (nodes' tls-ports) vs plain
#                               # backends; ops/s and CPU per op at each -P; memory per idle TLS client
#   benches/e2e.sh all          # all of them
#
# Environment: N (requests per run, 200000), ROUNDS (3), CLIENTS (50),
# PIPELINES ("1 16"), TESTS ("set get"), KEYWAY_WORKERS (1: keyway and
# redis share 2 cores, so one worker is the fairer default), CONNS (10000),
# BLOCKED (200), SUBS (10000), MESSAGES (100), SPLIT_KEYS (100), SPLIT_N
# (requests per split run, 50000), KEYS_N (1000000), FLOOR_TESTS ("ping_mbulk
# get set"), SCRAPES (timed /metrics scrapes per batch, 100), KEYWAY_BIN
# (default release/keyway in cargo's target directory, built here),
# SLOW_GETS (300), SLOW_MB (1; at 10, a 3+3 cluster node itself stalls over 2 s
# copying the replies into its output buffer, no proxy involved), SLOW_N (GETs of the probe per run, 20000).
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

BLOCKED=${BLOCKED:-200}
SUBS=${SUBS:-10000}
MESSAGES=${MESSAGES:-100}
SPLIT_KEYS=${SPLIT_KEYS:-100}
SPLIT_N=${SPLIT_N:-50000}
KEYS_N=${KEYS_N:-1000000}
SCRAPES=${SCRAPES:-100}
SLOW_GETS=${SLOW_GETS:-300}
SLOW_MB=${SLOW_MB:-1}
SLOW_N=${SLOW_N:-20000}
# Keys of redis-benchmark -r: key:000000000000 to key:000000099999.
KEYSPACE=100000
# The 64-byte value of the keys this script writes itself (as -d 64).
VALUE64=$(printf 'v%.0s' $(seq 64))

case $mode in throughput | resp3 | conns | blocked | pubsub | split | keys | floor | auth | replicas | scrape | slowreader | tls | all) ;; *)
    echo "usage: $0 [throughput|resp3|conns|blocked|pubsub|split|keys|floor|auth|replicas|scrape|slowreader|tls|all]" >&2
    exit 2
    ;;
esac

# Room for CONNS sockets in the client script and in keyway.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

tmp=$(mktemp -d -t keyway-bench.XXXXXX)
keyway_pid=""
lone_pid=""
# Background helpers of the scrape mode (idle clients, scrape loop).
holder_pid=""
scraper_pid=""
# The tls mode's second keyway (TLS to the nodes) and its port.
keyway2_pid=""
k2port=""
# stop_pid PID: ends a process this script started, if any.
stop_pid() {
    if [ -n "$1" ]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    trap - INT TERM EXIT
    stop_pid "$scraper_pid"
    stop_pid "$holder_pid"
    stop_pid "$keyway2_pid"
    if [ -n "$keyway_pid" ]; then
        stop_keyway
    fi
    stop_pid "$lone_pid"
    stop_cluster
    rm -rf "$tmp"
}
trap cleanup INT TERM EXIT

ensure_redis
if [ -z "${KEYWAY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin keyway)
    # Where cargo put it: target/, or CARGO_TARGET_DIR (or a config's
    # build.target-dir) when set.
    KEYWAY_BIN=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/keyway
fi
# tls_files DIR: a CA and a certificate for 127.0.0.1 and localhost it
# signed (ca.crt, tls.crt, tls.key), made with openssl.
tls_files() {
    local d=$1
    mkdir -p "$d"
    # ECDSA P-256: a handshake costs the server tens of microseconds (RSA
    # 2048: over a millisecond, which would show in the CPU per op of short
    # runs).
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
        -subj "/CN=keyway bench CA" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$d/tls.key" -out "$d/tls.csr" \
        -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext.cnf"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -out "$d/tls.crt" -days 2 -extfile "$d/ext.cnf" 2>/dev/null
}
if [ "$mode" = tls ] || [ "$mode" = all ]; then
    ensure_packages openssl openssl
    tls_files "$tmp/tls"
    CLUSTER_TLS_DIR=$tmp/tls
    # redis-benchmark --tls: the CA that signed keyway's and the nodes' certificate.
    TLS_CLIENT=(--tls --cacert "$tmp/tls/ca.crt")
fi
start_cluster "$tmp/cluster"
seed_port=${CLUSTER_PORTS%% *}

# start_keyway: a fresh keyway on a free port; sets kport and keyway_pid,
# and kadmin, the port of its admin endpoint (empty for a build without
# one): a free port chosen here rather than keyway_admin_args's port 0, so
# that the scrape mode knows where /metrics is.
# start_keyway [TOML [CREDENTIALS]]: keyway with TOML added to its config,
# ready when a client sending CREDENTIALS (redis-cli flags) can SET.
start_keyway() {
    local ports
    mapfile -t ports < <(free_ports 2)
    kport=${ports[0]} kadmin=""
    # Room for every client the modes open (CONNS, SUBS, plus the probes).
    printf '[client]\nmax_clients = 1000000\n%s\n' "${1:-}" >"$tmp/keyway.toml"
    local credentials=()
    read -r -a credentials <<<"${2:-}"
    local admin=()
    read -r -a admin <<<"$(keyway_admin_args "$KEYWAY_BIN")"
    if [ "${#admin[@]}" -gt 0 ]; then
        kadmin=${ports[1]}
        admin=(--admin-listen "127.0.0.1:$kadmin")
    fi
    "$KEYWAY_BIN" --config "$tmp/keyway.toml" "${admin[@]}" --listen "127.0.0.1:$kport" \
        --cluster "${KEYWAY_SEEDS:-$CLUSTER_SEEDS}" --workers "$WORKERS" --log-level warn \
        >"$tmp/keyway.log" 2>&1 &
    keyway_pid=$!
    local deadline=$((SECONDS + 30))
    until redis-cli --no-auth-warning -p "$kport" "${credentials[@]}" set bench:ready 1 2>/dev/null | grep -q OK; do
        if ! kill -0 "$keyway_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "keyway did not start serving; log:" >&2
            tail -n 30 "$tmp/keyway.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

stop_keyway() {
    kill "$keyway_pid" 2>/dev/null || true
    wait "$keyway_pid" 2>/dev/null || true
    keyway_pid=""
}

start_keyway

# cpu_ticks [PID]: user+system CPU of PID (default keyway) so far, in clock
# ticks (fields 14 and 15; the command names in field 2 hold no spaces).
cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$keyway_pid}/stat"; }

# start_lone: one redis-server outside the cluster (no persistence) on a
# free port; sets lone_port and lone_pid. The floor mode's yardstick. With
# CLUSTER_TLS_DIR, also a tls-port, lone_tls_port.
start_lone() {
    local ports tls=()
    mapfile -t ports < <(free_ports 2)
    lone_port=${ports[0]} lone_tls_port=${ports[1]}
    if [ -n "${CLUSTER_TLS_DIR:-}" ]; then
        tls=(--tls-port "$lone_tls_port" --tls-cert-file "$CLUSTER_TLS_DIR/tls.crt"
            --tls-key-file "$CLUSTER_TLS_DIR/tls.key" --tls-ca-cert-file "$CLUSTER_TLS_DIR/ca.crt"
            --tls-auth-clients no)
    fi
    redis-server "${tls[@]}" --port "$lone_port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --logfile "$tmp/lone.log" </dev/null >/dev/null 2>&1 &
    lone_pid=$!
    local deadline=$((SECONDS + 10))
    until redis-cli -p "$lone_port" ping 2>/dev/null | grep -q PONG; do
        [ "$SECONDS" -lt "$deadline" ] || { tail "$tmp/lone.log" >&2; exit 1; }
        sleep 0.1
    done
}

# rps_of CSV_FILE TEST: the requests/s column of redis-benchmark --csv.
rps_of() { awk -F'"' -v t="${2^^}" '$2 == t {print $4}' "$1"; }

# hold_blocked: BLOCKED clients blocked in BLPOP on keyway until killed;
# creates $tmp/blocked.ready once all are blocked.
hold_blocked() {
    exec python3 - "$kport" "$BLOCKED" "$tmp/blocked.ready" <<'PY'
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"BLPOP bench:blocked:{i} 0\r\n".encode())
    socks.append(s)
time.sleep(0.5)
open(ready, "w").close()
time.sleep(3600)
PY
}

# split_keys one-slot|cross-slot: SPLIT_KEYS key names, one per line: all
# in one slot through a {hash tag}, or each in a slot of its own.
split_keys() {
    python3 - "$1" "$SPLIT_KEYS" <<'PY'
import sys
def slot(key):
    crc = 0
    for byte in key.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc % 16384
kind, n = sys.argv[1], int(sys.argv[2])
keys, slots, i = [], set(), 0
while len(keys) < n:
    key = f"{{bench:split}}:{i}" if kind == "one-slot" else f"bench:split:{i}"
    if kind == "one-slot" or slot(key) not in slots:
        slots.add(slot(key))
        keys.append(key)
    i += 1
print("\n".join(keys))
PY
}

# mget_keys KIND: the keys of an mget-KIND run, created (64-byte values,
# written through keyway) on first use.
mget_keys() {
    local file="$tmp/keys.$1"
    if [ ! -e "$file" ]; then
        split_keys "$1" >"$file"
        xargs -a "$file" printf '%s '"$VALUE64"'\n' | xargs redis-cli -p "$kport" MSET >/dev/null
    fi
    mapfile -t keys <"$file"
    local found
    found=$(redis-cli -p "$kport" MGET "${keys[@]}" | grep -c "^$VALUE64\$" || true)
    if [ "$found" != "$SPLIT_KEYS" ]; then
        echo "MGET through keyway found $found of $SPLIT_KEYS keys ($1)" >&2
        exit 1
    fi
}

run_bench() { # run_bench {direct|lone|keyway|keyway3|keyway-blocked|mget-one-slot|mget-cross-slot} TEST P
    local kind=$1 t=$2 p=$3 out="$tmp/out.csv" before after
    local args=(-c "$CLIENTS" -r "$KEYSPACE" -d 64 -t "$t" -P "$p" -n "$N" -q --csv)
    case $kind in
    mget-*)
        # MGET of SPLIT_KEYS keys through keyway; the CSV's test name is
        # the whole command line.
        local keys
        mget_keys "${kind#mget-}"
        before=$(cpu_ticks)
        redis-benchmark -h 127.0.0.1 -p "$kport" -c "$CLIENTS" -P "$p" -n "$N" -q --csv \
            MGET "${keys[@]}" >"$out"
        after=$(cpu_ticks)
        grep -q ',"0.00"' "$out" && { echo "no MGET answered:" >&2; cat "$out" >&2; exit 1; }
        echo "$t $p $kind $(awk -F'"' 'NR == 2 {print $4}' "$out") $((after - before))"
        return
        ;;
    direct)
        redis-benchmark --cluster -h 127.0.0.1 -p "$seed_port" "${args[@]}" >"$out"
        echo "$t $p $kind $(rps_of "$out" "$t") 0"
        return
        ;;
    lone | lone-tls)
        local port=$lone_port
        [ "$kind" = lone ] || { port=$lone_tls_port; args+=("${TLS_CLIENT[@]}"); }
        before=$(cpu_ticks "$lone_pid")
        redis-benchmark -h 127.0.0.1 -p "$port" "${args[@]}" >"$out"
        after=$(cpu_ticks "$lone_pid")
        echo "$t $p $kind $(rps_of "$out" "$t") $((after - before))"
        return
        ;;
    keyway-tls | keyway-cluster-tls)
        # Through keyway's TLS listener; or through the second keyway,
        # which speaks TLS to the nodes.
        local port=$ktls pid=$keyway_pid
        if [ "$kind" = keyway-tls ]; then
            args+=("${TLS_CLIENT[@]}")
        else
            port=$k2port pid=$keyway2_pid
        fi
        before=$(cpu_ticks "$pid")
        redis-benchmark -h 127.0.0.1 -p "$port" "${args[@]}" >"$out"
        after=$(cpu_ticks "$pid")
        echo "$t $p $kind $(rps_of "$out" "$t") $((after - before))"
        return
        ;;
    keyway3) args+=(-3) ;;
    esac
    local holder=""
    if [ "$kind" = keyway-blocked ]; then
        hold_blocked &
        holder=$!
        until [ -e "$tmp/blocked.ready" ]; do sleep 0.1; done
    fi
    before=$(cpu_ticks)
    redis-benchmark -h 127.0.0.1 -p "$kport" "${args[@]}" >"$out"
    after=$(cpu_ticks)
    if [ -n "$holder" ]; then
        kill "$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
        rm -f "$tmp/blocked.ready"
    fi
    echo "$t $p $kind $(rps_of "$out" "$t") $((after - before))"
}

# The reports' awk programs start with this function: median(s), the
# median of the space-separated numbers in s.
awk_median='
        function median(s,   a, k, i, j, x) {
          k = split(s, a, " ")
          for (i = 2; i <= k; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
          return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }'

# compare BASE OTHER: runs both kinds interleaved, ROUNDS times, and prints
# medians: ops/s of each, OTHER/BASE, and the serving process's CPU per op
# in each (keyway's; the lone redis-server's for lone; none for direct).
compare() {
    local base=$1 other=$2 results="$tmp/results" r p t
    : >"$results"
    echo "$base vs $other: N=$N clients=$CLIENTS rounds=$ROUNDS keyway workers=$WORKERS" >&2
    for r in $(seq "$ROUNDS"); do
        for p in $PIPELINES; do
            for t in $TESTS; do
                run_bench "$base" "$t" "$p" | tee -a "$results" >&2
                run_bench "$other" "$t" "$p" | tee -a "$results" >&2
            done
        done
        echo "round $r done" >&2
    done
    # Medians over the rounds; CPU per op from keyway's ticks over N ops.
    awk -v n="$N" -v tck="$TCK" -v base="$base" -v other="$other" "$awk_median"'
        function cpu(s) { return median(s) / tck * 1e6 / n }
        { key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; order[++m] = key }
          if ($3 == base) { b[key] = b[key] " " $4; bc[key] = bc[key] " " $5 }
          else { o[key] = o[key] " " $4; oc[key] = oc[key] " " $5 } }
        END {
          printf "%-10s %3s %14s %14s %8s %14s %14s\n", "test", "P", base " ops/s", other " ops/s", "ratio", base " us/op", other " us/op"
          for (i = 1; i <= m; i++) {
            key = order[i]; split(key, tp, " ")
            bm = median(b[key]); om = median(o[key])
            printf "%-10s %3s %14.0f %14.0f %8.2f %14.2f %14.2f\n", toupper(tp[1]), tp[2], bm, om, (bm > 0 ? om / bm : 0), cpu(bc[key]), cpu(oc[key])
          }
        }' "$results"
}

# tls_bench: the TLS costs (see the usage at the top).
tls_bench() {
    stop_keyway
    ktls=$(free_ports 1)
    local tls_listener="[tls]
listen = \"127.0.0.1:$ktls\"
cert_file = \"$tmp/tls/tls.crt\"
key_file = \"$tmp/tls/tls.key\""
    start_keyway "$tls_listener"
    compare keyway keyway-tls
    start_lone
    compare lone lone-tls
    stop_pid "$lone_pid"
    lone_pid=""
    # A second keyway, speaking TLS to the nodes' tls-ports.
    local first_port=$kport first_pid=$keyway_pid
    # Known to the clean-up while the second one starts (or fails to).
    keyway2_pid=$first_pid
    KEYWAY_SEEDS=$CLUSTER_TLS_SEEDS start_keyway "[cluster.tls]
enabled = true
ca_file = \"$tmp/tls/ca.crt\""
    k2port=$kport keyway2_pid=$keyway_pid kport=$first_port keyway_pid=$first_pid
    compare keyway keyway-cluster-tls
    stop_pid "$keyway2_pid"
    keyway2_pid=""
    echo "idle connections: CONNS=$CONNS (open files limit $(ulimit -n))" >&2
    stop_keyway
    start_keyway "$tls_listener"
    conns_memory keyway-plain "$keyway_pid" "$kport" ping
    stop_keyway
    start_keyway "$tls_listener"
    conns_memory keyway-tls "$keyway_pid" "$ktls" tls
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# conns_memory NAME PID PORT [GREETING]: RSS growth of PID while CONNS idle
# clients are open. Each has sent one command so the server has set the
# session up: PING (the default), or HELLO 2 / HELLO 3 (GREETING hello2 /
# hello3), whose replies are the same size in both protocols.
conns_memory() {
    python3 - "$1" "$2" "$3" "$CONNS" "${4:-ping}" "${CLUSTER_TLS_DIR:-}" <<'PY'
import socket, ssl, sys, time
name, pid, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# "tls": PING over TLS, the CA in the directory of the last argument.
tls = ssl.create_default_context(cafile=f"{sys.argv[6]}/ca.crt") if sys.argv[5] == "tls" else None
hello, want = {
    "ping": (b"PING\r\n", b"+PONG"),
    "tls": (b"PING\r\n", b"+PONG"),
    "hello2": (b"HELLO 2\r\n", b"*14"),
    "hello3": (b"HELLO 3\r\n", b"%7"),
    "auth": (b"AUTH bench pw\r\n", b"+OK"),
}[sys.argv[5]]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        s = tls.wrap_socket(s, server_hostname="127.0.0.1")
    s.sendall(hello)
    socks.append(s)
for s in socks:
    reply = s.recv(4096)
    assert reply.startswith(want), reply
time.sleep(1)
after = rss()
print(f"{name:13} {n} idle connections: RSS {before} KiB -> {after} KiB, "
      f"{(after - before) / n:.2f} KiB per connection")
for s in socks:
    s.close()
PY
}

conns() {
    echo "idle connections: CONNS=$CONNS (open files limit $(ulimit -n))" >&2
    conns_memory keyway "$keyway_pid" "$kport"
    # RESP2 and RESP3 sessions, each in a fresh process so that memory freed
    # by the batch before is not reused.
    local greeting
    for greeting in hello2 hello3; do
        stop_keyway
        start_keyway
        conns_memory "keyway-$greeting" "$keyway_pid" "$kport" "$greeting"
    done
    # Baseline: one redis-server node holding the same connections.
    local node_pid=${CLUSTER_PIDS%% *}
    redis-cli -p "$seed_port" config set maxclients $((CONNS + 1000)) >/dev/null
    conns_memory redis "$node_pid" "$seed_port"
}

# auth: idle clients of a keyway with ACL users, authenticated as one with
# key patterns, against idle clients of a keyway without authentication
# (each batch in a fresh process).
auth_conns() {
    echo "idle connections: CONNS=$CONNS (open files limit $(ulimit -n))" >&2
    stop_keyway
    start_keyway
    conns_memory keyway-open "$keyway_pid" "$kport" ping
    stop_keyway
    start_keyway '[auth]
users = ["bench on >pw ~key:* ~bench:* ~counter:* &* +@all"]' "--user bench -a pw"
    conns_memory keyway-auth "$keyway_pid" "$kport" auth
}

# pubsub: SUBS subscribers of one channel through keyway: RSS per
# subscriber, then MESSAGES messages published and the time until the last
# subscriber has read them all (deliveries/s), and keyway CPU per delivery.
pubsub() {
    python3 - "$keyway_pid" "$kport" "$SUBS" "$MESSAGES" "$TCK" <<'PY'
import selectors, socket, sys, time
pid, port, n, m, tck = (int(a) for a in sys.argv[1:6])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def cpu():
    f = open(f"/proc/{pid}/stat").read().split()
    return int(f[13]) + int(f[14])
before = rss()
subs = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"SUBSCRIBE bench:news\r\n")
    subs.append(s)
for s in subs:
    assert s.recv(4096).startswith(b"*3"), "subscribe confirmation"
    s.setblocking(False)
time.sleep(1)
after = rss()
print(f"{n} subscribers: RSS {before} KiB -> {after} KiB, {(after - before) / n:.2f} KiB per subscriber")
frame = b"*3\r\n$7\r\nmessage\r\n$10\r\nbench:news\r\n$8\r\npayload!\r\n"
want = len(frame) * m
pub = socket.create_connection(("127.0.0.1", port))
c0, t0 = cpu(), time.time()
pub.sendall(b"PUBLISH bench:news payload!\r\n" * m)
assert pub.recv(64).startswith(b":"), "PUBLISH accepted"
sel = selectors.DefaultSelector()
got = {}
for s in subs:
    sel.register(s, selectors.EVENT_READ)
    got[s] = 0
left = n
while left:
    ready = sel.select(timeout=30)
    assert ready, f"{left} subscribers got nothing for 30 s"
    for key, _ in ready:
        s = key.fileobj
        data = s.recv(1 << 16)
        got[s] += len(data)
        if got[s] >= want:
            sel.unregister(s)
            left -= 1
elapsed, c1 = time.time() - t0, cpu()
print(f"{m} messages to {n} subscribers: {n * m} deliveries in {elapsed:.2f} s = {n * m / elapsed:,.0f} deliveries/s; keyway CPU {(c1 - c0) / tck * 1e6 / (n * m):.3f} us per delivery")
PY
}

# pipe_sets COUNT FORMAT VALUE: COUNT keys, FORMAT (printf-style) of 0 to
# COUNT-1, set to VALUE through keyway with `redis-cli --pipe`.
pipe_sets() {
    python3 - "$@" <<'PY' | redis-cli -p "$kport" --pipe >"$tmp/pipe.out"
import sys
n, key, value = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
out = sys.stdout.buffer
def set_command(i):
    k = key % i
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(value), value)
for start in range(0, n, 10000):
    out.write(b"".join(set_command(i) for i in range(start, min(n, start + 10000))))
PY
    grep -q "errors: 0" "$tmp/pipe.out" || { cat "$tmp/pipe.out" >&2; exit 1; }
}

# keys: KEYS_N keys (over every slot) written through keyway with
# `redis-cli --pipe`, then `KEYS *` through keyway read by a fast client,
# while keyway's RSS is sampled every 2 ms and its high-water mark (VmHWM,
# reset first through clear_refs) is read after. Prints the keys returned,
# the reply's bytes, keyway's RSS before, at its peak and just after, and
# peak/reply.
keys_rss() {
    pipe_sets "$KEYS_N" 'key:%07d' 1
    python3 - "$keyway_pid" "$kport" <<'PY'
import socket, sys, threading, time
pid, port = int(sys.argv[1]), int(sys.argv[2])
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
def command(s, cmd):
    s.sendall(cmd)
    return s.recv(4096)
s = socket.create_connection(("127.0.0.1", port))
size = command(s, b"DBSIZE\r\n")
before = status("VmRSS")
open(f"/proc/{pid}/clear_refs", "w").write("5")
peak, done = [before], False
def sample():
    while not done:
        peak[0] = max(peak[0], status("VmRSS"))
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
t0 = time.time()
s.sendall(b"KEYS *\r\n")
buf, got, count, pos = bytearray(), 0, None, 0
# Counts the elements as they arrive: `$len\r\n` then len bytes and CRLF.
while count is None or count > 0:
    chunk = s.recv(1 << 20)
    assert chunk, "keyway closed the connection"
    got += len(chunk)
    buf += chunk
    if count is None:
        end = buf.find(b"\r\n")
        if end < 0:
            continue
        assert buf[:1] == b"*", bytes(buf[:200])
        count = total = int(buf[1:end])
        pos = end + 2
    while count > 0:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            break
        n = int(buf[pos + 1:end])
        if len(buf) < end + 2 + n + 2:
            break
        pos = end + 2 + n + 2
        count -= 1
    del buf[:pos]
    pos = 0
elapsed = time.time() - t0
done = True
sampler.join()
hwm = status("VmHWM")
top = max(peak[0], hwm)
time.sleep(0.5)
after = status("VmRSS")
print(f"KEYS * through keyway: {total} keys (DBSIZE {size.decode().strip()}), "
      f"reply {got} bytes ({got / 2**20:.1f} MiB) in {elapsed:.2f} s")
print(f"keyway RSS: before {before} KiB, peak {top} KiB (sampled {peak[0]}, VmHWM {hwm}), "
      f"growth {top - before} KiB; peak/reply {top * 1024 / got:.2f}, growth/reply {(top - before) * 1024 / got:.2f}; "
      f"0.5 s after the reply {after} KiB")
PY
}

# floor: what one RESP server costs per op on this machine when every
# client has one request in flight: a lone redis-server answering from
# memory next to keyway (PING answered by keyway itself, GET/SET forwarded
# to the cluster). keyway's CPU per op at -P 1 is best read against it.
floor() {
    start_lone
    PIPELINES=1 TESTS=${FLOOR_TESTS:-ping_mbulk get set} compare lone keyway
}

# node_roles: master_ports and replica_ports, the client ports of the
# cluster's masters and replicas (role from each node's INFO replication).
node_roles() {
    master_ports=() replica_ports=()
    local p
    for p in $CLUSTER_PORTS; do
        if redis-cli -p "$p" info replication | grep -q '^role:master'; then
            master_ports+=("$p")
        else
            replica_ports+=("$p")
        fi
    done
}

# info_field PORT SECTION FIELD: FIELD's value in the node's INFO SECTION.
info_field() {
    redis-cli -p "$1" info "$2" | awk -F: -v f="$3" '$1 == f {sub(/\r$/, "", $2); print $2}'
}

# replicas_caught_up: every replica's offset (slave_repl_offset) has reached
# its master's master_repl_offset, read first (it only grows).
replicas_caught_up() {
    local p master want got
    for p in "${replica_ports[@]}"; do
        master=$(info_field "$p" replication master_port)
        want=$(info_field "$master" replication master_repl_offset)
        got=$(info_field "$p" replication slave_repl_offset)
        [ "${got:-0}" -ge "${want:-1}" ] || return 1
    done
}

# get_calls PORT...: the GETs those nodes served since CONFIG RESETSTAT
# (calls of cmdstat_get in INFO commandstats), summed.
get_calls() {
    local p calls sum=0
    for p in "$@"; do
        calls=$(info_field "$p" commandstats cmdstat_get | awk -F'[=,]' '{print $2}')
        sum=$((sum + ${calls:-0}))
    done
    echo "$sum"
}

# replica_reads: GET (keys of the whole -r keyspace, written first and
# replicated) through keyway with [read] policy master, replica and any,
# interleaved: each round runs the three in a rotated order, at each
# pipeline depth. Prints medians over the rounds of ops/s and keyway's CPU
# per op, that CPU per op over master's, and the share of the GETs served by
# the masters and by the replicas (every node's cmdstat_get, reset before
# each run, summed over the rounds).
#
# Each run gets a fresh keyway with its policy rather than one long-lived
# keyway per policy: every run starts from the same state (backend
# connections opened on first use, client ids counted afresh, so `any`
# splits the clients alike every time), and what a process's memory layout
# or thread placement costs is drawn anew each run instead of weighing on
# one policy in every round. Start-up stays out of the measurement:
# start_keyway returns once keyway serves a SET, before the CPU is read.
replica_reads() {
    local policies=(master replica any) results="$tmp/replicas" r p i policy port line ops ticks
    node_roles
    pipe_sets "$KEYSPACE" 'key:%012d' "$VALUE64"
    _cluster_poll 30 replicas_caught_up || {
        echo "replicas did not catch up with their masters within 30 s" >&2
        exit 1
    }
    : >"$results"
    echo "GET by [read] policy: N=$N clients=$CLIENTS rounds=$ROUNDS keyway workers=$WORKERS" \
        "masters ${master_ports[*]} replicas ${replica_ports[*]}" >&2
    for r in $(seq "$ROUNDS"); do
        for p in $PIPELINES; do
            for i in 0 1 2; do
                policy=${policies[$(((r - 1 + i) % 3))]}
                stop_keyway
                start_keyway "$(printf '[read]\npolicy = "%s"' "$policy")"
                for port in $CLUSTER_PORTS; do redis-cli -p "$port" config resetstat >/dev/null; done
                line=$(run_bench keyway get "$p")
                read -r _ _ _ ops ticks <<<"$line"
                echo "$p $policy $ops $ticks $(get_calls "${master_ports[@]}") $(get_calls "${replica_ports[@]}")" |
                    tee -a "$results" >&2
            done
        done
        echo "round $r done" >&2
    done
    # The plain keyway the other modes use.
    stop_keyway
    start_keyway
    awk -v n="$N" -v tck="$TCK" -v pipelines="$PIPELINES" -v policies="${policies[*]}" "$awk_median"'
        function cpu(s) { return median(s) / tck * 1e6 / n }
        { key = $1 " " $2; ops[key] = ops[key] " " $3; ticks[key] = ticks[key] " " $4
          masters[key] += $5; replicas[key] += $6 }
        END {
          printf "%-4s %3s %-8s %12s %10s %10s %9s %9s\n", "test", "P", "policy", "ops/s", "us/op", "us/master", "masters", "replicas"
          np = split(pipelines, ps, " "); nk = split(policies, ks, " ")
          for (i = 1; i <= np; i++) {
            base = cpu(ticks[ps[i] " master"])
            for (j = 1; j <= nk; j++) {
              key = ps[i] " " ks[j]; gets = masters[key] + replicas[key]
              # "-": too few clock ticks for a ratio (a small N).
              ratio = base > 0 ? sprintf("%.3f", cpu(ticks[key]) / base) : "-"
              printf "%-4s %3s %-8s %12.0f %10.2f %10s %8.1f%% %8.1f%%\n", "GET", ps[i], ks[j], median(ops[key]), cpu(ticks[key]),
                ratio, (gets ? 100 * masters[key] / gets : 0), (gets ? 100 * replicas[key] / gets : 0)
            }
          }
        }' "$results"
}

# hold_idle: CONNS idle clients of keyway (each has sent PING and read
# PONG, so keyway has registered it) until killed; creates $tmp/idle.ready
# once all are connected.
hold_idle() {
    exec python3 - "$kport" "$CONNS" "$tmp/idle.ready" <<'PY'
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PING\r\n")
    socks.append(s)
for s in socks:
    reply = s.recv(64)
    assert reply.startswith(b"+PONG"), reply
open(ready, "w").close()
time.sleep(3600)
PY
}

# scraper COUNT OUT: GET /metrics from keyway's admin endpoint COUNT times
# (0: until killed), one scrape starting every 100 ms (at once when the
# last took longer), each on a new connection as Prometheus's would be.
# Appends a line per scrape to OUT: milliseconds from connect to the end of
# the response, body bytes, body lines. It execs python: run it in the
# background or in a subshell.
scraper() {
    exec python3 - "$kadmin" "$1" "$2" <<'PY'
import socket, sys, time
port, count, out = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
done = 0
while count == 0 or done < count:
    start = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request)
    chunks = []
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    elapsed = time.perf_counter() - start
    s.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    lines = body.count(b"\n")
    out.write(f"{elapsed * 1e3:.3f} {len(body)} {lines}\n")
    done += 1
    time.sleep(max(0.0, 0.1 - (time.perf_counter() - start)))
PY
}

# scrape_summary LABEL CLIENTS FILE: one row of the scrape table from the
# lines scraper wrote: p50, p99 (nearest rank) and max of the times, and
# the median body size in bytes and lines.
scrape_summary() {
    sort -n "$3" | awk -v label="$1" -v clients="$2" "$awk_median"'
        { t[NR] = $1; bytes = bytes " " $2; lines = lines " " $3 }
        END {
          i = int(NR * 0.99); if (i < NR * 0.99) i++
          printf "%-18s %8d %7d %8.2f %8.2f %8.2f %10d %7d\n", label, clients, NR, t[int((NR + 1) / 2)], t[i], t[NR], median(bytes), median(lines)
        }'
}

# get_run quiet|scraped: GET at -P 1 through keyway (redis-benchmark
# --csv reports latency percentiles), alone or with scraper running in the
# background; prints "KIND ops/s p50 p99 max keyway-ticks", and keeps the
# background scrapes' times in $tmp/scrapes.load.
get_run() {
    local kind=$1 out="$tmp/get.csv" before after
    if [ "$kind" = scraped ]; then
        scraper 0 "$tmp/scrapes.load" &
        scraper_pid=$!
    fi
    before=$(cpu_ticks)
    redis-benchmark -h 127.0.0.1 -p "$kport" -c "$CLIENTS" -r "$KEYSPACE" -d 64 -t get -P 1 \
        -n "$N" --csv >"$out"
    after=$(cpu_ticks)
    stop_pid "$scraper_pid"
    scraper_pid=""
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
    # "p95_latency_ms","p99_latency_ms","max_latency_ms"
    awk -F'"' -v kind="$kind" -v ticks=$((after - before)) \
        '$2 == "GET" {print kind, $4, $10, $14, $16, ticks}' "$out"
}

# scrape: issue 17's target, "a scrape of /metrics with 10,000 connected
# clients takes < 50 ms and does not stall a worker". Times SCRAPES scrapes
# of /metrics with no client connected, then with CONNS idle clients; with
# those clients still connected, runs GET at -P 1 through keyway without
# and with a scrape every 100 ms, interleaved over ROUNDS (the order
# alternating each round), and prints medians over the rounds of ops/s,
# the latency percentiles redis-benchmark reports, keyway's CPU per GET
# (a scraped run's includes its scrapes), and scraped/quiet; and the times
# of the scrapes made during the load.
scrape_bench() {
    if [ -z "$kadmin" ]; then
        echo "$KEYWAY_BIN has no admin endpoint (--admin-listen)" >&2
        exit 1
    fi
    local results="$tmp/scrape-get" table="$tmp/scrape-table" r kind
    echo "scrape: SCRAPES=$SCRAPES CONNS=$CONNS N=$N clients=$CLIENTS rounds=$ROUNDS keyway workers=$WORKERS" \
        "(open files limit $(ulimit -n))" >&2
    pipe_sets "$KEYSPACE" 'key:%012d' "$VALUE64"
    (scraper "$SCRAPES" "$tmp/scrapes.0")
    scrape_summary idle 0 "$tmp/scrapes.0" >"$table"
    hold_idle &
    holder_pid=$!
    local deadline=$((SECONDS + 120))
    until [ -e "$tmp/idle.ready" ]; do
        if ! kill -0 "$holder_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "the $CONNS idle clients did not connect" >&2
            exit 1
        fi
        sleep 0.1
    done
    (scraper "$SCRAPES" "$tmp/scrapes.conns")
    scrape_summary idle "$CONNS" "$tmp/scrapes.conns" >>"$table"
    : >"$results"
    : >"$tmp/scrapes.load"
    for r in $(seq "$ROUNDS"); do
        for kind in $( ((r % 2)) && echo quiet scraped || echo scraped quiet); do
            get_run "$kind" | tee -a "$results" >&2
        done
        echo "round $r done" >&2
    done
    scrape_summary "during GET load" "$CONNS" "$tmp/scrapes.load" >>"$table"
    stop_pid "$holder_pid"
    holder_pid=""
    printf '%-18s %8s %7s %8s %8s %8s %10s %7s\n' "/metrics scrape" clients scrapes "p50 ms" "p99 ms" \
        "max ms" "bytes" lines
    cat "$table"
    echo
    awk -v n="$N" -v tck="$TCK" -v conns="$CONNS" -v clients="$CLIENTS" "$awk_median"'
        { ops[$1] = ops[$1] " " $2; p50[$1] = p50[$1] " " $3; p99[$1] = p99[$1] " " $4
          max[$1] = max[$1] " " $5; ticks[$1] = ticks[$1] " " $6 }
        END {
          printf "GET -P 1 -c %d through keyway, %d idle clients connected (medians over the rounds)\n", clients, conns
          printf "%-14s %10s %8s %8s %8s %8s\n", "run", "ops/s", "p50 ms", "p99 ms", "max ms", "us/op"
          for (k = 1; k <= 2; k++) {
            kind = k == 1 ? "quiet" : "scraped"
            o[kind] = median(ops[kind]); a[kind] = median(p50[kind]); b[kind] = median(p99[kind])
            c[kind] = median(max[kind]); u[kind] = median(ticks[kind]) / tck * 1e6 / n
            printf "%-14s %10.0f %8.3f %8.3f %8.3f %8.2f\n", kind, o[kind], a[kind], b[kind], c[kind], u[kind]
          }
          r = "scraped/quiet"
          printf "%-14s %10.2f %8.2f %8.2f %8.2f %8.2f\n", r, (o["quiet"] ? o["scraped"] / o["quiet"] : 0),
            (a["quiet"] ? a["scraped"] / a["quiet"] : 0), (b["quiet"] ? b["scraped"] / b["quiet"] : 0),
            (c["quiet"] ? c["scraped"] / c["quiet"] : 0), (u["quiet"] ? u["scraped"] / u["quiet"] : 0)
        }' "$results"
}

# slow_run quiet|slow: a fresh keyway (so its peak RSS is this run's);
# with "slow", a client that sends SLOW_GETS GETs of {slow}:big at once and
# reads nothing; then SLOW_N GETs of {slow}:small (same shard, same worker)
# at -P 1 -c 1. Prints "KIND p50 p99 max peak-RSS-MiB slow-clients-closed
# backend-failures".
slow_run() {
    local kind=$1 slow_pid="" out="$tmp/slow.csv"
    stop_keyway
    start_keyway
    if [ "$kind" = slow ]; then
        python3 - "$kport" "$SLOW_GETS" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"*2\r\n$3\r\nGET\r\n$10\r\n{slow}:big\r\n" * int(sys.argv[2]))
time.sleep(600)
PY
        slow_pid=$!
        sleep 0.2
    fi
    redis-benchmark -h 127.0.0.1 -p "$kport" -c 1 -n "$SLOW_N" --csv GET '{slow}:small' >"$out"
    local peak closed failures
    peak=$(awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$keyway_pid/status")
    closed=$(grep -c "too slowly" "$tmp/keyway.log" || true)
    failures=$(grep -c "backend connection lost\|did not answer in time" "$tmp/keyway.log" || true)
    stop_pid "$slow_pid"
    awk -F'"' -v kind="$kind" -v peak="$peak" -v closed="$closed" -v failures="$failures" \
        '$2 ~ /^GET/ {print kind, $10, $14, $16, peak, closed, failures}' "$out"
}

# slowreader: issue 18's target, "a non-reading client with 300 pipelined
# 10 MiB replies: other clients' GETs to the same shard on the same worker
# keep their usual latency; keyway's RSS stays under client.output_limit_mb
# + 64 MiB; the slow client is closed; no shared connection is dropped".
# Runs quiet and slow interleaved over ROUNDS (one worker: KEYWAY_WORKERS=1).
slowreader() {
    local results="$tmp/slow-results" r kind
    echo "slowreader: SLOW_GETS=$SLOW_GETS SLOW_MB=$SLOW_MB SLOW_N=$SLOW_N rounds=$ROUNDS keyway workers=$WORKERS" >&2
    python3 - "$kport" "$SLOW_MB" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
for key, value in ((b"{slow}:big", b"x" * (int(sys.argv[2]) << 20)), (b"{slow}:small", b"s")):
    s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(value)) + value + b"\r\n")
    assert s.recv(5) == b"+OK\r\n"
PY
    : >"$results"
    for r in $(seq "$ROUNDS"); do
        for kind in $( ((r % 2)) && echo quiet slow || echo slow quiet); do
            # Not in a pipeline: slow_run starts and stops keyway, and
            # keyway_pid must stay this shell's, for the next run and cleanup.
            slow_run "$kind" >>"$results"
            tail -n 1 "$results" >&2
        done
    done
    awk "$awk_median"'
        { p50[$1] = p50[$1] " " $2; p99[$1] = p99[$1] " " $3; peak[$1] = peak[$1] " " $5
          closed[$1] += $6; failures[$1] += $7 }
        END {
          printf "GET {slow}:small -P 1 -c 1 through keyway (medians over the rounds)\n"
          printf "%-8s %8s %8s %14s %14s %17s\n", "run", "p50 ms", "p99 ms", "peak RSS MiB", "slow closed", "backend failures"
          for (k = 1; k <= 2; k++) {
            kind = k == 1 ? "quiet" : "slow"
            printf "%-8s %8.3f %8.3f %14d %14d %17d\n", kind, median(p50[kind]), median(p99[kind]), median(peak[kind]), closed[kind], failures[kind]
          }
        }' "$results"
}

case $mode in
throughput) compare direct keyway ;;
slowreader) slowreader ;;
resp3) compare keyway keyway3 ;;
conns) conns ;;
blocked) compare keyway keyway-blocked ;;
pubsub) pubsub ;;
keys) keys_rss ;;
floor) floor ;;
auth) auth_conns ;;
replicas) replica_reads ;;
scrape) scrape_bench ;;
tls) tls_bench ;;
split)
    N=$SPLIT_N TESTS=mget compare mget-one-slot mget-cross-slot
    ;;
all)
    compare direct keyway
    compare keyway keyway3
    compare keyway keyway-blocked
    N=$SPLIT_N TESTS=mget compare mget-one-slot mget-cross-slot
    replica_reads
    pubsub
    conns
    keys_rss
    floor
    auth_conns
    scrape_bench
    tls_bench
    ;;
esac
