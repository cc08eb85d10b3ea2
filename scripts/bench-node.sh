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
# The bench loads the built package from dist/ and takes only startCollector from the test fixture
# (test/collector.mjs). The fixture checks and loads more at import: a project dir, any will do, and
# the test-only entry points (testing-dist/, an addon built with feature `testing` by the test
# scripts): the release addon stands in for those rather than a second full build nothing here uses.
TRACEX_NODE_PROJECT="$PWD" TRACEX_NODE_TESTING="$PWD/dist/native.cjs" \
    TRACEX_COLLECTOR_BIN="$target/release/tracex-collector" node bench/spans.mjs
