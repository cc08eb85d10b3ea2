#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted bytes: the OTLP decoder, the envelope
# parser, the collector's unsealer past authentication (inflate + decode + validate), the query
# API's query-string parsers, and the span record decoder (buffers from the JS layer, which the
# WASM package decodes in the page's or worker's own thread). Not part of scripts/test.sh: a
# bounded run of each target, for CI nightlies or by hand.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 600        # 10 min per target
#   scripts/fuzz.sh 60 unseal  # one target
#
# Engine: libFuzzer through cargo-fuzz, with `--sanitizer none`: cargo-fuzz's default
# AddressSanitizer needs nightly's -Zsanitizer, which this stable toolchain refuses; the targets are
# safe Rust (the workspace denies unsafe code), so what ASan would add is little, and panics,
# assertion failures, stack overflows, timeouts and out-of-memory are still caught. Findings land in
# fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/ (seeds committed: the wire
# vectors' plaintexts and envelopes).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(otlp_decode envelope_parse unseal query_string records_decode)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    printf '\n=== %s (%s s)\n' "$t" "$seconds"
    # -rss_limit_mb: a decoder that allocates without bound is a finding, not a slow run.
    cargo fuzz run --fuzz-dir fuzz -s none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1
done
