// examples/edge-worker run as a Workers runtime would run it (the `workerd` export condition, the
// `.wasm` import as a compiled WebAssembly.Module, a fresh `ctx` per request whose waitUntil promises
// are awaited), against the real collector: both verifications are stored with their x402.* attributes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { ROOT, startCollector, flatten, attrs } from './helpers.mjs';

const run = promisify(execFile);

test('the edge-worker example traces a payment verification end to end', async () => {
  const collector = await startCollector();
  try {
    const { stdout } = await run(process.execPath,
      ['--conditions=workerd', '--import', './harness/register.mjs', 'harness/run.mjs'], {
        cwd: join(ROOT, 'examples', 'edge-worker'),
        env: { ...process.env, TRACEX_ENDPOINT: collector.url, TRACEX_API_KEY: collector.ingestKey,
          TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem, TRACEX_HARNESS_JSON: '1' },
      });
    const results = JSON.parse(stdout.trim().split('\n').at(-1));
    assert.equal(results.length, 2);
    const [valid, under] = results;
    assert.deepEqual(valid.body, { isValid: true, payer: '0x857b06519E91e3A54538791bDbb0E22373e36b66' });
    assert.equal(under.body.invalidReason, 'insufficient_funds');
    for (const r of results) {
      assert.deepEqual(r.flush, [{ spansDelivered: 1, spooled: 0, failed: 0, pending: 0, dropped: 0 }], r.what);
    }

    const stored = async (r) => {
      const traceId = r.traceparent.split('-')[1];
      const { status, body } = await collector.trace(traceId);
      assert.equal(status, 200, JSON.stringify(body));
      const spans = flatten(body.spans);
      assert.equal(spans.length, 1);
      return spans[0];
    };
    const ok = await stored(valid);
    assert.equal(ok.name, 'POST /verify');
    assert.equal(ok.kind, 'server');
    assert.equal(ok.service_name, 'edge-facilitator');
    assert.equal(ok.status.code, 'unset');
    const a = attrs(ok.attributes);
    assert.deepEqual(a['x402.phase'], { stringValue: 'verify' });
    assert.deepEqual(a['x402.network'], { stringValue: 'base' });
    assert.deepEqual(a['x402.amount'], { stringValue: '10000' });
    assert.deepEqual(a['x402.valid'], { boolValue: true });
    assert.deepEqual(attrs(ok.resource.attributes)['x402.operator.role'], { stringValue: 'facilitator' });

    const bad = await stored(under);
    assert.deepEqual(bad.status, { code: 'error', message: 'payment rejected: insufficient_funds' });
    assert.deepEqual(attrs(bad.attributes)['x402.error'], { stringValue: 'insufficient_funds' });
    assert.deepEqual(attrs(bad.attributes)['x402.valid'], { boolValue: false });
  } finally {
    await collector.stop();
  }
});
