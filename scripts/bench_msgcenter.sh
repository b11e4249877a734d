#!/usr/bin/env bash
# The message center against ZeroMQ DEALER/ROUTER (same exchange, same run):
# messages per second one way, NeedAck round trips per second with 1, 10 and
# 100 peers, and the receiver's CPU per message. Rewrites BENCH-msgcenter.md
# (see bench/src/bin/msgcenter_bench.rs).
#
#   scripts/bench_msgcenter.sh                         # 5 s per point, 3 repetitions
#   SECONDS_PER_POINT=1 REPS=1 scripts/bench_msgcenter.sh   # a quick look
#
# Needs: cargo, libzmq (apt-get install libzmq3-dev pkg-config), taskset
# (util-linux) for pinning on 2+ cores. Benchmarks are not tests: nothing
# here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
if ! pkg-config --exists libzmq 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libzmq3-dev pkg-config
fi
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bin msgcenter_bench
exec "$TARGET_DIR/release/msgcenter_bench" run --seconds "${SECONDS_PER_POINT:-5}" --reps "${REPS:-3}" \
    --out BENCH-msgcenter.md
