//! `POST /v1/batches`: authenticate, bound the body, open and validate (on a blocking thread), hand
//! to the writer, and answer only once the batch is durably committed. A 4xx/5xx means nothing of
//! the batch was stored; a retried batch (same batch id) is acknowledged again without storing twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use sha2::Digest;

use super::error::ApiError;
use crate::AppState;
use crate::audit::checkpoints;
use crate::audit::leaf::Leaf;
use crate::services::unseal::OpenError;
use crate::store::{CommitOutcome, KeyScope, NewBatch, PreparedSpans, StoreError};

/// The decoded-memory budget counts in KiB (a tokio semaphore holds at most `u32::MAX` permits
/// per acquisition).
pub const BUDGET_UNIT: usize = 1024;

/// `bytes` in budget units, rounded up.
pub(super) fn budget_units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX)
}

/// Counts a rejection by its code.
pub(super) fn reject(app: &AppState, e: ApiError) -> ApiError {
    app.metrics.reject(e.code);
    e
}

#[allow(clippy::redundant_closure_for_method_calls, reason = "the path form does not type-check on `&&dyn Error`")]
fn over_limit(e: &axum::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| e.source())
        .any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// Reads a request body within `max_body_bytes` (413 past it, before reading when the length is
/// declared) and `body_read_timeout_ms` (408).
pub(super) async fn read_body(app: &AppState, headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = app.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("batch bodies are limited to {limit} bytes"),
        )
        .closing()
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(reject(app, too_large()));
    }
    // A client that stops sending mid-body must not hold the connection (and its memory) for ever.
    let read_timeout = std::time::Duration::from_millis(app.config.body_read_timeout_ms);
    match tokio::time::timeout(read_timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        // Over the limit, or the body itself broke (a malformed chunk, a reset mid-body): only the
        // first is the client's size problem.
        Ok(Err(e)) if over_limit(&e) => Err(reject(app, too_large())),
        Ok(Err(_)) => {
            let e = ApiError::bad_request("body_read_failed", "the request body could not be read to its end");
            Err(reject(app, e.closing()))
        }
        Err(_) => {
            let e = ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the body did not arrive in time");
            Err(reject(app, e.closing()))
        }
    }
}

/// Accepts one sealed batch.
pub async fn post_batch(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key =
        super::access::authorize(&app, &headers, KeyScope::Ingest).await.map_err(|e| reject(&app, e.closing()))?;

    let bytes = read_body(&app, &headers, body).await?;
    if bytes.is_empty() {
        return Err(reject(&app, ApiError::bad_request("malformed_envelope", "empty body")));
    }

    // Opening inflates and decodes: bounded per request by the decode limits, and across requests
    // by the slots (a request waits here, holding only its body).
    let slot = app.decode_slots.acquire().await.map_err(|_| ApiError::internal("decode slots closed"))?;
    let open_app = app.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let r = open_app.unsealer.open(&bytes, crate::now_unix_nano());
        open_app.metrics.decrypt_seconds.observe(started.elapsed());
        // Span bodies and audit digests are computed here, off the writer thread.
        r.map(|opened| {
            let prepared = PreparedSpans::of(&opened.1, open_app.config.audit_log);
            (opened, <[u8; 32]>::from(sha2::Sha256::digest(&bytes)), prepared)
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?;
    let ((header, request, decoded_bytes), envelope_sha256, prepared) = opened.map_err(|e: OpenError| {
        tracing::debug!(code = e.code(), project = %key.project, "batch rejected");
        reject(&app, ApiError::new(e.status(), e.code(), e.message()))
    })?;
    drop(slot);
    // Decoded batches wait for the writer: their memory is budgeted until the commit answers, so
    // a queue of large batches answers 503 (nothing stored, retry) instead of exhausting memory.
    let _held = app
        .decoded_budget
        .try_acquire_many(budget_units(decoded_bytes + prepared.bytes()))
        .map_err(|_| reject(&app, ApiError::unavailable("overloaded", "the collector is busy; retry later", 1)))?;

    let batch_id = header.batch_id;
    let received_at_unix_nano = crate::now_unix_nano();
    let project = key.project.clone();
    let batch = NewBatch {
        project: key.project,
        batch_id,
        key_id: header.key_id.0,
        instance_id: header.instance_id,
        sequence: header.sequence,
        sdk_name: header.sdk_name,
        sdk_version: header.sdk_version,
        created_at_unix_nano: header.created_at_unix_nano,
        received_at_unix_nano,
        envelope_sha256,
        origin: crate::audit::leaf::Origin::Sealed,
        prepared: Some(prepared),
        request,
    };
    let rx = app
        .writer
        .submit(batch)
        .map_err(|_| reject(&app, ApiError::unavailable("overloaded", "the collector is busy; retry later", 1)))?;
    let outcome = rx.await.map_err(|_| ApiError::internal("writer stopped"))?;
    match outcome {
        Ok(CommitOutcome::Stored { spans, over_cap, leaf_index }) => {
            let mut ack = serde_json::json!({ "status": "stored", "batch_id": hex::encode(batch_id), "spans": spans });
            let receipt = leaf_index.map(|leaf_index| {
                let note =
                    checkpoints::receipt(&app.audit, leaf_index, batch_id, envelope_sha256, received_at_unix_nano);
                ack["leaf_index"] = leaf_index.into();
                ack["receipt"] = note.clone().into();
                note
            });
            if over_cap > 0 {
                // Stored and acknowledged, minus the spans past the per-trace cap (counted in
                // tracex_spans_over_trace_cap_total): retrying would not store them either.
                ack["over_trace_cap"] = over_cap.into();
            }
            Ok(with_receipt(axum::Json(ack).into_response(), receipt.as_deref()))
        }
        Ok(CommitOutcome::Duplicate) => {
            let mut ack = serde_json::json!({ "status": "duplicate", "batch_id": hex::encode(batch_id), "spans": 0 });
            // A retry whose first acknowledgement was lost: the receipt of the stored batch.
            let found = stored_receipt(&app, project, batch_id).await;
            if let Some((leaf_index, receipt)) = &found {
                ack["leaf_index"] = (*leaf_index).into();
                ack["receipt"] = receipt.clone().into();
            }
            Ok(with_receipt(axum::Json(ack).into_response(), found.as_ref().map(|(_, r)| r.as_str())))
        }
        Ok(CommitOutcome::Conflict) => Err(reject(
            &app,
            ApiError::new(
                StatusCode::CONFLICT,
                "batch_id_conflict",
                format!(
                    "batch id {} is already stored with other content; nothing of this batch was stored \
                     (an SDK must never reuse a batch id)",
                    hex::encode(batch_id)
                ),
            ),
        )),
        Err(detail) => {
            tracing::error!(%detail, "store commit failed");
            Err(reject(
                &app,
                ApiError::unavailable(
                    "store_unavailable",
                    "the store could not commit the batch; nothing was stored",
                    1,
                ),
            ))
        }
    }
}

/// The receipt of a batch stored earlier (`None` if it was stored before the audit log existed,
/// or the store cannot say now: the acknowledgement goes out without one).
async fn stored_receipt(app: &Arc<AppState>, project: String, batch_id: [u8; 16]) -> Option<(u64, String)> {
    let app = app.clone();
    let found = tokio::task::spawn_blocking(move || {
        let Some(index) = app.store.audit_leaf_of_batch(&project, &batch_id)? else { return Ok(None) };
        let Some(record) = app.store.audit_leaves(index, 1)?.pop().filter(|r| r.index == index) else {
            return Ok(None);
        };
        let leaf = Leaf::decode(&record.leaf).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok::<_, StoreError>(Some((
            index,
            checkpoints::receipt(&app.audit, index, leaf.batch_id, leaf.envelope_sha256, leaf.received_at_unix_nano),
        )))
    })
    .await;
    match found {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no receipt for a duplicate batch");
            None
        }
        Err(_) => None,
    }
}

/// The acknowledgement with its receipt also in a header (base64: a note has newlines), which SDKs
/// read without parsing JSON (`tracex_core::transport::RECEIPT_HEADER`).
fn with_receipt(mut response: Response, receipt: Option<&str>) -> Response {
    use base64::Engine as _;
    if let Some(note) = receipt {
        let value = base64::engine::general_purpose::STANDARD.encode(note);
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(tracex_core::transport::RECEIPT_HEADER, v);
        }
    }
    response
}
