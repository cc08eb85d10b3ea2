//! OTLP/gRPC (`TraceService/Export` on `--otlp-grpc-listen`) against the real collector binary
//! with a tonic client: spans stored with their attributes, events and status, gzip, partial
//! success for invalid spans, a retried export (over gRPC, then over HTTP) stored once, secrets
//! redacted at rest, and the status codes of the OTLP specification (UNAUTHENTICATED,
//! PERMISSION_DENIED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED with or without RetryInfo,
//! DEADLINE_EXCEEDED for a stalled message, UNIMPLEMENTED, UNAVAILABLE with RetryInfo when the
//! store cannot commit); SIGTERM stops both listeners cleanly. The store cases also run on PostgreSQL
//! (`otlp_grpc_on_postgres`, ignored without a server:
//! `scripts/with-postgres.sh cargo test -p tracex-collector --test otlp_grpc -- --ignored`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_truncation)]

mod common;

use bytes::{Buf as _, BufMut as _, Bytes};
use common::otlp::{AtRest, PgDb, SECRET, SqliteFiles, attr, pg_key, protobuf, span, trace_spans};
use common::{Collector, client, create_key, metric, temp_dir};
use tonic::Code;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tracex_core::{KeyValue, SpanData, SpanId};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC client holding one HTTP/2 connection to the collector's OTLP/gRPC listener.
struct Client {
    rt: tokio::runtime::Runtime,
    channel: tonic::transport::Channel,
}

impl Client {
    fn connect(grpc: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let channel = rt.block_on(tonic::transport::Endpoint::from_shared(grpc.to_owned()).unwrap().connect()).unwrap();
        Self { rt, channel }
    }

    /// Calls `path` with `body` (an `ExportTraceServiceRequest`); the response's bytes or the status.
    fn call(&self, path: &'static str, key: Option<&str>, gzip: bool, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        self.rt.block_on(async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            if gzip {
                grpc = grpc.send_compressed(CompressionEncoding::Gzip);
            }
            grpc.ready().await.unwrap();
            let mut req = tonic::Request::new(Bytes::from(body));
            if let Some(key) = key {
                req.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
            }
            let path = axum::http::uri::PathAndQuery::from_static(path);
            grpc.unary(req, path, Raw).await.map(|r| r.into_inner().to_vec())
        })
    }

    fn export(&self, key: Option<&str>, gzip: bool, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        self.call(EXPORT, key, gzip, body)
    }

    /// Opens an `Export` call whose message never comes.
    fn export_stalled(&self, key: &str) -> Result<Vec<u8>, tonic::Status> {
        self.rt.block_on(async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready().await.unwrap();
            let mut req = tonic::Request::new(Never);
            req.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
            let path = axum::http::uri::PathAndQuery::from_static(EXPORT);
            grpc.client_streaming(req, path, Raw).await.map(|r| r.into_inner().to_vec())
        })
    }
}

/// A request stream that never yields its message.
struct Never;

impl futures_core::Stream for Never {
    type Item = Bytes;
    fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>> {
        std::task::Poll::Pending
    }
}

/// Bytes in, bytes out: the test reads the protobuf answers by hand.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `(rejected_spans, error_message)` of an `ExportTraceServiceResponse`'s partial success.
fn partial_success(b: &[u8]) -> Option<(u64, String)> {
    if b.is_empty() {
        return None;
    }
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
    assert_eq!(b[0], 0x0a, "field 1, partial_success");
    let mut i = 1;
    varint(&mut i);
    let (mut rejected, mut message) = (0, String::new());
    while i < b.len() {
        match varint(&mut i) {
            0x08 => rejected = varint(&mut i),
            0x12 => {
                let n = varint(&mut i) as usize;
                message = String::from_utf8(b[i..i + n].to_vec()).unwrap();
                i += n;
            }
            k => panic!("unexpected key {k}"),
        }
    }
    Some((rejected, message))
}

fn has_retry_info(s: &tonic::Status) -> bool {
    s.details().windows(b"google.rpc.RetryInfo".len()).any(|w| w == b"google.rpc.RetryInfo")
}

/// The store cases, on whichever store `c` runs.
fn store_cases(c: &Collector, ingest: &str, read: &str, at_rest: &dyn AtRest) {
    let (url, grpc) = (&c.url, Client::connect(c.grpc.as_deref().unwrap()));

    // Plain: every span with its attributes, events and status; an empty response.
    let spans = vec![span(1, 1, "verify"), SpanData { parent_span_id: Some(SpanId([1; 8])), ..span(1, 2, "rpc") }];
    assert_eq!(grpc.export(Some(ingest), false, protobuf(spans)).unwrap(), b"");
    let stored = trace_spans(url, read, &"01".repeat(16));
    assert_eq!(stored.len(), 2);
    let root = &stored[0];
    assert_eq!((root["name"].as_str(), root["kind"].as_str()), (Some("verify"), Some("server")));
    assert_eq!(root["service_name"], "otlp-svc");
    assert_eq!(root["scope"]["name"], "otlp-test");
    assert_eq!(attr(root, "x402.network"), &serde_json::json!({"stringValue": "base"}));
    assert_eq!(attr(root, "attempt"), &serde_json::json!({"intValue": "2"}));
    assert_eq!(root["events"][0]["name"], "retry");
    assert_eq!(root["status"], serde_json::json!({"code": "error", "message": "nonce too low"}));
    assert_eq!(stored[1]["parent_span_id"], "01".repeat(8));

    // gzip, the secret redacted before it was stored.
    let mut secret = span(2, 1, "settle");
    secret.attributes.push(KeyValue::new("wallet.private_key", SECRET));
    secret.attributes.push(KeyValue::new("note", format!("signed with {SECRET}")));
    assert_eq!(grpc.export(Some(ingest), true, protobuf(vec![secret])).unwrap(), b"");
    let stored = trace_spans(url, read, &"02".repeat(16));
    assert_eq!(attr(&stored[0], "wallet.private_key")["stringValue"], "[REDACTED]");
    assert_eq!(attr(&stored[0], "note")["stringValue"], "signed with [REDACTED]");
    assert!(at_rest.contains("nonce too low"), "the probe sees stored span bodies");
    assert!(!at_rest.contains(&SECRET[2..]), "the secret is nowhere in the store");

    // Partial success: two invalid spans beside a valid one; only the valid one is stored.
    let before = at_rest.spans();
    let spans = vec![
        span(3, 1, "kept"),
        SpanData { span_id: SpanId::INVALID, ..span(3, 2, "no id") },
        SpanData { end_time_unix_nano: 1, ..span(4, 1, "ends before it starts") },
    ];
    let (rejected, message) = partial_success(&grpc.export(Some(ingest), true, protobuf(spans)).unwrap()).unwrap();
    assert_eq!(rejected, 2);
    assert!(message.contains("span id is missing"), "{message}");
    assert_eq!(at_rest.spans(), before + 1);
    assert!(trace_spans(url, read, &"04".repeat(16)).is_empty(), "nothing of the rejected spans");

    // A retried export is stored once: three times over gRPC (plain and gzip: the identity is the
    // inflated message's), then the same bytes over OTLP/HTTP.
    let body = protobuf(vec![span(5, 1, "retried"), span(5, 2, "retried")]);
    let (spans_before, dup_before) = (at_rest.spans(), metric(url, "tracex_batches_duplicate_total"));
    for gzip in [false, true, false] {
        assert_eq!(grpc.export(Some(ingest), gzip, body.clone()).unwrap(), b"");
    }
    let r = client()
        .post(format!("{url}/v1/traces"))
        .bearer_auth(ingest)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(at_rest.spans(), spans_before + 2);
    assert_eq!(metric(url, "tracex_batches_duplicate_total") - dup_before, 3.0);
    assert_eq!(trace_spans(url, read, &"05".repeat(16)).len(), 2);
}

#[test]
fn otlp_grpc_on_sqlite() {
    let dir = temp_dir("otlp-grpc-sqlite");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let c = Collector::start_with_grpc(&dir, &[]);
    store_cases(&c, &ingest, &read, &SqliteFiles(dir.clone()));
    // SIGTERM ends both listeners and the writer cleanly.
    assert!(c.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_grpc_status_codes() {
    let dir = temp_dir("otlp-grpc-errors");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let config = dir.join("small.toml");
    std::fs::write(&config, "max_body_bytes = 4096\nmax_plaintext_bytes = 65536\nbody_read_timeout_ms = 300\n")
        .unwrap();
    let c = Collector::start_with_grpc(&dir, &["--config", config.to_str().unwrap()]);
    let grpc = Client::connect(c.grpc.as_deref().unwrap());
    let ok = protobuf(vec![span(9, 1, "x")]);

    // Authentication: missing, unknown, and a read key.
    let e = grpc.export(None, false, ok.clone()).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().starts_with("unauthorized: "), "{}", e.message());
    let e = grpc.export(Some("trx_ingest_000000000000_0000"), false, ok.clone()).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = grpc.export(Some(&read), false, ok.clone()).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Undecodable: INVALID_ARGUMENT, the collector's code first.
    let e = grpc.export(Some(&ingest), false, vec![0x0a, 0xff, 0xff]).unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("malformed_payload: "), "{}", e.message());

    // Over the size limits (4 KiB on the wire, 64 KiB inflated): RESOURCE_EXHAUSTED without
    // RetryInfo, so an exporter does not send it again.
    let big = protobuf((0..200).map(|i| span(9, i + 1, "big")).collect());
    assert!(big.len() > 4096);
    let e = grpc.export(Some(&ingest), false, big).unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().starts_with("payload_too_large: "), "{}", e.message());
    assert!(!has_retry_info(&e));
    let mut bomb = vec![0x0a, 0x80, 0x80, 0x08];
    bomb.resize(200_000, 0);
    let e = grpc.export(Some(&ingest), true, bomb).unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(!has_retry_info(&e));

    // A message that does not arrive within body_read_timeout_ms: DEADLINE_EXCEEDED.
    let started = std::time::Instant::now();
    let e = grpc.export_stalled(&ingest).unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(e.message().starts_with("request_timeout: "), "{}", e.message());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Another method of another service: UNIMPLEMENTED.
    let e = grpc.call("/opentelemetry.proto.collector.logs.v1.LogsService/Export", Some(&ingest), false, vec![]);
    assert_eq!(e.unwrap_err().code(), Code::Unimplemented);

    // Nothing of any of that was stored; a good request still is, on the same connection.
    assert_eq!(metric(&c.url, "tracex_spans_ingested_total"), 0.0);
    assert_eq!(grpc.export(Some(&ingest), false, ok).unwrap(), b"");
    assert_eq!(metric(&c.url, "tracex_spans_ingested_total"), 1.0);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_grpc_rate_limit_is_resource_exhausted_with_retry_info() {
    let dir = temp_dir("otlp-grpc-429");
    let ingest = create_key(&dir, "acme", "ingest");
    let config = dir.join("slow.toml");
    std::fs::write(&config, "rate_limit_per_key_per_second = 0.01\nrate_limit_burst_per_key = 1\n").unwrap();
    let c = Collector::start_with_grpc(&dir, &["--config", config.to_str().unwrap()]);
    let grpc = Client::connect(c.grpc.as_deref().unwrap());
    let body = protobuf(vec![span(7, 1, "x")]);
    assert!(grpc.export(Some(&ingest), false, body.clone()).is_ok());
    let e = grpc.export(Some(&ingest), false, body).unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().starts_with("rate_limited: "), "{}", e.message());
    assert!(has_retry_info(&e), "RetryInfo makes it retryable");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The delay of the status's `RetryInfo`, in whole seconds.
fn retry_delay_secs(s: &tonic::Status) -> Option<u8> {
    // The detail ends with Any.value (2) = RetryInfo { retry_delay (1) = Duration { seconds (1) } }.
    match s.details() {
        [.., 0x12, 4, 0x0a, 2, 0x08, secs] => Some(*secs),
        _ => None,
    }
}

#[test]
fn otlp_grpc_pressure_and_store_failure_are_retryable() {
    let dir = temp_dir("otlp-grpc-503");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    // As over HTTP: the in-flight budget is one largest batch (48 KiB); a request decoding within
    // it whose prepared span bodies take it over is refused on its own, without concurrency.
    let config = dir.join("tight.toml");
    std::fs::write(&config, "max_inflight_decoded_bytes = 1\nmax_decoded_bytes = 49152\n").unwrap();
    let c = Collector::start_with_grpc(&dir, &["--config", config.to_str().unwrap()]);
    let grpc = Client::connect(c.grpc.as_deref().unwrap());
    let at_rest = SqliteFiles(dir.clone());
    // The key is known and cached before the store is locked below.
    assert_eq!(grpc.export(Some(&ingest), false, protobuf(vec![span(0x20, 1, "warm")])).unwrap(), b"");
    let stored = at_rest.spans();

    // Overloaded: RESOURCE_EXHAUSTED, which OTLP exporters retry only because RetryInfo says when.
    let mut heavy = span(0x21, 1, "heavy");
    // Words, not a key-like run of hex: redaction must leave the text whole.
    heavy.attributes.push(KeyValue::new("note", "settled by the facilitator ".repeat(1_200)));
    let e = grpc.export(Some(&ingest), true, protobuf(vec![heavy])).unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().starts_with("overloaded: "), "{}", e.message());
    assert!(has_retry_info(&e));
    assert_eq!(retry_delay_secs(&e), Some(1));
    assert_eq!(metric(&c.url, "tracex_batches_rejected_total{reason=\"overloaded\"}"), 1.0);
    assert_eq!(at_rest.spans(), stored, "nothing of an overloaded request is stored");
    assert!(trace_spans(&c.url, &read, &"21".repeat(16)).is_empty());

    // The store cannot commit: another connection holds SQLite's write lock until the answer has
    // come, so the commit fails after the store's busy timeout (10 s) however slow the machine.
    let body = protobuf(vec![span(0x23, 1, "refused")]);
    let lock = rusqlite::Connection::open(dir.join("tracex.db")).unwrap();
    lock.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = grpc.export(Some(&ingest), false, body.clone()).unwrap_err();
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().starts_with("store_unavailable: "), "{}", e.message());
    assert_eq!(retry_delay_secs(&e), Some(1));
    assert_eq!(at_rest.spans(), stored, "nothing of a failed commit is stored");
    assert!(trace_spans(&c.url, &read, &"23".repeat(16)).is_empty());
    // The exporter's retry, once the store is back, is stored, on the same connection.
    assert_eq!(grpc.export(Some(&ingest), false, body).unwrap(), b"");
    assert_eq!(trace_spans(&c.url, &read, &"23".repeat(16)).len(), 1);
    assert_eq!(at_rest.spans(), stored + 1);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
fn otlp_grpc_on_postgres() {
    let db = PgDb::new();
    let dir = temp_dir("otlp-grpc-postgres");
    let ingest = pg_key(&dir, &db, "ingest");
    let read = pg_key(&dir, &db, "read");
    let c = Collector::start_with_grpc(&dir, &["--database-url", &db.url]);
    assert!(db.contains("acme") && !db.contains("no such text anywhere"), "the at-rest probe sees the data");
    store_cases(&c, &ingest, &read, &db);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
