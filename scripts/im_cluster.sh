#!/usr/bin/env bash
# Two msg_servers as one IM service on this machine: starts nats-server, a
# temporary PostgreSQL (initdb in a temp dir, loopback only), a login_server
# and two msg_servers sharing both, with the demo users
# (servers/conf/users.txt). Prints the addresses and waits; Ctrl-C stops
# everything and removes the temp dir. Needs Debian's nats-server and
# postgresql packages (scripts/test.sh installs them).
#
#   scripts/im_cluster.sh            # then, in another terminal, the im_client
#                                    # commands it prints
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p servers
bin=$PWD/target/release
tmp=$(mktemp -d)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "postgresql is not installed (apt-get install postgresql)" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server is not installed (apt-get install nats-server)" >&2; exit 1; }
# PostgreSQL refuses to run as root: as root, run it as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
    echo "==> stopping"
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

echo "==> nats-server"
nats_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" >"$tmp/nats.log" 2>&1 &

echo "==> PostgreSQL in $tmp/pg"
pg_port=$(free_port)
mkdir -p "$tmp/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$tmp/pg" && chmod 755 "$tmp"
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -A trust -U postgres -E UTF8 --locale=C >"$tmp/pg/initdb.log"
as_pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w \
    -o "-p $pg_port -k $tmp/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc 'CREATE DATABASE im'
url="host=127.0.0.1 port=$pg_port user=postgres dbname=im"
"$bin/msg_server" migrate -c servers/conf/msgserver.conf --Store postgres --PostgresUrl "$url"

echo "==> login_server"
"$bin/login_server" --ClientPort 0 --HttpPort 0 --MsgServerPort 0 >"$tmp/login.out" 2>"$tmp/login.log" &
for _ in $(seq 100); do [ "$(grep -c ^LISTEN "$tmp/login.out" 2>/dev/null)" -ge 3 ] && break; sleep 0.05; done
port_of() { awk -v n="$2" '$1=="LISTEN" && $2==n {print $3}' "$1" | head -1; }
login_client=$(port_of "$tmp/login.out" client)
login_msg=$(port_of "$tmp/login.out" msg_server)

for i in 1 2; do
    echo "==> msg_server $i"
    "$bin/msg_server" -c servers/conf/msgserver.conf --ListenPort 0 \
        --Store postgres --PostgresUrl "$url" --NatsAddr "127.0.0.1:$nats_port" \
        --LoginServerIP1 "${login_msg%:*}" --LoginServerPort1 "${login_msg##*:}" \
        >"$tmp/msg$i.out" 2>"$tmp/msg$i.log" &
    for _ in $(seq 100); do grep -q ^LISTEN "$tmp/msg$i.out" 2>/dev/null && break; sleep 0.05; done
    echo "    clients on $(port_of "$tmp/msg$i.out" client), log $tmp/msg$i.log"
done

cat <<INFO

nats-server 127.0.0.1:$nats_port, PostgreSQL "$url",
login_server $login_client; logs in $tmp. Try, in another terminal
(each user lands on the less loaded msg_server):

  $bin/im_client --login $login_client --user bob --password bob123 recv --count 1 --timeout 60 &
  $bin/im_client --login $login_client --user alice --password alice123 send bob "hello across servers"

Ctrl-C stops everything.
INFO
wait
