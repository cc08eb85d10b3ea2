//! The collector's HTTP error: a status, a stable machine-readable code and a message; 5xx hide
//! internals (they are logged instead); 429/503 carry `Retry-After`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `decrypt_failed`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
    /// Answer with `Connection: close`: the request body was not read, so the connection cannot be
    /// reused (without it a pooling client may send its next request into a closing socket).
    pub close_connection: bool,
}

impl ApiError {
    /// A 4xx/5xx with a code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, close_connection: false }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 503 + `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    /// The same error, answered with `Connection: close` (for rejections before the body is read).
    #[must_use]
    pub fn closing(self) -> Self {
        Self { close_connection: true, ..self }
    }

    /// 500 without details (they go to the log).
    pub fn internal(detail: &str) -> Self {
        tracing::error!(detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    /// Maps an authentication failure.
    pub fn from_auth(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send `Authorization: Bearer trx_…`",
            ),
            AuthError::Invalid => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key"),
            AuthError::WrongScope(s) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", format!("this is a {} key", s.as_str()))
            }
            AuthError::Store(detail) => {
                tracing::error!(%detail, "API key lookup failed");
                Self::unavailable("store_unavailable", "the key store is unavailable", 1)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close_connection {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
