//! The audit log's costs, side by side in one run (`docs/audit.md`):
//!
//! - store commits with the log on beside off (two embedded stores fed the same batches in turns,
//!   prepared as the ingest endpoints prepare them before the writer);
//! - signing a checkpoint as the log grows (root from the stored nodes, Ed25519 signature);
//! - inclusion proofs served from the store, and a proof for a log of 10^9 leaves: its size and
//!   the time to verify it natively; verifying a receipt;
//! - `audit verify` over the store, in spans/s.
//!
//! `cargo bench -p tracex-collector --bench audit` (env: `AUDIT_BATCHES`, default 10,000 batches
//! of `AUDIT_SPANS`, default 100, spans)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use tracex_collector::audit::signer::AuditSigner;
use tracex_collector::audit::verify::{Options, verify};
use tracex_collector::audit::{checkpoints, leaf, tree};
use tracex_collector::store::sqlite::SqliteStore;
use tracex_collector::store::{NewBatch, PreparedSpans, Store};
use tracex_core::audit::merkle::{root_from_inclusion_proof, verify_inclusion};
use tracex_core::audit::{Receipt, leaf_hash};
use tracex_core::{
    InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, TraceId, TraceRequest,
};

#[path = "common.rs"]
mod common;

/// The collector binary's allocator (collector/src/main.rs), so this measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn batch(n: usize, spans: usize) -> NewBatch {
    let now = tracex_collector::now_unix_nano();
    let spans: Vec<SpanData> = (0..spans)
        .map(|i| {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&(n as u64).to_be_bytes());
            t[8..].copy_from_slice(&((i / 8) as u64 + 1).to_be_bytes());
            SpanData {
                trace_id: TraceId(t),
                span_id: SpanId(((i % 8) as u64 + 1).to_be_bytes()),
                name: "settle".into(),
                start_time_unix_nano: now - 1_000_000,
                end_time_unix_nano: now,
                attributes: vec![
                    KeyValue::new("x402.network", "base"),
                    KeyValue::new("x402.scheme", "exact"),
                    KeyValue::new("http.response.status_code", 200i64),
                ],
                ..Default::default()
            }
        })
        .collect();
    common::store_batch(
        n,
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Resource::new("bench-settler"),
                scope_spans: vec![ScopeSpans {
                    scope: InstrumentationScope::default(),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        },
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // As the collector binary does (src/allocator.rs).
    tracex_collector::allocator::disable_huge_pages();
    let batches = common::env_usize("AUDIT_BATCHES", 10_000);
    let spans = common::env_usize("AUDIT_SPANS", 100);
    let dir = std::env::temp_dir().join(format!("tracex-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let on = SqliteStore::open(&dir.join("on.db")).unwrap();
    let mut off = SqliteStore::open(&dir.join("off.db")).unwrap();
    off.set_audit_log(false);
    on.migrate().unwrap();
    off.migrate().unwrap();
    let signer = AuditSigner::load_or_create(&dir.join("keys")).unwrap();

    // Commits of 20 batches (a group commit's worth), in turns; a checkpoint after each commit.
    const GROUP: usize = 20;
    let (mut t_on, mut t_off) = (Duration::ZERO, Duration::ZERO);
    let mut signing = Vec::new();
    for (g, start) in (0..batches).step_by(GROUP).enumerate() {
        // Prepared as the ingest endpoints do, on the decode threads (not timed here): span bodies,
        // and digests when the log is on.
        let prepare = |digests: bool| -> Vec<NewBatch> {
            (start..(start + GROUP).min(batches))
                .map(|n| {
                    let mut b = batch(n, spans);
                    b.prepared = Some(PreparedSpans::of(&b.request, digests));
                    b
                })
                .collect()
        };
        let (group_on, group_off) = (prepare(true), prepare(false));
        let (first, second): (&SqliteStore, &SqliteStore) = if g % 2 == 0 { (&on, &off) } else { (&off, &on) };
        for store in [first, second] {
            let group = if std::ptr::eq(store, &raw const on) { &group_on } else { &group_off };
            let t = Instant::now();
            store.commit(group).unwrap();
            let dt = t.elapsed();
            if std::ptr::eq(store, &raw const on) { t_on += dt } else { t_off += dt }
        }
        let t = Instant::now();
        checkpoints::sign_if_grown(&on, &signer, tracex_collector::now_unix_nano()).unwrap().unwrap();
        signing.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = (batches * spans) as f64;
    let (rate_on, rate_off) = (total / t_on.as_secs_f64(), total / t_off.as_secs_f64());
    println!("{batches} batches of {spans} spans, commits of {GROUP} batches, log on and off in turns");
    println!("== store commits, log on : {rate_on:.0} spans/s");
    println!("== store commits, log off: {rate_off:.0} spans/s ({:.3}x with the log)", rate_on / rate_off);
    println!("== checkpoint (root from stored nodes + Ed25519 signature + insert): median {:.0} us", median(signing));
    // What the writer writes: the database's pages per span (its logical size, the WAL included).
    let size = |name: &str| {
        let conn = rusqlite::Connection::open(dir.join(name)).unwrap();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (pages * page) as f64 / total
    };
    let (bytes_on, bytes_off) = (size("on.db"), size("off.db"));
    println!(
        "== bytes on disk per span: log on {bytes_on:.1}, off {bytes_off:.1} (+{:.1}, {:.3}x)",
        bytes_on - bytes_off,
        bytes_on / bytes_off
    );

    // Proofs served from the store.
    let size = on.audit_size().unwrap();
    let mut served = Vec::new();
    let mut longest = 0;
    for i in (0..size).step_by((size as usize / 1000).max(1)) {
        let t = Instant::now();
        let nodes = on.audit_nodes(&tree::inclusion_nodes(i, size)).unwrap();
        let proof = tree::inclusion(i, size, &nodes).unwrap();
        served.push(t.elapsed().as_secs_f64() * 1e6);
        longest = longest.max(proof.len());
    }
    println!(
        "== inclusion proof from the store ({size} leaves): median {:.0} us, at most {longest} hashes",
        median(served)
    );

    // A proof in a log of 10^9 leaves: as long as that tree is deep; verified natively.
    let n = 1_000_000_000u64;
    let index = 987_654_321u64;
    // The proof's length depends on the leaf's place (at most the tree's depth, 30): the longest
    // that fits.
    let leaf = leaf_hash(b"leaf");
    let (proof, root) = (1..=30u32)
        .rev()
        .find_map(|len| {
            let proof: Vec<[u8; 32]> = (0..len).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            root_from_inclusion_proof(&leaf, index, n, &proof).ok().map(|root| (proof, root))
        })
        .unwrap();
    let reps = 100_000;
    let t = Instant::now();
    for _ in 0..reps {
        verify_inclusion(std::hint::black_box(&leaf), index, n, &proof, &root).unwrap();
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
    println!(
        "== inclusion proof, 10^9 leaves: {} hashes = {} bytes; verifies in {per:.2} us",
        proof.len(),
        proof.len() * 32
    );

    // A receipt, as an SDK checks it.
    let receipt = checkpoints::receipt(&signer, 42, [3; 16], [4; 32], 1);
    let reps = 10_000;
    let t = Instant::now();
    for _ in 0..reps {
        Receipt::verify(std::hint::black_box(&receipt), signer.verifier(), &[3; 16], &[4; 32]).unwrap();
    }
    println!("== receipt verification: {:.1} us", t.elapsed().as_secs_f64() * 1e6 / f64::from(reps));

    decode_thread_share();

    // audit verify over the store.
    let opts = Options {
        key: Some(signer.verifier().clone()),
        now_unix_nano: tracex_collector::now_unix_nano(),
        ..Options::default()
    };
    let report = verify(&on, &opts).unwrap();
    assert_eq!(report.problems, 0, "{:?}", report.findings);
    println!(
        "== audit verify: {} leaves, {} spans, {} checkpoints in {:.1} s: {:.0} spans/s",
        report.leaves,
        report.spans_checked,
        report.checkpoints,
        report.seconds,
        report.spans_checked as f64 / report.seconds
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the log adds where a batch is opened (a decode thread per request, not the writer):
/// preparing a batch of the ingest bench's spans with digests beside without, and the span digests
/// four at a time ([`leaf::span_digests`]) beside one by one (`sha2`), side by side.
fn decode_thread_share() {
    const SPANS: usize = 512;
    let request_of = |per_trace: usize| TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new("bench-facilitator"),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope::default(),
                spans: common::payment_spans_in_traces_of(SPANS, per_trace),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let reps = 400;
    // ns a span of the fastest of five blocks of `reps` runs (what the others lost was the host's).
    let per_span = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    f();
                }
                t.elapsed().as_secs_f64() * 1e9 / (reps * SPANS) as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    // Traces of 8 (the ingest bench's) and one-span traces (a trace group, and its digest, a span).
    for (per_trace, shape) in [(8, "traces of 8"), (1, "one-span traces")] {
        let request = request_of(per_trace);
        let (mut on, mut off) = (0.0, 0.0);
        for _ in 0..2 {
            off = per_span(&mut || drop(std::hint::black_box(PreparedSpans::of(&request, false))));
            on = per_span(&mut || drop(std::hint::black_box(PreparedSpans::of(&request, true))));
        }
        println!(
            "== preparing a {SPANS}-span batch, {shape} (decode thread): log off {off:.0} ns/span, on {on:.0} (+{:.0})",
            on - off
        );
    }
    let request = request_of(8);

    // The digests alone, over the same bodies (a span body is its span encoded alone).
    let resource = [7u8; 32];
    let bodies: Vec<(SpanData, Vec<u8>)> = request.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            let mut body = Vec::new();
            tracex_core::encode::encode_spans(
                &Resource::default(),
                &InstrumentationScope::default(),
                std::slice::from_ref(s),
                &mut body,
            );
            (s.clone(), body)
        })
        .collect();
    let mean_body = bodies.iter().map(|(_, b)| b.len()).sum::<usize>() / SPANS;
    let rows = || bodies.iter().map(|(s, b)| (&s.trace_id.0, &s.span_id.0, &resource, b.as_slice()));
    let mut sink = 0u8;
    let lanes = per_span(&mut || leaf::span_digests(rows(), |d| sink ^= d[0]));
    let alone = per_span(&mut || rows().for_each(|(t, s, r, b)| sink ^= leaf::span_digest(t, s, r, b)[0]));
    std::hint::black_box(sink);
    println!(
        "== span digests ({mean_body}-byte bodies): four at a time {lanes:.0} ns/span, one by one (sha2) {alone:.0} ns/span ({:.2}x)",
        alone / lanes
    );
}
