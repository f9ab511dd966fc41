#!/usr/bin/env bash
# Side-by-side benchmark on this machine: the official PyTorch SAM on CPU
# (scripts/bench_torch.py) and ours (sam-core's `bench` example), same random checkpoint,
# same image size, same thread count. Prints both JSON objects and a table of ratios
# (PyTorch time / our time: above 1 means we are faster). Not part of the tests.
#
# Usage: scripts/bench.sh [--model mobile_sam|vit_b|vit_l|vit_h] [--device flex|wgpu]
#                         [--runs N] [--clicks N] [--threads N] [--malloc-tuned] [--wasm]
# --wasm times our WebAssembly instead (the bench example built for wasm32-wasip1: CPU
# backend, one thread, WebAssembly SIMD, as a page runs it) under Node's WASI (V8, Chrome's
# engine), against PyTorch on one thread.
# --binding (implies --wasm, for --model mobile_sam or tiny: the reference kit's file) times
# the page's own module instead of PyTorch, beside the same WASI run: scripts/bench-binding.mjs
# drives the wasm-bindgen binding from Node (Segmenter.create, setImage, first and later
# clicks, and the hover request) and prints the ratios binding / core. The module is built by
# scripts/build-wasm.sh (release + wasm-opt) unless --pkg DIR names one already built.
# --malloc-tuned runs both with glibc's malloc keeping freed memory (MALLOC_MMAP_THRESHOLD_,
# MALLOC_TRIM_THRESHOLD_): by default every large temporary is a fresh mmap, whose page faults
# and unmapping cost both implementations ~40% of an embedding on this 2-core machine.
# The first run installs CPU torch, segment-anything and mobilesam-mirror in a venv under
# ~/.cache/sam-bench-venv (~4 GB, PyPI's torch wheel brings CUDA libraries it does not use
# here) and, for vit_*, makes the random checkpoint with the reference kit's make_reference.py
# into ~/.cache/sam-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

model=mobile_sam device=flex runs=3 clicks=10 threads=$(nproc) wasm= binding= pkg=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --clicks) clicks=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --wasm) wasm=1; threads=1; shift ;;
    --binding) binding=1 wasm=1; threads=1; shift ;;
    --pkg) pkg=$2; shift 2 ;;
    --malloc-tuned)
      export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
      shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
export SAM_REFERENCE_DIR="${SAM_REFERENCE_DIR:-$(cd .. && pwd)/shared/reference}"
if [ -n "$binding" ]; then
  ckpt="$SAM_REFERENCE_DIR/${model}_seed0.pth"
  [ -f "$ckpt" ] || { echo "--binding needs --model mobile_sam or tiny ($ckpt)" >&2; exit 2; }
  if [ -z "$pkg" ]; then bash scripts/build-wasm.sh >&2; pkg=crates/sam-wasm/pkg; fi
  out=$(mktemp -d)
  echo "== sam-core ($model, WebAssembly under Node's WASI)" >&2
  rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
  cargo build --release --quiet --target wasm32-wasip1 -p sam-core --no-default-features \
    --features flex --example bench
  SAM_WASI_DIRS="$SAM_REFERENCE_DIR" node --no-warnings scripts/wasi-run.mjs \
    "$CARGO_TARGET_DIR/wasm32-wasip1/release/examples/bench.wasm" --model "$model" \
    --checkpoint "$ckpt" --runs "$runs" --clicks "$clicks" > "$out/core.json"
  cat "$out/core.json"
  echo "== the page's module ($pkg, CPU backend, from Node)" >&2
  exec node scripts/bench-binding.mjs --pkg "$pkg" --checkpoint "$ckpt" --runs "$runs" \
    --clicks "$clicks" --core "$out/core.json" --light
fi

venv="$HOME/.cache/sam-bench-venv"
cache="$HOME/.cache/sam-bench"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, segment_anything, mobile_sam, cv2" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch torchvision numpy pillow safetensors segment-anything \
    mobilesam-mirror timm pycocotools opencv-python-headless
fi

out=$(mktemp -d)
echo "== official PyTorch ($model, $threads threads)" >&2
"$venv/bin/python" scripts/bench_torch.py --model "$model" --threads "$threads" --runs "$runs" \
  --clicks "$clicks" --cache "$cache" > "$out/torch.json"
cat "$out/torch.json"
ckpt=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$out/torch.json")

if [ -n "$wasm" ]; then
  echo "== sam-core ($model, WebAssembly under Node's WASI)" >&2
  rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
  cargo build --release --quiet --target wasm32-wasip1 -p sam-core --no-default-features \
    --features flex --example bench
  SAM_WASI_DIRS="$(dirname "$ckpt"):$SAM_REFERENCE_DIR" node --no-warnings scripts/wasi-run.mjs \
    "$CARGO_TARGET_DIR/wasm32-wasip1/release/examples/bench.wasm" --model "$model" \
    --checkpoint "$ckpt" --runs "$runs" --clicks "$clicks" > "$out/ours.json"
  device="flex, WebAssembly (1 thread)"
else
  echo "== sam-core ($model on $device)" >&2
  cargo build --release --quiet -p sam-core --example bench
  # burn's CPU backend runs on rayon: the same thread count as torch.
  RAYON_NUM_THREADS="$threads" "$CARGO_TARGET_DIR/release/examples/bench" --model "$model" \
    --device "$device" --checkpoint "$ckpt" --runs "$runs" --clicks "$clicks" > "$out/ours.json"
fi
cat "$out/ours.json"

"$venv/bin/python" - "$out/torch.json" "$out/ours.json" "$device" <<'EOF'
import json, sys
t, o = (json.load(open(p)) for p in sys.argv[1:3])
print(f"\n{t['model']}, {t['threads']} threads, image {t['image'][0]}x{t['image'][1]}, ours on {sys.argv[3]}")
print(f"| step | official PyTorch | ours | ratio (PyTorch / ours) |")
print(f"| --- | --- | --- | --- |")
for key, name in [("load", "load"), ("set_image", "set_image (embedding)"),
                  ("click_full_res", "one click, 3 masks at full size")]:
    a, b = t[key]["median_ms"], o[key]["median_ms"]
    print(f"| {name} | {a:.1f} ms | {b:.1f} ms | {a / b:.2f}x |")
mem = "peak heap" if "WebAssembly" in sys.argv[3] else "peak RSS"
print(f"| peak memory (ours: {mem}) | {t['peak_rss_mib']:.0f} MiB | {o['peak_rss_mib']:.0f} MiB | |")
EOF
