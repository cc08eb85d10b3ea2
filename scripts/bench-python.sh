#!/usr/bin/env bash
# Python benchmark: tracex vs opentelemetry-sdk and ddtrace side by side in one run (see
# bindings-python/bench/bench_spans.py; the peers on the hot path only), plus tracex's end-to-end
# CPU cost per span against a real loopback collector (release build). The `==` lines are what
# scripts/bench.sh puts in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="${PYTHON:-python3}"
VENVS="$ROOT/.venvs"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

[ -x "$VENVS/build/bin/maturin" ] || { "$PY" -m venv "$VENVS/build" && "$VENVS/build/bin/pip" install -q "maturin>=1.9,<2"; }
cargo build -q --release --locked -p tracex-collector
WHEELS="$(mktemp -d)"; DATA="$(mktemp -d)"; OUT="$(mktemp)"
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$WHEELS" "$DATA" "$OUT"; }
trap cleanup EXIT
# The three wheels (bindings-python/Cargo.toml): this Python's own (`version`, e.g. cp311-cp311, what
# pip installs where it exists), cp310-abi3 and cp39-abi3.
ABIS="${ABIS:-version cp310 cp39}"
(cd bindings-python && "$VENVS/build/bin/maturin" build --release --locked -q -o "$WHEELS/cp39" \
    && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features --features abi3-py310 \
        -o "$WHEELS/cp310" \
    && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features -i "$PY" -o "$WHEELS/version")
wheel_name() { # abi → how the summary lines name the wheel: "cp311-cp311 wheel", "cp310-abi3 wheel"
    local w; w="$(basename "$(ls "$WHEELS/$1"/tracex-*.whl)")"
    w="${w#tracex-*-}"; echo "${w%%-manylinux*} wheel"
}
for abi in $ABIS; do
    rm -rf "$VENVS/bench-$abi"
    "$PY" -m venv "$VENVS/bench-$abi"
    "$VENVS/bench-$abi/bin/pip" install -q "$WHEELS/$abi"/tracex-*.whl "opentelemetry-sdk==${OTEL_VERSION:-1.45.*}" \
        "opentelemetry-exporter-otlp-proto-http==${OTEL_VERSION:-1.45.*}" \
        "ddtrace==${DDTRACE_VERSION:-4.16.*}"
done

BIN="$TARGET/release/tracex-collector"
API_KEY="$("$BIN" --data-dir "$DATA" apikey create --project bench --scope ingest 2>/dev/null)"
PEM="$("$BIN" --data-dir "$DATA" keys show | sed '/^fingerprint:/,$d')"
"$BIN" --data-dir "$DATA" serve --listen 127.0.0.1:0 >"$OUT" 2>/dev/null &
PID=$!
for _ in $(seq 100); do grep -q listening "$OUT" && break; sleep 0.1; done
URL="$(sed -n 's/^tracex-collector listening on //p' "$OUT")"
[ -n "$URL" ] || { echo "collector did not start" >&2; exit 1; }

cd /tmp
for abi in $ABIS; do
    printf '\n=== tracex %s\n' "$(wheel_name "$abi")"
    BENCH_WHEEL="$(wheel_name "$abi")" TRACEX_ENDPOINT="$URL" TRACEX_API_KEY="$API_KEY" TRACEX_COLLECTOR_PUBLIC_KEY="$PEM" \
        "$VENVS/bench-$abi/bin/python" "$ROOT/bindings-python/bench/bench_spans.py"
done
