//! Hot path: start a span, set 4 attributes, end it — tracex beside opentelemetry-rust 0.31 (SDK with
//! a BatchSpanProcessor and a no-op exporter), in one run, with the ratio printed at the end.
//!
//! Both SDKs run their real background workers (tracex's worker seals every batch). To keep either
//! from measuring a cheaper "queue full, drop" path, each timed chunk of 2048 spans fits the smaller
//! default queue (OpenTelemetry's), and both are flushed between chunks outside the timing.
//!
//! `cargo bench -p tracex-core --bench span`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_wrap)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracex_core::{Sampler, Tracer};

#[path = "common.rs"]
mod common;

const GROUP: &str = "span_start_end_4_attrs";
const CHUNK: u64 = 2048;

#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn tracex_tracer(sampler: Sampler) -> Tracer {
    Tracer::builder()
        .with_service_name("bench")
        .with_collector_public_key_pem(common::public_pem())
        .with_sampler(sampler)
        .with_transport(Box::new(common::Discard))
        .build()
        .unwrap()
}

fn chunked(iters: u64, mut run: impl FnMut(u64) -> Duration, mut between: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = CHUNK.min(iters - done);
        total += run(n);
        between();
        done += n;
    }
    total
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));

    let tracer = tracex_tracer(Sampler::AlwaysOn);
    g.bench_function("tracex", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    let t = Instant::now();
                    for i in 0..n {
                        let mut span = tracer.span("settle");
                        span.set_attribute("x402.network", "base")
                            .set_attribute("x402.amount", i as i64)
                            .set_attribute("x402.phase", "settle")
                            .set_attribute("x402.attempt", 1i64);
                    }
                    t.elapsed()
                },
                || {
                    tracer.flush(Duration::from_secs(10)).unwrap();
                },
            )
        });
    });
    let stats = tracer.stats();
    assert_eq!(stats.spans_dropped, 0, "no span may be dropped during the measurement");
    assert_eq!(stats.spans_recorded, stats.spans_sent);

    let off = tracex_tracer(Sampler::AlwaysOff);
    g.bench_function("tracex_sampled_out", |b| {
        b.iter(|| {
            let mut span = off.span("settle");
            span.set_attribute("x402.network", "base")
                .set_attribute("x402.amount", 1i64)
                .set_attribute("x402.phase", "settle")
                .set_attribute("x402.attempt", 1i64);
        });
    });

    let provider = SdkTracerProvider::builder().with_batch_exporter(NoopExporter).build();
    let otel = provider.tracer("bench");
    g.bench_function("opentelemetry_sdk", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    let t = Instant::now();
                    for i in 0..n {
                        let mut span = otel.start("settle");
                        span.set_attribute(opentelemetry::KeyValue::new("x402.network", "base"));
                        span.set_attribute(opentelemetry::KeyValue::new("x402.amount", i as i64));
                        span.set_attribute(opentelemetry::KeyValue::new("x402.phase", "settle"));
                        span.set_attribute(opentelemetry::KeyValue::new("x402.attempt", 1i64));
                    }
                    t.elapsed()
                },
                || {
                    let _ = provider.force_flush();
                },
            )
        });
    });
    g.finish();
    let _ = provider.shutdown();
    common::print_ratio(GROUP, "tracex", "opentelemetry_sdk");
}

criterion_group!(benches, bench);
criterion_main!(benches);
