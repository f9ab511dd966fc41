#!/usr/bin/env bash
# Fuzzes sam-core's file readers with cargo-fuzz (libFuzzer): the targets of
# crates/sam-core/fuzz (checkpoint_pth, checkpoint_safetensors, npy, rle_string, rle_json, sa1b).
# Usage: scripts/fuzz.sh [target|all] [seconds per target]     (default: all, 60)
# Installs the pinned nightly and cargo-fuzz when missing. New corpus entries go to
# crates/sam-core/fuzz/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>;
# the committed seeds/<target> are read only. A crash's input belongs in
# fuzz/regressions/<target>/ (replayed on stable by `cargo test -p sam-core-fuzz`).
# Environment: FUZZ_SANITIZER (default none: the readers are safe Rust, and ASan halves the
# speed; `address` for unsafe code).
set -euo pipefail
cd "$(dirname "$0")/../crates/sam-core"

TOOLCHAIN="$(cat ../../scripts/nightly-toolchain)"
TARGET="${1:-all}"
SECONDS_PER_TARGET="${2:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/sam-fuzz-target}"

rustup toolchain list | grep -q "^$TOOLCHAIN" || rustup toolchain install "$TOOLCHAIN" --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

dict_of() {
  case "$1" in
    checkpoint_pth) echo fuzz/dicts/pth.dict ;;
    checkpoint_safetensors) echo fuzz/dicts/safetensors.dict ;;
    npy) echo fuzz/dicts/npy.dict ;;
    *) echo fuzz/dicts/json.dict ;;
  esac
}

if [ "$TARGET" = all ]; then
  TARGETS=$(cargo +"$TOOLCHAIN" fuzz list)
else
  TARGETS="$TARGET"
fi
for t in $TARGETS; do
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  RUST_BACKTRACE=1 cargo +"$TOOLCHAIN" fuzz run -s "$SANITIZER" -a --features libfuzzer "$t" \
    "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -dict="$(dict_of "$t")" -rss_limit_mb=4096 -print_final_stats=1
done
