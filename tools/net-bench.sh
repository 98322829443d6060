#!/usr/bin/env bash
# Network measurements of modelfs on this machine, each next to a reference measured in the same
# run. The source store holds the corpus base model (and, for row 3, its fine-tune); every pull
# goes into a fresh `modelfs init` store with the default chunk size, like the source's.
#
#  1. `modelfs pull` of the base from `modelfs serve` over loopback, against `curl` fetching the
#     source store's pack files from nginx serving that same store directory (both in MB/s of
#     pack bytes, i.e. the ratio is a ratio of wall times).
#  2. The same pull with nginx as the `--from` source, against the same curl.
#  3. Pull of the fine-tune into a store that already holds the base, with the server in one
#     network namespace and the pull in another, joined by a veth pair: bytes on the wire (veth
#     rx + tx counters of the pulling side, headers included) against the fine-tune's changed
#     tensor bytes (as the corpus generator reports them).
#  4. Resume: a pull at --limit-rate 50M is killed with SIGKILL once half of the model's bytes
#     have arrived, then rerun; the TCP payload of both runs minus that of one uninterrupted pull,
#     divided by --jobs, is the waste per in-flight range.
#  5. Lazy mount of an empty store with `--source` = the loopback `modelfs serve`: cold sequential
#     read (`dd bs=1M`) in MB/s of model bytes, against row 1's pull in model bytes per second;
#     and whether the mounted file is byte-identical to the original (`cmp`).
#  6. Pull at --limit-rate 20M over the veth pair: TCP payload per second over a window in the
#     middle of the transfer (10 s when the model is large enough, shorter at small scales).
#
# TCP payload over the veth = counted bytes - 66 per counted packet (14 Ethernet + 20 IPv4 + 32
# TCP with timestamps; a GSO packet carries one set of headers) - 1448 per segment the server
# retransmitted (a receiver that reads slowly makes the sender probe and resend), so it does not
# depend on how the kernel segmented the stream; a rate-limited curl through the same veth checks
# the estimate.
#
# Page cache: it is dropped before every timed run of rows 1, 2 and 5 (pull, curl and mount
# alike), so the source store's packs are read cold by the server too. On a VM whose host caches
# the virtual disk, "cold" is still close to RAM speed (see docs/BENCHMARKS.md).
# Each row reports the median of 3 runs; compare ratios within one run, not numbers across runs.
#
# Needs root (drop_caches, network namespaces, FUSE). Installs nginx, curl, iproute2 and python3
# if missing. Uses $CARGO_TARGET_DIR (or target)/release/{modelfs,modelfs-corpus} as they are
# (does not build them).
# Usage: tools/net-bench.sh [SCALE]   (SCALE 1.0 = a ~1.07 GB fp16 GGUF; 0.1 for a quick run)
# NET_BENCH_KEEP=1 keeps the work directory (logs, stores) instead of deleting it.
set -euo pipefail
shopt -s inherit_errexit
scale=${1:-1.0}
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
mfs=$bin/modelfs
runs=3
jobs=4

die() { echo "net-bench: $*" >&2; exit 1; }
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, not '$scale'"
[ "$(id -u)" -eq 0 ] || die "needs root (drop_caches, network namespaces, FUSE mounts)"
for b in modelfs modelfs-corpus; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: build it with cargo build --release"
done
"$mfs" pull --help >/dev/null 2>&1 || die "this modelfs has no 'pull' command"

# Installs what is missing, quietly.
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v ip >/dev/null || missing+=(iproute2)
command -v python3 >/dev/null || missing+=(python3)
command -v fusermount3 >/dev/null || missing+=(fuse3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  timeout 900 apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin:/sbin

work=$(mktemp -d -p "${TMPDIR:-/tmp}" net-bench.XXXXXX)
res=$work/results
mkdir -p "$res"
: >"$work/pids"
: >"$work/mounts"
ns_a=mfsnb-a-$$
ns_b=mfsnb-b-$$
veth_b=nb-b

# Stops every server and pull this script started, unmounts its mounts, deletes its namespaces
# and its work directory.
cleanup() {
  set +e
  local m p
  while read -r m; do
    mountpoint -q "$m" && { "$mfs" umount "$m" >/dev/null 2>&1 || umount -l "$m"; }
  done <"$work/mounts"
  while read -r p; do kill "$p" 2>/dev/null; done <"$work/pids"
  sleep 0.5
  while read -r p; do kill -0 "$p" 2>/dev/null && kill -9 "$p"; done <"$work/pids"
  ip netns del "$ns_a" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
  if [ "${NET_BENCH_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------------
now() { date +%s.%N; }
# Evaluates an awk expression and prints it with format $2 (default: 6 decimals).
calc() { awk "BEGIN { printf \"${2:-%.6f}\\n\", ($1) }"; }
# Prints the median of the numbers in file $1 (one per line).
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
note() { echo "- $*" >>"$work/notes"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# Runs a command with its output in log file $1; prints its wall time in seconds. On failure
# prints the command and the end of its log to stderr and returns its status.
timed() {
  local log=$1 t0 t1 rc=0
  shift
  t0=$(now)
  "$@" >"$log" 2>&1 || rc=$?
  t1=$(now)
  if [ "$rc" -ne 0 ]; then
    echo "net-bench: exit status $rc: $*" >&2
    tail -n 5 "$log" | sed 's/^/    /' >&2
    return "$rc"
  fi
  calc "$t1 - $t0"
}
# Starts a command in the background with its output in log file $1; sets bg_pid.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  bg_pid=$!
  echo "$bg_pid" >>"$work/pids"
}
# Waits (at most 20 s) for server $2 to print its URL into log $1; prints the URL.
wait_url() {
  local i url
  for ((i = 0; i < 400; i++)); do
    url=$(grep -o 'http://[^ ]*' "$1" | head -n 1 || true)
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "net-bench: server did not print its URL:" >&2
  tail -n 5 "$1" | sed 's/^/    /' >&2
  return 1
}
# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Prints "rx_bytes rx_packets tx_bytes tx_packets retrans": the pulling side's veth counters and
# the TCP segments the server's namespace retransmitted.
counters() {
  local d=/sys/class/net/$veth_b/statistics r
  r=$(ip netns exec "$ns_a" cat /proc/net/snmp |
    awk '$1 == "Tcp:" { if (n) { for (i = 2; i <= NF; i++) if (h[i] == "RetransSegs") print $i } else { n = 1; for (i = 2; i <= NF; i++) h[i] = $i } }')
  echo "$(ip netns exec "$ns_b" cat "$d/rx_bytes" "$d/rx_packets" "$d/tx_bytes" "$d/tx_packets" | paste -sd ' ') $r"
}
# TCP payload received between two counter readings ($1 before, $2 after): bytes - 66 per packet
# (headers) - 1448 (one MSS) per retransmitted segment.
rx_payload() {
  local a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  echo $(((b[0] - a[0]) - 66 * (b[1] - a[1]) - 1448 * (b[4] - a[4])))
}
# All bytes on the wire, both directions, headers included, between two counter readings.
wire_bytes() {
  local a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  echo $(((b[0] - a[0]) + (b[2] - a[2])))
}
in_b() { ip netns exec "$ns_b" "$@"; }
# Whether model $2 in store $1 is byte-identical to file $3: prints yes or no.
same_as() {
  if timeout "$tmo" "$mfs" --store "$1" cat "$2" | cmp -s - "$3"; then echo yes; else echo no; fi
}
# Result of a row: emit ROW VALUE REFERENCE RATIO MET
emit() { printf '%s|%s|%s|%s\n' "$2" "$3" "$4" "$5" >"$res/$1"; }
met() { if awk "BEGIN { exit !($1) }"; then echo yes; else echo no; fi; }

# --- models and the source store ---------------------------------------------------------------
"$bin/modelfs-corpus" base "$work/base.gguf" --scale "$scale" >/dev/null
changed=$("$bin/modelfs-corpus" finetune "$work/finetune.gguf" --scale "$scale" |
  sed -E 's/.*, ([0-9]+) changed.*/\1/')
size=$(stat -c %s "$work/base.gguf")
src=$work/src
"$mfs" --store "$src" init >/dev/null
"$mfs" --store "$src" add base "$work/base.gguf" >/dev/null
mapfile -t packs < <(cd "$src/packs" && ls -- *.pack)
[ ${#packs[@]} -gt 0 ] || die "the source store has no pack files"
pack_bytes=$(cd "$src/packs" && cat -- "${packs[@]}" | wc -c)
[ -f "$src/catalog.json" ] || note "the source store has no catalog.json after add"
# Time limit of one pull, read or fetch of the whole model: generous (>= 5 MB/s) but bounded.
tmo=$((120 + size / 5000000))

# --- servers: modelfs serve and nginx on loopback, modelfs serve in namespace A -----------------
start_bg "$work/serve-lo.log" "$mfs" --store "$src" serve --listen 127.0.0.1:0 --no-mdns
serve_url=$(wait_url "$work/serve-lo.log" "$bg_pid")

nginx_port=$(free_port)
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
# The source store directory as a static tree (ranges are built in).
user root;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server_tokens off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $src;
  }
}
EOF
start_bg "$work/nginx/stdout.log" nginx -p "$work/nginx" -e "$work/nginx/error.log" \
  -c "$work/nginx/nginx.conf" -g 'daemon off;'
nginx_pid=$bg_pid
nginx_url=http://127.0.0.1:$nginx_port
for ((i = 0; i < 100; i++)); do
  curl -sf -o /dev/null "$nginx_url/modelfs.json" && break
  kill -0 "$nginx_pid" 2>/dev/null || break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -r 0-9 "$nginx_url/packs/${packs[0]}" || true)
[ "$code" = 206 ] || die "nginx did not answer a range request with 206 (got '$code'): $(tail -n 3 "$work/nginx/error.log")"

# Namespaces A (server, 10.201.0.1) and B (client, 10.201.0.2), joined by a veth pair; no IPv6,
# so that its neighbour discovery adds nothing to the counters.
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add nb-a netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
for ns in "$ns_a" "$ns_b"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$ns_a" addr add 10.201.0.1/24 dev nb-a
ip -n "$ns_b" addr add 10.201.0.2/24 dev "$veth_b"
ip -n "$ns_a" link set nb-a up
ip -n "$ns_b" link set "$veth_b" up
# Starts modelfs serve of the source store in namespace A; sets serve_a_url and serve_a_pid.
start_serve_a() {
  start_bg "$work/serve-a.log" ip netns exec "$ns_a" "$mfs" --store "$src" serve \
    --listen 10.201.0.1:0 --no-mdns
  serve_a_pid=$bg_pid
  serve_a_url=$(wait_url "$work/serve-a.log" "$serve_a_pid")
}
start_serve_a

# Checks the payload estimate: curl of (at most) 50 MB of the first pack through the veth at
# 50 MB/s, a receiver that reads slowly like the rate-limited pulls of rows 4 and 6.
c0=$(counters)
got=$(in_b timeout "$tmo" curl -sS -o /dev/null --limit-rate 50M -r 0-49999999 \
  -w '%{size_download} %{size_header}' "$serve_a_url/packs/${packs[0]}" | awk '{ print $1 + $2 }' || true)
c1=$(counters)
if [ -n "$got" ] && [ "$got" -gt 0 ]; then
  note "check of the TCP payload estimate: veth counters say $(calc "$(rx_payload "$c0" "$c1") / $got" %.4f)x the bytes a curl (--limit-rate 50M) received through the veth (1.0000x = exact; without the retransmission term: $(calc "($(rx_payload "$c0" "$c1") + 1448 * ($(echo "$c1" | cut -d' ' -f5) - $(echo "$c0" | cut -d' ' -f5))) / $got" %.4f)x)"
else
  note "the payload check (a curl of a pack through the veth from modelfs serve) failed"
fi

# --- rows ----------------------------------------------------------------------------------------
# Rows 1 and 2: each run fetches with curl (nginx), pulls from modelfs serve, pulls from nginx;
# page cache dropped before each. curl writes the packs to files and the time includes their fsync,
# as a pull also leaves its packs on disk.
row12() {
  local i t d args p
  for ((i = 1; i <= runs; i++)); do
    rm -rf "$work/dl"
    mkdir "$work/dl"
    args=()
    for p in "${packs[@]}"; do args+=(-o "$work/dl/$p" "$nginx_url/packs/$p"); done
    drop_caches
    t=$(timed "$work/curl.log" timeout "$tmo" curl -sSf "${args[@]}")
    t=$(calc "$t + $(timed "$work/sync.log" timeout "$tmo" sync -- "$work"/dl/*)")
    echo "$t" >>"$res/curl.s"
    [ "$(cat -- "$work"/dl/* | wc -c)" = "$pack_bytes" ] || { echo "curl fetched a wrong size" >&2; return 1; }
    rm -rf "$work/dl"

    for p in serve nginx; do
      d=$work/pull-$p
      rm -rf "$d"
      "$mfs" --store "$d" init >/dev/null
      local url=$serve_url
      [ "$p" = nginx ] && url=$nginx_url
      drop_caches
      t=$(timed "$work/pull-$p.log" timeout "$tmo" "$mfs" --store "$d" pull base --from "$url" --jobs "$jobs")
      echo "$t" >>"$res/pull-$p.s"
      if [ "$i" -eq 1 ]; then
        note "pull from $p, first run: $(grep -m 1 '^need ' "$work/pull-$p.log" || echo 'no need line'); pulled model identical to the original: $(same_as "$d" base "$work/base.gguf")"
      fi
      rm -rf "$d"
    done
  done
  local tc ts tn
  tc=$(median "$res/curl.s")
  ts=$(median "$res/pull-serve.s")
  tn=$(median "$res/pull-nginx.s")
  local rc rs rn
  rc=$(calc "$pack_bytes / $tc / 1e6" %.0f)
  rs=$(calc "$pack_bytes / $ts / 1e6" %.0f)
  rn=$(calc "$pack_bytes / $tn / 1e6" %.0f)
  emit 1 "$rs" "$rc" "$(calc "$tc / $ts" %.2f)x" "$(met "$tc / $ts >= 0.80")"
  emit 2 "$rn" "$rc" "$(calc "$tc / $tn" %.2f)x" "$(met "$tc / $tn >= 0.80")"
  note "row 1/2 runs (s): curl $(paste -sd ' ' "$res/curl.s"); pull from serve $(paste -sd ' ' "$res/pull-serve.s"); pull from nginx $(paste -sd ' ' "$res/pull-nginx.s")"
}

# Row 5: lazy mount of an empty store from the loopback modelfs serve, a fresh store and mount per run.
row5() {
  local i d mnt f t same=yes
  [ -f "$res/pull-serve.s" ] || { echo "row 5 needs row 1's pull time" >&2; return 1; }
  for ((i = 1; i <= runs; i++)); do
    d=$work/lazy$i
    mnt=$work/mnt$i
    mkdir -p "$mnt"
    "$mfs" --store "$d" init >/dev/null
    echo "$mnt" >>"$work/mounts"
    timed "$work/mount$i.log" timeout 60 "$mfs" --store "$d" mount "$mnt" --daemon \
      --source "$serve_url" --log "$work/mount$i.daemon.log" >/dev/null
    f=$mnt/base.gguf
    [ -f "$f" ] || { echo "no $f in the mount: $(ls "$mnt")" >&2; return 1; }
    drop_caches
    t=$(timed "$work/dd$i.log" timeout "$tmo" dd if="$f" of=/dev/null bs=1M)
    echo "$t" >>"$res/mount.s"
    timeout "$tmo" cmp -s "$f" "$work/base.gguf" || same=no
    timeout 60 "$mfs" --store "$d" umount "$mnt" >/dev/null
    rm -rf "$d"
  done
  local tm tp
  tm=$(median "$res/mount.s")
  tp=$(median "$res/pull-serve.s")
  emit 5 "$(calc "$size / $tm / 1e6" %.0f)" "$(calc "$size / $tp / 1e6" %.0f)" \
    "$(calc "$tp / $tm" %.2f)x" "$(met "$tp / $tm >= 0.70")"
  emit 5b "$same" "" "" "$([ "$same" = yes ] && echo yes || echo no)"
  note "row 5 runs (s): $(paste -sd ' ' "$res/mount.s")"
}

# Row 4: resume after SIGKILL. One uninterrupted pull through the veth is the baseline (its
# store, holding the base, is also row 3's starting point).
row4() {
  local c0 c1 ck base_payload half i d pid t deadline n got killed total waste
  rm -rf "$work/b-base"
  "$mfs" --store "$work/b-base" init >/dev/null
  c0=$(counters)
  timed "$work/pull-b-base.log" timeout "$tmo" ip netns exec "$ns_b" "$mfs" --store "$work/b-base" pull base \
    --from "$serve_a_url" --jobs "$jobs" >/dev/null
  c1=$(counters)
  base_payload=$(rx_payload "$c0" "$c1")
  note "uninterrupted pull of the base through the veth: TCP payload $(calc "$base_payload / 1048576" %.2f) MiB, pack bytes $(calc "$pack_bytes / 1048576" %.2f) MiB, on the wire (rx + tx) $(calc "$(wire_bytes "$c0" "$c1") / 1048576" %.2f) MiB"
  half=$((base_payload / 2))
  for ((i = 1; i <= runs; i++)); do
    d=$work/resume$i
    rm -rf "$d"
    "$mfs" --store "$d" init >/dev/null
    c0=$(counters)
    start_bg "$work/resume$i-a.log" ip netns exec "$ns_b" "$mfs" --store "$d" pull base \
      --from "$serve_a_url" --jobs "$jobs" --limit-rate 50M
    pid=$bg_pid
    # Polls the counters every 50 ms; gives up at twice the expected time plus 15 s.
    deadline=$(calc "$(now) + 2 * $base_payload / 50e6 + 15")
    killed=no
    for ((n = 0; n < 100000; n++)); do
      got=$(rx_payload "$c0" "$(counters)")
      if [ "$got" -ge "$half" ]; then kill -9 "$pid"; killed=yes; break; fi
      kill -0 "$pid" 2>/dev/null || break
      if [ "$(met "$(now) > $deadline")" = yes ]; then kill -9 "$pid"; break; fi
      sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    [ "$killed" = yes ] || { echo "resume run $i: the pull ended or stalled before half of the model arrived (see $work/resume$i-a.log)" >&2; tail -n 3 "$work/resume$i-a.log" >&2; return 1; }
    sleep 0.2
    ck=$(counters)
    t=$(timed "$work/resume$i-b.log" timeout "$tmo" ip netns exec "$ns_b" "$mfs" --store "$d" pull base \
      --from "$serve_a_url" --jobs "$jobs")
    c1=$(counters)
    total=$(rx_payload "$c0" "$c1")
    waste=$((total - base_payload))
    calc "$waste / $jobs / 1048576" >>"$res/resume.mib"
    calc "$(rx_payload "$c0" "$ck") / $base_payload * 100" %.0f >>"$res/resume.pct"
    if [ "$i" -eq 1 ]; then
      note "resume, first run: rerun said: $(grep -m 1 '^need ' "$work/resume$i-b.log" || echo 'no need line'); resumed model identical to the original: $(same_as "$d" base "$work/base.gguf")"
    fi
    rm -rf "$d"
  done
  local w
  w=$(median "$res/resume.mib")
  emit 4 "$(calc "$w" %.3f)" "$(calc "$base_payload / 1048576" %.1f)" "" "$(met "$w <= 1")"
  note "row 4 runs: extra MiB per range $(paste -sd ' ' "$res/resume.mib"); killed at $(paste -sd ' ' "$res/resume.pct") % of the model (TCP payload, --jobs $jobs)"
}

# Row 6: --limit-rate 20M; the window starts 1 s after the pull starts (registry, manifests and
# pack tables come first) and lasts 10 s, or less when the model would be done by then.
row6() {
  local est win i d pid ca cb ta tb alive
  est=$(calc "$pack_bytes / 20e6")
  win=$(calc "$est >= 12 ? 10 : ($est - 2 > 1 ? $est - 2 : 1)" %.1f)
  for ((i = 1; i <= runs; i++)); do
    d=$work/rate$i
    rm -rf "$d"
    "$mfs" --store "$d" init >/dev/null
    start_bg "$work/rate$i.log" timeout -s KILL "$(calc "$win + 20" %.0f)" ip netns exec "$ns_b" \
      "$mfs" --store "$d" pull base --from "$serve_a_url" --jobs "$jobs" --limit-rate 20M
    pid=$bg_pid
    sleep 1
    ca=$(counters)
    ta=$(now)
    sleep "$win"
    cb=$(counters)
    tb=$(now)
    alive=yes
    kill -0 "$pid" 2>/dev/null || alive=no
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ "$alive" = yes ] || { echo "rate run $i: the pull ended before the window closed" >&2; tail -n 3 "$work/rate$i.log" >&2; return 1; }
    calc "$(rx_payload "$ca" "$cb") / ($tb - $ta) / 1e6" %.2f >>"$res/rate.mbs"
    rm -rf "$d"
  done
  local r
  r=$(median "$res/rate.mbs")
  emit 6 "$r" "20.00" "$(calc "$r / 20" %.3f)x" "$(met "$r >= 19 && $r <= 21")"
  note "row 6 runs (MB/s over a $win s window): $(paste -sd ' ' "$res/rate.mbs")"
}

# Row 3: fine-tune pulled into a copy of the baseline store (which holds the base).
row3() {
  local i d c0 c1
  if [ ! -d "$work/b-base" ]; then
    "$mfs" --store "$work/b-base" init >/dev/null
    timed "$work/pull-b-base.log" timeout "$tmo" ip netns exec "$ns_b" "$mfs" --store "$work/b-base" pull base \
      --from "$serve_a_url" --jobs "$jobs" >/dev/null
  fi
  for ((i = 1; i <= runs; i++)); do
    d=$work/ft$i
    rm -rf "$d"
    cp -a "$work/b-base" "$d"
    c0=$(counters)
    timed "$work/ft$i.log" timeout "$tmo" ip netns exec "$ns_b" "$mfs" --store "$d" pull finetune \
      --from "$serve_a_url" --jobs "$jobs" >/dev/null
    c1=$(counters)
    wire_bytes "$c0" "$c1" >>"$res/ft.wire"
    rx_payload "$c0" "$c1" >>"$res/ft.payload"
    if [ "$i" -eq 1 ]; then
      note "fine-tune pull, first run: $(grep -m 1 '^need ' "$work/ft$i.log" || echo 'no need line'); pulled fine-tune identical to the original: $(same_as "$d" finetune "$work/finetune.gguf")"
    fi
    rm -rf "$d"
  done
  local w p
  w=$(median "$res/ft.wire")
  p=$(median "$res/ft.payload")
  emit 3 "$(calc "$w / 1e6" %.2f)" "$(calc "$changed / 1e6" %.2f)" "$(calc "$w / $changed" %.3f)x" \
    "$(met "$w <= 1.02 * $changed + 1048576")"
  note "row 3: TCP payload received $(calc "$p / 1e6" %.2f) MB (median); modelfs diff says base -> finetune transfers $("$mfs" --store "$src" diff --json base finetune | python3 -c 'import json, sys; d = json.load(sys.stdin); print("%.2f MB (%.2f MB stored)" % (d["transfer_bytes"] / 1e6, d["transfer_stored_bytes"] / 1e6))' || echo '?')"
}

# Runs one row in a subshell with errexit; a failing row is reported and the others go on.
run_row() {
  local rc
  echo "net-bench: $1" >&2
  set +e
  (
    set -e
    "$1"
  )
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || echo "net-bench: $1 failed (status $rc)" >&2
}

run_row row12
run_row row5
run_row row4
run_row row6
# Row 3 needs the fine-tune in the source store; the server in A is restarted to serve it.
kill "$serve_a_pid"
wait "$serve_a_pid" 2>/dev/null || true
"$mfs" --store "$src" add finetune "$work/finetune.gguf" >/dev/null
start_serve_a
run_row row3

# --- report --------------------------------------------------------------------------------------
echo "# modelfs network benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, kernel $(uname -r); $("$mfs" --version)"
echo "scale $scale: base $(calc "$size / 1e6" %.1f) MB ($(calc "$pack_bytes / 1e6" %.1f) MB of packs), fine-tune changes $(calc "$changed / 1e6" %.2f) MB of tensors; --jobs $jobs; median of $runs runs"
echo
echo "| metric | modelfs | reference | ratio | target | met |"
echo "|---|---:|---:|---:|---|---|"
row() { # ROW METRIC TARGET
  local v="failed" r="" x="" m="no"
  [ -f "$res/$1" ] && IFS='|' read -r v r x m <"$res/$1"
  echo "| $2 | $v | $r | $x | $3 | $m |"
}
row 1 "1. pull base from \`modelfs serve\` on loopback, MB/s of pack bytes (ref: curl of the packs from nginx)" "≥ 0.80× curl"
row 2 "2. pull base from nginx on loopback, MB/s of pack bytes (ref: the same curl)" "≥ 0.80× curl"
row 3 "3. pull fine-tune, base present: MB on the wire, rx + tx (ref: changed tensor MB)" "≤ 1.02× changed + 1 MiB"
row 4 "4. resume after kill -9 at ~50%: extra MiB fetched per in-flight range (ref: MiB of one full pull)" "≤ 1 MiB"
row 5 "5. lazy mount from \`modelfs serve\`, cold dd, MB/s of model bytes (ref: row 1 pull, model bytes/s)" "≥ 0.70× pull"
row 5b "5. lazy mount: mounted file identical to the original (cmp)" "yes"
row 6 "6. pull --limit-rate 20M, MB/s of TCP payload (ref: the limit)" "19–21 MB/s"
echo
echo "Page cache dropped before every timed run of rows 1, 2 and 5 (source packs read cold, from a"
echo "virtual disk the host caches); rows 3, 4 and 6 count bytes on a veth pair between two network"
echo "namespaces (server in one, pull in the other)."
if [ -f "$work/notes" ]; then
  echo
  cat "$work/notes"
fi
