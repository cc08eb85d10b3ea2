#!/usr/bin/env bash
# Every test, on a fresh machine: installs what it needs, then runs the Rust tests (unit, property,
# vectors, concurrency, HTTP, the collector end to end), clippy, rustdoc's link checks, the JS/Python
# linters (Biome, ruff), proves the core builds for wasm32-unknown-unknown, and runs each language
# package's tests against the real collector (the WASM package and the dashboard also in headless
# Chromium), and stock OpenTelemetry exporters against its OTLP/HTTP endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required by scripts/run.sh only" >&2; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot run gains nothing from incremental state (5 GB of target/debug on a clean run).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Free disk, printed first: a build that runs out of it fails in the linker with little to say why.
df -h . | sed 's/^/disk: /'

step() { printf '\n=== %s\n' "$*"; }

step "cargo test (workspace)"
cargo test --workspace --locked

step "PostgreSQL store: unit, conformance and end-to-end tests on a throwaway server"
# The PostgreSQL tests are #[ignore]d in the plain run (they need a server); with-postgres.sh
# starts one. The filter selects exactly them (names contain "postgres"; the store's timing test
# is skipped). A run that selects no test fails: the tests must really have run.
pg_log="$(mktemp)"
WITH_POSTGRES_REPLICA=1 scripts/with-postgres.sh cargo test -p tracex-collector --locked --lib --test e2e_postgres --test otlp_http --test otlp_grpc --test otlp_export --test fleet_postgres --test live --test stats_api --test retention_ingest -- \
    --ignored --test-threads=2 postgres --skip ingest_throughput 2>&1 | tee "$pg_log"
pg_ran="$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$pg_log" | awk '{s += $1} END {print s + 0}')"
rm -f "$pg_log"
[ "$pg_ran" -ge 10 ] || { echo "the PostgreSQL tests did not run ($pg_ran passed)" >&2; exit 1; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p tracex-core --no-default-features --locked -- -D warnings

step "cargo doc (deny warnings: broken or private intra-doc links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked -q

step "JS/TS and Python: format and lint (Biome, ruff)"
scripts/lint.sh

step "wire-format vectors are current"
cargo run -q --locked -p tracex-core --example gen_vectors >/dev/null
git diff --exit-code -- tests/vectors/ || { echo "tests/vectors changed: the wire format drifted" >&2; exit 1; }

step "core builds for wasm32-unknown-unknown"
scripts/build-core-wasm.sh

step "Node package: napi addon, npm tarball installed into a fresh project, tests against the collector"
scripts/test-node.sh

step "WASM package: build (size budget), Node + headless Chromium against the collector, wire vectors"
scripts/test-wasm.sh

step "Dashboard: build (size budget), headless Chromium against the collector holding the Rust demo's spans"
scripts/test-dashboard.sh

step "Main job: ./scripts/run.sh prints one signed-in dashboard URL; Ctrl-C ends it and all it started"
scripts/test-run.sh

step "Python binding: wheel in a fresh venv, pytest against the real collector, stubtest"
scripts/test-python.sh

step "Stock OpenTelemetry exporters (Python, JS protobuf and JSON, Rust) over OTLP/HTTP against the collector"
scripts/test-otlp.sh

step "One trace across services: Node facilitator → Python settler → stock OpenTelemetry service, against the collector"
scripts/test-cross-service.sh

step "all tests passed"
