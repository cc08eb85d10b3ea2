// What tracing costs a request in workerd, in CPU time (scripts/bench-edge.sh runs this; not a test).
//
// Inside a worker there is no CPU clock (Date.now() and performance.now() stand still while code
// runs), so the cost is read from outside: the CPU time of the workerd process (the sum of its
// threads' /proc/<pid>/task/*/schedstat run time, in ns) across requests to bench/edge-worker.js,
// traced (`trace=1`) minus untraced (`trace=0`, the same handler with no tracer). That difference
// is everything tracing adds to the process: the JS layer, the WASM core, sealing, and workerd's
// own work for the extra subrequest (the batch POST) — an upper bound on the CPU Cloudflare would
// bill the isolate, which excludes the runtime's network stack.
//
//   first request: a fresh workerd per run; one request (module instantiation, PEM key import,
//                  data-key generation + RSA-OAEP wrap, seal, send) vs one untraced request
//   steady state:  blocks of requests on a warm worker, each `ctx.waitUntil(tracer.flush())`,
//                  so every request records, seals and sends its own batch (stage full), beside
//                  a flush on every 8th request (every8) and `flush({ lingerMs: 1000 })` (linger:
//                  the flushes of a second's requests share one batch), the last also with the
//                  requests paced at BENCH_PACED_RPS (10 a second) against an untraced baseline
//                  at the same pace; and as full with the collector's audit key pinned (pinned):
//                  what checking each batch's receipt adds
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, startCollector } from '../test/helpers.mjs';
import { WORKERD } from '../test/edge.mjs';

const PKG = join(ROOT, 'bindings-wasm', 'node_modules', 'tracex-wasm');
const SPANS = Number(process.env.BENCH_SPANS ?? 5);
const FIRST_RUNS = Number(process.env.BENCH_FIRST_RUNS ?? 7);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 5);
const BLOCK = Number(process.env.BENCH_BLOCK ?? 200); // a multiple of 8 (stage every8)
// The linger stage again with requests paced at this rate, so that a 1 s window holds about this
// many requests rather than a whole block (BENCH_PACED_RPS, BENCH_PACED_BLOCK requests a block).
const PACED_RPS = Number(process.env.BENCH_PACED_RPS ?? 10);
const PACED_BLOCK = Number(process.env.BENCH_PACED_BLOCK ?? 50);
// Extra V8 flags for workerd, to attribute costs (e.g. `--no-wasm-tier-up`: no optimising
// recompilation of hot WASM functions on V8's background threads); empty for the real figures.
const V8_FLAGS = (process.env.BENCH_V8_FLAGS ?? '').split(' ').filter(Boolean);

function config(dir) {
  const mods = [
    `(name = "worker.js", esModule = embed "${join(ROOT, 'bindings-wasm', 'bench', 'edge-worker.js')}")`,
    `(name = "tracex-wasm", esModule = embed "${join(PKG, 'index.js')}")`,
  ];
  for (const f of readdirSync(PKG, { recursive: true }).map(String).sort()) {
    if (f.endsWith('.js') && f !== 'index.js' && f !== 'node.js')
      mods.push(`(name = "${f}", esModule = embed "${join(PKG, f)}")`);
  }
  mods.push(`(name = "tracex-wasm/tracex_wasm_bg.wasm", wasm = embed "${join(PKG, 'tracex_wasm_bg.wasm')}")`);
  const env = ['TRACEX_ENDPOINT', 'TRACEX_API_KEY', 'TRACEX_COLLECTOR_PUBLIC_KEY', 'TRACEX_AUDIT_KEY'].map(
    (k) => `(name = "${k}", fromEnvironment = "${k}")`,
  );
  const text = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "bench", worker = .bench), (name = "internet", network = (allow = ["public", "local"])) ],
  v8Flags = [ ${V8_FLAGS.map((f) => JSON.stringify(f)).join(', ')} ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "bench") ],
);
const bench :Workerd.Worker = (
  modules = [ ${mods.join(',\n    ')} ],
  compatibilityDate = "2025-01-01",
  bindings = [ ${env.join(', ')} ],
  globalOutbound = "internet",
);
`;
  const path = join(dir, 'bench.capnp');
  writeFileSync(path, text);
  return path;
}

/** CPU time of every thread of `pid` so far, in ns (scheduler accounting, not 10 ms ticks). */
function cpuNs(pid) {
  let sum = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return sum;
}

async function startWorkerd(cfg, env) {
  const child = spawn(WORKERD, ['serve', cfg, '--import-path', '/', '--control-fd', '3'], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
  });
  const port = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdio[3] }).on('line', (l) => {
      const m = JSON.parse(l);
      if (m.event === 'listen') resolve(m.port);
    });
    child.once('exit', (c) => reject(new Error(`workerd exited ${c}`)));
  });
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((r) => {
        child.once('exit', r);
        child.kill('SIGTERM');
      }),
  };
}

const body = (i) =>
  JSON.stringify({
    asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913',
    authorization: {
      from: '0x857b06519E91e3A54538791bDbb0E22373e36b66',
      to: '0x209693Bc6afc0C5328bA36FaF03C514EF312287C',
      value: '10000',
      nonce: `0x${i.toString(16).padStart(64, '0')}`,
    },
  });
let seq = 0;
async function request(w, stage) {
  const r = await fetch(`${w.url}/verify?stage=${stage}&spans=${SPANS}`, { method: 'POST', body: body(seq++) });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  await r.json();
}

async function storedSpans(collector) {
  let n = 0;
  let cursor = null;
  do {
    const q = new URLSearchParams({ service: 'edge-bench', limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const r = await fetch(`${collector.url}/api/v1/traces?${q}`, {
      headers: { authorization: `Bearer ${collector.readKey}` },
    });
    const j = await r.json();
    for (const t of j.traces) n += t.span_count;
    cursor = j.next_cursor;
  } while (cursor);
  return n;
}

/** Waits until the collector holds `n` spans of the bench service: every flush has finished. */
async function settled(collector, n) {
  for (let i = 0; i < 400; i++) {
    if ((await storedSpans(collector)) >= n) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the collector never got ${n} spans`);
}

const idle = () => new Promise((r) => setTimeout(r, 300));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (ns) => (ns / 1e6).toFixed(2);

const collector = await startCollector();
const dir = mkdtempSync(join(tmpdir(), 'tracex-bench-edge-'));
const cfg = config(dir);
const env = {
  TRACEX_ENDPOINT: collector.url,
  TRACEX_API_KEY: collector.ingestKey,
  TRACEX_COLLECTOR_PUBLIC_KEY: collector.publicKeyPem,
  TRACEX_AUDIT_KEY: (await (await fetch(`${collector.url}/v1/audit-key`)).json()).verifier_key,
};
let expected = 0;
const FIRST_STAGES = ['none', 'send', 'tracer', 'record', 'full'];
try {
  // === first request of a fresh isolate, stage by stage ===
  const first = Object.fromEntries(FIRST_STAGES.map((st) => [st, []]));
  const startup = [];
  for (let run = 0; run < FIRST_RUNS; run++) {
    for (const stage of FIRST_STAGES) {
      const w = await startWorkerd(cfg, env);
      await idle();
      const c0 = cpuNs(w.pid);
      startup.push(c0);
      await request(w, stage);
      if (stage === 'full') await settled(collector, (expected += SPANS));
      await idle();
      first[stage].push(cpuNs(w.pid) - c0);
      await w.stop();
    }
  }
  const firstMedian = Object.fromEntries(FIRST_STAGES.map((st) => [st, median(first[st])]));

  // === steady state on a warm isolate ===
  const STEADY = ['none', 'send', 'record', 'full', 'every8', 'linger', 'pinned'];
  const w = await startWorkerd(cfg, env);
  for (const stage of ['full', 'none', 'send', 'pinned']) for (let i = 0; i < 100; i++) await request(w, stage);
  for (let i = 0; i < 96; i++) await request(w, 'every8'); // a multiple of 8: nothing left queued
  for (let i = 0; i < 100; i++) await request(w, 'linger');
  await settled(collector, (expected += 396 * SPANS));
  const perStage = Object.fromEntries(STEADY.map((st) => [st, []]));
  const rates = Object.fromEntries(STEADY.map((st) => [st, []]));
  for (let b = 0; b < BLOCKS; b++) {
    for (const stage of STEADY) {
      await idle();
      const c0 = cpuNs(w.pid);
      const t0 = performance.now();
      for (let i = 0; i < BLOCK; i++) await request(w, stage);
      // How many requests a second the block ran at: what a linger window covers.
      rates[stage].push(BLOCK / ((performance.now() - t0) / 1000));
      // every8: BLOCK is a multiple of 8, so the block's last request flushes all its spans.
      // linger: the block's last waiting flush sends at most a second after its last request.
      if (stage === 'full' || stage === 'every8' || stage === 'linger' || stage === 'pinned') {
        await settled(collector, (expected += BLOCK * SPANS));
      }
      await idle();
      perStage[stage].push((cpuNs(w.pid) - c0) / BLOCK);
      if (stage === 'record') {
        // Send what the record block queued, outside the measurement.
        await request(w, 'full');
        await settled(collector, (expected += (BLOCK + 1) * SPANS));
      }
    }
  }
  // === the linger at a lower rate ===
  const paced = { none: [], linger: [] };
  for (let b = 0; b < BLOCKS; b++) {
    for (const stage of ['none', 'linger']) {
      await idle();
      const c0 = cpuNs(w.pid);
      const t0 = performance.now();
      for (let i = 0; i < PACED_BLOCK; i++) {
        await request(w, stage);
        const wait = t0 + ((i + 1) * 1000) / PACED_RPS - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (stage === 'linger') await settled(collector, (expected += PACED_BLOCK * SPANS));
      await idle();
      paced[stage].push((cpuNs(w.pid) - c0) / PACED_BLOCK);
    }
  }
  await request(w, 'full');
  await settled(collector, (expected += SPANS));
  // Every batch the pinned tracer sent had its receipt checked, and every one verified.
  const pinnedStats = await (await fetch(`${w.url}/pinned-stats`)).json();
  if (pinnedStats.receiptsFailed !== 0 || pinnedStats.receiptsVerified !== pinnedStats.batchesSent) {
    throw new Error(`receipts of the pinned tracer: ${JSON.stringify(pinnedStats)}`);
  }
  await w.stop();
  const delivered = await storedSpans(collector);
  const steady = Object.fromEntries(STEADY.map((st) => [st, median(perStage[st])]));

  console.log(
    `workerd ${WORKERD.includes('node_modules') ? '(npm)' : WORKERD}, ${SPANS} spans per traced request, CPU time of the workerd process (all threads)` +
      (V8_FLAGS.length ? `, V8 flags ${V8_FLAGS.join(' ')}` : ''),
  );
  console.log(`startup (config load, module compile, no request): median ${ms(median(startup))} ms`);
  console.log(`first request of a fresh process, median of ${FIRST_RUNS} (ms):`);
  for (const st of FIRST_STAGES) {
    console.log(
      `  ${st.padEnd(7)} ${ms(firstMedian[st]).padStart(7)}   (+${ms(firstMedian[st] - firstMedian.none)} over none; runs ${first[st].map(ms).join(', ')})`,
    );
  }
  console.log(`  → tracing adds ${ms(firstMedian.full - firstMedian.none)} ms to the first request`);
  console.log(`steady state on a warm isolate, median of ${BLOCKS} blocks of ${BLOCK} requests (ms/request):`);
  for (const st of STEADY) {
    console.log(
      `  ${st.padEnd(7)} ${ms(steady[st]).padStart(7)}   (+${ms(steady[st] - steady.none)} over none; blocks ${perStage[st].map(ms).join(', ')})`,
    );
  }
  console.log(
    `  → tracing adds ${ms(steady.full - steady.none)} ms/request (record alone ${ms(steady.record - steady.none)}; ` +
      `a plain subrequest of the same kind costs ${ms(steady.send - steady.none)}; flushing every 8th request ${ms(steady.every8 - steady.none)}; ` +
      `flushing with a 1 s linger ${ms(steady.linger - steady.none)})`,
  );
  console.log(
    `  → with the audit key pinned, each flush also checks its receipt: +${ms(steady.pinned - steady.full)} ms/request over full ` +
      `(${pinnedStats.receiptsVerified} of ${pinnedStats.batchesSent} receipts verified)`,
  );
  console.log(`  linger blocks ran at ${rates.linger.map((r) => Math.round(r)).join(', ')} requests/s`);
  const pacedMedian = { none: median(paced.none), linger: median(paced.linger) };
  console.log(
    `paced at ${PACED_RPS} requests/s, median of ${BLOCKS} blocks of ${PACED_BLOCK} requests (ms/request): ` +
      `none ${ms(pacedMedian.none)} (blocks ${paced.none.map(ms).join(', ')}), ` +
      `linger ${ms(pacedMedian.linger)} (blocks ${paced.linger.map(ms).join(', ')})`,
  );
  console.log(
    `  → with a 1 s linger at ${PACED_RPS} requests/s tracing adds ${ms(pacedMedian.linger - pacedMedian.none)} ms/request`,
  );
  console.log(`spans delivered: ${delivered} of ${expected}`);
  if (delivered !== expected) process.exitCode = 1;
} finally {
  await collector.stop();
  rmSync(dir, { recursive: true, force: true });
}
