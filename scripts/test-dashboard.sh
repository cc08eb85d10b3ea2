#!/usr/bin/env bash
# The dashboard's browser test, on a fresh machine: installs Debian's Chromium if missing, builds the
# dashboard (scripts/build-dashboard.sh: npm ci, type check, bundle, size budget), builds the
# collector with the `dashboard` feature and the Rust demo, then runs dashboard/test/*.test.mjs with
# node --test: real collector, real SDK spans (tracex-demo), real headless Chromium (playwright-core).
# Screenshots land in out/dashboard-screenshots/ (artefacts) and are copied to docs/screenshots/ for
# the README.
#
#   scripts/test-dashboard.sh [--test-name-pattern=NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "node not found: install Node.js 20+" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ]; then
  echo "test-dashboard: installing Chromium (Debian)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

scripts/build-dashboard.sh

# The binaries of this checkout, copied aside: a later build in the same target dir (without the
# feature) must not swap the collector under a running test.
TMP="$(mktemp -d /tmp/tracex-dashboard-test.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
cargo build -q --locked -p tracex-collector --features tracex-collector/dashboard -p tracex-example-rust
cp "$TARGET/debug/tracex-collector" "$TARGET/debug/tracex-demo" "$TMP/"
export TRACEX_COLLECTOR_BIN="$TMP/tracex-collector" TRACEX_DEMO_BIN="$TMP/tracex-demo"

SHOTS="$PWD/out/dashboard-screenshots"
rm -rf "$SHOTS"
(cd dashboard && SCREENSHOTS="$SHOTS" node --test --test-concurrency=1 "$@" test/*.test.mjs)
mkdir -p docs/screenshots
cp "$SHOTS"/*.png docs/screenshots/
echo "test-dashboard: screenshots in $SHOTS (copied to docs/screenshots/)"
