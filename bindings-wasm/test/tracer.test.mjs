// The user-facing API of the built package in Node (`Tracer` from the JS layer shared with the Node
// package, over the WASM backend), with no init call, against the real collector.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tracer, init, ConfigError, TracexError } from 'tracex-wasm';
import { startCollector, flatten, attrs } from './helpers.mjs';

let collector;
before(async () => {
  collector = await startCollector();
});
after(async () => {
  await collector?.stop();
});

const options = (extra = {}) => ({
  endpoint: collector.url,
  apiKey: collector.ingestKey,
  collectorPublicKey: collector.publicKeyPem,
  serviceName: 'node-edge',
  ...extra,
});

test('nested traces across awaits are delivered with their parents and attributes', async () => {
  const tracer = new Tracer(options());
  assert.equal(tracer.collectorKeyId, collector.fingerprint);
  let traceId, rootId;
  const result = await tracer.trace(
    'POST /settle',
    { kind: 'server', attributes: { 'x402.phase': 'settle' } },
    async (span) => {
      traceId = span.traceId;
      rootId = span.spanId;
      span.setAttribute('x402.network', 'base').setAttribute('x402.amount', '10000');
      await tracer.trace('rpc eth_sendRawTransaction', { kind: 'client' }, async (rpc) => {
        await new Promise((r) => setTimeout(r, 5));
        rpc.setAttributes({ 'x402.attempt': 2, 'rpc.system': 'jsonrpc', 'x402.ok': true, 'gas.ratio': 0.5 });
      });
      return 'settled';
    },
  );
  assert.equal(result, 'settled');
  const report = await tracer.flush();
  assert.deepEqual(report, { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });

  const { status, body } = await collector.trace(traceId);
  assert.equal(status, 200, JSON.stringify(body));
  const [root, rpc] = flatten(body.spans);
  assert.equal(root.span_id, rootId);
  assert.equal(root.kind, 'server');
  assert.deepEqual(attrs(root.attributes), {
    'x402.phase': { stringValue: 'settle' },
    'x402.network': { stringValue: 'base' },
    'x402.amount': { stringValue: '10000' },
  });
  assert.equal(rpc.name, 'rpc eth_sendRawTransaction');
  assert.equal(rpc.parent_span_id, rootId, 'the child found its parent across an await (AsyncLocalStorage)');
  assert.equal(rpc.kind, 'client');
  assert.deepEqual(attrs(rpc.attributes), {
    'x402.attempt': { intValue: '2' },
    'rpc.system': { stringValue: 'jsonrpc' },
    'x402.ok': { boolValue: true },
    'gas.ratio': { doubleValue: 0.5 },
  });
  assert.ok(BigInt(rpc.duration_ns) >= 4_000_000n, `rpc took ${rpc.duration_ns} ns`);
  assert.deepEqual(attrs(root.resource.attributes)['telemetry.sdk.name'], { stringValue: 'tracex-wasm' });
});

test('recording starts no timer (the backend only sends when flushed); the flush hands over and delivers every span', async () => {
  const tracer = new Tracer(options({ maxExportBatchSize: 4 }));
  const { setTimeout: st, clearTimeout: ct } = globalThis;
  const timers = [];
  globalThis.setTimeout = (...a) => {
    timers.push('setTimeout');
    return st(...a);
  };
  globalThis.clearTimeout = (...a) => {
    timers.push('clearTimeout');
    return ct(...a);
  };
  let traceId;
  try {
    tracer.trace('POST /verify', (root) => {
      traceId = root.traceId;
      for (let i = 0; i < 9; i++) tracer.startSpan('check', { attributes: { 'x402.check': i } }).end();
    });
  } finally {
    globalThis.setTimeout = st;
    globalThis.clearTimeout = ct;
  }
  assert.deepEqual(timers, []);
  assert.equal(tracer.stats().spansQueued, 10, 'still in the JS buffer');
  const report = await tracer.flush();
  assert.deepEqual(report, { spansDelivered: 10, spooled: 0, failed: 0, pending: 0, dropped: 0 });
  assert.equal(tracer.stats().batchesSent, 3, 'batches of at most 4');
  assert.equal((await collector.trace(traceId)).body.span_count, 10);
});

test('a flush with a linger waits and sends the spans of the flushes called meanwhile, which resolve at once', async () => {
  const tracer = new Tracer(options());
  const native = tracer._native.flush.bind(tracer._native);
  let nativeFlushes = 0;
  tracer._native.flush = (t) => {
    nativeFlushes += 1;
    return native(t);
  };
  const traceIds = [];
  const flushes = [];
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) {
    // As five requests of an edge worker would: record, then flush with a linger.
    tracer.trace('POST /verify', (span) => {
      traceIds.push(span.traceId);
      span.setAttribute('x402.attempt', i);
    });
    flushes.push(tracer.flush({ lingerMs: 300 }));
    await new Promise((r) => setTimeout(r, 20));
  }
  const early = await Promise.race([Promise.all(flushes.slice(1)), new Promise((r) => setTimeout(r, 200, 'waiting'))]);
  assert.notEqual(early, 'waiting', 'the four later flushes resolved without waiting');
  // Nothing sent; pending: the spans queued for the waiting flush when each was called.
  for (const [k, r] of early.entries()) {
    assert.deepEqual(r, { spansDelivered: 0, spooled: 0, failed: 0, pending: k + 2, dropped: 0 });
  }
  const reports = await Promise.all(flushes);
  assert.ok(Date.now() - t0 >= 290, 'the first flush waited its linger');
  assert.equal(tracer.stats().batchesSent, 1, 'one batch for the five flushes');
  assert.equal(nativeFlushes, 1, 'the four later flushes did not call the core');
  assert.equal(tracer.stats().spansSent, 5);
  assert.equal(
    reports.reduce((n, r) => n + r.spansDelivered, 0),
    5,
    JSON.stringify(reports),
  );
  for (const r of reports) assert.equal(r.failed + r.dropped, 0);
  for (const id of traceIds) assert.equal((await collector.trace(id)).body.span_count, 1);

  // A flush whose linger ends before the waiting one's waits too, and sends what the longer one
  // waits with; the longer one wakes at its own time to find nothing left.
  tracer.trace('a', () => {});
  const long = tracer.flush({ lingerMs: 1000 });
  tracer.trace('b', () => {});
  assert.equal((await tracer.flush({ lingerMs: 50 })).spansDelivered, 2);
  assert.equal(tracer.stats().batchesSent, 2);
  assert.equal((await long).spansDelivered, 0, 'nothing left for the longer linger');
  assert.equal(tracer.stats().batchesSent, 2);
  // 0: at once.
  tracer.trace('c', () => {});
  assert.equal((await tracer.flush({ lingerMs: 0, timeoutMs: 5000 })).spansDelivered, 1);
  assert.equal(tracer.stats().batchesSent, 3);

  // A linger outside [0, 20 s] is refused, and nothing recorded is lost by it.
  tracer.trace('d', () => {});
  for (const bad of [-1, 20_001, Number.NaN, '100']) {
    await assert.rejects(
      tracer.flush({ lingerMs: bad }),
      (e) => e instanceof ConfigError && /lingerMs/.test(e.message),
    );
  }
  assert.equal((await tracer.flush()).spansDelivered, 1);
});

test('a thrown error ends the span with status error and is rethrown', async () => {
  const tracer = new Tracer(options());
  let traceId;
  await assert.rejects(
    tracer.trace('verify', async (span) => {
      traceId = span.traceId;
      throw new Error('invalid signature');
    }),
    /invalid signature/,
  );
  assert.equal((await tracer.flush()).spansDelivered, 1);
  const [span] = flatten((await collector.trace(traceId)).body.spans);
  assert.deepEqual(span.status, { code: 'error', message: 'invalid signature' });
});

test('init() is a no-op in Node and bad options throw TracexErrors with codes', async () => {
  await init();
  assert.throws(
    () => new Tracer({ ...options(), endpoint: undefined }),
    (e) => e instanceof ConfigError && e.code === 'TRACEX_CONFIG',
  );
  assert.throws(
    () => new Tracer(options({ collectorPublicKey: 'nope' })),
    (e) => e instanceof TracexError && e.code === 'TRACEX_PUBLIC_KEY',
  );
});

test('with the collector down, flush resolves with the spans pending; shutdown counts them failed', async () => {
  const tracer = new Tracer(options({ endpoint: 'http://127.0.0.1:9' }));
  tracer.trace('a', () => {});
  tracer.trace('b', () => {});
  const { lastError, ...report } = await tracer.flush(1_000);
  assert.deepEqual(report, { spansDelivered: 0, spooled: 0, failed: 0, pending: 2, dropped: 0 });
  // fetch refuses port 9 (discard) before connecting: the reason says so.
  assert.equal(lastError, 'fetch failed: bad port');
  const { lastError: _, ...last } = await tracer.shutdown(200);
  assert.deepEqual(last, { spansDelivered: 0, spooled: 0, failed: 2, pending: 0, dropped: 0 });
});

test('limits and batching come from the core; counts are checked once, with one message', async () => {
  const tracer = new Tracer(options({ maxExportBatchSize: 7 }));
  const l = tracer._native.limits;
  assert.deepEqual([l.maxAttributes, l.maxEvents, l.maxLinks, l.maxExportBatchSize], [128, 128, 128, 7]);
  assert.ok(l.maxQueueSize > 0 && l.scheduledDelayMillis > 0, JSON.stringify(l));
  assert.equal(tracer._batch, 7);
  assert.equal(tracer._limits.maxLinks, 128);
  await tracer.shutdown();
  for (const [k, v] of [
    ['maxQueueSize', 0],
    ['maxExportBatchSize', 1.5],
    ['maxQueueSize', -1],
  ]) {
    assert.throws(
      () => new Tracer(options({ [k]: v })),
      (e) =>
        e instanceof ConfigError &&
        e.code === 'TRACEX_CONFIG' &&
        e.message === `invalid configuration: ${k} must be a positive integer, got ${v}`,
      `${k}: ${v}`,
    );
  }
});

test('the collector down at start-up: the tracer constructs, fetches the key by fingerprint later, and every span arrives', async () => {
  const down = await startCollector();
  await down.stop({ keep: true });
  try {
    const tracer = new Tracer({
      endpoint: down.url,
      apiKey: down.ingestKey,
      collectorFingerprint: down.fingerprint,
      serviceName: 'edge-down-at-start',
    });
    assert.equal(tracer.collectorKeyId, down.fingerprint);
    let traceId;
    tracer.trace('root', (root) => {
      traceId = root.traceId;
      for (let i = 0; i < 11; i++) tracer.startSpan('verify', { attributes: { i } }).end();
    });
    const early = await tracer.flush(300);
    assert.deepEqual([early.spansDelivered, early.pending], [0, 12], JSON.stringify(early));
    assert.match(early.lastError, /collector key/);

    await down.restart();
    let report;
    for (let i = 0; i < 40; i++) {
      report = await tracer.flush(1000);
      if (report.pending === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual([report.failed, report.pending, report.dropped], [0, 0, 0], JSON.stringify(report));
    assert.equal(tracer.stats().spansSent, 12);
    const { status, body } = await down.trace(traceId);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(flatten(body.spans).length, 12, 'every span exactly once');
  } finally {
    await down.stop();
  }
});
