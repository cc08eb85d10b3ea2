//! `/healthz` (the process answers), `/readyz` (store reachable, keys loaded), `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Liveness.
pub async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let store = app.store.clone();
    let ping = tokio::task::spawn_blocking(move || store.ping()).await;
    let keys = app.unsealer.key_count();
    let store_ok = matches!(ping, Ok(Ok(())));
    let writer_ok = app.writer.is_alive();
    let status = if store_ok && writer_ok && keys > 0 { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = serde_json::json!({ "store": if store_ok { "ok" } else { "unreachable" }, "keys": keys });
    if !writer_ok {
        body["writer"] = "stopped".into();
    }
    (status, axum::Json(body)).into_response()
}

/// Prometheus text.
pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}
