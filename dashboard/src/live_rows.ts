// The Live page's rows, kept out of Preact's diff: spans arrive many times a second and the table
// holds up to 500 rows, so re-rendering the table per event (what the page did) walked every row
// each time. Here spans are queued as they arrive and applied once per animation frame: the new
// rows are built into one fragment and prepended, and the rows past the limit are removed from the
// end, so a frame costs the rows it adds and removes, and nothing reads layout.
import type { Span } from './api';
import { clock, ms, serviceColor } from './format';
import { href } from './route';

/** Spans arrived since the last frame (oldest first), and those already kept (newest first). */
export class LiveBuffer {
  /** Newest first, at most `keep`. */
  kept: Span[] = [];
  private pending: Span[] = [];

  constructor(private readonly keep: number) {}

  /** Queues spans in commit order. A hidden tab gets no frames: only the newest `keep` wait. */
  add(spans: Span[]): void {
    for (const s of spans) this.pending.push(s);
    if (this.pending.length > this.keep) this.pending.splice(0, this.pending.length - this.keep);
  }

  /** Moves the queued spans into `kept`; returns them newest first (at most `keep`). */
  take(): Span[] {
    const fresh = this.pending.reverse();
    this.pending = [];
    this.kept = fresh.concat(this.kept.slice(0, Math.max(0, this.keep - fresh.length)));
    return fresh;
  }
}

/** One `<tr>` of the live table (the markup the page rendered with Preact before). */
export function spanRow(s: Span): HTMLTableRowElement {
  const error = s.status.code === 'error';
  const tr = document.createElement('tr');
  if (error) tr.className = 'has-error';
  const cell = (cls?: string) => {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  };
  cell().textContent = clock(s.start_time_unix_nano);
  const service = cell();
  const dot = document.createElement('span');
  dot.className = 'dot';
  dot.style.background = serviceColor(s.service_name);
  service.append(dot, s.service_name ?? '');
  const a = document.createElement('a');
  a.href = `${href('trace', s.trace_id)}?span=${s.span_id}`;
  a.dataset.testid = 'live-span';
  a.textContent = s.name;
  cell().append(a);
  cell(error ? 'bad' : undefined).textContent = s.status.code;
  cell('num').textContent = ms(s.duration_ns / 1e6);
  return tr;
}

/** Prepends rows for `fresh` (newest first) and trims the table to `keep` rows. */
export function prependRows(tbody: HTMLTableSectionElement, fresh: Span[], keep: number): void {
  if (fresh.length) {
    const f = document.createDocumentFragment();
    for (const s of fresh) f.append(spanRow(s));
    tbody.prepend(f);
  }
  while (tbody.childElementCount > keep) tbody.lastElementChild?.remove();
}

/** Replaces every row with `spans` (newest first): after a pause. */
export function replaceRows(tbody: HTMLTableSectionElement, spans: Span[]): void {
  tbody.replaceChildren();
  prependRows(tbody, spans, spans.length);
}
