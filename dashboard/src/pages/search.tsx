// Search: every filter of the trace listing (service, name, status, duration, time range, any
// attribute with key and value suggestions), page by page through `next_cursor`, sorted by time or
// duration. The URL holds the query and the page, so it can be shared and the back button works.
import { useEffect, useState } from 'preact/hooks';
import { get, type Params, type Services, type TraceList } from '../api';
import { ErrorBox } from '../components/errors';
import { ms, nsToMs, serviceColor, time } from '../format';
import { href, navigate, type Route } from '../route';
import { lastNs, RANGES, rangeSeconds } from '../timerange';

interface Form {
  service: string;
  name: string;
  status: string;
  min: string;
  max: string;
  range: string;
  sort: string;
  attrs: { key: string; value: string }[];
}

function formOf(p: URLSearchParams): Form {
  const attrs = p.getAll('attr').map((a) => {
    const i = a.indexOf('=');
    return { key: i < 0 ? a : a.slice(0, i), value: i < 0 ? '' : a.slice(i + 1) };
  });
  return {
    service: p.get('service') ?? '',
    name: p.get('name') ?? '',
    status: p.get('status') ?? '',
    min: p.get('min') ?? '',
    max: p.get('max') ?? '',
    range: p.get('range') ?? '24h',
    sort: p.get('sort') ?? 'time',
    attrs,
  };
}

function hashOf(f: Form, cursor?: string): string {
  const q = new URLSearchParams();
  for (const k of ['service', 'name', 'status', 'min', 'max', 'range', 'sort'] as const) if (f[k]) q.set(k, f[k]);
  for (const a of f.attrs) if (a.key.trim()) q.append('attr', `${a.key.trim()}=${a.value}`);
  if (cursor) q.set('cursor', cursor);
  return `#/search?${q}`;
}

function apiParams(f: Form, cursor: string | null): Params {
  const p: Params = {
    service: f.service,
    name: f.name,
    status: f.status,
    min_duration_ms: f.min,
    max_duration_ms: f.max,
    limit: 50,
    cursor,
    // The collector sorts (longest first across every matching trace, not just this page).
    sort: f.sort === 'duration' ? 'duration' : undefined,
  };
  if (f.range !== 'all') p.from = lastNs(rangeSeconds(f.range))[0];
  for (const a of f.attrs) if (a.key.trim()) p[`attr.${a.key.trim()}`] = a.value;
  return p;
}

/** Suggestions from an endpoint that may not exist yet on this collector: none then, quietly noted. */
function useSuggestions<T>(path: string | null, params: Params, pick: (r: T) => string[]): [string[], unknown] {
  const [state, setState] = useState<[string[], unknown]>([[], null]);
  const key = `${path}?${JSON.stringify(params)}`;
  useEffect(() => {
    if (!path) return setState([[], null]);
    const ac = new AbortController();
    const t = setTimeout(() => {
      get<T>(path, params, ac.signal).then(
        (r) => setState([pick(r), null]),
        (e) => ac.signal.aborted || setState([[], e]),
      );
    }, 150);
    return () => {
      clearTimeout(t);
      ac.abort();
    };
  }, [key]);
  return state;
}

export function Search({ route }: { route: Route }) {
  const applied = formOf(route.params);
  const cursor = route.params.get('cursor');
  const [form, setForm] = useState<Form>(applied);
  const [result, setResult] = useState<{ data?: TraceList; error?: unknown; loading: boolean }>({ loading: true });
  const routeKey = route.params.toString();
  useEffect(() => setForm(formOf(route.params)), [routeKey]);
  useEffect(() => {
    const ac = new AbortController();
    setResult((r) => ({ ...r, loading: true }));
    get<TraceList>('/traces', apiParams(applied, cursor), ac.signal).then(
      (data) => setResult({ data, loading: false }),
      (error) => ac.signal.aborted || setResult({ error, loading: false }),
    );
    return () => ac.abort();
  }, [routeKey]);

  const [services, servicesError] = useSuggestions<Services>('/services', {}, (r) => r.services.map((s) => s.name));
  const [operations] = useSuggestions<Services>('/services', {}, (r) =>
    r.services.filter((s) => !form.service || s.name === form.service).flatMap((s) => s.operations.map((o) => o.name)),
  );
  const [keys, keysError] = useSuggestions<{ keys: { key: string }[] }>('/attributes', { service: form.service }, (r) =>
    r.keys.map((k) => k.key),
  );

  const update = (patch: Partial<Form>) => setForm({ ...form, ...patch });
  const setAttr = (i: number, patch: Partial<{ key: string; value: string }>) =>
    update({ attrs: form.attrs.map((a, j) => (i === j ? { ...a, ...patch } : a)) });
  const submit = (e: Event) => {
    e.preventDefault();
    navigate(hashOf(form));
  };

  const rows = result.data?.traces ?? [];
  const maxDur = Math.max(1, ...rows.map((r) => r.duration_ns));

  return (
    <section aria-labelledby="search-h">
      <h1 id="search-h">Search</h1>
      <form class="filters" onSubmit={submit} data-testid="search-form">
        <label>
          Service
          <input
            list="dl-services"
            value={form.service}
            onInput={(e) => update({ service: e.currentTarget.value })}
            name="service"
          />
        </label>
        <label>
          Span name
          <input
            list="dl-operations"
            value={form.name}
            onInput={(e) => update({ name: e.currentTarget.value })}
            name="name"
          />
        </label>
        <label>
          Status
          <select value={form.status} onChange={(e) => update({ status: e.currentTarget.value })} name="status">
            <option value="">any</option>
            <option value="ok">ok</option>
            <option value="error">error</option>
            <option value="unset">unset</option>
          </select>
        </label>
        <label>
          Min ms
          <input
            type="number"
            min="0"
            value={form.min}
            onInput={(e) => update({ min: e.currentTarget.value })}
            name="min"
          />
        </label>
        <label>
          Max ms
          <input
            type="number"
            min="0"
            value={form.max}
            onInput={(e) => update({ max: e.currentTarget.value })}
            name="max"
          />
        </label>
        <label>
          Started in the last
          <select value={form.range} onChange={(e) => update({ range: e.currentTarget.value })} name="range">
            {Object.keys(RANGES).map((r) => (
              <option value={r}>{r}</option>
            ))}
            <option value="all">any time</option>
          </select>
        </label>
        <label>
          Sort
          <select value={form.sort} onChange={(e) => update({ sort: e.currentTarget.value })} name="sort">
            <option value="time">newest first</option>
            <option value="duration">longest first</option>
          </select>
        </label>
        <fieldset class="attrs">
          <legend>Attributes</legend>
          {form.attrs.map((a, i) => (
            <AttrRow
              i={i}
              a={a}
              service={form.service}
              onChange={(p) => setAttr(i, p)}
              onRemove={() => update({ attrs: form.attrs.filter((_, j) => j !== i) })}
            />
          ))}
          <button type="button" onClick={() => update({ attrs: [...form.attrs, { key: 'x402.network', value: '' }] })}>
            + attribute
          </button>
        </fieldset>
        <div class="actions">
          <button type="submit" class="primary">
            Search
          </button>
          <a href="#/search">Clear</a>
        </div>
        <datalist id="dl-services">
          {services.map((s) => (
            <option value={s} />
          ))}
        </datalist>
        <datalist id="dl-operations">
          {[...new Set(operations)].map((s) => (
            <option value={s} />
          ))}
        </datalist>
        <datalist id="dl-keys">
          {keys.map((s) => (
            <option value={s} />
          ))}
        </datalist>
      </form>
      <SuggestionNotice errors={[servicesError, keysError]} />

      <ErrorBox error={result.error} what="Trace search" />
      {result.data && (
        <>
          <p class="muted" aria-live="polite">
            {result.loading ? 'Loading…' : `${rows.length} traces on this page${cursor ? ' (a later page)' : ''}.`}
          </p>
          <div class="scroll-x">
            <table class="results" data-testid="results">
              <thead>
                <tr>
                  <th>started</th>
                  <th>service</th>
                  <th>root span</th>
                  <th class="num">spans</th>
                  <th class="num">errors</th>
                  <th>duration</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((t) => (
                  <tr class={t.error_count ? 'has-error' : ''}>
                    <td>{time(t.start_time_unix_nano)}</td>
                    <td>
                      {t.root_service === null ? (
                        <span class="muted">–</span>
                      ) : (
                        <>
                          <span class="dot" style={{ background: serviceColor(t.root_service) }} />
                          {t.root_service}
                        </>
                      )}
                    </td>
                    <td>
                      <a href={href('trace', t.trace_id)} data-testid="trace-link">
                        {t.root_name || '(root not stored)'}
                      </a>
                    </td>
                    <td class="num">{t.span_count}</td>
                    <td class={`num ${t.error_count ? 'bad' : ''}`}>{t.error_count}</td>
                    <td class="dur">
                      <span class="durbar" style={{ width: `${(100 * t.duration_ns) / maxDur}%` }} />
                      {ms(nsToMs(t.duration_ns))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="pager">
            {cursor && (
              <button type="button" onClick={() => history.back()}>
                ← previous page
              </button>
            )}
            {result.data.next_cursor && (
              <a class="button" href={hashOf(applied, result.data.next_cursor)} data-testid="next-page">
                next page →
              </a>
            )}
          </div>
        </>
      )}
    </section>
  );
}

function AttrRow(props: {
  i: number;
  a: { key: string; value: string };
  service: string;
  onChange: (p: Partial<{ key: string; value: string }>) => void;
  onRemove: () => void;
}) {
  const { i, a, service } = props;
  const [values] = useSuggestions<{ values: { value: string }[] }>(
    a.key.trim() ? `/attributes/${encodeURIComponent(a.key.trim())}/values` : null,
    { service, prefix: a.value, limit: 20 },
    (r) => r.values.map((v) => v.value),
  );
  return (
    <div class="attr-row">
      <input
        list="dl-keys"
        aria-label={`attribute ${i + 1} key`}
        placeholder="key"
        value={a.key}
        onInput={(e) => props.onChange({ key: e.currentTarget.value })}
      />
      =
      <input
        list={`dl-values-${i}`}
        aria-label={`attribute ${i + 1} value`}
        placeholder="value"
        value={a.value}
        onInput={(e) => props.onChange({ value: e.currentTarget.value })}
      />
      <datalist id={`dl-values-${i}`}>
        {values.map((v) => (
          <option value={v} />
        ))}
      </datalist>
      <button type="button" aria-label={`remove attribute ${i + 1}`} onClick={props.onRemove}>
        ×
      </button>
    </div>
  );
}

function SuggestionNotice({ errors }: { errors: unknown[] }) {
  const e = errors.find(Boolean);
  if (!e) return null;
  return <ErrorBox error={e} what="Suggestions for services and attributes" />;
}
