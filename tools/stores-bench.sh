#!/usr/bin/env bash
# Measures stores in place (needs root): bytes `import` copies for a fine-tune into a store that
# holds its base; cold read throughput of a model served from a read-only source (directly, and
# as a --source behind an empty local store) against the same store mounted locally; and the delay
# before a mount over sshfs shows a model added on the server.
# Usage: tools/stores-bench.sh [SCALE]
set -euo pipefail
scale=${1:-1.0}
cd "$(dirname "$0")/.."
tools/setup-deps.sh sshfs openssh-server >/dev/null
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
cleanup() {
  for m in "$work"/mnt-* "$work/sshfs" "$work/ro"; do umount -l "$m" 2>/dev/null || true; done
  [ -f "$work/ssh/sshd.pid" ] && kill "$(cat "$work/ssh/sshd.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
read_rate() { dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print $(i-1) }' | head -1; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

"$bin/modelfs-corpus" base "$work/base.gguf" --scale "$scale" >/dev/null
"$bin/modelfs-corpus" finetune "$work/finetune.gguf" --scale "$scale" >/dev/null
size=$(stat -c %s "$work/base.gguf")
m() { "$bin/modelfs" --store "$1" "${@:2}"; }
m "$work/a" init >/dev/null; m "$work/a" add llama "$work/base.gguf" >/dev/null; m "$work/a" add llama "$work/finetune.gguf" >/dev/null
m "$work/b" init >/dev/null; m "$work/b" add llama "$work/base.gguf" >/dev/null
echo "== import of the fine-tune into a store holding its base"
m "$work/b" import "$work/a" --models llama@v2 | sed 's/^/   /'
echo "   (fine-tune file: $(awk -v b="$(stat -c %s "$work/finetune.gguf")" 'BEGIN { printf "%.2f MB", b / 1e6 }'))"

echo "== cold sequential read of the base (MB/s, median of 3)"
mkdir -p "$work/ro" "$work/mnt-local" "$work/mnt-ro" "$work/mnt-layered"
mount --bind "$work/a" "$work/ro" && mount -o remount,bind,ro "$work/ro"
m "$work/a" mount --daemon "$work/mnt-local" --log /dev/null >/dev/null
m "$work/none" mount --daemon --source "$work/ro" "$work/mnt-ro" --log /dev/null >/dev/null
m "$work/empty" init >/dev/null
m "$work/empty" mount --daemon --source "$work/ro" "$work/mnt-layered" --log /dev/null >/dev/null
for target in local ro layered; do
  rates=()
  for _ in 1 2 3; do drop_caches; rates+=("$(mbps "$size" "$(read_rate "$work/mnt-$target/llama.gguf")")"); done
  printf '   %-8s %s\n' "$target" "$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)"
done
for target in local ro layered; do "$bin/modelfs" umount "$work/mnt-$target" >/dev/null; done

echo "== delay until a mount over sshfs shows a model added on the server (s)"
mkdir -p "$work/ssh" /run/sshd "$work/sshfs" "$work/mnt-sshfs"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/key"; ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/hostkey"
port=$((20000 + $$ % 20000))
printf 'Port %s\nListenAddress 127.0.0.1\nHostKey %s/ssh/hostkey\nAuthorizedKeysFile %s/ssh/key.pub\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nSubsystem sftp internal-sftp\nPidFile %s/ssh/sshd.pid\nStrictModes no\n' \
  "$port" "$work" "$work" "$work" > "$work/ssh/sshd_config"
/usr/sbin/sshd -f "$work/ssh/sshd_config"; sleep 0.5
sshfs -p "$port" -o "IdentityFile=$work/ssh/key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null" "root@127.0.0.1:$work" "$work/sshfs"
"$bin/modelfs" --store "$work/sshfs/a" mount --daemon "$work/mnt-sshfs" --log /dev/null >/dev/null
for i in 1 2 3; do
  head -c 100000 /dev/urandom > "$work/tiny$i.gguf"
  m "$work/a" add "tiny$i" "$work/tiny$i.gguf" >/dev/null
  start=$(date +%s.%N)
  until [ -e "$work/mnt-sshfs/tiny$i.gguf" ]; do sleep 0.05; done
  printf '   %.1f\n' "$(echo "$(date +%s.%N) - $start" | bc)"
done
"$bin/modelfs" umount "$work/mnt-sshfs" >/dev/null
