#!/usr/bin/env bash
# Builds modelfs, creates the store at the default location, adds a model and mounts the store.
# Usage: tools/quickstart.sh [MODEL_FILE_OR_FOLDER] [MOUNTPOINT]
#   With no model, a small sample GGUF is generated and added as "sample".
#   MOUNTPOINT defaults to /mnt/models (root) or ~/models.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
model=${1:-}
default_mount=/mnt/models; [ "$(id -u)" -eq 0 ] || default_mount=$HOME/models
mountpoint=${2:-$default_mount}

"$bin/modelfs" init
if [ -z "$model" ]; then
  model=$(mktemp -d)/sample.gguf
  "$bin/modelfs-corpus" base "$model" --scale 0.02
fi
name=$(basename "$model"); name=${name%%.*}; name=$(echo "$name" | sed 's/[^A-Za-z0-9._-]/-/g')
if "$bin/modelfs" ls "$name" >/dev/null 2>&1; then
  echo "model $name is already in the store; adding as a new version"
fi
"$bin/modelfs" add "$name" "$model"
mkdir -p "$mountpoint"
if mountpoint -q "$mountpoint"; then "$bin/modelfs" umount "$mountpoint"; fi
"$bin/modelfs" mount "$mountpoint" --daemon
ls -l "$mountpoint"
echo
echo "modelfs is at $bin/modelfs; unmount with: $bin/modelfs umount $mountpoint"
