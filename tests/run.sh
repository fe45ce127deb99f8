#!/usr/bin/env bash
# The project's one test command: every unit and integration test, against
# real redis-server processes (installed here if missing).
#
#   tests/run.sh                 # all tests
#   tests/run.sh failover::      # extra arguments go to cargo test (a module)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=docker/cluster.sh
source docker/cluster.sh
ensure_redis
redis-server --version

# Hundreds of concurrent test clients, each one a socket in the test and
# two in keyway: lift the open-files limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

if ! cargo test --release "$@"; then
    echo "tests/run.sh: TESTS FAILED" >&2
    exit 1
fi
