// W3C trace context: `traceparent` / `tracestate` headers to and from span contexts.

import { hexToWords, wordsToHex } from './ids.js';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A span context received from another process. */
export class RemoteContext {
  constructor(t, s, flags, traceState) {
    this.t0 = t[0];
    this.t1 = t[1];
    this.t2 = t[2];
    this.t3 = t[3];
    this.s0 = s[0];
    this.s1 = s[1];
    this.flags = flags;
    this.traceState = traceState;
  }
  spanContext() {
    return {
      traceId: wordsToHex(this.t0, this.t1, this.t2, this.t3),
      spanId: wordsToHex(this.s0, this.s1),
      traceFlags: this.flags & 0xff,
      traceState: this.traceState,
      isRemote: true,
    };
  }
  get traceId() {
    return wordsToHex(this.t0, this.t1, this.t2, this.t3);
  }
  get spanId() {
    return wordsToHex(this.s0, this.s1);
  }
}

function header(carrier, name) {
  if (!carrier) return undefined;
  if (typeof carrier.get === 'function') return carrier.get(name) ?? undefined; // Headers, Map
  const v = carrier[name] ?? carrier[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads `traceparent` (+ `tracestate`) from headers (a plain object, `Headers` or `Map`). Returns a
 * context usable as `parent`, or `undefined` when absent or invalid (an invalid header starts a new
 * trace, as the W3C spec asks).
 */
export function extract(carrier) {
  const tp = header(carrier, 'traceparent');
  if (typeof tp !== 'string') return undefined;
  const m = TRACEPARENT.exec(tp.trim());
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined;
  const t = hexToWords(m[2], 4);
  const s = hexToWords(m[3], 2);
  if (!t || !s || (t[0] | t[1] | t[2] | t[3]) === 0 || (s[0] | s[1]) === 0) return undefined;
  return new RemoteContext(t, s, parseInt(m[4], 16) & FLAG_SAMPLED, traceState(header(carrier, 'tracestate')));
}

/**
 * The core's rules (context.rs): of the trace flags only the sampled bit is kept — W3C Trace
 * Context 1 defines no other and says vendors "MUST set those to zero" — and a `tracestate` is kept
 * trimmed, or dropped whole when empty, longer than 512 characters or not ASCII (cutting it would
 * leave a broken list member).
 */
const FLAG_SAMPLED = 1;
const MAX_TRACE_STATE_LEN = 512;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, NUL to DEL, on purpose
const ASCII = /^[\x00-\x7f]*$/;

function traceState(ts) {
  if (typeof ts !== 'string') return '';
  const t = ts.trim();
  return t.length <= MAX_TRACE_STATE_LEN && ASCII.test(t) ? t : '';
}

/** Writes `traceparent` (and `tracestate` when set) for `span` into `carrier`; returns the carrier. */
export function inject(span, carrier = {}) {
  if (!span) return carrier;
  const tp = `00-${wordsToHex(span.t0, span.t1, span.t2, span.t3)}-${wordsToHex(span.s0, span.s1)}-${span.flags & 1 ? '01' : '00'}`;
  if (typeof carrier.set === 'function') {
    carrier.set('traceparent', tp);
    if (span.traceState) carrier.set('tracestate', span.traceState);
  } else {
    carrier.traceparent = tp;
    if (span.traceState) carrier.tracestate = span.traceState;
  }
  return carrier;
}

/** A context from ids given as hex (e.g. read from a queue message). */
export function contextFromIds(traceId, spanId, traceFlags = 1, traceState = '') {
  const t = hexToWords(traceId, 4);
  const s = hexToWords(spanId, 2);
  if (!t || !s) return undefined;
  return new RemoteContext(t, s, traceFlags & FLAG_SAMPLED, traceState);
}
