#!/usr/bin/env bash
# Installs what is missing, builds the wasm module, the npm package (dist/) and the demo (web/dist),
# and serves the demo on http://localhost:8080 (Ctrl+C stops it).
# Usage: scripts/web.sh [--build-only] [--port N] [--skip-wasm]
#   --build-only  build, do not serve (scripts/e2e.sh uses it)
#   --skip-wasm   reuse crates/sam-wasm/pkg and pkg-threads as they are (no cargo build)
# Env: CARGO_TARGET_DIR (default ~/.cache/sam-target, shared with scripts/test.sh);
#   SAM_WASM_THREADS=0 skips the threaded CPU module (pkg-threads; the demo then runs on one thread).
# The server sends COOP/COEP (vite.config.ts): the page is cross-origin isolated, so the CPU
# backend runs the threaded module on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."

serve=1
port=8080
build_wasm=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) serve=0 ;;
    --skip-wasm) build_wasm=0 ;;
    --port) port="$2"; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# --- Node.js (vite 7 needs >= 20.19) ---
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js >= 20.19 and npm are needed (https://nodejs.org)" >&2
  exit 1
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  echo "Node.js $(node --version) is too old: vite needs >= 20.19" >&2
  exit 1
}

# --- system packages, Rust targets and tools, npm packages (skips what is there) ---
bash scripts/setup.sh

# --- the wasm module: crates/sam-wasm/pkg ---
if [ "$build_wasm" = 1 ]; then
  bash scripts/build-wasm.sh
  if [ "${SAM_WASM_THREADS:-1}" = 1 ]; then bash scripts/build-wasm.sh --threads; fi
fi
if [ ! -f crates/sam-wasm/pkg/sam_wasm.js ]; then
  echo "crates/sam-wasm/pkg/sam_wasm.js is missing (the wasm build did not run or failed)" >&2
  exit 1
fi

echo "== npm run build (dist/: the npm package; web/dist: the demo)"
npm run --silent build

if [ "$serve" = 1 ]; then
  echo "== serving the demo on http://localhost:$port/  (Ctrl+C to stop)"
  exec npx vite preview --port "$port" --strictPort --host localhost
fi
