#!/usr/bin/env bash
# Dedup benchmark: ingests the generated model family in the order base, fine-tune, Q8_0,
# safetensors folder into modelfs, casync (default settings) and borg (default chunker,
# --compression zstd,3), and prints what each stores. Installs casync and borgbackup if missing.
# Usage: tools/dedup-bench.sh [SCALE]   (SCALE 1.0 = a ~1.07 GB fp16 base)
set -euo pipefail
scale=${1:-1.0}
cd "$(dirname "$0")/.."
tools/setup-deps.sh casync borgbackup
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT
"$bin/modelfs-corpus" family "$work/corpus" --scale "$scale" >/dev/null
changed=$("$bin/modelfs-corpus" finetune "$work/ft-again.gguf" --scale "$scale" | sed -E 's/.*, ([0-9]+) changed.*/\1/')
rm "$work/ft-again.gguf"
inputs=(base.gguf finetune.gguf base.Q8_0.gguf base-safetensors hf)
du_bytes() { du -sb "$1" | cut -f1; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

export MODELFS_STORE=$work/modelfs
"$bin/modelfs" init >/dev/null
export BORG_REPO=$work/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
borg init -e none >/dev/null 2>&1
mkdir -p "$work/casync-index"

printf '%-22s %14s %14s %14s %14s\n' input logical_MB modelfs_MB casync_MB borg_MB
total_logical=0
for input in "${inputs[@]}"; do
  path=$work/corpus/$input
  logical=$(du_bytes "$path"); total_logical=$((total_logical + logical))
  name=${input//[^A-Za-z0-9._-]/-}
  "$bin/modelfs" add "${name%%.*}-${#input}" "$path" >/dev/null
  if [ -d "$path" ]; then
    casync make --store="$work/casync-store" "$work/casync-index/$name.caidx" "$path" >/dev/null
  else
    casync make --store="$work/casync-store" "$work/casync-index/$name.caibx" "$path" >/dev/null
  fi
  (cd "$work/corpus" && borg create --compression zstd,3 "::$name" "$input" >/dev/null 2>&1)
  modelfs_now=$("$bin/modelfs" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
  printf '%-22s %14s %14s %14s %14s\n' "$input" "$(mb "$logical")" "$(mb "$modelfs_now")" \
    "$(mb "$(du_bytes "$work/casync-store")")" "$(mb "$(du_bytes "$work/borg")")"
done
echo "(stored columns are cumulative; fine-tune changes $changed tensor bytes)"
"$bin/modelfs" add base-again "$work/corpus/base.gguf" | sed 's/^/re-adding the base: /' | head -2 | tail -1
echo "total logical $(mb "$total_logical") MB"
"$bin/modelfs" stats | sed -n '/MODEL/,$p'
