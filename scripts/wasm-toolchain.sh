#!/usr/bin/env bash
# Installs what building the WASM package needs on a fresh Debian 12 machine, where rustup cannot
# download targets: Debian's rustc-web (with its std sources, built with -Zbuild-std), the matching
# lld for wasm-ld, the wasm-bindgen CLI of exactly the version in Cargo.lock, and the npm tools of
# bindings-wasm/package.json (binaryen's wasm-opt: Debian's binaryen breaks the module; playwright-core
# for the browser test; the edge runtimes workerd, Deno and Bun, whose Linux binaries come inside
# npm packages — @cloudflare/workerd-linux-64, @deno/linux-x64-glibc, @oven/bun-linux-x64 — so
# nothing is fetched from elsewhere). Idempotent and quick when everything is present. Prints the environment to
# use (WASM_LLVM_MAJOR=…); other scripts eval those lines.
#
#   scripts/wasm-toolchain.sh            # everything
#   scripts/wasm-toolchain.sh --core     # only rustc-web + lld (enough for scripts/build-core-wasm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${TRACEX_APT_UPDATED:-}" ]; then $SUDO apt-get update -qq >&2; export TRACEX_APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_install=0
[ -x /usr/bin/rustc ] && /usr/bin/rustc -vV 2>/dev/null | grep -q '^release: 1\.9' || need_install=1
[ -d /usr/lib/rustlib/src/rust/library ] || need_install=1
[ -x /usr/bin/cargo ] || need_install=1
[ "$need_install" = 1 ] && apt_install rustc-web cargo-web rust-web-src
LLVM_MAJOR=$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
command -v "wasm-ld-$LLVM_MAJOR" >/dev/null || apt_install "lld-$LLVM_MAJOR"
echo "WASM_LLVM_MAJOR=$LLVM_MAJOR"
[ "${1:-}" = "--core" ] && exit 0

# wasm-bindgen CLI: must equal the crate's version (pinned with = in bindings-wasm/Cargo.toml).
# Not --locked: its lockfile wants a crate version the registry lacks.
WBV=$(awk '$0=="name = \"wasm-bindgen\"" {getline; split($0,a,"\""); print a[2]}' Cargo.lock)
[ -n "$WBV" ] || { echo "wasm-toolchain: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
PATH="$HOME/.cargo/bin:$PATH"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WBV" ]; then
  echo "wasm-toolchain: installing wasm-bindgen-cli $WBV (a few minutes, once)" >&2
  # Its own target dir: a shared CARGO_TARGET_DIR would mix its lockfile's versions into ours.
  env -u CARGO_TARGET_DIR cargo install -q wasm-bindgen-cli --version "$WBV" >&2
fi
echo "WASM_BINDGEN=$(command -v wasm-bindgen)"

# npm tools, pinned by bindings-wasm/package-lock.json.
command -v npm >/dev/null || { echo "wasm-toolchain: npm not found: install Node.js 20+" >&2; exit 1; }
need_npm=0
for tool in wasm-opt workerd deno bun; do [ -x "bindings-wasm/node_modules/.bin/$tool" ] || need_npm=1; done
if [ "$need_npm" = 1 ] || [ ! -d bindings-wasm/node_modules/playwright-core ] \
   || [ bindings-wasm/package-lock.json -nt bindings-wasm/node_modules/.package-lock.json ]; then
  (cd bindings-wasm && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo "WASM_OPT=$PWD/bindings-wasm/node_modules/.bin/wasm-opt"
