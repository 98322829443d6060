#!/usr/bin/env bash
# Installs the system packages modelfs builds and runs with (Debian/Ubuntu):
# fuse3 (fusermount3), librocksdb-dev and its compression libraries (the index; linked statically
# instead of compiling RocksDB from source),
# libclang-dev (bindgen for the RocksDB bindings), pkg-config and a C/C++ toolchain.
# Usage: tools/setup-deps.sh [EXTRA_PACKAGE...]
set -euo pipefail
packages=(fuse3 librocksdb-dev libsnappy-dev liblz4-dev libbz2-dev zlib1g-dev libzstd-dev libclang-dev pkg-config build-essential)
packages+=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs first" >&2; exit 1; }
