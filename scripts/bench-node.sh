#!/usr/bin/env bash
# Node benchmark, one run, side by side: tracex (the release addon) vs OpenTelemetry JS
# (sdk-trace-base 2.x), hot path and end-to-end with a real loopback collector (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build -q --release --locked -p tracex-collector
cd bindings-node
npm install --no-audit --no-fund --loglevel=error
npm run -s build
# The bench loads the built package from dist/; the test fixture wants a project dir, any will do.
TRACEX_NODE_PROJECT="$PWD" TRACEX_COLLECTOR_BIN="$target/release/tracex-collector" node bench/spans.mjs
