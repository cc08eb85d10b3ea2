// Side-by-side benchmark, one run: tracex (this package) vs OpenTelemetry JS (sdk-trace-base 2.x).
//
//   hot path   start a span, set 4 attributes (x402.*), end it — ns per span on the calling thread,
//              tracex sending to a real loopback collector, OTel with a BatchSpanProcessor and a
//              no-op exporter (the shape). Two figures: "steady", rounds of 10,000 spans that
//              the SDK absorbs without dropping (the exporters catch up between rounds, outside the
//              timed loop), and "saturated", rounds of 200,000 spans back to back, far more than the
//              2-core machine can seal and store, so tracex's sealing threads and the collector
//              process compete with the calling thread for the cores and the core drops (and counts)
//              what its queue cannot hold. Each SDK runs in processes of its own, alternating.
//   end-to-end process CPU (all threads) per span for a 100,000-span burst until everything is
//              delivered: tracex sealing and sending to the real collector; OTel with a
//              BatchSpanProcessor (its queue sized to hold the burst) and the OTLP/protobuf exporter
//              posting to a loopback HTTP sink. The median of E2E_ROUNDS (5) bursts each.
//              Spans each SDK dropped are reported too.
//
// Run: scripts/bench-node.sh (builds the release addon and collector, then runs this file). The
// figures' lines start with `==`: scripts/bench.sh copies those into docs/benchmarks.md (without them it
// took the output's last lines, the collector's log among them).
// E2E_ONLY=1 skips the hot-path processes.

import { createRequire } from 'node:module';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { startCollector } from '../test/collector.mjs';

const require = createRequire(import.meta.url);
const execFileP = promisify(execFile);
const { Tracer } = require('../dist/index.cjs');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');

const STEADY = { spans: 10_000, rounds: 41 };
const SATURATED = { spans: 200_000, rounds: 7 };
const PROCESSES = { steady: 5, saturated: 3 }; // per SDK
// 100,000: a 10,000-span burst is ≈ 25 ms of CPU, and its figure moved between 1.6 and 2.7 µs a span
// from run to run of one build.
const BURST = Number(process.env.BURST || 100_000);
const E2E_ROUNDS = Number(process.env.E2E_ROUNDS || 5);

// The instrumented code: start a span, set 4 attributes, end it. Each SDK gets its own compiled
// copy (`hotLoopFor`), as an application using one SDK would: one shared loop would make its call
// sites polymorphic across the two SDKs' span classes and slow both down.
const HOT_LOOP = `
  for (let i = 0; i < n; i++) {
    const s = tracer.startSpan('settle');
    s.setAttribute('x402.scheme', 'exact');
    s.setAttribute('x402.network', 'base-sepolia');
    s.setAttribute('x402.amount', '10000');
    s.setAttribute('x402.attempt', 1);
    s.end();
  }`;
function hotLoopFor(tracer) {
  const loop = new Function('tracer', 'n', HOT_LOOP);
  return (n) => loop(tracer, n);
}

// CPU time of the calling (main) thread in ns (CLOCK_THREAD_CPUTIME_ID, from the addon's native
// module: benchmark support, not exported by the package): the hot path's own cost, whatever other threads or processes (the core's worker, the
// collector) do on the other core meanwhile. (/proc's schedstat is only updated at scheduler ticks:
// too coarse for rounds of a few milliseconds.)
const { threadCpuTimeNs: mainThreadNs } = require('../dist/native.cjs');

/** The element of `xs` whose `key` (the element itself by default) is the median; the upper one of an even count. */
const median = (xs, key = (x) => x) => [...xs].sort((a, b) => key(a) - key(b))[Math.floor(xs.length / 2)];

/**
 * Child-process mode (`node spans.mjs hot <tracex|otel> <steady|saturated>`): one SDK's hot path
 * in a process of its own, as an application loads one SDK (in a shared process each SDK's garbage
 * and JIT state would tax the other). Prints one JSON line: median ns/span, wall, spans dropped.
 */
async function hotChild(sdkName, label) {
  const { spans, rounds } = label === 'steady' ? STEADY : SATURATED;
  let loop;
  let settle;
  let dropped = () => 0;
  let close;
  if (sdkName === 'tracex') {
    const tx = new Tracer(JSON.parse(process.env.TRACEX_BENCH_OPTIONS));
    loop = hotLoopFor(tx);
    settle = () => tx.flush(60_000);
    const d0 = tx.stats().spansDropped;
    dropped = () => tx.stats().spansDropped - d0;
    close = () => tx.shutdown(60_000);
  } else {
    const provider = new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor({ export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {} })],
    });
    loop = hotLoopFor(provider.getTracer('bench'));
    settle = () => provider.forceFlush();
    close = () => provider.shutdown();
  }
  loop(20_000); // warm up the JIT
  await settle();
  const cpu = [];
  const wall = [];
  for (let r = 0; r < rounds; r++) {
    const c0 = mainThreadNs();
    const t0 = performance.now();
    loop(spans);
    wall.push(((performance.now() - t0) * 1e6) / spans);
    cpu.push((mainThreadNs() - c0) / spans);
    await settle(); // let exporters drain between rounds, outside the timed loop
  }
  const result = { cpu: median(cpu), wall: median(wall), dropped: dropped() };
  await close();
  console.log(JSON.stringify(result));
}

/**
 * The hot path of both SDKs: PROCESSES[label] child processes each, alternating (tracex, otel, otel,
 * tracex, …) so that both see the same machine (a shared VM's speed drifts by tens of percent over
 * a minute). Reports the median of the per-process medians.
 */
async function hotPaths(collectorOptions, label) {
  const { spans, rounds } = label === 'steady' ? STEADY : SATURATED;
  const runs = { tracex: [], otel: [] };
  for (let i = 0; i < PROCESSES[label]; i++) {
    for (const sdk of i % 2 === 0 ? ['tracex', 'otel'] : ['otel', 'tracex']) {
      const { stdout } = await execFileP(process.execPath, [fileURLToPath(import.meta.url), 'hot', sdk, label], {
        env: { ...process.env, TRACEX_BENCH_OPTIONS: JSON.stringify(collectorOptions) },
      });
      runs[sdk].push(JSON.parse(stdout.trim().split('\n').pop()));
    }
  }
  const out = {};
  for (const sdk of ['tracex', 'otel']) {
    const cpu = median(runs[sdk].map((r) => r.cpu));
    const dropped = runs[sdk].reduce((n, r) => n + r.dropped, 0);
    console.log(
      `== ${sdk.padEnd(10)} hot path (${label}): ${cpu.toFixed(0)} ns/span calling-thread CPU ` +
        `(wall ${median(runs[sdk].map((r) => r.wall)).toFixed(0)} ns; per process ` +
        `${runs[sdk].map((r) => r.cpu.toFixed(0)).join(', ')}; each the median of ${rounds} × ${spans})` +
        (sdk === 'tracex' ? `, ${dropped} spans dropped and counted` : ''),
    );
    out[sdk] = cpu;
  }
  console.log(`== hot path ratio (${label}, otel / tracex): ${(out.otel / out.tracex).toFixed(2)}×`);
}

/**
 * CPU time (ns) of each of this process's threads by name, from /proc (Linux; empty elsewhere):
 * the end-to-end figure split into the calling thread (`main`), Node's own threads (`node`: the
 * libuv pool, where the addon decodes record buffers, and V8's workers) and the core's threads.
 */
function threadCpu() {
  const out = new Map();
  let tasks;
  try {
    tasks = fs.readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      const name = t === String(process.pid) ? 'main' : fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim();
      const ns = Number(fs.readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      out.set(t, [name.replace(/-\d+$/, ''), ns]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Per thread name, ns per span between two `threadCpu()` readings. */
function threadSplit(before, after, spans) {
  const by = new Map();
  for (const [t, [name, ns]] of after) by.set(name, (by.get(name) || 0) + ns - (before.get(t)?.[1] || 0));
  return [...by].map(([name, ns]) => `${name} ${(ns / spans).toFixed(0)}`).join(', ');
}

function cpuMicros() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function sink() {
  let spans = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      spans += 1;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}/v1/traces`,
    close: () => server.close(),
    requests: () => spans,
  };
}

async function main() {
  let c = await startCollector('bench');
  const sinkServer = await sink();
  try {
    // --- hot path
    if (!process.env.E2E_ONLY)
      for (const label of ['steady', 'saturated']) await hotPaths(c.options({ serviceName: 'bench-tracex' }), label);
    // A fresh collector for the end-to-end figure: the hot-path rounds left millions of spans in
    // the first one's store.
    await c.stop();
    c = await startCollector('bench-e2e');

    // --- end to end, a burst of BURST spans until delivered
    // Its queue holds the whole burst, as OpenTelemetry's does below: a burst longer than the
    // default 16,384-span queue would otherwise measure tracex's drop path for the rest.
    const tx2 = new Tracer(c.options({ serviceName: 'bench-e2e', maxQueueSize: Math.max(16_384, BURST * 2) }));
    const tx2Loop = hotLoopFor(tx2);
    tx2Loop(20_000); // warm up the JIT (the hot-path rounds ran in other processes)
    await tx2.flush(60_000);
    const sentBefore = tx2.stats().spansSent;
    // E2E_ROUNDS bursts each, the median reported (as the hot path's rounds are), every burst
    // listed: one burst moved by ± 20 % between runs of one build.
    const txRounds = [];
    let txReport;
    let txWall = 0;
    for (let r = 0; r < E2E_ROUNDS; r++) {
      const threads0 = threadCpu();
      const cpu0 = cpuMicros();
      const w0 = performance.now();
      tx2Loop(BURST);
      txReport = await tx2.flush(120_000);
      txRounds.push({ cpu: ((cpuMicros() - cpu0) * 1e3) / BURST, split: threadSplit(threads0, threadCpu(), BURST) });
      txWall += performance.now() - w0;
    }
    const txMedian = median(txRounds, (x) => x.cpu);
    const txCpu = txMedian.cpu;
    const split = txMedian.split;
    const txStats = tx2.stats();
    const txDelivered = txStats.spansSent - sentBefore;
    await tx2.shutdown();
    console.log(
      `== tracex     end-to-end: ${txCpu.toFixed(0)} ns CPU/span (median of ${E2E_ROUNDS} bursts: ${txRounds.map((x) => x.cpu.toFixed(0)).join(', ')}), ` +
        `${txDelivered}/${BURST * E2E_ROUNDS} delivered to the collector, ${txStats.spansDropped} dropped, ` +
        `${(txWall / E2E_ROUNDS).toFixed(0)} ms wall a burst (last report ${JSON.stringify(txReport)})`,
    );
    if (split) console.log(`== tracex     end-to-end by thread (the median burst), ns/span: ${split}`);

    let otExported = 0;
    // Its exporter refuses more than 30 exports in flight by default ("Concurrent export limit
    // reached"), which a queue holding the whole burst reaches on the flush.
    const exporter = new OTLPTraceExporter({ url: sinkServer.url, concurrencyLimit: BURST });
    const countingExporter = {
      export(spans, cb) {
        exporter.export(spans, (r) => {
          if (r.code === 0) otExported += spans.length;
          cb(r);
        });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush(),
    };
    // Its queue holds the whole burst (its default, 2,048, dropped three quarters of it uncounted,
    // which made its CPU per span look cheaper than exporting every span costs): both SDKs are
    // measured to the last span delivered.
    const provider2 = new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor(countingExporter, { maxQueueSize: BURST * 2 })],
    });
    const ot2 = provider2.getTracer('bench');
    const ot2Loop = hotLoopFor(ot2);
    ot2Loop(20_000);
    await provider2.forceFlush();
    otExported = 0;
    const otRounds = [];
    let otWall = 0;
    for (let r = 0; r < E2E_ROUNDS; r++) {
      const cpu0 = cpuMicros();
      const w0 = performance.now();
      ot2Loop(BURST);
      await provider2.forceFlush();
      otRounds.push(((cpuMicros() - cpu0) * 1e3) / BURST);
      otWall += performance.now() - w0;
    }
    const otCpu = median(otRounds);
    console.log(
      `== otel       end-to-end: ${otCpu.toFixed(0)} ns CPU/span (median of ${E2E_ROUNDS} bursts: ${otRounds.map((x) => x.toFixed(0)).join(', ')}), ` +
        `${otExported}/${BURST * E2E_ROUNDS} exported to the sink, ${BURST * E2E_ROUNDS - otExported} dropped uncounted, ` +
        `${(otWall / E2E_ROUNDS).toFixed(0)} ms wall a burst`,
    );
    console.log(`== end-to-end CPU ratio (otel / tracex): ${(otCpu / txCpu).toFixed(2)}×`);
    await provider2.shutdown();
  } finally {
    sinkServer.close();
    await c.stop();
  }
}

if (process.argv[2] === 'hot') await hotChild(process.argv[3], process.argv[4]);
else await main();
