#!/usr/bin/env bash
# Builds the WASM package into bindings-wasm/pkg/ (git-ignored):
#   tracex-wasm for wasm32-unknown-unknown (Debian's rustc-web, -Zbuild-std, profile wasm-release:
#   opt-level z, LTO, one codegen unit, panic=abort) → wasm-bindgen --target web → wasm-opt -Oz →
#   the hand-written entry points and package.json from bindings-wasm/js/.
# Installs the toolchain first if needed (scripts/wasm-toolchain.sh). Prints the module's sizes.
# `--testing`: the same package with cargo feature `testing` (the vector helpers of
# bindings-wasm/src/testing.rs) into bindings-wasm/pkg-testing/, for the tests only; never published.
set -euo pipefail
FEATURES=()
PKG=bindings-wasm/pkg
if [ "${1:-}" = --testing ]; then FEATURES=(--features testing); PKG=bindings-wasm/pkg-testing; fi
cd "$(dirname "$0")/.."
eval "$(scripts/wasm-toolchain.sh | grep '^WASM_')"
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="wasm-ld-$WASM_LLVM_MAJOR"
# No file/line strings for panics (a panic aborts the module anyway): −16 KB optimized, −4 KB gzipped.
# And no panic machinery at all (`-Cpanic=immediate-abort`, std built with it): a panic traps at
# once, as it did after formatting a message nothing ever printed (there is no panic hook here):
# −25 KB optimized, −10 KB gzipped, which makes room for the receipt check under the budget.
# `--cfg tracex_wasm_speed`: the record decoder, which runs on the JS thread for every span, is
# compiled for speed inside this size-built module (`optimize(speed)`, core/src/records.rs).
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--cfg tracex_wasm_speed -Zlocation-detail=none -Zunstable-options -Cpanic=immediate-abort"
export CARGO_TARGET_DIR="${WASM_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/wasm}"
/usr/bin/cargo build -q --locked -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown \
  --profile wasm-release -p tracex-wasm "${FEATURES[@]}"
RAW="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/tracex_wasm.wasm"

rm -rf "$PKG"
mkdir -p "$PKG"
# The name section stays for wasm-opt's `--no-inline` patterns below; wasm-opt writes no names.
"$WASM_BINDGEN" --target web --out-dir "$PKG" --out-name tracex_wasm \
  --remove-producers-section "$RAW"
BINDGEN_BYTES=$(stat -c %s "$PKG/tracex_wasm_bg.wasm")
# The features rustc's wasm32 target enables by default (LLVM 22); wasm-opt must keep them.
# `--converge` repeats the passes until the module stops shrinking: ≈ 900 bytes gzipped (2026-12-06).
# `--no-inline`: functions a request rarely or never runs, which wasm-opt would otherwise inline
# into their one caller (it inlines every function called from one place). V8 compiles a WASM
# function whole on its first call, so inlined, the data-key wrap's bignum code and DEFLATE made
# the batch-sealing function 12 KB that an edge worker's first request compiled though it runs
# neither there (the host wraps keys; compression is off): docs/benchmarks.md.
# The patterns match nothing silently once a function is renamed: check that the names are there.
for name in 'Sealer>::rotate' 'sealer::deflate'; do
  grep -qaF -- "$name" "$PKG/tracex_wasm_bg.wasm" || { echo "build-wasm: no function *$name* to keep out of line" >&2; exit 1; }
done
"$WASM_OPT" --no-inline='*Sealer*rotate' --no-inline='*sealer*deflate' -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o "$PKG/tracex_wasm_bg.opt.wasm" "$PKG/tracex_wasm_bg.wasm"
mv "$PKG/tracex_wasm_bg.opt.wasm" "$PKG/tracex_wasm_bg.wasm"

# The user-facing API is the JS layer shared with the Node package (bindings-js/src), under shared/.
cp bindings-wasm/js/*.js bindings-wasm/js/*.d.ts bindings-wasm/js/README.md "$PKG/"
mkdir -p "$PKG/shared"
cp bindings-js/src/*.js bindings-js/src/*.d.ts "$PKG/shared/"
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
sed "s/\"version\": \"0.0.0\"/\"version\": \"$VERSION\"/" bindings-wasm/js/package.json > "$PKG/package.json"
sed -i "s/^export const SDK_VERSION = '0.0.0';.*/export const SDK_VERSION = '$VERSION';/" "$PKG/platform.js"
grep -q "SDK_VERSION = '$VERSION'" "$PKG/platform.js" || { echo "build-wasm: SDK version not set" >&2; exit 1; }

RAW_BYTES=$(stat -c %s "$RAW")
OPT_BYTES=$(stat -c %s "$PKG/tracex_wasm_bg.wasm")
GZ_BYTES=$(gzip -9 -c "$PKG/tracex_wasm_bg.wasm" | wc -c)
printf 'tracex_wasm.wasm: %s bytes from rustc, %s after wasm-bindgen (names kept for wasm-opt), %s after wasm-opt -Oz (%s gzipped)\n' \
  "$RAW_BYTES" "$BINDGEN_BYTES" "$OPT_BYTES" "$GZ_BYTES"
# The size budget of the issue: ≤ 400 KB optimized, ≤ 160 KB gzipped — for the published package;
# the test build carries the vector helpers on top and is never downloaded by anyone.
if [ "${#FEATURES[@]}" = 0 ]; then
  [ "$OPT_BYTES" -le 409600 ] || { echo "build-wasm: over the 400 KB budget" >&2; exit 1; }
  [ "$GZ_BYTES" -le 163840 ] || { echo "build-wasm: over the 160 KB gzipped budget" >&2; exit 1; }
fi
echo "package laid out in $PKG"
