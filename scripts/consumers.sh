#!/usr/bin/env bash
# The consumer-app tests (tests/consumers/): packs the npm package (dist/) with `npm pack`, installs the
# tarball into the smallest apps a user writes (a plain page, Vite, webpack 5; their own lockfiles), and
# runs each in headless Chromium with a bare SamClient.create() (tests/consumers/consumers.spec.ts).
# Needs dist/ (npm run build:lib, after scripts/build-wasm.sh; scripts/web.sh --build-only builds both)
# and the reference kit ($SAM_REFERENCE_DIR or ../shared/reference beside the clone).
# Usage: scripts/consumers.sh [--build-lib] [playwright test arguments, e.g. -g "webpack"]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--build-lib" ]; then npm run --silent build:lib; shift; fi
if [ ! -f dist/package.json ]; then
  echo "dist/ is missing: build the wasm module and the package first (scripts/web.sh --build-only, or --build-lib here)" >&2
  exit 1
fi
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
start=$(date +%s)

echo "== npm pack ./dist"
pack=tests/consumers/.pack
rm -rf "$pack" && mkdir -p "$pack"
tarball=$(npm pack ./dist --pack-destination "$pack" --silent | tail -n 1)
echo "$pack/$tarball: $(stat -c %s "$pack/$tarball") bytes"

for app in plain vite webpack; do
  dir=tests/consumers/$app
  echo "== $dir: npm ci, then the tarball"
  (cd "$dir" && npm ci --no-audit --no-fund --silent && npm install --no-save --no-audit --no-fund --silent "../.pack/$tarball")
done
# One app source for all three (what a user writes): see tests/consumers/app.js.
for target in plain/src/main.js vite/src/main.js webpack/src/index.js; do
  mkdir -p "tests/consumers/$(dirname "$target")"
  cp tests/consumers/app.js "tests/consumers/$target"
done

rc=0
rm -rf tests/consumers/artifacts
npx playwright test -c tests/consumers/playwright.config.ts "$@" || rc=$?
echo "consumers: $( [ $rc = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - start )) s"
exit $rc
