#!/usr/bin/env bash
# End-to-end measurements on this machine, modelfs next to the native file on the same disk:
# add throughput, dedup of a re-added file and of a fine-tune, and sequential reads (cold: page
# cache dropped; warm: cached). Needs root (drop_caches, mount). Results are ratios from one run.
# Usage: tools/bench.sh [SCALE]   (SCALE 1.0 = a ~1.07 GB fp16 GGUF)
set -euo pipefail
scale=${1:-1.0}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
mnt=$work/mnt; mkdir -p "$mnt"
cleanup() { "$bin/modelfs" --store "$work/store" umount "$mnt" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
export MODELFS_STORE=$work/store

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Prints MB/s of reading $1 sequentially in 1 MiB blocks.
read_rate() { dd if="$1" of=/dev/null bs=1M 2>&1 | python3 -c 'import re,sys; t=sys.stdin.read(); m=re.search(r"(\d+) bytes.*copied, ([0-9.]+) s", t); print(f"{int(m[1])/float(m[2])/1e6:.0f}")'; }
# Prints the value of $2 in the `modelfs add` output line $1.
field() { echo "$1" | python3 -c "import re,sys; t=sys.stdin.read(); print(re.search(r'$2', t)[1])"; }

"$bin/modelfs-corpus" base "$work/base.gguf" --scale "$scale" >/dev/null
changed=$("$bin/modelfs-corpus" finetune "$work/finetune.gguf" --scale "$scale" | sed -E 's/.*, ([0-9]+) changed.*/\1/')
one=$("$bin/modelfs-corpus" one-tensor "$work/one-tensor.gguf" --scale "$scale" | sed -E 's/.*, ([0-9]+) changed.*/\1/')
size=$(stat -c %s "$work/base.gguf")
"$bin/modelfs" init >/dev/null

drop_caches
cold_add=$("$bin/modelfs" add base "$work/base.gguf")
"$bin/modelfs" rm base >/dev/null; "$bin/modelfs" gc >/dev/null
cat "$work/base.gguf" >/dev/null
warm_add=$("$bin/modelfs" add base "$work/base.gguf")
readd=$("$bin/modelfs" add base-again "$work/base.gguf")
ft=$("$bin/modelfs" add finetune "$work/finetune.gguf")
onet=$("$bin/modelfs" add one-tensor "$work/one-tensor.gguf")

"$bin/modelfs" mount "$mnt" --daemon >/dev/null
drop_caches; native_cold=$(read_rate "$work/base.gguf")
drop_caches; mount_cold=$(read_rate "$mnt/base.gguf")
read_rate "$work/base.gguf" >/dev/null; native_warm=$(read_rate "$work/base.gguf")
read_rate "$mnt/base.gguf" >/dev/null; mount_warm=$(read_rate "$mnt/base.gguf")

python3 - "$size" "$changed" "$one" "$native_cold" "$mount_cold" "$native_warm" "$mount_warm" <<PY
import sys, re
size, changed, one, nc, mc, nw, mw = map(float, sys.argv[1:])
def rate(out): return float(re.search(r"\((\d+) MB/s\)", out)[1])
def new(out):
    v, u = re.search(r"new: ([0-9.]+) ([kMG]?B) in", out).groups()
    return float(v) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[u]
cold_add, warm_add, readd, ft, onet = """$cold_add""", """$warm_add""", """$readd""", """$ft""", """$onet"""
print(f"model: {size/1e9:.2f} GB fp16 GGUF; fine-tune changes {changed/1e6:.1f} MB of tensors")
print(f"{'measurement':<44} {'modelfs':>10} {'native':>10} {'ratio':>7}")
print(f"{'add, input not cached (MB/s)':<44} {rate(cold_add):>10.0f}")
print(f"{'add, input cached (MB/s)':<44} {rate(warm_add):>10.0f}")
print(f"{'re-adding the same file stores (MB)':<44} {new(readd)/1e6:>10.2f}")
print(f"{'adding the fine-tune stores (MB)':<44} {new(ft)/1e6:>10.2f} {changed/1e6:>10.2f} {new(ft)/changed:>6.3f}x")
print(f"{'adding a copy with one changed tensor (MB)':<44} {new(onet)/1e6:>10.2f} {one/1e6:>10.2f} {new(onet)/one:>6.3f}x")
print(f"{'sequential read, cold (MB/s)':<44} {mc:>10.0f} {nc:>10.0f} {mc/nc:>6.2f}x")
print(f"{'sequential read, warm (MB/s)':<44} {mw:>10.0f} {nw:>10.0f} {mw/nw:>6.2f}x")
PY
