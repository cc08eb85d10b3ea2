//! Decoding a span record buffer (`docs/record-buffer.md`): what the Node addon does on a libuv
//! thread and the WASM package on the JS thread with every buffer the JS layer hands over. The
//! buffer is the Node bench's shape as the JS layer writes it: 512 spans named `settle` with
//! `x402.scheme`, `x402.network` and `x402.amount` (repeated values: bound to value slots) and
//! `x402.attempt` (an integer).
//!
//! - `decode`: into a vector of new spans (`records::decode`);
//! - `ingest`: into the tracer's pooled boxes and onto its queue (`Tracer::ingest_records`, what
//!   the bindings call), with the tracer's worker sealing them for a transport that discards.
//!
//! `cargo bench -p tracex-core --bench records`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracex_core::Tracer;
use tracex_core::config::BatchConfig;
use tracex_core::model::{KeyValue, SpanData, SpanId, SpanKind, TraceId};
use tracex_core::records::{self, Encoder};

#[path = "common.rs"]
mod common;

const SPANS: usize = 512;
const ANCHOR: u64 = 1_764_000_000_000_000_000;

fn buffer() -> Vec<u8> {
    let mut enc = Encoder::new(ANCHOR).binding_values();
    for i in 0..SPANS as u64 {
        let mut s = SpanData {
            trace_id: TraceId((u128::from(i) + 1).to_be_bytes()),
            span_id: SpanId((i + 1).to_be_bytes()),
            name: "settle".into(),
            kind: SpanKind::Internal,
            flags: 0x101,
            start_time_unix_nano: ANCHOR + i * 1_000,
            end_time_unix_nano: ANCHOR + i * 1_000 + 750,
            ..SpanData::default()
        };
        s.attributes = vec![
            KeyValue::new("x402.scheme", "exact"),
            KeyValue::new("x402.network", "base-sepolia"),
            KeyValue::new("x402.amount", "10000"),
            KeyValue::new("x402.attempt", 1i64),
        ];
        enc.push(&s);
    }
    enc.finish()
}

fn bench(c: &mut Criterion) {
    let buf = buffer();
    let mut g = c.benchmark_group("records_512");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("decode", |b| b.iter(|| black_box(records::decode(black_box(&buf)).unwrap())));

    let tracer = Tracer::builder()
        .with_service_name("bench")
        .with_collector_public_key_pem(common::public_pem())
        .with_batch_config(BatchConfig { max_queue_size: 65_536, ..BatchConfig::default() })
        .with_transport(Box::new(common::Discard))
        .build()
        .unwrap();
    let mut n = 0u32;
    g.bench_function("ingest", |b| {
        b.iter(|| {
            assert_eq!(tracer.ingest_records(black_box(&buf)).unwrap(), SPANS);
            // Keep the queue below its bound (a dropped span would be timed as a cheap one): the
            // worker seals on the other core meanwhile.
            n += 1;
            if n % 32 == 0 {
                tracer.flush(std::time::Duration::from_secs(30)).unwrap();
            }
        });
    });
    g.finish();
    let ns = |id: &str| common::mean_ns("records_512", id).map_or(f64::NAN, |t| t / SPANS as f64);
    println!("\n== records_512: decode {:.0} ns/span, ingest {:.0} ns/span\n", ns("decode"), ns("ingest"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
