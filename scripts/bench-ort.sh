#!/usr/bin/env bash
# The peer benchmark: ONNX Runtime Web 1.31 (wasm backend) on the ONNX export of the same random-weight
# checkpoint, in headless Chromium, 1 and N threads (tests/e2e/ort.bench.ts); compare with
# scripts/bench-threads.sh. Installs onnxruntime-web into ~/.cache/sam-ort-bench (not a dependency of
# the repository) and exports the model with the bench venv (onnx installed there when missing).
# Not a test: never run by CI. Env: SAM_BENCH_MODEL=mobile_sam|vit_b, and those of ort.bench.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${SAM_ORT_DIR:-$HOME/.cache/sam-ort-bench}"
py="${SAM_BENCH_PYTHON:-$HOME/.cache/sam-bench-venv/bin/python}"
model="${SAM_BENCH_MODEL:-mobile_sam}"
mkdir -p "$dir"
[ -d "$dir/node_modules/onnxruntime-web" ] || npm install --prefix "$dir" --no-audit --no-fund --no-save onnxruntime-web@1.31
"$py" -c "import onnx" 2>/dev/null || "$py" -m pip install -q onnx
[ -f "$dir/models/${model}_decoder.onnx" ] || "$py" scripts/export_onnx.py --model "$model" "$dir/models"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
npx playwright test -c tests/e2e/bench.config.ts tests/e2e/ort.bench.ts "$@"
