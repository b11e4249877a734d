#!/usr/bin/env bash
# The long cluster tests (#[ignore] in cargo test's default set): three
# msg_servers, a login_server, nats-server and PostgreSQL started by the
# test, on loopback and then with each msg_server in a network namespace of
# its own (needs root; skipped otherwise); 10,000 messages between random
# pairs, kill -9 of one msg_server mid-run. Needs Debian's nats-server and
# postgresql (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p servers --test cluster -- --ignored --test-threads 1 "$@"
