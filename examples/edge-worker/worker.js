// An x402 facilitator's `POST /verify` as a Cloudflare-Workers-style fetch handler, traced with
// tracex-wasm. The tracer is created inside the handler (on the first request of an isolate), the
// span carries the payment's x402.* attributes, and the sealed spans are sent after the response with
// `ctx.waitUntil(tracer.flush({ lingerMs }))` — edge runtimes run no timers between requests.
//
// Bindings (wrangler.toml [vars] / secrets): TRACEX_ENDPOINT, TRACEX_API_KEY (secret),
// TRACEX_COLLECTOR_PUBLIC_KEY (PEM), optionally TRACEX_OPERATOR_ID and TRACEX_AUDIT_KEY (the
// collector's audit verifier key, `GET /v1/audit-key`: each acknowledgement's receipt is then
// checked against it, and batches whose receipt does not verify are logged).
import { init, Tracer } from 'tracex-wasm';
// Workers cannot compile WebAssembly from bytes at run time: the bundler hands over a compiled Module.
import wasm from 'tracex-wasm/tracex_wasm_bg.wasm';

// At module scope: the module is instantiated and its first-request code compiled while the isolate
// starts, which Workers count against the startup limit, not against a request's CPU time.
await init(wasm);

const SUPPORTED_NETWORKS = new Set(['base', 'base-sepolia']);
// A flush waits a second and then sends the spans of every request that came meanwhile (their
// flushes resolve at once): one subrequest a second under steady traffic instead of one per
// request (the subrequest was most of tracing's CPU per request: docs/benchmarks.md). The waiting
// flush's `waitUntil` holds the isolate until those spans are sent, so none are left in an isolate
// that nothing holds. Spans reach the collector up to a second later.
const FLUSH_LINGER_MS = 1000;
let tracer;
let receiptsFailedLogged = 0;

export default {
  async fetch(request, env, ctx) {
    tracer ??= new Tracer({
      endpoint: env.TRACEX_ENDPOINT,
      apiKey: env.TRACEX_API_KEY,
      collectorPublicKey: env.TRACEX_COLLECTOR_PUBLIC_KEY,
      serviceName: 'edge-facilitator',
      operatorId: env.TRACEX_OPERATOR_ID ?? 'edge-1',
      operatorRole: 'facilitator',
      auditKey: env.TRACEX_AUDIT_KEY || undefined, // unset or empty: receipts are not checked
    });
    try {
      const parent = tracer.extract(request.headers); // continue the caller's trace, if any
      return await tracer.trace('POST /verify', { kind: 'server', parent: parent ?? null }, async (span) => {
        span.setAttribute('x402.phase', 'verify');
        const url = new URL(request.url);
        if (request.method !== 'POST' || url.pathname !== '/verify') {
          span.setAttribute('http.response.status_code', 404);
          return new Response('not found', { status: 404 });
        }
        let body;
        try {
          body = await request.json();
        } catch {
          span.setAttribute('x402.error', 'invalid_json').setAttribute('http.response.status_code', 400);
          span.setStatus('error', 'request body is not JSON');
          return Response.json({ isValid: false, invalidReason: 'invalid_json' }, { status: 400 });
        }
        const result = verify(body, span);
        span.setAttribute('x402.valid', result.isValid).setAttribute('http.response.status_code', 200);
        if (!result.isValid) {
          span.setAttribute('x402.error', result.invalidReason);
          span.setStatus('error', `payment rejected: ${result.invalidReason}`);
        }
        const headers = tracer.inject(new Headers({ 'content-type': 'application/json' }), span);
        return new Response(JSON.stringify(result), { status: 200, headers });
      });
    } finally {
      // Seal and send after the response has gone out. Nobody awaits a waitUntil promise, so a
      // failed send (wrong endpoint, key or network rule) is only visible if it is logged here.
      ctx.waitUntil(
        tracer
          .flush({ lingerMs: FLUSH_LINGER_MS })
          .then(logFailures, (e) => console.error(`tracex: flush failed: ${e.code ?? e.name}: ${e.message}`)),
      );
    }
  },
};

/** Logs what a flush could not deliver, with the last reason, and receipts that did not verify;
 * returns the report. */
function logFailures(report) {
  const { failed, pending, dropped, lastError } = report;
  // `pending` alone is no failure: under concurrent requests it counts spans that another
  // request's flush is sending at that moment. A send that failed sets `lastError`.
  if (failed > 0 || dropped > 0 || lastError !== undefined) {
    console.error(
      `tracex: ${failed} span(s) failed, ${pending} pending, ${dropped} dropped: ${lastError ?? 'no reason reported'}`,
    );
  }
  // With TRACEX_AUDIT_KEY, a batch acknowledged without a receipt signed by that key for exactly
  // the bytes sent is delivered all the same and only counted: the collector did not promise to
  // log it. The counters are the tracer's (every flush so far), so each failure is logged once.
  const { receiptsVerified, receiptsFailed } = tracer.stats();
  if (receiptsFailed > receiptsFailedLogged) {
    console.error(
      `tracex: ${receiptsFailed - receiptsFailedLogged} batch receipt(s) did not verify against TRACEX_AUDIT_KEY` +
        ` (${receiptsFailed} of ${receiptsVerified + receiptsFailed} so far)`,
    );
    receiptsFailedLogged = receiptsFailed;
  }
  return report;
}

/** The checks of an x402 `exact` verification (signature checks elided: this is an example). */
function verify({ paymentPayload, paymentRequirements }, span) {
  const req = paymentRequirements ?? {};
  const auth = paymentPayload?.payload?.authorization ?? {};
  span.setAttributes({
    'x402.scheme': req.scheme ?? '',
    'x402.network': req.network ?? '',
    'x402.asset': req.asset ?? '',
    'x402.amount': String(req.maxAmountRequired ?? ''),
    'x402.pay_to': req.payTo ?? '',
    'x402.payer': auth.from ?? '',
    'x402.nonce': auth.nonce ?? '',
  });
  const fail = (invalidReason) => ({ isValid: false, invalidReason, payer: auth.from });
  if (req.scheme !== 'exact') return fail('unsupported_scheme');
  if (!SUPPORTED_NETWORKS.has(req.network)) return fail('invalid_network');
  if ((auth.to ?? '').toLowerCase() !== (req.payTo ?? '').toLowerCase()) return fail('invalid_recipient');
  if (BigInt(auth.value ?? 0) < BigInt(req.maxAmountRequired ?? 0)) return fail('insufficient_funds');
  const now = Math.floor(Date.now() / 1000);
  if (!(Number(auth.validAfter ?? 0) <= now && now < Number(auth.validBefore ?? 0))) return fail('invalid_timing');
  return { isValid: true, payer: auth.from };
}
