//! OTLP ingest (<https://opentelemetry.io/docs/specs/otlp/>) over two transports that only
//! translate: [`http`] (`POST /v1/traces`, protobuf or JSON) and [`grpc`]
//! (`TraceService/Export` on its own listener). Both authenticate with the same ingest key
//! (`Authorization: Bearer`, a header or gRPC metadata), then hand the request's bytes to
//! [`export`]: inflate, decode, redact and validate (on a blocking thread,
//! [`crate::services::otlp`]), hand the valid spans to the writer, and return only once they are
//! committed — a partial success (`rejected_spans`, `error_message`) for spans that failed
//! validation or were over their trace's span cap, or an [`ApiError`] that each transport maps to
//! its own status ([`grpc_code`] names the gRPC code for both).
//!
//! Unlike `POST /v1/batches`, these spans travel in clear: TLS in front of the collector is the
//! operator's business.

pub mod grpc;
pub mod http;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::http::StatusCode;

pub use self::http::post_traces;
use super::error::ApiError;
use super::ingest::{budget_units, reject};
use crate::AppState;
use crate::services::otlp::{self, Encoding, Format, Opened};
use crate::services::unseal::OpenError;
use crate::store::{ApiKeyRecord, CommitOutcome, NewBatch};

/// Which transport a request came by: recorded as the batch's `sdk_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP, `POST /v1/traces`.
    Http,
    /// OTLP/gRPC, `TraceService/Export`.
    Grpc,
}

impl Transport {
    /// The `sdk_name` recorded for the request in the batch records.
    pub fn sdk_name(self) -> &'static str {
        match self {
            Self::Http => "otlp-http",
            Self::Grpc => "otlp-grpc",
        }
    }
}

/// Spans not stored, and why (an OTLP partial success).
#[derive(Debug, PartialEq, Eq)]
pub struct Partial {
    /// Spans not stored.
    pub rejected: usize,
    /// Why (the first reason, and how many).
    pub message: String,
}

/// Stores one OTLP request of an authorized ingest `key`: `bytes` as the transport received them
/// (`encoding` says whether they still need inflating), in `format`. `Ok` once the valid spans are
/// committed (with a partial success if some were not stored); `Err` means nothing of the request
/// was stored.
pub async fn export(
    app: &Arc<AppState>,
    key: ApiKeyRecord,
    bytes: Bytes,
    format: Format,
    encoding: Encoding,
    transport: Transport,
) -> Result<Option<Partial>, ApiError> {
    let busy = || ApiError::unavailable("overloaded", "the collector is busy; retry later", 1);
    if app.draining.load(Ordering::Acquire) {
        // Accepted on a connection opened before shutdown began: the exporter retries elsewhere
        // (or here, once restarted), and nothing of it is stored.
        return Err(reject(app, ApiError::unavailable("shutting_down", "the collector is shutting down", 1)));
    }
    let refuse = |e: OpenError| reject(app, ApiError::new(e.status(), e.code(), e.message()));

    // As for sealed batches: bounded per request by the limits, across requests by the slots.
    let slot = app.decode_slots.acquire().await.map_err(|_| ApiError::internal("decode slots closed"))?;
    let open_app = app.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let c = &open_app.config;
        let r = otlp::open(
            &bytes,
            format,
            encoding,
            c.max_plaintext_bytes,
            &c.decode_limits(),
            &open_app.redactor,
            crate::now_unix_nano(),
        );
        open_app.metrics.decrypt_seconds.observe(started.elapsed());
        // Span bodies and audit digests are computed here, off the writer thread.
        r.map(|o| {
            let prepared = crate::store::PreparedSpans::of(&o.request, c.audit_log);
            (o, prepared)
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?;
    let (Opened { request, decoded_bytes, rejected, redacted, digest }, prepared) = opened.map_err(|e| {
        tracing::debug!(code = e.code(), project = %key.project, "OTLP request rejected");
        refuse(e)
    })?;
    drop(slot);
    let m = &app.metrics;
    m.otlp_values_redacted.fetch_add(u64::from(redacted), Ordering::Relaxed);
    m.otlp_spans_rejected.fetch_add(rejected.spans as u64, Ordering::Relaxed);
    let invalid = rejected.first.map(|why| Partial {
        rejected: rejected.spans,
        message: format!("{} spans failed validation and were not stored; the first: {why}", rejected.spans),
    });
    if request.span_count() == 0 {
        // Nothing valid to store (or an empty export): nothing to commit.
        return Ok(invalid);
    }

    let _held = app
        .decoded_budget
        .try_acquire_many(budget_units(decoded_bytes + prepared.bytes()))
        .map_err(|_| reject(app, busy()))?;
    let now = crate::now_unix_nano();
    let mut batch_id = [0u8; 16];
    batch_id.copy_from_slice(&digest[..16]);
    let batch = NewBatch {
        project: key.project,
        batch_id,
        key_id: [0; 32],
        instance_id: [0; 8],
        sequence: 0,
        sdk_name: transport.sdk_name().to_owned(),
        sdk_version: String::new(),
        created_at_unix_nano: now,
        received_at_unix_nano: now,
        envelope_sha256: digest,
        origin: crate::audit::leaf::Origin::Otlp,
        prepared: Some(prepared),
        request,
    };
    let rx = app.writer.submit(batch).map_err(|_| reject(app, busy()))?;
    match rx.await.map_err(|_| ApiError::internal("writer stopped"))? {
        Ok(CommitOutcome::Stored { over_cap: 0, .. } | CommitOutcome::Duplicate) => Ok(invalid),
        Ok(CommitOutcome::Stored { over_cap, .. }) => {
            let capped = format!(
                "{over_cap} spans were not stored: their trace holds the most spans a trace may \
                 (max_spans_per_trace)"
            );
            Ok(Some(match invalid {
                Some(p) => Partial { rejected: p.rejected + over_cap, message: format!("{}; {capped}", p.message) },
                None => Partial { rejected: over_cap, message: capped },
            }))
        }
        // Another request whose SHA-256 starts with the same 16 bytes: not in this universe, but
        // answered honestly.
        Ok(CommitOutcome::Conflict) => Err(reject(
            app,
            ApiError::new(StatusCode::CONFLICT, "batch_id_conflict", "the request's digest collides with another's"),
        )),
        Err(detail) => {
            tracing::error!(%detail, "store commit failed");
            Err(reject(
                app,
                ApiError::unavailable(
                    "store_unavailable",
                    "the store could not commit the spans; nothing was stored",
                    1,
                ),
            ))
        }
    }
}

/// The gRPC status code of an error (OTLP/gRPC's status, and `Status.code` in OTLP/HTTP error
/// bodies), as the OTLP specification lists them: pressure (rate limit, a full writer queue or
/// memory budget) is `RESOURCE_EXHAUSTED`, which exporters retry only with the `RetryInfo` the
/// gRPC answer carries; a request over a size limit is `RESOURCE_EXHAUSTED` too (gRPC's code for a
/// message over the limit), without `RetryInfo`, so it is not retried; an unavailable store or a
/// collector shutting down is `UNAVAILABLE` (retried).
pub fn grpc_code(e: &ApiError) -> tonic::Code {
    use tonic::Code;
    match (e.status.as_u16(), e.code) {
        (400 | 415, _) => Code::InvalidArgument,
        (401, _) => Code::Unauthenticated,
        (403, _) => Code::PermissionDenied,
        (408, _) => Code::DeadlineExceeded,
        (409, _) => Code::AlreadyExists,
        (413 | 429, _) | (503, "overloaded") => Code::ResourceExhausted,
        (503, _) => Code::Unavailable,
        _ => Code::Internal,
    }
}

// === protobuf by hand: the few small messages OTLP answers with ===

/// `ExportTraceServiceResponse` (empty without a partial success).
pub(crate) fn export_response(partial: Option<&Partial>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(p) = partial {
        // ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
        let mut inner = Vec::new();
        key(&mut inner, 1, 0);
        varint(&mut inner, p.rejected as u64);
        len_field(&mut inner, 2, super::error::bounded(p.message.clone()).as_bytes());
        // ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
        len_field(&mut out, 1, &inner);
    }
    out
}

/// `google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }`, with a
/// `google.rpc.RetryInfo` detail when `retry_after_secs` is set.
pub(crate) fn rpc_status(code: tonic::Code, message: &str, retry_after_secs: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, 0);
    varint(&mut out, u64::from(code as u32));
    len_field(&mut out, 2, message.as_bytes());
    if let Some(secs) = retry_after_secs {
        // google.protobuf.Duration { int64 seconds = 1; int32 nanos = 2; }
        let mut duration = Vec::new();
        key(&mut duration, 1, 0);
        varint(&mut duration, u64::from(secs));
        // google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }
        let mut retry_info = Vec::new();
        len_field(&mut retry_info, 1, &duration);
        // google.protobuf.Any { string type_url = 1; bytes value = 2; }
        let mut any = Vec::new();
        len_field(&mut any, 1, b"type.googleapis.com/google.rpc.RetryInfo");
        len_field(&mut any, 2, &retry_info);
        len_field(&mut out, 3, &any);
    }
    out
}

#[allow(clippy::cast_possible_truncation, reason = "the low seven bits, as protobuf varints take them")]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn len_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_follow_the_otlp_spec() {
        use tonic::Code;
        let e = |status: u16, code| ApiError::new(StatusCode::from_u16(status).unwrap(), code, "m");
        assert_eq!(grpc_code(&e(400, "malformed_payload")), Code::InvalidArgument);
        assert_eq!(grpc_code(&e(401, "unauthorized")), Code::Unauthenticated);
        assert_eq!(grpc_code(&e(403, "forbidden")), Code::PermissionDenied);
        assert_eq!(grpc_code(&e(413, "limit_exceeded")), Code::ResourceExhausted);
        assert_eq!(grpc_code(&e(429, "rate_limited")), Code::ResourceExhausted);
        assert_eq!(grpc_code(&e(503, "overloaded")), Code::ResourceExhausted);
        assert_eq!(grpc_code(&e(503, "shutting_down")), Code::Unavailable);
        assert_eq!(grpc_code(&e(503, "store_unavailable")), Code::Unavailable);
        assert_eq!(grpc_code(&e(500, "internal")), Code::Internal);
    }

    #[test]
    fn retry_info_is_a_status_detail() {
        // Code 8, the message, one Any holding RetryInfo { retry_delay: 3 s }.
        let b = rpc_status(tonic::Code::ResourceExhausted, "m", Some(3));
        let any_type = b"type.googleapis.com/google.rpc.RetryInfo";
        let mut want = vec![0x08, 8, 0x12, 1, b'm', 0x1a, (2 + any_type.len() + 2 + 4) as u8, 0x0a];
        want.push(any_type.len() as u8);
        want.extend_from_slice(any_type);
        want.extend_from_slice(&[0x12, 4, 0x0a, 2, 0x08, 3]);
        assert_eq!(b, want);
        assert_eq!(rpc_status(tonic::Code::Unauthenticated, "", None), [0x08, 16, 0x12, 0]);
    }

    #[test]
    fn partial_success_encoding() {
        assert!(export_response(None).is_empty());
        let b = export_response(Some(&Partial { rejected: 2, message: "x".into() }));
        assert_eq!(b, [0x0a, 5, 0x08, 2, 0x12, 1, b'x']);
    }
}
