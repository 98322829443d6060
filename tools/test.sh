#!/usr/bin/env bash
# Runs the whole test suite: style checks (rustfmt, clippy with warnings as errors), unit and
# property tests, integration tests that mount FUSE for real (run as root, with /dev/fuse), and a
# short fuzzing run of every parser of untrusted store bytes (MODELFS_FUZZ_SECONDS per target,
# default 15; 0 skips it). One release build serves the binary, the tests and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
# The portable-store tests also write exFAT and FAT images and mount them through FUSE drivers;
# the shared-store test serves a store over sshfs from an sshd on loopback; the network tests run
# nginx on loopback and network namespaces joined by veth pairs (iproute2); the trust tests sign
# with a key held in SoftHSM2 through PKCS#11 (softhsm2).
tools/setup-deps.sh exfatprogs exfat-fuse dosfstools fusefat sshfs openssh-server nginx curl iproute2 softhsm2 prometheus
# The object-store tests run a single-node Garage on loopback; tools/garage.sh builds it once into
# ~/.cache/modelfs-garage (cargo install --locked garage) and prints its path.
MODELFS_GARAGE=$(tools/garage.sh)
export MODELFS_GARAGE
# The view tests drive the real Hugging Face libraries from PyPI against the mount (huggingface_hub,
# tokenizers, safetensors, numpy, transformers without torch): a virtualenv in
# ~/.cache/modelfs-venv, made once and reused; MODELFS_PYTHON names its python.
venv="$HOME/.cache/modelfs-venv"
if ! "$venv/bin/python" -c 'import huggingface_hub, tokenizers, safetensors.numpy, numpy, transformers' 2>/dev/null; then
  command -v python3 >/dev/null || tools/setup-deps.sh python3 python3-venv
  python3 -m venv "$venv" || { rm -rf "$venv"; tools/setup-deps.sh python3-venv; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check huggingface_hub tokenizers safetensors numpy transformers
fi
MODELFS_PYTHON="$venv/bin/python"
export MODELFS_PYTHON
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release --all-targets "$@"
seconds=${MODELFS_FUZZ_SECONDS:-15}
if [ "$seconds" != 0 ]; then
  tools/fuzz.sh "$seconds"
fi
