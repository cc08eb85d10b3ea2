// An x402 facilitator on node:http, traced with tracex: a middleware opens one server span per
// request (continuing the caller's traceparent), and /verify and /settle record their x402.* work.
//
//   TRACEX_ENDPOINT=http://127.0.0.1:3002 TRACEX_API_KEY=trx_ingest_… \
//   TRACEX_COLLECTOR_FINGERPRINT=<hex> node server.js
//
// then: curl -XPOST localhost:4021/settle -d '{"network":"base-sepolia","amount":"10000","payer":"0xabc…"}'
//
// With SETTLER_URL (e.g. http://127.0.0.1:4022, examples/python-settler's `serve` mode), /settle
// hands the settlement to that service over HTTP in a client span whose `traceparent` it sends, so
// the settler's spans join this trace (one trace across three services: examples/otel-ledger/);
// without it the chain RPC is simulated here.

import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Tracer } from 'tracex';

const SETTLER_URL = process.env.SETTLER_URL;

const tracer = new Tracer({
  serviceName: 'x402-facilitator',
  operatorId: process.env.FACILITATOR_ID || 'fac-local',
  operatorRole: 'facilitator',
});

/** The middleware: one server span per request, current for everything the handler awaits. */
function traced(handler) {
  return (req, res) => {
    const parent = tracer.extract(req.headers);
    tracer
      .trace(
        `${req.method} ${req.url}`,
        {
          kind: 'server',
          parent,
          attributes: {
            'http.request.method': req.method,
            'url.path': req.url,
          },
        },
        async (span) => {
          try {
            const status = await handler(req, res);
            span.setAttribute('http.response.status_code', status);
            if (status >= 500) span.setStatus('error', `HTTP ${status}`);
          } catch (err) {
            span.setAttribute('http.response.status_code', 500);
            if (!res.headersSent) res.writeHead(500).end(JSON.stringify({ error: String(err.message) }));
            throw err; // recorded on the span by tracer.trace
          }
        },
      )
      .catch(() => {});
  };
}

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return data ? JSON.parse(data) : {};
}

function reply(res, status, json) {
  res.writeHead(status, { 'content-type': 'application/json', ...tracer.inject({}) });
  res.end(JSON.stringify(json));
  return status;
}

/** Simulated chain RPC: occasionally slow or failing, so retries show up in the traces. */
async function rpc(method, attempt) {
  return tracer.trace(
    method,
    { kind: 'client', attributes: { 'rpc.method': method, 'x402.attempt': attempt } },
    async () => {
      await sleep(5 + Math.random() * 20);
      if (Math.random() < 0.15) throw Object.assign(new Error('nonce too low'), { code: 'NONCE' });
      return `0x${Math.random().toString(16).slice(2).padEnd(64, '0')}`;
    },
  );
}

/** Settlement by the settler service: a client span, current while `fetch` runs, and its traceparent. */
async function callSettler(payment) {
  const url = new URL('/settle', SETTLER_URL);
  return tracer.trace(
    'POST /settle',
    {
      kind: 'client',
      attributes: {
        'http.request.method': 'POST',
        'url.full': url.href,
        'server.address': url.hostname,
        'server.port': Number(url.port || 80),
      },
    },
    async (span) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: tracer.inject({ 'content-type': 'application/json' }), // this client span's traceparent
        body: JSON.stringify(payment),
      });
      span.setAttribute('http.response.status_code', res.status);
      if (res.status >= 500) span.setStatus('error', `HTTP ${res.status}`);
      return { status: res.status, result: await res.json() };
    },
  );
}

async function verify(req, res) {
  const p = await body(req);
  const span = tracer.activeSpan();
  span.setAttributes({
    'x402.phase': 'verify',
    'x402.scheme': p.scheme || 'exact',
    'x402.network': p.network || 'base-sepolia',
    'x402.asset': p.asset || 'USDC',
    'x402.amount': String(p.amount || '0'),
    'x402.payer': p.payer || 'unknown',
  });
  await tracer.trace('verify.signature', () => sleep(2));
  const valid = BigInt(p.amount || 0) > 0n;
  if (!valid) span.setStatus('error', 'amount must be positive');
  return reply(res, valid ? 200 : 400, { isValid: valid });
}

async function settle(req, res) {
  const p = await body(req);
  const span = tracer.activeSpan();
  span.setAttributes({
    'x402.phase': 'settle',
    'x402.scheme': p.scheme || 'exact',
    'x402.network': p.network || 'base-sepolia',
    'x402.asset': p.asset || 'USDC',
    'x402.amount': String(p.amount || '0'),
    'x402.payer': p.payer || 'unknown',
    'x402.pay_to': p.payTo || '0xfacade',
  });
  if (SETTLER_URL) {
    const { status, result } = await callSettler(p);
    if (result.txHash) span.setAttribute('x402.tx_hash', result.txHash);
    if (status !== 200) span.setStatus('error', `settler answered ${status}`);
    return reply(res, status === 200 ? 200 : 502, result);
  }
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const txHash = await rpc('eth_sendRawTransaction', attempt);
      span.setAttributes({ 'x402.tx_hash': txHash, 'x402.attempt': attempt });
      return reply(res, 200, { success: true, txHash });
    } catch (err) {
      span.addEvent('retry', { 'x402.attempt': attempt, 'error.type': err.code || 'Error' });
    }
  }
  span.setStatus('error', 'settlement failed after 3 attempts');
  return reply(res, 502, { success: false });
}

const routes = { '/verify': verify, '/settle': settle };
const server = http.createServer(
  traced(async (req, res) => {
    const route = req.method === 'POST' && routes[req.url];
    if (!route) return reply(res, 404, { error: 'not found' });
    return route(req, res);
  }),
);

const port = Number(process.env.PORT || 4021);
server.listen(port, '127.0.0.1', () =>
  console.log(`facilitator listening on http://127.0.0.1:${server.address().port}`),
);

process.on('SIGTERM', async () => {
  server.close();
  const report = await tracer.shutdown(5000);
  console.log(
    `tracex: delivered ${report.spansDelivered}, undelivered ${report.failed + report.pending + report.spooled}`,
  );
  process.exit(0);
});
