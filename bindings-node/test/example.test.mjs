// examples/node-facilitator run for real: the example server (with the installed package) traces
// /verify and /settle into the collector, continuing the caller's traceparent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { attrs, repo, startCollector, PROJECT } from './collector.mjs';

test('the facilitator example traces verify and settle with x402 attributes', async () => {
  const c = await startCollector('example');
  copyFileSync(join(repo, 'examples/node-facilitator/server.js'), join(PROJECT, 'server.mjs'));
  const server = spawn(process.execPath, ['server.mjs'], {
    cwd: PROJECT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      PORT: '0',
      TRACEX_ENDPOINT: c.url,
      TRACEX_API_KEY: c.ingest,
      TRACEX_COLLECTOR_FINGERPRINT: c.fingerprint,
      FACILITATOR_ID: 'fac-test',
    },
  });
  try {
    server.stdout.setEncoding('utf8');
    let out = '';
    const base = await new Promise((ok, fail) => {
      server.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) ok(m[1]);
      });
      server.once('exit', (code) => fail(new Error(`example exited (${code})`)));
    });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const settle = await fetch(`${base}/settle`, {
      method: 'POST',
      headers: { traceparent },
      body: JSON.stringify({ network: 'base-sepolia', amount: '10000', payer: '0xabc' }),
    });
    assert.ok([200, 502].includes(settle.status));
    assert.match(settle.headers.get('traceparent'), /^00-0af7651916cd43dd8448eb211c80319c-/);
    const verify = await fetch(`${base}/verify`, { method: 'POST', body: JSON.stringify({ amount: '0' }) });
    assert.equal(verify.status, 400);
    server.kill('SIGTERM');
    const [code] = await once(server, 'exit');
    assert.equal(code, 0, 'the example shuts down cleanly on SIGTERM (its handler and tracex flush together)');

    const spans = await c.trace('0af7651916cd43dd8448eb211c80319c');
    const root = spans.find((s) => s.name === 'POST /settle');
    assert.equal(root.parent_span_id, 'b7ad6b7169203331');
    assert.equal(root.kind, 'server');
    const a = attrs(root.attributes);
    assert.equal(a['x402.phase'], 'settle');
    assert.equal(a['x402.network'], 'base-sepolia');
    assert.equal(a['x402.amount'], '10000');
    const rpcs = spans.filter((s) => s.name === 'eth_sendRawTransaction');
    assert.ok(rpcs.length >= 1 && rpcs.every((s) => s.parent_span_id === root.span_id));
    assert.equal(
      root.events.filter((e) => e.name === 'retry').length,
      rpcs.filter((s) => s.status.code === 'error').length,
    );
    const [verifyTrace] = await c.traces('&service=x402-facilitator&name=POST%20%2Fverify');
    assert.ok(verifyTrace, 'verify trace stored');
    const [v] = await c.trace(verifyTrace.trace_id);
    assert.equal(v.status.code, 'error');
    assert.equal(attrs(v.resource.attributes)['x402.operator.id'], 'fac-test');
  } finally {
    server.kill('SIGKILL');
    await c.stop();
  }
});
