#!/usr/bin/env bash
# Update-pack benchmark: a site holds the corpus base model (v1); the publisher holds the base and
# its fine-tune (v2, which changes about one tensor in ten, as `modelfs-corpus finetune` reports).
# The site runs `modelfs inventory`, the publisher `modelfs export --have`, and the site imports
# the update pack. Prints:
#
#  - the update pack's size (the whole folder, and its pack files alone) against the fine-tune's
#    changed tensor bytes; the target is <= 1.02 x changed + 1 MiB;
#  - the inventory's size, and how long inventory and export took;
#  - `modelfs import` of the pack into the site against `cp -r` of the same pack to the same disk,
#    both followed by `sync` so both have their bytes on disk: medians of RUNS runs, interleaved,
#    with the page cache dropped before every timed run (cold reads of the pack and the site's
#    store; the modelfs executable is read back in first, for both); the target is
#    import >= 80% of cp's speed. Between import runs the site forgets v2 again (`rm llama@v2`,
#    `gc`; not timed), so every run copies the same chunks. Measured twice: on the disk as it is,
#    and with reads from that disk throttled (a blkio cgroup, v1) to each rate in
#    UPDATE_BENCH_READ_MBPS, for both commands alike: what a pack on a USB stick or disk gives.
#
# Needs root (drop_caches, cgroups). Uses $CARGO_TARGET_DIR (or target)/release/{modelfs,
# modelfs-corpus} as they are (build them with `cargo build --release`). The work directory is on BENCH_DIR (default
# /var/tmp), ~5 GB at scale 1.0; it is deleted at the end unless UPDATE_BENCH_KEEP=1.
# Usage: tools/update-bench.sh [SCALE] [RUNS]   (SCALE 1.0 = a ~1.07 GB fp16 GGUF base; RUNS 3)
# UPDATE_BENCH_READ_MBPS: read rates in MB/s, space-separated (default "100 400"; empty: none).
# shellcheck disable=SC2317 # cleanup, import_pack, copy_pack and throttled are called indirectly
set -euo pipefail
shopt -s inherit_errexit
scale=${1:-1.0}
runs=${2:-3}
read_mbps=${UPDATE_BENCH_READ_MBPS-100 400}
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
mfs=$bin/modelfs

die() { echo "update-bench: $*" >&2; exit 1; }
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, not '$scale'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
[[ $read_mbps =~ ^[0-9\ ]*$ ]] || die "UPDATE_BENCH_READ_MBPS must be numbers, not '$read_mbps'"
[ "$(id -u)" -eq 0 ] || die "needs root (drop_caches, cgroups)"
for b in modelfs modelfs-corpus; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: build it with cargo build --release"
done
"$mfs" export --help >/dev/null 2>&1 || die "this modelfs has no 'export' command"

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" update-bench.XXXXXX)
cgroup=/sys/fs/cgroup/blkio/update-bench-$$
cleanup() {
  [ -d "$cgroup" ] && rmdir "$cgroup"
  if [ "${UPDATE_BENCH_KEEP:-0}" = 1 ]; then
    echo "update-bench: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Drops the page cache, then reads the modelfs executable back in (its 31 MB are not the pack).
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; cat "$mfs" >/dev/null; }
# Seconds (with fractions) that the command takes.
seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
du_bytes() { du -sb "$1" | cut -f1; }
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
pub() { "$mfs" --store "$work/publisher" "$@"; }
site() { "$mfs" --store "$work/site" "$@"; }
import_pack() { site import "$work/update" && sync; }
copy_pack() { cp -r "$work/update" "$work/copy" && sync; }
# Runs the command in the throttling cgroup (its children stay there).
throttled() { (echo "$BASHPID" >"$cgroup/cgroup.procs" && "$@"); }

# Times import and cp of the pack RUNS times each, interleaved, run through WRAP (a command
# prefix, or nothing); leaves the times in $work/TAG.import and $work/TAG.cp.
time_both() {
  local tag=$1 run
  shift
  : >"$work/$tag.import"
  : >"$work/$tag.cp"
  for run in $(seq "$runs"); do
    drop_caches
    seconds "$@" import_pack >>"$work/$tag.import"
    site cat llama@v2 | cmp -s - "$work/finetune.gguf" || die "run $run: llama@v2 differs after import"
    site rm llama@v2 >/dev/null
    site gc >/dev/null
    rm -rf "$work/copy"
    drop_caches
    seconds "$@" copy_pack >>"$work/$tag.cp"
  done
}

# Prints the row of one time_both measurement: medians, speeds in MB/s of pack, and import's
# speed as a share of cp's (target >= 80%).
report() {
  local tag=$1 what=$2 import_s cp_s
  import_s=$(median <"$work/$tag.import")
  cp_s=$(median <"$work/$tag.cp")
  awk -v w="$what" -v i="$import_s" -v c="$cp_s" -v b="$pack_all" \
    'BEGIN { printf "%-22s %9.3f %9.3f %12.0f %9.0f %8.0f%%\n", w, i, c, b / i / 1e6, b / c / 1e6, 100 * c / i }'
}
echo "update-bench: generating the models (scale $scale) in $work" >&2
"$bin/modelfs-corpus" base "$work/base.gguf" --scale "$scale" >/dev/null
changed=$("$bin/modelfs-corpus" finetune "$work/finetune.gguf" --scale "$scale" |
  sed -E 's/.*, ([0-9]+) changed.*/\1/')
pub init >/dev/null
site init >/dev/null
pub add llama "$work/base.gguf" >/dev/null
pub add llama "$work/finetune.gguf" >/dev/null
site add llama "$work/base.gguf" >/dev/null

inventory_s=$(seconds site inventory --out "$work/have.json")
export_s=$(seconds pub export "$work/update" --models llama --have "$work/have.json")
pack_all=$(du_bytes "$work/update")
pack_packs=$(du_bytes "$work/update/packs")
limit=$(awk -v c="$changed" 'BEGIN { printf "%d", c * 1.02 + 1048576 }')

echo "update-bench: timing import and cp -r of the pack, $runs runs each, interleaved" >&2
time_both plain
throttled_rates=()
if [ -n "$read_mbps" ]; then
  # The whole disk under the work directory's file system (a partition's parent).
  dev=$(stat -c '%Hd:%Ld' "$work")
  if [ -e "/sys/dev/block/$dev/partition" ]; then
    dev=$(cat "$(readlink -f "/sys/dev/block/$dev")/../dev")
  fi
  if mkdir "$cgroup" 2>/dev/null; then
    for rate in $read_mbps; do
      echo "update-bench: again with reads from $dev throttled to $rate MB/s" >&2
      echo "$dev $((rate * 1000000))" >"$cgroup/blkio.throttle.read_bps_device"
      time_both "read-$rate" throttled
      throttled_rates+=("$rate")
    done
  else
    echo "update-bench: no blkio cgroup (v1) to throttle reads with; skipping those rows" >&2
  fi
fi

printf '%-48s %s\n' measure value
printf '%-48s %s MB\n' "base model" "$(mb "$(du_bytes "$work/base.gguf")")"
printf '%-48s %s MB\n' "fine-tune changed tensor bytes" "$(mb "$changed")"
printf '%-48s %s MB (%s s)\n' "inventory of the site (have.json)" \
  "$(mb "$(du_bytes "$work/have.json")")" "$inventory_s"
printf '%-48s %s MB, packs %s MB (%s s)\n' "update pack (export --have)" \
  "$(mb "$pack_all")" "$(mb "$pack_packs")" "$export_s"
printf '%-48s %s (target <= 1.02 x changed + 1 MiB = %s MB: %s)\n' "update pack / changed bytes" \
  "$(awk -v p="$pack_all" -v c="$changed" 'BEGIN { printf "%.3f", p / c }')" "$(mb "$limit")" \
  "$([ "$pack_all" -le "$limit" ] && echo met || echo MISSED)"
echo
printf 'import vs cp -r + sync of the pack, cold, median of %s (target: import >= 80%% of cp)\n' "$runs"
printf '%-22s %9s %9s %12s %9s %9s\n' "" import_s cp_s import_MB/s cp_MB/s share
report plain "disk as it is"
for rate in "${throttled_rates[@]}"; do
  report "read-$rate" "reads at $rate MB/s"
done
for tag in plain "${throttled_rates[@]/#/read-}"; do
  echo "runs, $tag (s): import $(paste -sd' ' "$work/$tag.import"), cp $(paste -sd' ' "$work/$tag.cp")"
done
