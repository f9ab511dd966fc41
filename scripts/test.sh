#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what is missing
# (Mesa's Vulkan driver for the wgpu tests), then formatting, lints and the test suites.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Cargo's build cache lives outside the clone so CI rebuilds are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# wgpu's Vulkan loader complains on every start without a runtime dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/xdg-runtime-$(id -u)"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
fi

need_apt=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (CPU flex and wgpu on Vulkan)"
cargo test --workspace
