// The browser half of scripts/bench-collector.sh (issue #14's benchmarks), in headless Chromium
// (Debian's, driven by playwright-core, launched as dashboard/test/browser.test.mjs does) against the
// release collector holding the loaded spans:
//
// * Waterfall: the dashboard shows a small trace, then the route changes to the 10,000-span trace
//   (`location.hash = '#/trace/<id>'`, what a click on a search result does). Timed from that
//   assignment to the start of the first animation frame after the one in which the waterfall's
//   rows are in the DOM and the summary says 10000 spans — that frame has been painted. The fetch
//   of the trace (Resource Timing) is reported beside it. Also a cold page load of the trace's URL
//   (navigation start to the same frame), where the bundle loads too.
// * Live: the Live page filtered to the probe spans (`#/live?name=live-probe`) while
//   `tracex-bench-collector live` runs (ingest phases with and without 50 viewers, then probes
//   over background ingest). A MutationObserver notes each probe row; the time is taken in the
//   next animation frame (`performance.timeOrigin + performance.now()`, the machine's clock, as the
//   bench program's) and compared with the probe's send and acknowledgement times.
//
//   node bench/collector.mjs            (env from scripts/bench-collector.sh)
//   node bench/collector.mjs summary OUT_DIR
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CHROMIUM = process.env.TRACEX_CHROMIUM ?? '/usr/bin/chromium';

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length, Math.max(1, Math.ceil(p * s.length))) - 1];
  return { n: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s[s.length - 1] };
}

if (process.argv[2] === 'summary') {
  summary(process.argv[3]);
} else {
  await run();
}

async function run() {
  const { chromium } = await import('playwright-core');
  const env = (k) => {
    const v = process.env[k];
    if (!v) throw new Error(`${k} is not set (run scripts/bench-collector.sh)`);
    return v;
  };
  const url = env('BENCH_URL');
  const out = env('BENCH_OUT');
  const meta = JSON.parse(readFileSync(env('BENCH_META'), 'utf8'));
  const runs = Number(process.env.BENCH_RENDER_RUNS ?? 15);
  const results = {};
  const consoleErrors = [];

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    // --- Waterfall of the 10,000-span trace.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`waterfall: ${m.text()}`));
    page.on('pageerror', (e) => consoleErrors.push(`waterfall: uncaught ${e.message}`));
    // The key from the fragment, as run.sh's link does; then an empty route of the app.
    await page.goto(`${url}/#key=${env('BENCH_READ_KEY')}`);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const big = meta.big_trace_id;
    const small = meta.small_trace_ids;
    const route = [];
    for (let i = 0; i < runs + 2; i++) {
      // A small trace first (the Trace page keeps nothing between traces: its state is per id).
      const s = small[i % small.length];
      await page.evaluate((id) => {
        location.hash = `#/trace/${id}`;
      }, s);
      await page.waitForFunction(() => {
        const t = document.querySelector('[data-testid=trace-summary]')?.textContent ?? '';
        return /^\d+ spans/.test(t) && !t.startsWith('10000 spans');
      });
      await page.waitForTimeout(300);
      const r = await page.evaluate(
        (id) =>
          new Promise((resolve) => {
            performance.clearResourceTimings();
            const t0 = performance.now();
            location.hash = `#/trace/${id}`;
            const poll = () => {
              const summary = document.querySelector('[data-testid=trace-summary]')?.textContent ?? '';
              const rows = document.querySelectorAll('[data-testid=waterfall] [role=treeitem]').length;
              if (summary.startsWith('10000 spans') && rows > 0) {
                const inDom = performance.now() - t0;
                requestAnimationFrame(() => {
                  const painted = performance.now() - t0;
                  const fetch = performance
                    .getEntriesByType('resource')
                    .filter((e) => e.name.includes(`/api/v1/traces/${id}`))
                    .pop();
                  resolve({
                    inDom,
                    painted,
                    rows,
                    fetch: fetch ? fetch.responseEnd - fetch.startTime : null,
                    fetchStart: fetch ? fetch.startTime - t0 : null,
                    bytes: fetch ? fetch.encodedBodySize : null,
                  });
                });
              } else requestAnimationFrame(poll);
            };
            requestAnimationFrame(poll);
          }),
        big,
      );
      if (i >= 2) route.push(r); // two warm-ups: the JIT and the collector's page cache
    }
    results.waterfall_route = {
      painted: stats(route.map((r) => r.painted)),
      in_dom: stats(route.map((r) => r.inDom)),
      fetch: stats(route.map((r) => r.fetch ?? NaN)),
      rows_in_dom: route[0]?.rows,
      body_bytes: route[0]?.bytes,
    };
    console.log(
      `waterfall (route change → painted rows), ${route.length} runs: p50 ${results.waterfall_route.painted.p50.toFixed(0)} ms, ` +
        `p95 ${results.waterfall_route.painted.p95.toFixed(0)} ms, max ${results.waterfall_route.painted.max.toFixed(0)} ms; ` +
        `of which fetching the trace p50 ${results.waterfall_route.fetch.p50.toFixed(0)} ms (${route[0]?.bytes} bytes, ${route[0]?.rows} rows in the DOM)`,
    );

    // Cold: a fresh page load of the trace's URL, timed from navigation start.
    await page.addInitScript(() => {
      if (!location.hash.startsWith('#/trace/')) return;
      const poll = () => {
        const summary = document.querySelector('[data-testid=trace-summary]')?.textContent ?? '';
        if (summary.startsWith('10000 spans') && document.querySelector('[data-testid=waterfall] [role=treeitem]')) {
          requestAnimationFrame(() => {
            window.__benchPainted = performance.now();
          });
        } else requestAnimationFrame(poll);
      };
      requestAnimationFrame(poll);
    });
    const cold = [];
    for (let i = 0; i < Math.max(10, Math.floor(runs / 1.5)) + 1; i++) {
      await page.goto('about:blank');
      await page.goto(`${url}/#/trace/${big}`);
      const t = await (await page.waitForFunction(() => window.__benchPainted, null, { timeout: 30_000 })).jsonValue();
      if (i >= 1) cold.push(t);
    }
    results.waterfall_cold = { painted: stats(cold) };
    console.log(
      `waterfall (cold page load → painted rows), ${cold.length} runs: p50 ${results.waterfall_cold.painted.p50.toFixed(0)} ms, p95 ${results.waterfall_cold.painted.p95.toFixed(0)} ms`,
    );
    await ctx.close();

    // --- Live page during the live benchmark.
    const live = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const lp = await live.newPage();
    lp.on('console', (m) => m.type() === 'error' && consoleErrors.push(`live: ${m.text()}`));
    lp.on('pageerror', (e) => consoleErrors.push(`live: uncaught ${e.message}`));
    await lp.goto(`${url}/#key=${env('BENCH_LIVE_READ_KEY')}`);
    await lp.getByRole('heading', { name: 'Overview' }).waitFor();
    await lp.evaluate(() => {
      location.hash = '#/live?name=live-probe';
    });
    await lp
      .getByTestId('live-state')
      .filter({ hasText: /^live$/ })
      .waitFor();
    await lp.evaluate(() => {
      window.__probes = {};
      const tbody = document.querySelector('[data-testid=live-table] tbody');
      new MutationObserver(() => {
        const dom = performance.timeOrigin + performance.now();
        const fresh = [];
        for (const a of tbody.querySelectorAll('a[data-testid=live-span]')) {
          const id = a.getAttribute('href')?.split('span=')[1];
          if (id && !(id in window.__probes)) {
            window.__probes[id] = { dom };
            fresh.push(id);
          }
        }
        if (fresh.length)
          requestAnimationFrame(() => {
            const frame = performance.timeOrigin + performance.now();
            for (const id of fresh) window.__probes[id].frame = frame;
          });
      }).observe(tbody, { childList: true, subtree: true });
    });
    // The page's clock against this process's (both the machine's wall clock).
    const skew = await lp.evaluate(() => performance.timeOrigin + performance.now() - Date.now());

    const probesPath = join(out, 'probes.json');
    const args = [
      'live',
      '--url',
      url,
      '--ingest-key',
      env('BENCH_LIVE_INGEST_KEY'),
      '--read-key',
      env('BENCH_LIVE_READ_KEY'),
      '--out',
      join(out, 'live.json'),
      '--probes',
      probesPath,
      '--collector-pid',
      env('BENCH_COLLECTOR_PID'),
      '--rounds',
      process.env.BENCH_LIVE_ROUNDS ?? '2',
      '--phase-batches',
      process.env.BENCH_PHASE_BATCHES ?? '400',
      '--lag-seconds',
      process.env.BENCH_LAG_SECONDS ?? '30',
      '--lag-rate',
      process.env.BENCH_LAG_RATE ?? '20000',
    ];
    const code = await new Promise((resolve) => {
      const child = spawn(env('BENCH_BIN'), args, { stdio: 'inherit' });
      // Stopped from outside (the script's trap): the benchmark program stops too.
      const stop = () => {
        child.kill('SIGTERM');
        process.exit(143);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      child.on('exit', (c) => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        resolve(c);
      });
    });
    if (code !== 0) throw new Error(`tracex-bench-collector live exited with ${code}`);
    await lp.waitForTimeout(500);
    const seen = await lp.evaluate(() => window.__probes);
    const probes = JSON.parse(readFileSync(probesPath, 'utf8'));
    results.lag_page = [];
    for (const viewers of [...new Set(probes.map((p) => p.viewers))]) {
      const fromSend = [];
      const fromAck = [];
      let missing = 0;
      const these = probes.filter((p) => p.viewers === viewers);
      for (const p of these) {
        const s = seen[p.span_id];
        if (!s?.frame) {
          missing++;
          continue;
        }
        fromSend.push(s.frame - p.sent_unix_ms);
        fromAck.push(s.frame - p.acked_unix_ms);
      }
      const r = {
        viewers,
        probes: these.length,
        missing,
        from_send: stats(fromSend),
        from_ack: stats(fromAck),
        clock_skew_ms: skew,
      };
      results.lag_page.push(r);
      console.log(
        `Live page (${viewers} other viewers): ${r.probes} probes, ${missing} not shown; lag from send p50 ${r.from_send.p50?.toFixed(1)} ` +
          `p99 ${r.from_send.p99?.toFixed(1)} max ${r.from_send.max?.toFixed(1)} ms; from ack p50 ` +
          `${r.from_ack.p50?.toFixed(1)} p99 ${r.from_ack.p99?.toFixed(1)} ms`,
      );
    }
    await live.close();
  } finally {
    await browser.close();
  }
  results.console_errors = consoleErrors;
  if (consoleErrors.length) console.log(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  writeFileSync(join(out, 'browser.json'), JSON.stringify(results, null, 2));
}

function summary(dir) {
  const read = (f) => {
    try {
      return JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch {
      return null;
    }
  };
  const meta = read('meta.json');
  const q = read('query.json') ?? {};
  const live = read('live.json') ?? {};
  const b = read('browser.json') ?? {};
  const f = (v, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : 'n/a');
  const rows = [];
  // `met` is true, false, 'undecided' (the lag's bounds lie on both sides of the target) or absent.
  const verdict = (met) => (met === undefined ? '' : met === 'undecided' ? 'undecided' : met ? 'met' : 'MISSED');
  const row = (what, target, result, met) => rows.push([what, target, result, verdict(met)]);
  // The lag lies between its lower bound (from the acknowledgement) and its upper bound (from the
  // request), so the target is met when the upper bound meets it, missed when the lower one does not.
  const lagVerdict = (l) =>
    l.missing > 0 || l.from_ack.p99 > 250 ? false : l.from_send.p99 <= 250 ? true : 'undecided';
  const s = q['search: all'];
  row(
    'filtered trace search (all kinds)',
    'p95 ≤ 50 ms',
    s && `p50 ${f(s.p50)} / p95 ${f(s.p95)} / max ${f(s.max)} ms (${s.n} runs)`,
    s && s.p95 <= 50,
  );
  for (const [k, v] of Object.entries(q)) {
    if (k.startsWith('search: ') && k !== 'search: all')
      row(`  ${k.slice(8)}`, '', `p50 ${f(v.p50)} / p95 ${f(v.p95)} / max ${f(v.max)} ms`);
  }
  const d = q['stats: 24 h, one service by span name'];
  row(
    '24-hour stats, one service by span name',
    'p95 ≤ 100 ms',
    d && `p50 ${f(d.p50)} / p95 ${f(d.p95)} / max ${f(d.max)} ms`,
    d && d.p95 <= 100,
  );
  for (const k of [
    'stats: 30 d, one service by span name',
    'stats: 30 d, every service',
    'stats: 30 d, one service, by x402.network',
  ]) {
    const v = q[k];
    row(
      `30-day stats (${k.slice(12)})`,
      '≤ 300 ms',
      v && `p50 ${f(v.p50)} / p95 ${f(v.p95)} / max ${f(v.max)} ms`,
      v && v.max <= 300,
    );
  }
  // What the dashboard fetches (resources=shared) against the target; the default shape beside it.
  const size = (v) => (typeof v?.bytes === 'number' ? `; ${v.bytes.toLocaleString('en-US')} bytes` : '');
  const t = q['trace: the 10,000-span trace, resources=shared'];
  row(
    '10,000-span trace served (resources=shared)',
    '≤ 100 ms',
    t && `p50 ${f(t.p50)} / p95 ${f(t.p95)} / max ${f(t.max)} ms${size(t)}`,
    t && t.p95 <= 100,
  );
  const ti = q['trace: the 10,000-span trace, resources inline'];
  row(
    '  the same, resources inline (default)',
    '',
    ti && `p50 ${f(ti.p50)} / p95 ${f(ti.p95)} / max ${f(ti.max)} ms${size(ti)}`,
  );
  const w = b.waterfall_route?.painted;
  row(
    'waterfall render in Chromium (route change)',
    '≤ 500 ms',
    w &&
      `p50 ${f(w.p50, 0)} / p95 ${f(w.p95, 0)} / max ${f(w.max, 0)} ms (${w.n} runs; fetch p50 ${f(b.waterfall_route.fetch.p50, 0)} ms)`,
    w && w.p95 <= 500,
  );
  const c = b.waterfall_cold?.painted;
  row('  cold page load of the trace URL', '', c && `p50 ${f(c.p50, 0)} / p95 ${f(c.p95, 0)} ms (${c.n} runs)`);
  for (const lp of b.lag_page ?? []) {
    row(
      `live-tail lag, commit → Live page (${lp.viewers} other viewers)`,
      'p99 ≤ 250 ms',
      `p99 between ${f(lp.from_ack.p99)} (from ack) and ${f(lp.from_send.p99)} ms (from send); p50 ${f(lp.from_send.p50)} ms; ${lp.missing}/${lp.probes} missing`,
      lagVerdict(lp),
    );
  }
  for (const ls of live.lag_sse ?? []) {
    row(
      `live-tail lag, commit → SSE client (${ls.viewers} other viewers)`,
      'p99 ≤ 250 ms',
      `p99 between ${f(ls.from_ack.p99)} and ${f(ls.from_send.p99)} ms; p50 ${f(ls.from_send.p50)} ms; ${ls.missing}/${ls.probes} missing`,
      lagVerdict(ls),
    );
  }
  const th = live.throughput;
  row(
    `ingest with ${th?.viewers_n ?? 50} live viewers vs none`,
    'within 10 %',
    th && `${f(th.mean_viewers, 0)} vs ${f(th.mean_none, 0)} spans/s: ratio ${f(th.ratio, 3)}`,
    th && th.ratio >= 0.9,
  );
  if (meta) {
    row(
      'load through the Rust SDK',
      '',
      `${meta.spans} spans in ${f(meta.load_seconds, 0)} s: ${f(meta.load_spans_per_second, 0)} spans/s`,
    );
    row(
      'bytes on disk per stored span',
      'report',
      `${f(meta.disk.bytes_per_span, 0)} B (${f(meta.disk.db_bytes / 1e9, 2)} GB database, WAL checkpointed)`,
    );
  }
  const wid = [0, 1, 2].map((i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  console.log('\n== scripts/bench-collector.sh summary');
  for (const r of [['benchmark', 'target', 'result', ''], ...rows])
    console.log(
      `${String(r[0] ?? '').padEnd(wid[0])}  ${String(r[1] ?? '').padEnd(wid[1])}  ${String(r[2] ?? 'n/a').padEnd(wid[2])}  ${r[3]}`,
    );
  try {
    console.log(`\nload average:\n${readFileSync(join(dir, 'loadavg.txt'), 'utf8')}`);
  } catch {}
}
