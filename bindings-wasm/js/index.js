// tracex-wasm, universal ES module entry (browsers, Cloudflare-Workers-style runtimes, Deno).
// Call `await init(...)` once before creating a tracer; Node's entry (node.js) does it by itself.
import initWasm from './tracex_wasm.js';
import { BaseTracer } from './shared/index.js';
import { markReady, platform } from './platform.js';

let ready;

/**
 * Instantiates the WebAssembly module; later calls return the same promise.
 *
 * `input` may be a precompiled `WebAssembly.Module` (Workers: `import wasm from
 * 'tracex-wasm/tracex_wasm_bg.wasm'`, since they cannot compile from bytes at run time), a URL or
 * string to fetch, a `Response` (or a promise of one), or the bytes (`ArrayBuffer`/`Uint8Array`).
 * With no argument the `.wasm` beside this file is fetched (`new URL(…, import.meta.url)`).
 */
export function init(input) {
  ready ??= initWasm(input === undefined ? undefined : { module_or_path: input }).then(
    () => markReady(),
    (e) => {
      ready = undefined;
      throw e;
    },
  );
  return ready;
}

/**
 * The tracer: `new Tracer({ endpoint, apiKey, collectorPublicKey, serviceName, … })`, then
 * `startSpan`, `trace`, and `flush()` — on the edge, `ctx.waitUntil(tracer.flush())`.
 */
export class Tracer extends BaseTracer {
  constructor(options) {
    super(options, platform());
  }
}

export default init;
export {
  Span,
  NonRecordingSpan,
  SpanKind,
  SpanStatusCode,
  RemoteContext,
  extract,
  inject,
  contextFromIds,
  TracexError,
  ConfigError,
  PublicKeyError,
  FingerprintMismatchError,
  InvalidContextError,
  EnvelopeError,
  SealError,
  ExportError,
  TransportError,
  RejectedError,
  ShutdownError,
  FlushTimeoutError,
  SpoolError,
  InvalidRecordsError,
  KeyError,
  ContextError,
} from './shared/index.js';
// The backend the Tracer wraps. (The wire-vector helpers exist only in the test build, pkg-testing/.)
export { NativeTracer, collectorKeyId } from './tracex_wasm.js';
