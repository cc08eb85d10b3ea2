#!/usr/bin/env bash
# Stock, unmodified OpenTelemetry exporters from the registries sending to the real collector over
# OTLP/HTTP and OTLP/gRPC, configured only by the standard OTEL_* variables
# (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME): Python
# opentelemetry-exporter-otlp-proto-http and -proto-grpc (the collector's --otlp-grpc-listen),
# JS @opentelemetry/exporter-trace-otlp-proto and -http (JSON), Rust opentelemetry-otlp
# (http-proto). Each sends the same two-span trace (tests/otlp/); tests/otlp/check.py then reads it
# back through the query API — spans, attributes with their types, event, statuses, parent link —
# and checks that the secret in an attribute is nowhere in the database files.
#
# Installs what it needs: the Python packages pinned in tests/otlp/requirements.txt into
# .venvs/otlp (git-ignored), the npm packages of tests/otlp/node/package-lock.json (npm ci), and
# builds tests/otlp/rust (its own lockfile) into the cargo target directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venvs/otlp"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n--- %s\n' "$*"; }

step "collector and the Rust exporter (debug builds)"
cargo build -q --locked -p tracex-collector
cargo build -q --locked --manifest-path tests/otlp/rust/Cargo.toml --target-dir "$TARGET"
COLLECTOR="$TARGET/debug/tracex-collector"

step "Python exporter (.venvs/otlp)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/otlp/requirements.txt

step "JS exporters (npm ci in tests/otlp/node)"
(cd tests/otlp/node && npm ci --no-audit --no-fund --silent)

RUN="$(mktemp -d)"
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$RUN"
}
trap cleanup EXIT

step "collector on a free port"
DATA="$RUN/data"
INGEST="$("$COLLECTOR" --data-dir "$DATA" apikey create --project otlp --scope ingest 2>/dev/null)"
READ="$("$COLLECTOR" --data-dir "$DATA" apikey create --project otlp --scope read 2>/dev/null)"
"$COLLECTOR" --data-dir "$DATA" serve --listen 127.0.0.1:0 --otlp-grpc-listen 127.0.0.1:0 >"$RUN/stdout" 2>"$RUN/log" &
PID=$!
URL=""
for _ in $(seq 1 200); do
    URL="$(sed -n 's/^tracex-collector listening on //p' "$RUN/stdout")"
    [ -n "$URL" ] && curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
[ -n "$URL" ] || { cat "$RUN/log" >&2; echo "the collector did not start" >&2; exit 1; }
GRPC="$(sed -n 's/^tracex-collector OTLP\/gRPC listening on //p' "$RUN/stdout")"
[ -n "$GRPC" ] || { cat "$RUN/log" >&2; echo "no OTLP/gRPC listener" >&2; exit 1; }

# Only the standard variables configure the exporters; nothing inherited may change them.
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(OTEL_[A-Z_]*\)=.*/\1/p')
export OTEL_EXPORTER_OTLP_ENDPOINT="$URL"
export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$INGEST"

exporter() {
    local service="$1"
    shift
    step "$service: $*"
    OTEL_SERVICE_NAME="$service" "$@"
    "$PY" tests/otlp/check.py "$URL" "$READ" "$service" "$DATA" || { tail -n 30 "$RUN/log" >&2; exit 1; }
}

started=$SECONDS
exporter otlp-python-proto "$VENV/bin/python" tests/otlp/emit.py
# The gRPC exporter: the listener's http:// endpoint (plain text, as the scheme says).
OTEL_EXPORTER_OTLP_ENDPOINT="$GRPC" exporter otlp-python-grpc "$VENV/bin/python" tests/otlp/emit.py grpc
exporter otlp-js-proto node tests/otlp/node/emit.mjs proto
exporter otlp-js-json node tests/otlp/node/emit.mjs json
exporter otlp-rust-proto "$TARGET/debug/tracex-otlp-rust-exporter"
step "five exporters checked in $((SECONDS - started)) s"
