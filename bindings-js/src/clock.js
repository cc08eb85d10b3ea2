// The host clock: `performance.now()` where it exists (monotonic, sub-millisecond), else `Date.now()`
// (edge runtimes may lack `performance`). Span times are kept as milliseconds on this clock and
// converted to unix nanoseconds by the core, using the anchor sent with every record buffer.

const perf = typeof globalThis.performance === 'object' && typeof globalThis.performance.now === 'function'
  ? globalThis.performance
  : null;

/** Milliseconds on the host clock. */
export const now = perf ? () => perf.now() : () => Date.now();

/** Unix time in ms at host clock 0 (fractional). */
export function anchorMs() {
  if (perf && typeof perf.timeOrigin === 'number' && perf.timeOrigin > 0) return perf.timeOrigin;
  return perf ? Date.now() - perf.now() : 0;
}

/** Converts a user-supplied time (Date, or unix ms as a number) to host-clock ms. */
export function toHostMs(t, anchor) {
  if (t instanceof Date) return t.getTime() - anchor;
  if (typeof t === 'number' && Number.isFinite(t)) return t - anchor;
  return now();
}
