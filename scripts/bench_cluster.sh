#!/usr/bin/env bash
# Cluster figures -> BENCH-cluster.md: the three jobs with 1, 2 and 4
# executors (capacity 1 each) on loopback, with wall time, tasks and CPU
# seconds per executor, against the same job on one machine single-threaded
# (`cluster local`); and file transfer between two executors against
# `cat file | nc` over the same loopback. Everything runs on this machine,
# so "more executors" means more processes sharing its cores: the work per
# executor shows how the job was split, the wall time how the cores were used.
#
#   scripts/bench_cluster.sh                 # about 3 minutes
#   INTS=1000000 WORDS=200000 XFER_MB=64 NQ=13 scripts/bench_cluster.sh   # quick
set -euo pipefail
cd "$(dirname "$0")/.."
INTS=${INTS:-10000000}      # integers per median file (4 files)
WORDS=${WORDS:-2000000}     # words per word file (4 files)
NQ=${NQ:-16}                # N-queens board
XFER_MB=${XFER_MB:-512}     # file transfer size
OUT=${OUT:-BENCH-cluster.md}
cargo build --release -q -p cluster
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
B=$PWD/target/release/cluster
W=$(mktemp -d /tmp/bench-cluster.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
SET=(--set grace_ms=300 --set lease_ms=3000)

echo "generating data in $W" >&2
mkdir -p "$W/data"
for i in 0 1 2 3; do
  $B gen-data --out "$W/data/median-$i.i64" --count "$INTS" --seed $((i + 1))
  $B gen-words --out "$W/data/words-$i.txt" --count "$WORDS" --seed $((i + 1))
done

cpu() { # utime+stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

start_cluster() { # $1 = executors; sets REG, EXE_PIDS
  local n=$1 port=$((17600 + n * 10))
  REG=127.0.0.1:$port
  $B reg --listen "$REG" "${SET[@]}" >/dev/null 2>&1 & PIDS+=($!)
  sleep 0.3
  EXE_PIDS=()
  for ((e = 0; e < n; e++)); do
    local d="$W/exe$n-$e"; mkdir -p "$d"
    for i in 0 1 2 3; do
      if (( i % n == e )); then ln -f "$W/data/median-$i.i64" "$W/data/words-$i.txt" "$d/"; fi
    done
    $B exe --reg "$REG" --listen 127.0.0.1:$((port + 1 + e)) --capacity 1 --data "$d" "${SET[@]}" >/dev/null 2>&1 &
    PIDS+=($!); EXE_PIDS+=($!)
  done
  sleep 1.5
}

stop_cluster() {
  for p in "${EXE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  kill "${PIDS[-$(( ${#EXE_PIDS[@]} + 1 ))]}" 2>/dev/null || true
  sleep 0.3
}

run_job() { # $1 = label, rest = job command; appends a table row
  local label=$1; shift
  local before=() after=() out wall work
  for p in "${EXE_PIDS[@]}"; do before+=("$(cpu "$p")"); done
  out=$("$B" "$@" --reg "$REG" --progress-lines | grep -v '^PROGRESS')
  for p in "${EXE_PIDS[@]}"; do after+=("$(cpu "$p")"); done
  wall=$(echo "$out" | grep '^RESULT' | grep -o '[0-9.]*s$')
  work=""
  for i in "${!EXE_PIDS[@]}"; do
    local tasks
    tasks=$(echo "$out" | grep '^WORK' | awk -v port=":$((17600 + ${#EXE_PIDS[@]} * 10 + 1 + i))" 'index($2, port) { print $3 }')
    work+="exe$i: ${tasks:-0} tasks, $(awk -v a="${after[$i]}" -v b="${before[$i]}" 'BEGIN { printf "%.2f", a - b }') s CPU; "
  done
  echo "| $label | ${#EXE_PIDS[@]} | $wall | ${work%; } | $(echo "$out" | grep '^RESULT' | cut -c1-60) |" >> "$W/rows"
  echo "$label with ${#EXE_PIDS[@]}: $wall" >&2
}

: > "$W/rows"
for n in 1 2 4; do
  start_cluster "$n"
  run_job "N-queens N=$NQ (depth 2)" nqueens --n "$NQ" --depth 2
  run_job "median of 4x$INTS int64" median
  run_job "top-10 of 4x$WORDS words" topk --k 10
  stop_cluster
done

# One machine, one thread; CPU seconds (user+sys) from bash's time.
local_run() { # $1 = output file, rest = command; prints the CPU seconds
  local out=$1; shift
  local TIMEFORMAT='%3U %3S'
  { time "$@" > "$out"; } 2>&1 | awk '{ printf "%.2f", $1 + $2 }'
}
cpu_nq=$(local_run "$W/b1" "$B" local nqueens "$NQ"); base_nq=$(cat "$W/b1")
cpu_med=$(local_run "$W/b2" "$B" local median "$W"/data/median-*.i64); base_med=$(cat "$W/b2")
cpu_top=$(local_run "$W/b3" "$B" local topk 10 "$W"/data/words-*.txt); base_top=$(sed -n 1p "$W/b3")

# File transfer: executor to executor vs cat | nc, same loopback.
head -c $((XFER_MB * 1024 * 1024)) /dev/urandom > "$W/blob.bin"
start_cluster 2
d0="$W/exe2-0"; d1="$W/exe2-1"
ln -f "$W/blob.bin" "$d0/blob.bin"
sleep 1
c0=$(cpu "${EXE_PIDS[0]}"); c1=$(cpu "${EXE_PIDS[1]}")
rep=$($B replicate --reg "$REG" --file blob.bin | grep '^RESULT')
c0b=$(cpu "${EXE_PIDS[0]}"); c1b=$(cpu "${EXE_PIDS[1]}")
cmp -s "$W/blob.bin" "$d1/blob.bin" || { echo "replicated file differs" >&2; exit 1; }
stop_cluster
port=17999
nc -l 127.0.0.1 $port > "$W/nc.out" & ncpid=$!; PIDS+=($ncpid)
sleep 0.3
t2=$(date +%s.%N)
cat "$W/blob.bin" | nc -N 127.0.0.1 $port
wait $ncpid || true
t3=$(date +%s.%N)
cmp -s "$W/blob.bin" "$W/nc.out" || { echo "nc copy differs" >&2; exit 1; }
rate() { awk -v mb="$XFER_MB" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", mb / (b - a) }'; }
# The cluster's time: from publishing the task to its result (the RESULT line).
t_cl=$(echo "$rep" | grep -o '[0-9.]*s$' | tr -d s)
r_cl=$(rate 0 "$t_cl"); r_nc=$(rate "$t2" "$t3")
cpu_cl=$(awk -v a="$c0" -v b="$c0b" -v c="$c1" -v d="$c1b" -v mb="$XFER_MB" 'BEGIN { printf "%.2f s (%.1f ms/MB)", (b - a) + (d - c), 1000 * ((b - a) + (d - c)) / mb }')

{
  echo "# Cluster figures"
  echo
  echo "Produced by \`scripts/bench_cluster.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r))."
  echo "**The machine was shared** with other builds and tests while this ran, and all"
  echo "executors share its $(nproc) cores: with more executors than cores the wall time cannot"
  echo "drop further, so the work per executor (tasks and CPU seconds) is the figure that"
  echo "shows the split. Executors have capacity 1 (one task at a time); the 4 data files"
  echo "are spread round-robin over the executors (1 executor holds all 4). Load average"
  echo "before / after the run: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "## Jobs"
  echo
  echo "| job | executors | wall | per executor | result |"
  echo "|---|---:|---:|---|---|"
  cat "$W/rows"
  echo
  echo "One machine, one thread (\`cluster local\`), same data:"
  echo
  echo "- \`$base_nq\` ($cpu_nq s CPU)"
  echo "- \`$base_med\` ($cpu_med s CPU; reads and sorts everything)"
  echo "- \`$base_top\` ($cpu_top s CPU)"
  echo
  echo "## File transfer between executors"
  echo
  echo "A ${XFER_MB} MiB file (page-cached) replicated from one executor to another over"
  echo "loopback (256 KiB chunks, SHA-256 per chunk and of the whole file, 8 chunks in"
  echo "flight, written with pwrite and hashed again at the end), against \`cat file | nc\`"
  echo "into a file over the same loopback. The cluster figure runs from publishing the task"
  echo "to its result (assignment included); the nc figure is \`cat | nc\` until the listener"
  echo "has written the last byte:"
  echo
  echo "| transfer | MB/s | CPU (both executors) |"
  echo "|---|---:|---|"
  echo "| cluster replicate | $r_cl | $cpu_cl |"
  echo "| cat \\| nc | $r_nc | - |"
  echo
  echo "Ratio nc / cluster: $(awk -v a="$r_nc" -v b="$r_cl" 'BEGIN { printf "%.1f", a / b }')x. \`$rep\`"
} > "$OUT"
echo "wrote $OUT" >&2
