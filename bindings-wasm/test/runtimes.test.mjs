// The package's universal entry in the real Deno and Bun (both from npm, pinned in package.json):
// test/runtimes/trace-payments.mjs runs inside each, calls `init()` with no argument, records two
// spans per payment and flushes; the collector must then hold exactly those spans with their x402.*
// attributes, and every batch's receipt (read from the runtime's fetch response) must verify against
// the collector's audit key, pinned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, startCollector, attrs } from './helpers.mjs';
import { DENO, BUN, runTool, spansOf } from './edge.mjs';

const PKG = join(ROOT, 'bindings-wasm', 'node_modules', 'tracex-wasm');
const SCRIPT = join(ROOT, 'bindings-wasm', 'test', 'runtimes', 'trace-payments.mjs');
const PAYMENTS = 25;

let collector;
let scratch;
let auditKey;
before(async () => {
  collector = await startCollector();
  ({ verifier_key: auditKey } = await (await fetch(`${collector.url}/v1/audit-key`)).json());
  // The runtimes' working directory: no package.json or deno.json for them to pick up and act on.
  scratch = mkdtempSync(join(tmpdir(), 'tracex-wasm-runtimes-'));
});
after(async () => {
  await collector?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function envFor() {
  return {
    PATH: process.env.PATH,
    HOME: scratch,
    TRACEX_WASM_ENTRY: pathToFileURL(join(PKG, 'index.js')).href,
    TRACEX_ENDPOINT: collector.url,
    TRACEX_API_KEY: collector.ingestKey,
    TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
    TRACEX_AUDIT_KEY: auditKey,
    TRACEX_PAYMENTS: String(PAYMENTS),
  };
}

async function checkDelivered(result, service, runtimePrefix) {
  assert.equal(result.code, 0, result.stderr);
  const { runtime, report, batches } = JSON.parse(result.stdout.trim().split('\n').at(-1));
  assert.match(runtime, new RegExp(`^${runtimePrefix} `));
  assert.deepEqual(report, { spansDelivered: 2 * PAYMENTS, spooled: 0, failed: 0, pending: 0, dropped: 0 });
  assert.ok(batches.batchesSent >= 1, JSON.stringify(batches));
  assert.equal(batches.receiptsVerified, batches.batchesSent, JSON.stringify(batches));
  assert.equal(batches.receiptsFailed, 0);

  const spans = await spansOf(collector, service);
  assert.equal(spans.length, 2 * PAYMENTS);
  const roots = spans.filter((s) => s.name === 'POST /settle');
  const children = spans.filter((s) => s.name === 'eth_sendRawTransaction');
  assert.equal(roots.length, PAYMENTS);
  assert.equal(children.length, PAYMENTS);
  const amounts = new Set();
  for (const root of roots) {
    const a = attrs(root.attributes);
    assert.equal(root.kind, 'server');
    assert.deepEqual(a['x402.phase'], { stringValue: 'settle' });
    assert.deepEqual(a['x402.network'], { stringValue: 'base-sepolia' });
    assert.deepEqual(a['x402.runtime'], { stringValue: runtime });
    assert.deepEqual(attrs(root.resource.attributes)['x402.operator.role'], { stringValue: 'facilitator' });
    // Only Workers get the I/O-clock marker.
    assert.equal(attrs(root.resource.attributes)['tracex.clock'], undefined);
    amounts.add(a['x402.amount'].stringValue);
    const child = children.find((c) => c.trace_id === root.trace_id);
    assert.equal(child.parent_span_id, root.span_id, 'the child nests under its payment');
    assert.equal(
      Number(attrs(child.attributes)['x402.tx_index'].intValue),
      Number(a['x402.amount'].stringValue) - 1000,
    );
  }
  assert.equal(amounts.size, PAYMENTS);
  assert.equal(new Set(roots.map((r) => r.trace_id)).size, PAYMENTS, 'one trace per payment');
}

test('Deno: init() and a flush deliver exactly the recorded spans', async () => {
  const port = new URL(collector.url).port;
  const result = await runTool(
    DENO,
    [
      'run',
      '--no-config',
      '--no-lock',
      `--allow-read=${PKG},${SCRIPT}`,
      `--allow-net=127.0.0.1:${port}`,
      '--allow-env=TRACEX_WASM_ENTRY,TRACEX_ENDPOINT,TRACEX_API_KEY,TRACEX_COLLECTOR_PUBLIC_KEY,TRACEX_AUDIT_KEY,TRACEX_PAYMENTS',
      SCRIPT,
    ],
    {
      cwd: scratch,
      // No update check (there is no network) and a throwaway module cache.
      env: { ...envFor(), DENO_NO_UPDATE_CHECK: '1', DENO_DIR: join(scratch, 'deno'), NO_COLOR: '1' },
      timeoutMs: 60000,
    },
  );
  await checkDelivered(result, 'settler-deno', 'deno');
});

test('Bun: init() and a flush deliver exactly the recorded spans', async () => {
  const result = await runTool(BUN, ['run', '--no-install', SCRIPT], {
    cwd: scratch,
    env: { ...envFor(), BUN_INSTALL_CACHE_DIR: join(scratch, 'bun'), NO_COLOR: '1' },
    timeoutMs: 60000,
  });
  await checkDelivered(result, 'settler-bun', 'bun');
});
