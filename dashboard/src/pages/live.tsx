// Live: spans as the collector commits them (SSE over fetch), with the search filters, pause and
// resume, and a rate counter; a click opens the span's trace. A dropped stream reconnects with a
// growing pause; `lagged` events (spans not sent to this viewer: past its rate, or while it was slow)
// are counted on screen and in the rate. Rows are written once per animation frame, outside
// Preact's diff (see `live_rows.ts`).
import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, query, type Span } from '../api';
import { ErrorBox } from '../components/errors';
import { LiveBuffer, prependRows, replaceRows } from '../live_rows';
import { href, navigate, type Route } from '../route';
import { stream } from '../sse';

const KEEP = 500;
const RATE_WINDOW_MS = 10_000;

export function Live({ route }: { route: Route }) {
  const p = route.params;
  const filters = {
    service: p.get('service') ?? '',
    name: p.get('name') ?? '',
    status: p.get('status') ?? '',
    min: p.get('min') ?? '',
    attr: p.get('attr') ?? '',
  };
  const [form, setForm] = useState(filters);
  const [shown, setShown] = useState(false);
  const [status, setStatus] = useState<{ state: string; error?: unknown }>({ state: 'connecting' });
  const [missed, setMissed] = useState(0);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const [perSecond, setPerSecond] = useState(0);
  const pausedRef = useRef(false);
  const buffer = useRef(new LiveBuffer(KEEP));
  const tbody = useRef<HTMLTableSectionElement>(null);
  const frame = useRef(0);
  const arrivals = useRef<{ t: number; n: number }[]>([]);
  const key = p.toString();

  // Applies the spans queued since the last frame: rows while live, the held count while paused.
  const flush = () => {
    frame.current = 0;
    const fresh = buffer.current.take();
    if (!fresh.length) return;
    if (pausedRef.current) return setHeld((h) => h + fresh.length);
    if (tbody.current) prependRows(tbody.current, fresh, KEEP);
    setShown(true);
  };
  const schedule = () => {
    if (!frame.current) frame.current = requestAnimationFrame(flush);
  };
  useEffect(() => () => cancelAnimationFrame(frame.current), []);

  useEffect(() => {
    // New filters, a new stream: the rows, the held count and the rate of the old one go.
    buffer.current = new LiveBuffer(KEEP);
    arrivals.current = [];
    tbody.current?.replaceChildren();
    setShown(false);
    setHeld(0);
    setMissed(0);
    setPerSecond(0);
    const ac = new AbortController();
    const [k, v] = filters.attr.includes('=') ? filters.attr.split(/=(.*)/s) : ['', ''];
    const path = `/live${query({
      service: filters.service,
      name: filters.name,
      status: filters.status,
      min_duration_ms: filters.min,
      ...(k ? { [`attr.${k}`]: v } : {}),
    })}`;
    let delay = 500;
    (async () => {
      while (!ac.signal.aborted) {
        setStatus({ state: 'connecting' });
        try {
          const opened = () => {
            setStatus({ state: 'live' });
            delay = 500;
          };
          await stream(path, ac.signal, opened, (e) => {
            if (e.event === 'spans') {
              const got: Span[] = JSON.parse(e.data).spans ?? [];
              arrivals.current.push({ t: Date.now(), n: got.length });
              buffer.current.add(got);
              schedule();
            } else if (e.event === 'lagged') {
              // Skipped for this page (past the collector's per-viewer rate, or while it was slow):
              // still spans that happened, so they count in the rate.
              const n = JSON.parse(e.data).missed ?? 0;
              arrivals.current.push({ t: Date.now(), n });
              setMissed((m) => m + n);
            }
          });
          if (ac.signal.aborted) return;
          setStatus({ state: 'the stream ended; reconnecting' });
        } catch (error) {
          if (ac.signal.aborted) return;
          // Reconnecting cannot fix a missing endpoint or a refused key.
          if (error instanceof ApiError && [401, 403, 404].includes(error.status))
            return setStatus({ state: 'stopped', error });
          setStatus({ state: 'reconnecting', error });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15_000);
      }
    })();
    return () => ac.abort();
  }, [key]);

  useEffect(() => {
    const t = setInterval(() => {
      const now = Date.now();
      arrivals.current = arrivals.current.filter((a) => now - a.t < RATE_WINDOW_MS);
      setPerSecond(arrivals.current.reduce((s, a) => s + a.n, 0) / (RATE_WINDOW_MS / 1000));
    }, 1000);
    return () => clearInterval(t);
  }, []);

  const togglePause = () => {
    pausedRef.current = !paused;
    setPaused(!paused);
    if (paused) {
      buffer.current.take();
      if (tbody.current) replaceRows(tbody.current, buffer.current.kept);
      setShown(buffer.current.kept.length > 0);
      setHeld(0);
    }
  };
  const apply = (e: Event) => {
    e.preventDefault();
    navigate(href('live', '', form));
  };

  return (
    <section aria-labelledby="live-h">
      <div class="toolbar">
        <h1 id="live-h">Live</h1>
        <span class={`pill ${status.state === 'live' ? 'good' : ''}`} data-testid="live-state">
          {status.state}
        </span>
        <span data-testid="live-rate">{perSecond.toFixed(1)} spans/s</span>
        {missed > 0 && (
          <span class="pill warn" title="past the collector's live rate per viewer, or while this page was slow">
            {missed} not shown
          </span>
        )}
        <button type="button" onClick={togglePause} aria-pressed={paused} data-testid="pause">
          {paused ? `Resume${held ? ` (${held} new)` : ''}` : 'Pause'}
        </button>
      </div>
      <form class="filters" onSubmit={apply}>
        {(['service', 'name', 'min', 'attr'] as const).map((f) => (
          <label>
            {{ service: 'Service', name: 'Span name', min: 'Min ms', attr: 'Attribute key=value' }[f]}
            <input value={form[f]} onInput={(e) => setForm({ ...form, [f]: e.currentTarget.value })} name={f} />
          </label>
        ))}
        <label>
          Status
          <select value={form.status} onChange={(e) => setForm({ ...form, status: e.currentTarget.value })}>
            <option value="">any</option>
            <option value="ok">ok</option>
            <option value="error">error</option>
            <option value="unset">unset</option>
          </select>
        </label>
        <div class="actions">
          <button type="submit" class="primary">
            Apply
          </button>
        </div>
      </form>
      <ErrorBox error={status.error} what="Live tail" />
      <div class="scroll-x">
        <table class="results" data-testid="live-table">
          <thead>
            <tr>
              <th>time</th>
              <th>service</th>
              <th>span</th>
              <th>status</th>
              <th class="num">duration</th>
            </tr>
          </thead>
          <Rows tbody={tbody} />
        </table>
      </div>
      {!shown && status.state === 'live' && <p class="muted">Waiting for spans…</p>}
    </section>
  );
}

/** The table body, written by `live_rows.ts` only: Preact renders it once and never diffs it. */
class Rows extends Component<{ tbody: { current: HTMLTableSectionElement | null } }> {
  shouldComponentUpdate() {
    return false;
  }
  render() {
    return <tbody ref={this.props.tbody} />;
  }
}
