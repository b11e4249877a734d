#!/usr/bin/env bash
# The project's test command (README.md points here): installs what the tests
# need on a fresh Debian machine, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages used by integration tests, installed only when missing.
need_apt=()
for bin_pkg in "memcached:memcached" "memccapable:libmemcached-tools" \
        "nc:netcat-openbsd" "socat:socat" "curl:curl" "wrk:wrk" \
        "ip:iproute2" "nft:nftables" "pg_ctlcluster:postgresql" \
        "nats-server:nats-server"; do
    bin=${bin_pkg%%:*}; pkg=${bin_pkg##*:}
    command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# libzmq for the bench crate's ZeroMQ comparator (msgcenter_bench): the zmq
# crate is one of bench's dependencies, built by clippy and `cargo test`.
pkg-config --exists libzmq 2>/dev/null || need_apt+=(libzmq3-dev pkg-config)
if [ ${#need_apt[@]} -gt 0 ] && [ "${NETLIB_SKIP_INSTALL:-0}" != 1 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" \
        || echo "warning: could not install ${need_apt[*]}; tests that need them will fail" >&2
fi
python3 -c 'import pymemcache' 2>/dev/null || python3 -m pip install -q pymemcache \
    || echo "warning: could not install pymemcache" >&2
# `scripts/test.sh --install-only`: the installs above, no tests (CI runs it
# before clippy, which builds the bench crate and so needs libzmq).
[ "${1:-}" = --install-only ] && exit 0

# Libraries, the binaries that have unit tests, integration tests (which get
# every binary of their package built), then doc tests. Not `--all-targets`:
# that builds every binary as a test harness, `test = false` or not - one
# link apiece for binaries without a single test (Cargo.toml files say which).
cargo test --workspace
