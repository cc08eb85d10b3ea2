// The time ranges every page offers, from 15 minutes to 30 days, and a bucket step for each that
// gives about 60 points (never under a minute: the statistics are kept per minute).

export const RANGES: Record<string, number> = {
  '15m': 900,
  '1h': 3600,
  '6h': 6 * 3600,
  '24h': 86400,
  '7d': 7 * 86400,
  '30d': 30 * 86400,
};

export function rangeSeconds(key: string | null): number {
  return RANGES[key ?? ''] ?? RANGES['1h'];
}

export function stepFor(seconds: number): number {
  const nice = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  return nice.find((s) => seconds / s <= 90) ?? 86400;
}

/** [from, to] in unix ns (decimal strings) for the last `seconds`. */
export function lastNs(seconds: number): [string, string] {
  const to = BigInt(Date.now()) * 1_000_000n;
  return [(to - BigInt(seconds) * 1_000_000_000n).toString(), to.toString()];
}
