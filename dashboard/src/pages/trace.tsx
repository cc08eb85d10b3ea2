// Trace: a waterfall of every span (service colour, duration bar, error marks), the critical path
// highlighted, collapsible subtrees, and a side panel with the selected span's attributes, events
// (exceptions with their stack), status and resource. Rows are virtualized (only those on screen
// exist in the DOM), so a 10,000-span trace scrolls as smoothly as a small one.
// Keys: ↑/↓ or j/k select, ←/→ collapse/expand, Home/End.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { attr, get, type KeyValue, type SharedTracePage, type Span, valueText } from '../api';
import { ErrorBox } from '../components/errors';
import { ms, serviceColor, time } from '../format';
import { href, navigate, type Route } from '../route';
import { criticalPath, rowsOf, visibleRows } from '../waterfall';

const ROW = 26;
const OVERSCAN = 12;

// Pages come with each distinct resource once (`resources=shared`): a trace has a few resources and
// thousands of spans, and repeating the resource in every span was ≈ 40 % of a page's bytes. Each
// span gets its page's resource object back (shared, not copied) for the side panel.
async function loadTrace(id: string, signal: AbortSignal, onProgress: (n: number) => void): Promise<Span[]> {
  const spans: Span[] = [];
  let cursor: string | null = null;
  do {
    const page: SharedTracePage = await get<SharedTracePage>(
      `/traces/${encodeURIComponent(id)}`,
      { cursor, limit: 10000, resources: 'shared' },
      signal,
    );
    for (const s of page.spans) spans.push(Object.assign(s, { resource: page.resources[s.resource_index] }));
    onProgress(spans.length);
    cursor = page.next_cursor;
  } while (cursor);
  return spans;
}

export function Trace({ route }: { route: Route }) {
  const id = route.arg;
  const [state, setState] = useState<{ spans?: Span[]; error?: unknown; loaded: number }>({ loaded: 0 });
  useEffect(() => {
    const ac = new AbortController();
    setState({ loaded: 0 });
    loadTrace(id, ac.signal, (loaded) => setState((s) => ({ ...s, loaded }))).then(
      (spans) => setState({ spans, loaded: spans.length }),
      (error) => ac.signal.aborted || setState({ error, loaded: 0 }),
    );
    return () => ac.abort();
  }, [id]);
  return (
    <section aria-labelledby="trace-h">
      <h1 id="trace-h">
        Trace <code>{id}</code>
      </h1>
      <ErrorBox error={state.error} what="This trace" />
      {!state.spans && !state.error && <p class="muted">Loading… {state.loaded || ''}</p>}
      {state.spans && <Waterfall key={id} spans={state.spans} route={route} />}
    </section>
  );
}

function Waterfall({ spans, route }: { spans: Span[]; route: Route }) {
  const { rows, t0, total } = useMemo(() => rowsOf(spans), [spans]);
  const critical = useMemo(() => criticalPath(rows), [rows]);
  const [collapsed, setCollapsed] = useState<Set<number>>(() => new Set());
  const visible = useMemo(() => visibleRows(rows, collapsed), [rows, collapsed]);
  const selectedId = route.params.get('span');
  const selected = Math.max(
    0,
    rows.findIndex((r) => r.span.span_id === selectedId),
  );
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  useEffect(() => {
    const el = scroller.current;
    if (el) setView({ top: el.scrollTop, height: el.clientHeight });
  }, []);

  const select = (i: number) => {
    const p = new URLSearchParams(route.params);
    p.set('span', rows[i].span.span_id);
    navigate(`${href('trace', route.arg)}?${p}`, true);
    // Keep the selection on screen.
    const el = scroller.current;
    const pos = visible.indexOf(i);
    if (el && pos >= 0) {
      if (pos * ROW < el.scrollTop) el.scrollTop = pos * ROW;
      else if ((pos + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (pos + 1) * ROW - el.clientHeight;
    }
  };
  const toggle = (i: number, open?: boolean) => {
    const next = new Set(collapsed);
    if (open ?? next.has(i)) next.delete(i);
    else next.add(i);
    setCollapsed(next);
  };
  const onKey = (e: KeyboardEvent) => {
    const pos = Math.max(0, visible.indexOf(selected));
    const r = rows[selected];
    const hasKids = r && r.end > selected + 1;
    const moves: Record<string, () => void> = {
      ArrowDown: () => select(visible[Math.min(pos + 1, visible.length - 1)]),
      j: () => select(visible[Math.min(pos + 1, visible.length - 1)]),
      ArrowUp: () => select(visible[Math.max(pos - 1, 0)]),
      k: () => select(visible[Math.max(pos - 1, 0)]),
      Home: () => select(visible[0]),
      End: () => select(visible[visible.length - 1]),
      ArrowLeft: () => (hasKids && !collapsed.has(selected) ? toggle(selected, false) : undefined),
      ArrowRight: () => (hasKids && collapsed.has(selected) ? toggle(selected, true) : undefined),
    };
    const m = moves[e.key];
    if (m) {
      e.preventDefault();
      m();
    }
  };

  const first = Math.max(0, Math.floor(view.top / ROW) - OVERSCAN);
  const last = Math.min(visible.length, Math.ceil((view.top + view.height) / ROW) + OVERSCAN);
  const errors = rows.filter((r) => r.error).length;
  const services = [...new Set(rows.map((r) => r.span.service_name))];

  return (
    <>
      <p class="muted" data-testid="trace-summary">
        {rows.length} spans · {ms(total)} · started {time(t0.toString())} · {errors} errors ·{' '}
        {services.map((s) => (
          <span class="legend">
            <span class="dot" style={{ background: serviceColor(s) }} />
            {s}{' '}
          </span>
        ))}
        · <span class="legend critical-key">critical path</span>
      </p>
      <div class="trace-layout">
        <div
          class="waterfall"
          ref={scroller}
          tabIndex={0}
          role="tree"
          aria-label="spans of the trace; arrow keys move, left and right collapse and expand"
          onKeyDown={onKey}
          onScroll={(e) => setView({ top: e.currentTarget.scrollTop, height: e.currentTarget.clientHeight })}
          data-testid="waterfall"
        >
          <div style={{ height: `${visible.length * ROW}px`, position: 'relative' }}>
            {visible.slice(first, last).map((i, k) => {
              const r = rows[i];
              const hasKids = r.end > i + 1;
              return (
                <div
                  key={i}
                  role="treeitem"
                  aria-selected={i === selected}
                  aria-expanded={hasKids ? !collapsed.has(i) : undefined}
                  class={`wf-row${i === selected ? ' selected' : ''}${critical.has(i) ? ' critical' : ''}${r.error ? ' wf-err' : ''}`}
                  style={{ transform: `translateY(${(first + k) * ROW}px)` }}
                  tabIndex={-1}
                  onClick={() => select(i)}
                  onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && select(i)}
                  data-testid="span-row"
                >
                  <div class="wf-name" style={{ paddingLeft: `${Math.min(r.depth, 30) * 12 + 4}px` }}>
                    {hasKids ? (
                      <button
                        type="button"
                        class="twisty"
                        tabIndex={-1}
                        aria-label={collapsed.has(i) ? 'expand' : 'collapse'}
                        onClick={(e) => {
                          e.stopPropagation();
                          toggle(i);
                        }}
                      >
                        {collapsed.has(i) ? '▸' : '▾'}
                      </button>
                    ) : (
                      <span class="twisty" />
                    )}
                    <span
                      class="dot"
                      title={r.span.service_name}
                      style={{ background: serviceColor(r.span.service_name) }}
                      data-testid="span-service"
                    />
                    {r.error && (
                      <span class="err-mark" title="error">
                        !
                      </span>
                    )}
                    <span class="wf-label">{r.span.name}</span>
                    {r.span.detached && <span class="muted"> ({r.span.detached.replaceAll('_', ' ')})</span>}
                  </div>
                  <div class="wf-track">
                    <span
                      class="wf-bar"
                      style={{
                        left: `${(100 * r.start) / total}%`,
                        width: `max(2px, ${(100 * r.dur) / total}%)`,
                        backgroundColor: serviceColor(r.span.service_name),
                      }}
                    />
                    <span
                      class={`wf-dur${(r.start + r.dur) / total > 0.8 ? ' inside' : ''}`}
                      style={
                        (r.start + r.dur) / total > 0.8
                          ? { right: `${100 - (100 * (r.start + r.dur)) / total}%` }
                          : { left: `${(100 * (r.start + r.dur)) / total}%` }
                      }
                    >
                      {ms(r.dur)}
                    </span>
                  </div>
                </div>
              );
            })}
          </div>
        </div>
        {rows[selected] && <SpanPanel span={rows[selected].span} offset={rows[selected].start} />}
      </div>
    </>
  );
}

function Attrs({ list, testid }: { list: KeyValue[] | undefined; testid?: string }) {
  if (!list?.length) return <p class="muted">none</p>;
  return (
    <table class="kv" data-testid={testid}>
      <tbody>
        {list.map((kv) => (
          <tr>
            <th scope="row">{kv.key}</th>
            <td class="v">{valueText(kv.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function SpanPanel({ span, offset }: { span: Span; offset: number }) {
  const t0 = BigInt(span.start_time_unix_nano);
  return (
    <aside class="panel" aria-label="selected span" data-testid="span-panel">
      <h2>{span.name}</h2>
      <dl class="meta">
        <dt>service</dt>
        <dd>
          <span class="dot" style={{ background: serviceColor(span.service_name) }} />
          {span.service_name}
        </dd>
        <dt>status</dt>
        <dd class={span.status.code === 'error' ? 'bad' : ''}>
          {span.status.code}
          {span.status.message ? `: ${span.status.message}` : ''}
        </dd>
        <dt>duration</dt>
        <dd>
          {ms(span.duration_ns / 1e6)} (at +{ms(offset)})
        </dd>
        <dt>kind</dt>
        <dd>{span.kind ?? '–'}</dd>
        <dt>span id</dt>
        <dd>
          <code>{span.span_id}</code>
        </dd>
        <dt>parent</dt>
        <dd>
          <code>{span.parent_span_id ?? '–'}</code>
        </dd>
      </dl>
      <h3>Attributes</h3>
      <Attrs list={span.attributes} testid="span-attributes" />
      <h3>Events</h3>
      {!span.events?.length && <p class="muted">none</p>}
      {span.events?.map((ev) => {
        const stack = attr(ev.attributes, 'exception.stacktrace');
        return (
          <div class={`event${ev.name === 'exception' ? ' exception' : ''}`}>
            <strong>{ev.name}</strong> <span class="muted">+{ms(Number(BigInt(ev.time_unix_nano) - t0) / 1e6)}</span>
            <Attrs list={ev.attributes.filter((a) => a.key !== 'exception.stacktrace')} />
            {stack && <pre class="stack">{stack}</pre>}
          </div>
        );
      })}
      <h3>Resource</h3>
      <Attrs list={span.resource?.attributes} testid="span-resource" />
      {span.scope?.name && (
        <p class="muted">
          scope {span.scope.name} {span.scope.version}
        </p>
      )}
      <p>
        <a href={href('search', '', { service: span.service_name, name: span.name })}>Traces with this span →</a>
      </p>
    </aside>
  );
}
