// The built package in headless Chromium: a page served on loopback imports the ES module, calls
// `init()` (with no argument, with a precompiled WebAssembly.Module as Workers pass it, and with the
// bytes), creates a tracer, ingests spans and awaits `flush()`, which POSTs cross-origin to the real
// collector (CORS); the test then reads the spans back from the collector. The page also checks the
// audit vectors (tests/vectors/audit.json) with the package's `audit`: a browser verifies proofs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, startCollector, recordBuffer, newTraceId, newSpanId, hex, flatten, attrs } from './helpers.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
// The installed package (the tarball's files, as a browser app would serve them).
const PACKAGE_DIR = join(require.resolve('tracex-wasm/package.json'), '..');
const CHROMIUM = process.env.TRACEX_CHROMIUM ?? '/usr/bin/chromium';
const TESTS_DIR = join(ROOT, 'tests');

const PAGE = `<!doctype html><meta charset="utf-8"><title>tracex-wasm</title>
<script type="module">
  import { init, AuditError, NativeTracer, Tracer, audit } from '/pkg/index.js';
  window.auditVectors = async () => {
    await init();
    const { checkAuditVectors } = await import('/tests/js/audit-vectors.mjs');
    const doc = await (await fetch('/tests/vectors/audit.json')).json();
    return checkAuditVectors(audit, AuditError, doc);
  };
  window.beforeInit = () => {
    try {
      new Tracer({});
      return 'no error';
    } catch (e) {
      return { name: e.name, code: e.code, message: e.message };
    }
  };
  window.traceCheckout = async (options) => {
    await init();
    const tracer = new Tracer(options);
    let ids;
    tracer.trace('GET /checkout', { kind: 'server' }, (span) => {
      span.setAttribute('x402.network', 'base-sepolia').setAttribute('page.items', 3);
      tracer.trace('render', (child) => {
        child.setAttribute('dom.nodes', 1200);
        ids = { traceId: span.traceId, rootId: span.spanId, childId: child.spanId };
      });
    });
    return { ids, report: await tracer.flush(20000) };
  };
  window.emit = async ({ how, options, records, flushMs }) => {
    const wasmUrl = new URL('/pkg/tracex_wasm_bg.wasm', location.href);
    if (how === 'default') await init();
    else if (how === 'module') await init(await WebAssembly.compileStreaming(fetch(wasmUrl)));
    else if (how === 'bytes') await init(new Uint8Array(await (await fetch(wasmUrl)).arrayBuffer()));
    const tracer = new NativeTracer(options);
    const accepted = tracer.ingest(new Uint8Array(records));
    const report = await tracer.flush(flushMs ?? 20000);
    return { accepted, report, stats: tracer.stats(), keyId: tracer.keyId };
  };
  window.ready = true;
</script>`;

const TYPES = {
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.mjs': 'text/javascript',
  '.ts': 'text/plain',
};

let server, origin, browser, collector, auditKey;
before(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(PAGE);
    }
    // The package under /pkg/; the shared audit vectors and their checker under /tests/.
    const [dir, file] = path.startsWith('/pkg/')
      ? [PACKAGE_DIR, normalize(join(PACKAGE_DIR, path.slice(5)))]
      : path.startsWith('/tests/')
        ? [TESTS_DIR, normalize(join(TESTS_DIR, path.slice(7)))]
        : [null, null];
    if (!dir || !file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': TYPES[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;
  collector = await startCollector({ corsOrigins: [origin] });
  ({ verifier_key: auditKey } = await (await fetch(`${collector.url}/v1/audit-key`)).json());
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
});
after(async () => {
  await browser?.close();
  await collector?.stop();
  await new Promise((r) => server?.close(r));
});

/** Runs `fn(arg)` in a fresh page once its module script is ready; no page error may occur. */
async function inPage(fn, arg) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ready === true);
    const out = await page.evaluate(fn, arg);
    assert.deepEqual(errors, []);
    return out;
  } finally {
    await page.close();
  }
}

function emitFromPage(how, options, spans, flushMs) {
  return inPage((arg) => window.emit(arg), {
    how,
    options,
    records: Array.from(recordBuffer(spans)),
    flushMs,
  });
}

for (const how of ['default', 'module', 'bytes']) {
  test(`a page that calls init (${how}) emits spans the collector stores`, async () => {
    const traceId = newTraceId();
    const root = {
      traceId,
      spanId: newSpanId(),
      name: 'GET /checkout',
      kind: 2,
      startMs: 0,
      endMs: 30,
      attributes: { 'x402.network': 'base', 'browser.init': how },
    };
    const child = {
      traceId,
      spanId: newSpanId(),
      parentSpanId: root.spanId,
      name: 'verify payment',
      kind: 3,
      startMs: 2,
      endMs: 25.5,
      attributes: { 'x402.amount': '250000', 'x402.valid': true, 'x402.attempt': 1 },
    };
    const out = await emitFromPage(
      how,
      {
        endpoint: collector.url,
        apiKey: collector.ingestKey,
        collectorPublicKey: collector.publicKeyPem,
        serviceName: 'checkout-page',
        collectorFingerprint: collector.fingerprint,
        auditKey,
      },
      [root, child],
    );
    assert.equal(out.accepted, 2);
    assert.deepEqual(out.report, { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });
    // The receipt header crossed CORS to the page, and the core verified it.
    assert.deepEqual([out.stats.batchesSent, out.stats.receiptsVerified, out.stats.receiptsFailed], [1, 1, 0]);
    assert.equal(out.keyId, collector.fingerprint);

    const { status, body } = await collector.trace(hex(traceId));
    assert.equal(status, 200, JSON.stringify(body));
    const [r, c] = flatten(body.spans);
    assert.equal(r.name, 'GET /checkout');
    assert.equal(r.service_name, 'checkout-page');
    assert.deepEqual(attrs(r.attributes), {
      'x402.network': { stringValue: 'base' },
      'browser.init': { stringValue: how },
    });
    assert.equal(c.parent_span_id, hex(root.spanId));
    assert.deepEqual(attrs(c.attributes), {
      'x402.amount': { stringValue: '250000' },
      'x402.valid': { boolValue: true },
      'x402.attempt': { intValue: '1' },
    });
  });
}

test('the user-facing Tracer in a page: init first, then nested spans reach the collector', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ready === true);
    const early = await page.evaluate(() => window.beforeInit());
    assert.equal(early.code, 'TRACEX_CONFIG');
    assert.match(early.message, /await init\(\)/);
    const { ids, report } = await page.evaluate((o) => window.traceCheckout(o), {
      endpoint: collector.url,
      apiKey: collector.ingestKey,
      collectorPublicKey: collector.publicKeyPem,
      serviceName: 'checkout-page',
    });
    assert.deepEqual(report, { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });
    const { status, body } = await collector.trace(ids.traceId);
    assert.equal(status, 200, JSON.stringify(body));
    const [root, child] = flatten(body.spans);
    assert.equal(root.span_id, ids.rootId);
    assert.deepEqual(attrs(root.attributes), {
      'x402.network': { stringValue: 'base-sepolia' },
      'page.items': { intValue: '3' },
    });
    assert.equal(child.span_id, ids.childId);
    assert.equal(child.parent_span_id, ids.rootId);
    assert.deepEqual(attrs(child.attributes), { 'dom.nodes': { intValue: '1200' } });
  } finally {
    await page.close();
  }
});

test('a collector that does not allow the page origin gets nothing, and the page is told so', async () => {
  const closed = await startCollector(); // no CORS origins
  try {
    const traceId = newTraceId();
    const out = await emitFromPage(
      'default',
      {
        endpoint: closed.url,
        apiKey: closed.ingestKey,
        collectorPublicKey: closed.publicKeyPem,
        serviceName: 'page',
      },
      [{ traceId, spanId: newSpanId(), name: 'x', startMs: 0, endMs: 1 }],
      2000,
    );
    // Chromium hides the CORS refusal from the page: the reason is a bare network error. The batch
    // is retried within the flush, then kept for the next one.
    assert.deepEqual(out.report, {
      spansDelivered: 0,
      spooled: 0,
      failed: 0,
      pending: 1,
      dropped: 0,
      lastError: 'Failed to fetch',
    });
    assert.ok(out.stats.batchesRetried >= 3, `retried ${out.stats.batchesRetried} times`);
    assert.equal((await closed.trace(hex(traceId))).status, 404);
  } finally {
    await closed.stop();
  }
});

test('a page verifies every audit vector with the package, or refuses it with AuditError', async () => {
  const { failures, counts } = await inPage(() => window.auditVectors());
  assert.deepEqual(failures, []);
  assert.ok(counts.receipts >= 6 && counts.refusedReceipts >= 5, JSON.stringify(counts));
  assert.ok(counts.inclusion >= 36 && counts.consistency >= 44 && counts.checkpoints >= 8, JSON.stringify(counts));
});
