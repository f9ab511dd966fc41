#!/usr/bin/env bash
# The peer benchmarks: ONNX Runtime Web 1.31 on the ONNX export of the same random-weight checkpoint, in
# headless Chromium. Installs onnxruntime-web into ~/.cache/sam-ort-bench (not a dependency of the
# repository) and exports the model with the bench venv (onnx installed there when missing).
# Not a test: never run by CI.
#   scripts/bench-ort.sh              ORT-web's wasm backend, 1 and N threads (tests/e2e/ort.bench.ts);
#                                     compare with scripts/bench-threads.sh. SAM_ORT_EP=webgpu: its webgpu EP.
#   scripts/bench-ort.sh webgpu       WebGPU side by side (tests/e2e/webgpu.bench.ts): ORT-web's webgpu EP and
#                                     our module (crates/sam-wasm/pkg, built first) with backend "webgpu", the
#                                     kit's mobile_sam checkpoint, cold and warm runs, outputs cross-checked.
#                                     Without a GPU the adapter is SwiftShader (a CPU emulation): minutes a run.
# Env: SAM_BENCH_MODEL=mobile_sam|vit_b (ort.bench.ts only), and those of the two specs.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=tests/e2e/ort.bench.ts
model="${SAM_BENCH_MODEL:-mobile_sam}"
if [ "${1:-}" = webgpu ]; then
  shift
  spec=tests/e2e/webgpu.bench.ts
  model=mobile_sam
  [ -f crates/sam-wasm/pkg/sam_wasm.js ] || { echo "build the module first: bash scripts/build-wasm.sh" >&2; exit 1; }
fi
dir="${SAM_ORT_DIR:-$HOME/.cache/sam-ort-bench}"
py="${SAM_BENCH_PYTHON:-$HOME/.cache/sam-bench-venv/bin/python}"
mkdir -p "$dir"
[ -d "$dir/node_modules/onnxruntime-web" ] || npm install --prefix "$dir" --no-audit --no-fund --no-save onnxruntime-web@1.31
"$py" -c "import onnx" 2>/dev/null || "$py" -m pip install -q onnx
[ -f "$dir/models/${model}_decoder.onnx" ] || "$py" scripts/export_onnx.py --model "$model" "$dir/models"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
npx playwright test -c tests/e2e/bench.config.ts "$spec" "$@"
