#!/usr/bin/env bash
# msgcenter's fault tests, the long one included: a shop and a customer
# (msgcenter-orders) in network namespaces of their own, with nft
# partitions, kill -9 and restart of the shop, and a shop stopped with
# SIGSTOP, each test counting that every order has exactly one outcome and
# none is handled twice. Needs root, iproute2 and nftables (scripts/test.sh
# installs them); without root the tests print SKIP and pass.
#
#   scripts/msgcenter_faults.sh            # about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p msgcenter --test faults -- --include-ignored --nocapture --test-threads=1
