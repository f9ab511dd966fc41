#!/usr/bin/env bash
# Real-GPU benchmark (issue 16; not a test, never run by CI): the official PyTorch SAM on CUDA
# (scripts/bench_torch.py --device cuda, which also makes the random checkpoints with the kit's
# make_reference.py) beside ours on native wgpu (sam-core's `bench --device wgpu` and the GPU work
# profile `gpu_profile --timing`), same checkpoints, 1024x768. One JSON line per run in $out.
# Usage: scripts/bench-gpu.sh [OUT_FILE] with BENCH=path/to/bench PROFILE=path/to/gpu_profile
# (default: cargo builds them, release) and python3 holding CUDA torch, segment_anything, mobile_sam.
# On a machine whose Vulkan loader is missing, install libvulkan1 (wgpu needs it) and, for NVIDIA,
# point VK_DRIVER_FILES at the driver's nvidia_icd.json.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/bench-gpu.jsonl}
cache=${SAM_BENCH_CACHE:-$HOME/.cache/sam-bench-gpu}
mkdir -p "$cache"
export SAM_REFERENCE_DIR="${SAM_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}" PYTHONUNBUFFERED=1
if [ -z "${BENCH:-}" ] || [ -z "${PROFILE:-}" ]; then
  cargo build --release -p sam-core --example bench --example gpu_profile >&2 || exit 1
  dir="${CARGO_TARGET_DIR:-target}/release/examples"
  BENCH=${BENCH:-$dir/bench} PROFILE=${PROFILE:-$dir/gpu_profile}
fi
run() {
  local name=$1 t=$2; shift 2
  echo "== $name" >&2
  local json
  json=$(timeout "$t" "$@" | tail -n1)

  [ -n "$json" ] && echo "{\"name\":\"$name\",\"result\":$json}" >> "$out"
}
for m in mobile_sam vit_b; do
  # The kit's mobile_sam file when present, else made like vit_b's (bench_torch.py prints its path).
  run "torch_$m" 300 python3 scripts/bench_torch.py --model "$m" --device cuda --runs 5 --clicks 20 --cache "$cache"
  ckpt=$(tail -n1 "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["checkpoint"])')
  run "ours_$m" 300 "$BENCH" --model "$m" --checkpoint "$ckpt" --device wgpu --runs 5 --clicks 20
  run "profile_$m" 300 "$PROFILE" --model "$m" --checkpoint "$ckpt" --timing
done
echo "results: $out" >&2
