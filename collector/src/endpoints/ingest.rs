//! `POST /v1/batches`: authenticate, bound the body, open and validate (on a blocking thread), hand
//! to the writer, and answer only once the batch is durably committed. A 4xx/5xx means nothing of
//! the batch was stored; a retried batch (same batch id) is acknowledged again without storing twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::AppState;
use crate::services::unseal::OpenError;
use crate::store::{CommitOutcome, KeyScope, NewBatch};

fn reject(app: &AppState, e: ApiError) -> ApiError {
    app.metrics.reject(e.code);
    e
}

/// Accepts one sealed batch.
pub async fn post_batch(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let auth_app = app.clone();
    let key = tokio::task::spawn_blocking(move || auth_app.auth.check(authorization.as_deref(), KeyScope::Ingest))
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .map_err(|e| reject(&app, ApiError::from_auth(e).closing()))?;

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
        return Err(reject(&app, too_large()));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| reject(&app, too_large()))?;
    if bytes.is_empty() {
        return Err(reject(&app, ApiError::bad_request("malformed_envelope", "empty body")));
    }

    let open_app = app.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let r = open_app.unsealer.open(&bytes, crate::now_unix_nano());
        open_app.metrics.decrypt_seconds.observe(started.elapsed());
        r
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?;
    let (header, request) = opened.map_err(|e: OpenError| {
        tracing::debug!(code = e.code(), project = %key.project, "batch rejected");
        reject(&app, ApiError::bad_request(e.code(), e.message()))
    })?;

    let batch_id = header.batch_id;
    let batch = NewBatch {
        project: key.project,
        batch_id,
        key_id: header.key_id.0,
        instance_id: header.instance_id,
        sequence: header.sequence,
        sdk_name: header.sdk_name,
        sdk_version: header.sdk_version,
        created_at_unix_nano: header.created_at_unix_nano,
        received_at_unix_nano: crate::now_unix_nano(),
        request,
    };
    let rx = app
        .writer
        .submit(batch)
        .map_err(|_| reject(&app, ApiError::unavailable("overloaded", "the collector is busy; retry later", 1)))?;
    let outcome = rx.await.map_err(|_| ApiError::internal("writer stopped"))?;
    match outcome {
        Ok(CommitOutcome::Stored { spans }) => Ok(axum::Json(serde_json::json!({
            "status": "stored", "batch_id": hex::encode(batch_id), "spans": spans,
        }))
        .into_response()),
        Ok(CommitOutcome::Duplicate) => Ok(axum::Json(serde_json::json!({
            "status": "duplicate", "batch_id": hex::encode(batch_id), "spans": 0,
        }))
        .into_response()),
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
