#!/usr/bin/env bash
# Builds everything (wasm-pack, npm ci, the package and the demo) and runs the end-to-end tests in
# headless Chromium (/usr/bin/chromium, or $CHROMIUM_PATH). Screenshots and measurements go to
# tests/e2e/artifacts/. Reference kit: $SAM_REFERENCE_DIR or ../shared/reference beside the clone.
# Usage: scripts/e2e.sh [--skip-wasm] [playwright test arguments, e.g. -g "click"]
# Env: SAM_E2E_SKIP_WEBGPU=1 skips the WebGPU (SwiftShader, slow) runs; SAM_E2E_WEBGPU_AMG=1 adds "everything" on WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."

build_args=(--build-only)
if [ "${1:-}" = "--skip-wasm" ]; then build_args+=(--skip-wasm); shift; fi
bash scripts/web.sh "${build_args[@]}"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "== installing chromium (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
export CHROMIUM_PATH="$chromium"

mkdir -p tests/e2e/artifacts
rc=0
npx playwright test -c tests/e2e/playwright.config.ts "$@" || rc=$?
# One plain summary line for CI logs.
node -e '
const fs = require("fs");
try {
  const r = JSON.parse(fs.readFileSync("tests/e2e/artifacts/results.json", "utf8"));
  const s = r.stats || {};
  console.log(`e2e: ${s.expected || 0} passed, ${(s.unexpected || 0) + (s.flaky || 0)} failed, ${s.skipped || 0} skipped`);
} catch (e) { console.log("e2e: no results (" + e.message + ")"); }
'
exit $rc
