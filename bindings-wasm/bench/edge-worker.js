// The worker scripts/bench-edge.sh runs in workerd: an x402 verify handler with `spans` spans per
// request (a server span with seven x402.* attributes and spans−1 children with one each).
// `stage` says how far tracing goes, so the cost can be split:
//   none    the same work with no tracer at all (the baseline)
//   send    no tracer, but a plain POST of a few KB to the collector in waitUntil (what the
//           runtime's HTTP client costs, whoever sends)
//   tracer  `new Tracer(…)` (PEM key import)
//   record  + the spans, not flushed (they stay queued in the tracer)
//   full    + `ctx.waitUntil(tracer.flush())`: seal (data key + RSA wrap on the first) and send
//   every8  as full, but only every 8th request flushes (the other seven leave their spans queued)
//   linger  as full, with `ctx.waitUntil(tracer.flush({ lingerMs: 1000 }))` (what the example does):
//           the first request's flush waits a second and sends the batch of every request that
//           came meanwhile, whose flushes resolve at once
//   pinned  as full, with a tracer that pins the collector's audit key (TRACEX_AUDIT_KEY): each
//           flush also checks its batch's receipt; GET /pinned-stats returns that tracer's stats
import { init, Tracer } from 'tracex-wasm';
import wasm from 'tracex-wasm/tracex_wasm_bg.wasm';

// As the example does: the module is instantiated (and its hot code compiled) at startup, which
// Workers do not bill to a request.
await init(wasm);

const STAGES = ['none', 'send', 'tracer', 'record', 'full', 'every8', 'linger', 'pinned'];
let tracer;
let pinned;
let requests = 0;

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/pinned-stats') return Response.json(pinned?.stats() ?? null);
    const spans = Number(url.searchParams.get('spans') ?? 5);
    const stage = STAGES.indexOf(url.searchParams.get('stage') ?? 'full');
    const body = await request.json();
    if (stage < 2) {
      const out = verify(body, null, spans);
      if (stage === 1) {
        ctx.waitUntil(
          fetch(`${env.TRACEX_ENDPOINT}/readyz`, { method: 'POST', body: 'x'.repeat(2048) }).then((r) =>
            r.arrayBuffer(),
          ),
        );
      }
      return Response.json(out);
    }
    const options = {
      endpoint: env.TRACEX_ENDPOINT,
      apiKey: env.TRACEX_API_KEY,
      collectorPublicKey: env.TRACEX_COLLECTOR_PUBLIC_KEY,
      serviceName: 'edge-bench',
      operatorRole: 'facilitator',
    };
    if (stage === 7) {
      pinned ??= new Tracer({ ...options, auditKey: env.TRACEX_AUDIT_KEY });
      const out = pinned.trace('POST /verify', { kind: 'server' }, (span) => verify(body, span, spans, pinned));
      ctx.waitUntil(pinned.flush());
      return Response.json(out);
    }
    tracer ??= new Tracer(options);
    const out =
      stage >= 3
        ? tracer.trace('POST /verify', { kind: 'server' }, (span) => verify(body, span, spans))
        : verify(body, null, spans);
    if (stage === 4 || (stage === 5 && ++requests % 8 === 0)) ctx.waitUntil(tracer.flush());
    if (stage === 6) ctx.waitUntil(tracer.flush({ lingerMs: 1000 }));
    return Response.json(out);
  },
};

function verify(body, span, spans, t = tracer) {
  const auth = body.authorization;
  span?.setAttributes({
    'x402.scheme': 'exact',
    'x402.network': 'base',
    'x402.asset': body.asset,
    'x402.amount': auth.value,
    'x402.pay_to': auth.to,
    'x402.payer': auth.from,
    'x402.nonce': auth.nonce,
  });
  let checks = 0;
  for (let i = 1; i < spans; i++) {
    if (span) t.trace(`check ${i}`, (s) => s.setAttribute('x402.check', i));
    checks++;
  }
  return { isValid: BigInt(auth.value) >= 10000n, checks };
}
