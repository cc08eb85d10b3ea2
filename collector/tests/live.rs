//! The live tail (`GET /api/v1/live`) against the real collector binary, fed by the real SDK:
//! filters and project scoping, many viewers while ingest runs (one never reading, told exactly
//! what it missed), the per-key stream cap, bad input, disconnects and shutdown. Each test runs on
//! SQLite and, `#[ignore]`d (`postgres_…`), on PostgreSQL, where a collector also follows the
//! shared audit log for what others store: `scripts/with-postgres.sh cargo test -p
//! tracex-collector --test live -- --ignored postgres`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod common;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Collector, TestStore, create_key_with, metric, public_key_pem, temp_dir};
use serde_json::Value as J;
use tracex_core::Tracer;

/// A Server-Sent Events reader over a blocking response.
struct Sse {
    reader: BufReader<reqwest::blocking::Response>,
}

/// One event: its type and its data as JSON.
type Event = (String, J);

fn sse_client() -> reqwest::blocking::Client {
    // No total timeout: the stream is meant to stay open. Reads that stall past it fail the test.
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

impl Sse {
    fn open(base: &str, key: &str, query: &str) -> Result<Self, (u16, J)> {
        let r = sse_client().get(format!("{base}/api/v1/live?{query}")).bearer_auth(key).send().unwrap();
        if r.status() != 200 {
            let status = r.status().as_u16();
            return Err((status, r.json().unwrap_or(J::Null)));
        }
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Ok(Self { reader: BufReader::new(r) })
    }

    /// The next event (comments skipped), `None` at the end of the stream.
    fn next(&mut self) -> Option<Event> {
        let (mut event, mut data) = (String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() {
                    return Some((event, serde_json::from_str(&data).unwrap()));
                }
            } else if let Some(v) = l.strip_prefix("event:") {
                v.trim().clone_into(&mut event);
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Span names and attribute values read until a span named `marker`: (spans before it, spans
    /// reported missed).
    fn until_marker(&mut self) -> (Vec<J>, u64) {
        let (mut spans, mut missed) = (Vec::new(), 0);
        while let Some((event, data)) = self.next() {
            match event.as_str() {
                "spans" => {
                    for s in data["spans"].as_array().unwrap() {
                        if s["name"] == "marker" {
                            return (spans, missed);
                        }
                        spans.push(s.clone());
                    }
                }
                "lagged" => missed += data["missed"].as_u64().unwrap(),
                other => panic!("unexpected event {other:?}"),
            }
        }
        panic!("the stream ended before the marker");
    }
}

fn attr<'a>(span: &'a J, key: &str) -> Option<&'a J> {
    span["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

struct Setup {
    collector: Collector,
    ingest: String,
    read: String,
    pem: String,
    // After the collector: a PostgreSQL database is dropped once the collector is gone.
    store: TestStore,
}

fn setup(tag: &str, toml: &str, store: TestStore) -> Setup {
    let dir = temp_dir(tag);
    let args = store.args();
    let ingest = create_key_with(&dir, &args, "acme", "ingest");
    let read = create_key_with(&dir, &args, "acme", "read");
    let pem = public_key_pem(&dir);
    let config = dir.join("collector.toml");
    std::fs::write(&config, toml).unwrap();
    let collector = Collector::start_with(&dir, &[args.as_slice(), &["--config", config.to_str().unwrap()]].concat());
    Setup { collector, ingest, read, pem, store }
}

/// A `#[test]` on SQLite and an `#[ignore]`d one on a PostgreSQL database of its own (`$tag`), both
/// running `$body(store)`.
macro_rules! on_both_stores {
    ($sqlite:ident, $postgres:ident, $tag:literal, $body:ident) => {
        #[test]
        fn $sqlite() {
            $body(TestStore::Sqlite);
        }

        #[test]
        #[ignore = "needs PostgreSQL (scripts/with-postgres.sh)"]
        fn $postgres() {
            $body(TestStore::postgres($tag));
        }
    };
}

fn tracer(s: &Setup, service: &str, ingest: &str, batch: usize) -> Tracer {
    Tracer::builder()
        .with_service_name(service)
        .with_endpoint(&s.collector.url)
        .with_api_key(ingest)
        .with_collector_public_key_pem(&s.pem)
        .with_batch_config(tracex_core::config::BatchConfig {
            max_batch_size: batch,
            max_queue_size: 65_536,
            ..Default::default()
        })
        .build()
        .unwrap()
}

fn flush(t: &Tracer) {
    let r = t.flush(Duration::from_secs(30)).unwrap();
    assert!(r.is_complete() && r.spans_failed == 0, "{r:?}");
}

fn wait_for_viewers(base: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(base, "tracex_live_viewers") != n {
        assert!(Instant::now() < deadline, "expected {n} live viewers");
        std::thread::sleep(Duration::from_millis(20));
    }
}

on_both_stores!(
    viewers_see_their_projects_committed_spans_that_match_their_filter,
    postgres_viewers_see_their_projects_committed_spans_that_match_their_filter,
    "live_filter",
    filters_and_projects
);

fn filters_and_projects(store: TestStore) {
    let s = setup("live-filter", "", store);
    let dir = &s.collector.data_dir;
    let other_ingest = create_key_with(dir, &s.store.args(), "other", "ingest");
    let mut filtered =
        Sse::open(&s.collector.url, &s.read, "service=settler&attr.x402.network=base&detail=full").unwrap();
    let mut errors = Sse::open(&s.collector.url, &s.read, "status=error&min_duration_ms=0").unwrap();
    let mut all = Sse::open(&s.collector.url, &s.read, "").unwrap();
    wait_for_viewers(&s.collector.url, 3.0);

    let settler = tracer(&s, "settler", &s.ingest, 8);
    let facilitator = tracer(&s, "facilitator", &s.ingest, 8);
    let other = tracer(&s, "settler", &other_ingest, 8);
    for i in 0..30_i64 {
        let mut span = settler.span("settle");
        span.set_attribute("i", i);
        span.set_attribute("x402.network", if i % 2 == 0 { "base" } else { "solana" });
        if i % 10 == 0 {
            span.set_status(tracex_core::Status::error("rpc timeout"));
        }
        span.end();
        facilitator.span("verify").end();
        let mut o = other.span("settle");
        o.set_attribute("x402.network", "base");
        o.end();
    }
    flush(&settler);
    flush(&facilitator);
    flush(&other);
    // Committed after everything above: each viewer has seen all it will see of it once it reads
    // the marker.
    let mut marker = settler.span("marker");
    marker.set_attribute("x402.network", "base");
    marker.set_status(tracex_core::Status::error("end of test"));
    marker.end();
    flush(&settler);

    let (spans, missed) = filtered.until_marker();
    assert_eq!(missed, 0);
    let mut seen: Vec<i64> = spans
        .iter()
        .map(|s| {
            assert_eq!(s["service_name"], "settler");
            // detail=full: rendered like a trace's detail, resource and scope included.
            assert!(!s["resource"].is_null() && !s["scope"].is_null(), "{s}");
            assert_eq!(attr(s, "x402.network").unwrap()["stringValue"], "base");
            attr(s, "i").unwrap()["intValue"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..30).step_by(2).collect::<Vec<_>>(), "every matching span once, and no other");

    let (spans, _) = errors.until_marker();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s["status"]["code"] == "error" && s["status"]["message"] == "rpc timeout"));
    // Without detail=full a viewer gets summaries: what a tail shows, the same values as the full
    // span's fields of the same names.
    let keys: Vec<&str> = spans[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "duration_ns",
            "end_time_unix_nano",
            "kind",
            "name",
            "parent_span_id",
            "service_name",
            "span_id",
            "start_time_unix_nano",
            "status",
            "trace_id"
        ]
    );
    assert!(spans.iter().all(|s| s["service_name"] == "settler" && s["name"] == "settle" && s["kind"] == "internal"));

    // The other project's spans never reach this project's viewers.
    let (spans, _) = all.until_marker();
    assert_eq!(spans.len(), 60);
    let by_service = |name: &str| spans.iter().filter(|s| s["service_name"] == name).count();
    assert_eq!((by_service("settler"), by_service("facilitator")), (30, 30));
    // Summaries: ids, times and kind, not the resource.
    let first = &spans[0];
    for field in ["trace_id", "span_id", "start_time_unix_nano", "duration_ns", "kind"] {
        assert!(!first[field].is_null(), "{field} missing: {first}");
    }
    assert!(first["resource"].is_null() && first["attributes"].is_null(), "{first}");

    drop((filtered, errors, all));
    wait_for_viewers(&s.collector.url, 0.0);
}

on_both_stores!(
    fifty_viewers_while_ingest_runs_one_never_reading_is_told_exactly_what_it_missed,
    postgres_fifty_viewers_while_ingest_runs_one_never_reading_is_told_exactly_what_it_missed,
    "live_fifty",
    fifty_viewers
);

fn fifty_viewers(store: TestStore) {
    const READERS: usize = 49;
    // One SDK batch per flush: a commit's rendered spans (≈ 90 KB) stay within a viewer's budget.
    const CHUNK: i64 = 100;
    // A small budget, so the viewer that never reads falls behind once the kernel's socket buffers
    // are full, without sending hundreds of megabytes.
    // No rate limit: this checks the byte budget (the rate limit has its test below).
    let s = setup(
        "live-fifty",
        "live_max_streams_per_key = 64\nlive_buffer_bytes = 262144\nlive_max_spans_per_second = 0\n",
        store,
    );
    let base = s.collector.url.clone();
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..READERS).map(|_| AtomicU64::new(0)).collect());
    let lagged = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..READERS {
        let mut sse = Sse::open(&base, &s.read, "").unwrap();
        let seen = seen.clone();
        let lagged = lagged.clone();
        readers.push(std::thread::spawn(move || {
            let mut ids = std::collections::HashSet::new();
            let mut missed = 0;
            while let Some((event, data)) = sse.next() {
                match event.as_str() {
                    "spans" => {
                        for span in data["spans"].as_array().unwrap() {
                            if span["name"] == "marker" {
                                return (ids.len(), missed);
                            }
                            assert!(ids.insert(span["span_id"].as_str().unwrap().to_owned()), "a span twice");
                        }
                        seen[r].store(ids.len() as u64, Ordering::Release);
                    }
                    "lagged" => {
                        missed += data["missed"].as_u64().unwrap();
                        lagged.fetch_add(1, Ordering::Release);
                    }
                    other => panic!("unexpected event {other:?}"),
                }
            }
            panic!("stream ended early");
        }));
    }
    let mut idle = Sse::open(&base, &s.read, "").unwrap();
    wait_for_viewers(&base, 50.0);

    let t = tracer(&s, "settler", &s.ingest, CHUNK as usize);
    let mut sent: u64 = 0;
    // Chunks until the idle viewer has been skipped for a while; the reading viewers are waited
    // for after each chunk, so what this checks is that none of them loses a span, not their speed.
    let mut chunks_after_lag = 0;
    for chunk in 0..1000 {
        for i in 0..CHUNK {
            let mut span = t.span("settle");
            span.set_attribute("i", chunk * CHUNK + i);
            span.set_attribute("x402.payer", "0x9a8f0e4c2b1d3a5e7f6c8b9a0d1e2f3a4b5c6d7e");
            span.end();
        }
        flush(&t);
        sent += CHUNK as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.iter().any(|n| n.load(Ordering::Acquire) < sent) {
            assert_eq!(lagged.load(Ordering::Acquire), 0, "a reading viewer was skipped");
            let behind: Vec<u64> = seen.iter().map(|n| n.load(Ordering::Acquire)).filter(|&n| n < sent).collect();
            assert!(Instant::now() < deadline, "reading viewers fell behind: {behind:?} of {sent}");
            std::thread::sleep(Duration::from_millis(5));
        }
        if metric(&base, "tracex_live_spans_skipped_total") > 0.0 {
            chunks_after_lag += 1;
            if chunks_after_lag == 3 {
                break;
            }
        }
    }
    assert_eq!(chunks_after_lag, 3, "the idle viewer never fell behind ({sent} spans sent)");
    assert_eq!(metric(&base, "tracex_spans_ingested_total") as u64, sent, "ingest went on");
    t.span("marker").end();
    flush(&t);

    for r in readers {
        let (spans, missed) = r.join().unwrap();
        assert_eq!((spans as u64, missed), (sent, 0), "every reading viewer sees every span");
    }
    let (spans, missed) = idle.until_marker();
    eprintln!("{sent} spans sent; the idle viewer got {} and was told it missed {missed}", spans.len());
    assert!(missed > 0);
    assert_eq!(spans.len() as u64 + missed, sent, "what the idle viewer got and was told it missed add up");
    assert_eq!(metric(&base, "tracex_live_spans_skipped_total") as u64, missed);
}

on_both_stores!(
    streams_per_key_are_capped_and_bad_requests_get_json_errors,
    postgres_streams_per_key_are_capped_and_bad_requests_get_json_errors,
    "live_cap",
    stream_cap_and_bad_requests
);

fn stream_cap_and_bad_requests(store: TestStore) {
    let s = setup("live-cap", "live_max_streams_per_key = 2\n", store);
    let base = &s.collector.url;
    let a = Sse::open(base, &s.read, "").unwrap();
    let _b = Sse::open(base, &s.read, "service=x").unwrap();
    let (status, body) = Sse::open(base, &s.read, "").err().unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_streams")), "{body}");
    drop(a);
    wait_for_viewers(base, 1.0);
    let _c = Sse::open(base, &s.read, "").unwrap();

    for (key, query, want, code) in [
        ("", "", 401, "unauthorized"),
        (s.ingest.as_str(), "", 403, "forbidden"),
        (s.read.as_str(), "from=1", 400, "invalid_query"),
        (s.read.as_str(), "limit=5", 400, "invalid_query"),
        (s.read.as_str(), "sort=duration", 400, "invalid_query"),
        (s.read.as_str(), "detail=everything", 400, "invalid_query"),
        (s.read.as_str(), "detail=full&detail=summary", 400, "invalid_query"),
        (s.read.as_str(), "status=bogus", 400, "invalid_query"),
        (s.read.as_str(), "nope=1", 400, "invalid_query"),
        (s.read.as_str(), "min_duration_ms=-1", 400, "invalid_query"),
    ] {
        let (status, body) = Sse::open(base, key, query).err().unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (want, Some(code)), "{query}: {body}");
    }
}

on_both_stores!(
    a_viewer_is_sent_at_most_its_rate_and_told_how_many_it_missed,
    postgres_a_viewer_is_sent_at_most_its_rate_and_told_how_many_it_missed,
    "live_rate",
    rate_limited_viewer
);

fn rate_limited_viewer(store: TestStore) {
    let s = setup("live-rate", "live_max_spans_per_second = 200\n", store);
    let mut sse = Sse::open(&s.collector.url, &s.read, "").unwrap();
    wait_for_viewers(&s.collector.url, 1.0);
    let t = tracer(&s, "settler", &s.ingest, 2_000);
    let started = Instant::now();
    for _ in 0..2_000 {
        t.span("settle").end();
    }
    flush(&t);
    let burst = started.elapsed();
    // The allowance refills (a second's worth) before the marker, so the marker is sent.
    std::thread::sleep(Duration::from_millis(1_500));
    t.span("marker").end();
    flush(&t);
    let (spans, missed) = sse.until_marker();
    // A burst of at most a second's worth, plus what the allowance earned while the 2,000 arrived.
    let most = 200 + (burst.as_secs_f64() * 200.0).ceil() as usize;
    assert!((200..=most).contains(&spans.len()), "{} sent, at most {most}", spans.len());
    assert_eq!(spans.len() as u64 + missed, 2_000, "every span sent or reported missed");
    assert!(metric(&s.collector.url, "tracex_live_spans_skipped_total") >= missed as f64);
}

on_both_stores!(
    shutdown_ends_open_streams_instead_of_waiting_out_the_grace_period,
    postgres_shutdown_ends_open_streams_instead_of_waiting_out_the_grace_period,
    "live_shutdown",
    shutdown_ends_streams
);

fn shutdown_ends_streams(store: TestStore) {
    // Moved out field by field: `s.store` (its database) outlives the collector.
    let s = setup("live-shutdown", "shutdown_grace_ms = 60000\n", store);
    let mut sse = Sse::open(&s.collector.url, &s.read, "").unwrap();
    wait_for_viewers(&s.collector.url, 1.0);
    let started = Instant::now();
    let status = s.collector.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "shutdown waited for the stream: {:?}", started.elapsed());
    assert!(sse.next().is_none(), "the stream ends");
}

on_both_stores!(
    an_event_larger_than_a_viewers_whole_budget_still_reaches_it_when_it_has_read_everything,
    postgres_an_event_larger_than_a_viewers_whole_budget_still_reaches_it_when_it_has_read_everything,
    "live_budget",
    oversize_event
);

fn oversize_event(store: TestStore) {
    let s = setup("live-budget", "live_buffer_bytes = 1024\n", store);
    let mut sse = Sse::open(&s.collector.url, &s.read, "").unwrap();
    wait_for_viewers(&s.collector.url, 1.0);
    let t = tracer(&s, "settler", &s.ingest, 64);
    for i in 0..20_i64 {
        let mut span = t.span("settle");
        span.set_attribute("i", i);
        span.end();
    }
    flush(&t);
    // One batch, one commit, one event of ≈ 18 KB against a 1 KiB budget, into an empty queue.
    let (event, data) = sse.next().unwrap();
    assert_eq!((event.as_str(), data["spans"].as_array().unwrap().len()), ("spans", 20), "{data}");
}

/// Two collectors on one PostgreSQL database: a viewer of B sees what A stores (B follows the
/// shared audit log) as well as what B stores itself, each span once. Ignored without a server:
/// `scripts/with-postgres.sh cargo test -p tracex-collector --test live -- --ignored`.
#[test]
#[ignore = "needs PostgreSQL (scripts/with-postgres.sh)"]
fn postgres_a_viewer_of_one_collector_sees_what_another_stores() {
    let db = common::otlp::PgDb::new();
    let (dir_a, dir_b) = (temp_dir("live-fleet-a"), temp_dir("live-fleet-b"));
    let ingest = common::otlp::pg_key(&dir_a, &db, "ingest");
    let read = common::otlp::pg_key(&dir_a, &db, "read");
    let a = Collector::start_with(&dir_a, &["--database-url", &db.url]);
    let b = Collector::start_with(&dir_b, &["--database-url", &db.url]);
    let mut live = Sse::open(&b.url, &read, "").unwrap();
    wait_for_viewers(&b.url, 1.0);
    let post = |url: &str, spans| common::otlp::post_protobuf(url, &ingest, spans);
    post(&a.url, vec![common::otlp::span(0x91, 1, "stored-by-a"), common::otlp::span(0x91, 2, "also-by-a")]);
    post(&b.url, vec![common::otlp::span(0x92, 1, "stored-by-b")]);
    // A's spans arrive within a poll of B's; the marker (stored through A last) ends the read.
    post(&a.url, vec![common::otlp::span(0x93, 1, "marker")]);
    let (spans, missed) = live.until_marker();
    let mut names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["also-by-a", "stored-by-a", "stored-by-b"], "each span once");
    assert_eq!(missed, 0);
}
