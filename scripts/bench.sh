#!/usr/bin/env bash
# Every benchmark, each beside its peer in the same run, with one command (issue #17):
#
#   scripts/bench.sh                 # the default sections, in this order
#   scripts/bench.sh seal e2e        # some sections only
#   scripts/bench.sh --list          # the sections and what each runs
#
# Each section's whole output goes to target/bench/<section>.txt. Its summary lines (the benches
# print them starting with `==`: figures, the peer's figures and the ratio) replace that section's
# block in the "Latest run" part at the top of docs/benchmarks.md, headed with the host's CPU, the
# date, the commit and the command; blocks of sections not run are left as they were. The prose
# below that part (history, profiles, what changed) is written by hand and never touched.
#
# Not part of the tests (figures depend on the machine; ratios are the claims). The default
# sections took 26 minutes on the 2-core reference machine (2026-12-07, Intel Xeon host: 1,471 s
# for all but `postgres`, then 90 s for it), the Python wheels, the Node addon and the release
# collector built within it, the WASM package and the Rust bench binaries before; `collector` (10,000,000 spans through the real release collector and the dashboard in
# Chromium) is left out of the default: it adds about 20 minutes and 10 GB of disk.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT=(rust seal records memory e2e visibility store ingest audit postgres node python wasm edge)

command_of() {
    case "$1" in
        rust) echo "cargo bench -p tracex-core --bench span" ;;
        seal) echo "cargo bench -p tracex-core --bench seal" ;;
        records) echo "cargo bench -p tracex-core --bench records" ;;
        memory) echo "cargo bench -p tracex-core --bench memory" ;;
        e2e) echo "cargo bench -p tracex-collector --bench sdk_e2e" ;;
        visibility) echo "cargo bench -p tracex-collector --bench visibility" ;;
        store) echo "cargo bench -p tracex-collector --bench store" ;;
        ingest) echo "env INGEST_PATHS=sealed,otlp-http,otlp-grpc cargo bench -p tracex-collector --bench ingest" ;;
        audit) echo "cargo bench -p tracex-collector --bench audit && env INGEST_PATHS=sealed,sealed-no-audit INGEST_ROUNDS=5 cargo bench -p tracex-collector --bench ingest" ;;
        postgres) echo "scripts/with-postgres.sh env INGEST_PATHS=sealed,postgres,postgres-two cargo bench -p tracex-collector --bench ingest" ;;
        node) echo "scripts/bench-node.sh" ;;
        python) echo "scripts/bench-python.sh" ;;
        wasm) echo "scripts/bench-wasm.sh" ;;
        edge) echo "scripts/bench-edge.sh" ;;
        collector) echo "scripts/bench-collector.sh" ;;
        *) return 1 ;;
    esac
}

describe() {
    case "$1" in
        rust) echo "Rust hot path: tracex-core beside opentelemetry-rust (BatchSpanProcessor) and fastrace (root span; local spans under one root apart)" ;;
        seal) echo "the worker's side of a 512-span batch: OTLP encoding, AES-256-GCM sealing, redaction; OpenSSL's AES-256-GCM on this machine beside it" ;;
        records) echo "decoding a 512-span record buffer as the Node addon and the WASM package do, into new spans and into the tracer's queue" ;;
        memory) echo "bytes per span held in the Rust SDK's buffer (collector unreachable), by the allocator and by RSS, attribute payload excluded (target ≤ 256)" ;;
        e2e) echo "Rust SDK end to end: CPU per span on every SDK thread and the delivery rate, one and four batches in flight, one-span traces and traces of 8, and with the audit key pinned (every receipt checked)" ;;
        visibility) echo "span.end() to queryable through the query API, at the default schedule and at 100 ms" ;;
        store) echo "the SQLite store's writer alone: its CPU per span in group commits, and bytes written to disk per span" ;;
        ingest) echo "collector ingest into SQLite: sealed batches, OTLP/HTTP and OTLP/gRPC" ;;
        audit) echo "audit log: store commits, checkpoints, proofs, verify; sealed ingest with the log on and off" ;;
        postgres) echo "collector ingest into PostgreSQL, one and two collectors, beside SQLite" ;;
        node) echo "Node: tracex beside OpenTelemetry JS, hot path and end to end" ;;
        python) echo "Python: tracex beside the OpenTelemetry Python SDK and ddtrace on the hot path; end to end beside OpenTelemetry with its OTLP/HTTP exporter" ;;
        wasm) echo "the WASM package beside the native addon in Node" ;;
        edge) echo "CPU a request pays for tracing in real workerd, first request and steady state" ;;
        collector) echo "the collector at 10,000,000 spans: queries, statistics, waterfall, live-tail lag" ;;
    esac
}

if [ "${1:-}" = "--list" ]; then
    for s in "${DEFAULT[@]}" collector; do
        printf '%-10s %s\n           %s\n' "$s" "$(describe "$s")" "$(command_of "$s")"
    done
    exit 0
fi

sections=("$@")
[ "${#sections[@]}" -gt 0 ] || sections=("${DEFAULT[@]}")
for s in "${sections[@]}"; do
    command_of "$s" >/dev/null || { echo "unknown section: $s (scripts/bench.sh --list)" >&2; exit 2; }
done

out_dir=target/bench
mkdir -p "$out_dir"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
failed=()
for s in "${sections[@]}"; do
    cmd=$(command_of "$s")
    log="$out_dir/$s.txt"
    echo "=== bench.sh: $s: $cmd" >&2
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    started=$(date -u +%Y-%m-%dT%H:%MZ)
    status=0
    bash -c "$cmd" > "$log" 2>&1 || status=$?
    if [ "$s" = seal ] && command -v openssl >/dev/null; then
        # The same cipher in OpenSSL on this machine, 16 KB blocks: the ceiling for sealing here.
        openssl speed -evp aes-256-gcm -bytes 16384 -seconds 2 2>/dev/null \
            | awk 'tolower($1) ~ /^aes-256-gcm/ { printf "== openssl aes-256-gcm (16 KB blocks): %.0f MB/s\n", $NF / 1000 }' >> "$log" || true
    fi
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    if [ "$status" -ne 0 ]; then
        failed+=("$s")
        echo "=== bench.sh: $s failed (exit $status), see $log; its block is not rewritten" >&2
        continue
    fi
    python3 - "$s" "$cmd" "$log" "$cpu" "$cores" "$started" "$load_before" "$load_after" "$(describe "$s")" <<'PY'
import re, subprocess, sys

section, cmd, log, cpu, cores, started, load_before, load_after, what = sys.argv[1:]
lines = [l.rstrip() for l in open(log, encoding="utf-8", errors="replace")]
summary = [l.strip() for l in lines if l.lstrip().startswith("==")]
if not summary:
    # A bench without `==` lines: its last lines, which hold its figures (the edge bench's are 22).
    summary = [l for l in lines if l.strip()][-24:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/benchmarks.md"], capture_output=True, text=True).stdout.strip()
block = "\n".join([
    f"<!-- bench:{section} -->",
    f"**{section}** — {what}. `{cmd}`",
    f"{started}, {commit}{' (with uncommitted changes)' if dirty else ''}, {cpu}, {cores} cores, load {load_before} → {load_after}:",
    "",
    "```",
    *summary,
    "```",
    f"<!-- /bench:{section} -->",
])
path = "docs/benchmarks.md"
doc = open(path, encoding="utf-8").read()
pattern = re.compile(rf"<!-- bench:{re.escape(section)} -->.*?<!-- /bench:{re.escape(section)} -->", re.S)
if pattern.search(doc):
    doc = pattern.sub(lambda _: block, doc, count=1)
else:
    end = "<!-- /bench:latest -->"
    if end not in doc:
        sys.exit(f"{path} has no '{end}' marker to add the {section} block before")
    doc = doc.replace(end, block + "\n\n" + end, 1)
open(path, "w", encoding="utf-8").write(doc)
print(f"=== bench.sh: {section}: {len(summary)} summary lines into {path}", file=sys.stderr)
PY
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "=== bench.sh: failed: ${failed[*]}" >&2
    exit 1
fi
