//! The HTTP transport against a real HTTP server on loopback: bearer auth, retries with backoff and
//! `Retry-After`, permanent rejections, a collector that is down (spooled, replayed later — also by
//! the next process — or counted as lost), fetching the collector key by pinned fingerprint, and
//! the client itself: keep-alive, receipts, redirects not followed, TLS set up without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{Response, Server, free_port};
use tracex_core::config::BatchConfig;
use tracex_core::transport::{HttpTransport, RetryPolicy, SendOutcome, Transport};
use tracex_core::{Tracer, TracerBuilder};

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_millis(400),
        request_timeout: Duration::from_secs(2),
    }
}

fn builder(endpoint: &str) -> TracerBuilder {
    Tracer::builder()
        .with_service_name("http-test")
        .with_endpoint(endpoint)
        .with_api_key("tx_test_key")
        .with_collector_public_key_pem(common::public_pem())
}

fn spans_in(bodies: &[Vec<u8>]) -> usize {
    bodies.iter().map(|b| common::open(b).1.span_count()).sum()
}

fn batch_bodies(server: &Server) -> Vec<Vec<u8>> {
    server.requests().into_iter().filter(|r| r.path == "/v1/batches").map(|r| r.body).collect()
}

#[test]
fn batches_are_posted_with_bearer_auth() {
    let server = Server::start("127.0.0.1:0", |_, _| Response::status(202));
    let tracer = builder(&server.url()).build().unwrap();
    for _ in 0..10 {
        tracer.span("verify").end();
    }
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_delivered, 10);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/batches");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tx_test_key"));
    assert_eq!(reqs[0].header("content-type"), Some("application/vnd.tracex.batch.v1"));
    assert_eq!(spans_in(&batch_bodies(&server)), 10);
    assert_eq!(tracer.stats().bytes_sent, reqs[0].body.len() as u64);
}

/// Batches go out several at a time, each on a connection of its own, never more than
/// `max_concurrent_exports` at once; each span arrives once, and a flush answers only after every
/// batch recorded before it was acknowledged.
#[test]
fn several_batches_are_in_flight_at_once_and_a_flush_waits_for_all_of_them() {
    for limit in [1, 4] {
        // (requests being answered now, most at once, answered)
        let load = Arc::new(Mutex::new((0usize, 0usize, 0usize)));
        let seen = load.clone();
        let server = Server::start("127.0.0.1:0", move |req, _| {
            if req.path != "/v1/batches" {
                return Response::status(404);
            }
            {
                let mut l = seen.lock().unwrap();
                l.0 += 1;
                l.1 = l.1.max(l.0);
            }
            // A slow durable commit: long enough for every sender to have a batch out.
            std::thread::sleep(Duration::from_millis(200));
            let mut l = seen.lock().unwrap();
            l.0 -= 1;
            l.2 += 1;
            Response::status(202)
        });
        let tracer = builder(&server.url())
            .with_batch_config(BatchConfig {
                max_batch_size: 10,
                max_concurrent_exports: limit,
                ..BatchConfig::default()
            })
            .build()
            .unwrap();
        for _ in 0..120 {
            tracer.span("settle").end();
        }
        let report = tracer.flush(Duration::from_secs(30)).unwrap();
        let (now, most, answered) = *load.lock().unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.spans_delivered, 120);
        assert_eq!((now, answered), (0, 12), "the flush answered after every batch's acknowledgement");
        assert_eq!(most, limit, "batches in flight at once, limit {limit}");
        assert_eq!(spans_in(&batch_bodies(&server)), 120, "each span once");
        assert_eq!(tracer.stats().batches_sent, 12);
    }
}

#[test]
fn retry_after_is_honoured_on_503() {
    let server = Server::start("127.0.0.1:0", |_, i| {
        if i == 0 { Response::status(503).header("Retry-After", "1") } else { Response::status(200) }
    });
    let tracer = builder(&server.url())
        .with_retry_policy(RetryPolicy { max_elapsed: Duration::from_secs(10), ..fast_retry() })
        .build()
        .unwrap();
    tracer.span("settle").end();
    let report = tracer.flush(Duration::from_secs(15)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body, "the same sealed bytes are retried");
    assert!(reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(950), "waited for Retry-After");
    assert_eq!(tracer.stats().batches_retried, 1);
}

#[test]
fn throttling_and_server_errors_are_retried_with_backoff() {
    let server = Server::start("127.0.0.1:0", |_, i| match i {
        0 => Response::status(429),
        1 => Response::status(502),
        _ => Response::status(200),
    });
    let tracer = builder(&server.url())
        .with_retry_policy(RetryPolicy { max_elapsed: Duration::from_secs(10), ..fast_retry() })
        .build()
        .unwrap();
    tracer.span("settle").end();
    assert!(tracer.flush(Duration::from_secs(10)).unwrap().is_complete());
    assert_eq!(server.requests().len(), 3);
    let s = tracer.stats();
    assert_eq!((s.batches_retried, s.batches_sent, s.batches_failed), (2, 1, 0));
}

#[test]
fn permanent_rejections_are_not_retried_and_are_counted() {
    let server = Server::start("127.0.0.1:0", |_, _| {
        Response::status(401).body(r#"{"error":{"code":"unauthorized","message":"invalid API key"}}"#)
    });
    let dir = common::temp_dir("reject-spool");
    let tracer = builder(&server.url()).with_spool_dir(&dir).build().unwrap();
    for _ in 0..3 {
        tracer.span("settle").end();
    }
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_failed, 3);
    assert!(!report.is_complete());
    assert_eq!(server.requests().len(), 1, "a 4xx is final");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "rejected batches are not spooled");
    assert_eq!(tracer.stats().batches_failed, 1);
}

#[test]
fn collector_down_without_a_spool_counts_the_loss() {
    let tracer = builder(&format!("http://127.0.0.1:{}", free_port())).with_retry_policy(fast_retry()).build().unwrap();
    for _ in 0..7 {
        tracer.span("settle").end();
    }
    let report = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!((report.spans_delivered, report.spans_failed, report.spans_pending), (0, 7, 0));
    assert_eq!(report.undelivered(), 7);
    let s = tracer.stats();
    assert_eq!(s.spans_failed, 7);
    assert!(s.batches_retried >= 1);
}

#[test]
fn collector_down_spools_then_replays_when_it_returns() {
    let port = free_port();
    let dir = common::temp_dir("down-spool");
    let tracer = builder(&format!("http://127.0.0.1:{port}"))
        .with_retry_policy(fast_retry())
        .with_spool_dir(&dir)
        .build()
        .unwrap();
    for _ in 0..5 {
        tracer.span("settle").end();
    }
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_spooled, 5, "{report:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    // The collector comes back on the same port; the idle sender replays the spool.
    let server = Server::start(&format!("127.0.0.1:{port}"), |_, _| Response::status(200));
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracer.stats().spans_unspooled < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tracer.stats().spans_unspooled, 5);
    assert_eq!(spans_in(&batch_bodies(&server)), 5);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "delivered batches leave the spool");
}

#[test]
fn a_spool_left_by_a_previous_process_is_delivered_by_the_next() {
    let dir = common::temp_dir("restart-spool");
    {
        let down = builder(&format!("http://127.0.0.1:{}", free_port()))
            .with_retry_policy(fast_retry())
            .with_spool_dir(&dir)
            .build()
            .unwrap();
        for _ in 0..4 {
            down.span("settle").end();
        }
        let report = down.shutdown(Duration::from_secs(10)).unwrap();
        assert_eq!(report.spans_spooled, 4);
    }
    let server = Server::start("127.0.0.1:0", |_, _| Response::status(200));
    let next = builder(&server.url()).with_spool_dir(&dir).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.stats().spans_unspooled < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(spans_in(&batch_bodies(&server)), 4);
}

#[test]
fn a_full_spool_counts_what_it_cannot_keep() {
    let dir = common::temp_dir("full-spool");
    let tracer = builder(&format!("http://127.0.0.1:{}", free_port()))
        .with_retry_policy(fast_retry())
        .with_spool_dir(&dir)
        .with_spool_max_bytes(100) // smaller than any sealed batch: behaves like a full disk
        .build()
        .unwrap();
    for _ in 0..3 {
        tracer.span("settle").end();
    }
    let report = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!((report.spans_spooled, report.spans_failed), (0, 3));
    let s = tracer.stats();
    assert_eq!(s.spool_errors, 1);
}

#[test]
fn shutdown_timeout_spools_batches_still_being_retried() {
    // The collector answers 503 for a long time; shutdown gives it 300 ms, then spools.
    let server = Server::start("127.0.0.1:0", |_, _| Response::status(503));
    let dir = common::temp_dir("abort-spool");
    let tracer = builder(&server.url())
        .with_retry_policy(RetryPolicy { max_elapsed: Duration::from_secs(60), ..fast_retry() })
        .with_spool_dir(&dir)
        .build()
        .unwrap();
    for _ in 0..6 {
        tracer.span("settle").end();
    }
    let started = Instant::now();
    let report = tracer.shutdown(Duration::from_millis(300)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.spans_spooled, 6, "{report:?}");
    assert_eq!(report.spans_pending, 0);
}

#[test]
fn flush_timeout_reports_pending_spans() {
    let server = Server::start("127.0.0.1:0", |_, i| {
        if i < 3 { Response::status(503).header("Retry-After", "1") } else { Response::status(200) }
    });
    let tracer = builder(&server.url())
        .with_retry_policy(RetryPolicy { max_elapsed: Duration::from_secs(30), ..fast_retry() })
        .build()
        .unwrap();
    for _ in 0..2 {
        tracer.span("settle").end();
    }
    let report = tracer.flush(Duration::from_millis(200)).unwrap();
    assert_eq!(report.spans_pending, 2, "{report:?}");
    assert_eq!(report.spans_delivered, 0);
    // It keeps going in the background and gets there.
    let report = tracer.flush(Duration::from_secs(20)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(tracer.stats().spans_sent, 2);
}

#[test]
fn the_collector_key_is_fetched_and_checked_against_the_pinned_fingerprint() {
    let pem = common::public_pem();
    let served = pem.clone();
    let server = Server::start("127.0.0.1:0", move |req, _| {
        if req.path == "/v1/public-key" { Response::status(200).body(served.clone()) } else { Response::status(200) }
    });
    let fp = tracex_core::CollectorKey::from_pem(&pem).unwrap().key_id().to_hex();
    let tracer = pinned(&server.url(), &fp).build().unwrap();
    assert_eq!(tracer.collector_key_id().to_hex(), fp);
    for _ in 0..3 {
        tracer.span("settle").end();
    }
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    assert!(report.is_complete() && report.spans_delivered == 3, "{report:?}");
    assert!(!tracer.needs_collector_key());
    let fetch = server.requests().into_iter().find(|r| r.path == "/v1/public-key").unwrap();
    assert_eq!(fetch.header("accept"), Some("application/x-pem-file"));
}

fn pinned(endpoint: &str, fingerprint: &str) -> TracerBuilder {
    Tracer::builder()
        .with_service_name("fetch")
        .with_endpoint(endpoint)
        .with_api_key("k")
        .with_collector_fingerprint(fingerprint)
        .with_retry_policy(fast_retry())
}

#[test]
fn a_served_key_that_is_not_the_pinned_one_is_never_used() {
    let served = common::public_pem();
    let server = Server::start("127.0.0.1:0", move |req, _| {
        if req.path == "/v1/public-key" { Response::status(200).body(served.clone()) } else { Response::status(200) }
    });
    let tracer = pinned(&server.url(), &"ab".repeat(32)).build().unwrap();
    for _ in 0..4 {
        tracer.span("settle").end();
    }
    // The worker tries the key as it starts; the flush is answered after that attempt.
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(report.spans_pending, 4, "{report:?}");
    assert!(tracer.needs_collector_key());
    assert!(server.requests().iter().any(|r| r.path == "/v1/public-key"));
    assert!(server.requests().iter().all(|r| r.path != "/v1/batches"), "nothing sealed to the wrong key");
    // Never sealed, never spooled in the clear: counted as failed at shutdown.
    let report = tracer.shutdown(Duration::from_secs(2)).unwrap();
    assert_eq!((report.spans_failed, report.spans_pending), (4, 0), "{report:?}");
}

#[test]
fn a_tracer_starts_with_the_collector_down_and_delivers_once_it_is_up() {
    let pem = common::public_pem();
    let fp = tracex_core::CollectorKey::from_pem(&pem).unwrap().key_id().to_hex();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let tracer = pinned(&url, &fp).build().expect("constructs with the collector down");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(tracer.needs_collector_key());
    for i in 0..25 {
        let mut span = tracer.span("verify");
        span.set_attribute("i", i64::from(i));
        span.end();
    }
    let report = tracer.flush(Duration::from_millis(200)).unwrap();
    assert_eq!((report.spans_pending, report.spans_delivered), (25, 0), "{report:?}");

    let server = Server::start(&format!("127.0.0.1:{port}"), move |req, _| {
        if req.path == "/v1/public-key" { Response::status(200).body(pem.clone()) } else { Response::status(200) }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracer.stats().spans_sent < 25 && Instant::now() < deadline {
        let _ = tracer.flush(Duration::from_millis(500)).unwrap();
    }
    let report = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let stats = tracer.stats();
    assert_eq!((stats.spans_sent, stats.spans_failed, stats.spans_dropped), (25, 0, 0), "{stats:?}");
    assert_eq!(spans_in(&batch_bodies(&server)), 25, "every span exactly once");
}

#[test]
fn while_the_key_is_unknown_spans_wait_in_the_bounded_buffer_and_overflow_is_counted() {
    let pem = common::public_pem();
    let fp = tracex_core::CollectorKey::from_pem(&pem).unwrap().key_id().to_hex();
    let port = free_port();
    let batch = tracex_core::config::BatchConfig { max_queue_size: 16, ..Default::default() };
    let batchers_before = batcher_threads();
    let tracer = pinned(&format!("http://127.0.0.1:{port}"), &fp).with_batch_config(batch).build().unwrap();
    for _ in 0..40 {
        tracer.span("verify").end();
    }
    let stats = tracer.stats();
    assert_eq!((stats.spans_recorded, stats.spans_dropped), (16, 24), "{stats:?}");
    // A full buffer with nothing to seal it with: the batcher sleeps until its next key fetch
    // instead of spinning on the ready batch (a spin burns the whole second below).
    // A thread names itself once it runs: on a loaded machine it may not have yet.
    let named = Instant::now() + Duration::from_secs(10);
    let ours = loop {
        let ours: Vec<u32> = batcher_threads().into_iter().filter(|t| !batchers_before.contains(t)).collect();
        if !ours.is_empty() || Instant::now() > named {
            break ours;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let before: u64 = ours.iter().map(|t| cpu_ticks(*t)).sum();
    std::thread::sleep(Duration::from_secs(1));
    let used: u64 = ours.iter().map(|t| cpu_ticks(*t)).sum::<u64>() - before;
    assert!(!ours.is_empty(), "no tracex-batcher thread appeared");
    assert!(used < 50, "the batcher used {used} ticks of CPU in 1 s while the key was unknown");
    let server = Server::start(&format!("127.0.0.1:{port}"), move |req, _| {
        if req.path == "/v1/public-key" { Response::status(200).body(pem.clone()) } else { Response::status(200) }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while tracer.stats().spans_sent < 16 && Instant::now() < deadline {
        let _ = tracer.flush(Duration::from_millis(500)).unwrap();
    }
    assert_eq!(spans_in(&batch_bodies(&server)), 16);
    assert_eq!(tracer.stats().spans_dropped, 24);
}

/// Thread ids of this process's `tracex-batcher` threads.
fn batcher_threads() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?.path();
            let name = std::fs::read_to_string(t.join("comm")).ok()?;
            (name.trim() == "tracex-batcher").then(|| t.file_name()?.to_str()?.parse().ok())?
        })
        .collect()
}

/// User plus system CPU of one thread, in clock ticks (10 ms).
fn cpu_ticks(tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<u64>().ok()).sum()
}

#[test]
fn past_the_spool_cap_the_oldest_batches_are_evicted_and_counted_and_the_rest_arrive_once_in_order() {
    let dir = common::temp_dir("evict-spool");
    let one_per_batch = tracex_core::config::BatchConfig { max_batch_size: 1, ..Default::default() };
    let spooled = {
        let down = builder(&format!("http://127.0.0.1:{}", free_port()))
            .with_retry_policy(fast_retry())
            .with_batch_config(one_per_batch)
            .with_spool_dir(&dir)
            .with_spool_max_bytes(4_000) // room for a few single-span batches of ~700 bytes
            .build()
            .unwrap();
        for i in 0..12 {
            let mut span = down.span("settle");
            span.set_attribute("i", i64::from(i));
            span.end();
        }
        let report = down.shutdown(Duration::from_secs(20)).unwrap();
        let s = down.stats();
        assert_eq!((report.spans_spooled, report.spans_pending), (12, 0), "{report:?}");
        assert!(s.spans_spool_failed > 0 && s.spans_spool_failed < 12, "{s:?}");
        assert_eq!(s.spans_failed, s.spans_spool_failed, "evictions are the only failures: {s:?}");
        12 - s.spans_spool_failed
    };
    let files = std::fs::read_dir(&dir).unwrap().count() as u64;
    assert_eq!(files, spooled);

    let server = Server::start("127.0.0.1:0", |_, _| Response::status(200));
    let next = builder(&server.url()).with_spool_dir(&dir).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.stats().spans_unspooled < spooled && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The newest survived, and they arrive oldest first, each once.
    let order: Vec<tracex_core::Value> = batch_bodies(&server)
        .iter()
        .flat_map(|b| {
            let req = common::open(b).1;
            req.spans().map(|(_, _, s)| s.attribute("i").cloned().unwrap()).collect::<Vec<_>>()
        })
        .collect();
    let first = 12 - i64::try_from(spooled).unwrap();
    assert_eq!(order, (first..12).map(tracex_core::Value::from).collect::<Vec<_>>());
}

#[test]
fn flushing_during_an_outage_does_not_bring_key_fetches_forward() {
    let server = Server::start("127.0.0.1:0", |_, _| Response::status(503));
    let tracer = pinned(&server.url(), &"ab".repeat(32))
        .with_retry_policy(RetryPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(1),
            ..fast_retry()
        })
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_millis(1500);
    let mut flushes = 0;
    while Instant::now() < until {
        tracer.span("settle").end();
        let _ = tracer.flush(Duration::from_millis(50)).unwrap();
        flushes += 1;
    }
    let fetches = server.requests().iter().filter(|r| r.path == "/v1/public-key").count();
    // Attempts at least 500 ms apart: at most 4 in 1.5 s, whatever the number of flushes.
    assert!(flushes > 20 && (1..=4).contains(&fetches), "{flushes} flushes, {fetches} key requests");
}

/// A batch that becomes ready, or a flush that arrives, while the batcher is blocked handing an
/// earlier batch to busy senders is seen as soon as there is room, not at the next scheduled
/// export: the scheduled delay here is an hour, so a lost wake-up shows as a stall (not a timing
/// claim: each wait below is hundreds of times what it takes).
#[test]
fn batches_that_become_ready_while_the_senders_are_busy_are_sealed_without_waiting_for_the_timer() {
    let server = Server::start("127.0.0.1:0", |req, _| {
        if req.path == "/v1/batches" {
            std::thread::sleep(Duration::from_millis(20));
        }
        Response::status(202)
    });
    let tracer = builder(&server.url())
        .with_batch_config(BatchConfig {
            max_batch_size: 10,
            max_pending_batches: 1,
            max_concurrent_exports: 1,
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    for burst in 1..=20u64 {
        for _ in 0..50 {
            tracer.span("settle").end();
        }
        // Nothing more is recorded until the burst is sealed: only the batcher's own wake-ups move it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tracer.stats().spans_sealed < burst * 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(tracer.stats().spans_sealed, burst * 50, "burst {burst}: {:?}", tracer.stats());
    }
    // The flush's wake-up can be consumed the same way: it must be answered, not time out (it
    // took its whole 30 s when the batcher parked for the scheduled delay with the flush unseen).
    let asked = Instant::now();
    let report = tracer.flush(Duration::from_secs(30)).unwrap();
    assert!(asked.elapsed() < Duration::from_secs(15), "the flush timed out: {:?}", asked.elapsed());
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(tracer.stats().spans_sent, 1000);
}

/// One transport, many sends: one connection (each response read to the end, so the connection
/// goes back to the pool), the bearer key and content type on every request, a receipt taken once.
#[test]
fn the_client_keeps_its_connection_alive_and_hands_over_each_receipt_once() {
    let receipt = "tracex.example/log\n1\n";
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(receipt)
    };
    let server = Server::start("127.0.0.1:0", move |_, i| {
        let resp = Response::status(202).body(r#"{"accepted":true}"#);
        if i % 2 == 0 { resp.header("tracex-receipt", encoded.clone()) } else { resp }
    });
    let mut transport = HttpTransport::new(&server.url(), "tx_test_key", Duration::from_secs(5)).unwrap();
    for i in 0..6 {
        assert_eq!(transport.send(format!("batch {i}").as_bytes()), SendOutcome::Delivered);
        let expected = (i % 2 == 0).then(|| receipt.to_owned());
        assert_eq!(transport.take_receipt(), expected, "send {i}");
        assert_eq!(transport.take_receipt(), None);
    }
    assert_eq!(server.connections(), 1, "six requests on one kept-alive connection");
    for (i, r) in server.requests().iter().enumerate() {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/batches"));
        assert_eq!(r.header("authorization"), Some("Bearer tx_test_key"));
        assert_eq!(r.header("content-type"), Some("application/vnd.tracex.batch.v1"));
        assert_eq!(r.body, format!("batch {i}").into_bytes());
    }
    // An error body is read (and clipped) for the reason, and the connection still reused.
    let server = Server::start("127.0.0.1:0", |_, i| {
        if i == 0 { Response::status(400).body("x".repeat(10_000)) } else { Response::status(202) }
    });
    let mut transport = HttpTransport::new(&server.url(), "tx_test_key", Duration::from_secs(5)).unwrap();
    match transport.send(b"bad") {
        SendOutcome::Reject { status: 400, message } => assert_eq!(message, "x".repeat(300)),
        other => panic!("{other:?}"),
    }
    assert_eq!(transport.send(b"good"), SendOutcome::Delivered);
    assert_eq!(server.connections(), 1);
    // A body too long to drain (past 64 KiB) is left unread: its connection is closed, not
    // reused, and the next batch goes out on a new one.
    let server = Server::start("127.0.0.1:0", |_, i| {
        if i == 0 { Response::status(202).body("y".repeat(1 << 20)) } else { Response::status(202) }
    });
    let mut transport = HttpTransport::new(&server.url(), "tx_test_key", Duration::from_secs(5)).unwrap();
    assert_eq!(transport.send(b"first"), SendOutcome::Delivered);
    assert_eq!(transport.send(b"second"), SendOutcome::Delivered);
    assert_eq!(transport.send(b"third"), SendOutcome::Delivered);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.connections(), 2, "a new connection after the long body, then kept alive");
}

/// A batch and its bearer key go only where they were configured to: a redirect is a rejection
/// (HTTP 3xx), not followed.
#[test]
fn redirects_are_not_followed() {
    let elsewhere = Server::start("127.0.0.1:0", |_, _| Response::status(202));
    let target = format!("{}/v1/batches", elsewhere.url());
    let server = Server::start("127.0.0.1:0", move |_, _| Response::status(307).header("Location", target.clone()));
    let mut transport = HttpTransport::new(&server.url(), "tx_test_key", Duration::from_secs(5)).unwrap();
    assert!(matches!(transport.send(b"batch"), SendOutcome::Reject { status: 307, .. }));
    assert_eq!(server.requests().len(), 1);
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}

/// An `https://` endpoint sets up TLS (rustls on aws-lc, the platform's verifier) without a panic;
/// a server that does not speak TLS is a transient failure whose reason says so.
#[test]
fn an_https_endpoint_that_does_not_speak_tls_is_a_retry_with_a_reason() {
    let server = Server::start("127.0.0.1:0", |_, _| Response::status(202));
    let mut transport =
        HttpTransport::new(&format!("https://{}", server.addr), "tx_test_key", Duration::from_secs(5)).unwrap();
    match transport.send(b"batch") {
        // The plain server drops the connection on the ClientHello: "io: unexpected end of file".
        SendOutcome::Retry { after: None, reason } => assert!(reason.starts_with("io:"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(server.requests().is_empty(), "nothing was sent in clear");
}

#[test]
fn an_endpoint_that_is_not_an_http_url_is_a_config_error_at_build() {
    for endpoint in ["not a url", "ftp://collector.example", "collector.example:8080", "http://"] {
        match HttpTransport::new(endpoint, "tx_test_key", Duration::from_secs(5)) {
            Err(tracex_core::Error::Config(m)) => assert!(m.contains("is not a URL"), "{endpoint}: {m}"),
            other => panic!("{endpoint}: {other:?}"),
        }
    }
    assert!(HttpTransport::new("https://collector.example:8443/", "tx_test_key", Duration::from_secs(5)).is_ok());
}
