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

/// Longest error message sent (bytes). Messages name limits and fields; one that quotes client input
/// is cut here, so an answer can never echo a payload back.
pub const MAX_MESSAGE_LEN: usize = 512;

/// `message` cut to [`MAX_MESSAGE_LEN`] bytes at a character boundary, marked with `…` when cut.
pub(crate) fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

impl ApiError {
    /// A 4xx/5xx with a code and message (cut to [`MAX_MESSAGE_LEN`]).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: bounded(message.into()), retry_after: None, close_connection: false }
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
            AuthError::Revoked => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "this API key was revoked"),
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

impl ApiError {
    /// `body` (of `content_type`) answered with this error's status and headers: for endpoints
    /// whose protocol fixes the error body (OTLP's `google.rpc.Status`).
    pub fn with_body(self, content_type: &'static str, body: Vec<u8>) -> Response {
        let resp = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        self.headers(resp)
    }

    fn headers(&self, mut resp: Response) -> Response {
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close_connection {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let resp = (self.status, axum::Json(body)).into_response();
        self.headers(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_at_a_character_boundary() {
        assert_eq!(ApiError::bad_request("c", "short").message, "short");
        let long = ApiError::bad_request("c", "é".repeat(10_000));
        assert!(long.message.len() <= MAX_MESSAGE_LEN, "{}", long.message.len());
        assert!(long.message.ends_with('…'));
        assert!(long.message.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
