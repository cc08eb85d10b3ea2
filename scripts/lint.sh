#!/usr/bin/env bash
# Formatting and lint of the JS/TS and Python layers (the Rust side is cargo fmt + clippy):
#   Biome  `biome check`: formatting + lint rules of biome.jsonc (bindings-js, the Node and WASM
#          wrappers, tests and benches, tests/js, examples/**/*.js|mjs)
#   ruff   `ruff check` + `ruff format --check`: rules of ruff.toml (bindings-python: package, stubs,
#          tests, bench; examples/**/*.py)
# Installs the pinned versions once, into .tools/ (git-ignored; LINT_TOOLS_DIR=… puts them elsewhere),
# in the style of scripts/test-python.sh's venvs. Fails on any finding; a few seconds once installed.
#
#   scripts/lint.sh          # check
#   scripts/lint.sh --fix    # format, and apply the fixes the tools call safe; then check again
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUFF_VERSION=0.17.6          # PyPI `ruff`
BIOME_VERSION=2.6.9          # npm `@biomejs/biome` (ships the native binary; biome.jsonc's $schema names it)
TOOLS="${LINT_TOOLS_DIR:-$ROOT/.tools}"
PY="${PYTHON:-python3}"
command -v node >/dev/null || { echo "lint: node not found (Biome's launcher needs it): install Node.js 18+" >&2; exit 1; }

# A directory per version: bumping a pin installs afresh, and a half-done install (one that does not
# report the pinned version) is redone.
RUFF_DIR="$TOOLS/ruff-$RUFF_VERSION"
RUFF="$RUFF_DIR/bin/ruff"
if [ "$("$RUFF" --version 2>/dev/null)" != "ruff $RUFF_VERSION" ]; then
  echo "lint: installing ruff $RUFF_VERSION into $RUFF_DIR" >&2
  rm -rf "$RUFF_DIR"
  "$PY" -m venv "$RUFF_DIR"
  "$RUFF_DIR/bin/pip" install -q --disable-pip-version-check "ruff==$RUFF_VERSION"
fi
BIOME_DIR="$TOOLS/biome-$BIOME_VERSION"
BIOME="$BIOME_DIR/node_modules/.bin/biome"
if [ "$("$BIOME" --version 2>/dev/null)" != "Version: $BIOME_VERSION" ]; then
  echo "lint: installing @biomejs/biome $BIOME_VERSION into $BIOME_DIR" >&2
  rm -rf "$BIOME_DIR"
  mkdir -p "$BIOME_DIR"
  npm install --prefix "$BIOME_DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "@biomejs/biome@$BIOME_VERSION"
fi
# ruff's cache stays with the tools, not in the work tree.
export RUFF_CACHE_DIR="$TOOLS/ruff-cache"

if [ "${1:-}" = "--fix" ]; then
  "$BIOME" check --write .
  "$RUFF" check --fix .
  "$RUFF" format .
fi

status=0
echo "--- biome check ($BIOME_VERSION)"
"$BIOME" check --error-on-warnings . || status=1
echo "--- ruff check ($RUFF_VERSION)"
"$RUFF" check . || status=1
echo "--- ruff format --check"
"$RUFF" format --check . || status=1
if [ "$status" != 0 ]; then
  echo "lint: findings above; scripts/lint.sh --fix formats and applies the safe fixes, the rest is by hand" >&2
fi
exit "$status"
