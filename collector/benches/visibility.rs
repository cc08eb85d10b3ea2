//! Visibility: how long after `span.end()` a span can be read back through the query API
//! (`GET /api/v1/traces/{id}`), with the Rust SDK and a real collector on loopback (same process),
//! at the default schedule (a partial batch is sealed at most 1 s after its first span) and with a
//! 100 ms schedule. Each span is ended at a random point of the batcher's schedule (a random
//! pause before it), one at a time, and the API is polled every 2 ms until the trace is there.
//!
//! `cargo bench -p tracex-collector --bench visibility` (`VIS_SPANS`: spans per setting, default
//! 60 at 1 s and 5 times that at 100 ms).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::time::{Duration, Instant};

use tracex_collector::store::KeyScope;
use tracex_core::Tracer;
use tracex_core::config::{BatchConfig, DEFAULT_SCHEDULED_DELAY};

#[path = "common.rs"]
mod common;
use common::BenchCollector;

fn main() {
    let spans = common::env_usize("VIS_SPANS", 60);
    for (label, delay, n) in [
        ("default schedule (1 s)", DEFAULT_SCHEDULED_DELAY, spans),
        ("100 ms schedule", Duration::from_millis(100), spans * 5),
    ] {
        let collector = BenchCollector::start("visibility");
        let read = tracex_collector::auth::generate("bench", KeyScope::Read, 0).unwrap();
        collector.store.insert_api_key(&read.record).unwrap();
        let tracer = Tracer::builder()
            .with_service_name("visibility-bench")
            .with_endpoint(&collector.url)
            .with_api_key(&collector.ingest_key)
            .with_collector_public_key_pem(&collector.public_pem)
            .with_batch_config(BatchConfig { scheduled_delay: delay, ..BatchConfig::default() })
            .build()
            .unwrap();
        let http = reqwest::blocking::Client::new();
        let auth = format!("Bearer {}", read.key);
        let mut waits = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(delay.mul_f64(tracex_core::ids::random_unit()));
            let span = tracer.span("settle");
            let trace = span.context().trace_id.to_hex();
            span.end();
            let ended = Instant::now();
            let url = format!("{}/api/v1/traces/{trace}?limit=1", collector.url);
            loop {
                let status = http.get(&url).header("authorization", &auth).send().unwrap().status();
                if status.is_success() {
                    break;
                }
                assert!(ended.elapsed() < Duration::from_secs(30), "span never became visible ({status})");
                std::thread::sleep(Duration::from_millis(2));
            }
            waits.push(ended.elapsed());
        }
        waits.sort_unstable();
        let at =
            |q: f64| waits[((waits.len() as f64 * q).ceil() as usize).clamp(1, waits.len()) - 1].as_secs_f64() * 1e3;
        println!(
            "== visibility, {label}: span.end() to queryable p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({n} spans)",
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
        drop(tracer);
        collector.stop();
    }
}
