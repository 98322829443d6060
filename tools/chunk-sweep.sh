#!/usr/bin/env bash
# Measures dedup against per-chunk overhead for several average chunk sizes: adds a generated base
# GGUF and its fine-tune to a fresh store per size and prints what the fine-tune added and how many
# chunks the base needs (each chunk costs an index entry, a manifest row and a lookup on the read path).
# Usage: tools/chunk-sweep.sh [SCALE] [SIZES_KIB...]
set -euo pipefail
scale=${1:-1.0}; shift || true
sizes=${*:-16 32 64 128 256 512 1024}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$bin/modelfs-corpus base "$work/base.gguf" --scale "$scale" >/dev/null
changed=$($bin/modelfs-corpus finetune "$work/ft.gguf" --scale "$scale" | sed -E 's/.*, ([0-9]+) changed.*/\1/')
echo "fine-tune changes $changed bytes of tensors"
printf '%8s %12s %14s %16s %14s\n' avg_KiB base_chunks base_add_MB/s finetune_new_MB overhead_vs_changed
for kib in $sizes; do
  store="$work/store-$kib"
  $bin/modelfs --store "$store" init --avg-chunk-kib "$kib" >/dev/null
  base_out=$($bin/modelfs --store "$store" add base "$work/base.gguf")
  ft_out=$($bin/modelfs --store "$store" add ft "$work/ft.gguf")
  chunks=$(echo "$base_out" | sed -nE 's/.* in ([0-9]+) chunks, stored.*/\1/p')
  rate=$(echo "$base_out" | sed -nE 's/.*\(([0-9]+) MB\/s\).*/\1/p')
  ft_new=$(echo "$ft_out" | sed -nE 's/.*new: ([0-9.]+) ([kMG]?B) in.*/\1 \2/p')
  python3 - "$kib" "$chunks" "$rate" "$ft_new" "$changed" <<'PY'
import sys
kib, chunks, rate, ft_new, changed = sys.argv[1:]
value, unit = ft_new.split()
mb = float(value) * {"B": 1e-6, "kB": 1e-3, "MB": 1, "GB": 1e3}[unit]
print(f"{kib:>8} {chunks:>12} {rate:>14} {mb:>16.1f} {mb / (int(changed) / 1e6):>14.3f}x")
PY
  rm -rf "$store"
done
