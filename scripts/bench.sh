#!/usr/bin/env bash
# Runs every benchmark scenario against its comparators in one run and
# rewrites BENCH.md and bench/pingpong.svg (see bench/src/bin/bench.rs).
#
#   scripts/bench.sh                    # 5 s per point, 3 repetitions
#   SECONDS_PER_POINT=2 REPS=1 scripts/bench.sh   # a quick look
#   scripts/bench.sh im                 # only scenario 5 (IM routing): rewrites
#                                       # that section of BENCH.md, keeps the rest
#
# Needs: cargo, taskset (util-linux) for pinning on 2+ cores, strace for the
# system-call columns (apt-get install strace; without it they read NaN).
# Benchmarks are not tests: nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bins
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p examples --bin pingpong
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p servers --bin msg_server
exec "$TARGET_DIR/release/bench" "${1:-all}" --seconds "${SECONDS_PER_POINT:-5}" --reps "${REPS:-3}" \
    --out BENCH.md --svg bench/pingpong.svg
