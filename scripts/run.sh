#!/usr/bin/env bash
# The main job: builds the dashboard and the collector (with the dashboard embedded) and the demo,
# starts the collector with its embedded SQLite store, fills the last hour with payment traffic
# (explicit span times, no waiting), then keeps a demo facilitator sending real, sealed spans.
# Prints one URL that opens the dashboard signed in. Ctrl-C stops everything it started.
#
#   ./scripts/run.sh              # collector on 127.0.0.1:3002, data in ./tracex-data
#   TRACEX_LISTEN=127.0.0.1:4000 ./scripts/run.sh
#   TRACEX_RUN_PROFILE=dev ./scripts/run.sh   # debug builds (what scripts/test-run.sh checks it with)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

LISTEN="${TRACEX_LISTEN:-127.0.0.1:3002}"
DATA_DIR="${TRACEX_DATA_DIR:-./tracex-data}"
export TRACEX_DATA_DIR="$DATA_DIR"
FEATURES=()
if command -v node >/dev/null; then
  scripts/build-dashboard.sh >/dev/null
  FEATURES=(--features tracex-collector/dashboard)
else
  echo "run.sh: node not found: the collector is built without its dashboard (install Node.js 20+)" >&2
fi
PROFILE="${TRACEX_RUN_PROFILE:-release}"
cargo build --profile "$PROFILE" --locked -p tracex-collector -p tracex-example-rust "${FEATURES[@]}"
# Cargo names the dev profile's directory `debug`.
BIN="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

mkdir -p "$DATA_DIR"
KEYS="$DATA_DIR/demo-keys.env"
if [ ! -f "$KEYS" ]; then
  INGEST=$("$BIN/tracex-collector" apikey create --project demo --scope ingest)
  READ=$("$BIN/tracex-collector" apikey create --project demo --scope read)
  (umask 077; printf 'INGEST_KEY=%s\nREAD_KEY=%s\n' "$INGEST" "$READ" > "$KEYS")
fi
# shellcheck disable=SC1090
. "$KEYS"
FINGERPRINT=$("$BIN/tracex-collector" keys show | sed -n 's/^fingerprint: //p')

# Ctrl-C must end the script and everything it started, at any point: the INT/TERM trap exits (a
# trap that returned would let the loop below start the next demo against a stopped collector, for
# ever), and the EXIT trap stops the demo and the collector and waits for them.
COLLECTOR=""
DEMO=""
cleanup() {
  if [ -n "$DEMO" ]; then kill -TERM "$DEMO" 2>/dev/null || true; fi
  if [ -n "$COLLECTOR" ]; then kill -TERM "$COLLECTOR" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN/tracex-collector" serve --listen "$LISTEN" > "$DATA_DIR/collector.log" 2>&1 &
COLLECTOR=$!
ready=""
for _ in $(seq 100); do
  if curl -sf "http://$LISTEN/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$COLLECTOR" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || { echo "run.sh: the collector did not start; see $DATA_DIR/collector.log" >&2; tail -5 "$DATA_DIR/collector.log" >&2; exit 1; }

export TRACEX_ENDPOINT="http://$LISTEN" TRACEX_API_KEY="$INGEST_KEY" TRACEX_COLLECTOR_FINGERPRINT="$FINGERPRINT"
# An hour of history for the charts, sent in a few seconds (each span carries its own times).
"$BIN/tracex-demo" --requests 3000 --spread-s 3600 >/dev/null &
DEMO=$!
wait "$DEMO" || true

cat <<MSG

  tracex dashboard (signed in with the demo's read key; key fingerprint $FINGERPRINT):

    http://$LISTEN/#key=$READ_KEY

  The demo facilitator keeps sending sealed verify/settle traffic; Ctrl-C stops everything.
  Collector log: $DATA_DIR/collector.log

  The audit trail (docs/audit.md): every batch is a leaf of a signed, tamper-evident log.
    curl -s -H 'Authorization: Bearer $READ_KEY' http://$LISTEN/api/v1/audit/checkpoint
    curl -s -H 'Authorization: Bearer $READ_KEY' http://$LISTEN/api/v1/audit/gaps
    $BIN/tracex-collector --data-dir $DATA_DIR audit verify

MSG
while true; do
  "$BIN/tracex-demo" --requests 50 --interval-ms 100 >/dev/null &
  DEMO=$!
  wait "$DEMO" || true
done
