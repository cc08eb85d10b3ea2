//! Memory per buffered span (issue #17: ≤ 256 bytes per buffered span plus its attributes).
//!
//! Each shape runs in a child process of its own (so one shape's freed memory cannot hide the next
//! one's RSS): a tracer whose collector key never arrives (only its fingerprint is pinned and the
//! key source always fails), so the batcher seals nothing and every span stays in the lock-free
//! buffer, exactly as while the collector is down. The buffer is sized to hold all `SPANS` spans.
//! A counting global allocator gives the heap bytes the spans hold; RSS (`smaps_rollup`) gives what
//! the process really holds, malloc's headers and rounding included. The attributes' own string
//! payload (the owned values' bytes, which any SDK must keep) is subtracted, leaving the fixed cost
//! of a span: its ring slot (preallocated: a pointer and a stamp), its boxed `SpanData`, and its
//! attributes — the attribute vector with one `KeyValue` per attribute.
//!
//! `cargo bench -p tracex-core --bench memory`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    clippy::print_stdout
)]
// A counting global allocator: `GlobalAlloc` is an unsafe trait with no safe equivalent, and the
// heap figure must come from the allocator itself, not from summing `size_of`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tracex_core::config::BatchConfig;
use tracex_core::{Error, KeyValue, SpanData, Tracer, Value};

#[path = "common.rs"]
mod common;

/// Spans held per shape: large enough that the fixed costs (threads, resource, the batcher's
/// pending vector) are noise in the per-span figure.
const SPANS: usize = 100_000;
const SHAPE_ENV: &str = "TRACEX_MEMORY_SHAPE";

// === counting allocator ===

/// Live heap bytes as requested by the program (not what malloc rounds them to: RSS shows that).
static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Resident bytes from `smaps_rollup`, which walks the page tables: `VmRSS` in `/proc/self/status`
/// is summed from per-CPU counters that lag by up to a few hundred KiB (it showed the preallocated
/// ring at 218–222 B a slot where every one of its pages is written).
fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

// === the measured process ===

/// A tracer that buffers and never seals: its key is never learnt.
fn held_tracer(capacity: usize) -> Tracer {
    let batch = BatchConfig { max_queue_size: capacity, ..BatchConfig::default() };
    Tracer::builder()
        .with_service_name("memory")
        .with_collector_fingerprint("ab".repeat(32))
        .with_collector_key_source(|| Err(Error::Config("the collector stays unreachable in this bench".into())))
        .with_transport(Box::new(common::Discard))
        .with_batch_config(batch)
        .build()
        .unwrap()
}

/// Records one span with `attrs` attributes (4–7: static keys; values mixed static strings, ints,
/// a bool and owned strings as a facilitator sets them). Returns the owned strings' heap bytes.
fn record(tracer: &Tracer, i: usize, attrs: usize) -> usize {
    let mut span = tracer.span("settle");
    span.set_attribute("x402.network", "base").set_attribute("x402.amount", i as i64);
    span.set_attribute("x402.phase", "settle");
    let route = format!("/settle/{}", i % 1000);
    let mut payload = route.capacity();
    span.set_attribute("http.route", route);
    if attrs >= 5 {
        span.set_attribute("x402.attempt", 1i64);
    }
    if attrs >= 6 {
        let payer = format!("0x{:040x}", (i as u64).wrapping_mul(0x857b_0651_9e91));
        payload += payer.capacity();
        span.set_attribute("x402.payer", payer);
    }
    if attrs >= 7 {
        span.set_attribute("x402.ok", true);
    }
    payload
}

fn attrs_of(shape: &str, i: usize) -> usize {
    match shape {
        "mix" => 4 + i % 4,
        n => n.parse().unwrap(),
    }
}

/// The child: prints one line of `key=value` figures.
fn measure(shape: &str) {
    // The ring is preallocated by `build`: two capacities apart give the exact bytes per slot. The
    // smaller tracer stays alive: freeing its ring would let the larger one reuse those pages.
    // A first tracer pays one-time costs (clock calibration, lazily built statics).
    drop(held_tracer(1));
    let (heap0, rss0) = (live(), rss_bytes());
    let small = held_tracer(SPANS / 2);
    let (heap_small, rss_small) = (live() - heap0, rss_bytes() - rss0);
    let (heap1, rss1) = (live(), rss_bytes());
    let tracer = held_tracer(SPANS);
    let (heap2, rss2) = (live(), rss_bytes());
    let slot_heap = ((heap2 - heap1) - heap_small) as f64 / (SPANS / 2) as f64;
    let slot_rss = ((rss2 - rss1) - rss_small) as f64 / (SPANS / 2) as f64;

    let mut payload = 0usize;
    let mut attrs = 0usize;
    for i in 0..SPANS {
        let n = attrs_of(shape, i);
        attrs += n;
        payload += record(&tracer, i, n);
    }
    let (heap3, rss3) = (live(), rss_bytes());
    let stats = tracer.stats();
    assert_eq!(stats.spans_dropped, 0, "the buffer must hold every span");
    assert_eq!(stats.spans_sealed, 0, "no span may leave the buffer while the key is unknown");
    println!(
        "shape={shape} spans={SPANS} attrs={attrs} payload={payload} prealloc_heap={} prealloc_rss={} \
         slot_heap={slot_heap:.1} slot_rss={slot_rss:.1} spans_heap={} spans_rss={}",
        heap2 - heap1,
        rss2 - rss1,
        heap3 - heap2,
        rss3 - rss2,
    );
    drop(small);
    // Shutting down would try to seal; the process exits with the spans still held.
    std::process::exit(0);
}

// === the parent: one child per shape, then the summary ===

struct Figures {
    shape: String,
    spans: f64,
    attrs: f64,
    payload: f64,
    prealloc_heap: f64,
    prealloc_rss: f64,
    slot_heap: f64,
    slot_rss: f64,
    spans_heap: f64,
    spans_rss: f64,
}

fn run_child(shape: &str) -> Figures {
    let out = Command::new(std::env::current_exe().unwrap()).env(SHAPE_ENV, shape).output().unwrap();
    assert!(out.status.success(), "{shape}: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} missing in {line:?}"))
    };
    Figures {
        shape: shape.to_owned(),
        spans: get("spans"),
        attrs: get("attrs"),
        payload: get("payload"),
        prealloc_heap: get("prealloc_heap"),
        prealloc_rss: get("prealloc_rss"),
        slot_heap: get("slot_heap"),
        slot_rss: get("slot_rss"),
        spans_heap: get("spans_heap"),
        spans_rss: get("spans_rss"),
    }
}

fn main() {
    if let Ok(shape) = std::env::var(SHAPE_ENV) {
        measure(&shape);
        return;
    }
    // `cargo bench` passes `--bench`; a filter (as for criterion benches) is accepted and ignored.
    // A ring slot holds a `Box<SpanData>` and crossbeam's stamp.
    let slot = size_of::<Box<SpanData>>() + size_of::<usize>();
    println!(
        "size_of: SpanData {} B (boxed), ring slot (pointer + stamp) {slot} B, KeyValue {} B (key Str {} + Value {}), \
         Vec header {} B, SpanId {} / Option<SpanId> {} B",
        size_of::<SpanData>(),
        size_of::<KeyValue>(),
        size_of::<tracex_core::Str>(),
        size_of::<Value>(),
        size_of::<Vec<KeyValue>>(),
        size_of::<tracex_core::SpanId>(),
        size_of::<Option<tracex_core::SpanId>>(),
    );
    println!(
        "{:>5}  {:>8}  {:>11}  {:>11}  {:>13}  {:>12}  {:>12}  {:>13}",
        "attrs", "payload", "slot (heap)", "slot (RSS)", "spans' heap", "spans' RSS", "total heap", "total RSS"
    );
    let mut all = Vec::new();
    for shape in ["4", "5", "6", "7", "mix"] {
        let f = run_child(shape);
        // Per span, in bytes: the spans' own heap (attribute vectors, payload) and RSS, less the
        // payload, plus the slot each one fills.
        let n = f.spans;
        let payload = f.payload / n;
        let heap = f.spans_heap / n - payload;
        let rss = f.spans_rss / n - payload;
        println!(
            "{:>5}  {payload:>8.1}  {:>11.1}  {:>11.1}  {heap:>13.1}  {rss:>12.1}  {:>12.1}  {:>13.1}",
            if f.shape == "mix" { "4–7".to_owned() } else { f.shape.clone() },
            f.slot_heap,
            f.slot_rss,
            f.slot_heap + heap,
            f.slot_rss + rss,
        );
        all.push(f);
    }
    let mix = all.iter().find(|f| f.shape == "mix").unwrap();
    let n = mix.spans;
    let payload = mix.payload / n;
    let heap = mix.slot_heap + mix.spans_heap / n - payload;
    let rss = mix.slot_rss + mix.spans_rss / n - payload;
    // The span itself is its ring slot and its box (`SpanData`, exactly one allocation of that
    // size); the rest of its heap is its attributes: one `KeyValue` per attribute, in a vector
    // grown by doubling (4 → 8 places), and their payload.
    let boxed = size_of::<SpanData>() as f64;
    let own = mix.slot_heap + boxed;
    println!(
        "\n== memory per buffered span at capacity (4–7 attributes, {:.1} on average, {} spans held): \
         {heap:.0} B by the allocator, {rss:.0} B by RSS, attribute payload ({payload:.1} B) excluded",
        mix.attrs / n,
        n as u64,
    );
    println!(
        "== of which the span itself (ring slot + its boxed SpanData): {own:.0} B by the allocator; its attributes \
         ({:.1} KeyValues of {} B in vectors grown by doubling): {:.0} B (target ≤ 256 B per span plus its \
         attributes: {})",
        mix.attrs / n,
        size_of::<KeyValue>(),
        heap - own,
        if own <= 256.0 { "met" } else { "missed" },
    );
    println!(
        "== of which preallocated per ring slot: {:.0} B by the allocator, {:.0} B by RSS \
         ({} slots by default: {:.1} MiB held from the start)",
        mix.slot_heap,
        mix.slot_rss,
        tracex_core::config::DEFAULT_MAX_QUEUE_SIZE,
        mix.slot_heap * tracex_core::config::DEFAULT_MAX_QUEUE_SIZE as f64 / 1_048_576.0,
    );
    // What a tracer holds before its first span: the ring at the default capacity, plus what does
    // not depend on the capacity (the attribute pool's slots, the batcher's pending vector, the
    // resource, thread bookkeeping).
    let fixed_heap = mix.prealloc_heap - n * mix.slot_heap;
    let fixed_rss = mix.prealloc_rss - n * mix.slot_rss;
    let default_slots = tracex_core::config::DEFAULT_MAX_QUEUE_SIZE as f64;
    println!(
        "== a tracer at the default capacity before its first span: {:.2} MiB by the allocator, {:.2} MiB by RSS \
         (ring {:.2} MiB + {:.0} KiB that does not depend on the capacity)",
        (fixed_heap + default_slots * mix.slot_heap) / 1_048_576.0,
        (fixed_rss + default_slots * mix.slot_rss) / 1_048_576.0,
        default_slots * mix.slot_heap / 1_048_576.0,
        fixed_heap / 1024.0,
    );
    for f in &all {
        let n = f.spans;
        let payload = f.payload / n;
        println!(
            "== {} attributes: the boxed span and its attribute vector {:.0} B by the allocator, {:.0} B by RSS (beyond the slot)",
            if f.shape == "mix" { "4–7" } else { &f.shape },
            f.spans_heap / n - payload,
            f.spans_rss / n - payload,
        );
    }
    println!(
        "== size_of: SpanData {} B (boxed), ring slot {slot} B, KeyValue {} B (Str {} + Value {}), Vec {} B",
        size_of::<SpanData>(),
        size_of::<KeyValue>(),
        size_of::<tracex_core::Str>(),
        size_of::<Value>(),
        size_of::<Vec<KeyValue>>(),
    );
}
