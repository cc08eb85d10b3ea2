//! A plain hot loop for profilers (`perf record`): 4 million spans with 4 attributes through a
//! tracer whose worker seals every batch and discards it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use tracex_core::Tracer;
use tracex_core::transport::{SendOutcome, Transport};

struct Discard;
impl Transport for Discard {
    fn send(&mut self, _: &[u8]) -> SendOutcome {
        SendOutcome::Delivered
    }
}

fn main() {
    let pem =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/collector-test-key.pub.pem"))
            .unwrap();
    let tracer = Tracer::builder()
        .with_service_name("hot")
        .with_collector_public_key_pem(pem)
        .with_transport(Box::new(Discard))
        .build()
        .unwrap();
    let mut timed = Duration::ZERO;
    let chunks = 2000;
    for _ in 0..chunks {
        let t = Instant::now();
        for i in 0..2048i64 {
            let mut span = tracer.span("settle");
            span.set_attribute("x402.network", "base")
                .set_attribute("x402.amount", i)
                .set_attribute("x402.phase", "settle")
                .set_attribute("x402.attempt", 1i64);
        }
        timed += t.elapsed();
        tracer.flush(Duration::from_secs(10)).unwrap();
    }
    println!(
        "{:.1} ns/span, dropped {}",
        timed.as_nanos() as f64 / f64::from(chunks * 2048),
        tracer.stats().spans_dropped
    );
}
