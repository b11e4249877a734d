#!/usr/bin/env bash
# Runs every benchmark scenario against its comparators in one run and
# rewrites BENCH.md and bench/pingpong.svg (see bench/src/bin/bench.rs).
#
#   scripts/bench.sh                    # 5 s per point, 3 repetitions
#   SECONDS_PER_POINT=2 REPS=1 scripts/bench.sh   # a quick look
#   scripts/bench.sh im                 # only scenario 5 (IM routing, REPS pairs of
#                                       # ladders per user count; with REPS=3 it took 1342 s
#                                       # and 1317 s in the last runs): rewrites
#                                       # that section of BENCH.md, keeps the rest
#   BENCH_BASELINE=74ece0a scripts/bench.sh   # also section 7: this build's
#                                       # servers against that revision's
#
# Needs: cargo, taskset (util-linux) for pinning on 2+ cores, strace for the
# system-call columns (apt-get install strace; without it they read NaN).
# Benchmarks are not tests: nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bins
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p examples --bin pingpong --bin netlib-memcached
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p servers --bin msg_server
baseline=()
if [ -n "${BENCH_BASELINE:-}" ]; then
    # An earlier revision's servers, built from a clean export of it.
    base="$TARGET_DIR/baseline"
    echo "building baseline $BENCH_BASELINE (release)..." >&2
    rm -rf "$base/src" && mkdir -p "$base/src"
    git archive "$BENCH_BASELINE" | tar -x -C "$base/src"
    (cd "$base/src" && CARGO_TARGET_DIR="$(cd ../ && pwd)/target" \
        cargo build --release -q -p bench --bin pdu_echo_server --bin netlib_pingpong_server)
    cp "$base/target/release/pdu_echo_server" "$base/target/release/netlib_pingpong_server" "$base/"
    git rev-parse --short "$BENCH_BASELINE" > "$base/REVISION"
    baseline=(--baseline "$base")
fi
exec "$TARGET_DIR/release/bench" "${1:-all}" --seconds "${SECONDS_PER_POINT:-5}" --reps "${REPS:-3}" \
    --out BENCH.md --svg bench/pingpong.svg "${baseline[@]}"
