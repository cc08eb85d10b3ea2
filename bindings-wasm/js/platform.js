// What the shared JS layer (shared/, from bindings-js/src) needs from this package: the backend
// (`NativeTracer` from the WebAssembly module), the context manager, and the SDK's name and version.
import { NativeTracer } from './tracex_wasm.js';
import { AsyncContext, ConfigError, StackContext } from './shared/index.js';

export const SDK_NAME = 'tracex-wasm';
export const SDK_VERSION = '0.0.0'; // set by scripts/build-wasm.sh

let ready = false;
// Runtimes with a global AsyncLocalStorage keep the current span across awaits; elsewhere a
// synchronous stack is used (pass `parent` explicitly across awaits). Node's entry installs
// node:async_hooks' AsyncLocalStorage.
let context =
  typeof globalThis.AsyncLocalStorage === 'function'
    ? new AsyncContext(globalThis.AsyncLocalStorage)
    : new StackContext();

/** Marks the WebAssembly module as instantiated. */
export function markReady() {
  ready = true;
}

/** True once the module is instantiated. */
export function isReady() {
  return ready;
}

/** Uses `AsyncLocalStorage` for the current span (Node's entry calls it). */
export function useAsyncLocalStorage(AsyncLocalStorage) {
  context = new AsyncContext(AsyncLocalStorage);
}

/** The platform object the shared `BaseTracer` takes. */
export function platform() {
  if (!ready) {
    throw new ConfigError(
      "tracex-wasm is not initialized: `await init()` first (Workers: `import wasm from 'tracex-wasm/tracex_wasm_bg.wasm'; await init(wasm)`)",
    );
  }
  // No drain timer: this backend has no worker, so spans handed to it early would only wait there
  // for the flush instead of in the JS buffer; on the edge the timer was a setTimeout and a
  // clearTimeout per request (≈ 6 % of a traced request's CPU in workerd's profile).
  return { NativeTracer, context, sdkName: SDK_NAME, sdkVersion: SDK_VERSION, drainTimer: false };
}
