#!/usr/bin/env bash
# The Python binding end to end: builds the collector and the wheel (maturin, in a venv), installs
# the wheel into a fresh venv, runs pytest from outside the source tree against the real collector,
# and checks the checked-in stubs with mypy's stubtest. Venvs live under .venvs/ (git-ignored).
#
#   scripts/test-python.sh             everything above
#   scripts/test-python.sh --prepare   only the collector and the test build of the wheel, installed
#                                      with pytest into .venvs/dev (the collector beside its python);
#                                      then, in the source tree, one test by name:
#                                        cd bindings-python/tests && ../../.venvs/dev/bin/python -m pytest -k NAME
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
PY="${PYTHON:-python3}"
VENVS="$ROOT/.venvs"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

step() { printf '\n--- %s\n' "$*"; }
prepare=0
[ "${1:-}" = "--prepare" ] && prepare=1

step "build venv (maturin)"
[ -x "$VENVS/build/bin/maturin" ] || { "$PY" -m venv "$VENVS/build" && "$VENVS/build/bin/pip" install -q "maturin>=1.9,<2"; }

step "collector (debug build)"
cargo build -q --locked -p tracex-collector
COLLECTOR="$TARGET/debug/tracex-collector"

WHEELS="$(mktemp -d)"
RUN="$(mktemp -d)"
trap 'rm -rf "$WHEELS" "$RUN"' EXIT

if [ "$prepare" = 1 ]; then
    # The test build runs every test: conftest.py skips the `release_build` ones when the wheel has
    # `_native._testing`.
    step "test build of the wheel (feature testing) into .venvs/dev"
    (cd bindings-python && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features \
        --features abi3-py310,testing -o "$WHEELS/testing")
    [ -x "$VENVS/dev/bin/python" ] || "$PY" -m venv "$VENVS/dev"
    "$VENVS/dev/bin/pip" install -q --disable-pip-version-check pytest typing_extensions
    "$VENVS/dev/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
        "$(ls "$WHEELS"/testing/tracex-*-cp310-abi3-*.whl)"
    cp "$COLLECTOR" "$VENVS/dev/bin/tracex-collector"
    step "prepared .venvs/dev: cd bindings-python/tests && ../../.venvs/dev/bin/python -m pytest -k NAME"
    exit 0
fi

step "wheels (maturin build --release): cp39-abi3 (default), cp310-abi3 and this Python's own (the full C API)"
(cd bindings-python && "$VENVS/build/bin/maturin" build --release --locked -q -o "$WHEELS/cp39" \
    && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features --features abi3-py310 \
        -o "$WHEELS/cp310" \
    && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features -i "$PY" -o "$WHEELS/version")
# The test build: the cp310 wheel plus feature `testing` (`_native._testing`, the vector helpers).
# The suite runs against the release wheels as they would be published, except for the tests marked
# `testing_build`, which need those helpers and run against this wheel alone; it differs from the
# cp310 release wheel only by the added entry points. (`release_build` tests check that the release
# wheels lack them.)
(cd bindings-python && "$VENVS/build/bin/maturin" build --release --locked -q --no-default-features \
    --features abi3-py310,testing -o "$WHEELS/testing")
cp -r bindings-python/tests/. "$RUN/"

run_pytest() { # venv, marker expression
    (cd "$RUN" && TRACEX_COLLECTOR_BIN="$COLLECTOR" TRACEX_VECTORS_DIR="$ROOT/tests/vectors" \
        TRACEX_EXAMPLE_SETTLER="$ROOT/examples/python-settler/settler.py" \
        "$1/bin/python" -m pytest -q -p no:cacheprovider -m "$2")
}

# Each wheel in its own fresh venv; the suite runs against each, from outside the source tree.
for abi in cp39 cp310 version testing; do
    case "$abi" in
        testing) WHEEL="$(ls "$WHEELS/$abi"/tracex-*-cp310-abi3-*.whl)" ;;
        version) WHEEL="$(ls "$WHEELS/$abi"/tracex-*-cp3*-cp3*-*.whl)" ;; # e.g. cp311-cp311: not abi3
        *) WHEEL="$(ls "$WHEELS/$abi"/tracex-*-"$abi"-abi3-*.whl)" ;;
    esac
    step "$abi wheel: fresh venv, pytest against the real collector"
    rm -rf "$VENVS/test-$abi"
    "$PY" -m venv "$VENVS/test-$abi"
    "$VENVS/test-$abi/bin/pip" install -q "$WHEEL" pytest typing_extensions
    if [ "$abi" = testing ]; then run_pytest "$VENVS/test-$abi" testing_build; else run_pytest "$VENVS/test-$abi" "not testing_build"; fi
done
"$VENVS/test-cp310/bin/pip" install -q "mypy>=1.10"

step "stubtest (checked-in .pyi against the built module)"
(cd /tmp && "$VENVS/test-cp310/bin/python" -m mypy.stubtest tracex --allowlist "$ROOT/bindings-python/stubtest-allowlist.txt")

step "python binding: all passed"
