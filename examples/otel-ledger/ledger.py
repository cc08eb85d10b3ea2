"""otel-ledger: a small bookkeeping service instrumented only with the stock OpenTelemetry Python
SDK, no tracex anywhere. It continues the caller's trace from the W3C `traceparent` (the SDK's
default propagator) and exports OTLP/HTTP to the tracex collector's `POST /v1/traces`, configured
only by the standard variables:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:3002 \\
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20<ingest key>" \\
    OTEL_SERVICE_NAME=otel-ledger PORT=4023 python examples/otel-ledger/ledger.py

`POST /entries` with a JSON settlement (`tx_hash`, `network`, `amount`, `payer`) books it and answers
`{"entry_id": …}`: a server span `POST /entries` with a child `ledger.append`. SIGTERM or Ctrl-C
stops it after the exporter has delivered what it holds.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

os.environ.setdefault("OTEL_SERVICE_NAME", "otel-ledger")
provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel-ledger", "0.1.0")

entries: dict[str, dict] = {}
entries_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        parent = propagate.extract(self.headers)  # the caller's traceparent (W3C Trace Context)
        with tracer.start_as_current_span(
            f"POST {self.path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": self.path},
        ) as span:
            if self.path != "/entries":
                span.set_attribute("http.response.status_code", 404)
                self.reply(404, {"error": "not found"})
                return
            entry = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            with tracer.start_as_current_span("ledger.append") as append:
                entry_id = uuid.uuid4().hex
                with entries_lock:
                    entries[entry_id] = entry
                append.set_attributes(
                    {
                        "ledger.entry_id": entry_id,
                        "ledger.entries": len(entries),
                        "x402.tx_hash": str(entry.get("tx_hash", "")),
                        "x402.amount": str(entry.get("amount", "")),
                    }
                )
            span.set_attribute("http.response.status_code", 201)
            span.set_status(Status(StatusCode.OK))
            self.reply(201, {"entry_id": entry_id})

    def reply(self, status: int, answer: dict) -> None:
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: the spans tell the story
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "4023"))), Handler)
    # shutdown() waits for serve_forever() to return, so it cannot run in the signal handler itself.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"ledger listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    provider.shutdown()  # the batch processor exports what it still holds


if __name__ == "__main__":
    main()
