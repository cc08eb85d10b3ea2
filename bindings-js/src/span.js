// Spans are plain JS objects until they end; ending one writes it into the record buffer being filled.

import { nonZeroWord, word, wordsToHex } from './ids.js';
import { now, toHostMs } from './clock.js';

/** OTLP span kinds. */
export const SpanKind = Object.freeze({ INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 });
/** OTLP status codes. */
export const SpanStatusCode = Object.freeze({ UNSET: 0, OK: 1, ERROR: 2 });

const FLAG_SAMPLED = 1;

/** A recording span. Methods return `this` so calls chain. */
export class Span {
  constructor(tracer, name, kind, t0, t1, t2, t3, p0, p1, flags, traceState, start) {
    this._tracer = tracer;
    this.name = name;
    this.kind = kind;
    this.t0 = t0;
    this.t1 = t1;
    this.t2 = t2;
    this.t3 = t3;
    this.s0 = word();
    this.s1 = nonZeroWord(); // non-zero as a whole
    this.p0 = p0;
    this.p1 = p1;
    this.flags = flags;
    this.traceState = traceState;
    this.start = start;
    this.end_ = 0;
    // Attributes as [key, value, key, value, …]: the first `na` entries of `attrs` are in use.
    this.attrs = null;
    this.na = 0;
    this.statusCode = 0;
    this.ended = false;
    // What most spans never have (events, links, drops, a status message), allocated on first use:
    // a smaller span is cheaper to create and to collect.
    this.x = null;
  }

  _extra() {
    return this.x || (this.x = new Extra());
  }

  /** W3C ids of this span: `{ traceId, spanId, traceFlags, traceState, isRemote }`. */
  spanContext() {
    return {
      traceId: wordsToHex(this.t0, this.t1, this.t2, this.t3),
      spanId: wordsToHex(this.s0, this.s1),
      traceFlags: this.flags & 0xff,
      traceState: this.traceState,
      isRemote: false,
    };
  }

  get traceId() {
    return wordsToHex(this.t0, this.t1, this.t2, this.t3);
  }

  get spanId() {
    return wordsToHex(this.s0, this.s1);
  }

  /** Always true for a recorded span (false for spans the sampler left out). */
  isRecording() {
    return !this.ended;
  }

  /** Sets one attribute (string, number, boolean, bigint, Uint8Array, arrays and plain objects of these). */
  setAttribute(key, value) {
    if (value == null || this.ended) return this;
    const n = this.na;
    if (n === 0) {
      // Room for four attributes in one allocation (growing from two costs a second one and a copy).
      this.attrs = [key, value, null, null, null, null, null, null];
    } else if (n < this._tracer._maxAttrs2) {
      const a = this.attrs;
      a[n] = key;
      a[n + 1] = value;
    } else {
      return this._setAtLimit(key, value);
    }
    this.na = n + 2;
    return this;
  }

  /**
   * Setting an attribute once the span holds the limit (rare: only here is there any work beyond an
   * append). Appends may hold repeated keys (the core resolves them), so they are resolved now, as
   * the core's span.rs does: the limit is on distinct keys, and a key already present is replaced,
   * never dropped.
   */
  _setAtLimit(key, value) {
    const a = this.attrs;
    const n = compactAttributes(a, this.na);
    this.na = n;
    for (let i = 0; i < n; i += 2) {
      if (a[i] === key) {
        a[i + 1] = value;
        return this;
      }
    }
    if (n < this._tracer._maxAttrs2) {
      a[n] = key;
      a[n + 1] = value;
      this.na = n + 2;
      return this;
    }
    this._extra().droppedAttrs++;
    return this;
  }

  /** Sets several attributes from an object. */
  setAttributes(attributes) {
    if (attributes) for (const k in attributes) this.setAttribute(k, attributes[k]);
    return this;
  }

  /** Adds a timestamped event. */
  addEvent(name, attributes, time) {
    if (this.ended) return this;
    if (attributes instanceof Date || typeof attributes === 'number') {
      time = attributes;
      attributes = undefined;
    }
    const x = this._extra();
    const ev = x.events || (x.events = []);
    if (ev.length >= this._tracer._limits.maxEvents) {
      x.droppedEvents++;
      return this;
    }
    ev.push({
      name: String(name),
      time: time === undefined ? now() : toHostMs(time, this._tracer._anchorMs),
      attrs: flatten(attributes),
      dropped: 0,
    });
    return this;
  }

  /** Links this span to another span's context (`{ traceId, spanId, traceFlags?, traceState? }`). */
  addLink(context, attributes) {
    if (this.ended) return this;
    const l = this._tracer._link(context, attributes);
    if (!l) return this;
    const x = this._extra();
    const ln = x.links || (x.links = []);
    if (ln.length >= this._tracer._limits.maxLinks) x.droppedLinks++;
    else ln.push(l);
    return this;
  }

  /** Records an exception as an `exception` event (type, message, stack) and marks the span failed. */
  recordException(err, time) {
    if (this.ended) return this;
    const e = err instanceof Error ? err : null;
    const attrs = {
      'exception.type': e ? e.name || e.constructor.name : typeof err,
      'exception.message': e ? e.message : String(err),
    };
    if (e?.stack) attrs['exception.stacktrace'] = e.stack;
    if (e && e.code !== undefined) attrs['exception.code'] = String(e.code);
    this.addEvent('exception', attrs, time);
    // The core's rule (span.rs `record_exception`): the message, or the type when there is none.
    this.setStatus({ code: SpanStatusCode.ERROR, message: attrs['exception.message'] || attrs['exception.type'] });
    return this;
  }

  /**
   * Sets the status: `{ code: SpanStatusCode.ERROR, message }`, or `'ok'` / `'error'` / `'unset'`.
   * The core's rules (span.rs): `Ok` is final, `Unset` changes nothing, only an error keeps a
   * description.
   */
  setStatus(status, message) {
    if (this.ended || this.statusCode === SpanStatusCode.OK) return this;
    if (typeof status === 'string') status = { code: status === 'ok' ? 1 : status === 'error' ? 2 : 0, message };
    const code = status?.code;
    if (code !== 1 && code !== 2) return this;
    this.statusCode = code;
    const text = code === 2 && status.message ? String(status.message) : '';
    if (text !== '' || this.x !== null) this._extra().statusMessage = text;
    return this;
  }

  /** Renames the span. */
  updateName(name) {
    if (!this.ended) this.name = String(name);
    return this;
  }

  /** Ends the span (at `endTime`, a Date or unix ms, or now). Later calls are ignored. */
  end(endTime) {
    if (this.ended) return;
    this.ended = true;
    this.end_ = endTime === undefined ? now() : toHostMs(endTime, this._tracer._anchorMs);
    this._tracer._finish(this);
  }

  /**
   * Wraps `fn` so that it runs with this span current and ends the span when it returns (or its
   * promise settles), recording a thrown error or rejection. The wrapper returns `fn`'s value.
   */
  wrap(fn) {
    const span = this;
    return function wrapped(...args) {
      return span._tracer._runEnding(span, fn, this, args);
    };
  }
}

/** The rarely used parts of a span. */
class Extra {
  constructor() {
    this.droppedAttrs = 0;
    this.events = null;
    this.droppedEvents = 0;
    this.links = null;
    this.droppedLinks = 0;
    this.statusMessage = '';
  }
}

/** The span handed out when the sampler drops a trace: it records nothing but carries the context. */
export class NonRecordingSpan {
  constructor(tracer, t0, t1, t2, t3, s0, s1, flags, traceState) {
    this._tracer = tracer;
    this.t0 = t0;
    this.t1 = t1;
    this.t2 = t2;
    this.t3 = t3;
    this.s0 = s0;
    this.s1 = s1;
    this.flags = flags;
    this.traceState = traceState;
  }
  spanContext() {
    return Span.prototype.spanContext.call(this);
  }
  get traceId() {
    return wordsToHex(this.t0, this.t1, this.t2, this.t3);
  }
  get spanId() {
    return wordsToHex(this.s0, this.s1);
  }
  isRecording() {
    return false;
  }
  setAttribute() {
    return this;
  }
  setAttributes() {
    return this;
  }
  addEvent() {
    return this;
  }
  addLink() {
    return this;
  }
  recordException() {
    return this;
  }
  setStatus() {
    return this;
  }
  updateName() {
    return this;
  }
  end() {}
  wrap(fn) {
    const span = this;
    return function wrapped(...args) {
      return span._tracer._runEnding(span, fn, this, args);
    };
  }
}

/**
 * Resolves repeated keys among the first `n` entries of `a` ([key, value, …]) in place: the last
 * value wins, in the first key's position (the core's `dedup_last_wins`). Returns the new length.
 */
function compactAttributes(a, n) {
  const at = new Map();
  let w = 0;
  for (let i = 0; i < n; i += 2) {
    const k = a[i];
    const p = at.get(k);
    if (p !== undefined) {
      a[p + 1] = a[i + 1];
    } else {
      at.set(k, w);
      a[w] = k;
      a[w + 1] = a[i + 1];
      w += 2;
    }
  }
  for (let i = w; i < n; i++) a[i] = null;
  return w;
}

/** `{a: 1}` → `['a', 1]` (null/undefined values skipped). */
export function flatten(attributes) {
  if (!attributes) return null;
  const out = [];
  for (const k in attributes) {
    const v = attributes[k];
    if (v !== undefined && v !== null) out.push(k, v);
  }
  return out.length ? out : null;
}

export { FLAG_SAMPLED };
