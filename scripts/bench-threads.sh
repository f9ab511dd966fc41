#!/usr/bin/env bash
# Benchmarks the CPU backend in headless Chromium on 1 and N threads: the single-threaded module
# (crates/sam-wasm/pkg) and the threaded one (crates/sam-wasm/pkg-threads) on a cross-origin
# isolated page (tests/e2e/threads.bench.ts). Not a test: never run by CI.
# Build both modules first (release for published figures):
#   bash scripts/build-wasm.sh && bash scripts/build-wasm.sh --threads
# Env: see tests/e2e/threads.bench.ts (SAM_BENCH_THREADS, SAM_BENCH_CHECKPOINT, SAM_BENCH_AMG, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
npx playwright test -c tests/e2e/bench.config.ts tests/e2e/threads.bench.ts "$@"
