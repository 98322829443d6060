#!/usr/bin/env bash
# Object-store measurements of modelfs on this machine, against a single-node Garage (an
# S3-compatible object store) started on loopback for the run, each next to a reference measured
# in the same run. The local source store holds the corpus base model and its fine-tune; the base
# is published with `modelfs pack s3://BUCKET/site --models base` before row 1.
#
#  1. `modelfs pull` of the base from the bucket (`--from s3://BUCKET/site`) into a fresh store,
#     against `s3cmd get` of the same pack objects from the same bucket into files on the same
#     disk, followed by a sync of those files (both in MB/s of pack bytes, so the ratio is a ratio
#     of wall times). Also the requests the pull reports ("N requests") per GB of pack bytes.
#  2. Lazy mount of an empty store whose only source is the bucket (`mount --daemon --source
#     s3://BUCKET/site`): cold sequential read (`dd bs=1M`) in MB/s of model bytes, against row 1's
#     pull in model bytes per second; and whether the mounted file is byte-identical (`cmp`).
#  3. Publishing the fine-tune into a bucket prefix that already holds its base: bytes uploaded,
#     against the fine-tune's changed tensor bytes (as the corpus generator reports them). Three
#     counts of "uploaded": the request bodies sent to the bucket (counted by a proxy in front of
#     Garage), the "sent X" the pack command prints, and the growth of the prefix (sum of its
#     object sizes before and after).
#  4. A fleet: 4 stores on this machine, each running `modelfs serve` on loopback and mounted with
#     `--fill`, the other 3 nodes' serve URLs as sources first and the bucket last. A model
#     published into the bucket after the mounts started is read (`dd`) through all 4 mounts at
#     once; the bytes the bucket sent (response bodies, counted by one proxy per node in front of
#     Garage) divided by the model's pack bytes is the measured multiple (1.0x = the bucket sent
#     the model once). Reference: the same with each mount listing only the bucket. Also a
#     staggered variant (with peers): node 1 reads first, alone; the other 3 read at once a few
#     seconds after it finished, which shows whether chunks a node filled reach its neighbours.
#
# Everything runs on loopback (no network namespaces): Garage, the proxies, the serves and the
# mounts share this machine's cores, so the fleet row measures bytes, not speed.
# The proxies (a small python3 asyncio HTTP/1.1 relay) count requests and bytes and log each
# request (time, object, range, status, body bytes); rows 1 and 2 reach Garage directly, so the
# proxies cost nothing there. One untimed pull through a proxy counts every
# request a pull sends, including the registry, catalog and pack tables read before its
# "N requests" count starts.
#
# Page cache: it is dropped before every timed run of rows 1 and 2 (s3cmd, pull and mount alike)
# and before the fleet's reads, so Garage reads its data blocks cold. On a VM whose host caches
# the virtual disk, "cold" is still close to RAM speed (see docs/BENCHMARKS.md).
# Each row reports the median of 3 runs; compare ratios within one run, not numbers across runs.
#
# Needs root (drop_caches, FUSE). Installs s3cmd, curl, python3 and fuse3 from Debian if missing.
# Garage: $MODELFS_GARAGE, else what tools/garage.sh prints (it builds Garage when there is none),
# else $HOME/.cache/modelfs-garage/bin/garage. Uses $CARGO_TARGET_DIR (or target)/release/
# {modelfs,modelfs-corpus} as they are (does not build them).
# Usage: tools/s3-bench.sh [SCALE]   (SCALE 1.0 = a ~1.07 GB fp16 GGUF; 0.1 for a quick run)
# S3_BENCH_KEEP=1 keeps the work directory (logs, stores, Garage's data) instead of deleting it;
# S3_BENCH_ROWS="3 4" runs only those rows (row 2 needs row 1).
set -euo pipefail
shopt -s inherit_errexit
scale=${1:-1.0}
cd "$(dirname "$0")/.."
repo=$PWD
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
mfs=$bin/modelfs
runs=3
jobs=4
nodes=4
bucket=modelfs-bench
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

die() { echo "s3-bench: $*" >&2; exit 1; }
[[ $scale =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, not '$scale'"
[ "$(id -u)" -eq 0 ] || die "needs root (drop_caches, FUSE mounts)"
for b in modelfs modelfs-corpus; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: build it with cargo build --release"
done
"$mfs" pack --help 2>/dev/null | grep -q 's3://' || die "this modelfs cannot publish into s3:// (pack --help)"

# Installs what is missing, quietly.
missing=()
command -v s3cmd >/dev/null || missing+=(s3cmd)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v fusermount3 >/dev/null || missing+=(fuse3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  timeout 900 apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin:/sbin

# The Garage binary.
if [ -n "${MODELFS_GARAGE:-}" ] && [ -f "$MODELFS_GARAGE" ] && [ -x "$MODELFS_GARAGE" ]; then
  garage=$MODELFS_GARAGE
elif [ -x "$repo/tools/garage.sh" ]; then
  # Waits for (or starts) a build of Garage; bounded by the script's own 3-hour limit.
  garage=$(timeout 14400 "$repo/tools/garage.sh") || die "tools/garage.sh found no Garage binary"
else
  garage=$HOME/.cache/modelfs-garage/bin/garage
fi
[ -x "$garage" ] || die "no Garage binary at $garage (set MODELFS_GARAGE)"

work=$(mktemp -d -p "${TMPDIR:-/tmp}" s3-bench.XXXXXX)
res=$work/results
mkdir -p "$res"
: >"$work/pids"
: >"$work/mounts"

# Unmounts every mount this script made, stops every process it started (Garage, proxies,
# serves, mount daemons), and deletes its work directory.
cleanup() {
  set +e
  local m p
  while read -r m; do
    mountpoint -q "$m" && { timeout 30 "$mfs" umount "$m" >/dev/null 2>&1 || umount -l "$m"; }
  done <"$work/mounts"
  while read -r p; do kill "$p" 2>/dev/null; done <"$work/pids"
  # Up to 5 s to exit (Garage flushes its metadata), then SIGKILL.
  local i alive
  for ((i = 0; i < 50; i++)); do
    alive=no
    while read -r p; do kill -0 "$p" 2>/dev/null && alive=yes; done <"$work/pids"
    [ "$alive" = no ] && break
    sleep 0.1
  done
  while read -r p; do kill -0 "$p" 2>/dev/null && kill -9 "$p"; done <"$work/pids"
  if [ "${S3_BENCH_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
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
    echo "s3-bench: exit status $rc: $*" >&2
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
  # Not a job of this shell: the cleanup stops it by pid, without job notices.
  disown "$bg_pid"
  echo "$bg_pid" >>"$work/pids"
}
# Waits (at most 20 s) for server $2 to print its URL into log $1; prints the URL.
wait_url() {
  local i url
  for ((i = 0; i < 400; i++)); do
    url=$(grep -o 'http://[^ ]*' "$1" 2>/dev/null | head -n 1 || true)
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  echo "s3-bench: server did not print its URL:" >&2
  tail -n 5 "$1" | sed 's/^/    /' >&2
  return 1
}
# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Result of a row: emit ROW VALUE REFERENCE RATIO MET
emit() { printf '%s|%s|%s|%s\n' "$2" "$3" "$4" "$5" >"$res/$1"; }
met() { if awk "BEGIN { exit !($1) }"; then echo yes; else echo no; fi; }
# Whether model $2 in store $1 is byte-identical to file $3: prints yes or no.
same_as() {
  if timeout "$tmo" "$mfs" --store "$1" cat "$2" | cmp -s - "$3"; then echo yes; else echo no; fi
}
# Bytes in a "1.23 MB"-style size (the units modelfs prints: B, kB, MB, GB, TB).
to_bytes() {
  awk -v n="$1" -v u="$2" 'BEGIN {
    gsub(",", "", n); m = 1
    if (u == "kB" || u == "KB") m = 1e3; else if (u == "MB") m = 1e6; else if (u == "GB") m = 1e9
    else if (u == "TB") m = 1e12; else if (u == "KiB") m = 1024; else if (u == "MiB") m = 1048576
    else if (u == "GiB") m = 1073741824
    printf "%.0f\n", n * m }'
}
# Text of a mount log without terminal colour codes.
plain_log() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
# Prints the pid of the mount daemon serving mountpoint $1 (the process whose command line has the
# argument "mount" and the mountpoint), and records it for the cleanup.
mount_pid() {
  local f pid args
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    args=$({ tr '\0' '\n' <"$f"; } 2>/dev/null) || continue
    if grep -qxF -- "$1" <<<"$args" && grep -qx mount <<<"$args" && ! grep -qx umount <<<"$args"; then
      echo "$pid" >>"$work/pids"
      echo "$pid"
      return 0
    fi
  done
  echo "s3-bench: no mount process found for $1" >&2
  return 1
}
# Waits (at most $2 s) for process $1 to exit; prints the seconds waited, or "more than $2".
wait_gone() {
  local t0 i
  t0=$(now)
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || { calc "$(now) - $t0" %.1f; return 0; }
    sleep 0.1
  done
  echo "more than $2"
}

# --- Garage --------------------------------------------------------------------------------------
# A single node in $work/garage: metadata and data on this disk, replication factor 1, RPC, S3
# API and admin API on loopback. Blocks are stored uncompressed (Garage's default is zstd level
# 1; fp16 weights barely compress, and the reads of both modelfs and s3cmd would pay for it).
gdir=$work/garage
gcfg=$gdir/garage.toml
mkdir -p "$gdir"
for ((i = 0; i < 20; i++)); do
  s3_port=$(free_port)
  rpc_port=$(free_port)
  admin_port=$(free_port)
  [ "$s3_port" != "$rpc_port" ] && [ "$rpc_port" != "$admin_port" ] && [ "$s3_port" != "$admin_port" ] && break
done
cat >"$gcfg" <<EOF
metadata_dir = "$gdir/meta"
data_dir = "$gdir/data"
db_engine = "lmdb"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
EOF
# `garage -c CONFIG ARGS…` with a deadline.
gcli() { timeout 30 env RUST_LOG=warn "$garage" -c "$gcfg" "$@"; }
# Like gcli, retried for up to 30 s while it fails (the node may still be settling); prints its
# stdout.
gcli_ok() {
  local i out
  for ((i = 0; i < 60; i++)); do
    if out=$(gcli "$@" 2>"$gdir/cli.err"); then
      printf '%s\n' "$out"
      return 0
    fi
    sleep 0.5
  done
  echo "s3-bench: garage $* failed: $(tail -n 3 "$gdir/cli.err")" >&2
  return 1
}
start_bg "$gdir/garage.log" env RUST_LOG=garage=warn "$garage" -c "$gcfg" server
garage_pid=$bg_pid
for ((i = 0; i < 300; i++)); do
  kill -0 "$garage_pid" 2>/dev/null || die "garage server exited: $(tail -n 5 "$gdir/garage.log")"
  gcli status >/dev/null 2>&1 && break
  sleep 0.2
done
gcli status >/dev/null 2>&1 || die "garage did not answer within 60 s: $(tail -n 5 "$gdir/garage.log")"
node=$(gcli_ok node id -q)
node=${node%%@*}
[[ $node =~ ^[0-9a-f]{16,}$ ]] || die "unexpected garage node id '$node'"
gcli_ok layout assign -z dc1 -c 1G "$node" >/dev/null
gcli_ok layout apply --version 1 >/dev/null
gcli_ok bucket create "$bucket" >/dev/null
keyout=$(gcli_ok key create modelfs-bench)
key_id=$(awk '/Key ID:/ { print $NF; exit }' <<<"$keyout")
key_secret=$(awk '/Secret key:/ { print $NF; exit }' <<<"$keyout")
if [[ $key_id != GK* ]] || [ ${#key_secret} -lt 32 ]; then
  die "unexpected output of garage key create: $keyout"
fi
gcli_ok bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
garage_version=$(gcli --version 2>/dev/null | head -n 1 || echo '?')

endpoint=http://127.0.0.1:$s3_port
# modelfs reads these (AWS SDK conventions); others that would change how it reaches the bucket
# are cleared.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_ENDPOINT AWS_VIRTUAL_HOSTED_STYLE_REQUEST \
  AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_ALLOW_HTTP AWS_CONDITIONAL_PUT
export AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret AWS_REGION=garage AWS_ENDPOINT_URL=$endpoint

# s3cmd for the same endpoint: path-style (host_bucket without %(bucket)s), plain HTTP, SigV4.
cat >"$work/s3cfg" <<EOF
[default]
access_key = $key_id
secret_key = $key_secret
host_base = 127.0.0.1:$s3_port
host_bucket = 127.0.0.1:$s3_port
use_https = False
signature_v2 = False
bucket_location = garage
check_ssl_certificate = False
progress_meter = False
EOF
# s3cmd with a deadline: s3c SECONDS ARGS…
s3c() { timeout "$1" s3cmd -c "$work/s3cfg" "${@:2}"; }
for ((i = 0; i < 120; i++)); do
  s3c 20 ls "s3://$bucket" >/dev/null 2>&1 && break
  sleep 0.5
done
s3c 20 ls "s3://$bucket" >/dev/null 2>"$work/s3cmd-probe.err" ||
  die "s3cmd cannot list s3://$bucket: $(tail -n 3 "$work/s3cmd-probe.err")"
# Sum of the sizes of the objects under s3://BUCKET/$1/ (0 if none).
s3_bytes() {
  s3c 120 ls --recursive "s3://$bucket/$1/" | awk '$4 ~ /^s3:\/\// { s += $3 } END { printf "%.0f\n", s }'
}

# --- the counting proxy --------------------------------------------------------------------------
# An HTTP/1.1 relay (keep-alive, Content-Length and chunked bodies, 100-continue) from a port on
# 127.0.0.1 to Garage's S3 API. It counts requests and body bytes in each direction; `GET
# /__proxy_stats` on it answers the counts as JSON without reaching Garage. Requests keep their
# Host header, so signed S3 requests stay valid.
cat >"$work/proxy.py" <<'EOF'
import asyncio, json, os, sys, time

UP_HOST, UP_PORT, PORT_FILE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Optional: a file that gets one line per request: TIME METHOD TARGET RANGE -> STATUS BODY_BYTES.
REQUEST_LOG = open(sys.argv[4], "a", buffering=1) if len(sys.argv) > 4 else None
LIMIT = 1 << 20
PIECE = 1 << 18
stats = {k: 0 for k in (
    "connections", "requests", "get", "head", "put", "post", "delete", "other",
    "request_body_bytes", "response_body_bytes", "get_body_bytes", "pack_get_body_bytes",
    "to_client_bytes", "to_server_bytes", "errors", "upstream_reconnects")}
stats["last_error"] = ""

def log_error(what):
    stats["errors"] += 1
    stats["last_error"] = what
    print("%.3f %s" % (time.time(), what), file=sys.stderr, flush=True)

async def connect_upstream():
    # Garage may refuse a connection for a moment under load: up to 10 tries within ~2 s.
    for attempt in range(10):
        try:
            return await asyncio.open_connection(UP_HOST, UP_PORT, limit=LIMIT)
        except OSError as e:
            if attempt == 9:
                raise
            log_error("connecting to the upstream: %r (retrying)" % e)
            await asyncio.sleep(0.2)

def parse(raw):
    lines = raw.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers

async def read_head(reader):
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None

def send(writer, data, to_client):
    writer.write(data)
    stats["to_client_bytes" if to_client else "to_server_bytes"] += len(data)

async def copy_exact(reader, writer, n, to_client):
    while n > 0:
        data = await reader.read(min(n, PIECE))
        if not data:
            raise ConnectionError("early end of body")
        send(writer, data, to_client)
        n -= len(data)
        await writer.drain()

async def copy_body(reader, writer, headers, to_client, eof_delimited):
    """Relays one message body; returns (body bytes, whether the connection must close)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            send(writer, line, to_client)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    line = await reader.readuntil(b"\r\n")
                    send(writer, line, to_client)
                    if line == b"\r\n":
                        await writer.drain()
                        return total, False
            await copy_exact(reader, writer, size, to_client)
            send(writer, await reader.readexactly(2), to_client)
            total += size
    if "content-length" in headers:
        n = int(headers["content-length"])
        await copy_exact(reader, writer, n, to_client)
        return n, False
    if not eof_delimited:
        return 0, False
    total = 0
    while True:
        data = await reader.read(PIECE)
        if not data:
            return total, True
        send(writer, data, to_client)
        total += len(data)
        await writer.drain()

async def handle(cr, cw):
    stats["connections"] += 1
    up = None
    try:
        while True:
            raw = await read_head(cr)
            if raw is None:
                break
            first, h = parse(raw)
            parts = first.split(" ")
            method, target = parts[0].upper(), (parts[1] if len(parts) > 1 else "/")
            if target.startswith("/__proxy_stats"):
                body = json.dumps(stats).encode()
                cw.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await cw.drain()
                continue
            stats["requests"] += 1
            key = method.lower()
            stats[key if key in stats and key not in ("connections", "requests") else "other"] += 1
            has_body = "content-length" in h and int(h["content-length"]) > 0 or "chunked" in h.get("transfer-encoding", "").lower()
            expect = "100-continue" in h.get("expect", "").lower() and has_body
            # Sends the head (and the body unless 100-continue is expected); a request without a
            # body whose upstream connection turns out to be closed is sent again on a new one.
            for attempt in range(2):
                if up is None:
                    up = await connect_upstream()
                ur, uw = up
                try:
                    send(uw, raw, False)
                    if has_body and not expect:
                        n, _ = await copy_body(cr, uw, h, False, False)
                        stats["request_body_bytes"] += n
                    await uw.drain()
                    rraw = await read_head(ur)
                except (ConnectionError, OSError):
                    rraw = None
                if rraw is not None:
                    break
                uw.close()
                up = None
                if has_body and not expect:
                    raise ConnectionError("upstream closed during a request with a body")
                stats["upstream_reconnects"] += 1
            else:
                raise ConnectionError("upstream closed twice")
            body_sent = not expect
            while True:
                rfirst, rh = parse(rraw)
                status = int(rfirst.split(" ")[1])
                send(cw, rraw, True)
                if 100 <= status < 200:
                    await cw.drain()
                    if status == 100 and not body_sent:
                        n, _ = await copy_body(cr, uw, h, False, False)
                        stats["request_body_bytes"] += n
                        await uw.drain()
                        body_sent = True
                    rraw = await read_head(ur)
                    if rraw is None:
                        raise ConnectionError("upstream closed after an interim response")
                    continue
                break
            if method == "HEAD" or status in (204, 304):
                n, close = 0, False
            else:
                n, close = await copy_body(ur, cw, rh, True, True)
            stats["response_body_bytes"] += n
            if method == "GET":
                stats["get_body_bytes"] += n
                if "/packs/" in target:
                    stats["pack_get_body_bytes"] += n
            await cw.drain()
            if REQUEST_LOG:
                print("%.3f %s %s %s -> %d %d" % (time.time(), method, target, h.get("range", "-"), status, n),
                      file=REQUEST_LOG)
            if close or not body_sent or h.get("connection", "").lower() == "close":
                break
            if rh.get("connection", "").lower() == "close":
                up[1].close()
                up = None
    except (ConnectionError, OSError, ValueError, IndexError,
            asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        log_error("closing a client connection: %r" % e)
    finally:
        if up is not None:
            up[1].close()
        cw.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=LIMIT)
    port = server.sockets[0].getsockname()[1]
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    async with server:
        await server.serve_forever()

asyncio.run(main())
EOF
# Starts a counting proxy in front of Garage (its request log in $work/$1.requests) and waits
# until a request through it reaches Garage; sets proxy_url and proxy_pid.
start_proxy() {
  local name=$1 i code
  rm -f "$work/$name.port"
  start_bg "$work/$name.log" python3 "$work/proxy.py" 127.0.0.1 "$s3_port" "$work/$name.port" "$work/$name.requests"
  proxy_pid=$bg_pid
  for ((i = 0; i < 200; i++)); do
    [ -s "$work/$name.port" ] && break
    kill -0 "$proxy_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$work/$name.port" ] || { echo "s3-bench: the proxy did not start: $(tail -n 3 "$work/$name.log")" >&2; return 1; }
  proxy_url=http://127.0.0.1:$(cat "$work/$name.port")
  # An unsigned request: Garage refuses it (403), which shows the path to it works.
  for ((i = 0; i < 100; i++)); do
    code=$(timeout 10 curl -s -o /dev/null -w '%{http_code}' "$proxy_url/$bucket/probe" || true)
    [ -n "$code" ] && [ "$code" != 000 ] && [ "$code" -lt 500 ] && return 0
    sleep 0.1
  done
  echo "s3-bench: no answer from Garage through the proxy (last status '$code'): $(tail -n 3 "$work/$name.log")" >&2
  return 1
}
# Prints how many requests in proxy request log $1 repeat an earlier one exactly (method, object,
# range), registry and catalog polls left out.
repeats() {
  awk '$3 !~ /(registry|catalog)\.json$/ { k = $2 " " $3 " " $4; if (seen[k]++) n++ } END { print n + 0 }' "$1" 2>/dev/null || echo '?'
}
# Prints counter $2 of the proxy at URL $1.
pstat() {
  timeout 10 curl -sf "$1/__proxy_stats" | python3 -c "import json, sys; print(json.load(sys.stdin)['$2'])"
}

# --- models and the source store -----------------------------------------------------------------
"$bin/modelfs-corpus" base "$work/base.gguf" --scale "$scale" >/dev/null
changed=$("$bin/modelfs-corpus" finetune "$work/finetune.gguf" --scale "$scale" |
  sed -E 's/.*, ([0-9]+) changed.*/\1/')
[[ $changed =~ ^[0-9]+$ ]] || die "cannot read the changed bytes from modelfs-corpus finetune"
size=$(stat -c %s "$work/base.gguf")
# A tiny model that creates the fleet's bucket stores before their mounts start.
head -c 100000 /dev/urandom >"$work/seed.bin"
src=$work/src
"$mfs" --store "$src" init >/dev/null
"$mfs" --store "$src" add base "$work/base.gguf" >/dev/null
"$mfs" --store "$src" add finetune "$work/finetune.gguf" >/dev/null
"$mfs" --store "$src" add seed "$work/seed.bin" >/dev/null
# Time limit of one pull, read or fetch of the whole model: generous (>= 5 MB/s) but bounded.
tmo=$((120 + size / 5000000))

site=s3://$bucket/site
t=$(timed "$work/publish-site.log" timeout "$tmo" "$mfs" --store "$src" pack "$site" --models base --jobs "$jobs") ||
  die "publishing the base into $site failed"
pack_bytes=$(s3_bytes site/packs)
[ "$pack_bytes" -gt 0 ] || die "no pack objects under $site/packs after publishing"
note "publishing the base into an empty prefix: $(grep -m 1 '^published' "$work/publish-site.log" || echo 'no published line') in $(calc "$t" %.1f) s ($(calc "$pack_bytes / $t / 1e6" %.0f) MB/s of pack bytes); pack objects $(calc "$pack_bytes / 1e6" %.2f) MB, the prefix $(calc "$(s3_bytes site) / 1e6" %.2f) MB in all"

# --- rows ----------------------------------------------------------------------------------------
# Row 1: each run fetches the pack objects with s3cmd (then syncs them), and pulls the base into a
# fresh store; page cache dropped before each.
row1() {
  local i t d n
  for ((i = 1; i <= runs; i++)); do
    rm -rf "$work/dl"
    mkdir "$work/dl"
    drop_caches
    t=$(timed "$work/s3cmd-get.log" s3c "$tmo" get --recursive --no-progress "$site/packs/" "$work/dl/")
    t=$(calc "$t + $(timed "$work/sync.log" timeout "$tmo" find "$work/dl" -type f -exec sync -- {} +)")
    echo "$t" >>"$res/s3cmd.s"
    n=$(find "$work/dl" -type f -name '*.pack' -exec cat {} + | wc -c)
    [ "$n" = "$pack_bytes" ] || { echo "s3cmd fetched $n bytes, not $pack_bytes" >&2; return 1; }
    rm -rf "$work/dl"

    d=$work/pull
    rm -rf "$d"
    "$mfs" --store "$d" init >/dev/null
    drop_caches
    t=$(timed "$work/pull$i.log" timeout "$tmo" "$mfs" --store "$d" pull base --from "$site" --jobs "$jobs")
    echo "$t" >>"$res/pull.s"
    n=$(sed -nE 's/^pulled .* ([0-9]+) requests\).*/\1/p' "$work/pull$i.log" | head -n 1)
    [ -n "$n" ] || { echo "no 'N requests' in the pull's output: $(cat "$work/pull$i.log")" >&2; return 1; }
    echo "$n" >>"$res/pull.req"
    if [ "$i" -eq 1 ]; then
      note "pull from the bucket, first run: $(grep -m 1 '^need ' "$work/pull$i.log" || echo 'no need line'); $(grep -m 1 '^pulled ' "$work/pull$i.log" || echo 'no pulled line'); pulled model identical to the original: $(same_as "$d" base "$work/base.gguf")"
    fi
    rm -rf "$d"
  done
  local ts tp rq
  ts=$(median "$res/s3cmd.s")
  tp=$(median "$res/pull.s")
  rq=$(median "$res/pull.req")
  emit 1 "$(calc "$pack_bytes / $tp / 1e6" %.0f)" "$(calc "$pack_bytes / $ts / 1e6" %.0f)" \
    "$(calc "$ts / $tp" %.2f)x" "$(met "$ts / $tp >= 0.70")"
  emit 1b "$(calc "$rq / ($pack_bytes / 1e9)" %.1f)" "$rq" "" "$(met "$rq / ($pack_bytes / 1e9) <= 100")"
  note "row 1 runs (s): s3cmd get + sync $(paste -sd ' ' "$res/s3cmd.s"); pull $(paste -sd ' ' "$res/pull.s"); requests the pull reported: $(paste -sd ' ' "$res/pull.req")"

  # Every request of one more pull (not timed), counted by a proxy in front of Garage.
  start_proxy proxy-pull
  d=$work/pull-proxied
  "$mfs" --store "$d" init >/dev/null
  if timeout "$tmo" env AWS_ENDPOINT_URL="$proxy_url" "$mfs" --store "$d" pull base --from "$site" \
    --jobs "$jobs" >"$work/pull-proxied.log" 2>&1; then
    note "one pull through the counting proxy: $(pstat "$proxy_url" requests) HTTP requests in all ($(pstat "$proxy_url" get) GET, $(pstat "$proxy_url" head) HEAD) — $(calc "$(pstat "$proxy_url" requests) / ($pack_bytes / 1e9)" %.1f) per GB of pack bytes — for $(calc "$(pstat "$proxy_url" get_body_bytes) / 1e6" %.2f) MB of response bodies ($(calc "$(pstat "$proxy_url" get_body_bytes) / $pack_bytes" %.4f)x the pack bytes); the pull itself reported $(sed -nE 's/^pulled .* ([0-9]+) requests\).*/\1/p' "$work/pull-proxied.log") requests; $(repeats "$work/proxy-pull.requests") of the requests repeated an earlier one exactly (same object and range)"
  else
    note "the pull through the counting proxy failed: $(tail -n 2 "$work/pull-proxied.log" | paste -sd ' ')"
  fi
  kill "$proxy_pid" 2>/dev/null || true
  rm -rf "$d"
}

# Row 2: lazy mount of an empty store whose only source is the bucket; a fresh store and mount per
# run. The mount logs (at info level) the requests and bytes it read from each network source.
row2() {
  local i d mnt f t mpid same=yes
  [ -f "$res/pull.s" ] || { echo "row 2 needs row 1's pull time" >&2; return 1; }
  for ((i = 1; i <= runs; i++)); do
    d=$work/lazy$i
    mnt=$work/mnt$i
    mkdir -p "$mnt"
    "$mfs" --store "$d" init >/dev/null
    echo "$mnt" >>"$work/mounts"
    timed "$work/mount$i.log" env MODELFS_LOG=info timeout 60 "$mfs" --store "$d" mount "$mnt" --daemon \
      --source "$site" --log "$work/mount$i.daemon.log" >/dev/null
    mpid=$(mount_pid "$mnt")
    f=$mnt/base.gguf
    [ -f "$f" ] || { echo "no $f in the mount: $(ls "$mnt")" >&2; return 1; }
    drop_caches
    t=$(timed "$work/dd$i.log" timeout "$tmo" dd if="$f" of=/dev/null bs=1M)
    echo "$t" >>"$res/mount.s"
    timeout "$tmo" cmp -s "$f" "$work/base.gguf" || same=no
    timeout 60 "$mfs" --store "$d" umount "$mnt" >/dev/null
    wait_gone "$mpid" 120 >/dev/null
    if [ "$i" -eq 1 ]; then
      note "lazy mount, first run: $(traffic "$work/mount$i.daemon.log")"
    fi
    rm -rf "$d"
  done
  local tm tp
  tm=$(median "$res/mount.s")
  tp=$(median "$res/pull.s")
  emit 2 "$(calc "$size / $tm / 1e6" %.0f)" "$(calc "$size / $tp / 1e6" %.0f)" \
    "$(calc "$tp / $tm" %.2f)x" "$(met "$tp / $tm >= 0.60")"
  emit 2b "$same" "" "" "$([ "$same" = yes ] && echo yes || echo no)"
  note "row 2 runs (s): $(paste -sd ' ' "$res/mount.s")"
}
# "SOURCE: N requests, X MB" for each network source a mount's log $1 reports.
traffic() {
  local out
  out=$(plain_log "$1" | grep 'read from a network source' |
    sed -nE 's/.*source=([^ ]+) requests=([0-9]+) bytes=([0-9]+).*/\1 \2 \3/p' |
    awk '{ printf "%s%s: %d requests, %.2f MB", (NR > 1 ? "; " : ""), $1, $2, $3 / 1e6
           if ($3 >= 1e6) printf " (%.1f requests per GB)", $2 / ($3 / 1e9) }')
  echo "${out:-no traffic line in the mount log}"
}

# Row 3: the fine-tune published into a prefix that already holds the base (published there first,
# not measured), through a counting proxy; a fresh prefix per run.
row3() {
  local i p before after sent up
  start_proxy proxy-ft
  local purl=$proxy_url ppid=$proxy_pid
  for ((i = 1; i <= runs; i++)); do
    p=ft$i
    timeout "$tmo" "$mfs" --store "$src" pack "s3://$bucket/$p" --models base --jobs "$jobs" >"$work/ft$i-base.log" 2>&1 ||
      { echo "publishing the base into s3://$bucket/$p failed: $(tail -n 2 "$work/ft$i-base.log")" >&2; return 1; }
    before=$(s3_bytes "$p")
    up=$(pstat "$purl" request_body_bytes)
    timed "$work/ft$i.log" timeout "$tmo" env AWS_ENDPOINT_URL="$purl" "$mfs" --store "$src" \
      pack "s3://$bucket/$p" --models finetune --jobs "$jobs" >/dev/null
    up=$(($(pstat "$purl" request_body_bytes) - up))
    after=$(s3_bytes "$p")
    sent=$(sed -nE 's/^published .* sent ([0-9.,]+) ([kMGT]?B) in .*/\1 \2/p' "$work/ft$i.log" | head -n 1)
    [ -n "$sent" ] || { echo "no 'sent X' in: $(cat "$work/ft$i.log")" >&2; return 1; }
    # shellcheck disable=SC2086
    to_bytes $sent >>"$res/ft.sent"
    echo "$up" >>"$res/ft.up"
    echo $((after - before)) >>"$res/ft.growth"
    if [ "$i" -eq 1 ]; then
      note "fine-tune publish, first run: $(grep -m 1 '^published' "$work/ft$i.log"); the fine-tune pulled back from that prefix into an empty store is identical to the original: $(d=$work/ft-check; "$mfs" --store "$d" init >/dev/null; timeout "$tmo" "$mfs" --store "$d" pull finetune --from "s3://$bucket/$p" --jobs "$jobs" >/dev/null 2>&1 && same_as "$d" finetune "$work/finetune.gguf" || echo 'no (the pull failed)'; rm -rf "$d")"
    fi
  done
  kill "$ppid" 2>/dev/null || true
  local bound u s g
  bound=$(calc "1.02 * $changed + 1048576" %.0f)
  u=$(median "$res/ft.up")
  s=$(median "$res/ft.sent")
  g=$(median "$res/ft.growth")
  emit 3 "$(calc "$u / 1e6" %.2f)" "$(calc "$changed / 1e6" %.2f)" "$(calc "$u / $changed" %.3f)x" "$(met "$u <= $bound")"
  emit 3b "$(calc "$s / 1e6" %.2f)" "$(calc "$changed / 1e6" %.2f)" "$(calc "$s / $changed" %.3f)x" "$(met "$s <= $bound")"
  emit 3c "$(calc "$g / 1e6" %.2f)" "$(calc "$changed / 1e6" %.2f)" "$(calc "$g / $changed" %.3f)x" "$(met "$g <= $bound")"
  note "row 3 runs (bytes): request bodies $(paste -sd ' ' "$res/ft.up"); printed sent $(paste -sd ' ' "$res/ft.sent"); prefix growth $(paste -sd ' ' "$res/ft.growth"); modelfs diff says base -> finetune transfers $("$mfs" --store "$src" diff --json base finetune | python3 -c 'import json, sys; d = json.load(sys.stdin); print("%.2f MB (%.2f MB stored)" % (d["transfer_bytes"] / 1e6, d["transfer_stored_bytes"] / 1e6))' || echo '?')"
}

# Row 4: one fleet run. $1 = peers (each mount lists the other nodes' serves, then the bucket),
# alone (each mount lists only the bucket), or staggered (as peers, but node 1 reads the model
# first, alone, and the other nodes read it at once $stagger s after node 1 finished, time for
# node 1's mount to seal what it filled and for the others to see it); $2 = run number. Appends
# the bucket's bytes over the model's pack bytes to $res/fleet-$1.x.
stagger=15
fleet() {
  local mode=$1 r=$2 p k j i d mnt t0 t1 before model_packs srcs appear ok
  p=fleet-$mode-$r
  local -a purl ppid spid surl mnts ddpid nb0 mpid
  timeout "$tmo" "$mfs" --store "$src" pack "s3://$bucket/$p" --models seed >"$work/$p-seed.log" 2>&1 ||
    { echo "creating s3://$bucket/$p failed: $(tail -n 2 "$work/$p-seed.log")" >&2; return 1; }
  for ((k = 1; k <= nodes; k++)); do
    d=$work/$p-n$k
    "$mfs" --store "$d" init >/dev/null
    start_proxy "$p-proxy$k"
    purl[k]=$proxy_url
    ppid[k]=$proxy_pid
    start_bg "$work/$p-serve$k.log" "$mfs" --store "$d" serve --listen 127.0.0.1:0 --no-mdns
    spid[k]=$bg_pid
    surl[k]=$(wait_url "$work/$p-serve$k.log" "$bg_pid")
  done
  for ((k = 1; k <= nodes; k++)); do
    d=$work/$p-n$k
    mnt=$work/$p-mnt$k
    mnts[k]=$mnt
    mkdir -p "$mnt"
    srcs=()
    if [ "$mode" != alone ]; then
      for ((j = 1; j <= nodes; j++)); do [ "$j" -eq "$k" ] || srcs+=(--source "${surl[j]}"); done
    fi
    srcs+=(--source "s3://$bucket/$p")
    echo "$mnt" >>"$work/mounts"
    env AWS_ENDPOINT_URL="${purl[k]}" MODELFS_LOG=info timeout 60 "$mfs" --store "$d" mount "$mnt" \
      --daemon --fill "${srcs[@]}" --log "$work/$p-mount$k.log" >"$work/$p-mount$k.out" 2>&1 ||
      { echo "mount of node $k failed: $(tail -n 3 "$work/$p-mount$k.out")" >&2; return 1; }
    mpid[k]=$(mount_pid "$mnt")
  done
  before=$(s3_bytes "$p/packs")
  t0=$(now)
  timeout "$tmo" "$mfs" --store "$src" pack "s3://$bucket/$p" --models base --jobs "$jobs" >"$work/$p-publish.log" 2>&1 ||
    { echo "publishing into s3://$bucket/$p failed: $(tail -n 2 "$work/$p-publish.log")" >&2; return 1; }
  t1=$(now)
  model_packs=$(($(s3_bytes "$p/packs") - before))
  # Waits (at most 90 s after the publish ended) for the model to show in every mount.
  for ((i = 0; i < 900; i++)); do
    ok=yes
    for ((k = 1; k <= nodes; k++)); do [ -e "${mnts[k]}/base.gguf" ] || { ok=no; break; }; done
    [ "$ok" = yes ] && break
    sleep 0.1
  done
  [ "$ok" = yes ] || { echo "the model published into s3://$bucket/$p did not appear in every mount within 90 s" >&2; return 1; }
  appear=$(calc "$(now) - $t1" %.1f)
  # Bytes the bucket sent before the reads (registries, catalogs, polls) are left out.
  local b0=0 b1=0 q0=0 q1=0 rc=0
  for ((k = 1; k <= nodes; k++)); do
    nb0[k]=$(pstat "${purl[k]}" get_body_bytes)
    b0=$((b0 + nb0[k]))
    q0=$((q0 + $(pstat "${purl[k]}" requests)))
  done
  drop_caches
  local first=1 how="$nodes concurrent reads took"
  t0=$(now)
  if [ "$mode" = staggered ]; then
    timeout $((2 * tmo)) dd if="${mnts[1]}/base.gguf" of=/dev/null bs=1M >"$work/$p-dd1.log" 2>&1 || rc=$?
    how="node 1 read alone in $(calc "$(now) - $t0" %.1f) s, then (after ${stagger} s) $((nodes - 1)) concurrent reads took"
    sleep "$stagger"
    t0=$(now)
    first=2
  fi
  for ((k = first; k <= nodes; k++)); do
    timeout $((2 * tmo)) dd if="${mnts[k]}/base.gguf" of=/dev/null bs=1M >"$work/$p-dd$k.log" 2>&1 &
    ddpid[k]=$!
  done
  for ((k = first; k <= nodes; k++)); do wait "${ddpid[k]}" || rc=$?; done
  t1=$(now)
  for ((k = 1; k <= nodes; k++)); do
    b1=$((b1 + $(pstat "${purl[k]}" get_body_bytes)))
    q1=$((q1 + $(pstat "${purl[k]}" requests)))
  done
  [ "$rc" -eq 0 ] || { echo "a read through a fleet mount failed (status $rc): $(cat "$work/$p"-dd*.log | grep -v records | head -n 4)" >&2; return 1; }
  local same=yes per="" checks="" umounts="" gone="" ts
  for ((k = 1; k <= nodes; k++)); do
    ts=$(now)
    timeout "$tmo" cmp -s "${mnts[k]}/base.gguf" "$work/base.gguf" || same=no
    checks+="${checks:+ }$(calc "$(now) - $ts" %.1f)"
    per+="${per:+, }node $k $(calc "($(pstat "${purl[k]}" get_body_bytes) - ${nb0[k]}) / 1e6" %.1f) MB"
  done
  for ((k = 1; k <= nodes; k++)); do
    ts=$(now)
    timeout 60 "$mfs" --store "$work/$p-n$k" umount "${mnts[k]}" >"$work/$p-umount$k.log" 2>&1 ||
      { echo "s3-bench: umount of ${mnts[k]} failed: $(cat "$work/$p-umount$k.log")" >&2; umount -l "${mnts[k]}" || true; }
    umounts+="${umounts:+ }$(calc "$(now) - $ts" %.1f)"
  done
  # The mount processes seal what they filled as they exit.
  for ((k = 1; k <= nodes; k++)); do gone+="${gone:+ }$(wait_gone "${mpid[k]}" 120)"; done
  calc "($b1 - $b0) / $model_packs" %.3f >>"$res/fleet-$mode.x"
  echo "$same" >>"$res/fleet-$mode.same"
  {
    echo "fleet ($mode) run $r: model shown in all $nodes mounts $appear s after its publish ended; $how $(calc "$t1 - $t0" %.1f) s; the bucket sent $(calc "($b1 - $b0) / 1e6" %.1f) MB of bodies in $((q1 - q0)) requests for a model of $(calc "$model_packs / 1e6" %.1f) MB of packs ($(calc "($b1 - $b0) / $model_packs" %.2f)x; by node, reads and checks: $per); reads identical to the original: $same; cmp of each node's file took $checks s, umount $umounts s, then the mount processes exited within $gone s"
    for ((k = 1; k <= nodes; k++)); do
      echo "    node $k (serve ${surl[k]}): $(traffic "$work/$p-mount$k.log"); $(repeats "$work/$p-proxy$k.requests") of its requests to the bucket repeated an earlier one exactly"
    done
  } >>"$work/fleet-detail"
  for ((k = 1; k <= nodes; k++)); do kill "${ppid[k]}" "${spid[k]}" 2>/dev/null || true; done
  for ((k = 1; k <= nodes; k++)); do rm -rf "$work/$p-n$k"; done
}
row4() {
  local r mode
  for ((r = 1; r <= runs; r++)); do
    for mode in peers alone staggered; do fleet "$mode" "$r"; done
  done
  local xp xa xs bad
  xp=$(median "$res/fleet-peers.x")
  xa=$(median "$res/fleet-alone.x")
  xs=$(median "$res/fleet-staggered.x")
  bad=$(cat "$res"/fleet-*.same | grep -c no || true)
  emit 4 "$(calc "$xp" %.2f)x" "$(calc "$xa" %.2f)x" "$(calc "$xp / $xa" %.2f)" "measured"
  emit 4c "$(calc "$xs" %.2f)x" "$(calc "$xa" %.2f)x" "$(calc "$xs / $xa" %.2f)" "measured"
  emit 4b "$([ "$bad" = 0 ] && echo yes || echo no)" "" "" "$([ "$bad" = 0 ] && echo yes || echo no)"
  note "row 4 runs (bucket bytes / model pack bytes): with peers $(paste -sd ' ' "$res/fleet-peers.x"); bucket only $(paste -sd ' ' "$res/fleet-alone.x"); staggered $(paste -sd ' ' "$res/fleet-staggered.x")"
}

# Runs one row in a subshell with errexit; a failing row is reported and the others go on.
run_row() {
  local rc
  echo "s3-bench: $1" >&2
  set +e
  (
    set -e
    "$1"
  )
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || echo "s3-bench: $1 failed (status $rc)" >&2
}

for r in ${S3_BENCH_ROWS:-1 2 3 4}; do run_row "row$r"; done

# --- report --------------------------------------------------------------------------------------
echo "# modelfs object-store benchmark"
echo
echo "$started_at; $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), work dir on $(df -PT "$work" | awk 'NR == 2 { print $2 }')"
echo "$("$mfs" --version); $garage_version (single node, replication 1, lmdb, no compression); $(s3cmd --version); $(python3 --version)"
echo "scale $scale: base $(calc "$size / 1e6" %.1f) MB ($(calc "$pack_bytes / 1e6" %.1f) MB of pack objects in the bucket), fine-tune changes $(calc "$changed / 1e6" %.2f) MB of tensors; --jobs $jobs; median of $runs runs; everything on loopback (no network namespaces)"
echo
echo "| metric | modelfs | reference | ratio | target | met |"
echo "|---|---:|---:|---:|---|---|"
row() { # ROW METRIC TARGET
  local v="failed" r="" x="" m="no"
  [ -f "$res/$1" ] && IFS='|' read -r v r x m <"$res/$1"
  echo "| $2 | $v | $r | $x | $3 | $m |"
}
row 1 "1. pull base from the bucket, MB/s of pack bytes (ref: s3cmd get of the pack objects + sync)" "≥ 0.70× s3cmd"
row 1b "1. pull base from the bucket: requests per GB of pack bytes (ref: requests the pull reported)" "≤ 100 per GB"
row 2 "2. lazy mount, bucket as the only source, cold dd, MB/s of model bytes (ref: row 1 pull, model bytes/s)" "≥ 0.60× pull"
row 2b "2. lazy mount: mounted file identical to the original (cmp)" "yes"
row 3 "3. publish fine-tune, base in the bucket: MB of request bodies sent (ref: changed tensor MB)" "≤ 1.02× changed + 1 MiB"
row 3b "3. the same: MB the pack command printed as sent (ref: changed tensor MB)" "≤ 1.02× changed + 1 MiB"
row 3c "3. the same: growth of the prefix in MB (ref: changed tensor MB)" "≤ 1.02× changed + 1 MiB"
row 4 "4. fleet of $nodes, --fill, peers first then the bucket, concurrent reads: bucket bytes / model pack bytes (ref: the same, mounts listing only the bucket)" "say the measured multiple"
row 4c "4. the same fleet with peers, node 1 reading first and the other $((nodes - 1)) at once ${stagger} s after it finished (ref: bucket only, as above)" "say the measured multiple"
row 4b "4. fleet: every node of every run read a byte-identical model (cmp)" "yes"
echo
echo "Page cache dropped before every timed run of rows 1 and 2 and before the fleet's reads (Garage"
echo "reads its blocks cold, from a virtual disk the host caches). Bucket bytes in rows 3 and 4 are"
echo "counted by HTTP proxies in front of Garage (bodies only, headers excluded)."
if [ -f "$work/notes" ]; then
  echo
  cat "$work/notes"
fi
if [ -f "$work/fleet-detail" ]; then
  echo
  echo "Fleet runs (per node: what its mount logged having read from each network source):"
  echo
  sed 's/^/- /; s/^-     /    - /' "$work/fleet-detail"
fi
