// The JS `Tracer`: starts spans on the JS side (ids, sampling decision, times) and hands finished
// spans to the native core in bulk. Shared by the Node addon package and the WASM package; each
// passes its `platform` (the native backend and the context manager).

import { nonZeroWord, word, wordsToHex } from './ids.js';
import { anchorMs, now, toHostMs } from './clock.js';
import { RecordWriter } from './records.js';
import { FLAG_SAMPLED, NonRecordingSpan, Span, SpanKind, flatten } from './span.js';
import { RemoteContext, contextFromIds, extract, inject } from './propagation.js';
import { ConfigError, InvalidContextError, fromNative } from './errors.js';

const TWO31 = 2147483648;
// Finished spans cross into the core this many at a time (or when the batch delay passes): each
// crossing costs the calling thread a native call and a promise, so fewer, larger crossings cost it
// less. The core cuts them into export batches of `maxExportBatchSize`.
const DRAIN_SPANS = 2048;
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

const KINDS = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };

export class BaseTracer {
  /**
   * @param {object} options tracer options (see the package's README / .d.ts)
   * @param {{ NativeTracer: Function, context: object, sdkName: string, sdkVersion: string, drainTimer?: boolean }} platform
   *   `drainTimer: false` for a backend that only sends when flushed (WASM): queued spans are then
   *   handed over when the buffer fills or at the flush, with no timer per batch of spans.
   */
  constructor(options, platform) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new ConfigError('Tracer options must be an object');
    }
    // Options are checked once, by the core (its `positive_integer` for the counts).
    const o = { ...(options || {}) };
    try {
      this._native = new platform.NativeTracer({ ...o, sdkName: platform.sdkName, sdkVersion: platform.sdkVersion });
    } catch (e) {
      throw fromNative(e);
    }
    this._ctx = platform.context;
    this._drainTimer = platform.drainTimer !== false;
    this._anchorMs = anchorMs();
    this._writer = new RecordWriter(this._anchorMs);
    this._sampledOut = 0;
    this._inflight = new Set();
    this._ingestFailures = 0;
    this._timer = null;
    this._closed = false;
    // Limits and batching as the core resolved them (defaults, options, environment): one truth.
    const l = this._native.limits;
    this._batch = l.maxExportBatchSize;
    this._delay = l.scheduledDelayMillis;
    // At least a full export batch, but never more than the core's queue holds: a batch larger
    // than the queue (a small `maxQueueSize` under the default batch size) would be dropped in part.
    this._drainAt = Math.min(l.maxQueueSize, Math.max(this._batch, DRAIN_SPANS));
    this._limits = { maxAttributes: l.maxAttributes, maxEvents: l.maxEvents, maxLinks: l.maxLinks };
    this._maxAttrs2 = this._limits.maxAttributes * 2;
    // Root spans are sampled when the low 63 bits of the trace id fall under ratio × 2^63 — the
    // core's rule (sampler.rs), so every runtime keeps or drops the same traces.
    const ratio = this._native.sampleRatio;
    this._ratio = ratio;
    [this._boundHi, this._boundLo] = ratioBound(ratio);
  }

  /** Hex fingerprint of the collector key batches are sealed to. */
  get collectorKeyId() {
    return this._native.keyId;
  }

  /** The span current in this async context, if any. */
  activeSpan() {
    const s = this._ctx.active();
    return s instanceof Span || s instanceof NonRecordingSpan ? s : undefined;
  }

  /**
   * Starts a span. `options`: `attributes`, `kind` ('server' | SpanKind.SERVER …), `parent` (a span,
   * a context from `extract`, or `null` for a new trace; default the active span), `links`,
   * `startTime` (Date or unix ms). The span is not made current; see `trace`.
   */
  startSpan(name, options) {
    // Kept small, the common case in a few lines, so the JIT can inline it into the caller.
    if (options) return this._startSpanWith(name, options);
    return this._begin(name, 1, this._ctx.active(), now());
  }

  _startSpanWith(name, options) {
    let parent = options.parent;
    let kind = 1;
    if (options.kind !== undefined) kind = typeof options.kind === 'string' ? KINDS[options.kind] || 1 : options.kind;
    if (parent === undefined) parent = this._ctx.active();
    else if (parent !== null && parent.t0 === undefined) parent = asContext(parent);
    const start = options.startTime === undefined ? now() : toHostMs(options.startTime, this._anchorMs);
    const span = this._begin(name, kind, parent, start);
    // No-ops on a span the sampler left out.
    if (options.attributes) span.setAttributes(options.attributes);
    if (options.links) for (const l of options.links) span.addLink(l.context || l, l.attributes);
    return span;
  }

  /** A span under `parent` (a span or remote context; none for a new trace), or a non-recording one. */
  _begin(name, kind, parent, start) {
    if (parent) {
      if ((parent.flags & 1) === 0) return this._unsampledChild(parent);
      const flags = FLAG_SAMPLED | HAS_IS_REMOTE | (parent instanceof RemoteContext ? IS_REMOTE : 0);
      return new Span(
        this,
        name,
        kind,
        parent.t0,
        parent.t1,
        parent.t2,
        parent.t3,
        parent.s0,
        parent.s1,
        flags,
        parent.traceState,
        start,
      );
    }
    // A new trace's id starts with its start in unix ms, 48 bits big-endian, the other ten bytes
    // random: the core's rule (core/src/ids.rs, `new_trace_id_at`, which says why).
    const ms = Math.floor(this._anchorMs + start);
    const t0 = ms >= 0 ? Math.floor(ms / 65536) | 0 : word();
    const t1 = ms >= 0 ? ((ms % 65536) << 16) | (word() & 0xffff) : word();
    const t2 = word();
    const t3 = nonZeroWord();
    if (!this._sampleRoot(t2, t3)) {
      this._sampledOut++;
      return new NonRecordingSpan(this, t0, t1, t2, t3, word(), nonZeroWord(), 0, '');
    }
    return new Span(this, name, kind, t0, t1, t2, t3, 0, 0, 1, '', start);
  }

  _unsampledChild(parent) {
    this._sampledOut++;
    return new NonRecordingSpan(
      this,
      parent.t0,
      parent.t1,
      parent.t2,
      parent.t3,
      word(),
      nonZeroWord(),
      0,
      parent.traceState,
    );
  }

  _sampleRoot(t2, t3) {
    return sampledByRatio(this._ratio, this._boundHi, this._boundLo, t2, t3);
  }

  /**
   * Runs `fn(span)` in a new span that is current for its duration (across awaits), ends the span
   * when `fn` returns or its promise settles, records a thrown error or rejection, and returns what
   * `fn` returns. `trace(name, fn)` or `trace(name, options, fn)`.
   */
  trace(name, options, fn) {
    if (typeof options === 'function') {
      fn = options;
      options = undefined;
    }
    if (typeof fn !== 'function') throw new ConfigError('trace(name, [options], fn): fn must be a function');
    const span = this.startSpan(name, options);
    return this._runEnding(span, fn, undefined, [span]);
  }

  /** Runs `fn` with `span` current (without ending it). */
  withSpan(span, fn, ...args) {
    return this._ctx.with(span, fn, undefined, args);
  }

  _runEnding(span, fn, thisArg, args) {
    return this._ctx.with(
      span,
      () => {
        let result;
        try {
          result = fn.apply(thisArg, args);
        } catch (e) {
          span.recordException(e);
          span.end();
          throw e;
        }
        if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
          return result.then(
            (v) => {
              span.end();
              return v;
            },
            (e) => {
              span.recordException(e);
              span.end();
              throw e;
            },
          );
        }
        span.end();
        return result;
      },
      undefined,
      [],
    );
  }

  /** Writes `traceparent`/`tracestate` of `span` (default: the active span) into `carrier`. */
  inject(carrier = {}, span = this.activeSpan()) {
    return inject(span, carrier);
  }

  /** Reads a remote parent from `carrier` headers; `undefined` when absent or invalid. */
  extract(carrier) {
    return extract(carrier);
  }

  _link(context, attributes) {
    const c = context && context.t0 !== undefined ? context : asContext(context);
    if (!c) return null;
    return {
      t0: c.t0,
      t1: c.t1,
      t2: c.t2,
      t3: c.t3,
      s0: c.s0,
      s1: c.s1,
      flags: c.flags & FLAG_SAMPLED,
      traceState: c.traceState || '',
      attrs: flatten(attributes),
      dropped: 0,
    };
  }

  _finish(span) {
    const w = this._writer;
    const err = w.add(span);
    if (err !== null) {
      // Not encodable (e.g. an attribute getter threw): the span is counted as failed and the
      // buffer is handed over as it stands.
      this._ingestFailures++;
      this._lastIngestError = err;
      this._drain();
    } else if (w.count >= this._drainAt) this._drain();
    else if (this._drainTimer && this._timer === null && w.count === 1) this._schedule();
  }

  _schedule() {
    if (typeof setTimeout !== 'function') return;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._drain();
    }, this._delay);
    if (this._timer && typeof this._timer.unref === 'function') this._timer.unref();
  }

  /** Hands queued spans to the core in one record buffer. */
  _drain() {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const w = this._writer;
    const count = w.count;
    if (count > 0 || this._sampledOut > 0) {
      const bytes = w.finish(this._sampledOut);
      this._sampledOut = 0;
      // `ingest` copies the bytes before it returns: the writer may reuse its buffer right after.
      // The Node addon's resolves later (it decodes off the JS thread); the WASM backend's returns
      // the count at once, and wrapping that in promises cost every edge flush two more hops.
      const p = this._native.ingest(bytes);
      if (p !== null && typeof p === 'object' && typeof p.then === 'function') {
        this._inflight.add(p);
        p.then(
          () => this._inflight.delete(p),
          (e) => {
            this._inflight.delete(p);
            this._ingestFailures += count;
            this._lastIngestError = fromNative(e);
          },
        );
      }
    }
    // After an unencodable span: spans that user code ended while it was written go into the next buffer.
    if (w.later !== null) for (const s of w.takeLater()) this._finish(s);
  }

  /**
   * Seals and sends every finished span; resolves with `{ spansDelivered, spooled, failed, pending,
   * dropped }`. Waiting happens on the core's side, never on the event loop.
   */
  async flush(timeoutMs) {
    this._drain();
    if (this._inflight.size > 0) await Promise.allSettled([...this._inflight]);
    let report;
    try {
      report = await this._native.flush(timeoutMs);
    } catch (e) {
      throw fromNative(e);
    }
    return this._withIngestFailures(report);
  }

  /** Flushes, then stops; spans ended later are dropped and counted. Idempotent: later calls get the first call's result. */
  shutdown(timeoutMs) {
    if (!this._shutdown) this._shutdown = this._shutdownOnce(timeoutMs);
    return this._shutdown;
  }

  async _shutdownOnce(timeoutMs) {
    this._closed = true;
    this._drain();
    if (this._inflight.size > 0) await Promise.allSettled([...this._inflight]);
    let report;
    try {
      report = await this._native.shutdown(timeoutMs);
    } catch (e) {
      throw fromNative(e);
    }
    return this._withIngestFailures(report);
  }

  _withIngestFailures(report) {
    if (this._ingestFailures > 0) {
      report.failed += this._ingestFailures;
      this._ingestFailures = 0;
    }
    return report;
  }

  /** Self-telemetry: the core's counters plus spans still queued on the JS side. */
  stats() {
    const s = this._native.stats();
    s.spansQueued = this._writer.count;
    s.spansSampledOut += this._sampledOut;
    return s;
  }
}

/** The root sampling bound for `ratio`, as [hi, lo] 32-bit halves of ratio × 2^63 (sampler.rs). */
export function ratioBound(ratio) {
  const bound = Math.floor(ratio * TWO31 * 4294967296);
  return [Math.floor(bound / 4294967296), bound % 4294967296];
}

/**
 * The core's TraceIdRatio rule on the trace id's last two words: sampled when the low 63 bits of
 * bytes 8..16 are below ratio × 2^63. Pinned against the core by the packages' tests.
 */
export function sampledByRatio(ratio, boundHi, boundLo, t2, t3) {
  if (ratio >= 1) return true;
  if (!(ratio > 0)) return false;
  const hi = t2 >>> 1;
  const lo = (t2 & 1) * TWO31 + (t3 >>> 1);
  return hi < boundHi || (hi === boundHi && lo < boundLo);
}

function asContext(c) {
  if (!c) return null;
  if (typeof c.spanContext === 'function') c = c.spanContext();
  if (typeof c.traceId === 'string' && typeof c.spanId === 'string') {
    const flags = c.traceFlags === undefined ? 1 : c.traceFlags;
    const r = contextFromIds(c.traceId, c.spanId, flags, c.traceState || '');
    if (r) return r;
  }
  throw new InvalidContextError('parent must be a span, a context from extract(), or null');
}

export { SpanKind, wordsToHex };
