//! The embedded SQLite store's writer alone: what one group commit costs the writer thread per
//! span, without HTTP, decryption or decoding in the way (the collector's ingest throughput is
//! bounded by this thread: `docs/benchmarks.md`, "Collector ingest").
//!
//! Batches of 512 spans in the ingest bench's shape (traces of 8, seven attributes each, one
//! payment per trace) are prepared as the ingest endpoints prepare them before the writer (span
//! bodies and audit digests, not timed), then committed `STORE_GROUP` batches at a time (default
//! 8: a busy collector's group commit) with the audit log on. Reported: the writer thread's CPU
//! per span (`/proc/thread-self/stat`: the checkpointer's thread is not counted), spans/s of
//! commit time, and the bytes the process wrote to disk per span (the log and the checkpoints).
//!
//! `cargo bench -p tracex-collector --bench store` (env: `STORE_SPANS`, default 1,048,576;
//! `STORE_GROUP`, default 8; `STORE_SPANS_PER_TRACE`, default 8: one-span traces show what a trace
//! itself costs; `BENCH_RANDOM_TRACE_IDS=1`: random trace ids, as other SDKs make them, instead of
//! the core's time-ordered ones; `STORE_AUDIT=0`: the audit log off, for what it costs the writer)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use tracex_collector::store::sqlite::SqliteStore;
use tracex_collector::store::{NewBatch, PreparedSpans, Store};
use tracex_core::{InstrumentationScope, Resource, ResourceSpans, ScopeSpans, TraceRequest};

#[path = "common.rs"]
mod common;

/// Bytes this process caused to be written to disk so far (`/proc/self/io`).
fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn batch(n: usize, per_trace: usize, audit: bool) -> NewBatch {
    let request = TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new("bench-facilitator"),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope::default(),
                spans: common::payment_spans_in_traces_of(512, per_trace),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let mut batch = common::store_batch(n, request);
    batch.prepared = Some(PreparedSpans::of(&batch.request, audit));
    batch
}

fn main() {
    let spans = common::env_usize("STORE_SPANS", 1 << 20);
    let group = common::env_usize("STORE_GROUP", 8).max(1);
    let per_trace = common::env_usize("STORE_SPANS_PER_TRACE", 8).max(1);
    let dir = std::env::temp_dir().join(format!("tracex-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let audit = common::env_usize("STORE_AUDIT", 1) != 0;
    let mut store = SqliteStore::open(&dir.join("tracex.db")).unwrap();
    store.set_audit_log(audit);
    store.migrate().unwrap();

    let batches = spans.div_ceil(512);
    let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
    let written_before = written();
    let mut stored = 0usize;
    for start in (0..batches).step_by(group) {
        let group: Vec<NewBatch> = (start..(start + group).min(batches)).map(|n| batch(n, per_trace, audit)).collect();
        let (c0, t0) = (common::thread_cpu(), Instant::now());
        let outcomes = store.commit(&group).unwrap();
        wall += t0.elapsed();
        cpu += common::thread_cpu().saturating_sub(c0);
        stored += outcomes.len();
    }
    let bytes = written() - written_before;
    assert_eq!(stored, batches, "every batch committed");
    let n = (batches * 512) as f64;
    println!(
        "== store commit: {} spans in traces of {per_trace} ({} trace ids), commits of {group} batches: writer CPU {:.0} ns/span, {:.0} spans/s of commit time, {:.0} bytes written per span",
        batches * 512,
        if common::random_trace_ids() { "random" } else { "time-ordered" },
        cpu.as_nanos() as f64 / n,
        n / wall.as_secs_f64(),
        bytes as f64 / n
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
