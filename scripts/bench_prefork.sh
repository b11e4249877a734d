#!/usr/bin/env bash
# Section 8 of BENCH.md: servers made of worker processes under a prefork
# master. Rewrites only that section (see bench/src/bin/bench/prefork.rs):
#
#   8a. 100,000 idle connections held by 6 worker processes (one process
#       stops near 20,000 descriptors here), opened by 6 client processes
#       from source addresses 127.0.0.2..7: memory per connection and idle
#       CPU summed over master and workers, and the connections per worker;
#   8b. netlib-memcached -t 1, --processes 1 and --processes 2 against
#       memcached -t 1 / -t 2 under memaslap, with the connections per
#       worker mid-run.
#
#   scripts/bench_prefork.sh                      # 10 s per memaslap run, 3 repetitions
#   SECONDS_PER_POINT=5 REPS=1 CONNECTIONS=20000 scripts/bench_prefork.sh   # a quick look
#
# Needs: cargo; memcached and memcaslap (libmemcached-tools) for 8b,
# taskset (util-linux) for pinning. The machine may be shared: the section
# records the load average. Benchmarks are not tests: nothing here asserts
# a timing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "building (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p bench --bin bench --bin conn_scale
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p examples --bin netlib-memcached
exec "$TARGET_DIR/release/bench" prefork --seconds "${SECONDS_PER_POINT:-10}" --reps "${REPS:-3}" \
    --prefork-connections "${CONNECTIONS:-100000}" --out BENCH.md
