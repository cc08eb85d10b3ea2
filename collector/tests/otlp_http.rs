//! OTLP/HTTP (`POST /v1/traces`) against the real collector binary over real HTTP: protobuf and
//! JSON (hex ids), gzip, answers in the request's content type, partial success for invalid spans
//! (nothing of them stored), 400/401/403/413/415/429, 503 + `Retry-After` when the decoded-memory
//! budget is full or the store cannot commit (nothing stored, stored when retried), a retried
//! export stored once, and secrets redacted at rest. The store cases also run on PostgreSQL (`postgres_*`, ignored without a
//! server: `scripts/with-postgres.sh cargo test -p tracex-collector --test otlp_http -- --ignored`).
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

use std::io::Write as _;

use common::otlp::{AtRest, PgDb, SECRET, SqliteFiles, attr, now, pg_key, protobuf, span, trace_spans};
use common::{Collector, client, create_key, get_json, metric, temp_dir};
use tracex_core::{SpanData, SpanId};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `message` of a protobuf `google.rpc.Status`, or the `error_message` of a protobuf
    /// `ExportTraceServiceResponse`'s partial success with its `rejected_spans`.
    fn protobuf_fields(&self) -> (Option<u64>, String) {
        let b = &self.body;
        let mut i = 0;
        let (mut num, mut text) = (None, String::new());
        let varint = |i: &mut usize| {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[*i];
                *i += 1;
                v |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        };
        // A response wraps the partial success in field 1; a Status starts with field 1 as a varint.
        if b.first() == Some(&0x0a) {
            i = 1;
            varint(&mut i);
        }
        while i < b.len() {
            let key = varint(&mut i);
            match key & 7 {
                0 => num = Some(varint(&mut i)),
                2 => {
                    let n = varint(&mut i) as usize;
                    text = String::from_utf8(b[i..i + n].to_vec()).unwrap();
                    i += n;
                }
                wt => panic!("wire type {wt}"),
            }
        }
        (num, text)
    }
}

fn post(base: &str, key: Option<&str>, content_type: &str, gzip: bool, body: Vec<u8>) -> Answer {
    let mut req = client().post(format!("{base}/v1/traces")).header("content-type", content_type);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        gz(&body)
    } else {
        body
    };
    let r = req.body(body).send().unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let (status, content_type, retry_after) =
        (r.status().as_u16(), header("content-type").unwrap(), header("retry-after"));
    Answer { status, content_type, retry_after, body: r.bytes().unwrap().to_vec() }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An OTLP/JSON request holding one span of trace `trace` with the ids in hex (upper case, as the
/// spec allows) and the times as strings.
fn json_request(trace: &str, span: &str, name: &str, secret: &str) -> Vec<u8> {
    let start = now() - 2_000_000_000;
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "otlp-json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "json-test"}, "spans": [{
            "traceId": trace, "spanId": span, "name": name, "kind": 3,
            "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 5_000_000).to_string(),
            "attributes": [
                {"key": "wallet.private_key", "value": {"stringValue": secret}},
                {"key": "note", "value": {"stringValue": format!("signed with {secret}")}},
                {"key": "amount", "value": {"intValue": "10000"}},
                {"key": "ok", "value": {"boolValue": true}}
            ],
            "events": [{"timeUnixNano": (start + 10).to_string(), "name": "sent",
                        "attributes": [{"key": "rpc", "value": {"stringValue": "base"}}]}],
            "status": {"code": 1}
        }]}]
    }]})
    .to_string()
    .into_bytes()
}

/// The store cases, on whichever store `collector` runs.
fn store_cases(c: &Collector, ingest: &str, read: &str, at_rest: &dyn AtRest) {
    let url = &c.url;

    // Protobuf, plain: every span with its attributes, events and status; the answer is an empty
    // ExportTraceServiceResponse in protobuf.
    let spans = vec![span(1, 1, "verify"), SpanData { parent_span_id: Some(SpanId([1; 8])), ..span(1, 2, "rpc") }];
    let a = post(url, Some(ingest), PROTOBUF, false, protobuf(spans));
    assert_eq!((a.status, a.content_type.as_str(), a.body.len()), (200, PROTOBUF, 0));
    let stored = trace_spans(url, read, &"01".repeat(16));
    assert_eq!(stored.len(), 2);
    let root = &stored[0];
    assert_eq!((root["name"].as_str(), root["kind"].as_str()), (Some("verify"), Some("server")));
    assert_eq!(root["service_name"], "otlp-svc");
    assert_eq!(root["scope"]["name"], "otlp-test");
    assert_eq!(attr(root, "x402.network"), &serde_json::json!({"stringValue": "base"}));
    assert_eq!(attr(root, "attempt"), &serde_json::json!({"intValue": "2"}));
    assert_eq!(root["events"][0]["name"], "retry");
    assert_eq!(root["events"][0]["attributes"][0]["value"]["intValue"], "50");
    assert_eq!(root["status"], serde_json::json!({"code": "error", "message": "nonce too low"}));
    assert_eq!(stored[1]["parent_span_id"], "01".repeat(8));

    // JSON, gzip, hex ids in upper case, the secret redacted before it was stored: the answer is
    // JSON.
    let trace = "5B8EFFF798038103D269B633813FC60C";
    let a = post(url, Some(ingest), JSON, true, json_request(trace, "EEE19B7EC3C1B174", "settle", SECRET));
    assert_eq!((a.status, a.content_type.as_str()), (200, JSON));
    assert_eq!(a.json(), serde_json::json!({}));
    let stored = trace_spans(url, read, &trace.to_lowercase());
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!((s["span_id"].as_str(), s["kind"].as_str()), (Some("eee19b7ec3c1b174"), Some("client")));
    assert_eq!(attr(s, "wallet.private_key")["stringValue"], "[REDACTED]");
    assert_eq!(attr(s, "note")["stringValue"], "signed with [REDACTED]");
    assert_eq!(attr(s, "amount"), &serde_json::json!({"intValue": "10000"}));
    assert_eq!(attr(s, "ok"), &serde_json::json!({"boolValue": true}));
    assert_eq!(s["events"][0]["name"], "sent");
    assert_eq!(s["status"]["code"], "ok");
    assert!(at_rest.contains("nonce too low"), "the probe sees stored span bodies");
    assert!(!at_rest.contains(&SECRET[2..]), "the secret is nowhere in the store");
    assert!(metric(url, "tracex_otlp_values_redacted_total") >= 2.0);

    // Partial success: two invalid spans beside a valid one; only the valid one is stored, the
    // answer says how many were rejected and why (protobuf here).
    let before = at_rest.spans();
    let spans = vec![
        span(3, 1, "kept"),
        SpanData { span_id: SpanId::INVALID, ..span(3, 2, "no id") },
        SpanData { end_time_unix_nano: 1, ..span(4, 1, "ends before it starts") },
    ];
    let a = post(url, Some(ingest), PROTOBUF, true, protobuf(spans));
    assert_eq!((a.status, a.content_type.as_str()), (200, PROTOBUF));
    let (rejected, message) = a.protobuf_fields();
    assert_eq!(rejected, Some(2));
    assert!(message.contains("span id is missing"), "{message}");
    assert_eq!(at_rest.spans(), before + 1);
    assert_eq!(trace_spans(url, read, &"03".repeat(16)).len(), 1);
    assert!(trace_spans(url, read, &"04".repeat(16)).is_empty(), "nothing of the rejected spans");
    // The same in JSON: rejectedSpans is an int64, a decimal string.
    let a = post(url, Some(ingest), JSON, false, json_request(&"0a".repeat(16), "", "no span id", "x"));
    assert_eq!(a.status, 200);
    let j = a.json();
    assert_eq!(j["partialSuccess"]["rejectedSpans"], "1", "{j}");
    assert!(j["partialSuccess"]["errorMessage"].as_str().unwrap().contains("span id"), "{j}");
    assert_eq!(at_rest.spans(), before + 1);

    // A retried export (same bytes) is stored once; so is the same span batched differently
    // (another format, another neighbour): identity is (project, trace id, span id).
    let body = protobuf(vec![span(5, 1, "retried"), span(5, 2, "retried")]);
    let spans_before = at_rest.spans();
    let dup_before = metric(url, "tracex_batches_duplicate_total");
    for _ in 0..3 {
        let a = post(url, Some(ingest), PROTOBUF, false, body.clone());
        assert_eq!((a.status, a.body.len()), (200, 0));
    }
    let again = protobuf(vec![span(5, 2, "retried"), span(5, 3, "retried")]);
    assert_eq!(post(url, Some(ingest), PROTOBUF, true, again).status, 200);
    assert_eq!(at_rest.spans(), spans_before + 3, "spans 1, 2 and 3 once each");
    assert_eq!(trace_spans(url, read, &"05".repeat(16)).len(), 3);
    assert_eq!(metric(url, "tracex_batches_duplicate_total") - dup_before, 2.0);
    let (status, list) = get_json(&format!("{url}/api/v1/traces?name=retried"), read);
    assert_eq!(status, 200);
    assert_eq!(list["traces"][0]["span_count"], 3);
    // Statistics count each span once.
    let (status, stats) = get_json(&format!("{url}/api/v1/stats?name=retried"), read);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["groups"][0]["total"]["count"], 3, "{stats}");
}

#[test]
fn otlp_http_on_sqlite() {
    let dir = temp_dir("otlp-sqlite");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let c = Collector::start(&dir);
    store_cases(&c, &ingest, &read, &SqliteFiles(dir.clone()));
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_http_errors_answer_in_the_request_content_type() {
    let dir = temp_dir("otlp-errors");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let config = dir.join("small.toml");
    std::fs::write(&config, "max_body_bytes = 4096\nmax_plaintext_bytes = 65536\n").unwrap();
    let c = Collector::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let url = &c.url;
    let ok = protobuf(vec![span(9, 1, "x")]);

    // Authentication: missing, unknown, and a read key.
    let a = post(url, None, PROTOBUF, false, ok.clone());
    assert_eq!((a.status, a.content_type.as_str()), (401, PROTOBUF));
    let (code, message) = a.protobuf_fields();
    assert_eq!(code, Some(16), "UNAUTHENTICATED");
    assert!(message.starts_with("unauthorized: "), "{message}");
    let a = post(url, Some("trx_ingest_000000000000_0000"), JSON, false, b"{}".to_vec());
    assert_eq!(a.status, 401);
    assert!(a.json()["message"].as_str().unwrap().starts_with("unauthorized"));
    let a = post(url, Some(&read), JSON, false, b"{}".to_vec());
    assert_eq!((a.status, a.json()["code"].as_i64()), (403, Some(7)));

    // Undecodable bodies: 400 malformed_payload, in the request's content type.
    let a = post(url, Some(&ingest), PROTOBUF, false, vec![0x0a, 0xff, 0xff]);
    assert_eq!((a.status, a.content_type.as_str()), (400, PROTOBUF));
    assert!(a.protobuf_fields().1.starts_with("malformed_payload: "), "{}", a.protobuf_fields().1);
    let a = post(url, Some(&ingest), JSON, false, b"{\"resourceSpans\": [".to_vec());
    assert_eq!((a.status, a.content_type.as_str()), (400, JSON));
    assert!(a.json()["message"].as_str().unwrap().starts_with("malformed_payload: "));
    let a = post(url, Some(&ingest), JSON, false, json_request("xyz", "EEE19B7EC3C1B174", "bad id", "x"));
    assert_eq!(a.status, 400);
    assert!(a.json()["message"].as_str().unwrap().contains("Span.traceId"), "{}", a.json());
    // A body that says gzip and is not.
    let a = client()
        .post(format!("{url}/v1/traces"))
        .bearer_auth(&ingest)
        .header("content-type", JSON)
        .header("content-encoding", "gzip")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(a.status().as_u16(), 400);
    assert!(a.text().unwrap().contains("malformed_compression"));
    // Unsupported content type or encoding: 415.
    let a = post(url, Some(&ingest), "text/plain", false, b"hi".to_vec());
    assert_eq!((a.status, a.content_type.as_str()), (415, JSON));
    let a = client()
        .post(format!("{url}/v1/traces"))
        .bearer_auth(&ingest)
        .header("content-type", PROTOBUF)
        .header("content-encoding", "br")
        .body(ok.clone())
        .send()
        .unwrap();
    assert_eq!(a.status().as_u16(), 415);

    // Over the body limit (4 KiB here), and a small gzip body inflating past the plaintext limit
    // (64 KiB): 413.
    let big = protobuf((0..200).map(|i| span(9, i + 1, "big")).collect());
    assert!(big.len() > 4096);
    let a = post(url, Some(&ingest), PROTOBUF, false, big);
    assert_eq!(a.status, 413);
    assert!(a.protobuf_fields().1.starts_with("payload_too_large: "));
    let bomb = vec![b' '; 1 << 20];
    let a = post(url, Some(&ingest), JSON, true, bomb);
    assert_eq!(a.status, 413);
    assert!(a.json()["message"].as_str().unwrap().starts_with("limit_exceeded: "), "{}", a.json());

    // Nothing of any of that was stored; a good request still is.
    assert_eq!(metric(url, "tracex_spans_ingested_total"), 0.0);
    assert_eq!(post(url, Some(&ingest), PROTOBUF, false, ok).status, 200);
    assert_eq!(metric(url, "tracex_spans_ingested_total"), 1.0);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_http_rate_limit_answers_429_with_retry_after() {
    let dir = temp_dir("otlp-429");
    let ingest = create_key(&dir, "acme", "ingest");
    let config = dir.join("slow.toml");
    std::fs::write(&config, "rate_limit_per_key_per_second = 0.01\nrate_limit_burst_per_key = 1\n").unwrap();
    let c = Collector::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let body = protobuf(vec![span(7, 1, "x")]);
    assert_eq!(post(&c.url, Some(&ingest), PROTOBUF, false, body.clone()).status, 200);
    let a = post(&c.url, Some(&ingest), PROTOBUF, false, body);
    assert_eq!(a.status, 429);
    assert!(a.retry_after.as_deref().is_some_and(|s| s.parse::<u32>().unwrap() >= 1), "Retry-After");
    assert_eq!(a.protobuf_fields().0, Some(8), "RESOURCE_EXHAUSTED");
    assert!(a.protobuf_fields().1.starts_with("rate_limited: "));
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A span carrying `len` bytes of plain text: decoded (the string) plus prepared for the store (the
/// string again, in the span's body) it needs about twice `len` of the decoded-memory budget.
fn heavy_span(trace: u8, len: usize) -> SpanData {
    let mut s = span(trace, 1, "heavy");
    // Words, not a key-like run of hex: redaction must leave it whole.
    let note: String = "settled by the facilitator ".chars().cycle().take(len).collect();
    s.attributes.push(tracex_core::KeyValue::new("note", note));
    s
}

/// JSON of the same span, as an OTLP/JSON exporter would send it.
fn heavy_json(trace: &str, len: usize) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&json_request(trace, "EEE19B7EC3C1B174", "heavy", "x")).unwrap();
    let note: String = "settled by the facilitator ".chars().cycle().take(len).collect();
    v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"key": "note", "value": {"stringValue": note}}));
    v.to_string().into_bytes()
}

/// `Retry-After` present, in delay-seconds, and in a range an exporter can act on.
fn assert_sane_retry_after(a: &Answer) {
    let secs: u32 = a.retry_after.as_deref().expect("Retry-After").parse().expect("Retry-After in seconds");
    assert!((1..=60).contains(&secs), "Retry-After: {secs}");
}

#[test]
fn otlp_http_pressure_and_store_failure_answer_503_with_retry_after() {
    let dir = temp_dir("otlp-503");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    // The in-flight budget is at least one largest batch (max_decoded_bytes, 48 KiB here): a
    // request that decodes within that but needs more once its span bodies are prepared is over
    // the budget on its own, with no concurrency or timing involved.
    let config = dir.join("tight.toml");
    std::fs::write(&config, "max_inflight_decoded_bytes = 1\nmax_decoded_bytes = 49152\n").unwrap();
    let c = Collector::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let url = &c.url;
    let at_rest = SqliteFiles(dir.clone());
    // A small request goes through first: the key is known and cached before the store is locked.
    assert_eq!(post(url, Some(&ingest), PROTOBUF, false, protobuf(vec![span(0x20, 1, "warm")])).status, 200);
    let stored = at_rest.spans();

    // Overloaded, protobuf: 503, Retry-After, a google.rpc.Status in protobuf (RESOURCE_EXHAUSTED,
    // the code the same request gets over gRPC).
    let a = post(url, Some(&ingest), PROTOBUF, false, protobuf(vec![heavy_span(0x21, 30_000)]));
    assert_eq!((a.status, a.content_type.as_str()), (503, PROTOBUF));
    assert_sane_retry_after(&a);
    let (code, message) = a.protobuf_fields();
    assert_eq!(code, Some(8), "RESOURCE_EXHAUSTED");
    assert!(message.starts_with("overloaded: "), "{message}");
    // The same over JSON (gzip: the budget counts what the body inflates to).
    let trace = "21".repeat(15) + "22";
    let a = post(url, Some(&ingest), JSON, true, heavy_json(&trace, 30_000));
    assert_eq!((a.status, a.content_type.as_str()), (503, JSON));
    assert_sane_retry_after(&a);
    assert_eq!(a.json()["code"], 8, "{}", a.json());
    assert!(a.json()["message"].as_str().unwrap().starts_with("overloaded: "), "{}", a.json());
    assert_eq!(metric(url, "tracex_batches_rejected_total{reason=\"overloaded\"}"), 2.0);
    assert_eq!(at_rest.spans(), stored, "nothing of an overloaded request is stored");
    assert!(trace_spans(url, &read, &"21".repeat(16)).is_empty());
    assert!(trace_spans(url, &read, &trace).is_empty());

    // The store cannot commit: another connection holds SQLite's write lock until the answer has
    // come, so the commit fails after the store's busy timeout (10 s) however slow the machine.
    let body = json_request(&"23".repeat(16), "EEE19B7EC3C1B174", "refused", "x");
    let lock = rusqlite::Connection::open(dir.join("tracex.db")).unwrap();
    lock.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let a = post(url, Some(&ingest), JSON, false, body.clone());
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    assert_eq!((a.status, a.content_type.as_str()), (503, JSON));
    assert_sane_retry_after(&a);
    assert_eq!(a.json()["code"], 14, "UNAVAILABLE: {}", a.json());
    assert!(a.json()["message"].as_str().unwrap().starts_with("store_unavailable: "), "{}", a.json());
    assert_eq!(at_rest.spans(), stored, "nothing of a failed commit is stored");
    assert!(trace_spans(url, &read, &"23".repeat(16)).is_empty());
    // What the exporter does next, the same bytes once the store is back, is stored.
    assert_eq!(post(url, Some(&ingest), JSON, false, body).status, 200);
    assert_eq!(trace_spans(url, &read, &"23".repeat(16)).len(), 1);
    assert_eq!(at_rest.spans(), stored + 1);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

// === PostgreSQL ===

#[test]
#[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
fn otlp_http_on_postgres() {
    let db = PgDb::new();
    let dir = temp_dir("otlp-postgres");
    let ingest = pg_key(&dir, &db, "ingest");
    let read = pg_key(&dir, &db, "read");
    let c = Collector::start_with(&dir, &["--database-url", &db.url]);
    assert!(db.contains("acme") && !db.contains("no such text anywhere"), "the at-rest probe sees the data");
    store_cases(&c, &ingest, &read, &db);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
