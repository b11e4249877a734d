#!/usr/bin/env bash
# Soak: a bounded mixed load on a release login_server + msg_server pair,
# with the servers' resident memory sampled from /proc every 10 s.
#
#   scripts/soak.sh [minutes] [users] [msgs/s per user]     # defaults 10, 50, 20
#
# im_soak (servers/src/bin/im_soak.rs) logs the users in through the
# login_server (PDU and HTTP lookups), sends to random users, disconnects and
# returns every ~30 s per user (offline queues), and at the end checks that
# every acknowledged message arrived exactly once. Prints an RSS table and
# the growth after the first minute; exits non-zero if im_soak failed.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
users=${2:-50}
rate=${3:-20}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p servers --bins
bin=$target/release
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin/im_soak" users "$tmp/users.txt" "$users"
port_of() { awk -v n="$2" '$1=="LISTEN" && $2==n {print $3}' "$1" | head -1; }
wait_listen() { for _ in $(seq 200); do [ "$(grep -c ^LISTEN "$1" 2>/dev/null)" -ge "$2" ] && return; sleep 0.05; done; echo "soak: server did not start" >&2; exit 1; }

"$bin/login_server" --ClientPort 0 --HttpPort 0 --MsgServerPort 0 >"$tmp/login.out" 2>"$tmp/login.log" &
login_pid=$!
wait_listen "$tmp/login.out" 3
login_msg=$(port_of "$tmp/login.out" msg_server)
RUST_LOG=warn "$bin/msg_server" --ListenPort 0 --UsersFile "$tmp/users.txt" --DbPath "$tmp/msg.db" \
    --LoginServerIP1 "${login_msg%:*}" --LoginServerPort1 "${login_msg##*:}" \
    --StatsIntervalSec 60 >"$tmp/msg.out" 2>"$tmp/msg.log" &
msg_pid=$!
wait_listen "$tmp/msg.out" 1
sleep 0.5 # registration

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo -; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
echo "soak: $minutes min, $users users, $rate msgs/s each; msg_server pid $msg_pid, login_server pid $login_pid"
"$bin/im_soak" --login "$(port_of "$tmp/login.out" client)" --http "$(port_of "$tmp/login.out" http)" \
    --users "$users" --minutes "$minutes" --rate "$rate" >"$tmp/soak.out" 2>"$tmp/soak.err" &
soak_pid=$!

printf '%8s %16s %10s %18s %14s\n' "t (s)" "msg_server KiB" "fds" "login_server KiB" "msgs acked"
start=$(date +%s)
samples=()
while kill -0 "$soak_pid" 2>/dev/null; do
    t=$(($(date +%s) - start))
    r=$(rss $msg_pid)
    acked=$( (grep -so 'acked [0-9]*' "$tmp/soak.out" || true) | tail -1 | cut -d' ' -f2)
    printf '%8s %16s %10s %18s %14s\n' "$t" "$r" "$(fds $msg_pid)" "$(rss $login_pid)" "${acked:-0}"
    samples+=("$t:$r")
    for _ in $(seq 10); do kill -0 "$soak_pid" 2>/dev/null || break; sleep 1; done
done
status=0
wait "$soak_pid" || status=$?
cat "$tmp/soak.out"
errors=$(wc -l <"$tmp/soak.err")
[ "$errors" -gt 0 ] && { echo "im_soak stderr ($errors lines, last 5):"; tail -5 "$tmp/soak.err"; }
kill -0 $msg_pid 2>/dev/null || { echo "soak: msg_server died"; status=1; }
kill -0 $login_pid 2>/dev/null || { echo "soak: login_server died"; status=1; }

# Growth of msg_server RSS after warm-up (first sample at or after 60 s).
awk -v list="${samples[*]}" 'BEGIN {
    n = split(list, s, " ")
    for (i = 1; i <= n; i++) { split(s[i], f, ":"); t[i] = f[1]; r[i] = f[2] }
    for (i = 1; i <= n && t[i] < 60; i++) {}
    if (i > n) { print "soak: too short for a warm-up figure"; exit }
    min = max = r[i]
    for (j = i; j <= n; j++) { if (r[j] < min) min = r[j]; if (r[j] > max) max = r[j] }
    printf "soak: msg_server RSS after warm-up (t=%ds): %d KiB, at the end (t=%ds): %d KiB, min %d, max %d, growth %+d KiB\n", t[i], r[i], t[n], r[n], min, max, r[n] - r[i]
}'
grep -c 'WARN\|ERROR' "$tmp/msg.log" | xargs -I{} echo "soak: msg_server logged {} warnings/errors"
grep 'WARN\|ERROR' "$tmp/msg.log" | tail -3 || true
exit $status
