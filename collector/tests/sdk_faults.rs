//! The SDK (the core every native binding runs) against the real collector behind a fault-injecting
//! TCP proxy: slow answers, 500s, 429 with `Retry-After`, connection resets, and a proxy that
//! accepts a request and never answers. Through every phase the caller is never blocked, the SDK's
//! memory stays within its bounds, and at the end every span is accounted for exactly once: stored
//! by the collector (each once), or counted as dropped or failed by the SDK.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Collector, all_traces, create_key, metric, public_key_pem, temp_dir};
use tracex_core::Tracer;
use tracex_core::config::BatchConfig;
use tracex_core::transport::RetryPolicy;

/// What the proxy does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    Pass = 0,
    /// Forwards after 300 ms.
    Slow = 1,
    /// Answers 500 itself.
    ServerError = 2,
    /// Answers 429 with `Retry-After: 1`.
    Throttle = 3,
    /// Reads the request, then resets the connection (RST, no answer).
    Reset = 4,
    /// Reads the request and never answers while the fault lasts.
    Stall = 5,
    /// Once: keeps the request and answers `200 stored` without forwarding it — a middlebox that
    /// drops a batch and lies about it. Then passes again.
    Swallow = 6,
}

impl Fault {
    fn from_u8(v: u8) -> Self {
        [Self::Pass, Self::Slow, Self::ServerError, Self::Throttle, Self::Reset, Self::Stall, Self::Swallow]
            [usize::from(v)]
    }
}

struct Proxy {
    url: String,
    fault: Arc<AtomicU8>,
    /// Requests answered with a fault, per fault.
    faulted: Arc<[AtomicU64; 7]>,
    /// Requests swallowed.
    swallowed: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let fault = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let faulted: Arc<[AtomicU64; 7]> = Arc::new(Default::default());
        let swallowed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (f, n, w) = (fault.clone(), faulted.clone(), swallowed.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (f, n, w, upstream) = (f.clone(), n.clone(), w.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &upstream, &f, &n, &w));
            }
        });
        Self { url, fault, faulted, swallowed }
    }

    fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    fn faulted(&self, fault: Fault) -> u64 {
        self.faulted[fault as usize].load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 message (head and `Content-Length` body) from `r`, or `None` at EOF.
fn read_message(r: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let start = buf.len();
    buf.resize(start + len, 0);
    r.read_exact(&mut buf[start..]).ok()?;
    Some(buf)
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: &AtomicU8,
    faulted: &[AtomicU64; 7],
    swallowed: &std::sync::Mutex<Vec<Vec<u8>>>,
) {
    let mut server: Option<TcpStream> = None;
    while let Some(request) = read_message(&mut client) {
        let f = Fault::from_u8(fault.load(Ordering::SeqCst));
        if f != Fault::Pass && f != Fault::Slow {
            faulted[f as usize].fetch_add(1, Ordering::SeqCst);
        }
        let canned = |status: &str, extra: &str| {
            format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: 2\r\n\r\n{{}}")
        };
        match f {
            Fault::Swallow => {
                let once = fault.compare_exchange(f as u8, Fault::Pass as u8, Ordering::SeqCst, Ordering::SeqCst);
                if once.is_ok() {
                    let body_at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    swallowed.lock().unwrap().push(request[body_at..].to_vec());
                    let _ = client.write_all(canned("200 OK", "").as_bytes());
                    continue;
                }
            }
            Fault::ServerError => {
                let _ = client.write_all(canned("500 Internal Server Error", "").as_bytes());
                continue;
            }
            Fault::Throttle => {
                let _ = client.write_all(canned("429 Too Many Requests", "retry-after: 1\r\n").as_bytes());
                continue;
            }
            Fault::Reset => {
                // Linger 0: closing sends RST, the client sees "connection reset by peer".
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                return;
            }
            Fault::Stall => {
                while Fault::from_u8(fault.load(Ordering::SeqCst)) == Fault::Stall {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Fault::Slow => {
                faulted[Fault::Slow as usize].fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
            }
            Fault::Pass => {}
        }
        if server.is_none() {
            server = TcpStream::connect(upstream).ok();
        }
        let Some(s) = server.as_mut() else { return };
        if s.write_all(&request).is_err() {
            return;
        }
        let Some(response) = read_message(s) else { return };
        if client.write_all(&response).is_err() {
            return;
        }
    }
}

#[test]
fn every_span_is_stored_once_or_counted_through_slow_failing_throttling_resetting_and_stalling_collectors() {
    let dir = temp_dir("sdk-faults");
    let ingest = create_key(&dir, "faults", "ingest");
    let read = create_key(&dir, "faults", "read");
    let pem = public_key_pem(&dir);
    let collector = Collector::start(&dir);
    let proxy = Proxy::start(&collector.url);

    let batch = BatchConfig {
        max_batch_size: 50,
        max_queue_size: 2_048,
        max_pending_batches: 4,
        scheduled_delay: Duration::from_millis(50),
        ..BatchConfig::default()
    };
    let tracer = Tracer::builder()
        .with_service_name("faults")
        .with_endpoint(&proxy.url)
        .with_api_key(&ingest)
        .with_collector_public_key_pem(pem)
        .with_batch_config(batch)
        .with_retry_policy(RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(3),
            request_timeout: Duration::from_secs(2),
        })
        .with_spool_dir(dir.join("spool"))
        .build()
        .unwrap();

    let recorded = AtomicU64::new(0);
    let record = |n: u64| {
        let started = Instant::now();
        for _ in 0..n {
            tracer.span("settle").end();
        }
        recorded.fetch_add(n, Ordering::Relaxed);
        // Recording never waits for the network: generous bound, only to catch a blocked caller.
        assert!(started.elapsed() < Duration::from_secs(2), "recording {n} spans took {:?}", started.elapsed());
    };
    // The buffer, the batches queued for the senders, one in flight per sender, and the one the
    // batcher is sealing.
    let bound = (batch.max_queue_size
        + batch.max_batch_size * (batch.max_pending_batches + batch.max_concurrent_exports + 1)) as u64;
    let in_memory = || {
        let s = tracer.stats();
        s.spans_recorded
            - (s.spans_sent - s.spans_unspooled)
            - s.spans_spooled
            - (s.spans_failed - s.spans_spool_failed)
    };

    for fault in [Fault::Pass, Fault::Slow, Fault::ServerError, Fault::Throttle, Fault::Reset, Fault::Stall] {
        proxy.set(fault);
        for _ in 0..10 {
            record(200);
            std::thread::sleep(Duration::from_millis(100));
            assert!(in_memory() <= bound, "{fault:?}: {} spans held in memory (bound {bound})", in_memory());
        }
        if fault == Fault::Stall {
            // A burst while the sender is stuck in a request: drops are counted, nothing blocks.
            record(20_000);
            assert!(tracer.stats().spans_dropped > 0);
            assert!(in_memory() <= bound, "stall: {} spans held in memory: {:?}", in_memory(), tracer.stats());
        }
        if !matches!(fault, Fault::Pass | Fault::Slow) {
            assert!(proxy.faulted(fault) > 0, "{fault:?} was never exercised");
        }
    }

    proxy.set(Fault::Pass);
    let recovering = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = tracer.flush(Duration::from_secs(5)).unwrap();
        let s = tracer.stats();
        let settled = in_memory() == 0 && s.spans_spooled == s.spans_unspooled + s.spans_spool_failed;
        if settled || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("sdk_faults: recovered in {:?}", recovering.elapsed());
    tracer.shutdown(Duration::from_secs(10)).unwrap();

    let s = tracer.stats();
    let total = recorded.load(Ordering::Relaxed);
    assert_eq!(s.spans_recorded + s.spans_dropped, total, "{s:?}");
    assert_eq!(s.spans_spooled, s.spans_unspooled + s.spans_spool_failed, "the spool was drained: {s:?}");
    assert_eq!(
        s.spans_sent + (s.spans_failed - s.spans_spool_failed) + s.spans_spool_failed,
        s.spans_recorded,
        "{s:?}"
    );
    assert_eq!(s.spans_failed, 0, "with a spool and a collector back in time, nothing is given up: {s:?}");

    // The collector stored exactly what was acknowledged: no span twice (a retried batch whose
    // answer was lost is a duplicate to the collector), none missing.
    let stored: u64 =
        all_traces(&collector.url, &read, "&service=faults").iter().map(|t| t["span_count"].as_u64().unwrap()).sum();
    assert_eq!(stored, s.spans_sent, "{s:?}");
    assert_eq!(metric(&collector.url, "tracex_spans_ingested_total") as u64, s.spans_sent);
}

/// A batch lost on the way (a middlebox answers 200 and drops it) shows as exactly one missing
/// sequence number of the SDK instance in the audit log's gap report, with the instance's SDK and
/// service; the batches around it are stored. The SDK, with the audit key pinned, counts the one
/// acknowledgement without a valid receipt.
#[test]
fn a_batch_dropped_on_the_way_is_reported_as_a_sequence_gap() {
    let dir = temp_dir("sdk-gap");
    let ingest = create_key(&dir, "gaps", "ingest");
    let read = create_key(&dir, "gaps", "read");
    let pem = public_key_pem(&dir);
    let collector = Collector::start(&dir);
    let proxy = Proxy::start(&collector.url);
    let audit: serde_json::Value =
        common::client().get(format!("{}/v1/audit-key", collector.url)).send().unwrap().json().unwrap();
    let tracer = Tracer::builder()
        .with_audit_key(audit["verifier_key"].as_str().unwrap())
        .with_service_name("settler")
        .with_endpoint(&proxy.url)
        .with_api_key(&ingest)
        .with_collector_public_key_pem(pem)
        .with_batch_config(BatchConfig { max_batch_size: 10, ..BatchConfig::default() })
        .build()
        .unwrap();
    let round = |n: usize| {
        for _ in 0..n {
            tracer.span("settle").end();
        }
        tracer.flush(Duration::from_secs(10)).unwrap();
    };
    round(30);
    proxy.set(Fault::Swallow);
    round(10);
    assert_eq!(proxy.faulted(Fault::Swallow), 1);
    round(30);
    tracer.shutdown(Duration::from_secs(10)).unwrap();
    // The SDK noticed too: the dropped batch's "acknowledgement" carried no receipt.
    let s = tracer.stats();
    assert_eq!((s.receipts_verified, s.receipts_failed, s.batches_sent), (6, 1, 7), "{s:?}");

    let swallowed = proxy.swallowed.lock().unwrap().clone();
    assert_eq!(swallowed.len(), 1);
    let lost = tracex_core::seal::parse(&swallowed[0]).unwrap();
    let (status, report) = common::get_json(&format!("{}/api/v1/audit/gaps", collector.url), &read);
    assert_eq!(status, 200, "{report}");
    let instances = report["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{report}");
    let i = &instances[0];
    assert_eq!(i["instance_id"], hex::encode(lost.header.instance_id), "{report}");
    assert_eq!((i["service"].as_str(), i["sdk_name"].as_str()), (Some("settler"), Some("tracex-rust")), "{report}");
    assert_eq!(i["missing_total"], 1, "{report}");
    assert_eq!(i["missing"][0]["first_sequence"].as_u64(), Some(lost.header.sequence), "{report}");
    assert_eq!(i["missing"][0]["last_sequence"].as_u64(), Some(lost.header.sequence), "{report}");
    assert!(i["last_sequence"].as_u64().unwrap() > lost.header.sequence, "{report}");
    assert!(i["reused"].as_array().unwrap().is_empty());
    assert_eq!(all_traces(&collector.url, &read, "").len() as u64, 70 - 10);
    let gauge = r#"tracex_batches_missing{project="gaps",sdk="tracex-rust",service="settler"}"#;
    assert!((metric(&collector.url, gauge) - 1.0).abs() < f64::EPSILON);
}

/// Batches sealed while the collector is down go to the spool and are replayed once it is back;
/// their acknowledgements carry receipts the SDK checks like those of batches sent at once. With
/// the collector's audit key pinned each replayed batch's receipt verifies; with another key of
/// the same log name (only the signature can fail) each one fails, and is delivered all the same.
#[test]
fn receipts_of_batches_replayed_from_the_spool_are_checked_against_the_pinned_audit_key() {
    use tracex_core::audit::VerifierKey;
    const BATCHES: u64 = 3;
    let dir = temp_dir("sdk-spool-receipts");
    let ingest = create_key(&dir, "spool", "ingest");
    let read = create_key(&dir, "spool", "read");
    let pem = public_key_pem(&dir);
    // Up once, for its address and audit key as an SDK's operator would get them; then down.
    let collector = Collector::start(&dir);
    let url = collector.url.clone();
    let audit: serde_json::Value = common::client().get(format!("{url}/v1/audit-key")).send().unwrap().json().unwrap();
    let right = VerifierKey::parse(audit["verifier_key"].as_str().unwrap()).unwrap();
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
    let wrong = VerifierKey::new(right.name(), &other).unwrap();
    assert_ne!(right.to_string(), wrong.to_string());
    assert!(collector.terminate().success());

    let tracer = |service: &str, key: &VerifierKey| {
        Tracer::builder()
            .with_audit_key(key.to_string())
            .with_service_name(service)
            .with_endpoint(&url)
            .with_api_key(&ingest)
            .with_collector_public_key_pem(pem.clone())
            .with_batch_config(BatchConfig { max_batch_size: 10, ..BatchConfig::default() })
            .with_retry_policy(RetryPolicy {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
                max_elapsed: Duration::from_millis(300),
                request_timeout: Duration::from_secs(2),
            })
            .with_spool_dir(dir.join(format!("spool-{service}")))
            .build()
            .unwrap()
    };
    let tracers = [("pinned", tracer("pinned", &right)), ("other-key", tracer("other-key", &wrong))];
    for (service, t) in &tracers {
        for _ in 0..BATCHES {
            for _ in 0..10 {
                t.span("settle").end();
            }
            let report = t.flush(Duration::from_secs(10)).unwrap();
            assert_eq!((report.spans_delivered, report.spans_spooled), (0, 10), "{service}: {report:?}");
        }
        let s = t.stats();
        assert_eq!((s.batches_spooled, s.batches_sent, s.receipts_verified, s.receipts_failed), (BATCHES, 0, 0, 0));
    }

    // Back where the SDKs send: they replay their spools.
    let collector = Collector::start_listening_on(&dir, url.trim_start_matches("http://"));
    assert_eq!(collector.url, url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tracers.iter().any(|(_, t)| t.stats().batches_unspooled < BATCHES) {
        assert!(Instant::now() < deadline, "spools not replayed: {:?}", tracers.each_ref().map(|(_, t)| t.stats()));
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, t) in &tracers {
        t.shutdown(Duration::from_secs(10)).unwrap();
    }

    let [(_, pinned), (_, other_key)] = &tracers;
    let (p, o) = (pinned.stats(), other_key.stats());
    let counts =
        |s: &tracex_core::StatsSnapshot| (s.batches_unspooled, s.batches_sent, s.receipts_verified, s.receipts_failed);
    assert_eq!(counts(&p), (BATCHES, BATCHES, BATCHES, 0), "every replayed batch's receipt verifies: {p:?}");
    assert_eq!(counts(&o), (BATCHES, BATCHES, 0, BATCHES), "another key fails each one: {o:?}");
    // The verdict changes nothing about delivery: every span of both is stored once.
    for (service, _) in &tracers {
        let stored = all_traces(&collector.url, &read, &format!("&service={service}"));
        assert_eq!(stored.len() as u64, BATCHES * 10, "{service}");
    }
}
