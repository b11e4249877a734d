#!/usr/bin/env bash
# Section 5a of BENCH.md, the SQLite store alone (issue 12): opens the
# backend msg_server's store thread runs (WAL, synchronous=FULL) on a fresh
# file in the temporary directory and commits im_bench-shaped batches
# (half new messages, half delivery acks of earlier batches) from one
# thread pinned to core 0, for 1000 and 10000 users, 24- and 100-byte
# messages and 64, 512 and 4096 operations per transaction: messages/s,
# CPU per message, commits/s. Rewrites only that subsection of BENCH.md.
# About four minutes with the defaults (12 points x REPS x (1 + SECONDS) s).
#
#   scripts/bench_im_store.sh                      # 5 s per point, 3 repetitions
#   SECONDS_PER_POINT=2 REPS=1 scripts/bench_im_store.sh   # a quick look
#   STORE_DIR=/some/disk scripts/bench_im_store.sh # files on another filesystem
#
# The machine may be shared: the subsection records the load average and the
# involuntary context switches. Benchmarks are not tests: nothing here
# asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bin bench
exec "$TARGET_DIR/release/bench" im_store --seconds "${SECONDS_PER_POINT:-5}" --reps "${REPS:-3}" \
    ${STORE_DIR:+--store-dir "$STORE_DIR"} --out BENCH.md
