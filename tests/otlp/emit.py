"""Sends the shared scenario (see check.py) with the stock OpenTelemetry Python SDK and its
OTLP/HTTP protobuf exporter (`emit.py http`, the default) or its OTLP/gRPC exporter
(`emit.py grpc`), configured only by OTEL_* environment variables."""

import sys

if sys.argv[1:] == ["grpc"]:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

SECRET = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"

provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
tracer = provider.get_tracer("tracex-otlp-test", "1.0.0")

with tracer.start_as_current_span("POST /settle", kind=SpanKind.SERVER) as root:
    root.set_attributes(
        {
            "x402.network": "base",
            "x402.amount": 10000,
            "ratio": 0.25,
            "retried": True,
            "tags": ["a", "b"],
            "wallet.private_key": SECRET,
            "note": f"signed with {SECRET}",
        }
    )
    with tracer.start_as_current_span("rpc", kind=SpanKind.CLIENT) as rpc:
        rpc.set_attribute("rpc.method", "eth_sendRawTransaction")
        rpc.add_event("retry", {"attempt": 2})
        rpc.set_status(Status(StatusCode.ERROR, "nonce too low"))
    root.set_status(Status(StatusCode.OK))

assert provider.force_flush(30_000), "the exporter did not flush"
provider.shutdown()
