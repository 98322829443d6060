#!/usr/bin/env bash
# End-to-end engine load benchmark: how long real loaders take to get a model ready from a plain
# file (native), from the same file through a modelfs mount, and through a mount that serves a
# pinned copy of it (`modelfs pin`, when this modelfs has it).
#
#  - llama.cpp (node-llama-cpp's prebuilt CPU build, tools/engine-bench/load.mjs): in a fresh
#    process, load the corpus' llama-shaped GGUF (`modelfs-corpus llama`, fp16, ~1.07 GB at scale
#    1), create a context, evaluate a 14-token prompt and sample one token; with mmap (llama.cpp's
#    default: the file is mapped, and the kernel reads it in as llama.cpp prefetches the mapping
#    during the load, or as pages are first touched) and with --no-mmap (every tensor read() into
#    memory during the load). The prompt is evaluated on ENGINE_BENCH_THREADS threads (default 1:
#    the same work for every target, and steadier when other work shares the cores).
#    Reported: load (loadModel alone), load + first token (from before loadModel to the sampled
#    token), and the process's wall time (node start to exit, measured here).
#  - safetensors (tools/engine-bench/st_load.py): in a fresh Python process, every tensor of the
#    corpus' Hugging Face folder (`modelfs-corpus hf`, two shards) into numpy arrays through
#    safetensors' safe_open/get_tensor, as transformers' loader reads a checkpoint.
#    Reported: load and the process's wall time.
#
# Each is measured cold (page cache dropped before the run; node and llama.cpp's libraries, or
# Python and its modules, are read back in before the timed run, so only the model's bytes are
# cold) and warm (one untimed load just before). Each target is its own inode with its own page
# cache: the native files in the work directory; store/ mounted at mnt-mount/; and store-pinned/
# (the same models again, each pinned with `modelfs pin`) mounted at mnt-pinned/. Runs are
# interleaved (for every repetition and measurement, each target in turn; the order turns by one
# each repetition, so no target always runs right after another); each cell is the median of RUNS. Ratios are the mount's or the pinned mount's time over native time (lower
# is better; 1.00x = as fast as native). On a VM whose host caches the virtual disk, "cold" is
# close to RAM speed (docs/BENCHMARKS.md): compare ratios within one run, not numbers across runs.
#
# Needs root (drop_caches, FUSE), Node.js >= 20 with npm, python3. Builds the release binaries
# (cargo build --release --bins, into $CARGO_TARGET_DIR or target/; ENGINE_BENCH_BUILD=0 uses them
# as they are). Installs node-llama-cpp, as pinned by tools/engine-bench/package-lock.json, into
# MODELFS_ENGINE_DIR (default ~/.cache/modelfs-engine) when it is missing or differs: only the
# prebuilt Linux x64 CPU binary, never a source build. Makes the Python virtualenv
# ~/.cache/modelfs-venv as tools/test.sh does when it is missing. The work directory is on
# BENCH_DIR (default /var/tmp), ~8 GB at scale 1.0; its mounts are unmounted and it is deleted at
# the end, on error or on Ctrl-C, unless ENGINE_BENCH_KEEP=1 (then only unmounted).
# Usage: tools/engine-bench.sh [SCALE] [RUNS]   (SCALE 1.0 = a ~1.07 GB fp16 model; RUNS 3)
# shellcheck disable=SC2317 # cleanup is called through the trap
set -euo pipefail
shopt -s inherit_errexit
scale=${1:-1.0}
runs=${2:-3}
threads=${ENGINE_BENCH_THREADS:-1}
cd "$(dirname "$0")/.."
repo=$PWD

die() { echo "engine-bench: $*" >&2; exit 1; }
say() { echo "engine-bench: $*" >&2; }
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, not '$scale'"
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "RUNS must be an integer from 1 to 99, not '$runs'"
[[ $threads =~ ^[1-9][0-9]?$ ]] || die "ENGINE_BENCH_THREADS must be an integer from 1 to 99, not '$threads'"
[ "$(id -u)" -eq 0 ] || die "needs root (drop_caches, FUSE mounts)"
for c in node npm; do command -v "$c" >/dev/null || die "needs Node.js >= 20 and npm"; done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "needs Node.js >= 20 (node-llama-cpp), this is $(node --version)"

# --- binaries, engine, Python -------------------------------------------------------------------
tools/setup-deps.sh >&2
bin=${CARGO_TARGET_DIR:-$repo/target}/release
mfs=$bin/modelfs
if [ "${ENGINE_BENCH_BUILD:-1}" = 1 ]; then
  say "building the release binaries"
  nice cargo build --release --bins --quiet >&2
fi
for b in modelfs modelfs-corpus; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: build it with cargo build --release --bins"
done
"$bin/modelfs-corpus" llama --help >/dev/null 2>&1 || die "this modelfs-corpus has no 'llama' command"

engine_dir=${MODELFS_ENGINE_DIR:-$HOME/.cache/modelfs-engine}
export MODELFS_ENGINE_DIR=$engine_dir
lock=tools/engine-bench/package-lock.json
if ! cmp -s "$lock" "$engine_dir/package-lock.json" || [ ! -d "$engine_dir/node_modules/node-llama-cpp" ]; then
  say "installing node-llama-cpp into $engine_dir"
  mkdir -p "$engine_dir"
  cp tools/engine-bench/package.json "$lock" "$engine_dir/"
  # --omit=optional: no GPU builds (the CPU build is a direct dependency); --ignore-scripts: the
  # postinstall step would look for a source build; NODE_LLAMA_CPP_SKIP_DOWNLOAD: never fetch one.
  (cd "$engine_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true timeout 900 npm ci --omit=optional \
    --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
fi
engine_version=$(node -p "require('$engine_dir/node_modules/node-llama-cpp/package.json').version")
engine_info=$(timeout 120 node tools/engine-bench/load.mjs --init-only) ||
  die "node-llama-cpp does not load its prebuilt binary"
[[ $engine_info == *'"binary":"prebuilt"'* ]] || die "node-llama-cpp did not use its prebuilt binary: $engine_info"

venv=$HOME/.cache/modelfs-venv
if ! "$venv/bin/python" -c 'import huggingface_hub, tokenizers, safetensors.numpy, numpy, transformers' 2>/dev/null; then
  say "making the Python virtualenv $venv"
  command -v python3 >/dev/null || tools/setup-deps.sh python3 python3-venv >&2
  python3 -m venv "$venv" || { rm -rf "$venv"; tools/setup-deps.sh python3-venv >&2; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check huggingface_hub tokenizers safetensors numpy transformers >&2
fi
py=$venv/bin/python
st_version=$("$py" -c 'import safetensors; print(safetensors.__version__)')

# --- work directory and cleanup -----------------------------------------------------------------
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}" engine-bench.XXXXXX)
res=$work/results
mkdir -p "$res"
: >"$work/mounts"
# Unmounts every mount this script made (lazily if the daemon does not answer), then deletes the
# work directory.
cleanup() {
  set +e
  local m
  while read -r m; do
    if mountpoint -q "$m"; then
      timeout 60 "$mfs" umount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m"
    fi
  done <"$work/mounts"
  if [ "${ENGINE_BENCH_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------------
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"${2:-%.4f}\\n\", ($1) }"; }
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Prints the number field $1 of the JSON line $2.
field() { grep -oE "\"$1\": ?[-0-9.eE+]+" <<<"$2" | sed -E 's/.*: ?//'; }
# Runs a command bounded by the time limit, its stdout in $out and its wall time in $wall; on
# failure prints the command and the end of its output and fails.
run() {
  local log=$work/run.log t0 t1 rc=0
  t0=$(now)
  timeout "$tmo" "$@" >"$log" 2>&1 || rc=$?
  t1=$(now)
  if [ "$rc" -ne 0 ]; then
    echo "engine-bench: exit status $rc: $*" >&2
    tail -n 8 "$log" | sed 's/^/    /' >&2
    return "$rc"
  fi
  out=$(grep -m 1 '^{' "$log" || true)
  [ -n "$out" ] || { echo "engine-bench: no result line from: $*" >&2; tail -n 8 "$log" >&2; return 1; }
  wall=$(calc "$t1 - $t0")
}
# Appends value $3 to the runs of row $1, target $2.
record() { echo "$3" >>"$res/$1.$2"; }

# One llama.cpp measurement of target $1 (model file $2), mmap or no-mmap ($3), cold or warm ($4).
llama_run() {
  local target=$1 file=$2 mode=$3 temp=$4 flags=(--threads "$threads") row
  [ "$mode" = no-mmap ] && flags+=(--no-mmap)
  if [ "$temp" = cold ]; then
    drop_caches
    run node tools/engine-bench/load.mjs --init-only
  else
    run node tools/engine-bench/load.mjs "$file" "${flags[@]}"
  fi
  run node tools/engine-bench/load.mjs "$file" "${flags[@]}"
  row=llama-$mode-$temp
  record "$row-load" "$target" "$(field load_s "$out")"
  record "$row-first" "$target" "$(field first_token_s "$out")"
  record "$row-wall" "$target" "$wall"
}
# One safetensors measurement of target $1 (folder $2), cold or warm ($3).
st_run() {
  local target=$1 dir=$2 temp=$3
  if [ "$temp" = cold ]; then
    drop_caches
    run "$py" -c 'import json, safetensors.numpy; print(json.dumps({}))'
  else
    run "$py" tools/engine-bench/st_load.py "$dir"
  fi
  run "$py" tools/engine-bench/st_load.py "$dir"
  record "st-$temp-load" "$target" "$(field load_s "$out")"
  record "st-$temp-wall" "$target" "$wall"
}

# --- models, stores, mounts ----------------------------------------------------------------------
say "generating the models (scale $scale) in $work"
"$bin/modelfs-corpus" llama "$work/llama.gguf" --scale "$scale" >/dev/null
"$bin/modelfs-corpus" hf "$work/hf" --scale "$scale" >/dev/null
size=$(stat -c %s "$work/llama.gguf")
hf_size=$(du -sb "$work/hf" | cut -f1)
# Time limit of one run (a load of the whole model): generous (>= 5 MB/s) but bounded.
tmo=$((120 + size / 5000000))

pinned=no
if "$mfs" pin --help >/dev/null 2>&1; then
  pinned=yes
  stores=(store store-pinned)
else
  say "this modelfs has no 'pin' command: the pinned column is skipped"
  stores=(store)
fi
for s in "${stores[@]}"; do
  "$mfs" --store "$work/$s" init >/dev/null
  "$mfs" --store "$work/$s" add llama "$work/llama.gguf" >/dev/null
  "$mfs" --store "$work/$s" add hf "$work/hf/" >/dev/null
done
if [ "$pinned" = yes ]; then
  "$mfs" --store "$work/store-pinned" pin llama >&2
  "$mfs" --store "$work/store-pinned" pin hf >&2
fi
targets=(native)
declare -A gguf_of=([native]=$work/llama.gguf)
declare -A hf_of=([native]=$work/hf)
for s in "${stores[@]}"; do
  t=mount
  [ "$s" = store-pinned ] && t=pinned
  mnt=$work/mnt-$t
  mkdir -p "$mnt"
  echo "$mnt" >>"$work/mounts"
  timeout 120 "$mfs" --store "$work/$s" mount "$mnt" --daemon --log "$work/$t.log" >/dev/null
  gguf_of[$t]=$mnt/llama.gguf
  hf_of[$t]=$mnt/hf
  if [ ! -f "$mnt/llama.gguf" ] || [ ! -d "$mnt/hf" ]; then die "the $t mount shows: $(ls "$mnt")"; fi
  timeout "$tmo" cmp "$mnt/llama.gguf" "$work/llama.gguf" || die "$mnt/llama.gguf differs from the original"
  targets+=("$t")
done
# Each target must be its own inode (its own page cache).
inodes=$(for t in "${targets[@]}"; do stat -L -c '%d:%i' "${gguf_of[$t]}"; done | sort -u | wc -l)
[ "$inodes" -eq "${#targets[@]}" ] || die "the targets share inodes"

# --- measurements --------------------------------------------------------------------------------
rows=(llama-mmap-cold llama-mmap-warm llama-no-mmap-cold llama-no-mmap-warm st-cold st-warm)
for ((rep = 1; rep <= runs; rep++)); do
  say "repetition $rep of $runs"
  turn=$(((rep - 1) % ${#targets[@]}))
  order=("${targets[@]:turn}" "${targets[@]:0:turn}")
  for mode in mmap no-mmap; do
    for temp in cold warm; do
      for t in "${order[@]}"; do llama_run "$t" "${gguf_of[$t]}" "$mode" "$temp"; done
    done
  done
  for temp in cold warm; do
    for t in "${order[@]}"; do st_run "$t" "${hf_of[$t]}" "$temp"; done
  done
done

# --- report --------------------------------------------------------------------------------------
cell() { if [ -f "$res/$1.$2" ]; then calc "$(median "$res/$1.$2")" %.3f; else echo "–"; fi; }
ratio() {
  if [ -f "$res/$1.$2" ]; then calc "$(median "$res/$1.$2") / $(median "$res/$1.native")" %.2f×; else echo "–"; fi
}
label() {
  local what
  case $1 in
    llama-mmap-*) what="llama.cpp, mmap" ;;
    llama-no-mmap-*) what="llama.cpp, --no-mmap" ;;
    st-*) what="safetensors (numpy)" ;;
  esac
  case $1 in *-cold) what+=", cold" ;; *-warm) what+=", warm" ;; esac
  case $2 in
    load) what+=": load" ;;
    first) what+=": load + first token" ;;
    wall) what+=": process wall time" ;;
  esac
  echo "$what"
}
lines=()
for row in "${rows[@]}"; do
  case $row in llama-*) parts=(load first wall) ;; *) parts=(load wall) ;; esac
  for p in "${parts[@]}"; do lines+=("$row-$p|$(label "$row" "$p")"); done
done

echo "Engine load times, median of $runs (s); llama GGUF $(calc "$size / 1e9" %.2f) GB, safetensors folder $(calc "$hf_size / 1e9" %.2f) GB (scale $scale)"
echo "node-llama-cpp $engine_version (llama.cpp $(grep -oE '"llama_cpp":"[^"]*"' <<<"$engine_info" | cut -d'"' -f4), prebuilt CPU, $threads thread(s) for the prompt), safetensors $st_version"
[ "$pinned" = yes ] || echo "pinned column skipped: this modelfs has no 'pin' command"
echo
echo "| measurement | native s | mount s | mount/native | pinned s | pinned/native |"
echo "|---|---:|---:|---:|---:|---:|"
for line in "${lines[@]}"; do
  key=${line%%|*}
  printf '| %s | %s | %s | %s | %s | %s |\n' "${line#*|}" "$(cell "$key" native)" \
    "$(cell "$key" mount)" "$(ratio "$key" mount)" "$(cell "$key" pinned)" "$(ratio "$key" pinned)"
done
echo
echo "Runs (s), in order:"
for line in "${lines[@]}"; do
  key=${line%%|*}
  printf -- '- %s:' "${line#*|}"
  for t in "${targets[@]}"; do printf ' %s %s;' "$t" "$(paste -sd ' ' "$res/$key.$t")"; done
  echo
done
