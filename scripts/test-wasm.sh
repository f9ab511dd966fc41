#!/usr/bin/env bash
# The browser tests of crates/sam-wasm: `wasm-pack test` in headless Chromium, on WebGPU
# (SwiftShader, enabled by crates/sam-wasm/webdriver.json) and on the CPU fallback.
# Usage: scripts/test-wasm.sh [extra wasm-pack test args]   (scripts/setup.sh installs the tools)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
# The embedding on SwiftShader takes a while; the default is 20 s per test.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}"
cd crates/sam-wasm
# --nocapture: the parity figures of passing tests appear in the log too.
exec wasm-pack test --headless --chrome --chromedriver "$CHROMEDRIVER" --mode no-install . "$@" -- --nocapture
