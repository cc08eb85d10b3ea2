#!/usr/bin/env bash
# The Node package's tests, on a fresh machine: builds the napi addon and the JS bundle, packs the
# npm tarball, installs it into a fresh temp project, and runs `node --test` against the real
# collector binary.
#
#   scripts/test-node.sh             everything above, in a temp dir removed at the end
#   scripts/test-node.sh --prepare   only the builds and the installed project, kept in
#                                    bindings-node/.test-project/ (git-ignored) with a copy of the
#                                    collector: what `npm test` in bindings-node/ runs first (pretest),
#                                    so that its tests (test/collector.mjs) find them without variables
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v node >/dev/null || { echo "node (>= 18) is required" >&2; exit 1; }
prepare=0
[ "${1:-}" = "--prepare" ] && prepare=1

echo "--- collector binary"
cargo build -q --locked -p tracex-collector

echo "--- npm install, napi build, JS bundle"
cd bindings-node
npm install --no-audit --no-fund --loglevel=error
npm run -s build

echo "--- npm pack, install into a fresh project"
if [ "$prepare" = 1 ]; then
  work="$root/bindings-node/.test-project"
  rm -rf "$work"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
tarball="$(npm pack --silent --pack-destination "$work")"
mkdir "$work/project"
(cd "$work/project" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$work/$tarball")

if [ "$prepare" = 0 ]; then
  echo "--- the .d.ts type-checks a usage sample (tsc --strict)"
  (cd "$work/project" && npm install --no-audit --no-fund --loglevel=error typescript@5 >/dev/null &&
      cp "$root/bindings-node/test/types/usage.ts" . &&
      npx tsc --strict --noEmit --target es2022 --module nodenext --moduleResolution nodenext --skipLibCheck false usage.ts)
fi

# The tests use the release tarball installed above for everything a user can call. The vector
# helpers (fixed-seed RSA wrapping, sealing with fixed inputs, record decoding, example errors) exist
# only in a second build of the same addon with feature `testing`, bundled to testing-dist/ and
# loaded from there: it differs from the release build only by those added entry points, and it is
# never packed (test/release.test.mjs checks that the installed package has none of them).
echo "--- test build (feature testing) for the vector helpers"
npm run -s build:testing

if [ "$prepare" = 1 ]; then
  cp "$target/debug/tracex-collector" "$work/tracex-collector"
  echo "--- prepared $work (installed package, collector); the tests run with: node --test test/*.test.mjs"
  exit 0
fi

echo "--- node --test"
TRACEX_NODE_PROJECT="$work/project" TRACEX_COLLECTOR_BIN="$target/debug/tracex-collector" \
    TRACEX_NODE_TESTING="$root/bindings-node/testing-dist/testing.cjs" \
    node --test --test-concurrency=1 test/*.test.mjs
