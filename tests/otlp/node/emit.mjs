// Sends the shared scenario (see ../check.py) with the stock OpenTelemetry JS SDK and its OTLP/HTTP
// exporter — protobuf (`proto`) or JSON (`json`) — configured only by OTEL_* environment variables.
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as HttpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const SECRET = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318';
const exporter = process.argv[2] === 'json' ? new HttpJsonExporter() : new HttpProtoExporter();
// The resource comes from OTEL_SERVICE_NAME (the SDK's environment detector).
const resource = defaultResource().merge(detectResources({ detectors: [envDetector] }));
const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
const tracer = provider.getTracer('tracex-otlp-test', '1.0.0');

const root = tracer.startSpan('POST /settle', { kind: SpanKind.SERVER });
root.setAttributes({
  'x402.network': 'base',
  'x402.amount': 10000,
  ratio: 0.25,
  retried: true,
  tags: ['a', 'b'],
  'wallet.private_key': SECRET,
  note: `signed with ${SECRET}`,
});
const rpc = tracer.startSpan('rpc', { kind: SpanKind.CLIENT }, trace.setSpan(context.active(), root));
rpc.setAttribute('rpc.method', 'eth_sendRawTransaction');
rpc.addEvent('retry', { attempt: 2 });
rpc.setStatus({ code: SpanStatusCode.ERROR, message: 'nonce too low' });
rpc.end();
root.setStatus({ code: SpanStatusCode.OK });
root.end();

await provider.forceFlush();
await provider.shutdown();
