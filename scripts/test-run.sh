#!/usr/bin/env bash
# The main job as a newcomer runs it: ./scripts/run.sh comes up on a free port with a fresh data
# dir, prints one URL that opens the dashboard signed in, the collector behind it serves the
# dashboard and holds the demo's spans; then Ctrl-C — SIGINT to the whole foreground process
# group, as a terminal sends it — ends run.sh (status 130) and every process it started.
# Uses debug builds (TRACEX_RUN_PROFILE=dev: test-dashboard.sh has built them in test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "test-run: curl is required" >&2; exit 1; }

TMP="$(mktemp -d /tmp/tracex-run-test.XXXXXX)"
PG=""
finish() {
  if [ -n "$PG" ]; then kill -KILL -- "-$PG" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap finish EXIT
fail() {
  echo "test-run: $*" >&2
  echo "--- run.sh output" >&2
  cat "$TMP/out" >&2 || true
  echo "--- collector log" >&2
  tail -20 "$TMP/data/collector.log" >&2 || true
  exit 1
}

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
LISTEN="127.0.0.1:$PORT"
# Job control on: the background job gets a process group of its own (its pid) and keeps SIGINT,
# as a command started from an interactive terminal does.
set -m
TRACEX_RUN_PROFILE=dev TRACEX_LISTEN="$LISTEN" TRACEX_DATA_DIR="$TMP/data" ./scripts/run.sh > "$TMP/out" 2>&1 &
PG=$!
set +m

url=""
for _ in $(seq 600); do
  url="$(grep -o "http://$LISTEN/#key=trx_read_[A-Za-z0-9_]*" "$TMP/out" || true)"
  [ -n "$url" ] && break
  kill -0 "$PG" 2>/dev/null || fail "run.sh exited before printing the dashboard URL"
  sleep 0.5
done
[ -n "$url" ] || fail "no dashboard URL within 300 s"
[ "$(grep -c '#key=' "$TMP/out")" = 1 ] || fail "expected exactly one signed-in URL"
key="${url#*#key=}"

# The URL's page is the dashboard, and the key in its fragment reads the demo's spans.
curl -sf "http://$LISTEN/" | grep -q '<div id="app"' || fail "GET / is not the dashboard"
traces="$(curl -sf -H "Authorization: Bearer $key" "http://$LISTEN/api/v1/traces?limit=5")" ||
  fail "the read key in the URL is refused"
echo "$traces" | grep -q '"trace_id"' || fail "no traces from the demo: $traces"

# Ctrl-C, then everything the process group held must be gone.
members="$(pgrep -g "$PG" | tr '\n' ' ')"
kill -INT -- "-$PG"
status=""
for _ in $(seq 100); do
  if ! kill -0 "$PG" 2>/dev/null; then
    wait "$PG" && status=0 || status=$?
    break
  fi
  sleep 0.1
done
[ -n "$status" ] || fail "run.sh still running 10 s after Ctrl-C"
[ "$status" = 130 ] || fail "run.sh exited with $status after Ctrl-C, not 130"
left=""
for _ in $(seq 50); do
  left="$(pgrep -g "$PG" | tr '\n' ' ' || true)"
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] || fail "processes left after Ctrl-C: $(ps -o pid,args -p "${left// /,}" 2>/dev/null)"
curl -s -o /dev/null "http://$LISTEN/readyz" && fail "the collector still answers after Ctrl-C"
PG=""
echo "test-run: run.sh came up ($(echo "$members" | wc -w) processes in its group), printed one signed-in URL, and Ctrl-C ended it (130) and all it started"
