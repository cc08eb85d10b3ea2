//! What a hostile client (any holder of an ingest or read key) and a broken environment could do to
//! the collector, each reproduced against the real binary over real HTTP: the crash, the memory
//! blow-ups, the echoed bomb, hidden spans, unbounded fields, an outage reported for a client error,
//! world-readable files, a broken log sink. Each test failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_truncation)]

mod common;

use std::fmt::Write as _;
use std::process::{Command, Stdio};

use common::{Collector, client, create_key, get_json, post_batch, public_key_pem, temp_dir};
use serde_json::Value as J;
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, SpanId, Status, TraceId};

const T0: u64 = 1_763_900_000_000_000_000;

struct Setup {
    collector: Collector,
    ingest: String,
    read: String,
    key: CollectorKey,
}

fn setup(tag: &str) -> Setup {
    let dir = temp_dir(tag);
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    Setup { collector: Collector::start(&dir), ingest, read, key }
}

fn span(trace: u8, id: u64, parent: Option<u64>) -> SpanData {
    SpanData {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId(id.to_be_bytes()),
        parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
        name: "settle".into(),
        start_time_unix_nano: T0 + id,
        end_time_unix_nano: T0 + id + 100,
        attributes: vec![KeyValue::new("x402.network", "base")],
        ..Default::default()
    }
}

fn seal_spans(key: &CollectorKey, spans: &[SpanData]) -> Vec<u8> {
    let mut sealer = Sealer::new(key.clone(), SealerConfig { compress: true, ..Default::default() }).unwrap();
    let (resource, scope) = (Resource::new("hostile"), InstrumentationScope::default());
    sealer.seal_with(T0, |out| tracex_core::encode::encode_spans(&resource, &scope, spans, out)).unwrap().bytes
}

/// A compressed envelope around arbitrary plaintext.
fn seal_plaintext(key: &CollectorKey, plaintext: &[u8]) -> Vec<u8> {
    let mut sealer = Sealer::new(key.clone(), SealerConfig { compress: true, ..Default::default() }).unwrap();
    sealer.seal(T0, plaintext).unwrap().bytes
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn peak_rss_kib(c: &Collector) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.child.id())).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
}

fn ready(c: &Collector) -> bool {
    client().get(format!("{}/readyz", c.url)).send().is_ok_and(|r| r.status().is_success())
}

/// Every row of a trace's detail, following the pages.
fn detail_rows(s: &Setup, trace: u8, limit: usize) -> Vec<J> {
    let id = hex::encode([trace; 16]);
    let mut rows = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{}/api/v1/traces/{id}?limit={limit}{cursor}", s.collector.url);
        let (status, body) = get_json(&url, &s.read);
        assert_eq!(status, 200, "{body}");
        rows.extend(body["spans"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return rows,
        }
    }
}

#[test]
fn a_deep_parent_chain_is_served_flat_and_the_collector_survives() {
    let s = setup("deep");
    // 5,000 spans, each the parent of the next: nested JSON this deep overflowed the stack.
    let chain: Vec<SpanData> = (1..=5000u64).map(|i| span(1, i, (i > 1).then(|| i - 1))).collect();
    let r = post_batch(&s.collector.url, &s.ingest, seal_spans(&s.key, &chain));
    assert_eq!(r.0, 200, "{}", r.1);
    let rows = detail_rows(&s, 1, 10_000);
    assert_eq!(rows.len(), 5000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["depth"], i, "pre-order of a chain: depth = position");
        assert_eq!(row["span_id"], hex::encode((i as u64 + 1).to_be_bytes()));
    }
    // Pages of 700 walk the same rows in the same order.
    assert_eq!(detail_rows(&s, 1, 700), rows);
    assert!(ready(&s.collector), "still serving after the deep trace");
}

#[test]
fn cycles_and_orphans_are_shown_as_roots_never_dropped() {
    let s = setup("cycles");
    let spans = vec![
        span(2, 1, Some(2)), // 1 → 2 → 1: a cycle
        span(2, 2, Some(1)),
        span(2, 3, Some(99)), // parent never stored
        span(2, 4, Some(3)),
    ];
    assert_eq!(post_batch(&s.collector.url, &s.ingest, seal_spans(&s.key, &spans)).0, 200);
    let rows = detail_rows(&s, 2, 1000);
    let view: Vec<(String, i64, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (r["span_id"].as_str().unwrap()[14..].to_owned(), r["depth"].as_i64().unwrap(), r["detached"].as_str())
        })
        .collect();
    assert_eq!(
        view,
        [
            ("03".into(), 0, Some("parent_not_stored")),
            ("04".into(), 1, None),
            ("01".into(), 0, Some("cycle")),
            ("02".into(), 1, None),
        ]
    );
}

#[test]
fn a_span_flood_is_stopped_while_decoding_within_bounded_memory() {
    let s = setup("flood");
    // 20 million empty spans: 40 MB of plaintext in a few hundred kilobytes of DEFLATE. Fully
    // decoded they took gigabytes before the span limit was checked.
    let n = 20_000_000usize;
    let spans = [0x12u8, 0x00].repeat(n);
    let mut scope_spans = vec![0x12];
    put_varint(&mut scope_spans, spans.len() as u64);
    scope_spans.extend_from_slice(&spans);
    drop(spans);
    let mut plaintext = vec![0x0a];
    put_varint(&mut plaintext, scope_spans.len() as u64);
    plaintext.extend_from_slice(&scope_spans);
    drop(scope_spans);
    let body = seal_plaintext(&s.key, &plaintext);
    drop(plaintext);
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let before = peak_rss_kib(&s.collector);
    let r = post_batch(&s.collector.url, &s.ingest, body);
    assert_eq!(r.0, 413, "{}", r.1);
    assert_eq!(r.1["error"]["code"], "limit_exceeded");
    let grew_mib = (peak_rss_kib(&s.collector) - before) / 1024;
    // The plaintext (40 MB) plus 100,000 decoded spans is what a request may cost; all 20 million
    // decoded were several gigabytes.
    assert!(grew_mib < 400, "peak RSS grew by {grew_mib} MiB");
    assert!(ready(&s.collector));
}

#[test]
fn a_decompression_bomb_is_refused_without_echoing_it() {
    let s = setup("bomb");
    // 100 MiB of zeros (over the 64 MiB inflate limit) in about 100 KB.
    let body = seal_plaintext(&s.key, &vec![0u8; 100 << 20]);
    let r = client().post(format!("{}/v1/batches", s.collector.url)).bearer_auth(&s.ingest).body(body).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().unwrap();
    assert!(text.len() < 1024, "the answer is {} bytes", text.len());
    let body: J = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "malformed_envelope");
    assert!(body["error"]["message"].as_str().unwrap().contains("inflates to more than"), "{body}");
}

#[test]
fn unbounded_fields_and_times_are_rejected() {
    let s = setup("fields");
    let cases: Vec<(SpanData, &str)> = vec![
        (SpanData { status: Status::error("x".repeat(10 << 20)), ..span(3, 1, None) }, "status message"),
        (SpanData { trace_state: "a=b,".repeat(1 << 20), ..span(3, 1, None) }, "tracestate"),
        (SpanData { end_time_unix_nano: u64::MAX, ..span(3, 1, None) }, "end time"),
        (SpanData { end_time_unix_nano: 7_258_118_400_000_000_000, ..span(3, 1, None) }, "end time"),
    ];
    for (bad, what) in cases {
        let r = post_batch(&s.collector.url, &s.ingest, seal_spans(&s.key, &[bad]));
        assert_eq!(r.0, 400, "{what}: {}", r.1);
        assert_eq!(r.1["error"]["code"], "invalid_span");
        let message = r.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(what) && message.len() <= 512, "{message}");
    }
    let (status, body) = get_json(&format!("{}/api/v1/traces?limit=10", s.collector.url), &s.read);
    assert_eq!((status, body["traces"].as_array().unwrap().len()), (200, 0), "nothing stored");
}

#[test]
fn too_many_filters_is_a_client_error_and_bearer_is_case_insensitive() {
    let s = setup("filters");
    let filters: String = (0..1100).fold(String::new(), |mut s, i| {
        let _ = write!(s, "&attr.k{i}=v");
        s
    });
    let (status, body) = get_json(&format!("{}/api/v1/traces?limit=10{filters}", s.collector.url), &s.read);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{body}");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = client()
            .get(format!("{}/api/v1/traces", s.collector.url))
            .header("authorization", format!("{scheme} {}", s.read))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
}

#[test]
fn the_data_dir_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let s = setup("private");
    let dir = s.collector.data_dir.clone();
    assert_eq!(post_batch(&s.collector.url, &s.ingest, seal_spans(&s.key, &[span(4, 1, None)])).0, 200);
    assert_eq!(mode(&dir), 0o700);
    for f in ["tracex.db", "tracex.db-wal", "tracex.db-shm"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    // Files left world-readable by an older version are tightened at start.
    drop(s);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("tracex.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = Collector::start(&dir);
    assert_eq!((mode(&dir), mode(&dir.join("tracex.db"))), (0o700, 0o600));
    drop(again);
}

#[test]
fn a_broken_log_sink_loses_log_lines_not_the_collector() {
    let dir = temp_dir("logsink");
    let ingest = create_key(&dir, "acme", "ingest");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    // stderr is a pipe whose reader is gone: every log write fails with EPIPE. The default log
    // layer reported that with eprintln!, which panicked.
    let mut child = Command::new(common::BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TRACEX_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().strip_prefix("tracex-collector listening on ").unwrap().to_owned();
    for i in 0..20u64 {
        let r = post_batch(&url, &ingest, seal_spans(&key, &[span(5, i + 1, None)]));
        assert_eq!(r.0, 200, "batch {i}: {}", r.1);
        // Rejections log too (at debug).
        assert_eq!(post_batch(&url, &ingest, b"garbage".to_vec()).0, 400);
    }
    let ready = client().get(format!("{url}/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert!(common::metric(&url, "tracex_log_write_failures_total") > 0.0);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success(), "SIGTERM exits 0");
}

#[test]
fn stalled_requests_are_cut_off_and_do_not_hold_shutdown() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = temp_dir("stalled");
    let cfg = dir.join("collector.toml");
    std::fs::write(
        &cfg,
        "header_read_timeout_ms = 500\nbody_read_timeout_ms = 500\nshutdown_grace_ms = 1000\nmax_connections = 32\n",
    )
    .unwrap();
    let ingest = create_key(&dir, "acme", "ingest");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let c = Collector::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    let addr = c.url.trim_start_matches("http://").to_owned();
    let connect = || {
        let s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    };
    // Headers that never end: the server closes the connection.
    let mut half_headers = connect();
    half_headers.write_all(b"POST /v1/batches HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A body that never ends: 408, then close.
    let mut half_body = connect();
    write!(half_body, "POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ingest}\r\nContent-Length: 1000\r\n\r\n0123456789").unwrap();
    // More stalled connections than the server serves at once: real requests still get through.
    let crowd: Vec<_> = (0..64)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let mut out = Vec::new();
    half_headers.read_to_end(&mut out).expect("closed by the server, not left open");
    let mut answer = String::new();
    half_body.read_to_string(&mut answer).expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A body that breaks (a malformed chunk) is a client error, not "too large".
    let mut broken = connect();
    write!(
        broken,
        "POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ingest}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nTRXB\r\nzz\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    broken.read_to_string(&mut answer).expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("body_read_failed"), "{answer}");
    let r = post_batch(&c.url, &ingest, seal_spans(&key, &[span(6, 1, None)]));
    assert_eq!(r.0, 200, "{}", r.1);
    // A stalled request open at SIGTERM does not hold the shutdown past the grace period.
    let mut stalled = connect();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    assert!(c.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    drop((crowd, stalled));
}

#[test]
fn a_reused_batch_id_with_other_content_is_a_conflict_not_a_duplicate() {
    use tracex_core::seal::Header;
    let s = setup("conflict");
    let data_key = [7u8; 32];
    let header = Header {
        flags: 0,
        key_id: s.key.key_id(),
        batch_id: [0x42; 16],
        instance_id: [1; 8],
        sequence: 1,
        created_at_unix_nano: T0,
        sdk_name: "hostile".into(),
        sdk_version: "0".into(),
        wrapped_key: s.key.wrap(&data_key).unwrap(),
        nonce: [3; 12],
    };
    let envelope = |nonce: u8, spans: &[SpanData]| {
        common::seal_under(&Header { nonce: [nonce; 12], ..header.clone() }, &data_key, "hostile", spans)
    };
    let first = envelope(3, &[span(7, 1, None)]);
    let r = post_batch(&s.collector.url, &s.ingest, first.clone());
    assert_eq!((r.0, r.1["status"].as_str()), (200, Some("stored")), "{}", r.1);
    let r = post_batch(&s.collector.url, &s.ingest, first);
    assert_eq!((r.0, r.1["status"].as_str()), (200, Some("duplicate")), "a retry: the same bytes");
    // Same batch id, other spans: silently answered "duplicate" and dropped before.
    let r = post_batch(&s.collector.url, &s.ingest, envelope(4, &[span(8, 1, None)]));
    assert_eq!((r.0, r.1["error"]["code"].as_str()), (409, Some("batch_id_conflict")), "{}", r.1);
    assert_eq!(get_json(&format!("{}/api/v1/traces/{}", s.collector.url, hex::encode([8u8; 16])), &s.read).0, 404);
    assert_eq!(common::metric(&s.collector.url, "tracex_batches_rejected_total{reason=\"batch_id_conflict\"}"), 1.0);
}

#[test]
fn spans_past_the_per_trace_cap_are_acknowledged_counted_and_not_stored() {
    let dir = temp_dir("cap");
    let cfg = dir.join("collector.toml");
    std::fs::write(&cfg, "max_spans_per_trace = 100\n").unwrap();
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let c = Collector::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    let spans: Vec<SpanData> = (1..=150u64).map(|i| span(9, i, None)).collect();
    let r = post_batch(&c.url, &ingest, seal_spans(&key, &spans[..120]));
    assert_eq!((r.0, r.1["spans"].as_u64(), r.1["over_trace_cap"].as_u64()), (200, Some(100), Some(20)), "{}", r.1);
    let r = post_batch(&c.url, &ingest, seal_spans(&key, &spans[120..]));
    assert_eq!((r.0, r.1["spans"].as_u64(), r.1["over_trace_cap"].as_u64()), (200, Some(0), Some(30)), "{}", r.1);
    let (status, body) = get_json(&format!("{}/api/v1/traces/{}", c.url, hex::encode([9u8; 16])), &read);
    assert_eq!((status, body["span_count"].as_u64()), (200, Some(100)));
    assert_eq!(common::metric(&c.url, "tracex_spans_over_trace_cap_total"), 50.0);
    assert_eq!(common::metric(&c.url, "tracex_spans_ingested_total"), 100.0);
}

#[test]
fn a_revoked_key_fails_on_the_next_request_and_keys_are_listed() {
    let s = setup("revoke");
    let dir = s.collector.data_dir.clone();
    let batch = || seal_spans(&s.key, &[span(10, 1, None)]);
    assert_eq!(post_batch(&s.collector.url, &s.ingest, batch()).0, 200);
    let (ok, out, err) = common::cli(&dir, &["apikey", "list", "--project", "acme"]);
    assert!(ok, "{err}");
    let ingest_id = s.ingest.split('_').nth(2).unwrap();
    let row = out.lines().find(|l| l.starts_with(ingest_id)).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("ingest") && row.trim_end().ends_with('-'), "{row}");
    assert!(!out.contains(s.ingest.split('_').nth(3).unwrap()), "secrets are never listed");
    // Revoked from another process (the CLI) while the collector runs: the very next request fails.
    let (ok, _, err) = common::cli(&dir, &["apikey", "revoke", &s.ingest]);
    assert!(ok, "{err}");
    let r = post_batch(&s.collector.url, &s.ingest, batch());
    assert_eq!((r.0, r.1["error"]["message"].as_str()), (401, Some("this API key was revoked")), "{}", r.1);
    let (ok, _, err) = common::cli(&dir, &["apikey", "revoke", ingest_id]);
    assert!(!ok && err.contains("already revoked"), "{err}");
    let (_, out, _) = common::cli(&dir, &["apikey", "list"]);
    assert!(!out.lines().find(|l| l.starts_with(ingest_id)).unwrap().trim_end().ends_with('-'), "{out}");
    // The read key is untouched.
    assert_eq!(get_json(&format!("{}/api/v1/traces", s.collector.url), &s.read).0, 200);
}

#[test]
fn each_key_is_rate_limited_with_retry_after() {
    let dir = temp_dir("ratelimit");
    let cfg = dir.join("collector.toml");
    std::fs::write(&cfg, "rate_limit_per_key_per_second = 0.5\nrate_limit_burst_per_key = 3\n").unwrap();
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let c = Collector::start_with(&dir, &["--config", cfg.to_str().unwrap()]);
    for i in 0..3u64 {
        assert_eq!(post_batch(&c.url, &ingest, seal_spans(&key, &[span(11, i + 1, None)])).0, 200);
    }
    let r = client()
        .post(format!("{}/v1/batches", c.url))
        .bearer_auth(&ingest)
        .body(seal_spans(&key, &[span(11, 99, None)]))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: J = r.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Nothing of the limited batch was stored; the read key has its own bucket.
    let (status, body) = get_json(&format!("{}/api/v1/traces/{}", c.url, hex::encode([11u8; 16])), &read);
    assert_eq!((status, body["span_count"].as_u64()), (200, Some(3)));
    assert_eq!(common::metric(&c.url, "tracex_batches_rejected_total{reason=\"rate_limited\"}"), 1.0);
}

/// Clients sending while the collector is killed (SIGKILL, then SIGTERM on the restarted one):
/// every batch that was acknowledged is stored, exactly once, after each restart.
#[test]
fn acknowledged_batches_survive_kill_9_and_sigterm_under_concurrent_ingest() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = temp_dir("crash");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let acked: Arc<Mutex<Vec<(u8, u64)>>> = Arc::default();
    let mut next_span = 1u64;
    for (round, signal) in [(0u8, "-KILL"), (1u8, "-TERM")] {
        let c = Collector::start(&dir);
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..4u8)
            .map(|client| {
                let (url, ingest, key, acked, stop) =
                    (c.url.clone(), ingest.clone(), key.clone(), acked.clone(), stop.clone());
                let trace = 20 + round * 4 + client;
                let first = next_span;
                std::thread::spawn(move || {
                    let mut id = first;
                    while !stop.load(Ordering::Relaxed) {
                        let spans: Vec<SpanData> = (id..id + 50).map(|i| span(trace, i, None)).collect();
                        let sent = client_post(&url, &ingest, seal_spans(&key, &spans));
                        if sent == Some(200) {
                            acked.lock().unwrap().extend((id..id + 50).map(|i| (trace, i)));
                        }
                        id += 50;
                    }
                })
            })
            .collect();
        next_span += 1_000_000;
        std::thread::sleep(std::time::Duration::from_millis(1500));
        Command::new("kill").args([signal, &c.child.id().to_string()]).status().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.join().unwrap();
        }
        drop(c);
    }
    let c = Collector::start(&dir);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 1000, "the clients got {} spans acknowledged", acked.len());
    let mut by_trace: std::collections::BTreeMap<u8, Vec<u64>> = std::collections::BTreeMap::new();
    for (t, i) in &acked {
        by_trace.entry(*t).or_default().push(*i);
    }
    for (t, mut ids) in by_trace {
        let (status, body) = get_json(&format!("{}/api/v1/traces/{}?limit=10000", c.url, hex::encode([t; 16])), &read);
        assert_eq!(status, 200, "trace {t}: {body}");
        let stored: Vec<u64> = body["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| u64::from_str_radix(s["span_id"].as_str().unwrap(), 16).unwrap())
            .collect();
        let distinct: std::collections::HashSet<_> = stored.iter().copied().collect();
        assert_eq!(distinct.len(), stored.len(), "trace {t}: a span stored twice");
        ids.sort_unstable();
        assert!(ids.iter().all(|i| distinct.contains(i)), "trace {t}: an acknowledged span is missing");
    }
}

/// POSTs a batch; the status, or None when the connection failed (the collector is gone).
fn client_post(url: &str, key: &str, body: Vec<u8>) -> Option<u16> {
    client()
        .post(format!("{url}/v1/batches"))
        .bearer_auth(key)
        .timeout(std::time::Duration::from_secs(5))
        .body(body)
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}
