// Pure waterfall computations (no DOM): rows arrive in the collector's depth-first pre-order with a
// depth each, so a span's subtree is the run of following rows deeper than it.
import type { Span } from './api';

export interface Row {
  span: Span;
  depth: number;
  start: number; // ms from the trace's start
  dur: number; // ms
  /** Index of the row after this span's subtree. */
  end: number;
  error: boolean;
}

export function rowsOf(spans: Span[]): { rows: Row[]; t0: bigint; total: number } {
  let t0 = spans.length ? BigInt(spans[0].start_time_unix_nano) : 0n;
  let t1 = t0;
  for (const s of spans) {
    const st = BigInt(s.start_time_unix_nano);
    if (st < t0) t0 = st;
    const en = st + BigInt(s.duration_ns);
    if (en > t1) t1 = en;
  }
  const rows: Row[] = spans.map((s) => ({
    span: s,
    depth: s.depth ?? 0,
    start: Number(BigInt(s.start_time_unix_nano) - t0) / 1e6,
    dur: s.duration_ns / 1e6,
    end: 0,
    error: s.status.code === 'error',
  }));
  // Each subtree ends where a row at the same or a shallower depth begins: one pass with a stack.
  const open: number[] = [];
  rows.forEach((r, i) => {
    while (open.length && rows[open[open.length - 1]].depth >= r.depth) rows[open.pop() as number].end = i;
    open.push(i);
  });
  for (const i of open) rows[i].end = rows.length;
  return { rows, t0, total: Math.max(Number(t1 - t0) / 1e6, 1e-6) };
}

/** Indices of the rows shown when the subtrees of `collapsed` rows are hidden. */
export function visibleRows(rows: Row[], collapsed: Set<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows.length; ) {
    out.push(i);
    i = collapsed.has(i) ? rows[i].end : i + 1;
  }
  return out;
}

/**
 * The critical path: the chain of work the trace's end waited on. From each root, walk back from
 * its end: the child that finished last before the cursor is on the path; the cursor moves to that
 * child's start, and the walk recurses into the child. Returns the row indices on the path.
 */
export function criticalPath(rows: Row[]): Set<number> {
  const path = new Set<number>();
  const children = (i: number): number[] => {
    const out: number[] = [];
    for (let j = i + 1; j < rows[i].end; j = rows[j].end) out.push(j);
    return out;
  };
  const visit = (i: number) => {
    const stack = [i];
    while (stack.length) {
      const k = stack.pop() as number;
      path.add(k);
      let cursor = rows[k].start + rows[k].dur;
      const kids = children(k).sort((a, b) => rows[b].start + rows[b].dur - (rows[a].start + rows[a].dur));
      for (const c of kids) {
        const end = rows[c].start + rows[c].dur;
        if (rows[c].start < cursor && end > rows[k].start) {
          stack.push(c);
          cursor = Math.min(cursor, rows[c].start);
        }
      }
    }
  };
  for (let i = 0; i < rows.length; i = rows[i].end) visit(i);
  return path;
}
