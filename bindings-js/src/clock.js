// The host clock, in milliseconds. Span times are kept on this clock and converted to unix
// nanoseconds by the core, using the anchor (unix ms at host clock 0) sent with every record buffer.
//
// - Node: `process.hrtime()` (CLOCK_MONOTONIC, ns). It reads the same clock as `performance.now()`
//   but skips that method's receiver brand check; two reads per span make the difference
//   measurable (≈ 20–30 ns per span on the benchmark host).
// - Elsewhere (browsers, Deno, Bun): `performance.now()` (monotonic, sub-millisecond).
// - Cloudflare Workers: `performance.now()` too, which there is `Date.now()` (whole ms; on
//   Cloudflare it advances only across I/O).
// - Without either: `Date.now()`.

const perf =
  typeof globalThis.performance === 'object' && typeof globalThis.performance.now === 'function'
    ? globalThis.performance
    : null;
const hrtime =
  typeof process === 'object' && process !== null && typeof process.hrtime === 'function' ? process.hrtime : null;

// Cloudflare Workers' `performance.now()` is `Date.now()` (timeOrigin 0), as is the last fallback:
// a clock in unix ms. Sent as is, its ~1.8e12 ms become ~1.8e18 ns in the core, past a double's
// integer range (2^53), and span times would lose up to 256 ns. Such a clock counts from `base`
// instead: unix ms, set once by the first tracer (`anchorMs`), never at load (no clock reads in
// global scope on Workers). Decided from a property, not a call.
const unixClock = !hrtime && !(perf && typeof perf.timeOrigin === 'number' && perf.timeOrigin > 0);
let base = 0;

/** Milliseconds on the host clock. */
export const now = hrtime
  ? () => {
      const t = hrtime();
      return t[0] * 1e3 + t[1] / 1e6;
    }
  : unixClock
    ? perf
      ? () => perf.now() - base
      : () => Date.now() - base
    : () => perf.now();

/** Unix time in ms at host clock 0 (fractional). */
export function anchorMs() {
  if (unixClock) {
    if (base === 0) base = Math.floor(perf ? perf.now() : Date.now());
    return base;
  }
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
