// Side-by-side benchmark, one run: tracex (this package) vs OpenTelemetry JS (sdk-trace-base 2.x).
//
//   hot path   start a span, set 4 attributes (x402.*), end it — ns per span on the calling thread,
//              tracex sending to a real loopback collector, OTel with a BatchSpanProcessor and a
//              no-op exporter (the shape).
//   end-to-end process CPU (all threads) per span for a 10,000-span burst until everything is
//              delivered: tracex sealing and sending to the real collector; OTel with a
//              BatchSpanProcessor and the OTLP/protobuf exporter posting to a loopback HTTP sink.
//              Spans each SDK dropped are reported too.
//
// Run: scripts/bench-node.sh (builds the release addon and collector, then runs this file).

import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { startCollector } from '../test/collector.mjs';

const require = createRequire(import.meta.url);
const { Tracer } = require('../dist/index.cjs');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');

const HOT_SPANS = Number(process.env.HOT_SPANS || 200_000);
const ROUNDS = Number(process.env.ROUNDS || 7);
const BURST = Number(process.env.BURST || 10_000);

function hotLoop(startSpan, n) {
  for (let i = 0; i < n; i++) {
    const s = startSpan('settle');
    s.setAttribute('x402.scheme', 'exact');
    s.setAttribute('x402.network', 'base-sepolia');
    s.setAttribute('x402.amount', '10000');
    s.setAttribute('x402.attempt', 1);
    s.end();
  }
}

// CPU time of the calling (main) thread in ns: the hot path's own cost, whatever other threads or
// processes (the core's worker, the collector) do on the other core meanwhile.
const schedstat = `/proc/self/task/${process.pid}/schedstat`;
function mainThreadNs() {
  return Number(readFileSync(schedstat, 'utf8').split(' ')[0]);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function hotPath(name, startSpan, settle) {
  hotLoop(startSpan, 20_000); // warm up the JIT
  await settle();
  const cpu = [];
  const wall = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = mainThreadNs();
    const t0 = performance.now();
    hotLoop(startSpan, HOT_SPANS);
    wall.push(((performance.now() - t0) * 1e6) / HOT_SPANS);
    cpu.push((mainThreadNs() - c0) / HOT_SPANS);
    await settle(); // let exporters drain between rounds, outside the timed loop
  }
  const m = median(cpu);
  console.log(`${name.padEnd(10)} hot path: ${m.toFixed(0)} ns/span calling-thread CPU (wall ${median(wall).toFixed(0)} ns; ` +
    `median of ${ROUNDS} × ${HOT_SPANS})`);
  return m;
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
  return { url: `http://127.0.0.1:${server.address().port}/v1/traces`, close: () => server.close(), requests: () => spans };
}

async function main() {
  const c = await startCollector('bench');
  const sinkServer = await sink();
  try {
    // --- hot path
    const tx = new Tracer(c.options({ serviceName: 'bench-tracex' }));
    const txHot = await hotPath('tracex', (n) => tx.startSpan(n), () => tx.flush(60_000));
    const provider = new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor({ export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {} })],
    });
    const ot = provider.getTracer('bench');
    const otHot = await hotPath('otel', (n) => ot.startSpan(n), () => provider.forceFlush());
    console.log(`hot path ratio (otel / tracex): ${(otHot / txHot).toFixed(2)}×`);
    await tx.shutdown(60_000);
    await provider.shutdown();

    // --- end to end, a burst of BURST spans until delivered
    const tx2 = new Tracer(c.options({ serviceName: 'bench-e2e' }));
    hotLoop((n) => tx2.startSpan(n), 2_000);
    await tx2.flush(60_000);
    const sentBefore = tx2.stats().spansSent;
    let cpu0 = cpuMicros();
    let w0 = performance.now();
    hotLoop((n) => tx2.startSpan(n), BURST);
    const txReport = await tx2.flush(120_000);
    const txCpu = ((cpuMicros() - cpu0) * 1e3) / BURST;
    const txWall = performance.now() - w0;
    const txStats = tx2.stats();
    const txDelivered = txStats.spansSent - sentBefore;
    await tx2.shutdown();
    console.log(`tracex     end-to-end: ${txCpu.toFixed(0)} ns CPU/span, ${txDelivered}/${BURST} delivered to the collector, ` +
      `${txStats.spansDropped} dropped, ${txWall.toFixed(0)} ms wall (report ${JSON.stringify(txReport)})`);

    let otExported = 0;
    const exporter = new OTLPTraceExporter({ url: sinkServer.url });
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
    const provider2 = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(countingExporter)] });
    const ot2 = provider2.getTracer('bench');
    hotLoop((n) => ot2.startSpan(n), 2_000);
    await provider2.forceFlush();
    otExported = 0;
    cpu0 = cpuMicros();
    w0 = performance.now();
    hotLoop((n) => ot2.startSpan(n), BURST);
    await provider2.forceFlush();
    const otCpu = ((cpuMicros() - cpu0) * 1e3) / BURST;
    const otWall = performance.now() - w0;
    console.log(`otel       end-to-end: ${otCpu.toFixed(0)} ns CPU/span, ${otExported}/${BURST} exported to the sink, ` +
      `${BURST - otExported} dropped uncounted, ${otWall.toFixed(0)} ms wall`);
    console.log(`end-to-end CPU ratio (otel / tracex): ${(otCpu / txCpu).toFixed(2)}×`);
    await provider2.shutdown();
  } finally {
    sinkServer.close();
    await c.stop();
  }
}

await main();
