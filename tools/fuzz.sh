#!/usr/bin/env bash
# Fuzzes every parser of untrusted store bytes with libFuzzer (cargo-fuzz), each target for a
# bounded time, starting from the checked-in seeds (tools/fuzz/corpus/) copied to a scratch
# directory, so the corpus libFuzzer grows is thrown away. Fails (non-zero) on any crash, hang
# (-timeout) or runaway memory (-rss_limit_mb), naming the target and the input saved under
# tools/fuzz/artifacts/TARGET/. tools/fuzz/README.md describes the targets and how to reproduce.
#
# Usage: tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, every target)
# Environment: MODELFS_FUZZ_TARGET_DIR (build dir, default ~/.cache/modelfs-fuzz-target),
#   MODELFS_FUZZ_SANITIZER (cargo-fuzz --sanitizer, default none: the parsers are safe Rust, so
#   panics, overflow checks and debug assertions are the oracle; use address for unsafe code),
#   MODELFS_FUZZ_RSS_MB (default 2048), MODELFS_FUZZ_ARGS (more libFuzzer options).
# Needs the nightly toolchain (cargo-fuzz builds with -Z flags); installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(pack manifest registry config grouped modelfile store catalog serve audit inventory release pins)
seconds=${1:-20}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a number, got '$seconds'" >&2; exit 2 ;;
esac
for target in "${targets[@]}"; do
  [ -f "tools/fuzz/fuzz_targets/$target.rs" ] || { echo "fuzz.sh: no fuzz target '$target' (have: ${all_targets[*]})" >&2; exit 2; }
done

command -v rustup >/dev/null || { echo "fuzz.sh: rustup not found; the fuzz build needs rustup's nightly toolchain" >&2; exit 2; }
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: the nightly Rust toolchain is not installed; cargo-fuzz needs it." >&2
  echo "fuzz.sh: install it with 'rustup toolchain install nightly --profile minimal' and rerun." >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# The fuzz build links RocksDB like the main build does.
[ -x tools/setup-deps.sh ] && tools/setup-deps.sh

export CARGO_TARGET_DIR=${MODELFS_FUZZ_TARGET_DIR:-$HOME/.cache/modelfs-fuzz-target}
export CARGO_TERM_COLOR=never
sanitizer=${MODELFS_FUZZ_SANITIZER:-none}
rss_mb=${MODELFS_FUZZ_RSS_MB:-2048}
build_flags=(--fuzz-dir tools/fuzz --sanitizer "$sanitizer")

scratch=$(mktemp -d "${TMPDIR:-/tmp}/modelfs-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# Stores the `store` target builds live here (tmpfs when there is one); removed with it.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export MODELFS_FUZZ_SCRATCH=$(mktemp -d /dev/shm/modelfs-fuzz.XXXXXX)
  trap 'rm -rf "$scratch" "$MODELFS_FUZZ_SCRATCH"' EXIT
else
  export MODELFS_FUZZ_SCRATCH=$scratch/stores
  mkdir -p "$MODELFS_FUZZ_SCRATCH"
fi

for target in "${targets[@]}"; do
  echo "fuzz.sh: building $target"
  cargo +nightly fuzz build "${build_flags[@]}" "$target"
done

failed=()
for target in "${targets[@]}"; do
  corpus=$scratch/corpus/$target
  mkdir -p "$corpus" "tools/fuzz/artifacts/$target"
  if [ -d "tools/fuzz/corpus/$target" ]; then
    cp -R "tools/fuzz/corpus/$target/." "$corpus/"
  fi
  dict=()
  [ -f "tools/fuzz/dicts/$target.dict" ] && dict=("-dict=tools/fuzz/dicts/$target.dict")
  log=$scratch/$target.log
  status=0
  # shellcheck disable=SC2086 # MODELFS_FUZZ_ARGS is a list of options
  cargo +nightly fuzz run "${build_flags[@]}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=10 -print_final_stats=1 \
    "${dict[@]}" ${MODELFS_FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  inputs=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz $target: ok, ${runs:-?} executions in ${took:-?} s, corpus ${inputs} inputs"
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz $target: FAILED (exit $status) after ${runs:-?} executions; input: ${artifact:-none saved}"
    echo "---- $target log, from the failure on ----"
    first=$(grep -n -m1 -E 'panicked at|ERROR: libFuzzer|==[0-9]+== ERROR|^error' "$log" | cut -d: -f1)
    if [ -n "$first" ]; then
      sed -n "${first},$((first + 30))p" "$log"
    else
      grep -v '^#[0-9]' "$log" | tail -40
    fi
    echo "---- reproduce: cargo +nightly fuzz run ${build_flags[*]} $target ${artifact:-ARTIFACT}"
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs under tools/fuzz/artifacts/)"
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each, no crash"
