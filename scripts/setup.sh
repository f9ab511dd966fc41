#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine with a Rust toolchain
# (rustup) and Node.js/npm: Chromium + ChromeDriver + Mesa's Vulkan driver (apt), the wasm32
# target, the pinned nightly with rust-src (scripts/nightly-toolchain: the threaded wasm module and
# fuzzing), wasm-pack, the wasm-bindgen CLI matching Cargo.lock, and the npm packages.
# Idempotent: what is already there is skipped. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== apt: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  echo "== rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip1$'; then
  echo "== rustup: adding wasm32-wasip1 (sam-core's parity tests in WebAssembly, scripts/test-wasi.sh)"
  rustup target add wasm32-wasip1
fi

# The threaded wasm module (scripts/build-wasm.sh --threads) rebuilds the standard library with
# atomics: the pinned nightly and its sources.
NIGHTLY="$(cat scripts/nightly-toolchain)"
if ! rustup component list --installed --toolchain "$NIGHTLY" 2>/dev/null | grep -q '^rust-src'; then
  echo "== rustup: installing $NIGHTLY with rust-src"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src
fi

# The CLI must equal the wasm-bindgen crate in Cargo.lock.
WBG_VERSION="$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WBG_VERSION" ]; then
  echo "== cargo install wasm-bindgen-cli $WBG_VERSION"
  # Without --locked: the CLI's own lock file pins crates that no longer build.
  cargo install -q wasm-bindgen-cli --version "$WBG_VERSION" --force
fi
if ! command -v wasm-pack >/dev/null 2>&1; then
  echo "== cargo install wasm-pack"
  cargo install -q --locked wasm-pack
fi

# npm ci when node_modules is missing or older than the lock file.
if [ -f package-lock.json ] && { [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi
