//! The Rust SDK's amortised end-to-end cost per span: CPU time of every SDK thread (the recording
//! thread, `tracex-batcher`, the `tracex-sender` threads and reqwest's runtime thread) per span,
//! while the SDK records, redacts, encodes, seals and sends 200,000 spans to a real collector on
//! loopback (same process, its own threads, not counted) and every span is acknowledged after
//! commit — and so the delivery rate of one SDK instance. Runs once per `max_concurrent_exports`
//! in `E2E_CONCURRENCY` (default `1,4`: one batch at a time beside the default), each against a
//! fresh collector. `E2E_SPANS_PER_TRACE` (default `1,8`) puts that many spans in each trace (a
//! root and its children), each count a run of its own: the collector's writer does per-trace work
//! (the trace row and its attribute index) that one-span traces pay for every span, so one-span
//! traces are the collector's worst case and traces of 8 (a payment's verify, settle and their
//! calls) the common one. `E2E_BATCH_SIZE` sets the spans per sealed batch (default: the core's).
//! Then one run more, the last `E2E_CONCURRENCY` with the first `E2E_SPANS_PER_TRACE`, with the
//! collector's audit key pinned: the SDK checks the signed receipt of every batch (the envelope's
//! SHA-256 and an Ed25519 verification), and the line says what that adds a span (`E2E_RECEIPTS=0`
//! leaves it out).
//!
//! `cargo bench -p tracex-collector --bench sdk_e2e`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    clippy::cast_possible_wrap
)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tracex_core::Tracer;
use tracex_core::config::BatchConfig;

#[path = "common.rs"]
mod common;
use common::BenchCollector;

/// CPU seconds per thread name, from /proc (Linux only).
fn cpu_by_thread() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim().to_owned();
        // All senders together.
        let comm = if comm.starts_with("tracex-sender") { "tracex-sender".to_owned() } else { comm };
        *out.entry(comm).or_insert(0.0) += common::task_cpu(&dir).as_secs_f64();
    }
    out
}

fn main() {
    let spans = common::env_usize("E2E_SPANS", 200_000) as u64;
    let concurrency: Vec<usize> = common::env_list("E2E_CONCURRENCY", "1,4");
    let shapes: Vec<u64> =
        common::env_list::<u64>("E2E_SPANS_PER_TRACE", "1,8").into_iter().map(|n| n.max(1)).collect();
    let mut last = None;
    for &per_trace in &shapes {
        let mut runs = Vec::new();
        for &n in &concurrency {
            runs.push((n, run(spans, n, per_trace, false)));
        }
        if let Some((_, first)) = runs.first() {
            for (n, r) in &runs {
                println!(
                    "== delivery, {} a trace, {n} batch(es) in flight: {:.0} spans/s, {:.2}x of the first",
                    spans_a_trace(per_trace),
                    r.rate,
                    r.rate / first.rate
                );
            }
        }
        if per_trace == shapes[0] {
            last = runs.pop();
        }
    }
    if let Some((n, plain)) = last.filter(|_| std::env::var("E2E_RECEIPTS").as_deref() != Ok("0")) {
        let pinned = run(spans, n, shapes[0], true);
        println!(
            "== receipts checked (audit key pinned), {} a trace, {n} in flight: SDK CPU {:.0} ns/span against {:.0} without ({:+.0} ns/span, {:.0} us a batch of {:.0} spans: the envelope's SHA-256 and one Ed25519 verification); {:.0} spans/s",
            spans_a_trace(shapes[0]),
            pinned.sdk_ns,
            plain.sdk_ns,
            pinned.sdk_ns - plain.sdk_ns,
            (pinned.sdk_ns - plain.sdk_ns) * pinned.spans_a_batch / 1e3,
            pinned.spans_a_batch,
            pinned.rate
        );
    }
}

/// What one run measured.
struct Run {
    /// Spans acknowledged a second.
    rate: f64,
    /// CPU of every SDK thread, ns a span.
    sdk_ns: f64,
    /// Spans a sealed batch, on average.
    spans_a_batch: f64,
}

/// "1 span" / "8 spans".
fn spans_a_trace(n: u64) -> String {
    if n == 1 { "1 span".into() } else { format!("{n} spans") }
}

/// `E2E_BATCH_SIZE`: spans per sealed batch (the core's default unless set).
fn batch_size() -> usize {
    std::env::var("E2E_BATCH_SIZE")
        .ok()
        .map_or(BatchConfig::default().max_batch_size, |v| v.parse().expect("E2E_BATCH_SIZE: a positive integer"))
}

/// One run with `in_flight` concurrent exports and `per_trace` spans a trace, checking every
/// batch's receipt against the pinned audit key if `receipts`.
fn run(spans: u64, in_flight: usize, per_trace: u64, receipts: bool) -> Run {
    let collector = BenchCollector::start("sdk-e2e");
    let mut builder = Tracer::builder();
    if receipts {
        let key: serde_json::Value =
            reqwest::blocking::get(format!("{}/v1/audit-key", collector.url)).unwrap().json().unwrap();
        builder = builder.with_audit_key(key["verifier_key"].as_str().unwrap());
    }
    let tracer = builder
        .with_service_name("e2e-bench")
        .with_endpoint(&collector.url)
        .with_api_key(&collector.ingest_key)
        .with_collector_public_key_pem(&collector.public_pem)
        .with_batch_config(BatchConfig {
            max_concurrent_exports: in_flight,
            max_batch_size: batch_size(),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    // The recording thread is this one; its name comes from the bench binary.
    let me = std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_owned();
    let sdk_threads = [me.as_str(), "tracex-batcher", "tracex-sender", "reqwest-interna"];
    let before = cpu_by_thread();
    let started = Instant::now();
    let mut root: Option<tracex_core::SpanContext> = None;
    let mut waiting = Duration::ZERO;
    for i in 0..spans {
        let builder = tracer.span_builder("settle");
        let builder = match (&root, i % per_trace) {
            (Some(cx), k) if k != 0 => builder.child_of(cx.clone()),
            _ => builder.root(),
        };
        let mut span = builder.start();
        if i % per_trace == 0 {
            root = Some(span.context().clone());
        }
        span.set_attribute("x402.network", "base")
            .set_attribute("x402.amount", i as i64)
            .set_attribute("x402.phase", "settle")
            .set_attribute("x402.attempt", 1i64);
        if i % 2048 == 2047 && tracer.stats().spans_recorded - tracer.stats().spans_sealed > 8192 {
            // Keep within the buffer: a real service records over time, not in one burst. The CPU
            // this wait costs (tens of thousands of sleeps and wake-ups while the collector is the
            // limit) is the bench's, not the SDK's: it is taken off the recording thread's figure.
            let wait_from = common::task_cpu(Path::new("/proc/thread-self"));
            while tracer.stats().spans_recorded - tracer.stats().spans_sealed > 8192 {
                std::thread::sleep(Duration::from_micros(200));
            }
            waiting += common::task_cpu(Path::new("/proc/thread-self")).saturating_sub(wait_from);
        }
    }
    let report = tracer.flush(Duration::from_secs(60)).unwrap();
    let wall = started.elapsed();
    let after = cpu_by_thread();
    assert!(report.is_complete(), "{report:?}");
    let stats = tracer.stats();
    assert_eq!(stats.spans_sent, spans, "every span acknowledged");
    if receipts {
        assert_eq!((stats.receipts_verified, stats.receipts_failed), (stats.batches_sent, 0), "every receipt checked");
    }
    let mut sdk_cpu = 0.0;
    for name in sdk_threads {
        let mut d = after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
        if name == me {
            d -= waiting.as_secs_f64();
            println!(
                "   {name:<20} {d:.3} s CPU (recording; {:.3} s waiting for the buffer not counted)",
                waiting.as_secs_f64()
            );
        } else {
            println!("   {name:<20} {d:.3} s CPU");
        }
        sdk_cpu += d;
    }
    let others: f64 = after
        .iter()
        .filter(|(n, _)| !sdk_threads.contains(&n.as_str()))
        .map(|(n, v)| v - before.get(n).copied().unwrap_or(0.0))
        .sum();
    let sdk_ns = sdk_cpu / spans as f64 * 1e9;
    println!(
        "== sdk_e2e ({}, {in_flight} in flight{}): {spans} spans acknowledged in {:.2} s; SDK CPU {sdk_ns:.0} ns/span (all SDK threads), collector CPU {:.0} ns/span; {} batches, {} bytes sent",
        spans_a_trace(per_trace),
        if receipts { ", receipts checked" } else { "" },
        wall.as_secs_f64(),
        others / spans as f64 * 1e9,
        stats.batches_sent,
        stats.bytes_sent
    );
    drop(tracer);
    collector.stop();
    Run { rate: spans as f64 / wall.as_secs_f64(), sdk_ns, spans_a_batch: spans as f64 / stats.batches_sent as f64 }
}
