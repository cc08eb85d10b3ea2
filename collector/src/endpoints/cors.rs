//! CORS for the SDK-facing endpoints (`POST /v1/batches`, `GET /v1/public-key`), so the WASM package
//! can send from a browser page. Off unless origins are configured (`cors_allowed_origins`,
//! `TRACEX_CORS_ORIGINS`, `--cors-origin`): a server-to-server deployment sends no CORS headers at
//! all. Credentials are never allowed (the API key travels in `Authorization`, not in cookies), so
//! `*` is an acceptable setting for a collector that only takes ingest keys from browsers.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an allowed origin
//! gets 204 with the allowed method and headers; from any other origin 403 without CORS headers (the
//! browser then refuses the request). Answers to allowed origins carry `Access-Control-Allow-Origin`
//! and expose `Retry-After`, which the SDK needs to honour 429/503.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Paths that answer cross-origin requests.
pub const CORS_PATHS: [&str; 2] = ["/v1/batches", "/v1/public-key"];
/// How long a browser may cache a preflight answer (seconds).
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// The configured origins, checked once at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// Parses the setting: each entry `*` or a `scheme://host[:port]` origin (no path).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = Self::default();
        for raw in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if raw == "*" {
                out.any = true;
                continue;
            }
            let origin = raw.trim_end_matches('/');
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace) => {
                    out.origins.push(origin.to_ascii_lowercase());
                }
                _ => return Err(format!("CORS origin {raw:?} is not \"*\" or an origin like https://app.example.com")),
            }
        }
        Ok(out)
    }

    /// True when no origin is allowed (CORS off).
    pub fn is_off(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// True when `origin` (an `Origin` header value) may call the SDK endpoints.
    pub fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

fn origin_of(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(header::ORIGIN).cloned()
}

/// The middleware: answers preflights and labels answers for allowed origins.
pub async fn cors(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let allowed = &app.cors;
    if allowed.is_off() || !CORS_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(origin) = origin_of(req.headers()) else { return next.run(req).await };
    let ok = origin.to_str().is_ok_and(|o| allowed.allows(o));
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !ok {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(PREFLIGHT_MAX_AGE_SECS));
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        return res;
    }
    let mut res = next.run(req).await;
    if ok {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        // `tracex-receipt`: a browser SDK checks the batch's receipt (docs/audit.md).
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after, tracex-receipt"));
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match_exactly() {
        let a = AllowedOrigins::parse(&["https://App.example.com/".into(), " http://127.0.0.1:8080 ".into()]).unwrap();
        assert!(a.allows("https://app.example.com"));
        assert!(a.allows("http://127.0.0.1:8080"));
        assert!(!a.allows("http://127.0.0.1:8081"));
        assert!(!a.allows("https://app.example.com.evil.test"));
        assert!(AllowedOrigins::parse(&["*".into()]).unwrap().allows("https://anything.test"));
        assert!(AllowedOrigins::parse(&[]).unwrap().is_off());
        assert!(AllowedOrigins::parse(&[String::new()]).unwrap().is_off());
        assert!(AllowedOrigins::parse(&["app.example.com".into()]).is_err());
        assert!(AllowedOrigins::parse(&["https://app.example.com/path".into()]).is_err());
    }
}
