#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 30), one
# after another, starting from the seeds in fuzz/corpus/<target>/ (inputs that
# reach new code are added there too; fuzz/.gitignore keeps only seed-* files).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz`). All targets are
# built first (one `cargo fuzz build`), then run FUZZ_JOBS at a time (default:
# the number of CPUs; libFuzzer uses one core per run), each for the full N
# seconds. Prints one summary line per target (runs, coverage, corpus size)
# and exits non-zero if any target crashed; the crashing input is left in
# fuzz/artifacts/<target>/ and should become a regression test next to the
# code it broke.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(pdu_decoder proto_bodies login_http memcached_session socks_request msgcenter_frame msgcenter_value prefork_packet)
fi
logdir=${FUZZ_LOG_DIR:-$(mktemp -d)}
mkdir -p "$logdir"
jobs=${FUZZ_JOBS:-$(nproc)}
cd fuzz
cargo +nightly fuzz build >/dev/null

# One target: runs it, then prints its summary line or its log's tail.
fuzz_one() {
    local t=$1 log="$logdir/$1.log"
    mkdir -p "corpus/$t"
    if ! cargo +nightly fuzz run "$t" "corpus/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED after at most ${secs}s; input in fuzz/artifacts/$t/" >&2
        return 1
    fi
    local runs cov corp
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1)
    echo "fuzz: $t ok: ${runs:-?}, ${cov:-cov: ?}, ${corp:-corp: ?}, no crash"
}

failed=0
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
exit "$failed"
