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
# Each repetition then runs the meta protocol (mg/ms), which memaslap cannot
# speak, with the bench crate's meta_load: ours -t 1, memcached -t 1, same
# mix, sizes and pinning, META_CONNS connections with META_PIPELINE requests
# in flight on each. Its warm-up run stores every key; the measured run
# skips that, so server CPU covers only the measured gets and sets.
#
# Needs: cargo, memcached, memcaslap or memaslap (libmemcached-tools),
# python3 (free ports, statistics), taskset (util-linux) for pinning.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
REPS=${REPS:-3}
CONCURRENCY=${CONCURRENCY:-128}
META_CONNS=${META_CONNS:-16}
META_PIPELINE=${META_PIPELINE:-8}
META_KEYS=${META_KEYS:-10000}
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

echo "building netlib-memcached and meta_load (release)..." >&2
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -q -p examples --bin netlib-memcached -p bench --bin meta_load
OURS=$TARGET_DIR/release/netlib-memcached
META_LOAD=$TARGET_DIR/release/meta_load
[ -x "$OURS" ] || die "no binary at $OURS"
[ -x "$META_LOAD" ] || die "no binary at $META_LOAD"

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
META_RESULTS=$WORK/meta_results.tsv
: >"$RESULTS"
: >"$META_RESULTS"

start_server() { # server(ours|memcached) threads port server_cores; sets SERVER_PID and SERVER_CMD
    local server=$1 threads=$2 port=$3 server_cores=$4
    if [ "$server" = ours ]; then
        SERVER_CMD=("$OURS" -p "$port" -l 127.0.0.1 -t "$threads" -m "$MEMORY_MB")
    else
        SERVER_CMD=("$MEMCACHED" "${MC_USER[@]}" -p "$port" -l 127.0.0.1 -U 0 -t "$threads" -m "$MEMORY_MB")
    fi
    # Started here, not through pin(), so that $! is the server itself.
    if [ "$server_cores" = - ]; then
        "${SERVER_CMD[@]}" &
    else
        taskset -c "$server_cores" "${SERVER_CMD[@]}" &
    fi
    SERVER_PID=$!
    wait_port "$port"
}

# Sends a fixed sequence of meta commands (those meta_load uses, hits and
# misses, plus a few flags) and prints the replies' bytes.
probe() { # port
    python3 - "$1" <<'EOF'
import socket, sys
reqs = (b"ms probe:k 5 T0\r\nhello\r\nmg probe:k v\r\nmg probe:none v\r\n"
        b"ms probe:k 3\r\nabc\r\nmg probe:k v\r\nmg probe:k\r\nmg probe:none\r\n"
        b"mg probe:k s v f t\r\nms probe:k 2 T0 q\r\nxy\r\nmg probe:k v\r\nmn\r\n")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(reqs)
got = b""
while not got.endswith(b"MN\r\n"):
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("connection closed")
    got += chunk
print(repr(got))
EOF
}

run_meta() { # server(ours|memcached) rep; -t 1 only
    local server=$1 rep=$2 threads=1
    read -r server_cores client_cores <<<"$(cores_for "$threads")"
    local port; port=$(free_port)
    start_server "$server" "$threads" "$port" "$server_cores"
    # The reply bytes to a fixed meta sequence, compared between the servers.
    probe "$port" >"$WORK/probe-$server-$rep" || die "meta probe failed against $server"
    # One client thread per core it may use.
    local client_threads=$NCPU
    if [ "$client_cores" != - ]; then
        client_threads=$(python3 -c 'import sys; print(sum(int(b) - int(a) + 1 for a, _, b in (r.partition("-") if "-" in r else (r, "", r) for r in sys.argv[1].split(","))))' "$client_cores")
    fi
    local load=("$META_LOAD" --server "127.0.0.1:$port" --conns "$META_CONNS" --threads "$client_threads"
        --pipeline "$META_PIPELINE" --get-ratio 0.9 --key-size 64 --value-size 1024 --keys "$META_KEYS")
    local output
    output=$(pin "$client_cores" "${load[@]}" --seconds "$WARMUP" 2>&1) || die "meta_load warm-up failed against $server: $output"
    local before; before=$(cpu_ticks "$SERVER_PID")
    output=$(pin "$client_cores" "${load[@]}" --skip-preload --seconds "$DURATION" 2>&1) || die "meta_load failed against $server: $output"
    local after; after=$(cpu_ticks "$SERVER_PID")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local line; line=$(grep -E '^ops [0-9]+ secs [0-9.]+ ops_per_sec [0-9]+ errors 0$' <<<"$output" | tail -1)
    [ -n "$line" ] || die "no result line from meta_load: $output"
    local ops secs tps misses
    read -r _ ops _ secs _ tps _ <<<"$line"
    misses=$(sed -nE 's/^meta_load: get misses ([0-9]+)$/\1/p' <<<"$output" | tail -1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$rep" "$ops" "$secs" "$tps" "$((after - before))" "${misses:-?}" >>"$META_RESULTS"
    printf '  %-9s meta -t 1 rep %s: %8s ops/s, server cpu %5.2f s\n' "$server" "$rep" "$tps" \
        "$(python3 -c "print($((after - before)) / $CLK_TCK)")" >&2
    local shown_server=("${SERVER_CMD[@]}"); shown_server[0]=$(basename "${SERVER_CMD[0]}")
    local shown_load=("${load[@]}"); shown_load[0]=$(basename "${load[0]}")
    local pin_server="" pin_client=""
    [ "$server_cores" != - ] && pin_server="taskset -c $server_cores "
    [ "$client_cores" != - ] && pin_client="taskset -c $client_cores "
    COMMANDS["meta-$server"]="${pin_server}${shown_server[*]//$port/PORT}
${pin_client}${shown_load[*]//$port/PORT} --seconds ${WARMUP}
${pin_client}${shown_load[*]//$port/PORT} --skip-preload --seconds ${DURATION}"
}

run_one() { # server(ours|memcached) threads rep
    local server=$1 threads=$2 rep=$3
    read -r server_cores client_cores <<<"$(cores_for "$threads")"
    local port; port=$(free_port)
    start_server "$server" "$threads" "$port" "$server_cores"
    local cmd=("${SERVER_CMD[@]}")
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
    run_meta ours "$rep"
    run_meta memcached "$rep"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
MC_VERSION=$("$MEMCACHED" -V 2>&1 | head -1)
MS_VERSION=$("$MEMASLAP" -V 2>&1 | head -1)
PROBE_SAME=yes
for f in "$WORK"/probe-*; do cmp -s "$f" "$WORK/probe-ours-1" || PROBE_SAME=no; done
PROBE_OURS=$(cat "$WORK/probe-ours-1")
PROBE_MC=$(cat "$WORK/probe-memcached-1")
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Only what the server is built from counts as a local change.
DIRTY=$(git status --porcelain -- netlib pdu examples/Cargo.toml examples/src/memcached \
    examples/src/bin/memcached.rs 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
RUSTC=$(rustc -V)

export WORKLOAD=$WORK/workload.cfg RESULTS META_RESULTS PROBE_SAME PROBE_OURS PROBE_MC META_CONNS META_PIPELINE META_KEYS CLK_TCK DURATION WARMUP REPS CONCURRENCY MEMORY_MB NCPU CPU_MODEL MC_VERSION MS_VERSION \
    COMMIT DIRTY RUSTC LOAD_BEFORE LOAD_AFTER
export CMD_OURS_1="${COMMANDS[ours-1]}" CMD_MC_1="${COMMANDS[memcached-1]}" \
    CMD_OURS_2="${COMMANDS[ours-2]}" CMD_MC_2="${COMMANDS[memcached-2]}" \
    CMD_META_OURS="${COMMANDS[meta-ours]}" CMD_META_MC="${COMMANDS[meta-memcached]}"
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
print("## Meta protocol (mg/ms)\n")
print("memaslap speaks only the text protocol; this part uses the bench crate's `meta_load` "
      f"(`bench/src/bin/meta_load.rs`) in the same run, one pair per repetition after the "
      f"memaslap runs: -t 1 only, pinned like the memaslap -t 1 runs. `meta_load` opens "
      f"{env['META_CONNS']} connections with {env['META_PIPELINE']} requests in flight on each "
      f"and sends 90 % `mg <key> v` / 10 % `ms <key> 1024 T0` over {env['META_KEYS']} keys "
      "(64-byte keys, 1 KiB values). Its warm-up run stores every key first; the measured "
      "run skips that, so server CPU covers only its gets and sets. Every reply is checked "
      "(`VA 1024` with the key's value, or `EN`, for `mg`; `HD` for `ms`); a run with any "
      "error fails the script.\n")
if env["PROBE_SAME"] == "yes":
    print("Before each warm-up the script sends both servers a fixed sequence of meta "
          "commands and compares the reply bytes: they were identical in every run "
          "(Python bytes literal):\n")
    print("```text\n" + env["PROBE_OURS"] + "\n```\n")
else:
    print("**The servers' replies to the script's fixed meta probe differ:**\n")
    print("```text\nnetlib-memcached: " + env["PROBE_OURS"] + "\nmemcached:        " + env["PROBE_MC"] + "\n```\n")
print("Exact commands (warm-up, then measured):\n")
for label, var in [("netlib-memcached -t 1", "CMD_META_OURS"), ("memcached -t 1", "CMD_META_MC")]:
    print(f"{label}:\n\n```sh\n{env[var]}\n```\n")
meta = {}
for line in open(env["META_RESULTS"]):
    server, rep, ops, secs, tps, ticks, misses = line.rstrip("\n").split("\t")
    meta.setdefault(server, []).append(
        {"ops": int(ops), "secs": float(secs), "tps": int(tps), "cpu": int(ticks) / tck, "misses": misses})

def meta_summary(server):
    rs = meta[server]
    tps = [r["tps"] for r in rs]
    us = [r["cpu"] * 1e6 / r["ops"] for r in rs]
    return {"tps": statistics.median(tps), "tps_min": min(tps), "tps_max": max(tps),
            "us": statistics.median(us), "us_min": min(us), "us_max": max(us),
            "cpu": statistics.median(r["cpu"] for r in rs)}

print("| server | threads | ops/s (median) | min..max | server CPU µs/op (median) | min..max | server CPU s (median) |")
print("|---|---|---|---|---|---|---|")
for server in ("ours", "memcached"):
    s = meta_summary(server)
    name = "netlib-memcached" if server == "ours" else "memcached"
    print(f"| {name} | 1 | {s['tps']:,.0f} | {s['tps_min']:,}..{s['tps_max']:,} | "
          f"{s['us']:.2f} | {s['us_min']:.2f}..{s['us_max']:.2f} | {s['cpu']:.2f} |")
print()
o, m = meta_summary("ours"), meta_summary("memcached")
print("| threads | ops/s ratio (ours / memcached) | CPU per op ratio (ours / memcached) |")
print("|---|---|---|")
print(f"| 1 | {o['tps'] / m['tps']:.2f}x | {o['us'] / m['us']:.2f}x |")
print()
busy = {srv: statistics.median(r["cpu"] / r["secs"] for r in meta[srv]) for srv in meta}
print(f"- Server CPU over the measured time (median): netlib-memcached {busy['ours']:.0%}, "
      f"memcached {busy['memcached']:.0%}. Below 100 % the server was sometimes waiting for "
      "`meta_load` (one core, blocking sockets), so ops/s is partly the generator's; "
      "CPU per op depends on it less.")
print("- Per operation both servers need much less CPU here than under memaslap: "
      f"{env['META_PIPELINE']} requests arrive per read and their replies leave in one "
      "write, where memaslap mostly has one request per connection in flight.\n")
print("| server | repetition | operations | secs | ops/s | server CPU s | µs/op | get misses |")
print("|---|---|---|---|---|---|---|---|")
for server in ("ours", "memcached"):
    name = "netlib-memcached" if server == "ours" else "memcached"
    for i, r in enumerate(meta[server], 1):
        print(f"| {name} | {i} | {r['ops']:,} | {r['secs']:.2f} | {r['tps']:,} | {r['cpu']:.2f} | "
              f"{r['cpu'] * 1e6 / r['ops']:.2f} | {r['misses']} |")
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
