#!/usr/bin/env bash
# Every long or root-only test kept out of `cargo test`'s default set (the
# `#[ignore]`d ones), one script after another: the servers' cluster tests,
# msgcenter's fault tests, the cluster crate's process tests. Several
# minutes; needs root for the network-namespace parts (without it those
# print SKIP and pass) and what scripts/test.sh installs.
#
#   scripts/fault-tests.sh
set -euo pipefail
cd "$(dirname "$0")"
./im_cluster_tests.sh
./msgcenter_faults.sh
./cluster_faults.sh
