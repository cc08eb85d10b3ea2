# workerd config that runs worker.js unchanged in Cloudflare's open-source runtime, against a
# collector on this machine:  npx workerd serve workerd.capnp   (http://127.0.0.1:8787/verify)
#
# workerd resolves no npm packages, so each module of tracex-wasm is listed by the name the imports
# ask for: the bare `tracex-wasm` is the package's universal entry (index.js), whose relative
# imports resolve beside it (tracex_wasm.js, platform.js, shared/*.js), and
# `tracex-wasm/tracex_wasm_bg.wasm` is a `wasm` module, i.e. the precompiled WebAssembly.Module
# worker.js passes to `init`. (wrangler/esbuild do this resolution when deploying.)
# bindings-wasm/test/workerd.test.mjs checks that this list covers every module of the package.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "facilitator", worker = .facilitator),
    # By default a worker's fetch() may reach only public addresses; a collector on loopback or a
    # private network needs "local" too. Never needed in production on Cloudflare.
    (name = "internet", network = (allow = ["public", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "facilitator") ],
);

const facilitator :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "tracex-wasm", esModule = embed "node_modules/tracex-wasm/index.js"),
    (name = "tracex_wasm.js", esModule = embed "node_modules/tracex-wasm/tracex_wasm.js"),
    (name = "platform.js", esModule = embed "node_modules/tracex-wasm/platform.js"),
    (name = "transport.js", esModule = embed "node_modules/tracex-wasm/transport.js"),
    (name = "shared/audit.js", esModule = embed "node_modules/tracex-wasm/shared/audit.js"),
    (name = "shared/clock.js", esModule = embed "node_modules/tracex-wasm/shared/clock.js"),
    (name = "shared/context.js", esModule = embed "node_modules/tracex-wasm/shared/context.js"),
    (name = "shared/errors.js", esModule = embed "node_modules/tracex-wasm/shared/errors.js"),
    (name = "shared/ids.js", esModule = embed "node_modules/tracex-wasm/shared/ids.js"),
    (name = "shared/index.js", esModule = embed "node_modules/tracex-wasm/shared/index.js"),
    (name = "shared/propagation.js", esModule = embed "node_modules/tracex-wasm/shared/propagation.js"),
    (name = "shared/records.js", esModule = embed "node_modules/tracex-wasm/shared/records.js"),
    (name = "shared/span.js", esModule = embed "node_modules/tracex-wasm/shared/span.js"),
    (name = "shared/tracer.js", esModule = embed "node_modules/tracex-wasm/shared/tracer.js"),
    (name = "tracex-wasm/tracex_wasm_bg.wasm", wasm = embed "node_modules/tracex-wasm/tracex_wasm_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  # The worker's env, read from workerd's own environment (secrets stay out of this file).
  bindings = [
    (name = "TRACEX_ENDPOINT", fromEnvironment = "TRACEX_ENDPOINT"),
    (name = "TRACEX_API_KEY", fromEnvironment = "TRACEX_API_KEY"),
    (name = "TRACEX_COLLECTOR_PUBLIC_KEY", fromEnvironment = "TRACEX_COLLECTOR_PUBLIC_KEY"),
    # Optional: the collector's audit verifier key (GET /v1/audit-key); unset, no receipt is checked.
    (name = "TRACEX_AUDIT_KEY", fromEnvironment = "TRACEX_AUDIT_KEY"),
  ],
  globalOutbound = "internet",
);
