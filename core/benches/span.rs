//! Hot path: start a span, set 4 attributes, end it — tracex beside opentelemetry-rust 0.31 (SDK with
//! a BatchSpanProcessor and a no-op exporter) and fastrace 0.7 (its global collector with a reporter
//! that discards), in one run, with the ratios printed at the end.
//!
//! All three SDKs run their real background workers (tracex's worker seals every batch). To keep any
//! from measuring a cheaper "queue full, drop" path, each timed chunk of 2048 spans fits the smallest
//! default queue (OpenTelemetry's), and all are flushed between chunks outside the timing.
//!
//! `cargo bench -p tracex-core --bench span`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_wrap)]

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastrace::Span as FastSpan;
use fastrace::collector::{Config, Reporter, SpanContext, SpanRecord};
use fastrace::local::LocalSpan;
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

/// fastrace's analogue of `NoopExporter`: its global collector thread assembles every `SpanRecord`
/// (the real work) and hands the batch here. The count lets the bench check that none was lost.
struct DiscardReporter;

static FASTRACE_REPORTED: AtomicU64 = AtomicU64::new(0);

impl Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        FASTRACE_REPORTED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        black_box(spans);
    }
}

/// The 4 attributes as fastrace properties, for both fastrace rows: strings only, so the amount is
/// formatted (what a fastrace user pays to record one); the constants are borrowed, not copied.
fn fastrace_properties(i: u64) -> [(&'static str, Cow<'static, str>); 4] {
    [
        ("x402.network", Cow::Borrowed("base")),
        ("x402.amount", Cow::Owned(i.to_string())),
        ("x402.phase", Cow::Borrowed("settle")),
        ("x402.attempt", Cow::Borrowed("1")),
    ]
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
    let _ = provider.shutdown();

    // fastrace has no tracer object: one reporter for the process, and spans are reported when the
    // root of their trace ends. Our span is a root span (no parent, its own trace), so the same
    // shape in fastrace is `Span::root` per span, as its README does for "a short task such as a
    // request" ([`fastrace_properties`]). The four go in with one `with_properties` call,
    // fastrace's cheapest way to attach several (one closure, one extend) rather than four
    // `add_property`s.
    fastrace::set_reporter(DiscardReporter, Config::default());
    let mut fastrace_spans = 0u64;
    g.bench_function("fastrace", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    fastrace_spans += n;
                    let t = Instant::now();
                    for i in 0..n {
                        let span =
                            FastSpan::root("settle", SpanContext::random()).with_properties(|| fastrace_properties(i));
                        drop(span);
                    }
                    t.elapsed()
                },
                fastrace::flush,
            )
        });
    });
    fastrace::flush();
    assert_eq!(FASTRACE_REPORTED.swap(0, Ordering::Relaxed), fastrace_spans, "fastrace lost spans");

    // fastrace's cheapest path, the one its own benchmarks measure: `LocalSpan`s in a thread-local
    // buffer under one root, handed to the collector in one piece when the root ends. That is not
    // our shape (2048 children of one trace, not 2048 traces), so it is reported apart: the figure
    // for a request that records many spans, with its one root (start, end, submit) inside the
    // timing and amortised over the chunk. 2048 fits fastrace's per-thread queue (10240).
    let mut fastrace_local_spans = 0u64;
    g.bench_function("fastrace_local_spans", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |n| {
                    fastrace_local_spans += n + 1;
                    let t = Instant::now();
                    let root = FastSpan::root("request", SpanContext::random());
                    let guard = root.set_local_parent();
                    for i in 0..n {
                        let span =
                            LocalSpan::enter_with_local_parent("settle").with_properties(|| fastrace_properties(i));
                        drop(span);
                    }
                    drop(guard);
                    drop(root);
                    t.elapsed()
                },
                fastrace::flush,
            )
        });
    });
    fastrace::flush();
    assert_eq!(FASTRACE_REPORTED.load(Ordering::Relaxed), fastrace_local_spans, "fastrace lost spans");
    g.finish();

    common::print_ratio(GROUP, "tracex", "opentelemetry_sdk");
    common::print_ratio(GROUP, "tracex", "fastrace");
    common::print_ratio(GROUP, "tracex", "fastrace_local_spans");
}

criterion_group!(benches, bench);
criterion_main!(benches);
