#!/usr/bin/env bash
# Runs the whole test suite: unit and property tests, and integration tests that mount FUSE for
# real (run as root, with /dev/fuse). One release build serves the binary and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The portable-store tests also write exFAT and FAT images and mount them through FUSE drivers;
# the shared-store test serves a store over sshfs from an sshd on loopback.
tools/setup-deps.sh exfatprogs exfat-fuse dosfstools fusefat sshfs openssh-server
cargo test --release --all-targets "$@"
