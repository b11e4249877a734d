#!/usr/bin/env bash
# Benchmarks netlib-memcached against real memcached with libmemcached's
# memaslap (Debian: memcaslap), in one run, on the same machine, and writes
# BENCH-memcached.md.
#
#   scripts/bench_memcached.sh            # 10 s per run, 3 repetitions
#   DURATION=5 REPS=5 scripts/bench_memcached.sh
#
# For each repetition it runs, interleaved so that background load hits all
# of them alike: ours -t 1, memcached -t 1, ours -t 2, memcached -t 2. Each run
# starts a fresh server on a free loopback port, warms it up for WARMUP
# seconds, then runs memaslap for DURATION seconds with a 90 % get / 10 % set
# mix (64-byte keys, 1 KiB values), reading the server's CPU time (utime +
# stime of every thread, /proc/<pid>/stat) before and after. With enough
# cores the server and the load generator are pinned to different cores
# (taskset); on a 2-core machine the -t 2 runs cannot be, and share them.
#
# Needs: cargo, memcached, memcaslap or memaslap (libmemcached-tools),
# python3 (free ports, statistics), taskset (util-linux) for pinning.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
REPS=${REPS:-3}
CONCURRENCY=${CONCURRENCY:-128}
MEMORY_MB=${MEMORY_MB:-1024}
OUT=${OUT:-BENCH-memcached.md}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

die() { echo "bench_memcached: $*" >&2; exit 1; }

MEMASLAP=$(command -v memcaslap || command -v memaslap || true)
[ -n "$MEMASLAP" ] || die "memcaslap/memaslap not found (apt-get install libmemcached-tools)"
MEMCACHED=$(command -v memcached || true)
[ -n "$MEMCACHED" ] || die "memcached not found (apt-get install memcached)"
command -v python3 >/dev/null || die "python3 not found"
HAVE_TASKSET=0; command -v taskset >/dev/null && HAVE_TASKSET=1

echo "building netlib-memcached (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p examples --bin netlib-memcached
OURS=$TARGET_DIR/release/netlib-memcached
[ -x "$OURS" ] || die "no binary at $OURS"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# memaslap workload: key and value sizes, then the command mix
# (cmd type 0 = set, 1 = get).
cat >"$WORK/workload.cfg" <<'EOF'
key
64 64 1
value
1024 1024 1
cmd
0 0.1
1 0.9
EOF

NCPU=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
MC_USER=()
[ "$(id -u)" = 0 ] && MC_USER=(-u "$(id -un)")

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime + stime of the whole process, in clock ticks.
cpu_ticks() {
    python3 - "$1" <<'EOF'
import sys
stat = open(f"/proc/{sys.argv[1]}/stat").read()
fields = stat[stat.rindex(")") + 2:].split()
print(int(fields[11]) + int(fields[12]))  # fields 14 and 15 of stat(5)
EOF
}

wait_port() { # port
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "server on port $1 did not start"
}

# Core lists for a server with $1 threads: "server_cores client_cores",
# or "- -" when the machine is too small to keep them apart.
cores_for() {
    local t=$1
    if [ "$HAVE_TASKSET" = 1 ] && [ "$NCPU" -ge $((t + 1)) ]; then
        local server=0 client=$t
        [ "$t" -gt 1 ] && server="0-$((t - 1))"
        [ "$NCPU" -gt $((t + 1)) ] && client="$t-$((NCPU - 1))"
        echo "$server $client"
    else
        echo "- -"
    fi
}

pin() { # cores command...
    local cores=$1; shift
    if [ "$cores" = - ]; then "$@"; else taskset -c "$cores" "$@"; fi
}

declare -A COMMANDS
RESULTS=$WORK/results.tsv
: >"$RESULTS"

run_one() { # server(ours|memcached) threads rep
    local server=$1 threads=$2 rep=$3
    read -r server_cores client_cores <<<"$(cores_for "$threads")"
    local port; port=$(free_port)
    local cmd
    if [ "$server" = ours ]; then
        cmd=("$OURS" -p "$port" -l 127.0.0.1 -t "$threads" -m "$MEMORY_MB")
    else
        cmd=("$MEMCACHED" "${MC_USER[@]}" -p "$port" -l 127.0.0.1 -U 0 -t "$threads" -m "$MEMORY_MB")
    fi
    # Started directly (not through a function) so that $! is the server.
    if [ "$server_cores" = - ]; then
        "${cmd[@]}" &
    else
        taskset -c "$server_cores" "${cmd[@]}" &
    fi
    SERVER_PID=$!
    wait_port "$port"
    local client_threads=1
    [ "$client_cores" = - ] && client_threads=$threads
    local load=("$MEMASLAP" -s "127.0.0.1:$port" -F "$WORK/workload.cfg" -T "$client_threads" -c "$CONCURRENCY")
    pin "$client_cores" "${load[@]}" -t "${WARMUP}s" >/dev/null 2>&1 || true
    local before; before=$(cpu_ticks "$SERVER_PID")
    local output
    output=$(pin "$client_cores" "${load[@]}" -t "${DURATION}s" 2>&1) || die "memaslap failed: $output"
    local after; after=$(cpu_ticks "$SERVER_PID")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local line; line=$(grep -E '^Run time: .* Ops: [0-9]+ TPS: [0-9]+' <<<"$output" | tail -1)
    [ -n "$line" ] || die "no result line from memaslap: $output"
    local ops tps
    ops=$(sed -E 's/.*Ops: ([0-9]+).*/\1/' <<<"$line")
    tps=$(sed -E 's/.*TPS: ([0-9]+).*/\1/' <<<"$line")
    local misses; misses=$(grep -E '^get_misses:' <<<"$output" | tail -1 | awk '{print $2}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$threads" "$rep" "$ops" "$tps" "$((after - before))" "${misses:-?}" >>"$RESULTS"
    printf '  %-9s -t %s rep %s: %8s ops/s, server cpu %5.2f s\n' "$server" "$threads" "$rep" "$tps" \
        "$(python3 -c "print($((after - before)) / $CLK_TCK)")" >&2
    local shown_server=("${cmd[@]}"); shown_server[0]=$(basename "${cmd[0]}")
    local shown_load=("${load[@]}"); shown_load[0]=$(basename "${load[0]}"); shown_load[4]=workload.cfg
    local pin_server="" pin_client=""
    [ "$server_cores" != - ] && pin_server="taskset -c $server_cores "
    [ "$client_cores" != - ] && pin_client="taskset -c $client_cores "
    COMMANDS["$server-$threads"]="${pin_server}${shown_server[*]//$port/PORT}
${pin_client}${shown_load[*]//$port/PORT} -t ${DURATION}s"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq "$REPS"); do
    echo "repetition $rep/$REPS" >&2
    for threads in 1 2; do
        run_one ours "$threads" "$rep"
        run_one memcached "$threads" "$rep"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
MC_VERSION=$("$MEMCACHED" -V 2>&1 | head -1)
MS_VERSION=$("$MEMASLAP" -V 2>&1 | head -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Only what the server is built from counts as a local change.
DIRTY=$(git status --porcelain -- netlib pdu examples/Cargo.toml examples/src/memcached \
    examples/src/bin/memcached.rs 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
RUSTC=$(rustc -V)

export WORKLOAD=$WORK/workload.cfg RESULTS CLK_TCK DURATION WARMUP REPS CONCURRENCY MEMORY_MB NCPU CPU_MODEL MC_VERSION MS_VERSION \
    COMMIT DIRTY RUSTC LOAD_BEFORE LOAD_AFTER
export CMD_OURS_1="${COMMANDS[ours-1]}" CMD_MC_1="${COMMANDS[memcached-1]}" \
    CMD_OURS_2="${COMMANDS[ours-2]}" CMD_MC_2="${COMMANDS[memcached-2]}"
python3 - >"$OUT" <<'EOF'
import os, statistics

env = os.environ
tck = int(env["CLK_TCK"])
runs = {}
for line in open(env["RESULTS"]):
    server, threads, rep, ops, tps, ticks, misses = line.rstrip("\n").split("\t")
    runs.setdefault((server, int(threads)), []).append(
        {"ops": int(ops), "tps": int(tps), "cpu": int(ticks) / tck, "misses": misses})

def summary(key):
    rs = runs[key]
    tps = [r["tps"] for r in rs]
    us = [r["cpu"] * 1e6 / r["ops"] for r in rs]
    cpu = [r["cpu"] for r in rs]
    return {"tps": statistics.median(tps), "tps_min": min(tps), "tps_max": max(tps),
            "us": statistics.median(us), "us_min": min(us), "us_max": max(us),
            "cpu": statistics.median(cpu)}

print("# netlib-memcached vs memcached\n")
print("Produced by `scripts/bench_memcached.sh`; every figure below comes from one run of it.\n")
print("## Machine\n")
print(f"- CPU: {env['CPU_MODEL']}, {env['NCPU']} logical cores")
print(f"- kernel: {os.uname().release}")
print(f"- {env['MC_VERSION']}; load generator: {env['MS_VERSION']}")
print(f"- {env['RUSTC']}; netlib commit {env['COMMIT']}{env['DIRTY']}")
print(f"- load average before / after: {env['LOAD_BEFORE']} / {env['LOAD_AFTER']}\n")
print("## Method\n")
print(f"memaslap, {env['CONCURRENCY']} connections, 90 % get / 10 % set, 64-byte keys, "
      f"1 KiB values, {env['WARMUP']} s warm-up then {env['DURATION']} s measured, "
      f"{env['REPS']} repetitions, the four configurations interleaved. Both servers get "
      f"`-m {env['MEMORY_MB']}` so nothing is evicted. Server CPU is utime + stime of all "
      "its threads from `/proc/<pid>/stat` over the measured run; CPU per operation is "
      "that divided by memaslap's operation count. Medians, with min..max.\n")
print("`workload.cfg` (memaslap: key sizes, value sizes, command mix; cmd 0 = set, 1 = get):\n")
print("```text\n" + open(env["WORKLOAD"]).read() + "```\n")
print("Exact commands (PORT is a free loopback port chosen per run):\n")
for label, var in [("netlib-memcached -t 1", "CMD_OURS_1"), ("memcached -t 1", "CMD_MC_1"),
                   ("netlib-memcached -t 2", "CMD_OURS_2"), ("memcached -t 2", "CMD_MC_2")]:
    print(f"{label}:\n\n```sh\n{env[var]}\n```\n")
print("## Results\n")
print("| server | threads | ops/s (median) | min..max | server CPU µs/op (median) | min..max | server CPU s (median) |")
print("|---|---|---|---|---|---|---|")
for threads in (1, 2):
    for server in ("ours", "memcached"):
        s = summary((server, threads))
        name = "netlib-memcached" if server == "ours" else "memcached"
        print(f"| {name} | {threads} | {s['tps']:,.0f} | {s['tps_min']:,}..{s['tps_max']:,} | "
              f"{s['us']:.2f} | {s['us_min']:.2f}..{s['us_max']:.2f} | {s['cpu']:.2f} |")
print()
print("| threads | ops/s ratio (ours / memcached) | CPU per op ratio (ours / memcached) |")
print("|---|---|---|")
for threads in (1, 2):
    o, m = summary(("ours", threads)), summary(("memcached", threads))
    print(f"| {threads} | {o['tps'] / m['tps']:.2f}x | {o['us'] / m['us']:.2f}x |")
print()
print("Targets (at -t 1): ops/s ratio at least 1.00x and CPU per op ratio at most 1.00x.")
o, m = summary(("ours", 1)), summary(("memcached", 1))
verdict_tps = "met" if o["tps"] >= m["tps"] else "missed"
verdict_cpu = "met" if o["us"] <= m["us"] else "missed"
print(f"This run: throughput target {verdict_tps}, CPU target {verdict_cpu}.\n")
print("## Reading the numbers\n")
print("- At -t 1 the server is pinned to one core and memaslap to another; a server that "
      "uses all of its core (server CPU close to the measured seconds) is the bottleneck, "
      "so ops/s follows CPU per op. About 80 % of either server's CPU is kernel time "
      "(perf, on the machine this was first run on), mostly the loopback TCP path.")
print("- Other processes may share the machine (see the load average); the spread between "
      "repetitions shows how much. Ratios inside that spread mean parity; CPU per op is "
      "the steadier figure.")
if int(env["NCPU"]) < 3:
    print(f"- With {env['NCPU']} cores the -t 2 runs cannot keep the server and memaslap "
          "apart: both servers and the load generator share every core. They show that "
          "-t 2 works under load, not how either server scales.")
print("\n## Every run\n")
print("| server | threads | repetition | operations | ops/s | server CPU s | µs/op | get misses |")
print("|---|---|---|---|---|---|---|---|")
for (server, threads), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "ours")):
    name = "netlib-memcached" if server == "ours" else "memcached"
    for i, r in enumerate(rs, 1):
        print(f"| {name} | {threads} | {i} | {r['ops']:,} | {r['tps']:,} | {r['cpu']:.2f} | "
              f"{r['cpu'] * 1e6 / r['ops']:.2f} | {r['misses']} |")
EOF
echo "wrote $OUT" >&2
cat "$OUT"
