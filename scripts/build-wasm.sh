#!/usr/bin/env bash
# Builds the browser module: crates/sam-wasm -> crates/sam-wasm/pkg (sam_wasm.js, .d.ts,
# sam_wasm_bg.wasm), release, with wasm SIMD (.cargo/config.toml), then shrinks it with npm's
# binaryen wasm-opt when installed (Debian's binaryen produces a broken module; wasm-pack's
# own wasm-opt download is disabled in Cargo.toml).
# Usage: scripts/build-wasm.sh [--dev] [--threads]   (or SAM_WASM_PROFILE=dev: the test script's
# end-to-end run uses the dev profile, which shares its compiled dependencies with `wasm-pack test`)
#
# --threads: the threaded module -> crates/sam-wasm/pkg-threads (feature `threads`: CPU backend
# on rayon's pool of Web Workers, for cross-origin isolated pages). It needs the pinned nightly
# (scripts/nightly-toolchain) with rust-src: atomics need the standard library rebuilt
# (-Z build-std). Its shared memory declares a maximum of 4 GiB (wasm32's limit; the memory
# grows on demand up to it). Its own target dir (other flags): $SAM_THREADS_TARGET_DIR.
#
# Each module is built twice: plain WebAssembly SIMD (sam_wasm_bg.wasm, every browser with WebGPU)
# and with relaxed SIMD's fused multiply-add in the CPU backend's matrix kernel (feature
# `relaxed-simd` -> sam_wasm_relaxed_bg.wasm beside it, same JS glue; ~10% faster embeddings and
# ~15% faster clicks on the CPU where the processor has FMA). The worker picks the relaxed one where
# the browser validates relaxed SIMD (Chrome/Edge 114+, Firefox 145+). pkg/sam_wasm_relaxed.js
# gives the bundlers its URL (null when it is not built). SAM_WASM_RELAXED=0 skips the variant.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=--release
threads=0
for arg in "$@"; do
  case "$arg" in
    --dev) profile=--dev ;;
    --threads) threads=1 ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [ "${SAM_WASM_PROFILE:-}" = dev ]; then profile=--dev; fi

relaxed="${SAM_WASM_RELAXED:-1}"

# $1: the module's directory, $2: the relaxed variant's (built there by the caller), then extra
# binaryen flags: the variant's .wasm moves beside the plain one, once its glue (JS, snippets) is
# checked to be the same.
adopt_relaxed() {
  local out=$1 tmp=$2
  shift 2
  # (Comments aside: wasm-bindgen's name a closure's shim by its index in the module.)
  if ! diff -r -I '^ *//' -x '*.wasm' -x '*.d.ts' -x .gitignore -x 'sam_wasm_relaxed.js' "$tmp" "$out"; then
    echo "the relaxed-SIMD build's JS glue differs from the plain build's ($tmp vs $out)" >&2
    exit 1
  fi
  mv "$tmp/sam_wasm_bg.wasm" "$out/sam_wasm_relaxed_bg.wasm"
  rm -rf "$tmp"
  shrink "$out/sam_wasm_relaxed_bg.wasm" --enable-relaxed-simd "$@"
}

shrink() { # $1: the .wasm; extra binaryen flags after it
  local wasm=$1; shift
  if [ "$profile" = --release ] && [ -x node_modules/.bin/wasm-opt ]; then
    local before
    before=$(stat -c %s "$wasm")
    node_modules/.bin/wasm-opt -O2 \
      --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue "$@" \
      "$wasm" -o "$wasm.opt"
    mv "$wasm.opt" "$wasm"
    echo "wasm-opt: $before -> $(stat -c %s "$wasm") bytes"
  fi
  echo "$wasm: $(stat -c %s "$wasm") bytes, gzip $(gzip -9c "$wasm" | wc -c) bytes"
}

if [ "$threads" = 1 ]; then
  toolchain=$(cat scripts/nightly-toolchain)
  export CARGO_TARGET_DIR="${SAM_THREADS_TARGET_DIR:-$HOME/.cache/sam-target-threads}"
  # RUSTFLAGS replaces .cargo/config.toml's flags: SIMD again, plus atomics and a shared memory.
  export RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--max-memory=4294967296"
  dir=debug
  cargo_profile=()
  if [ "$profile" = --release ]; then dir=release; cargo_profile=(--release); fi
  # Plain cargo + wasm-bindgen (wasm-pack insists on a prebuilt wasm32 standard library,
  # which -Z build-std replaces).
  # The shared, imported memory and the thread-local storage exports that wasm-bindgen's threads
  # need are linker arguments of the final crate only (cargo rustc: the dependencies keep their build).
  build_threads() { # $1: extra features, $2: the output directory
    cargo +"$toolchain" rustc -p sam-wasm --lib --target wasm32-unknown-unknown "${cargo_profile[@]}" \
      --no-default-features --features "threads$1" -Z build-std=panic_abort,std -- \
      -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls \
      -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
    wasm-bindgen --target web --out-dir "$2" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/sam_wasm.wasm"
  }
  out=crates/sam-wasm/pkg-threads
  build_threads "" "$out"
  shrink "$out/sam_wasm_bg.wasm" --enable-threads
  rm -f "$out/sam_wasm_relaxed_bg.wasm"
  if [ "$relaxed" = 1 ]; then
    build_threads ",relaxed-simd" "$CARGO_TARGET_DIR/pkg-threads-relaxed"
    adopt_relaxed "$out" "$CARGO_TARGET_DIR/pkg-threads-relaxed" --enable-threads
  fi
  exit 0
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sam-target}"
out=crates/sam-wasm/pkg
wasm-pack build crates/sam-wasm "$profile" --target web --mode no-install --out-dir pkg --no-pack
shrink "$out/sam_wasm_bg.wasm"
rm -f "$out/sam_wasm_relaxed_bg.wasm"
url=null
if [ "$relaxed" = 1 ]; then
  tmp="$CARGO_TARGET_DIR/pkg-relaxed"
  wasm-pack build crates/sam-wasm "$profile" --target web --mode no-install --out-dir "$tmp" --no-pack \
    -- --features relaxed-simd
  adopt_relaxed "$out" "$tmp"
  url='new URL("sam_wasm_relaxed_bg.wasm", import.meta.url)'
fi
# Written out literally, so that bundlers (esbuild, Vite, webpack) emit the .wasm it names.
cat > "$out/sam_wasm_relaxed.js" <<JS
// The relaxed-SIMD build of sam_wasm_bg.wasm (same JS glue), or null when it was not built
// (scripts/build-wasm.sh).
export const relaxedWasmUrl = $url;
JS
cat > "$out/sam_wasm_relaxed.d.ts" <<JS
/** The relaxed-SIMD build of sam_wasm_bg.wasm (same JS glue), or null when it was not built. */
export declare const relaxedWasmUrl: URL | null;
JS
