//! One OTLP/HTTP request (protobuf, gzip) and what its answer means for the spans in it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};

/// What became of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// 2xx: delivered; a partial success names spans the receiver rejected.
    Delivered {
        /// `partial_success.rejected_spans`.
        rejected: u64,
        /// `partial_success.error_message`.
        message: String,
    },
    /// 400: the receiver cannot take this data; sending it again cannot succeed.
    Reject {
        /// The status.
        status: u16,
        /// The receiver's answer (clipped).
        message: String,
    },
    /// 413: too large for the receiver.
    TooLarge,
    /// Anything else — no answer, a timeout, 429, 5xx, and also 401/403/404 (a receiver refusing
    /// credentials or at the wrong path is misconfigured, not handed bad data: the spans wait,
    /// within `max_lag_seconds`, for the operator to fix it).
    Retry {
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
}

/// Sends requests to one receiver.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    endpoint: String,
    headers: HeaderMap,
}

impl Sender {
    /// A sender to `endpoint` with `headers` on every request.
    pub fn new(endpoint: &str, headers: &BTreeMap<String, String>, timeout: Duration) -> Result<Self, String> {
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        map.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        map.insert(USER_AGENT, HeaderValue::from_static(concat!("tracex-collector/", env!("CARGO_PKG_VERSION"))));
        for (name, value) in headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("export header name {name:?} is not a valid HTTP header name"))?;
            let mut v = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("export header {name:?} has a value that is not valid in HTTP"))?;
            v.set_sensitive(true);
            map.insert(n, v);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("building the export's HTTP client: {e}"))?;
        Ok(Self { client, endpoint: endpoint.to_owned(), headers: map })
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One attempt.
    pub async fn send(&self, body: &[u8]) -> Sent {
        let response = self.client.post(&self.endpoint).headers(self.headers.clone()).body(body.to_vec()).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return Sent::Retry { after: None, reason: tracex_core::transport::error_chain(&e) },
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| tracex_core::transport::parse_retry_after(v, std::time::SystemTime::now()));
        let is_protobuf = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-protobuf"));
        let answer = response.bytes().await.unwrap_or_default();
        classify(status, retry_after, is_protobuf, &answer)
    }
}

/// What an answer means (see [`Sent`]).
pub fn classify(status: u16, retry_after: Option<Duration>, is_protobuf: bool, answer: &[u8]) -> Sent {
    match status {
        200..=299 => {
            let (rejected, message) = if is_protobuf {
                super::response::partial_success(answer).unwrap_or_default()
            } else {
                (0, String::new())
            };
            Sent::Delivered { rejected, message }
        }
        400 => Sent::Reject { status, message: clip(answer) },
        413 => Sent::TooLarge,
        _ => Sent::Retry { after: retry_after, reason: format!("HTTP {status}: {}", clip(answer)) },
    }
}

fn clip(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None, false, b""), Sent::Delivered { rejected: 0, message: String::new() });
        assert!(
            matches!(classify(400, None, false, b"bad span"), Sent::Reject { status: 400, message } if message == "bad span")
        );
        assert_eq!(classify(413, None, false, b""), Sent::TooLarge);
        for s in [401, 403, 404, 408, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(s, None, false, b""), Sent::Retry { .. }), "{s}");
        }
        let after = Some(Duration::from_secs(3));
        assert!(matches!(classify(503, after, false, b""), Sent::Retry { after: Some(d), .. } if d.as_secs() == 3));
    }

    #[test]
    fn partial_success_is_read_from_a_protobuf_answer() {
        let p = crate::endpoints::otlp::Partial { rejected: 3, message: "span 2: no name".into() };
        let answer = crate::endpoints::otlp::export_response(Some(&p));
        assert_eq!(
            classify(200, None, true, &answer),
            Sent::Delivered { rejected: 3, message: "span 2: no name".into() }
        );
        // A JSON answer (a receiver that ignores the request's content type) is not parsed.
        assert_eq!(classify(200, None, false, &answer), Sent::Delivered { rejected: 0, message: String::new() });
    }

    #[test]
    fn bad_headers_are_named() {
        let mut h = BTreeMap::new();
        h.insert("x-ok".to_owned(), "line\nbreak".to_owned());
        let e = Sender::new("http://127.0.0.1:1/v1/traces", &h, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("x-ok"), "{e}");
    }
}
