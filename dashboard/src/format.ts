// Numbers and times as people read them.

export function nsToMs(ns: number | string): number {
  return Number(ns) / 1e6;
}

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v < 1) return `${(v * 1000).toFixed(0)} µs`;
  if (v < 1000) return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`;
  return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} s`;
}

export function pct(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return `${(v * 100).toFixed(digits)} %`;
}

export function rate(perSecond: number): string {
  if (perSecond >= 1) return `${perSecond.toFixed(perSecond < 10 ? 1 : 0)}/s`;
  return `${(perSecond * 60).toFixed(1)}/min`;
}

/** A unix-ns decimal string as local date and time. */
export function time(ns: string | number): string {
  const d = new Date(Number(BigInt(ns) / 1_000_000n));
  return d.toLocaleString(undefined, { hour12: false });
}

export function clock(ns: string | number): string {
  const d = new Date(Number(BigInt(ns) / 1_000_000n));
  return d.toLocaleTimeString(undefined, { hour12: false });
}

/** Well-separated hues that read on light and dark backgrounds; no red, which marks errors. */
const PALETTE = [
  '#2563eb',
  '#16a34a',
  '#9333ea',
  '#ea580c',
  '#0891b2',
  '#c026d3',
  '#ca8a04',
  '#4f46e5',
  '#0d9488',
  '#65a30d',
];

/** A stable colour per service: FNV-1a of the name, mixed (similar names differ in their last
 * bits only, which plain FNV modulo 10 maps together), into the palette. */
export function serviceColor(name: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return PALETTE[(h >>> 0) % PALETTE.length];
}

export const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/** How long ago a unix-ns time was, roughly: `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function ago(ns: string | number, nowMs = Date.now()): string {
  const s = Math.max(0, Math.round((nowMs - Number(BigInt(ns) / 1_000_000n)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
