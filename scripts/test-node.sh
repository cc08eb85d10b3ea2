#!/usr/bin/env bash
# The Node package's tests, on a fresh machine: builds the napi addon and the JS bundle, packs the
# npm tarball, installs it into a fresh temp project, and runs `node --test` against the real
# collector binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v node >/dev/null || { echo "node (>= 18) is required" >&2; exit 1; }

echo "--- collector binary"
cargo build -q --locked -p tracex-collector

echo "--- npm install, napi build, JS bundle"
cd bindings-node
npm install --no-audit --no-fund --loglevel=error
npm run -s build

echo "--- npm pack, install into a fresh project"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --silent --pack-destination "$work")"
mkdir "$work/project"
(cd "$work/project" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$work/$tarball")

echo "--- the .d.ts type-checks a usage sample (tsc --strict)"
(cd "$work/project" && npm install --no-audit --no-fund --loglevel=error typescript@5 >/dev/null &&
    cp "$root/bindings-node/test/types/usage.ts" . &&
    npx tsc --strict --noEmit --target es2022 --module nodenext --moduleResolution nodenext --skipLibCheck false usage.ts)

# The tests use the release tarball installed above for everything a user can call. The vector
# helpers (fixed-seed RSA wrapping, sealing with fixed inputs, record decoding, example errors) exist
# only in a second build of the same addon with feature `testing`, bundled to testing-dist/ and
# loaded from there: it differs from the release build only by those added entry points, and it is
# never packed (test/release.test.mjs checks that the installed package has none of them).
echo "--- test build (feature testing) for the vector helpers"
npm run -s build:testing

echo "--- node --test"
TRACEX_NODE_PROJECT="$work/project" TRACEX_COLLECTOR_BIN="$target/debug/tracex-collector" \
    TRACEX_NODE_TESTING="$root/bindings-node/testing-dist/testing.cjs" \
    node --test --test-concurrency=1 test/*.test.mjs
