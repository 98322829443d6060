#!/usr/bin/env bash
# Makes sure a Garage binary exists (the S3-compatible object store the object-store tests run
# against) and prints its path on stdout, nothing else:
#   1. $MODELFS_GARAGE, if set and an executable file;
#   2. else $HOME/.cache/modelfs-garage/bin/garage, if built earlier;
#   3. else builds it there with `cargo install --locked garage` (takes a while; the compiler's
#      output goes to $HOME/.cache/modelfs-garage/build.log, not to the terminal).
# A build into the same root already under way (another caller of this script, or a cargo install
# started by hand) is waited for instead of starting a second one.
set -euo pipefail

if [ -n "${MODELFS_GARAGE:-}" ]; then
  if [ -f "$MODELFS_GARAGE" ] && [ -x "$MODELFS_GARAGE" ]; then
    echo "$MODELFS_GARAGE"
    exit 0
  fi
  echo "garage.sh: MODELFS_GARAGE=$MODELFS_GARAGE is not an executable file; looking elsewhere" >&2
fi

root="${HOME:?HOME is not set}/.cache/modelfs-garage"
binary="$root/bin/garage"
log="$root/build.log"
mkdir -p "$root"

# Whether a `cargo install … --root $root` runs now (started by anyone).
build_running() {
  pgrep -f -- "cargo install .*--root $root( |\$)" >/dev/null 2>&1
}

# One builder at a time among callers of this script.
exec 9>"$root/.build.lock"
flock 9

# A build started elsewhere: wait for it (at most 3 hours) rather than competing with it.
waited=0
while build_running; do
  if [ "$waited" = 0 ]; then
    echo "garage.sh: waiting for the Garage build already running into $root" >&2
  fi
  if [ "$waited" -ge 10800 ]; then
    echo "garage.sh: the Garage build into $root still runs after 3 hours; giving up" >&2
    exit 1
  fi
  sleep 10
  waited=$((waited + 10))
done

if [ -f "$binary" ] && [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "garage.sh: cargo is not installed, so Garage cannot be built; set MODELFS_GARAGE to a garage binary" >&2
  exit 1
fi
echo "garage.sh: building Garage into $root (log: $log); this takes a while" >&2
if ! cargo install --locked garage --root "$root" >"$log" 2>&1; then
  echo "garage.sh: building Garage failed; the end of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
if ! [ -x "$binary" ]; then
  echo "garage.sh: cargo install finished but $binary is missing (see $log)" >&2
  exit 1
fi
echo "$binary"
