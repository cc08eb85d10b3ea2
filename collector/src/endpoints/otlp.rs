//! `POST /v1/traces`: OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>), so a stock
//! OpenTelemetry SDK can export to tracex. Authenticate (an ingest key as `Authorization: Bearer`),
//! bound the body, inflate, decode, redact and validate (on a blocking thread,
//! [`crate::services::otlp`]), hand the valid spans to the writer, and answer only once they are
//! committed, in the request's content type: an `ExportTraceServiceResponse`, with a partial
//! success (`rejected_spans`, `error_message`) for spans that failed validation or were over their
//! trace's span cap. Errors are a `google.rpc.Status` whose message starts with the collector's
//! stable error code; 429/503 carry `Retry-After`.
//!
//! Unlike `POST /v1/batches`, these spans travel in clear: TLS in front of the collector is the
//! operator's business.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, bounded};
use super::ingest::{budget_units, read_body, reject};
use crate::AppState;
use crate::services::otlp::{self, Encoding, Format, Opened};
use crate::services::unseal::OpenError;
use crate::store::{CommitOutcome, KeyScope, NewBatch};

/// The `sdk_name` recorded for OTLP requests in the batch records.
pub const OTLP_SDK_NAME: &str = "otlp-http";

/// Accepts one OTLP/HTTP `ExportTraceServiceRequest`.
pub async fn post_traces(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let format = Format::from_content_type(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    // An answer to an unreadable content type goes out as JSON.
    let answer_as = format.as_ref().map_or(Format::Json, |f| *f);
    match export(&app, &headers, body, format).await {
        Ok(partial) => success(answer_as, partial.as_ref()),
        Err(e) => status_answer(answer_as, e),
    }
}

/// Spans not stored, and why (an OTLP partial success).
struct Partial {
    rejected: usize,
    message: String,
}

async fn export(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    format: Result<Format, OpenError>,
) -> Result<Option<Partial>, ApiError> {
    let key = super::access::authorize(app, headers, KeyScope::Ingest).await.map_err(|e| reject(app, e.closing()))?;
    let refuse = |e: OpenError| reject(app, ApiError::new(e.status(), e.code(), e.message()));
    let format = format.map_err(|e| refuse(e).closing())?;
    let encoding = Encoding::from_header(headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()))
        .map_err(|e| refuse(e).closing())?;
    let bytes = read_body(app, headers, body).await?;

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
        r
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?;
    let Opened { request, decoded_bytes, rejected, redacted, digest } = opened.map_err(|e| {
        tracing::debug!(code = e.code(), project = %key.project, "OTLP request rejected");
        refuse(e)
    })?;
    drop(slot);
    let m = &app.metrics;
    m.otlp_values_redacted.fetch_add(u64::from(redacted), std::sync::atomic::Ordering::Relaxed);
    m.otlp_spans_rejected.fetch_add(rejected.spans as u64, std::sync::atomic::Ordering::Relaxed);
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
        .try_acquire_many(budget_units(decoded_bytes))
        .map_err(|_| reject(app, ApiError::unavailable("overloaded", "the collector is busy; retry later", 1)))?;
    let now = crate::now_unix_nano();
    let mut batch_id = [0u8; 16];
    batch_id.copy_from_slice(&digest[..16]);
    let batch = NewBatch {
        project: key.project,
        batch_id,
        key_id: [0; 32],
        instance_id: [0; 8],
        sequence: 0,
        sdk_name: OTLP_SDK_NAME.to_owned(),
        sdk_version: String::new(),
        created_at_unix_nano: now,
        received_at_unix_nano: now,
        envelope_sha256: digest,
        request,
    };
    let rx = app
        .writer
        .submit(batch)
        .map_err(|_| reject(app, ApiError::unavailable("overloaded", "the collector is busy; retry later", 1)))?;
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

// === answers: ExportTraceServiceResponse and google.rpc.Status, in protobuf or JSON ===

fn success(format: Format, partial: Option<&Partial>) -> Response {
    let body = match format {
        Format::Json => {
            let v = match partial {
                // int64 is a decimal string in the protobuf JSON mapping.
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedSpans": p.rejected.to_string(),
                    "errorMessage": bounded(p.message.clone()),
                }}),
                None => serde_json::json!({}),
            };
            v.to_string().into_bytes()
        }
        Format::Protobuf => {
            let mut out = Vec::new();
            if let Some(p) = partial {
                // ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
                let mut inner = Vec::new();
                key(&mut inner, 1, 0);
                varint(&mut inner, p.rejected as u64);
                len_field(&mut inner, 2, bounded(p.message.clone()).as_bytes());
                // ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
                len_field(&mut out, 1, &inner);
            }
            out
        }
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error as OTLP asks: a `google.rpc.Status` in the request's content type, with the status,
/// `Retry-After` and `Connection` of the collector's error. The message is `<code>: <message>`.
fn status_answer(format: Format, e: ApiError) -> Response {
    let code = grpc_code(e.status);
    let message = bounded(format!("{}: {}", e.code, e.message));
    let body = match format {
        Format::Json => serde_json::json!({ "code": code, "message": message }).to_string().into_bytes(),
        Format::Protobuf => {
            // google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }
            let mut out = Vec::new();
            key(&mut out, 1, 0);
            varint(&mut out, u64::from(code));
            len_field(&mut out, 2, message.as_bytes());
            out
        }
    };
    e.with_body(format.content_type(), body)
}

/// The gRPC status code closest to an HTTP status (what `Status.code` holds).
fn grpc_code(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        408 => 4,             // DEADLINE_EXCEEDED
        409 => 6,             // ALREADY_EXISTS
        429 => 8,             // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    }
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
