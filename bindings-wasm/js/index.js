// tracex-wasm, universal ES module entry (browsers, Cloudflare-Workers-style runtimes, Deno).
// Call `await init(...)` once before creating a tracer; Node's entry (node.js) does it by itself.
import initWasm, * as wasm from './tracex_wasm.js';
import { BaseTracer, ConfigError, auditApi } from './shared/index.js';
import { withFixedIds } from './shared/ids.js';
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
    async () => {
      markReady();
      await warmUp();
    },
    (e) => {
      ready = undefined;
      throw e;
    },
  );
  return ready;
}

/**
 * Runs the core's first-request code once on fixed inputs (no randomness, no I/O), so that V8
 * compiles it now: at module scope on the edge — `await init(wasm)` at the top of the worker — that
 * is startup work, not the first request's (src/warm.rs has the measured reason). Never throws.
 */
async function warmUp() {
  try {
    wasm.warmUp();
    await wasm.warmUpFlush();
    // The data-key wrap through WebCrypto, with a stand-in for `crypto.subtle` that answers at
    // once: no RSA and no randomness, and the warm-up tracer refuses its empty "wrapped" key.
    await wasm.warmUpWrap({ importKey: async () => ({}), encrypt: async () => new ArrayBuffer(0) });
    // The JS layer's span path — a tracer, a server span with x402 attributes and a child, the
    // record buffer handed to the core — on fixed ids (no randomness here); never flushed.
    withFixedIds(() => {
      const tracer = new Tracer(wasm.warmUpOptions());
      tracer.trace('POST /verify', { kind: 'server' }, (span) => {
        span.setAttributes({ 'x402.scheme': 'exact', 'x402.network': 'base', 'x402.amount': '10000' });
        tracer.trace('check', (child) => child.setAttribute('x402.check', 1));
      });
      tracer._drain();
    });
  } catch {
    // Only an optimisation: the first request compiles what it needs, as without it.
  }
}

/**
 * The tracer: `new Tracer({ endpoint, apiKey, collectorPublicKey, serviceName, … })`, then
 * `startSpan`, `trace`, and `flush()` — on the edge, `ctx.waitUntil(tracer.flush())`.
 */
export class Tracer extends BaseTracer {
  constructor(options) {
    super(withClockResource(options), platform());
    // The deadline of the linger flush under way (ms since the epoch; 0: none).
    this._lingerUntil = 0;
  }

  /**
   * `flush()`, `flush(timeoutMs)` or `flush({ timeoutMs, lingerMs })`.
   *
   * With `lingerMs`, a flush called while no linger flush is waiting waits `lingerMs`, then seals
   * and sends everything recorded until then in one batch. A flush called while one is waiting,
   * whose deadline is no later than this one's would be, resolves at once with nothing sent and
   * the spans queued here as `pending`: they go with that flush. Under steady traffic that is one
   * batch per `lingerMs` instead of one per request (a Workers subrequest costs ≈ 0.13 ms of CPU of
   * its own: docs/benchmarks.md). The waiting flush's `ctx.waitUntil` keeps the isolate
   * alive until it has sent, so the spans of the requests it covers are not left in an isolate
   * that nothing holds. Like Kafka's `linger.ms`, it trades latency (spans visible up to
   * `lingerMs` later) for fewer, larger requests.
   */
  async flush(options) {
    if (options === null || typeof options !== 'object') return super.flush(options);
    const { timeoutMs, lingerMs } = options;
    if (lingerMs === undefined) return super.flush(timeoutMs);
    if (typeof lingerMs !== 'number' || !(lingerMs >= 0 && lingerMs <= MAX_LINGER_MS)) {
      throw new ConfigError(`lingerMs must be a number of milliseconds within [0, ${MAX_LINGER_MS}], got ${lingerMs}`);
    }
    const now = Date.now();
    if (this._lingerUntil > now && this._lingerUntil <= now + lingerMs) {
      return { spansDelivered: 0, spooled: 0, failed: 0, pending: this._writer.count, dropped: 0 };
    }
    if (lingerMs > 0) {
      // The timer is this request's own: Workers do not let one request await another's timers
      // or I/O, and the waiting flush sends the other requests' spans from its own context.
      const deadline = now + lingerMs;
      this._lingerUntil = deadline;
      await new Promise((resolve) => setTimeout(resolve, lingerMs));
      if (this._lingerUntil === deadline) this._lingerUntil = 0;
    }
    return super.flush(timeoutMs);
  }
}

/**
 * Longest `lingerMs`: Workers run `waitUntil` work for at most 30 s after the response, and the
 * flush after the wait needs its own time (its default timeout is 10 s).
 */
const MAX_LINGER_MS = 20_000;

/**
 * On Cloudflare Workers, marks the resource with `tracex.clock = "workers_io"`: there `Date.now()`
 * and `performance.now()` are the same whole-millisecond clock, which on Cloudflare's network stands
 * still while code runs and advances only when the worker waits on I/O (a Spectre mitigation). A
 * span's times are then those of the last I/O before it started and ended; its duration covers the
 * I/O it awaited, and CPU-only work shows as 0. The marker lets readers of the trace tell such
 * zeros from fast code (README, "Time on the edge"). A `tracex.clock` in `resourceAttributes` wins.
 */
function withClockResource(options) {
  if (options === null || typeof options !== 'object' || !onWorkers()) return options;
  return { ...options, resourceAttributes: { 'tracex.clock': 'workers_io', ...options.resourceAttributes } };
}

function onWorkers() {
  // Checked when a tracer is created, not at load: only its value at run time matters.
  return globalThis.navigator?.userAgent === 'Cloudflare-Workers';
}

/** Verifying the collector's audit trail: receipts, inclusion and consistency proofs, checkpoints. */
export const audit = auditApi(wasm);

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
  AuditError,
  KeyError,
  ContextError,
} from './shared/index.js';
// The backend the Tracer wraps. (The wire-vector helpers exist only in the test build, pkg-testing/.)
export { NativeTracer, collectorKeyId } from './tracex_wasm.js';
