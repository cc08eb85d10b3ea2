//! Sends the shared scenario (tests/otlp/check.py) with the stock `opentelemetry-otlp` exporter over
//! OTLP/HTTP protobuf, configured only by `OTEL_*` environment variables (endpoint, headers, service
//! name).

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

const SECRET: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS; the resource reads OTEL_SERVICE_NAME.
    let exporter = SpanExporter::builder().with_http().build()?;
    let provider =
        SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(Resource::builder().build()).build();
    let tracer = provider.tracer_with_scope(
        opentelemetry::InstrumentationScope::builder("tracex-otlp-test").with_version("1.0.0").build(),
    );

    let mut root = tracer.span_builder("POST /settle").with_kind(SpanKind::Server).start(&tracer);
    root.set_attributes([
        KeyValue::new("x402.network", "base"),
        KeyValue::new("x402.amount", 10_000_i64),
        KeyValue::new("ratio", 0.25),
        KeyValue::new("retried", true),
        KeyValue::new("tags", Value::Array(Array::String(vec![StringValue::from("a"), StringValue::from("b")]))),
        KeyValue::new("wallet.private_key", SECRET),
        KeyValue::new("note", format!("signed with {SECRET}")),
    ]);
    let cx = Context::current_with_span(root);
    let mut rpc = tracer.span_builder("rpc").with_kind(SpanKind::Client).start_with_context(&tracer, &cx);
    rpc.set_attribute(KeyValue::new("rpc.method", "eth_sendRawTransaction"));
    rpc.add_event("retry", vec![KeyValue::new("attempt", 2_i64)]);
    rpc.set_status(Status::error("nonce too low"));
    rpc.end();
    let root = cx.span();
    root.set_status(Status::Ok);
    root.end();

    provider.force_flush()?;
    provider.shutdown()?;
    Ok(())
}
