//! `GET /v1/public-key`: the key SDKs seal to. PEM for `Accept: application/x-pem-file`, JSON
//! otherwise. SDKs pin the fingerprint (`key_id`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The current public key.
pub async fn public_key(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let key = app.unsealer.current_key();
    let wants_pem =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/x-pem-file"));
    if wants_pem {
        ([(header::CONTENT_TYPE, "application/x-pem-file")], key.public_pem.clone()).into_response()
    } else {
        axum::Json(serde_json::json!({
            "key_id": key.key_id.to_hex(),
            "public_key_pem": key.public_pem,
            "algorithm": "RSA-OAEP-SHA256",
            "bits": key.bits,
            "envelope_version": tracex_core::seal::VERSION,
        }))
        .into_response()
    }
}
