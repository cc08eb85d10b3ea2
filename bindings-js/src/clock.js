// The host clock, in milliseconds. Span times are kept on this clock and converted to unix
// nanoseconds by the core, using the anchor (unix ms at host clock 0) sent with every record buffer.
//
// - Node: `process.hrtime()` (CLOCK_MONOTONIC, ns). It reads the same clock as `performance.now()`
//   but skips that method's receiver brand check; two reads per span make the difference
//   measurable (≈ 20–30 ns per span on the benchmark host).
// - Elsewhere (browsers, edge workers): `performance.now()` (monotonic, sub-millisecond).
// - Without either: `Date.now()`.

const perf = typeof globalThis.performance === 'object' && typeof globalThis.performance.now === 'function'
  ? globalThis.performance
  : null;
const hrtime = typeof process === 'object' && process !== null && typeof process.hrtime === 'function'
  ? process.hrtime
  : null;

/** Milliseconds on the host clock. */
export const now = hrtime
  ? () => {
    const t = hrtime();
    return t[0] * 1e3 + t[1] / 1e6;
  }
  : perf
    ? () => perf.now()
    : () => Date.now();

/** Unix time in ms at host clock 0 (fractional). */
export function anchorMs() {
  if (!hrtime && !perf) return 0; // the host clock is `Date.now()`: unix ms already
  const origin = perf && typeof perf.timeOrigin === 'number' && perf.timeOrigin > 0 ? perf.timeOrigin : 0;
  // `timeOrigin` is unix ms at `performance.now()` 0; `process.hrtime()` differs from that clock by a constant.
  if (origin > 0) return hrtime ? origin + perf.now() - now() : origin;
  return Date.now() - now();
}

/** Converts a user-supplied time (Date, or unix ms as a number) to host-clock ms. */
export function toHostMs(t, anchor) {
  if (t instanceof Date) return t.getTime() - anchor;
  if (typeof t === 'number' && Number.isFinite(t)) return t - anchor;
  return now();
}
