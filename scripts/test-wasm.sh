#!/usr/bin/env bash
# The WASM package's tests, on a fresh machine: installs the toolchain, headless Chromium and the edge
# runtimes (workerd, Deno, Bun: npm packages pinned in bindings-wasm/package.json) if missing, builds
# the package (scripts/build-wasm.sh), packs it and installs the one tarball for every runtime, builds
# the collector, then runs bindings-wasm/test/*.test.mjs with node --test:
#   node.test.mjs     the backend (NativeTracer) in Node, no init call, against the real collector:
#                     delivery, errors, collector down, Retry-After, rejection, shutdown, full buffer
#   tracer.test.mjs   the user-facing Tracer (shared JS layer) over the WASM backend in Node
#   vectors.test.mjs  the shared wire vectors through the WASM module; a WASM-sealed envelope stored
#   browser.test.mjs  the package in headless Chromium (init with no argument, a Module, bytes),
#                     sending cross-origin (CORS) to the collector
#   load.test.mjs     every module of the package loads with randomness, timers and I/O forbidden
#                     (tests/js/load-guard.mjs), as Cloudflare Workers require
#   workerd.test.mjs  examples/edge-worker, unchanged, in real workerd (its workerd.capnp): exact
#                     spans stored with their x402.* attributes, every receipt verified against the
#                     pinned audit key (a tampered one logged), a rejected flush logged with its reason
#   runtimes.test.mjs the universal entry with init() in real Deno and Bun: exact spans delivered
#
#   scripts/test-wasm.sh [--test-name-pattern=NAME] [test/FILE.test.mjs…]   options and files for node --test
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ]; then
  echo "test-wasm: installing Chromium (Debian)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

[ "${TRACEX_SKIP_WASM_BUILD:-}" = 1 ] || scripts/build-wasm.sh
# The test build (feature `testing`, pkg-testing/): the vector helpers, loaded by path by the tests
# that need them; everything else tests the packed release tarball.
[ "${TRACEX_SKIP_WASM_BUILD:-}" = 1 ] || scripts/build-wasm.sh --testing

# Test the package as users get it: pack it, install the tarball next to the tests.
TMP="$(mktemp -d /tmp/tracex-wasm-pack.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
(cd bindings-wasm/pkg && npm pack --silent --pack-destination "$TMP" >/dev/null)
TARBALL="$(ls "$TMP"/tracex-wasm-*.tgz)"
# (no `grep -q` in a pipe: with pipefail, tar's SIGPIPE would fail it)
for f in tracex_wasm_bg.wasm tracex_wasm.js transport.js node.js index.js index.d.ts platform.js shared/tracer.js; do
  tar -tzf "$TARBALL" | grep -c "^package/$f\$" >/dev/null || { echo "test-wasm: the tarball lacks $f" >&2; exit 1; }
done
(cd bindings-wasm && npm install --no-save --no-audit --no-fund --loglevel=error "$TARBALL")
# --omit=dev: the example's workerd devDependency is already in bindings-wasm/node_modules.
(cd examples/edge-worker && npm install --no-save --no-package-lock --omit=dev --no-audit --no-fund --loglevel=error "$TARBALL")

# The collector binary of this checkout, copied aside (a CARGO_TARGET_DIR shared with another
# checkout of the workspace can replace target/debug/tracex-collector with that checkout's build).
if [ -z "${TRACEX_COLLECTOR_BIN:-}" ]; then
  TARGET="${CARGO_TARGET_DIR:-target}"
  case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
  cargo build -q --locked -p tracex-collector
  cp "$TARGET/debug/tracex-collector" "$TMP/tracex-collector"
  "$TMP/tracex-collector" serve --help | grep -c -- '--cors-origin' >/dev/null || {
    echo "test-wasm: $TARGET/debug/tracex-collector is not this checkout's collector (shared target dir?);" \
      "use a target dir of its own or set TRACEX_COLLECTOR_BIN" >&2
    exit 1
  }
  export TRACEX_COLLECTOR_BIN="$TMP/tracex-collector"
fi

cd bindings-wasm
# Arguments go to node --test: options (`--test-name-pattern=NAME`) and, if any, the test files to run
# instead of all of them (`npm test -- --test-name-pattern=NAME` in bindings-wasm/ passes them here).
opts=()
files=()
for a in "$@"; do case "$a" in -*) opts+=("$a") ;; *) files+=("${a#bindings-wasm/}") ;; esac; done
[ "${#files[@]}" -gt 0 ] || files=(test/*.test.mjs)
node --test --test-concurrency=1 "${opts[@]}" "${files[@]}"
