#!/usr/bin/env bash
# Builds the web dashboard into dashboard/dist (content-hashed bundles + gzip/brotli twins), which
# the collector embeds when built with `--features dashboard`. Installs the npm packages pinned in
# dashboard/package-lock.json (npm ci) when they are missing or the lockfile changed, type-checks,
# bundles, and fails over the size budget (build.mjs).
#
#   scripts/build-dashboard.sh
#   cargo build --release -p tracex-collector --features dashboard
set -euo pipefail
cd "$(dirname "$0")/../dashboard"
command -v node >/dev/null || { echo "build-dashboard: node not found: install Node.js 20+" >&2; exit 1; }
# npm ci wipes node_modules: only when the lockfile is newer than the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npx --no-install tsc --noEmit
node build.mjs
