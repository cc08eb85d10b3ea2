#!/usr/bin/env bash
# Soak: the release collector (embedded SQLite) and the Rust demo SDK on loopback at a fixed rate for
# a fixed time, sampling both processes' RSS and open descriptors. Both must stay flat; every span
# recorded must be delivered and stored. Not part of scripts/test.sh (it runs for minutes).
#
#   scripts/soak.sh                 # 300 s, a request every 5 ms (≈ 200 requests/s, 4 spans each)
#   scripts/soak.sh 60 2            # 60 s, a request every 2 ms
#
# Prints a table of samples (every 10 s) and the totals; results go in docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
interval_ms="${2:-5}"
cargo build --release --locked -q -p tracex-collector -p tracex-example-rust
BIN=target/release
dir="$(mktemp -d)"
trap 'kill $collector $demo 2>/dev/null || true; rm -rf "$dir"' EXIT
export TRACEX_DATA_DIR="$dir"
ingest=$("$BIN/tracex-collector" apikey create --project soak --scope ingest 2>/dev/null)
fingerprint=$("$BIN/tracex-collector" keys show | sed -n 's/^fingerprint: //p')
"$BIN/tracex-collector" serve --listen 127.0.0.1:0 > "$dir/collector.out" 2> "$dir/collector.log" &
collector=$!
for _ in $(seq 200); do grep -q "listening on" "$dir/collector.out" 2>/dev/null && break; sleep 0.05; done
url=$(sed -n 's/^tracex-collector listening on //p' "$dir/collector.out")

requests=$(( seconds * 1000 / interval_ms ))
TRACEX_ENDPOINT="$url" TRACEX_API_KEY="$ingest" TRACEX_COLLECTOR_FINGERPRINT="$fingerprint" \
  "$BIN/tracex-demo" --requests "$requests" --interval-ms "$interval_ms" > "$dir/demo.out" &
demo=$!

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo -; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
spans() { curl -s "$url/metrics" | awk '$1 == "tracex_spans_ingested_total" {print $2}'; }
printf '%6s  %14s  %12s  %15s  %13s  %12s\n' "t (s)" "collector KiB" "collector fd" "SDK (demo) KiB" "SDK fd" "spans stored"
start=$(date +%s)
while kill -0 "$demo" 2>/dev/null; do
  printf '%6d  %14s  %12s  %15s  %13s  %12s\n' $(( $(date +%s) - start )) "$(rss $collector)" "$(fds $collector)" \
    "$(rss $demo)" "$(fds $demo)" "$(spans)"
  for _ in $(seq 100); do kill -0 "$demo" 2>/dev/null || break; sleep 0.1; done
done
wait "$demo"
printf '%6d  %14s  %12s  %15s  %13s  %12s\n' $(( $(date +%s) - start )) "$(rss $collector)" "$(fds $collector)" "-" "-" "$(spans)"
echo
cat "$dir/demo.out"
stored=$(spans)
delivered=$(sed -n 's/^delivered \([0-9]*\) spans.*/\1/p' "$dir/demo.out")
echo "stored $stored, delivered $delivered"
[ "$stored" = "$delivered" ] || { echo "stored and delivered differ" >&2; exit 1; }
