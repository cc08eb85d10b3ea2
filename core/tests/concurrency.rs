//! 8 threads record while the worker drains: nothing is lost or duplicated when the buffer is large
//! enough, and drops are counted exactly when it is not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tracex_core::config::BatchConfig;
use tracex_core::transport::MemoryTransport;
use tracex_core::{Tracer, Value};

const THREADS: i64 = 8;

fn record(tracer: &Tracer, per_thread: i64) {
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    let mut span = tracer.span("op");
                    span.set_attribute("thread", t).set_attribute("i", i);
                }
            });
        }
    });
}

fn delivered_ids(transport: &MemoryTransport) -> Vec<(i64, i64)> {
    let mut ids = Vec::new();
    for body in transport.received() {
        let (_, req) = common::open(&body);
        for (_, _, span) in req.spans() {
            let (Some(Value::Int(t)), Some(Value::Int(i))) = (span.attribute("thread"), span.attribute("i")) else {
                panic!("missing attributes")
            };
            ids.push((*t, *i));
        }
    }
    ids
}

#[test]
fn nothing_is_lost_or_duplicated_with_room_in_the_buffer() {
    let per_thread = 20_000;
    let transport = MemoryTransport::default();
    let tracer = Tracer::builder()
        .with_service_name("concurrency")
        .with_collector_public_key_pem(common::public_pem())
        .with_batch_config(BatchConfig {
            max_queue_size: (THREADS * per_thread) as usize,
            max_pending_batches: 1024,
            ..Default::default()
        })
        .with_transport(Box::new(transport.clone()))
        .build()
        .unwrap();
    record(&tracer, per_thread);
    let report = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let ids = delivered_ids(&transport);
    let unique: HashSet<_> = ids.iter().copied().collect();
    assert_eq!(ids.len() as i64, THREADS * per_thread, "every span delivered once");
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    let stats = tracer.stats();
    assert_eq!(stats.spans_dropped, 0);
    assert_eq!(stats.spans_recorded, (THREADS * per_thread) as u64);
    assert_eq!(stats.spans_sent, (THREADS * per_thread) as u64);
}

#[test]
fn drops_are_counted_exactly_when_the_buffer_is_too_small() {
    let per_thread = 20_000;
    let transport = MemoryTransport::default();
    // A tiny buffer and a batcher that only wakes for full batches of 1000 — which never fit — or
    // every 10 minutes: the buffer fills almost at once.
    let tracer = Tracer::builder()
        .with_service_name("concurrency")
        .with_collector_public_key_pem(common::public_pem())
        .with_batch_config(BatchConfig {
            max_queue_size: 256,
            max_batch_size: 1000,
            scheduled_delay: Duration::from_secs(600),
            max_pending_batches: 1024,
            ..Default::default()
        })
        .with_transport(Box::new(transport.clone()))
        .build()
        .unwrap();
    record(&tracer, per_thread);
    let stats_before = tracer.stats();
    let report = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let ids = delivered_ids(&transport);
    let unique: HashSet<_> = ids.iter().copied().collect();
    let stats = tracer.stats();
    assert!(stats.spans_dropped > 0, "the buffer must have overflowed");
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    assert_eq!(
        ids.len() as u64 + stats.spans_dropped,
        (THREADS * per_thread) as u64,
        "every span delivered or counted as dropped"
    );
    assert_eq!(stats_before.spans_dropped, stats.spans_dropped);
}
