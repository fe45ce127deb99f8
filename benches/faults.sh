#!/usr/bin/env bash
# Soak runs of the fault suite (issue 18): runs the fault tests (SIGKILL of
# a master, then its restart; SIGSTOP of a master, with the other shards'
# p99 latency; CLUSTER FAILOVER and a killed replica; resharding of 5,000
# slots and slots migrating under load; a master added and rebalanced;
# Valkey 9's CLUSTER MIGRATESLOTS when the nodes run Valkey) ROUNDS times,
# each against a fresh 3+3 cluster with 8 writers and 8 readers through
# keyway, and prints every run's report lines (errors, longest wait,
# acknowledged writes lost) and a tally of failed runs. The same tests run
# once in tests/run.sh.
#
#   benches/faults.sh            # ROUNDS (default 10)
#   KEYWAY_TEST_SERVER=/path/to/valkey-server benches/faults.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=docker/cluster.sh
source "$root/docker/cluster.sh"
ensure_redis

ROUNDS=${ROUNDS:-10}
cd "$root"
cargo build --release --tests --bin keyway
failed=0
for round in $(seq "$ROUNDS"); do
    log=$(mktemp)
    if cargo test --release --test integration -- --nocapture \
        faults:: failover_hold:: failover::resharding_under_load >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=$((failed + 1))
    fi
    echo "round $round: $status"
    grep -E "fault report|failover under load|hung master|panicked" "$log" | sed 's/^/  /'
    rm -f "$log"
done
echo "$failed of $ROUNDS rounds failed"
[ "$failed" -eq 0 ]
