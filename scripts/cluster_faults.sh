#!/usr/bin/env bash
# The cluster's process tests, the long ones included: Reg and executors as
# real processes on loopback and in network namespaces of their own (veth
# pairs to a bridge, nft cuts), with kill -9 of an executor and a Reg
# restart in the middle of jobs, a stalled and a cut file transfer that
# resume, and every job's answer checked against one machine. Needs root,
# iproute2 and nftables (scripts/test.sh installs them); without root the
# namespace tests print SKIP and pass.
#
#   scripts/cluster_faults.sh            # about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p cluster --test loopback --test transfer --test netns -- --include-ignored --nocapture
