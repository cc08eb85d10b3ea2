#!/usr/bin/env bash
# Proves the core builds for wasm32-unknown-unknown (no threads, no http, host clock):
# Debian's rustc-web with -Zbuild-std, in its own target dir (the two compilers share nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/wasm-toolchain.sh --core | grep '^WASM_LLVM_MAJOR=')"
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="wasm-ld-$WASM_LLVM_MAJOR"
export CARGO_TARGET_DIR="${WASM_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/wasm}"
/usr/bin/cargo build -q -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown --release \
  -p tracex-core --no-default-features "$@"
ls -l "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/libtracex_core.rlib" | awk '{print "built", $9, $5, "bytes"}'
