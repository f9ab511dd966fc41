#!/usr/bin/env bash
# The model parity tests of sam-core (MobileSAM and the ViT test model against the reference
# kit) built for WebAssembly (wasm32-wasip1: the CPU backend on one thread with WebAssembly
# SIMD, the code a page runs on its CPU fallback) and run under Node's WASI, i.e. V8.
# The browser tests (scripts/test-wasm.sh) hold only the small test model; this runs MobileSAM
# and its CPU kernels (modeling/cpu.rs) in WebAssembly too, and one small AMG case; the kernels and
# MobileSAM also in the relaxed-SIMD build.
# The kit may be of any seed: SAM_REFERENCE_TAGS (see crates/sam-core/tests/common/mod.rs)
# passes through to the tests.
# Usage: scripts/test-wasi.sh [extra cargo test args]   (scripts/setup.sh installs the target)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
root=$(pwd)
export SAM_REFERENCE_DIR="${SAM_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}"
# The program reads the reference kit and the repository's fixtures: both preopened.
export SAM_WASI_DIRS="$SAM_REFERENCE_DIR:$root"
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $root/scripts/wasi-run.mjs"
# The unit tests of the CPU kernels first (edge cases of the WebAssembly matrix kernel:
# partial tiles, transposed and strided operands), then the models.
cargo test --target wasm32-wasip1 -p sam-core --no-default-features --features flex --lib \
  "$@" -- modeling::cpu::
cargo test --target wasm32-wasip1 -p sam-core --no-default-features --features flex \
  --test model_mobile_sam --test model_tiny "$@"
# The relaxed-SIMD build (feature `relaxed-simd`: the matrix kernel's fused multiply-adds, the
# build the page runs where the browser has relaxed SIMD): the kernels and MobileSAM again. Node 20
# has relaxed SIMD behind a flag; later Node versions have it on.
relaxed_flag=""
if node --experimental-wasm-relaxed-simd -e 0 2>/dev/null; then relaxed_flag=--experimental-wasm-relaxed-simd; fi
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $relaxed_flag $root/scripts/wasi-run.mjs" \
  cargo test --target wasm32-wasip1 -p sam-core --no-default-features --features flex,relaxed-simd \
  --lib --test model_mobile_sam "$@" -- modeling::cpu:: mobile_sam
# One small automatic-mask-generator run against the reference (the whole-image crop of the
# manifest's `nofilter` case: one embedding, 64 points).
exec cargo test --target wasm32-wasip1 -p sam-core --no-default-features --features flex \
  --test amg_reference "$@" -- --exact whole_image_crop_matches_official_amg
