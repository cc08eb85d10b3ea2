// The installed package's JS entries load with no randomness, timers or I/O at module scope (the
// rule of Cloudflare Workers, which the shared JS layer also serves through tracex-wasm; issue 18).
// tests/js/load-guard.mjs forbids those calls while the modules load. The native addon itself is
// loaded as it always is (a dlopen is not what the rule is about).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { repo, PROJECT } from './collector.mjs';

const run = promisify(execFile);

test('the ESM and CommonJS entries and the test entry load without randomness, timers or I/O', async () => {
  const dist = join(PROJECT, 'node_modules', 'tracex', 'dist');
  // The released entries, and the test entry (testing.cjs, built beside a testing addon and never
  // packed: TRACEX_NODE_TESTING).
  const entries = [join(dist, 'index.mjs'), join(dist, 'index.cjs'), process.env.TRACEX_NODE_TESTING];
  const { stdout } = await run(process.execPath, [join(repo, 'tests', 'js', 'load-guard.mjs'), ...entries]);
  const r = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.deepEqual(r.failed, []);
  assert.deepEqual(r.calls, []);
  assert.deepEqual(r.loaded, entries);
});

test('span ids are drawn from a generator seeded on first use, distinct across processes', async () => {
  const script = `const { Tracer } = require('tracex');
    const t = new Tracer({ endpoint: 'http://127.0.0.1:9', apiKey: 'k', serviceName: 's',
      collectorPublicKey: require('fs').readFileSync(${JSON.stringify(join(repo, 'tests', 'vectors', 'collector-test-key.pub.pem'))}, 'utf8'),
      flushOnExit: false });
    const ids = [];
    for (let i = 0; i < 70; i++) { const s = t.startSpan('x', { parent: null }); ids.push(s.traceId + s.spanId); s.end(); }
    console.log(JSON.stringify(ids)); process.exit(0);`;
  const draw = async () => JSON.parse((await run(process.execPath, ['-e', script], { cwd: PROJECT })).stdout);
  const [a, b] = await Promise.all([draw(), draw()]);
  assert.equal(new Set(a).size, 70);
  assert.equal(a.filter((id) => b.includes(id)).length, 0);
});
