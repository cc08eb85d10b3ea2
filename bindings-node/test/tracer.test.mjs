// The installed `tracex` package against the real collector: spans emitted here are queried back
// over HTTP and compared field by field.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { attrs, readVectors, startCollector, tracex, PROJECT } from './collector.mjs';

const { Tracer, SpanStatusCode, ConfigError, PublicKeyError, FingerprintMismatchError, TracexError } = tracex;
let c;
before(async () => {
  c = await startCollector();
});
after(async () => {
  await c.stop();
});

test('spans, attributes of every type, events and status round-trip exactly', async () => {
  const tracer = new Tracer(c.options({ serviceName: 'facilitator', operatorId: 'fac-1' }));
  let traceId;
  const value = tracer.trace('POST /settle', { kind: 'server', attributes: { 'x402.phase': 'settle' } }, (root) => {
    traceId = root.traceId;
    root.setAttributes({
      'x402.scheme': 'exact',
      'x402.network': 'base-sepolia',
      'x402.amount': '10000',
      'x402.attempt': 2,
      ratio: 0.25,
      ok: true,
      big: 2n ** 62n,
      tags: ['a', 'é', 'c'],
      raw: new Uint8Array([0, 1, 255]),
      nested: { inner: [1, 2] },
      skipped: undefined,
    });
    const child = tracer.startSpan('eth_sendRawTransaction', { kind: tracex.SpanKind.CLIENT });
    child.addEvent('retry', { 'x402.attempt': 1 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'nonce too low' });
    child.end();
    return 42;
  });
  assert.equal(value, 42);
  const report = await tracer.flush();
  assert.equal(report.spansDelivered, 2);
  assert.equal(report.failed + report.pending + report.dropped, 0);

  const spans = await c.trace(traceId);
  assert.equal(spans.length, 2);
  const [root, child] = spans;
  assert.equal(root.name, 'POST /settle');
  assert.equal(root.kind, 'server');
  assert.equal(root.parent_span_id, null);
  assert.equal(root.service_name, 'facilitator');
  assert.deepEqual(attrs(root.attributes), {
    'x402.phase': 'settle',
    'x402.scheme': 'exact',
    'x402.network': 'base-sepolia',
    'x402.amount': '10000',
    'x402.attempt': 2,
    ratio: 0.25,
    ok: true,
    big: 2 ** 62,
    tags: ['a', 'é', 'c'],
    raw: Buffer.from([0, 1, 255]),
    nested: { inner: [1, 2] },
  });
  assert.equal(attrs(root.resource.attributes)['telemetry.sdk.name'], 'tracex-node');
  assert.equal(attrs(root.resource.attributes)['x402.operator.id'], 'fac-1');
  assert.equal(child.name, 'eth_sendRawTransaction');
  assert.equal(child.kind, 'client');
  assert.equal(child.parent_span_id, root.span_id);
  assert.deepEqual(child.status, { code: 'error', message: 'nonce too low' });
  assert.equal(child.events[0].name, 'retry');
  assert.deepEqual(attrs(child.events[0].attributes), { 'x402.attempt': 1 });
  const dur = Number(BigInt(root.end_time_unix_nano) - BigInt(root.start_time_unix_nano));
  assert.ok(dur > 0 && dur < 5e9, `duration ${dur}`);
  const startMs = Number(BigInt(root.start_time_unix_nano) / 1000000n);
  assert.ok(Math.abs(startMs - Date.now()) < 60_000, 'start time is wall-clock time');
  await tracer.shutdown();
});

test('span times: wall-clock starts, monotonic durations, explicit start and end times kept', async () => {
  const tracer = new Tracer(c.options());
  const before = Date.now();
  const timed = await tracer.trace('timed', async (span) => {
    await new Promise((resolve) => setTimeout(resolve, 30));
    return span.traceId;
  });
  const after = Date.now();
  const explicit = tracer.startSpan('explicit', { startTime: new Date(1_763_900_000_123) });
  explicit.end(1_763_900_000_373.5);
  await tracer.flush();
  const [t] = await c.trace(timed);
  const startMs = Number(BigInt(t.start_time_unix_nano)) / 1e6;
  assert.ok(startMs >= before - 1 && startMs <= after + 1, `start ${startMs} within [${before}, ${after}]`);
  const durMs = Number(BigInt(t.end_time_unix_nano) - BigInt(t.start_time_unix_nano)) / 1e6;
  assert.ok(durMs >= 29 && durMs <= after - before + 1, `duration ${durMs} ms`);
  const [e] = await c.trace(explicit.traceId);
  // Within a microsecond: host-clock ms are doubles, converted back with the anchor by the core.
  assert.ok(
    Math.abs(Number(BigInt(e.start_time_unix_nano) - 1_763_900_000_123_000_000n)) < 1000,
    e.start_time_unix_nano,
  );
  assert.ok(Math.abs(Number(BigInt(e.end_time_unix_nano) - 1_763_900_000_373_500_000n)) < 1000, e.end_time_unix_nano);
  await tracer.shutdown();
});

test('attributes past the limit of 128 are dropped and counted, from startSpan options and setAttribute alike', async () => {
  const tracer = new Tracer(c.options());
  const initial = Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`a${i}`, i]));
  const span = tracer.startSpan('many attributes', { attributes: initial });
  for (let i = 130; i < 132; i++) span.setAttribute(`a${i}`, i);
  span.setAttribute('ignored', null).setAttribute('also ignored', undefined);
  const traceId = span.traceId;
  span.end();
  span.setAttribute('after end', 1);
  await tracer.flush();
  const [got] = await c.trace(traceId);
  const a = attrs(got.attributes);
  assert.equal(Object.keys(a).length, 128);
  assert.equal(a.a0, 0);
  assert.equal(a.a127, 127);
  assert.equal(got.dropped_attributes_count, 4);
  await tracer.shutdown();
});

test('sync throws and async rejections are recorded, rethrown and end the span', async () => {
  const tracer = new Tracer(c.options());
  const ids = [];
  assert.throws(
    () =>
      tracer.trace('sync-fail', (s) => {
        ids.push(s.traceId);
        throw new TypeError('bad amount');
      }),
    TypeError,
  );
  await assert.rejects(
    tracer.trace('async-fail', async (s) => {
      ids.push(s.traceId);
      await sleep(1);
      throw Object.assign(new Error('insufficient funds'), { code: 'E_FUNDS' });
    }),
    /insufficient funds/,
  );
  const wrapped = tracer.startSpan('wrapped').wrap(async (x) => x * 2);
  assert.equal(await wrapped(21), 42);
  await tracer.flush();
  const [sync] = await c.trace(ids[0]);
  assert.equal(sync.status.code, 'error');
  assert.equal(sync.status.message, 'bad amount');
  const ev = attrs(sync.events[0].attributes);
  assert.equal(sync.events[0].name, 'exception');
  assert.equal(ev['exception.type'], 'TypeError');
  assert.match(ev['exception.stacktrace'], /tracer\.test\.mjs/);
  const [asyncSpan] = await c.trace(ids[1]);
  assert.equal(asyncSpan.status.message, 'insufficient funds');
  assert.equal(attrs(asyncSpan.events[0].attributes)['exception.code'], 'E_FUNDS');
  await tracer.shutdown();
});

test('concurrent requests keep their own parents across awaits', async () => {
  const tracer = new Tracer(c.options({ serviceName: 'concurrency' }));
  const roots = await Promise.all(
    Array.from({ length: 25 }, (_, i) =>
      tracer.trace(`request-${i}`, async (req) => {
        await sleep(Math.random() * 5);
        await tracer.trace('verify', async () => {
          await sleep(Math.random() * 5);
          await tracer.trace('rpc', async () => sleep(1));
        });
        await Promise.all([tracer.trace('settle-a', () => sleep(2)), tracer.trace('settle-b', () => sleep(1))]);
        assert.equal(tracer.activeSpan(), req);
        return req.traceId;
      }),
    ),
  );
  assert.equal(tracer.activeSpan(), undefined, 'nothing leaks into the caller');
  await tracer.flush();
  for (const [i, traceId] of roots.entries()) {
    const spans = await c.trace(traceId);
    const by = Object.fromEntries(spans.map((s) => [s.name, s]));
    assert.equal(spans.length, 5, `trace ${i}`);
    const root = by[`request-${i}`];
    assert.equal(by.verify.parent_span_id, root.span_id);
    assert.equal(by.rpc.parent_span_id, by.verify.span_id);
    assert.equal(by['settle-a'].parent_span_id, root.span_id);
    assert.equal(by['settle-b'].parent_span_id, root.span_id);
    assert.ok(spans.every((s) => s.trace_id === traceId));
  }
  await tracer.shutdown();
});

test('traceparent inject/extract continues a remote trace', async () => {
  const tracer = new Tracer(c.options());
  const incoming = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'cdp=1' };
  const remote = tracer.extract(incoming);
  const headers = tracer.trace('handler', { parent: remote }, (span) => {
    assert.equal(span.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    return tracer.inject({});
  });
  assert.match(headers.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  assert.equal(headers.tracestate, 'cdp=1');
  assert.equal(tracer.extract({ traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }), undefined);
  assert.equal(tracer.extract({ traceparent: 'garbage' }), undefined);
  assert.equal(tracer.extract(new Headers(incoming)).traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  await tracer.flush();
  const [span] = await c.trace('4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(span.parent_span_id, '00f067aa0ba902b7');
  assert.equal(span.trace_state, 'cdp=1');
  assert.equal(span.flags & 0x300, 0x300, 'parent marked remote');
  // Id words with the top bit set (JS keeps words as int32s: negative numbers) round-trip exactly.
  const high = tracer.extract({ traceparent: '00-ffffffff80000000deadbeef80000001-80000000fffffffe-01' });
  const ids = tracer.trace('high bits', { parent: high }, (s) => {
    assert.equal(s.traceId, 'ffffffff80000000deadbeef80000001');
    return [s.spanId, tracer.trace('child', (child) => child.spanId)];
  });
  await tracer.flush();
  const spans = await c.trace('ffffffff80000000deadbeef80000001');
  const top = spans.find((x) => x.name === 'high bits');
  const child = spans.find((x) => x.name === 'child');
  assert.deepEqual([top.span_id, top.parent_span_id], [ids[0], '80000000fffffffe']);
  assert.deepEqual([child.span_id, child.parent_span_id], [ids[1], ids[0]]);
  await tracer.shutdown();
});

test('sampling: ratio 0 records nothing, counts it, and propagates the unsampled flag', async () => {
  const tracer = new Tracer(c.options({ sampleRatio: 0, serviceName: 'sampled-out' }));
  let tp;
  for (let i = 0; i < 100; i++)
    tracer.trace('dropped', (s) => {
      assert.equal(s.isRecording(), false);
      tp = tracer.inject({}).traceparent;
    });
  assert.match(tp, /-00$/);
  const report = await tracer.flush();
  assert.equal(report.spansDelivered, 0);
  assert.equal(tracer.stats().spansSampledOut, 100);
  assert.equal((await c.traces('&service=sampled-out')).length, 0);
  const half = new Tracer(c.options({ sampleRatio: 0.5, serviceName: 'half' }));
  for (let i = 0; i < 2000; i++) half.startSpan('maybe').end();
  await half.flush();
  const kept = half.stats().spansRecorded;
  assert.ok(kept > 850 && kept < 1150, `kept ${kept} of 2000`);
  await tracer.shutdown();
  await half.shutdown();
});

test('a queue smaller than an export batch: the JS layer never hands the core more spans than the queue holds', async () => {
  // The default batch (2,048 spans) is larger than this queue: handed over a batch at a time, the
  // excess of every hand-over would be dropped.
  const tracer = new Tracer(c.options({ serviceName: 'small-queue', maxQueueSize: 1000 }));
  const handed = [];
  const native = tracer._native;
  const ingest = native.ingest.bind(native);
  native.ingest = (bytes) => {
    // The span count: a varint the JS writer pads to 5 bytes at offset 17 (bindings-js/src/records.js).
    let n = 0;
    for (let i = 4; i >= 0; i--) n = n * 128 + (bytes[17 + i] & 127);
    handed.push(n);
    return ingest(bytes);
  };
  for (let i = 0; i < 2500; i++) tracer.startSpan('small', { attributes: { i } }).end();
  await tracer.shutdown(60_000);
  assert.equal(
    handed.reduce((a, b) => a + b, 0),
    2500,
    JSON.stringify(handed),
  );
  assert.ok(
    handed.every((n) => n <= 1000),
    JSON.stringify(handed),
  );
});

test('flush and shutdown report delivery; spans after shutdown are dropped and counted', async () => {
  const tracer = new Tracer(c.options({ serviceName: 'bulk', maxExportBatchSize: 100 }));
  for (let i = 0; i < 5000; i++) {
    const s = tracer.startSpan('bulk', { attributes: { i } });
    s.end();
  }
  const [report, again] = await Promise.all([tracer.shutdown(60_000), tracer.shutdown(60_000)]);
  assert.strictEqual(again, report, 'shutdown is idempotent');
  // The report covers what this shutdown delivered (the worker already sent full batches before).
  assert.equal(report.spooled + report.failed + report.pending + report.dropped, 0, JSON.stringify(report));
  assert.ok(report.spansDelivered > 0 && report.spansDelivered <= 5000);
  const stats = tracer.stats();
  assert.equal(stats.spansSent, 5000);
  assert.equal(stats.batchesSent, 50);
  assert.ok(stats.keyRotations >= 1 && stats.keyRotations < 50, 'a data key serves many batches');
  tracer.startSpan('late').end();
  await assert.rejects(
    tracer.flush(),
    (e) => e instanceof tracex.ShutdownError && e.name === 'ShutdownError' && e.code === 'TRACEX_SHUTDOWN',
  );
  assert.equal(tracer.stats().spansDropped, 1);
  const traces = await c.traces('&service=bulk');
  assert.equal(traces.length, 5000);
});

test('a span whose attribute cannot be read is counted as failed; the spans around it arrive', async () => {
  const tracer = new Tracer(c.options({ serviceName: 'unreadable' }));
  tracer.startSpan('before', { attributes: { n: 1 } }).end();
  const victim = tracer.startSpan('victim', { parent: null });
  const hostile = { ok: 'yes' };
  Object.defineProperty(hostile, 'secret', {
    enumerable: true,
    get() {
      victim.end();
      throw new Error('getter says no');
    },
  });
  const bad = tracer.startSpan('bad');
  bad.setAttribute('payload', hostile);
  assert.doesNotThrow(() => bad.end(), 'ending a span never throws into the caller');
  for (let i = 0; i < 3; i++) tracer.startSpan('after', { attributes: { i } }).end();
  assert.equal(tracer.stats().spansQueued, 4, 'the spans before the bad one were handed over at once');
  const report = await tracer.shutdown(10_000);
  assert.equal(report.failed, 1, JSON.stringify(report));
  const names = (await c.traces('&service=unreadable')).map((t) => t.root_name).sort();
  assert.deepEqual(names, ['after', 'after', 'after', 'before', 'victim']);
});

test('a span ended by an attribute getter while another span is written arrives intact, after it', async () => {
  const tracer = new Tracer(c.options({ serviceName: 'reentrant' }));
  const outer = tracer.startSpan('outer', { parent: null });
  const inner = tracer.startSpan('inner', { parent: outer });
  const sneaky = {};
  Object.defineProperty(sneaky, 'v', {
    enumerable: true,
    get() {
      inner.end();
      return 'ok';
    },
  });
  outer.setAttribute('obj', sneaky).setAttribute('after', 7);
  outer.end();
  assert.equal(tracer.stats().spansQueued, 2);
  const report = await tracer.shutdown(10_000);
  assert.equal(report.failed, 0, JSON.stringify(report));
  const spans = await c.trace(outer.traceId);
  const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
  assert.deepEqual(Object.keys(byName).sort(), ['inner', 'outer']);
  assert.deepEqual(attrs(byName.outer.attributes), { obj: { v: 'ok' }, after: 7 });
  assert.equal(byName.inner.parent_span_id, outer.spanId);
});

test('collector down: spans wait for the retry budget, shutdown spools them, and the next process delivers each once', async () => {
  const spoolDir = `${c.dataDir}/spool-test`;
  const tracer = new Tracer(
    c.options({ endpoint: 'http://127.0.0.1:9', spoolDir, serviceName: 'down', maxExportBatchSize: 4 }),
  );
  for (let i = 0; i < 10; i++) tracer.startSpan('spooled', { attributes: { i } }).end();
  const report = await tracer.flush(1000);
  assert.deepEqual([report.spansDelivered, report.pending], [0, 10], JSON.stringify(report));
  // Shutdown gives up retrying and writes the sealed batches to the spool: nothing is lost.
  const last = await tracer.shutdown(1000);
  assert.deepEqual([last.spooled, last.failed, last.pending], [10, 0, 0], JSON.stringify(last));
  assert.equal(tracer.stats().batchesSpooled, 3);
  // The next process (same spool) delivers them once the collector is reachable.
  const again = new Tracer(c.options({ spoolDir, serviceName: 'down' }));
  for (let i = 0; i < 100 && again.stats().spansUnspooled < 10; i++) await sleep(100);
  await again.shutdown(10_000);
  assert.equal(again.stats().spansUnspooled, 10);
  const traces = await c.traces('&service=down');
  assert.equal(traces.length, 10, 'each span exactly once');
});

test('past spoolMaxBytes the oldest spooled batches are evicted and counted; the newest arrive once', async () => {
  const spoolDir = `${c.dataDir}/spool-evict`;
  const tracer = new Tracer(
    c.options({
      endpoint: 'http://127.0.0.1:9',
      spoolDir,
      spoolMaxBytes: 4000, // room for a few single-span batches of ~700 bytes
      retryTimeoutMillis: 200,
      serviceName: 'evict',
      maxExportBatchSize: 1,
    }),
  );
  for (let i = 0; i < 12; i++) tracer.startSpan('settle', { attributes: { i } }).end();
  const last = await tracer.shutdown(20_000);
  const s = tracer.stats();
  assert.deepEqual([last.spooled, last.pending], [12, 0], JSON.stringify(last));
  assert.ok(s.spansSpoolFailed > 0 && s.spansSpoolFailed < 12, JSON.stringify(s));
  assert.equal(s.spansFailed, s.spansSpoolFailed, 'evictions are the only failures');
  const kept = 12 - s.spansSpoolFailed;

  const again = new Tracer(c.options({ spoolDir, serviceName: 'evict' }));
  for (let i = 0; i < 100 && again.stats().spansUnspooled < kept; i++) await sleep(100);
  await again.shutdown(10_000);
  assert.equal(again.stats().spansUnspooled, kept);
  const traces = await c.traces('&service=evict');
  const got = [];
  for (const t of traces) for (const span of await c.trace(t.trace_id)) got.push(attrs(span.attributes).i);
  got.sort((a, b) => a - b);
  const newest = Array.from({ length: kept }, (_, k) => 12 - kept + k);
  assert.deepEqual(got, newest, 'the newest survived, each exactly once');
});

test('the collector down at start-up: the tracer constructs at once, and every span arrives once it is up', async () => {
  const d = await startCollector('down-at-start');
  await d.stop();
  const started = performance.now();
  const tracer = new Tracer({
    endpoint: d.url,
    apiKey: d.ingest,
    collectorFingerprint: d.fingerprint,
    serviceName: 'down-at-start',
  });
  assert.ok(performance.now() - started < 1000, 'the constructor does not wait for the collector');
  assert.equal(tracer.collectorKeyId, d.fingerprint);
  for (let i = 0; i < 20; i++) tracer.startSpan('verify', { attributes: { i } }).end();
  const early = await tracer.flush(300);
  assert.deepEqual([early.spansDelivered, early.pending], [0, 20], JSON.stringify(early));

  await d.restart();
  for (let i = 0; i < 40 && tracer.stats().spansSent < 20; i++) await tracer.flush(500);
  const report = await tracer.shutdown(5000);
  assert.deepEqual([report.failed, report.pending, report.dropped], [0, 0, 0], JSON.stringify(report));
  assert.equal(tracer.stats().spansSent, 20);
  const traces = await d.traces('&service=down-at-start');
  assert.equal(traces.length, 20, 'every span exactly once');
  await d.stop();
});

test('bad configuration throws TracexError subclasses with codes', () => {
  const env = { ...process.env };
  delete process.env.TRACEX_COLLECTOR_PUBLIC_KEY;
  delete process.env.TRACEX_COLLECTOR_FINGERPRINT;
  try {
    assert.throws(
      () => new Tracer({ serviceName: 'x' }),
      (e) =>
        e instanceof ConfigError && e.code === 'TRACEX_CONFIG' && /collector public key is required/.test(e.message),
    );
    assert.throws(
      () => new Tracer({ collectorPublicKey: '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----' }),
      (e) => e instanceof PublicKeyError && e.name === 'PublicKeyError' && e.code === 'TRACEX_PUBLIC_KEY',
    );
    assert.throws(
      () => new Tracer(c.options({ collectorFingerprint: 'ab'.repeat(32) })),
      (e) =>
        e instanceof FingerprintMismatchError &&
        e.name === 'FingerprintMismatchError' &&
        e.code === 'TRACEX_FINGERPRINT_MISMATCH',
    );
    assert.throws(
      () => new Tracer(c.options({ sampleRatio: 2 })),
      (e) =>
        e instanceof ConfigError && e.message === 'invalid configuration: sampleRatio must be within [0, 1], got 2',
    );
    assert.throws(
      () => new Tracer(c.options({ endpoint: 'ftp://x' })),
      (e) => e.code === 'TRACEX_CONFIG',
    );
    assert.throws(
      () => new Tracer(c.options({ maxExportBatchSize: 0 })),
      (e) => e instanceof TracexError,
    );
    assert.throws(
      () => new Tracer(c.options({ auditKey: 'tracex.test/log+abb42c30' })),
      (e) =>
        e instanceof ConfigError &&
        e.code === 'TRACEX_CONFIG' &&
        e.message.startsWith('invalid configuration: auditKey must be a signed-note verifier key'),
    );
    assert.throws(() => new Tracer('nope'), ConfigError);
    assert.throws(
      () => new Tracer(c.options()).startSpan('x', { parent: { traceId: 'zz', spanId: 'yy' } }),
      (e) => e.code === 'TRACEX_INVALID_CONTEXT',
    );
  } finally {
    Object.assign(process.env, env);
  }
});

/** Records `n` spans of `service` in batches of 10, shuts down; resolves with the stats. */
async function sendBatches(options, n) {
  const tracer = new Tracer(c.options({ maxExportBatchSize: 10, ...options }));
  for (let i = 0; i < n; i++) tracer.startSpan('settle', { attributes: { i } }).end();
  const report = await tracer.shutdown(30_000);
  assert.equal(report.failed + report.pending + report.spooled + report.dropped, 0, JSON.stringify(report));
  return tracer.stats();
}

test('auditKey: every acknowledged batch has a receipt the core verifies; another key fails each one and delivers all the same', async () => {
  const { verifier_key } = await (await fetch(`${c.url}/v1/audit-key`)).json();
  const pinned = await sendBatches({ serviceName: 'receipts-pinned', auditKey: verifier_key }, 25);
  assert.equal(pinned.spansSent, 25);
  assert.ok(pinned.batchesSent >= 3, JSON.stringify(pinned));
  assert.equal(pinned.receiptsVerified, pinned.batchesSent, JSON.stringify(pinned));
  assert.equal(pinned.receiptsFailed, 0);

  // A valid verifier key, but not this collector's (the audit vectors' test log).
  const other = readVectors('audit.json').receipt_verifier_key;
  assert.notEqual(other, verifier_key);
  const wrong = await sendBatches({ serviceName: 'receipts-other-key', auditKey: other }, 25);
  assert.equal(wrong.spansSent, 25);
  assert.equal(wrong.receiptsFailed, wrong.batchesSent, JSON.stringify(wrong));
  assert.equal(wrong.receiptsVerified, 0);

  const unpinned = await sendBatches({ serviceName: 'receipts-unpinned' }, 5);
  assert.equal(unpinned.receiptsVerified + unpinned.receiptsFailed, 0, 'nothing is checked without a key');

  for (const service of ['receipts-pinned', 'receipts-other-key']) {
    assert.equal((await c.traces(`&service=${service}`)).length, 25, service);
  }
});

test('env fallbacks and a pinned fingerprint fetch the key from the collector', async () => {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { Tracer } from 'tracex';
    const t = new Tracer();
    let id;
    t.trace('from-env', (s) => { id = s.traceId; });
    const r = await t.shutdown();
    console.log(JSON.stringify({ id, r, key: t.collectorKeyId }));
  `,
    ],
    {
      cwd: PROJECT,
      encoding: 'utf8',
      env: {
        ...process.env,
        TRACEX_ENDPOINT: c.url,
        TRACEX_API_KEY: c.ingest,
        TRACEX_SERVICE_NAME: 'env-svc',
        TRACEX_COLLECTOR_FINGERPRINT: c.fingerprint,
      },
    },
  );
  const { id, r, key } = JSON.parse(out);
  assert.equal(key, c.fingerprint);
  assert.equal(r.spansDelivered, 1);
  const [span] = await c.trace(id);
  assert.equal(span.service_name, 'env-svc');
});

test('spans left at exit are flushed by the beforeExit hook (ESM entry, installed package)', async () => {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { Tracer } from 'tracex';
    const t = new Tracer(JSON.parse(process.env.OPTS));
    const s = t.startSpan('at-exit');
    s.end();
    console.log(s.traceId);
  `,
    ],
    { cwd: PROJECT, encoding: 'utf8', env: { ...process.env, OPTS: JSON.stringify(c.options()) } },
  );
  const [span] = await c.trace(out.trim());
  assert.equal(span.name, 'at-exit');
});

test('SIGTERM without a handler of its own: spans are flushed, then the process ends by the signal', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { Tracer } from 'tracex';
    const t = new Tracer(JSON.parse(process.env.OPTS));
    const s = t.startSpan('before-sigterm');
    s.end();
    console.log(s.traceId);
    setInterval(() => {}, 1000); // a server would keep the loop alive
  `,
    ],
    { cwd: PROJECT, env: { ...process.env, OPTS: JSON.stringify(c.options()) }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  child.stdout.setEncoding('utf8');
  const [line] = await new Promise((ok) => child.stdout.once('data', (d) => ok(d.split('\n'))));
  child.kill('SIGTERM');
  const [code, signal] = await new Promise((ok) => child.once('exit', (...a) => ok(a)));
  assert.equal(code, null);
  assert.equal(signal, 'SIGTERM');
  const [span] = await c.trace(line.trim());
  assert.equal(span.name, 'before-sigterm');
});

test('limits and batching come from the core; counts are checked once, with one message', async () => {
  const tracer = new Tracer(c.options({ maxExportBatchSize: 7 }));
  // What the JS layer applies on its side (attribute/event/link limits, batch size, delay) is what
  // the core resolved: its defaults plus the options.
  assert.deepEqual(
    { ...tracer._native.limits },
    {
      maxAttributes: 128,
      maxEvents: 128,
      maxLinks: 128,
      maxExportBatchSize: 7,
      maxQueueSize: 16384,
      scheduledDelayMillis: 1000,
    },
  );
  assert.equal(tracer._batch, 7);
  assert.equal(tracer._limits.maxAttributes, 128);
  await tracer.shutdown();
  for (const [k, v, rule] of [
    ['maxQueueSize', 0, 'a positive integer'],
    ['maxExportBatchSize', 1.5, 'a positive integer'],
    ['scheduledDelayMillis', -1, 'a non-negative number of milliseconds'],
    ['spoolMaxBytes', 0, 'a positive integer'],
    ['retryTimeoutMillis', -5, 'a non-negative number of milliseconds'],
  ]) {
    assert.throws(
      () => new Tracer(c.options({ [k]: v })),
      (e) =>
        e instanceof ConfigError &&
        e.code === 'TRACEX_CONFIG' &&
        e.message === `invalid configuration: ${k} must be ${rule}, got ${v}`,
      `${k}: ${v}`,
    );
  }
});
