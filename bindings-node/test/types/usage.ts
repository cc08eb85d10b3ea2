// Type-checked against the installed package's .d.ts by scripts/test-node.sh (tsc --strict).
import { Tracer, SpanStatusCode, ConfigError, audit, type FlushReport, type Span } from 'tracex';

const tracer = new Tracer({
  serviceName: 'types',
  endpoint: 'http://127.0.0.1:3002',
  sampleRatio: 0.5,
  auditKey: 'tracex-41d6af2c+2b64780a+AUHW…',
});
const receipts: number = tracer.stats().receiptsVerified + tracer.stats().receiptsFailed;
const n: number = tracer.trace('settle', { kind: 'server', attributes: { 'x402.amount': '1' } }, (span: Span) => {
  span.setAttribute('x402.attempt', 1).setAttributes({ ok: true, tags: ['a'] });
  span.addEvent('retry', { 'x402.attempt': 2 });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'x' });
  return 1;
});
const p: Promise<string> = tracer.trace('async', async () => 'done');
const child = tracer.startSpan('child', { parent: tracer.extract({ traceparent: '00-…' }) ?? null });
const wrapped: (a: number) => Promise<number> = child.wrap(async (a: number) => a * 2);
const headers: Record<string, string> = tracer.inject({});
const report: Promise<FlushReport> = tracer.flush(1000);
report.then((r) => r.spansDelivered + r.failed + r.pending + r.spooled + r.dropped);
const e = new ConfigError('x');
const code: string = e.code;
const receipt = audit.verifyReceipt('note', 'key', 'ab', 'cd');
const leafIndex: number = receipt.leafIndex;
const receivedAt: string = receipt.receivedAtUnixNano;
audit.verifyInclusion('ab', 0, 1, [], 'ab');
const size: number = audit.openCheckpoint('note', 'key').size;
void [leafIndex, receivedAt, size];
void [n, p, wrapped, headers, code, receipts, tracer.stats().spansQueued, tracer.collectorKeyId];
