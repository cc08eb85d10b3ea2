#!/usr/bin/env bash
# CPU time tracing costs a request in workerd, first request and steady state (docs/benchmarks.md).
# Not part of the tests: it takes about a minute and its figures depend on the machine.
# Builds the WASM package (skip with TRACEX_SKIP_WASM_BUILD=1), installs the packed package where
# the bench loads it, builds the collector (its own CPU is not measured, so a debug build does),
# and runs bindings-wasm/bench/edge.mjs. BENCH_SPANS (5), BENCH_FIRST_RUNS (7), BENCH_BLOCKS (5)
# and BENCH_BLOCK (200 requests) tune it; BENCH_V8_FLAGS passes V8 flags to workerd (diagnosis).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${TRACEX_SKIP_WASM_BUILD:-}" = 1 ] || scripts/build-wasm.sh
scripts/wasm-toolchain.sh >/dev/null   # workerd from npm (bindings-wasm/package.json)
TMP="$(mktemp -d /tmp/tracex-wasm-pack.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
(cd bindings-wasm/pkg && npm pack --silent --pack-destination "$TMP" >/dev/null)
(cd bindings-wasm && npm install --no-save --no-audit --no-fund --loglevel=error "$TMP"/tracex-wasm-*.tgz)
if [ -z "${TRACEX_COLLECTOR_BIN:-}" ]; then
  cargo build -q --locked -p tracex-collector
  TARGET="${CARGO_TARGET_DIR:-target}"
  case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
  cp "$TARGET/debug/tracex-collector" "$TMP/tracex-collector"
  export TRACEX_COLLECTOR_BIN="$TMP/tracex-collector"
fi
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
node bindings-wasm/bench/edge.mjs
