//! The worker's side of a 512-span batch: OTLP encoding, AES-256-GCM sealing (MB/s of batch
//! payload), and the whole redact → encode → seal pipeline per span.
//!
//! `cargo bench -p tracex-core --bench seal`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tracex_core::redact::Redactor;
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{Event, InstrumentationScope, KeyValue, Resource, SpanData, SpanKind, Status, ids};

#[path = "common.rs"]
mod common;

const SPANS: usize = 512;

fn batch() -> Vec<SpanData> {
    let trace_id = ids::new_trace_id();
    (0..SPANS)
        .map(|i| SpanData {
            trace_id,
            span_id: ids::new_span_id(),
            parent_span_id: (i % 4 != 0).then(ids::new_span_id),
            flags: 1,
            name: if i % 2 == 0 { "verify".into() } else { "settle".into() },
            kind: SpanKind::Server,
            start_time_unix_nano: 1_763_900_000_000_000_000 + i as u64 * 1000,
            end_time_unix_nano: 1_763_900_000_000_000_000 + i as u64 * 1000 + 250_000,
            attributes: vec![
                KeyValue::new("x402.scheme", "exact"),
                KeyValue::new("x402.network", "base"),
                KeyValue::new("x402.asset", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
                KeyValue::new("x402.amount", format!("{}", 10_000 + i)),
                KeyValue::new("x402.payer", "0x857b06519E91e3A54538791bDbb0E22373e36b66"),
                KeyValue::new("x402.attempt", 1i64),
                KeyValue::new("http.response.status_code", 200i64),
            ],
            events: if i % 8 == 0 {
                vec![Event {
                    time_unix_nano: 1,
                    name: "retry".into(),
                    attributes: vec![KeyValue::new("x402.attempt", 2i64)],
                    dropped_attributes_count: 0,
                }]
            } else {
                vec![]
            },
            status: Status::ok(),
            ..Default::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let resource = Resource::new("bench").with("x402.operator.role", "facilitator");
    let scope = InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() };
    let spans = batch();
    let mut plain = Vec::new();
    tracex_core::encode::encode_spans(&resource, &scope, &spans, &mut plain);
    let key = CollectorKey::from_pem(&common::public_pem()).unwrap();
    println!("512-span batch: {} bytes of OTLP protobuf ({} bytes/span)", plain.len(), plain.len() / SPANS);

    let mut g = c.benchmark_group("batch_512");
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(plain.len() as u64));

    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(plain.len());
        b.iter(|| {
            out.clear();
            tracex_core::encode::encode_spans(&resource, &scope, black_box(&spans), &mut out);
            black_box(out.len())
        });
    });

    let mut sealer = Sealer::new(key.clone(), SealerConfig::default()).unwrap();
    g.bench_function("seal", |b| b.iter(|| black_box(sealer.seal(1, black_box(&plain)).unwrap())));

    let mut compressing = Sealer::new(key.clone(), SealerConfig { compress: true, ..Default::default() }).unwrap();
    g.bench_function("seal_deflate", |b| b.iter(|| black_box(compressing.seal(1, black_box(&plain)).unwrap())));

    g.bench_function("encode_and_seal", |b| {
        b.iter(|| {
            black_box(
                sealer
                    .seal_with(1, |out| tracex_core::encode::encode_spans(&resource, &scope, black_box(&spans), out))
                    .unwrap(),
            );
        });
    });

    let redactor = Redactor::default();
    // The same spans with every string value owned, as the Node and Python bindings' record-buffer
    // decoder hands them over (keys stay interned): nothing is found clean by address, so the
    // 42-character asset and payer addresses are scanned in every span.
    let owned: Vec<SpanData> = spans
        .iter()
        .cloned()
        .map(|mut s| {
            for kv in s.attributes.iter_mut().chain(s.events.iter_mut().flat_map(|e| e.attributes.iter_mut())) {
                if let tracex_core::Value::String(v) = &mut kv.value {
                    *v = std::borrow::Cow::Owned(v.to_string());
                }
            }
            s
        })
        .collect();
    // Redaction alone: the spans are cloned before and dropped after the timed part.
    for (id, input) in [("redact", &spans), ("redact_owned", &owned)] {
        g.bench_function(id, |b| {
            b.iter_batched_ref(
                || input.clone(),
                |spans| {
                    for s in spans.iter_mut() {
                        black_box(redactor.redact_span(s));
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.bench_function("redact_encode_seal", |b| {
        b.iter_batched_ref(
            || spans.clone(),
            |spans| {
                for s in spans.iter_mut() {
                    redactor.redact_span(s);
                }
                black_box(
                    sealer
                        .seal_with(1, |out| tracex_core::encode::encode_spans(&resource, &scope, spans, out))
                        .unwrap(),
                );
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();

    for id in ["encode", "seal", "seal_deflate", "encode_and_seal", "redact", "redact_owned", "redact_encode_seal"] {
        if let Some(ns) = common::mean_ns("batch_512", id) {
            println!(
                "== batch_512/{id}: {:.1} µs/batch, {:.0} ns/span, {:.0} MB/s of OTLP payload",
                ns / 1e3,
                ns / SPANS as f64,
                plain.len() as f64 / ns * 1e3
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
