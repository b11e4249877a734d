#!/usr/bin/env bash
# Section 9 of BENCH.md, IM routing across msg_servers (issue 13): one
# PostgreSQL (temporary data directory) and one nats-server on loopback,
# then 1, 2 and 3 msg_servers sharing them, driven by im_bench (1000 users
# spread over the servers, a fixed offered rate, then a rate ladder);
# rewrites only that section of BENCH.md (the counts run interleaved,
# REPS times). About four to five minutes with the defaults.
#
#   scripts/bench_im_cluster.sh                    # 3 s per step, 3 repetitions
#   SECONDS_PER_POINT=5 REPS=3 scripts/bench_im_cluster.sh
#
# Needs Debian's postgresql and nats-server (scripts/test.sh installs them).
# Benchmarks are not tests: nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bin bench --bin im_bench
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p servers --bin msg_server
exec "$TARGET_DIR/release/bench" im_cluster --seconds "${SECONDS_PER_POINT:-3}" --reps "${REPS:-3}" \
    --out BENCH.md
