#!/usr/bin/env bash
# Benchmarks the large official architectures in headless Chromium on the CPU backend (issue 15):
# writes each model's random-weight checkpoint in the official .pth format (sam_core::fixture, seed 0)
# under $SAM_BIG_DIR (default ~/.cache/sam-big; ViT-L 1.25 GB, ViT-H 2.56 GB), then runs
# tests/e2e/big.bench.ts: the npm package in a blank page loads the file as a File (read in slices),
# embeds the landscape test image and decodes clicks; load time, wasm memory after each step, embedding
# and click times go to tests/e2e/artifacts/bench-big-<model>.json. Not a test: never run by CI.
# ViT-H's embedding on one wasm thread takes minutes.
# Usage: scripts/bench-big.sh [--build] [models...]   (default: vit_l vit_h)
#   --build  builds the module, the package and the demo first (scripts/web.sh --build-only; set
#            SAM_WASM_PROFILE=dev for the quick dev-profile module); otherwise dist/ must be built.
# Env: SAM_BIG_DIR, SAM_BENCH_THREADS (default 1), CARGO_TARGET_DIR (default ~/.cache/sam-target),
#      SAM_BIG_DEMO=1 (also each model in the demo itself, picked in its model picker; =only: just that).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ "${1:-}" = "--build" ]; then
  bash scripts/web.sh --build-only
  shift
fi
if [ ! -f dist/index.js ] || [ ! -f web/dist/index.html ]; then
  echo "dist/ or web/dist/ is not built: run scripts/web.sh --build-only (or pass --build)" >&2
  exit 1
fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(vit_l vit_h)

dir="${SAM_BIG_DIR:-$HOME/.cache/sam-big}"
mkdir -p "$dir"
cargo build --quiet -p sam-core --example write_checkpoint
for m in "${models[@]}"; do
  f="$dir/${m}_seed0.pth"
  if [ ! -s "$f" ]; then
    echo "== writing $f"
    "$CARGO_TARGET_DIR/debug/examples/write_checkpoint" "$m" 0 "$f" || { rm -f "$f"; exit 1; }
  fi
done
df -h "$dir" | tail -1

SAM_BIG_DIR="$dir" SAM_BIG_MODELS="$(IFS=,; echo "${models[*]}")" \
  npx playwright test -c tests/e2e/bench.config.ts tests/e2e/big.bench.ts
