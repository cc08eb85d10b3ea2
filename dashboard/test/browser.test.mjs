// The dashboard in headless Chromium (Debian's, driven by playwright-core) against the real
// collector holding spans the real Rust SDK sent (tracex-demo): sign in, overview charts with data,
// a filtered search that matches the API's answer, a trace's span attributes in the side panel, a
// freshly sent span in Live within 2 s (then pause holding new spans, resume showing them, a click
// opening the trace), the audit page (no gaps, the signed checkpoint, then batches
// the SDK sealed but the test never sent, shown as a gap), sign out; then the audit page of a fresh
// collector before its first checkpoint. Any console error fails the test. Screenshots go to $SCREENSHOTS (default out/dashboard-screenshots/).
//
// Endpoints still being built elsewhere (stats, services, live) may answer 404 on this collector:
// the test probes them first and then asserts that the page says "not available" instead; their 404
// resource loads are the only console errors it tolerates.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startCollector } from './collector.mjs';

const SCREENSHOTS = process.env.SCREENSHOTS ?? join(import.meta.dirname, '..', '..', 'out', 'dashboard-screenshots');
const CHROMIUM = process.env.TRACEX_CHROMIUM ?? '/usr/bin/chromium';

let collector, browser, page;
const consoleErrors = [];
const missing = new Set(); // API paths this collector answers 404 to
let signingInWithABadKey = false; // the one step whose 401 is expected

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  collector = await startCollector();
  // Half an hour of payments, laid out in the past by their explicit times (no sleeping).
  const out = await collector.demo('--requests', '400', '--spread-s', '1800');
  assert.match(out, /delivered \d+ spans/);
  for (const path of ['/stats', '/services', '/attributes', '/live']) {
    const r = await collector.api(path);
    if (r.status === 404 && !r.headers.get('content-type')?.includes('json')) missing.add(path);
    await r.body?.cancel();
  }
  if (missing.size) console.log(`# not on this collector (404): ${[...missing].join(', ')}`);
  browser = await chromium.launch({
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
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = new URL(msg.location().url || 'http://x/', 'http://x/').pathname;
    const tolerated =
      (/status of 404/.test(msg.text()) && [...missing].some((p) => where.startsWith(`/api/v1${p}`))) ||
      (signingInWithABadKey && /status of 401/.test(msg.text()) && where === '/api/v1/traces');
    if (!tolerated) consoleErrors.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
});

after(async () => {
  await browser?.close();
  await collector?.stop();
  assert.deepEqual(consoleErrors, [], 'console errors');
});

const nav = (name) => page.getByRole('navigation').getByRole('link', { name });
const shot = (name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
const api = async (path) => (await collector.api(path)).json();

test('the page is served with its caching and security headers', async () => {
  const index = await fetch(`${collector.url}/`, { headers: { 'accept-encoding': 'br, gzip' } });
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  const html = await index.text();
  const js = html.match(/src="(\/assets\/app-[A-Z0-9]+\.js)"/)?.[1];
  assert.ok(js, `a hashed bundle in ${html}`);
  const bundle = await fetch(`${collector.url}${js}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(bundle.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal(bundle.headers.get('content-encoding'), 'gzip');
});

test('sign in with the read key', async () => {
  await page.goto(`${collector.url}/`);
  signingInWithABadKey = true;
  await page.getByLabel('Read key').fill('not-a-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Sign-in' }).waitFor();
  signingInWithABadKey = false;
  await shot('signin');
  await page.getByLabel('Read key').fill(collector.readKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
});

test('the overview draws charts from the stored spans', async () => {
  // Latest traces: from the trace listing, which every collector has.
  const recent = page.getByTestId('recent');
  await recent.waitFor();
  const listed = (await api(`/traces?limit=500&from=${(Date.now() - 3600_000) * 1e6}`)).traces.length;
  assert.ok(listed > 0);
  await recent.getByText(`${listed} latest traces`).waitFor();
  assert.equal((await recent.locator('canvas').count()) > 0, true, 'a chart canvas');
  if (missing.has('/stats')) {
    assert.ok((await page.getByTestId('not-available').count()) >= 2, 'stats panels say not available');
  } else {
    const cards = page.getByTestId('operation');
    await cards.first().waitFor();
    assert.ok((await cards.count()) >= 3, 'verify, settle and more');
    await page.getByText('POST /verify').first().waitFor();
    await page.getByTestId('networks').getByText('polygon').first().waitFor();
    // SLA badges: the demo's verify takes 20–80 ms. At 50 ms (one of the collector's exact
    // thresholds) the share is exact; at 51 ms it is the sketch's, marked "≈".
    const badge = cards.filter({ hasText: 'POST /verify' }).first().locator('.badge');
    const input = badge.locator('input');
    const threshold = async (ms) => {
      await input.fill(ms); // the field takes a value on change (commit), not on each keystroke
      await input.blur();
    };
    await threshold('51');
    await badge.getByText(/ms: ≈\d+\.\d\d %/).waitFor();
    await threshold('50');
    await badge.getByText(/ms: \d+\.\d\d %/).waitFor();
    await threshold('100');
    await badge.getByText(/ms: \d+\.\d\d %/).waitFor();
  }
  await shot('overview');
});

test('a filtered search lists exactly what the API returns', async () => {
  await nav('Search').click();
  await page.getByRole('button', { name: '+ attribute' }).click();
  await page.getByLabel('attribute 1 value').fill('polygon');
  await page.locator('select[name=range]').selectOption('all');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForURL(/attr=x402\.network%3Dpolygon/);
  const want = await api('/traces?limit=50&attr.x402.network=polygon');
  assert.ok(want.traces.length > 0, 'the demo sent polygon payments');
  const links = page.getByTestId('trace-link');
  const ids = want.traces.map((t) => t.trace_id);
  // Wait for the filtered list itself: the unfiltered list the Search page opened with has as many
  // links (50), so waiting for the count alone compared that one when the filtered fetch was slow.
  // On a timeout the comparison below shows what is on the page instead.
  await page
    .waitForFunction(
      (ids) => {
        const hrefs = [...document.querySelectorAll('[data-testid=trace-link]')].map((a) => a.getAttribute('href'));
        return hrefs.length === ids.length && hrefs.every((h, i) => h.endsWith(ids[i]));
      },
      ids,
      { timeout: 15_000 },
    )
    .catch(() => {});
  const shown = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href').split('/').pop()));
  assert.deepEqual(shown, ids);
  await shot('search');
  // Back to the unfiltered search and forward again: the URL is the query.
  await page.goBack();
  await page.waitForURL((u) => !u.hash.includes('attr='));
  await page.goForward();
  await page.waitForURL(/attr=x402\.network%3Dpolygon/);
  // Longest first is the collector's order over every matching trace, not a re-sort of a page.
  await page.locator('select[name=sort]').selectOption('duration');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForURL(/sort=duration/);
  const longest = await api('/traces?limit=50&attr.x402.network=polygon&sort=duration');
  const durations = longest.traces.map((t) => t.duration_ns);
  assert.ok(
    durations.every((d, i) => i === 0 || durations[i - 1] >= d),
    'longest first',
  );
  await page.waitForFunction(
    (first) => document.querySelector('[data-testid=trace-link]')?.getAttribute('href').endsWith(first),
    longest.traces[0].trace_id,
  );
  const sorted = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href').split('/').pop()));
  assert.deepEqual(
    sorted,
    longest.traces.map((t) => t.trace_id),
  );
});

test('a trace opens as a waterfall and the side panel shows span attributes and resource', async () => {
  // A payment that failed, if the page has one: its panel shows the exception (README screenshot).
  const failed = page.locator('tr.has-error [data-testid=trace-link]');
  const detailRequests = [];
  const onRequest = (r) => {
    const u = new URL(r.url());
    if (/^\/api\/v1\/traces\/[0-9a-f]{32}$/.test(u.pathname)) detailRequests.push(u);
  };
  page.on('request', onRequest);
  await ((await failed.count()) ? failed : page.getByTestId('trace-link')).first().click();
  await page.getByTestId('waterfall').waitFor();
  page.off('request', onRequest);
  const rows = page.getByTestId('span-row');
  assert.ok((await rows.count()) >= 4, 'resource, verify, signature, settle…');
  // The page asks for the trace with its resources shared, and its waterfall shows exactly the
  // API's spans in the API's order, each with the service named by its entry in `resources`.
  const traceId = page.url().match(/#\/trace\/([0-9a-f]{32})/)?.[1];
  assert.ok(traceId, page.url());
  assert.ok(detailRequests.length > 0, 'the page fetched the trace');
  for (const u of detailRequests) assert.equal(u.searchParams.get('resources'), 'shared', u.href);
  const detail = await api(`/traces/${traceId}?resources=shared`);
  assert.equal(detail.next_cursor, null);
  const serviceOf = (resource) =>
    resource.attributes.find((kv) => kv.key === 'service.name')?.value.stringValue ?? '(no service.name)';
  const expected = detail.spans.map((s) => {
    assert.equal(s.resource, undefined, 'no resource copy in a span');
    const service = serviceOf(detail.resources[s.resource_index]);
    assert.equal(s.service_name, service, s.name);
    return { name: s.name, service };
  });
  assert.ok(expected.length < 30, 'the whole trace fits on screen (rows are virtualized)');
  assert.deepEqual(new Set(expected.map((e) => e.service)), new Set(['demo-facilitator', 'demo-resource-server']));
  const shown = await rows.evaluateAll((rs) =>
    rs.map((r) => ({
      name: r.querySelector('.wf-label')?.textContent,
      service: r.querySelector('[data-testid=span-service]')?.getAttribute('title'),
    })),
  );
  assert.deepEqual(shown, expected);
  await rows.filter({ hasText: 'POST /verify' }).click();
  const panel = page.getByTestId('span-panel');
  await panel.getByRole('heading', { name: 'POST /verify' }).waitFor();
  const attrs = panel.getByTestId('span-attributes');
  const network = attrs.locator('tr').filter({ hasText: 'x402.network' }).locator('td');
  assert.equal(await network.textContent(), 'polygon');
  // Redacted before sealing: the secret never reached the collector.
  const auth = attrs.locator('tr').filter({ hasText: 'http.request.header.authorization' }).locator('td');
  assert.doesNotMatch((await auth.textContent()) ?? '', /sk_live/);
  // The resource, which the page resolves from the trace's shared resources (`resources=shared`):
  // each span shows its own service's, and this trace has two services.
  const resourceAttr = (key) =>
    panel
      .getByTestId('span-resource')
      .locator('tr')
      .filter({ has: page.getByRole('rowheader', { name: key, exact: true }) })
      .locator('td')
      .textContent();
  assert.equal(await resourceAttr('service.name'), 'demo-facilitator');
  assert.match((await resourceAttr('service.version')) ?? '', /^\d+\.\d+\.\d+/);
  await rows.filter({ hasText: 'POST /resource' }).click();
  await panel.getByRole('heading', { name: 'POST /resource' }).waitFor();
  assert.equal(await resourceAttr('service.name'), 'demo-resource-server');
  await rows.filter({ hasText: 'POST /verify' }).click();
  await panel.getByRole('heading', { name: 'POST /verify' }).waitFor();
  // Keyboard: arrow keys move the selection.
  await page.getByTestId('waterfall').focus();
  await page.keyboard.press('ArrowDown');
  await panel.getByRole('heading', { name: 'eip3009.verify_signature' }).waitFor();
  const errored = page.locator('.wf-row.wf-err');
  if (await errored.count()) {
    await errored.last().click();
    await panel.locator('dd.bad').getByText('error').waitFor();
  }
  await shot('trace');
});

test('a freshly sent span appears in Live within 2 s; pause, resume, a click opens the trace', async () => {
  await nav('Live').click();
  if (missing.has('/live')) {
    await page.getByTestId('not-available').waitFor();
    await shot('live');
    return;
  }
  await page.getByTestId('live-state').getByText('live').waitFor();
  await collector.demo('--requests', '1');
  const sent = Date.now();
  await page.getByTestId('live-span').filter({ hasText: 'POST /resource' }).first().waitFor({ timeout: 2000 });
  console.log(`# live: shown ${Date.now() - sent} ms after the demo flushed`);
  await shot('live');
  // Paused, new spans are held (counted on the button) and the rows stay; resuming shows them.
  const rows = page.getByTestId('live-table').locator('tbody tr');
  const shown = await rows.count();
  await page.getByTestId('pause').click();
  await collector.demo('--requests', '1');
  await page
    .getByTestId('pause')
    .filter({ hasText: /^Resume \(\d+ new\)$/ })
    .waitFor({ timeout: 5000 });
  assert.equal(await rows.count(), shown);
  await page.getByTestId('pause').click();
  await page
    .getByTestId('pause')
    .filter({ hasText: /^Pause$/ })
    .waitFor();
  assert.ok((await rows.count()) > shown);
  // A click opens the span's trace.
  await page.getByTestId('live-span').first().click();
  await page.waitForFunction(() => location.hash.startsWith('#/trace/'));
});

/** The time as the page prints it (format.ts `time`), in the browser's locale and zone. */
const pageTime = (ns) =>
  page.evaluate((ms) => new Date(ms).toLocaleString(undefined, { hour12: false }), Number(BigInt(ns) / 1_000_000n));

test('the audit page: no batch missing, and the checkpoint that covers them', async () => {
  const report = await api('/audit/gaps');
  assert.deepEqual(report.instances, [], 'the demo delivered every batch it sealed');
  assert.ok(report.batches_checked > 0);
  // Every stored batch is a leaf; the collector signs a checkpoint covering them within seconds.
  let size = 0;
  for (let i = 0; i < 100 && size !== report.batches_checked; i++) {
    const r = await collector.api('/audit/checkpoint');
    const note = await r.text(); // 404 no_checkpoint until the first one is signed
    size = r.ok ? Number(note.split('\n')[1]) : 0;
    if (size !== report.batches_checked) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(size, report.batches_checked, 'a checkpoint of every stored batch');

  await nav('Audit').click();
  await page.getByRole('heading', { name: 'Audit', exact: true }).waitFor();
  await page.getByTestId('no-gaps').getByText(`${report.batches_checked} stored batches`).waitFor();
  assert.equal(await page.getByTestId('audit-badge').count(), 0, 'no badge without gaps');

  const card = page.getByTestId('checkpoint');
  await card
    .getByTestId('checkpoint-size')
    .getByText(`${size.toLocaleString('en')} leaves`)
    .waitFor();
  const kept = (await api(`/audit/checkpoints?from_size=${size}&limit=1`)).checkpoints[0];
  assert.equal(kept.size, size);
  assert.equal(await card.getByTestId('checkpoint-root').textContent(), kept.root_hash);
  assert.equal(await card.getByTestId('checkpoint-note').textContent(), kept.note);
  assert.ok(
    (await card.getByTestId('checkpoint-time').textContent()).includes(await pageTime(kept.signed_at_unix_nano)),
  );
});

test('batches lost on the way show as a gap: instance, range, time window, badge', async () => {
  // The real SDK seals batches for this collector; #2 and #3 never reach it (a middlebox that
  // drops them), the others are posted as the SDK posts them.
  const sealed = await collector.seal('--requests', '500'); // ≈ 5 spans each, 512 a batch
  assert.ok(sealed.length >= 4, `the demo sealed ${sealed.length} batches, 4 needed`);
  assert.deepEqual(
    sealed.map((b) => b.sequence),
    sealed.map((_, i) => i + 1),
  );
  const lost = sealed.slice(1, 3);
  for (const b of [sealed[0], ...sealed.slice(3)]) assert.equal(await collector.send(b), 200);
  const [before, after] = [sealed[0], sealed[3]];

  await page.getByTestId('audit-refresh').click();
  await page.getByTestId('gap-summary').getByText('2 batches missing').waitFor();
  const rows = page.getByTestId('gap');
  assert.equal(await rows.count(), 1, 'one gap, of one instance');
  const row = rows.first();
  assert.equal(await row.getByTestId('instance').textContent(), before.instanceId);
  assert.equal(await row.getByTestId('gap-range').textContent(), '#2–#3');
  assert.equal(await row.getByTestId('gap-count').textContent(), '2');
  await row.getByText(before.sdkName).waitFor();
  await row.getByText('demo-facilitator').waitFor();
  const shown = await row.getByTestId('gap-window').textContent();
  const [from, to] = [await pageTime(before.createdAtUnixNano), await pageTime(after.createdAtUnixNano)];
  assert.ok(shown.startsWith(`${from} → ${to} (`), `${shown} is sealed ${from} → ${to}`);
  assert.equal(await page.getByTestId('audit-badge').textContent(), '2');
  // The same, as the API says it.
  const report = await api('/audit/gaps');
  assert.deepEqual(
    report.instances.map((i) => [i.instance_id, i.missing.map((m) => [m.first_sequence, m.last_sequence])]),
    [[before.instanceId, [[2, 3]]]],
  );
  await shot('audit');

  // Every instance, the complete ones too.
  await page.getByLabel('every SDK instance').check();
  await page.waitForURL(/#\/audit\?all=1/);
  const instances = page.getByTestId('instances');
  await instances.locator('tr').filter({ hasText: before.instanceId }).getByText('2 missing').waitFor();
  await instances.getByText('complete').nth(1).waitFor(); // the demo's two services, at least
  await page.getByLabel('every SDK instance').uncheck();

  // The lost batches arrive late (an SDK's spool replayed): the gap closes.
  for (const b of lost) assert.equal(await collector.send(b), 200);
  await page.getByTestId('audit-refresh').click();
  await page.getByTestId('no-gaps').waitFor();
  assert.equal(await page.getByTestId('audit-badge').count(), 0);
});

test('phone width stays readable', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await nav('Overview').click();
  await page.getByTestId('recent').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling of the page (${overflow}px)`);
  await shot('overview-phone');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('sign out forgets the key; a #key= link signs in again', async () => {
  await page.getByTestId('sign-out').click();
  await page.getByLabel('Read key').waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('tracex.readKey')), null);
  await page.goto(`${collector.url}/#key=${encodeURIComponent(collector.readKey)}`);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  assert.doesNotMatch(page.url(), /key=/, 'the key left the address bar');
});

test('before the first checkpoint the audit page says so, without a console error', async () => {
  // A fresh collector: no batch stored, so no checkpoint signed (the log signs none of 0 leaves).
  const fresh = await startCollector();
  const errors = [];
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    p.on('console', (msg) => msg.type() === 'error' && errors.push(`${msg.text()} (${msg.location().url})`));
    p.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
    await p.addInitScript((key) => localStorage.setItem('tracex.readKey', key), fresh.readKey);
    await p.goto(`${fresh.url}/#/audit`);
    await p.getByRole('heading', { name: 'Audit', exact: true }).waitFor();
    await p.getByTestId('no-checkpoint').waitFor();
    await p.getByTestId('no-gaps').getByText('No sealed batches are stored yet.').waitFor();
    assert.equal(await p.getByTestId('audit-badge').count(), 0);
    // Refreshing asks again: still no error.
    const asked = p.waitForResponse((res) => new URL(res.url()).pathname.startsWith('/api/v1/audit/checkpoint'));
    await p.getByTestId('audit-refresh').click();
    await asked;
    await p.getByTestId('no-checkpoint').waitFor();
    // Not vacuous: the log had no checkpoint all along (the API's own answer for it is a 404).
    const r = await fresh.api('/audit/checkpoint');
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, 'no_checkpoint');
    assert.deepEqual(errors, [], 'console errors on the audit page before the first checkpoint');
  } finally {
    await p.close();
    await fresh.stop();
  }
});
