// Overview: per service and operation, rate, error rate and p50/p95/p99 over time with an SLA badge
// (a threshold per operation, kept in this browser), verify beside settle, a breakdown by
// x402.network, and the latest traces' root durations (from the trace listing, so this panel
// works on any collector). Auto-refreshes.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, type Stat, type StatGroup, type Stats, type TraceList } from '../api';
import { Chart } from '../components/chart';
import { ErrorBox } from '../components/errors';
import { ms, nsToMs, pct, rate, serviceColor } from '../format';
import { useLoad } from '../load';
import { href, navigate, type Route } from '../route';
import { lastNs, RANGES, rangeSeconds, stepFor } from '../timerange';

const REFRESH: Record<string, number> = { off: 0, '10s': 10, '30s': 30, '1m': 60 };

// === SLA thresholds, per operation ===

function slaKey(g: { service: string; name: string }) {
  return `tracex.sla.${g.service}\u0000${g.name}`;
}
function defaultSla(name: string): number {
  return /settle/i.test(name) ? 3000 : /verify/i.test(name) ? 100 : 500;
}
function getSla(g: { service: string; name: string }): number {
  return Number(localStorage.getItem(slaKey(g))) || defaultSla(g.name);
}

/** verify before settle, then the busiest first. */
function order(a: StatGroup, b: StatGroup): number {
  const rank = (n: string) => (/verify/i.test(n) ? 0 : /settle/i.test(n) ? 1 : 2);
  return a.service.localeCompare(b.service) || rank(a.name) - rank(b.name) || b.total.count - a.total.count;
}

export function Overview({ route }: { route: Route }) {
  const range = route.params.get('range') ?? '1h';
  const refresh = route.params.get('refresh') ?? '30s';
  const seconds = rangeSeconds(range);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const every = REFRESH[refresh] ?? 0;
    if (!every) return;
    const t = setInterval(() => setTick((n) => n + 1), every * 1000);
    return () => clearInterval(t);
  }, [refresh]);
  const set = (k: string, v: string) => navigate(href('overview', '', { range, refresh, [k]: v }));

  const stats = useLoad(
    (signal) => {
      const [from, to] = lastNs(seconds);
      return get<Stats>('/stats', { from, to, step: stepFor(seconds) }, signal);
    },
    [seconds, tick],
  );
  const networks = useLoad(
    (signal) => {
      const [from, to] = lastNs(seconds);
      return get<Stats>('/stats', { from, to, step: seconds, group_by: 'x402.network' }, signal);
    },
    [seconds, tick],
  );
  const recent = useLoad(
    (signal) => get<TraceList>('/traces', { from: lastNs(seconds)[0], limit: 500 }, signal),
    [seconds, tick],
  );
  const groups = useMemo(() => [...(stats.data?.groups ?? [])].sort(order).slice(0, 12), [stats.data]);

  return (
    <section aria-labelledby="overview-h">
      <div class="toolbar">
        <h1 id="overview-h">Overview</h1>
        <label>
          Range{' '}
          <select value={range} onChange={(e) => set('range', e.currentTarget.value)} data-testid="range">
            {Object.keys(RANGES).map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Refresh{' '}
          <select value={refresh} onChange={(e) => set('refresh', e.currentTarget.value)}>
            {Object.keys(REFRESH).map((r) => (
              <option value={r}>{r}</option>
            ))}
          </select>
        </label>
      </div>

      <h2>Operations</h2>
      <ErrorBox error={stats.error} what="Statistics" />
      <datalist id="sla-thresholds">
        {(stats.data?.exact_sla_thresholds_ms ?? []).map((t) => (
          <option value={t} />
        ))}
      </datalist>
      {stats.data && groups.length === 0 && <p class="muted">No spans in this range.</p>}
      <div class="grid">
        {groups.map((g) => (
          <OperationCard key={`${g.service}/${g.name}`} g={g} seconds={seconds} range={range} tick={tick} />
        ))}
      </div>

      <h2>By network (x402.network)</h2>
      <ErrorBox error={networks.error} what="The network breakdown" />
      {networks.data && <NetworkTable groups={networks.data.groups} seconds={seconds} />}

      <h2>Latest traces</h2>
      <ErrorBox error={recent.error} what="Trace listing" />
      {recent.data && <RecentTraces list={recent.data} />}
    </section>
  );
}

function Numbers({ s, seconds }: { s: Stat; seconds: number }) {
  return (
    <dl class="numbers">
      <div>
        <dt>rate</dt>
        <dd>{rate(s.count / seconds)}</dd>
      </div>
      <div>
        <dt>errors</dt>
        <dd class={s.errors ? 'bad' : ''}>{pct(s.error_rate)}</dd>
      </div>
      <div>
        <dt>p50</dt>
        <dd>{ms(s.p50_ms)}</dd>
      </div>
      <div>
        <dt>p95</dt>
        <dd>{ms(s.p95_ms)}</dd>
      </div>
      <div>
        <dt>p99</dt>
        <dd>{ms(s.p99_ms)}</dd>
      </div>
    </dl>
  );
}

function OperationCard({ g, seconds, range, tick }: { g: StatGroup; seconds: number; range: string; tick: number }) {
  const [sla, setSla] = useState(() => getSla(g));
  const compliance = useLoad(
    (signal) => {
      const [from, to] = lastNs(seconds);
      return get<Stats>('/stats', { from, to, step: seconds, service: g.service, name: g.name, sla_ms: sla }, signal);
    },
    [seconds, sla, tick],
  );
  const total = compliance.data?.groups.find((x) => x.name === g.name)?.total;
  const share = total?.sla_compliance ?? null;
  // Shares are exact at the collector's SLA thresholds, within the sketch's ±1 % elsewhere.
  const approx = total?.sla_exact === false ? '≈' : '';
  const { latency, traffic } = useMemo(() => {
    const x = g.buckets.map((b) => Number(BigInt(b.start_unix_nano) / 1_000_000_000n));
    const step = seconds / Math.max(g.buckets.length, 1);
    return {
      latency: [x, g.buckets.map((b) => b.p50_ms), g.buckets.map((b) => b.p95_ms), g.buckets.map((b) => b.p99_ms)] as [
        number[],
        ...(number | null)[][],
      ],
      traffic: [x, g.buckets.map((b) => b.count / step), g.buckets.map((b) => (b.count ? b.error_rate : null))] as [
        number[],
        ...(number | null)[][],
      ],
    };
  }, [g, seconds]);
  const badge = share === null ? 'unknown' : share >= 0.99 ? 'good' : share >= 0.95 ? 'warn' : 'bad';
  return (
    <article class="card" data-testid="operation">
      <header>
        <h3>
          <span class="dot" style={{ background: serviceColor(g.service) }} />
          {g.service} · <a href={href('search', '', { service: g.service, name: g.name, range })}>{g.name}</a>
        </h3>
        <span
          class={`badge ${badge}`}
          title={`share of spans at or under the threshold in this range${approx ? ' (approximate: exact at the suggested thresholds)' : ''}`}
        >
          SLA ≤{' '}
          <input
            type="number"
            min="1"
            value={sla}
            list="sla-thresholds"
            aria-label={`SLA threshold for ${g.name} in ms`}
            onChange={(e) => {
              const v = Number(e.currentTarget.value);
              if (v > 0) {
                localStorage.setItem(slaKey(g), String(v));
                setSla(v);
              }
            }}
          />{' '}
          ms: {compliance.error ? 'n/a' : compliance.data ? approx + pct(share, 2) : '…'}
        </span>
      </header>
      <Numbers s={g.total} seconds={seconds} />
      <Chart
        title="latency"
        data={latency}
        series={[
          { label: 'p50', color: '#16a34a' },
          { label: 'p95', color: '#d97706' },
          { label: 'p99', color: '#dc2626' },
        ]}
        yFormat={ms}
        threshold={sla}
      />
      <Chart
        title="rate and error rate"
        data={traffic}
        height={110}
        series={[
          { label: 'spans/s', color: '#2563eb', bars: true },
          { label: 'error rate', color: '#dc2626', right: true },
        ]}
        yFormat={(v) => v.toFixed(v < 10 ? 2 : 0)}
        rightFormat={(v) => pct(v, 0)}
      />
    </article>
  );
}

function NetworkTable({ groups, seconds }: { groups: StatGroup[]; seconds: number }) {
  const rows = [...groups].sort(order);
  if (!rows.length) return <p class="muted">No spans with x402.network in this range.</p>;
  return (
    <div class="scroll-x">
      <table data-testid="networks">
        <thead>
          <tr>
            <th>service</th>
            <th>operation</th>
            <th>network</th>
            <th class="num">rate</th>
            <th class="num">errors</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">p99</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((g) => (
            <tr>
              <td>{g.service}</td>
              <td>{g.name}</td>
              <td>{g.group ?? '(none)'}</td>
              <td class="num">{rate(g.total.count / seconds)}</td>
              <td class="num">{pct(g.total.error_rate)}</td>
              <td class="num">{ms(g.total.p50_ms)}</td>
              <td class="num">{ms(g.total.p95_ms)}</td>
              <td class="num">{ms(g.total.p99_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RecentTraces({ list }: { list: TraceList }) {
  const data = useMemo(() => {
    const t = [...list.traces].sort((a, b) =>
      BigInt(a.start_time_unix_nano) < BigInt(b.start_time_unix_nano) ? -1 : 1,
    );
    const x = t.map((r) => Number(BigInt(r.start_time_unix_nano) / 1_000_000n) / 1000);
    const ok = t.map((r) => (r.error_count ? null : nsToMs(r.duration_ns)));
    const bad = t.map((r) => (r.error_count ? nsToMs(r.duration_ns) : null));
    return [x, ok, bad] as [number[], ...(number | null)[][]];
  }, [list]);
  if (!list.traces.length) return <p class="muted">No traces in this range.</p>;
  const errors = list.traces.filter((t) => t.error_count).length;
  return (
    <div data-testid="recent">
      <p class="muted">
        {list.traces.length} latest traces, {errors} with errors. <a href={href('search')}>Search them</a>.
      </p>
      <Chart
        title="root span duration of the latest traces"
        data={data}
        series={[
          { label: 'ok', color: '#2563eb', points: true },
          { label: 'with errors', color: '#dc2626', points: true },
        ]}
        yFormat={ms}
        height={200}
      />
    </div>
  );
}
