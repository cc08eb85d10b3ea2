#!/usr/bin/env bash
# Issue #14's collector benchmarks, against the real release collector with its embedded dashboard
# (built exactly as scripts/run.sh builds it) over real HTTP on loopback, embedded SQLite store:
#
#   1. load 10,000,000 spans through the Rust SDK (tracex-core sealing batches; the demo's x402
#      traffic generator, 30 days of explicit span times) plus one trace of 10,000 spans; load
#      throughput and bytes on disk per stored span (collector stopped, WAL checkpointed);
#   2. query latencies (examples/rust/src/bench_collector.rs `query`): filtered trace searches,
#      24-hour and 30-day statistics, the 10,000-span trace;
#   3. in headless Chromium (dashboard/bench/collector.mjs, playwright-core, Debian's chromium as in
#      scripts/test-dashboard.sh): the waterfall rendering the 10,000-span trace;
#   4. live-tail lag from commit to an SSE client and to the dashboard's Live page, while ingest runs;
#   5. ingest throughput with 50 live viewers against none, side by side.
#
# Prints a summary with the targets beside the results; the details land in $BENCH_OUT
# (default out/bench-collector/). A benchmark, not a test: not part of scripts/test.sh.
#
#   scripts/bench-collector.sh
#   BENCH_KEEP_DATA=1 scripts/bench-collector.sh     # keep the loaded data dir for the next run
#   BENCH_DATA_DIR=/tmp/x BENCH_SPANS=1000000 scripts/bench-collector.sh   # a smaller, quicker set
#
# A data dir that holds a completed load (its bench-meta.json) is reused as it is: loading 10 M
# spans takes minutes and ≈ 10 GB of disk. Without BENCH_KEEP_DATA=1 the data dir is deleted at
# the end (also when it was reused). Other knobs: BENCH_QUERY_RUNS (50), BENCH_RENDER_RUNS (15),
# BENCH_LOAD_THREADS (6), BENCH_LIVE_ROUNDS (2), BENCH_PHASE_BATCHES (400), BENCH_LAG_SECONDS (30, twice: without and with the 50 viewers),
# BENCH_LAG_RATE (20000 background spans/s during the lag phase).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }

SPANS="${BENCH_SPANS:-10000000}"
DATA="${BENCH_DATA_DIR:-$PWD/out/bench-collector-data}"
OUT="${BENCH_OUT:-$PWD/out/bench-collector}"
case "$DATA" in /*) ;; *) DATA="$PWD/$DATA" ;; esac
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/loadavg.txt

if [ ! -x /usr/bin/chromium ]; then
  echo "bench-collector: installing Chromium (Debian)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The main job's build: the dashboard, then the collector with it embedded and the Rust examples
# (tracex-demo and this benchmark's tracex-bench-collector), the same cargo command as run.sh.
scripts/build-dashboard.sh >/dev/null
cargo build --release --locked -p tracex-collector -p tracex-example-rust --features tracex-collector/dashboard
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
# Copied aside: a later build in the same target dir must not swap the binaries under the run.
TMP="$(mktemp -d /tmp/tracex-bench-collector.XXXXXX)"
cp "$TARGET/release/tracex-collector" "$TARGET/release/tracex-bench-collector" "$TMP/"
COLLECTOR_BIN="$TMP/tracex-collector"
BENCH_BIN="$TMP/tracex-bench-collector"

COLLECTOR=""
OWN_DATA=""   # set once $DATA is known to be this script's
stop_collector() {
  if [ -n "$COLLECTOR" ]; then
    kill -TERM "$COLLECTOR" 2>/dev/null || true
    wait "$COLLECTOR" 2>/dev/null || true
    COLLECTOR=""
  fi
}
# Long steps run in the background and are waited for, so that a signal reaches the trap at once
# (bash runs traps only between foreground commands) and the trap can stop them.
CHILD=""
step() {
  "$@" &
  CHILD=$!
  wait "$CHILD"
  CHILD=""
}
cleanup() {
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
  stop_collector
  rm -rf "$TMP"
  if [ -z "$OWN_DATA" ]; then :
  elif [ "${BENCH_KEEP_DATA:-0}" != 1 ]; then rm -rf "$DATA"
  else echo "bench-collector: data kept in $DATA" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { echo "$1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/loadavg.txt"; }
loadavg "start"

# The data dir is deleted at the end (and replaced when a load did not complete): never one that
# this script did not create.
if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA")" ] && [ ! -f "$DATA/bench-keys.env" ]; then
  echo "bench-collector: $DATA holds something else; choose an empty or new BENCH_DATA_DIR" >&2
  exit 1
fi
OWN_DATA=1
if [ ! -f "$DATA/bench-meta.json" ]; then
  avail_kb=$(df -Pk "$(dirname "$DATA")" | awk 'NR==2 {print $4}')
  need_kb=$(( SPANS / 1000 * 1000 ))   # ≈ 600 B a span stored, plus room for the WAL
  if [ "$avail_kb" -lt "$need_kb" ]; then
    echo "bench-collector: $((avail_kb / 1048576)) GiB free under $(dirname "$DATA"), $((need_kb / 1048576)) GiB needed for $SPANS spans (BENCH_SPANS, BENCH_DATA_DIR)" >&2
    exit 1
  fi
  rm -rf "$DATA"
  mkdir -p "$DATA"
fi

# History stays as loaded (no retention pass) and one read key may hold the 50 viewers, the probe
# viewer and the browser's Live page (the default allows 16 streams per key).
CONF="$TMP/collector.toml"
printf 'retention_days = 0\nlive_max_streams_per_key = 64\n' > "$CONF"
cli() { "$COLLECTOR_BIN" --config "$CONF" --data-dir "$DATA" "$@"; }
if [ ! -f "$DATA/bench-keys.env" ]; then
  # Project `bench` holds the 10 M spans; project `live` the live-tail and throughput phases, so
  # that repeated runs on a kept data dir leave the queried project as it was loaded.
  {
    echo "INGEST_KEY=$(cli apikey create --project bench --scope ingest)"
    echo "READ_KEY=$(cli apikey create --project bench --scope read)"
    echo "LIVE_INGEST_KEY=$(cli apikey create --project live --scope ingest)"
    echo "LIVE_READ_KEY=$(cli apikey create --project live --scope read)"
  } > "$DATA/bench-keys.env.tmp"
  mv "$DATA/bench-keys.env.tmp" "$DATA/bench-keys.env"
fi
# shellcheck disable=SC1091
. "$DATA/bench-keys.env"

URL=""
start_collector() {
  # Started directly (not through `cli`, which would background a subshell): $! is its pid.
  TRACEX_LOG=warn "$COLLECTOR_BIN" --config "$CONF" --data-dir "$DATA" serve --listen 127.0.0.1:0 > "$OUT/collector.log" 2>&1 &
  COLLECTOR=$!
  URL=""
  for _ in $(seq 200); do
    URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$OUT/collector.log" | head -1)
    if [ -n "$URL" ] && curl -sf "$URL/readyz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$COLLECTOR" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-collector: the collector did not start; see $OUT/collector.log" >&2
  tail -5 "$OUT/collector.log" >&2
  exit 1
}

# Bytes on disk with the collector stopped: it checkpoints on close; whatever WAL is left is
# checkpointed here so that the figure is the database alone (the WAL is listed beside it).
disk_usage() {
  local db="$DATA/tracex.db"
  if [ -s "$db-wal" ]; then
    if command -v sqlite3 >/dev/null; then sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    else python3 -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$db"; fi
  fi
  local size wal
  size=$(stat -c %s "$db")
  wal=$(stat -c %s "$db-wal" 2>/dev/null || echo 0)
  echo "{\"db_bytes\": $size, \"wal_bytes\": $wal, \"du_bytes\": $(du -sb "$DATA" | cut -f1)}"
}

if [ ! -f "$DATA/bench-meta.json" ]; then
  start_collector
  loadavg "before load"
  step "$BENCH_BIN" load --url "$URL" --ingest-key "$INGEST_KEY" --read-key "$READ_KEY" --spans "$SPANS" --days 30 \
    --threads "${BENCH_LOAD_THREADS:-6}" --meta "$DATA/bench-meta.tmp.json"
  loadavg "after load"
  stop_collector
  node -e '
    const fs = require("fs"); const [meta, disk, out] = process.argv.slice(1);
    const m = JSON.parse(fs.readFileSync(meta)); m.disk = JSON.parse(disk);
    m.disk.bytes_per_span = m.disk.db_bytes / m.spans; fs.writeFileSync(out, JSON.stringify(m, null, 2));
  ' "$DATA/bench-meta.tmp.json" "$(disk_usage)" "$DATA/bench-meta.json"
  rm -f "$DATA/bench-meta.tmp.json"
else
  echo "bench-collector: reusing the loaded data in $DATA (delete it to load again)" >&2
fi
cp "$DATA/bench-meta.json" "$OUT/meta.json"
node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1]));
  console.log(`data: ${m.spans} spans in project bench, loaded at ${Math.round(m.load_spans_per_second)} spans/s; database ${m.disk.db_bytes} bytes = ${m.disk.bytes_per_span.toFixed(0)} B/span`);
' "$OUT/meta.json"

start_collector
# A fresh collector process: the first queries warm the page cache (the bench program warms up too).
loadavg "before queries"
step "$BENCH_BIN" query --url "$URL" --read-key "$READ_KEY" --meta "$OUT/meta.json" --runs "${BENCH_QUERY_RUNS:-50}" --out "$OUT/query.json"
loadavg "before browser and live"
# node ends its Chromium and the live benchmark it spawns when it is stopped (they are its children
# and playwright closes the browser on SIGTERM).
step env BENCH_URL="$URL" BENCH_READ_KEY="$READ_KEY" BENCH_LIVE_READ_KEY="$LIVE_READ_KEY" \
  BENCH_LIVE_INGEST_KEY="$LIVE_INGEST_KEY" BENCH_META="$OUT/meta.json" BENCH_OUT="$OUT" BENCH_BIN="$BENCH_BIN" \
  BENCH_COLLECTOR_PID="$COLLECTOR" node dashboard/bench/collector.mjs
loadavg "end"
node dashboard/bench/collector.mjs summary "$OUT"
