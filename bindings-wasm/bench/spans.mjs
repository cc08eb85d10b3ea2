// ns/span through the WASM package in Node, beside the native addon (the `tracex` npm package), in
// one run, against the real collector. A benchmark, not a test: it prints figures, it asserts only
// that every span was delivered (so neither SDK is measured on a cheaper dropping path).
//
//   scripts/build-wasm.sh && (cd bindings-node && npm ci && npm run build)   # the two packages
//   scripts/bench-wasm.sh                                                    # installs, runs this
//
// Workload: start a span, set 4 attributes (2 strings, an int, a bool), end it; in chunks of 2048 with
// a flush between chunks. "hot path" times the span calls only (including the JS layer's hand-over
// of each 512 spans to the core: record buffer + ingest); "end to end" adds the flush (seal + POST +
// the collector's durable acknowledgement).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Tracer as WasmTracer } from 'tracex-wasm';
import { ROOT, startCollector } from '../test/helpers.mjs';

const SPANS = Number(process.env.BENCH_SPANS ?? 204_800);
const CHUNK = 2048;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const nodeEntry = join(ROOT, 'bindings-node', 'dist', 'index.mjs');
const NodeTracer = existsSync(nodeEntry) ? (await import(pathToFileURL(nodeEntry).href)).Tracer : undefined;

const collector = await startCollector();
const options = {
  endpoint: collector.url,
  apiKey: collector.ingestKey,
  collectorPublicKey: collector.publicKeyPem,
  serviceName: 'bench',
  flushOnExit: false,
};

async function measure(Tracer, spans) {
  const tracer = new Tracer(options);
  let hot = 0n;
  let total = 0n;
  for (let done = 0; done < spans; done += CHUNK) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CHUNK; i++) {
      const s = tracer.startSpan('POST /verify');
      s.setAttribute('x402.network', 'base');
      s.setAttribute('x402.amount', '10000');
      s.setAttribute('x402.attempt', 1);
      s.setAttribute('x402.valid', true);
      s.end();
    }
    const t1 = process.hrtime.bigint();
    const report = await tracer.flush(60_000);
    const t2 = process.hrtime.bigint();
    // The addon's worker may send full batches before flush() is called: check the running total.
    const sent = tracer.stats().spansSent;
    assert.equal(sent, done + CHUNK, `${JSON.stringify(report)} ${JSON.stringify(tracer.stats())}`);
    hot += t1 - t0;
    total += t2 - t0;
  }
  await tracer.shutdown();
  return { hot: Number(hot) / spans, total: Number(total) / spans };
}

const sdks = [['tracex-wasm (WASM module)', WasmTracer]];
if (NodeTracer) sdks.push(['tracex (napi addon)', NodeTracer]);
else console.log(`(native addon not built: ${nodeEntry} missing; run \`npm run build\` in bindings-node)`);

try {
  for (const [, T] of sdks) await measure(T, 8 * CHUNK); // warm-up: JIT, data key (one RSA wrap)
  const best = new Map();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, T] of sdks) {
      const m = await measure(T, SPANS);
      const b = best.get(name);
      best.set(name, b ? { hot: Math.min(b.hot, m.hot), total: Math.min(b.total, m.total) } : m);
    }
  }
  console.log(`node ${process.version}, ${SPANS} spans × ${ROUNDS} rounds (best round), 4 attributes per span`);
  console.log('| SDK | hot path ns/span | end to end ns/span |');
  console.log('|---|---|---|');
  for (const [name, m] of best) console.log(`| ${name} | ${m.hot.toFixed(0)} | ${m.total.toFixed(0)} |`);
  if (best.size === 2) {
    const [w, n] = [...best.values()];
    console.log(`| WASM / native | ${(w.hot / n.hot).toFixed(2)}× | ${(w.total / n.total).toFixed(2)}× |`);
  }
} finally {
  await collector.stop();
}
