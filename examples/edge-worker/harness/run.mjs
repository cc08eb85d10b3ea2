// Runs worker.js the way a Workers runtime would, in Node: `npm start` loads it with the `workerd`
// export condition (so tracex-wasm resolves to its universal entry and the worker's own `init(wasm)`
// instantiates the module) and a hook that turns `import wasm from '….wasm'` into a compiled
// WebAssembly.Module, as Workers and bundlers do. Each request gets a fresh `ctx`; the harness waits
// for what the worker handed to `ctx.waitUntil` (the flush) and prints its report.
//
// Environment: TRACEX_ENDPOINT, TRACEX_API_KEY, TRACEX_COLLECTOR_PUBLIC_KEY (PEM text or a file path).
import { readFileSync, existsSync } from 'node:fs';
import worker from '../worker.js';

const pem = process.env.TRACEX_COLLECTOR_PUBLIC_KEY ?? '';
const env = {
  TRACEX_ENDPOINT: process.env.TRACEX_ENDPOINT,
  TRACEX_API_KEY: process.env.TRACEX_API_KEY,
  TRACEX_COLLECTOR_PUBLIC_KEY: pem.includes('BEGIN') || !existsSync(pem) ? pem : readFileSync(pem, 'utf8'),
  TRACEX_OPERATOR_ID: process.env.TRACEX_OPERATOR_ID,
};

const now = Math.floor(Date.now() / 1000);
const requirements = {
  scheme: 'exact', network: 'base', maxAmountRequired: '10000',
  asset: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', payTo: '0x209693Bc6afc0C5328bA36FaF03C514EF312287C',
};
const payment = (value) => ({
  x402Version: 1, scheme: 'exact', network: 'base',
  payload: { signature: '0x…', authorization: {
    from: '0x857b06519E91e3A54538791bDbb0E22373e36b66', to: requirements.payTo, value,
    validAfter: String(now - 60), validBefore: String(now + 600), nonce: `0x${'ab'.repeat(32)}`,
  } },
});

const requests = [
  ['a valid payment', payment('10000')],
  ['an underpayment', payment('9999')],
];
const results = [];
for (const [what, paymentPayload] of requests) {
  const waits = [];
  const ctx = { waitUntil: (p) => waits.push(p), passThroughOnException() {} };
  const request = new Request('https://edge.example/verify', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ x402Version: 1, paymentPayload, paymentRequirements: requirements }),
  });
  const response = await worker.fetch(request, env, ctx);
  const body = await response.json();
  const reports = await Promise.all(waits);
  const traceparent = response.headers.get('traceparent');
  results.push({ what, status: response.status, body, traceparent, flush: reports });
  console.log(`${what}: HTTP ${response.status} ${JSON.stringify(body)}  traceparent ${traceparent}`);
  console.log(`  flush: ${JSON.stringify(reports)}`);
}
if (process.env.TRACEX_HARNESS_JSON) console.log(JSON.stringify(results));
