#!/usr/bin/env bash
# Quick start: starts login_server and msg_server on loopback with the demo
# users (servers/conf/users.txt), then sends a message from alice to bob
# with two im_client processes and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> building login_server, msg_server and im_client (cargo build --release -p servers;"
echo "    the first build compiles every dependency and takes a minute or two)"
cargo build --release -p servers
bin=target/release
echo "==> starting login_server and msg_server on loopback (free ports)"
tmp=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# Port 0 everywhere: the servers print the ports they got.
$bin/login_server --ClientPort 0 --HttpPort 0 --MsgServerPort 0 >"$tmp/login.out" 2>"$tmp/login.log" &
for _ in $(seq 100); do [ "$(cat "$tmp/login.out" 2>/dev/null | grep -c ^LISTEN)" -ge 3 ] && break; sleep 0.05; done
port_of() { awk -v n="$2" '$1=="LISTEN" && $2==n {print $3}' "$1" | head -1; }
login_client=$(port_of "$tmp/login.out" client)
login_http=$(port_of "$tmp/login.out" http)
login_msg=$(port_of "$tmp/login.out" msg_server)
echo "login_server: clients $login_client, http $login_http, msg servers $login_msg"

$bin/msg_server -c servers/conf/msgserver.conf --ListenPort 0 --DbPath "$tmp/msg.db" \
    --LoginServerIP1 "${login_msg%:*}" --LoginServerPort1 "${login_msg##*:}" >"$tmp/msg.out" 2>"$tmp/msg.log" &
for _ in $(seq 100); do grep -q ^LISTEN "$tmp/msg.out" 2>/dev/null && break; sleep 0.05; done
echo "msg_server:   clients $(port_of "$tmp/msg.out" client)"
sleep 0.3   # let the msg_server register with the login_server
echo "GET /msg_server -> $(curl -s "http://$login_http/msg_server" || echo '(curl not installed)')"

echo "==> bob waits for a message; alice sends him one"
$bin/im_client --login "$login_client" --user bob --password bob123 recv --count 1 --timeout 10 &
bob=$!
sleep 0.5
$bin/im_client --login "$login_client" --user alice --password alice123 send bob "hello bob, from alice"
wait $bob
echo "done: bob (id 2) received alice's (id 1) message through login_server -> msg_server"
