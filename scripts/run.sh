#!/usr/bin/env bash
# The main job: builds the collector and the demo, starts the collector with its embedded SQLite
# store, and runs a demo facilitator that emits real, sealed spans to it. Ctrl-C stops both.
#
#   ./scripts/run.sh              # collector on 127.0.0.1:3002, data in ./tracex-data
#   TRACEX_LISTEN=127.0.0.1:4000 ./scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

LISTEN="${TRACEX_LISTEN:-127.0.0.1:3002}"
DATA_DIR="${TRACEX_DATA_DIR:-./tracex-data}"
export TRACEX_DATA_DIR="$DATA_DIR"
cargo build --release --locked -p tracex-collector -p tracex-example-rust
BIN=target/release

mkdir -p "$DATA_DIR"
KEYS="$DATA_DIR/demo-keys.env"
if [ ! -f "$KEYS" ]; then
  INGEST=$("$BIN/tracex-collector" apikey create --project demo --scope ingest)
  READ=$("$BIN/tracex-collector" apikey create --project demo --scope read)
  umask 077; printf 'INGEST_KEY=%s\nREAD_KEY=%s\n' "$INGEST" "$READ" > "$KEYS"
fi
# shellcheck disable=SC1090
. "$KEYS"
FINGERPRINT=$("$BIN/tracex-collector" keys show | sed -n 's/^fingerprint: //p')

"$BIN/tracex-collector" serve --listen "$LISTEN" &
COLLECTOR=$!
DEMO=""
cleanup() { [ -n "$DEMO" ] && kill "$DEMO" 2>/dev/null; kill -TERM "$COLLECTOR" 2>/dev/null; wait "$COLLECTOR" 2>/dev/null || true; }
# Ctrl-C must end the script, not only the current demo: a trap that returns lets the loop below
# start the next demo against a stopped collector, for ever.
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do curl -sf "http://$LISTEN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

  tracex collector: http://$LISTEN   (key fingerprint $FINGERPRINT)
  the demo facilitator now sends sealed verify/settle traces; query them with the read key:

    curl -s -H "Authorization: Bearer $READ_KEY" "http://$LISTEN/api/v1/traces?limit=5"
    curl -s -H "Authorization: Bearer $READ_KEY" "http://$LISTEN/api/v1/traces?status=error&attr.x402.network=base"
    curl -s "http://$LISTEN/metrics" | grep tracex_spans

MSG
export TRACEX_ENDPOINT="http://$LISTEN" TRACEX_API_KEY="$INGEST_KEY" TRACEX_COLLECTOR_FINGERPRINT="$FINGERPRINT"
while true; do
  "$BIN/tracex-demo" --requests 50 --interval-ms 40 &
  DEMO=$!
  wait "$DEMO" || true
done
