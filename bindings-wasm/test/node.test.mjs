// The built package in Node, against the real collector: spans go in through the backend's `ingest`
// (the record buffer the JS layer writes), out through `flush()` over Node's fetch, and are read back
// from the collector's query API. No init call: the Node entry point loads its .wasm itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NativeTracer } from 'tracex-wasm';
import { ROOT, startCollector, recordBuffer, newTraceId, newSpanId, hex, flatten, attrs, vectors } from './helpers.mjs';

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
  serviceName: 'edge-verifier',
  ...extra,
});

function paymentTrace() {
  const traceId = newTraceId();
  const root = {
    traceId,
    spanId: newSpanId(),
    name: 'POST /verify',
    kind: 2,
    startMs: 0,
    endMs: 12.5,
    attributes: {
      'x402.phase': 'verify',
      'x402.network': 'base',
      'x402.amount': '1000000',
      'http.response.status_code': 200,
    },
  };
  const child = {
    traceId,
    spanId: newSpanId(),
    parentSpanId: root.spanId,
    name: 'rpc eth_call',
    kind: 3,
    status: 2,
    statusMessage: 'nonce reused',
    startMs: 1.25,
    endMs: 9.75,
    attributes: { 'x402.valid': false, 'rpc.latency_ratio': 0.375, 'x402.attempt': 2 },
  };
  return { traceId, root, child };
}

test('spans ingested through the WASM module are sealed, delivered and stored exactly', async () => {
  const tracer = new NativeTracer(
    options({
      serviceVersion: '1.2.3',
      environment: 'test',
      operatorId: 'edge-7',
      operatorRole: 'facilitator',
      resourceAttributes: { 'cloud.region': 'eu-west', 'edge.shard': 4, 'edge.canary': true },
    }),
  );
  assert.equal(tracer.keyId, collector.fingerprint);
  assert.equal(tracer.sampleRatio, 1);
  const { traceId, root, child } = paymentTrace();
  assert.equal(tracer.ingest(recordBuffer([child, root])), 2);

  const report = await tracer.flush();
  assert.deepEqual(report, { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });
  const stats = tracer.stats();
  assert.equal(stats.spansRecorded, 2);
  assert.equal(stats.spansSent, 2);
  assert.equal(stats.batchesSent, 1);
  assert.equal(stats.keyRotations, 1);
  assert.ok(stats.bytesSent > 500, `bytesSent ${stats.bytesSent}`);

  const { status, body } = await collector.trace(hex(traceId));
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.span_count, 2);
  const [r, c] = flatten(body.spans);
  assert.equal(r.name, 'POST /verify');
  assert.equal(r.kind, 'server');
  assert.equal(r.parent_span_id, null);
  assert.deepEqual(attrs(r.attributes), {
    'x402.phase': { stringValue: 'verify' },
    'x402.network': { stringValue: 'base' },
    'x402.amount': { stringValue: '1000000' },
    'http.response.status_code': { intValue: '200' },
  });
  assert.equal(BigInt(r.end_time_unix_nano) - BigInt(r.start_time_unix_nano), 12_500_000n);
  assert.equal(c.name, 'rpc eth_call');
  assert.equal(c.parent_span_id, hex(root.spanId));
  assert.deepEqual(c.status, { code: 'error', message: 'nonce reused' });
  assert.deepEqual(attrs(c.attributes), {
    'x402.valid': { boolValue: false },
    'rpc.latency_ratio': { doubleValue: 0.375 },
    'x402.attempt': { intValue: '2' },
  });
  assert.equal(r.service_name, 'edge-verifier');
  const resource = attrs(r.resource.attributes);
  assert.deepEqual(resource['service.version'], { stringValue: '1.2.3' });
  assert.deepEqual(resource['deployment.environment.name'], { stringValue: 'test' });
  assert.deepEqual(resource['x402.operator.id'], { stringValue: 'edge-7' });
  assert.deepEqual(resource['x402.operator.role'], { stringValue: 'facilitator' });
  assert.deepEqual(resource['cloud.region'], { stringValue: 'eu-west' });
  assert.deepEqual(resource['edge.shard'], { intValue: '4' });
  assert.deepEqual(resource['edge.canary'], { boolValue: true });
  assert.deepEqual(resource['telemetry.sdk.name'], { stringValue: 'tracex-wasm' });
  assert.equal(r.scope.name, 'tracex-wasm');
});

/** Runs `fn` on a host whose `crypto` has randomness but no `subtle`. */
async function withoutSubtle(fn) {
  const crypto = globalThis.crypto;
  Object.defineProperty(globalThis, 'crypto', {
    value: { getRandomValues: (a) => crypto.getRandomValues(a) },
    configurable: true,
    writable: true,
  });
  try {
    await fn();
  } finally {
    Object.defineProperty(globalThis, 'crypto', { value: crypto, configurable: true, writable: true });
  }
}

test('data keys are wrapped with the host WebCrypto once per rotation, concurrent flushes share the wrap, and without WebCrypto the core wraps in WASM', async () => {
  const subtle = globalThis.crypto.subtle;
  const encrypt = subtle.encrypt;
  const wraps = [];
  subtle.encrypt = function (alg, key, data) {
    wraps.push([alg.name, key.algorithm.hash.name, data.byteLength]);
    return encrypt.call(this, alg, key, data);
  };
  // Two flushes started together (as two requests' waitUntil), then a third: one data key, wrapped
  // once by WebCrypto; every batch opens at the collector (the spans are stored).
  const run = async () => {
    const tracer = new NativeTracer(options());
    const traces = [];
    const batch = () => {
      const { traceId, root, child } = paymentTrace();
      traces.push(traceId);
      tracer.ingest(recordBuffer([child, root]));
    };
    batch();
    const first = tracer.flush();
    batch();
    const reports = [...(await Promise.all([first, tracer.flush()]))];
    batch();
    reports.push(await tracer.flush());
    assert.equal(
      reports.reduce((n, r) => n + r.spansDelivered, 0),
      6,
      JSON.stringify(reports),
    );
    assert.equal(tracer.stats().keyRotations, 1);
    for (const t of traces) assert.equal((await collector.trace(hex(t))).body.span_count, 2);
  };
  try {
    await run();
  } finally {
    subtle.encrypt = encrypt;
  }
  assert.deepEqual(wraps, [['RSA-OAEP', 'SHA-256', 32]]);

  // A host whose WebCrypto refuses, and one without crypto.subtle (randomness only): the core wraps
  // in WASM when it seals, and the collector opens the batches just the same.
  subtle.encrypt = () => Promise.reject(new Error('not supported here'));
  try {
    await run();
  } finally {
    subtle.encrypt = encrypt;
  }
  await withoutSubtle(run);
});

test('compressed batches and several batches per flush are delivered', async () => {
  const tracer = new NativeTracer(
    options({ compression: true, maxExportBatchSize: 3, sdkName: 'tracex-js', sdkVersion: '9.9.9' }),
  );
  const traces = Array.from({ length: 4 }, paymentTrace);
  assert.equal(
    tracer.ingest(
      recordBuffer(
        traces.flatMap((t) => [t.root, t.child]),
        { sampledOut: 5 },
      ),
    ),
    8,
  );
  const report = await tracer.flush();
  assert.deepEqual(report, { spansDelivered: 8, spooled: 0, failed: 0, pending: 0, dropped: 0 });
  assert.equal(tracer.stats().batchesSent, 3);
  assert.equal(tracer.stats().spansSampledOut, 5);
  for (const t of traces) {
    const { status, body } = await collector.trace(hex(t.traceId));
    assert.equal(status, 200);
    assert.equal(body.span_count, 2);
    const [r] = flatten(body.spans);
    assert.deepEqual(r.scope, { name: 'tracex-js', version: '9.9.9', attributes: [] });
  }
});

test('auditKey: the receipt header of each fetch response reaches the core, which checks it, has the host verify its signature (the core when the host cannot) and counts it', async () => {
  const { verifier_key } = await (await fetch(`${collector.url}/v1/audit-key`)).json();
  // A valid verifier key, but not this collector's (the audit vectors' test log).
  const other = vectors('audit.json').receipt_verifier_key;
  assert.notEqual(other, verifier_key);
  // The signature itself is verified by the host's WebCrypto (Node has Ed25519): counted here.
  const subtle = globalThis.crypto.subtle;
  const verify = subtle.verify;
  let hostVerifications = 0;
  subtle.verify = function (alg, ...rest) {
    if (alg === 'Ed25519') hostVerifications++;
    return verify.call(this, alg, ...rest);
  };
  const run = async (auditKey, expected) => {
    const tracer = new NativeTracer(options({ auditKey, maxExportBatchSize: 3 }));
    const traces = Array.from({ length: 4 }, paymentTrace);
    assert.equal(tracer.ingest(recordBuffer(traces.flatMap((t) => [t.root, t.child]))), 8);
    // Delivery is the same whatever the receipts say.
    assert.deepEqual(await tracer.flush(), { spansDelivered: 8, spooled: 0, failed: 0, pending: 0, dropped: 0 });
    const s = tracer.stats();
    assert.equal(s.batchesSent, 3);
    assert.deepEqual([s.receiptsVerified, s.receiptsFailed], expected, `auditKey ${auditKey}`);
    for (const t of traces) assert.equal((await collector.trace(hex(t.traceId))).body.span_count, 2);
  };
  try {
    // Another key's receipts fail in the core (no signature by the pinned key): nothing to verify.
    for (const [auditKey, expected, verified] of [
      [verifier_key, [3, 0], 3],
      [other, [0, 3], 0],
      [undefined, [0, 0], 0],
    ]) {
      hostVerifications = 0;
      await run(auditKey, expected);
      assert.equal(hostVerifications, verified, `auditKey ${auditKey}`);
    }
    // The host's verdict counts: a WebCrypto that finds the signatures bad fails the receipts.
    subtle.verify = () => Promise.resolve(false);
    await run(verifier_key, [0, 3]);
    // A host whose WebCrypto cannot verify Ed25519 (a throw, a rejection), and one without
    // crypto.subtle: the core verifies in WASM, with the same outcome.
    subtle.verify = () => {
      throw new Error('Ed25519 is not supported here');
    };
    await run(verifier_key, [3, 0]);
    subtle.verify = () => Promise.reject(new DOMException('Unrecognized name.', 'NotSupportedError'));
    await run(verifier_key, [3, 0]);
  } finally {
    subtle.verify = verify;
  }
  await withoutSubtle(() => run(verifier_key, [3, 0]));
});

test("the host's Ed25519 check copies its inputs, views of WASM memory, before it awaits: memory grown meanwhile changes no verdict", async () => {
  const { verifyEd25519 } = await import(
    pathToFileURL(join(ROOT, 'bindings-wasm', 'node_modules', 'tracex-wasm', 'transport.js')).href
  );
  const { subtle } = globalThis.crypto;
  const pair = await subtle.generateKey('Ed25519', true, ['sign', 'verify']);
  const publicKey = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  const message = new TextEncoder().encode('tracex receipt v1\n');
  const signature = new Uint8Array(await subtle.sign('Ed25519', pair.privateKey, message));
  const bad = signature.slice();
  bad[10] ^= 1;
  // As the glue passes them: views of the module's memory, which growing detaches (empty views).
  const check = (sigs) => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const view = (bytes, at) => {
      new Uint8Array(memory.buffer).set(bytes, at);
      return new Uint8Array(memory.buffer, at, bytes.length);
    };
    const verdict = verifyEd25519(view(publicKey, 0), view(message, 64), view(sigs, 256));
    memory.grow(1);
    return verdict;
  };
  assert.equal(await check(signature), true);
  assert.equal(await check(bad), false);
  const both = new Uint8Array(128);
  both.set(signature);
  both.set(bad, 64);
  assert.equal(await check(both), false, 'every signature must verify');
  assert.equal(await check(new Uint8Array(0)), undefined, 'nothing to verify: the core decides');
});

test('bad options throw errors with TRACEX_* codes', () => {
  const code = (o) => {
    try {
      new NativeTracer(o);
    } catch (e) {
      assert.ok(e instanceof Error);
      return [e.code, e.message];
    }
    assert.fail('no error');
  };
  assert.equal(code({ ...options(), endpoint: undefined })[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ endpoint: 'ws://x' }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ apiKey: undefined }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ sampleRatio: 2 }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ maxQueueSize: 0 }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ maxExportBatchSize: 1.5 }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ serviceName: 42 }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ resourceAttributes: { bad: {} } }))[0], 'TRACEX_CONFIG');
  assert.equal(code(options({ collectorPublicKey: 'not a key' }))[0], 'TRACEX_PUBLIC_KEY');
  const [auditCode, auditMessage] = code(options({ auditKey: 'tracex.test/log+abb42c30' }));
  assert.equal(auditCode, 'TRACEX_CONFIG');
  assert.match(auditMessage, /^invalid configuration: auditKey must be a signed-note verifier key/);
  assert.equal(code(options({ auditKey: 42 }))[0], 'TRACEX_CONFIG');
  assert.equal(
    code(options({ collectorPublicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' }))[0],
    'TRACEX_PUBLIC_KEY',
  );
  assert.equal(code(options({ collectorFingerprint: '00'.repeat(32) }))[0], 'TRACEX_FINGERPRINT_MISMATCH');
  assert.equal(code({ ...options(), collectorPublicKey: undefined })[0], 'TRACEX_CONFIG');
  assert.equal(code({ ...options(), collectorPublicKey: undefined, collectorFingerprint: 'abc' })[0], 'TRACEX_CONFIG');
  // A fingerprint alone is enough: the key is fetched by the first flushes.
  const pinned = new NativeTracer({
    ...options(),
    collectorPublicKey: undefined,
    collectorFingerprint: collector.fingerprint,
  });
  assert.equal(pinned.keyId, collector.fingerprint);
  // A matching pin is accepted; the ratio is resolved.
  const t = new NativeTracer(options({ collectorFingerprint: collector.fingerprint, sampleRatio: 0.25 }));
  assert.equal(t.sampleRatio, 0.25);
});

test('an invalid record buffer is rejected whole with TRACEX_INVALID_RECORDS', () => {
  const tracer = new NativeTracer(options());
  const good = recordBuffer([paymentTrace().root]);
  for (const bad of [good.slice(0, good.length - 3), new Uint8Array([1, 2, 3]), Uint8Array.of(...good, 0)]) {
    assert.throws(
      () => tracer.ingest(bad),
      (e) => e.code === 'TRACEX_INVALID_RECORDS',
    );
  }
  assert.equal(tracer.stats().spansRecorded, 0);
});

/** A port nothing listens on. */
async function closedPort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('with the collector down, flush retries within its timeout and keeps the batch; shutdown counts it failed', async () => {
  const tracer = new NativeTracer(options({ endpoint: `http://127.0.0.1:${await closedPort()}` }));
  const { root, child } = paymentTrace();
  assert.equal(tracer.ingest(recordBuffer([root, child, { ...paymentTrace().root }])), 3);
  const { lastError, ...report } = await tracer.flush(2_000);
  assert.deepEqual(report, { spansDelivered: 0, spooled: 0, failed: 0, pending: 3, dropped: 0 });
  assert.match(lastError, /^fetch failed: connect ECONNREFUSED 127\.0\.0\.1:\d+$/, 'the report says why');
  // Backoff ceilings 200, 400, 800 ms (full jitter): at least three retries fit in two seconds.
  assert.ok(tracer.stats().batchesRetried >= 3, `retried ${tracer.stats().batchesRetried} times`);
  const { lastError: _, ...last } = await tracer.shutdown(300);
  assert.deepEqual(last, { spansDelivered: 0, spooled: 0, failed: 3, pending: 0, dropped: 0 });
  const stats = tracer.stats();
  assert.equal(stats.batchesFailed, 1);
  assert.equal(stats.spansFailed, 3);
});

test('a rejected batch (bad API key) fails at once, without retries', async () => {
  const tracer = new NativeTracer(options({ apiKey: 'tx_ingest_not_a_real_key' }));
  tracer.ingest(recordBuffer([paymentTrace().root, paymentTrace().root]));
  const report = await tracer.flush();
  assert.deepEqual(report, {
    spansDelivered: 0,
    spooled: 0,
    failed: 2,
    pending: 0,
    dropped: 0,
    lastError: 'HTTP 401: {"error":{"code":"unauthorized","message":"invalid API key"}}',
  });
  assert.equal(tracer.stats().batchesRetried, 0);
});

/**
 * Runs `fn(tracer, trace)` with a tracer whose endpoint is a server in front of the collector,
 * answering with `handler`, after one payment trace of two spans was ingested.
 */
async function throughServer(handler, fn) {
  const server = createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const tracer = new NativeTracer(options({ endpoint: `http://127.0.0.1:${server.address().port}` }));
    const t = paymentTrace();
    tracer.ingest(recordBuffer([t.root, t.child]));
    await fn(tracer, t);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('a redirect is not followed: the batch is rejected, as in the native SDKs', async () => {
  let seen = 0;
  const redirect = async (req, res) => {
    seen++;
    for await (const _ of req);
    res.writeHead(307, { location: `${collector.url}${req.url}` });
    res.end('moved');
  };
  await throughServer(redirect, async (tracer, t) => {
    assert.deepEqual(await tracer.flush(5_000), {
      spansDelivered: 0,
      spooled: 0,
      failed: 2,
      pending: 0,
      dropped: 0,
      lastError: 'HTTP 307: moved',
    });
    assert.equal(seen, 1);
    assert.equal((await collector.trace(hex(t.traceId))).status, 404, 'nothing reached the collector');
  });
});

test('a batch the collector asks to retry later stays pending and goes out with the next flush', async () => {
  // A gate in front of the collector: 503 + Retry-After: 60 while closed, a plain proxy once open.
  let open = false;
  let seen = 0;
  const gate = async (req, res) => {
    seen++;
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (!open) {
      res.writeHead(503, { 'retry-after': '60', 'content-type': 'application/json' });
      res.end('{"error":{"code":"overloaded","message":"try later"}}');
      return;
    }
    const r = await fetch(`${collector.url}${req.url}`, {
      method: 'POST',
      headers: { authorization: req.headers.authorization, 'content-type': req.headers['content-type'] },
      body: Buffer.concat(chunks),
    });
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(await r.text());
  };
  await throughServer(gate, async (tracer, t) => {
    const first = await tracer.flush(5_000);
    assert.deepEqual(first, {
      spansDelivered: 0,
      spooled: 0,
      failed: 0,
      pending: 2,
      dropped: 0,
      lastError: 'HTTP 503: {"error":{"code":"overloaded","message":"try later"}}',
    });
    assert.equal(seen, 1, 'Retry-After beyond the deadline: no second attempt in this flush');
    open = true;
    const second = await tracer.flush(5_000);
    assert.deepEqual(second, { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });
    const { status, body } = await collector.trace(hex(t.traceId));
    assert.equal(status, 200);
    assert.equal(body.span_count, 2);
  });
});

test('shutdown delivers what is buffered, then refuses spans and further flushes', async () => {
  const tracer = new NativeTracer(options());
  const t = paymentTrace();
  tracer.ingest(recordBuffer([t.root]));
  assert.deepEqual(await tracer.shutdown(), { spansDelivered: 1, spooled: 0, failed: 0, pending: 0, dropped: 0 });
  assert.equal(tracer.ingest(recordBuffer([t.child])), 0);
  assert.equal(tracer.stats().spansDropped, 1);
  await assert.rejects(tracer.flush(), (e) => e.code === 'TRACEX_SHUTDOWN');
  await assert.rejects(tracer.shutdown(), (e) => e.code === 'TRACEX_SHUTDOWN');
});

test('a full buffer drops and counts instead of growing', async () => {
  const tracer = new NativeTracer(options({ maxQueueSize: 2 }));
  assert.equal(tracer.ingest(recordBuffer([paymentTrace().root, paymentTrace().root, paymentTrace().root])), 2);
  assert.equal(tracer.stats().spansDropped, 1);
  assert.deepEqual(await tracer.flush(), { spansDelivered: 2, spooled: 0, failed: 0, pending: 0, dropped: 0 });
});
