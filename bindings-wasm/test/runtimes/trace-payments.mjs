// Run by deno.test.mjs and bun.test.mjs inside Deno and Bun (not Node): loads the package's
// universal entry (index.js, the one browsers and workers get) from the installed package, calls
// `init()` with no argument (the .wasm beside the module, by file URL), records a settle trace per
// payment (a server span with the payment's x402.* attributes and a child span), flushes, and
// prints the flush report and the batch and receipt counters as one JSON line.
//
// Environment: TRACEX_WASM_ENTRY (file URL of index.js), TRACEX_ENDPOINT, TRACEX_API_KEY,
// TRACEX_COLLECTOR_PUBLIC_KEY, TRACEX_AUDIT_KEY (the collector's, pinned), TRACEX_PAYMENTS (how many).
const env = (k) => (globalThis.Deno ? globalThis.Deno.env.get(k) : globalThis.process.env[k]);
const runtime = globalThis.Deno ? `deno ${globalThis.Deno.version.deno}` : `bun ${globalThis.Bun.version}`;

const { init, Tracer } = await import(env('TRACEX_WASM_ENTRY'));
await init();
const tracer = new Tracer({
  endpoint: env('TRACEX_ENDPOINT'),
  apiKey: env('TRACEX_API_KEY'),
  collectorPublicKey: env('TRACEX_COLLECTOR_PUBLIC_KEY'),
  auditKey: env('TRACEX_AUDIT_KEY'),
  serviceName: `settler-${runtime.split(' ')[0]}`,
  operatorRole: 'facilitator',
});

const payments = Number(env('TRACEX_PAYMENTS'));
for (let i = 0; i < payments; i++) {
  // No AsyncLocalStorage here: the synchronous callback nests the child under the current span.
  tracer.trace('POST /settle', { kind: 'server' }, (span) => {
    span.setAttributes({
      'x402.phase': 'settle',
      'x402.scheme': 'exact',
      'x402.network': 'base-sepolia',
      'x402.amount': String(1000 + i),
      'x402.nonce': `0x${i.toString(16).padStart(64, '0')}`,
      'x402.runtime': runtime,
    });
    tracer.trace('eth_sendRawTransaction', { kind: 'client' }, (child) => {
      child.setAttribute('x402.tx_index', i);
    });
  });
}
const report = await tracer.flush(20000);
const { batchesSent, receiptsVerified, receiptsFailed } = tracer.stats();
console.log(JSON.stringify({ runtime, report, batches: { batchesSent, receiptsVerified, receiptsFailed } }));
