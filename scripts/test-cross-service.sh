#!/usr/bin/env bash
# One trace across three services, with real processes (examples/otel-ledger/README.md): the real
# collector; `node` running examples/node-facilitator with the packed `tracex` npm package installed
# into a fresh project; `python` running examples/python-settler in serve mode with the built wheel;
# and examples/otel-ledger with the stock OpenTelemetry Python SDK and OTLP/HTTP exporter from PyPI,
# configured only by the standard OTEL_EXPORTER_OTLP_* variables. One payment goes caller →
# facilitator → settler → ledger, `traceparent` carried over HTTP at each hop; the services stop
# (each flushes), and tests/cross-service/check.py reads the trace back through the query API: one
# trace, spans of all three services, each server span the child of its caller's client span.
#
# Reuses what the other scripts build instead of building again (scripts/test.sh runs it after
# them): bindings-node/dist/ of scripts/test-node.sh, the release wheel installed in
# .venvs/test-cp39 by scripts/test-python.sh, and .venvs/otlp of scripts/test-otlp.sh (the same
# pins). Whatever is missing it builds or installs itself, so it also runs alone on a fresh
# machine; after changing a binding, run that binding's script first (or remove its artefact).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PY="${PYTHON:-python3}"
VENVS="$ROOT/.venvs"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
command -v node >/dev/null || { echo "node (>= 18) is required" >&2; exit 1; }

step() { printf '\n--- %s\n' "$*"; }

RUN="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

step "collector (debug build; nothing to do after the other scripts)"
cargo build -q --locked -p tracex-collector
COLLECTOR="$TARGET/debug/tracex-collector"

step "tracex npm package (bindings-node/dist/ of scripts/test-node.sh)"
if ! ls bindings-node/dist/*.node bindings-node/dist/index.mjs >/dev/null 2>&1; then
    (cd bindings-node && npm ci --no-audit --no-fund --loglevel=error && npm run -s build)  # ci: the lockfile stays as it is
fi

step "tracex wheel (.venvs/test-cp39 of scripts/test-python.sh)"
SETTLER_VENV="$VENVS/test-cp39"
if ! "$SETTLER_VENV/bin/python" -c 'import tracex' 2>/dev/null; then
    [ -x "$VENVS/build/bin/maturin" ] || { "$PY" -m venv "$VENVS/build" && "$VENVS/build/bin/pip" install -q "maturin>=1.9,<2"; }
    (cd bindings-python && "$VENVS/build/bin/maturin" build --release --locked -q -o "$RUN/wheels")
    rm -rf "$SETTLER_VENV"
    "$PY" -m venv "$SETTLER_VENV"
    "$SETTLER_VENV/bin/pip" install -q --disable-pip-version-check "$(ls "$RUN"/wheels/tracex-*-cp39-abi3-*.whl)"
fi

step "stock OpenTelemetry SDK + OTLP/HTTP exporter (.venvs/otlp, examples/otel-ledger/requirements.txt)"
LEDGER_VENV="$VENVS/otlp"
[ -x "$LEDGER_VENV/bin/python" ] || "$PY" -m venv "$LEDGER_VENV"
"$LEDGER_VENV/bin/pip" install -q --disable-pip-version-check -r examples/otel-ledger/requirements.txt

step "npm pack, install into a fresh project with the facilitator"
tarball="$(cd bindings-node && npm pack --silent --pack-destination "$RUN")"
mkdir "$RUN/project"
(cd "$RUN/project" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$RUN/$tarball")
cp examples/node-facilitator/server.js "$RUN/project/server.mjs"

# Starts "$@" in the background with its output in $RUN/NAME.{out,err}; waits for its
# "listening on URL" line and sets URL. Each service is given port 0 (a free one).
start() {
    local name="$1"
    shift
    "$@" >"$RUN/$name.out" 2>"$RUN/$name.err" &
    PIDS+=("$!")
    eval "${name}_PID=$!"
    URL=""
    for _ in $(seq 1 300); do
        URL="$(sed -n 's/^.*listening on \(http:[^ ]*\)$/\1/p' "$RUN/$name.out" | head -n 1)"
        [ -n "$URL" ] && return 0
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    cat "$RUN/$name.err" >&2
    echo "$name did not start" >&2
    exit 1
}

# Stops a service with SIGTERM (each one flushes its spans first) and checks it exited cleanly.
stop() {
    local name="$1" pid
    pid="$(eval echo "\$${name}_PID")"
    kill -TERM "$pid"
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || { cat "$RUN/$name.err" >&2; echo "$name exited with $rc on SIGTERM" >&2; exit 1; }
}

# Only the variables set below configure the collector, the tracex SDKs and the OpenTelemetry SDK
# (the standard OTEL_* ones): nothing inherited may change them.
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(\(OTEL\|TRACEX\)_[A-Z_]*\)=.*/\1/p')

step "collector on a free port"
DATA="$RUN/data"
INGEST="$("$COLLECTOR" --data-dir "$DATA" apikey create --project xsvc --scope ingest 2>/dev/null)"
READ="$("$COLLECTOR" --data-dir "$DATA" apikey create --project xsvc --scope read 2>/dev/null)"
FINGERPRINT="$("$COLLECTOR" --data-dir "$DATA" keys show | sed -n 's/^fingerprint: //p')"
start collector "$COLLECTOR" --data-dir "$DATA" serve --listen 127.0.0.1:0
COLLECTOR_URL="$URL"
for _ in $(seq 1 100); do curl -fsS "$COLLECTOR_URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$COLLECTOR_URL/readyz" >/dev/null || { cat "$RUN/collector.err" >&2; echo "the collector is not ready" >&2; exit 1; }

step "the three services"
start ledger env PORT=0 OTEL_SERVICE_NAME=otel-ledger OTEL_EXPORTER_OTLP_ENDPOINT="$COLLECTOR_URL" \
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$INGEST" \
    "$LEDGER_VENV/bin/python" examples/otel-ledger/ledger.py
LEDGER_URL="$URL"
export TRACEX_ENDPOINT="$COLLECTOR_URL" TRACEX_API_KEY="$INGEST" TRACEX_COLLECTOR_FINGERPRINT="$FINGERPRINT"
start settler env PORT=0 LEDGER_URL="$LEDGER_URL" "$SETTLER_VENV/bin/python" examples/python-settler/settler.py serve
SETTLER_URL="$URL"
start facilitator env -C "$RUN/project" PORT=0 SETTLER_URL="$SETTLER_URL" node server.mjs
FACILITATOR_URL="$URL"
echo "facilitator $FACILITATOR_URL → settler $SETTLER_URL → ledger $LEDGER_URL → collector $COLLECTOR_URL"

step "one payment through the three services"
sent="$("$PY" tests/cross-service/check.py request "$FACILITATOR_URL")" \
    || { tail -n 20 "$RUN"/*.err >&2; echo "the request failed" >&2; exit 1; }
read -r TRACE_ID CALLER_SPAN_ID <<<"$sent"
stop facilitator
stop settler
stop ledger
cat "$RUN/facilitator.out" "$RUN/settler.out" | grep -i deliver || true

step "the trace, read back from the collector's query API"
"$PY" tests/cross-service/check.py trace "$COLLECTOR_URL" "$READ" "$TRACE_ID" "$CALLER_SPAN_ID" \
    || { tail -n 30 "$RUN"/*.err >&2; exit 1; }
