#!/usr/bin/env bash
# Builds the browser module: crates/sam-wasm -> crates/sam-wasm/pkg (sam_wasm.js, .d.ts,
# sam_wasm_bg.wasm), release, with wasm SIMD (.cargo/config.toml), then shrinks it with npm's
# binaryen wasm-opt when installed (Debian's binaryen produces a broken module; wasm-pack's
# own wasm-opt download is disabled in Cargo.toml).
# Usage: scripts/build-wasm.sh [--dev]   (or SAM_WASM_PROFILE=dev: the test script's end-to-end
# run uses the dev profile, which shares its compiled dependencies with `wasm-pack test`)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
profile=--release
if [ "${1:-}" = "--dev" ] || [ "${SAM_WASM_PROFILE:-}" = dev ]; then profile=--dev; fi
wasm-pack build crates/sam-wasm "$profile" --target web --mode no-install --out-dir pkg --no-pack
wasm=crates/sam-wasm/pkg/sam_wasm_bg.wasm
if [ "$profile" = --release ] && [ -x node_modules/.bin/wasm-opt ]; then
  before=$(stat -c %s "$wasm")
  node_modules/.bin/wasm-opt -O2 \
    --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
  echo "wasm-opt: $before -> $(stat -c %s "$wasm") bytes"
fi
echo "$wasm: $(stat -c %s "$wasm") bytes, gzip $(gzip -9c "$wasm" | wc -c) bytes"
