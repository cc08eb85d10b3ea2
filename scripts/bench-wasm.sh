#!/usr/bin/env bash
# ns/span of the WASM package in Node beside the native addon, in one run (docs/benchmarks.md).
# Builds both packages (the WASM one with scripts/build-wasm.sh, the addon with napi-rs), installs the
# packed WASM package next to the bench, builds the collector, and runs bindings-wasm/bench/spans.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${TRACEX_SKIP_WASM_BUILD:-}" = 1 ] || scripts/build-wasm.sh
(cd bindings-node && { [ -d node_modules ] || npm install --no-audit --no-fund --loglevel=error; } && npm run -s build)
TMP="$(mktemp -d /tmp/tracex-wasm-pack.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
(cd bindings-wasm/pkg && npm pack --silent --pack-destination "$TMP" >/dev/null)
(cd bindings-wasm && npm install --no-save --no-audit --no-fund --loglevel=error "$TMP"/tracex-wasm-*.tgz)
cargo build -q --locked --release -p tracex-collector
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
export TRACEX_COLLECTOR_BIN="${TRACEX_COLLECTOR_BIN:-$TARGET/release/tracex-collector}"
node bindings-wasm/bench/spans.mjs
