// examples/edge-worker/worker.js, unchanged, in Cloudflare's own runtime (workerd, from npm) with
// the example's workerd.capnp: the precompiled `.wasm` module import + `init(wasm)`, env bindings
// from the environment, `ctx.waitUntil(tracer.flush())`, and a `globalOutbound` that may reach the
// loopback collector. workerd forbids randomness, timers and I/O at module scope, so this is also
// the test that the package loads where it is meant to run (issue 18).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { ROOT, startCollector, attrs } from './helpers.mjs';
import { WORKERD, PAYER, verifyBody, waitForSpans, spansOf } from './edge.mjs';

const EXAMPLE = join(ROOT, 'examples', 'edge-worker');
const CONFIG = join(EXAMPLE, 'workerd.capnp');
const SERVICE = 'edge-facilitator';

/**
 * Starts workerd on the example's config with `env`, on a free loopback port (`--control-fd` reports
 * the port workerd bound). Resolves `{ url, logs(), stop() }`.
 */
async function startWorkerd(env) {
  const child = spawn(WORKERD, ['serve', CONFIG, '-s', 'http=127.0.0.1:0', '--control-fd', '3'], {
    cwd: EXAMPLE,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const port = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdio[3] });
    rl.on('line', (line) => {
      const m = JSON.parse(line);
      if (m.event === 'listen' && m.socket === 'http') resolve(m.port);
    });
    child.once('exit', (code) => reject(new Error(`workerd exited (${code}): ${out}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    logs: () => out,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const post = (url, body, headers = {}) =>
  fetch(`${url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

let collector, auditKey;
before(async () => {
  collector = await startCollector();
  ({ verifier_key: auditKey } = await (await fetch(`${collector.url}/v1/audit-key`)).json());
});
after(async () => {
  await collector?.stop();
});

test('workerd.capnp lists every module of the package the worker can load', () => {
  // workerd resolves no packages: a module missing from the config would fail only at load.
  const pkg = join(EXAMPLE, 'node_modules', 'tracex-wasm');
  const files = readdirSync(pkg, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.js') && f !== 'node.js') // node.js: the Node-only entry
    .map((f) => relative(pkg, join(pkg, f)));
  const config = readFileSync(CONFIG, 'utf8');
  assert.ok(files.length >= 12, files.join());
  for (const f of files)
    assert.match(config, new RegExp(`embed "node_modules/tracex-wasm/${f.replace('.', '\\.')}"`), f);
  assert.match(config, /wasm = embed "node_modules\/tracex-wasm\/tracex_wasm_bg\.wasm"/);
});

test('the example worker in workerd delivers exactly the spans it recorded, with their x402 attributes', async () => {
  // With the collector's audit key pinned: a receipt that did not verify would be logged (below).
  const workerd = await startWorkerd({
    TRACEX_ENDPOINT: collector.url,
    TRACEX_API_KEY: collector.ingestKey,
    TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
    TRACEX_AUDIT_KEY: auditKey,
  });
  try {
    // The example's two payments, one after the other (the first instantiates the module and
    // creates the tracer inside the handler), with a caller's traceparent on the first.
    const callerTrace = randomBytes(16).toString('hex');
    const valid = await post(workerd.url, verifyBody('10000', 'ab'.repeat(32)), {
      traceparent: `00-${callerTrace}-${'cd'.repeat(8)}-01`,
    });
    assert.equal(valid.status, 200, workerd.logs());
    assert.deepEqual(await valid.json(), { isValid: true, payer: PAYER });
    assert.equal(valid.headers.get('traceparent').split('-')[1], callerTrace);
    const under = await post(workerd.url, verifyBody('9999', 'ef'.repeat(32)));
    assert.deepEqual(await under.json(), { isValid: false, invalidReason: 'insufficient_funds', payer: PAYER });

    // Then concurrent requests: several flushes (one waitUntil each) share one tracer's queue.
    const N = 40;
    const nonces = Array.from({ length: N }, (_, i) => i.toString(16).padStart(64, '0'));
    const answers = await Promise.all(nonces.map((n) => post(workerd.url, verifyBody('10000', n))));
    for (const a of answers) assert.equal(a.status, 200);
    await Promise.all(answers.map((a) => a.json()));

    const spans = await waitForSpans(collector, SERVICE, N + 2);
    assert.equal(spans.length, N + 2, workerd.logs());
    for (const s of spans) {
      assert.equal(s.name, 'POST /verify');
      assert.equal(s.kind, 'server');
      const a = attrs(s.attributes);
      assert.deepEqual(a['x402.phase'], { stringValue: 'verify' });
      assert.deepEqual(a['x402.network'], { stringValue: 'base' });
      assert.deepEqual(a['x402.payer'], { stringValue: PAYER });
      const r = attrs(s.resource.attributes);
      assert.deepEqual(r['x402.operator.role'], { stringValue: 'facilitator' });
      // The Workers clock (whole ms; on Cloudflare it advances only across I/O): the resource says
      // so, and the stored times show its resolution (see the package README).
      assert.deepEqual(r['tracex.clock'], { stringValue: 'workers_io' });
      assert.equal(BigInt(s.start_time_unix_nano) % 1_000_000n, 0n, s.start_time_unix_nano);
      assert.equal(s.duration_ns % 1_000_000, 0, String(s.duration_ns));
    }
    const byNonce = new Map(spans.map((s) => [attrs(s.attributes)['x402.nonce'].stringValue, s]));
    assert.equal(byNonce.size, N + 2, 'every request is stored once');
    for (const n of nonces)
      assert.deepEqual(attrs(byNonce.get(`0x${n}`).attributes)['x402.valid'], { boolValue: true });

    const ok = byNonce.get(`0x${'ab'.repeat(32)}`);
    assert.equal(ok.trace_id, callerTrace, 'continues the caller trace');
    assert.equal(ok.parent_span_id, 'cd'.repeat(8));
    assert.deepEqual(attrs(ok.attributes)['x402.amount'], { stringValue: '10000' });
    assert.equal(ok.status.code, 'unset');
    const bad = byNonce.get(`0x${'ef'.repeat(32)}`);
    assert.deepEqual(bad.status, { code: 'error', message: 'payment rejected: insufficient_funds' });
    assert.deepEqual(attrs(bad.attributes)['x402.error'], { stringValue: 'insufficient_funds' });
    assert.deepEqual(attrs(bad.attributes)['x402.valid'], { boolValue: false });
    assert.doesNotMatch(workerd.logs(), /tracex:|Uncaught|Disallowed/);
  } finally {
    await workerd.stop();
  }
});

test('a rejected flush is logged by the example worker with its reason', async () => {
  const before = (await spansOf(collector, SERVICE)).length;
  const workerd = await startWorkerd({
    TRACEX_ENDPOINT: collector.url,
    TRACEX_API_KEY: 'tx_not_a_key',
    TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
  });
  try {
    const r = await post(workerd.url, verifyBody('10000', '11'.repeat(32)));
    assert.equal(r.status, 200); // tracing never fails the request
    const until = Date.now() + 10000;
    while (!/tracex: /.test(workerd.logs()) && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
    assert.match(workerd.logs(), /tracex: 1 span\(s\) failed, 0 pending, 0 dropped: HTTP 401/);
    assert.equal((await spansOf(collector, SERVICE)).length, before);
  } finally {
    await workerd.stop();
  }
});

/**
 * An HTTP proxy in front of the collector that counts the batches it acknowledges and, for the
 * `tamper`-th one (1-based), flips one bit of the receipt's Ed25519 signature: the note still
 * parses, only the signature is wrong. Resolves `{ url, acknowledged(), close() }`.
 */
async function receiptTamperingProxy(upstream, tamper) {
  let acknowledged = 0;
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = {};
    for (const h of ['authorization', 'content-type']) if (req.headers[h]) headers[h] = req.headers[h];
    const r = await fetch(`${upstream}${req.url}`, {
      method: req.method,
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    const body = Buffer.from(await r.arrayBuffer());
    const out = { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' };
    let receipt = r.headers.get('tracex-receipt');
    if (receipt !== null) {
      acknowledged += 1;
      if (acknowledged === tamper) {
        const lines = Buffer.from(receipt, 'base64').toString('utf8').trimEnd().split('\n');
        const [dash, name, sig] = lines.at(-1).split(' '); // "— <key name> base64(key hash ‖ signature)"
        const bytes = Buffer.from(sig, 'base64');
        bytes[bytes.length - 1] ^= 1;
        lines[lines.length - 1] = `${dash} ${name} ${bytes.toString('base64')}`;
        receipt = Buffer.from(`${lines.join('\n')}\n`).toString('base64');
      }
      out['tracex-receipt'] = receipt;
    }
    res.writeHead(r.status, out).end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    acknowledged: () => acknowledged,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('with TRACEX_AUDIT_KEY the example worker checks each receipt in workerd and logs one that does not verify', async () => {
  const N = 5;
  const proxy = await receiptTamperingProxy(collector.url, N); // the last batch's receipt is forged
  const workerd = await startWorkerd({
    TRACEX_ENDPOINT: proxy.url,
    TRACEX_API_KEY: collector.ingestKey,
    TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
    TRACEX_AUDIT_KEY: auditKey,
  });
  try {
    // One request at a time, each flushed (one batch) and acknowledged before the next.
    for (let i = 1; i <= N; i++) {
      const r = await post(workerd.url, verifyBody('10000', `${'77'.repeat(31)}${i.toString(16).padStart(2, '0')}`));
      assert.equal(r.status, 200);
      await r.body?.cancel();
      const until = Date.now() + 10000;
      while (proxy.acknowledged() < i && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
      assert.equal(proxy.acknowledged(), i, workerd.logs());
      if (i < N) assert.doesNotMatch(workerd.logs(), /tracex:/, `the first ${i} receipt(s) verified`);
    }
    const until = Date.now() + 10000;
    while (!/tracex: /.test(workerd.logs()) && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    // The tracer's counters: the N − 1 genuine receipts verified, the forged one failed.
    const logged = workerd.logs().match(/tracex: .*/g);
    assert.deepEqual(logged, [`tracex: 1 batch receipt(s) did not verify against TRACEX_AUDIT_KEY (1 of ${N} so far)`]);
  } finally {
    await workerd.stop();
    await proxy.close();
  }
});

test('the example worker sends the spans of the requests within its linger in one batch', async () => {
  const proxy = await receiptTamperingProxy(collector.url, 0); // counts the batches, alters none
  const before = (await spansOf(collector, SERVICE)).length;
  const workerd = await startWorkerd({
    TRACEX_ENDPOINT: proxy.url,
    TRACEX_API_KEY: collector.ingestKey,
    TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
  });
  try {
    // One request after another, each answered before the next: the first one's flush waits a
    // second (the linger), the others' resolve at once, and the first sends every span.
    const N = 10;
    for (let i = 0; i < N; i++) {
      const r = await post(workerd.url, verifyBody('10000', `${'99'.repeat(31)}${i.toString(16).padStart(2, '0')}`));
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    const spans = await waitForSpans(collector, SERVICE, before + N);
    assert.equal(spans.length, before + N, workerd.logs());
    // Ten requests take far less than the second on this machine; a deadline passing between two
    // of them would make a second batch.
    assert.ok(
      proxy.acknowledged() >= 1 && proxy.acknowledged() <= 2,
      `${proxy.acknowledged()} batches for ${N} requests`,
    );
    assert.doesNotMatch(workerd.logs(), /tracex:|Uncaught/);
  } finally {
    await workerd.stop();
    await proxy.close();
  }
});
