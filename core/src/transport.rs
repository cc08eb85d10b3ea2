//! Getting sealed bytes to the collector: the [`Transport`] trait, the retry policy (exponential
//! backoff with full jitter, honouring `Retry-After`) and, with feature `http`, the reqwest + rustls
//! implementation.

use std::time::Duration;

/// The result of one send attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The collector acknowledged the batch (it is durably stored).
    Delivered,
    /// A transient failure: connection refused, timeout, 408/429/5xx.
    Retry {
        /// The server's `Retry-After`, if it sent one.
        after: Option<Duration>,
        /// What went wrong, for diagnostics.
        reason: String,
    },
    /// A permanent failure (other 4xx): retrying the same bytes cannot succeed.
    Reject {
        /// HTTP status.
        status: u16,
        /// The collector's error body (truncated).
        message: String,
    },
}

/// Sends one sealed batch. Implementations block; they run on the sender thread.
pub trait Transport: Send + 'static {
    /// One attempt, no retries (the sender owns the retry loop).
    fn send(&mut self, body: &[u8]) -> SendOutcome;

    /// The receipt (a signed note, see `audit::Receipt`) of the last delivered batch, taken: the
    /// collector sends it base64-encoded in the [`RECEIPT_HEADER`] of its acknowledgement.
    fn take_receipt(&mut self) -> Option<String> {
        None
    }

    /// Another handle on the same connection pool, so one more batch can be in flight (see
    /// [`BatchConfig::max_concurrent_exports`](crate::config::BatchConfig)); `None` (the default) when
    /// the transport cannot be shared, and its batches go one at a time.
    fn try_clone(&self) -> Option<Box<dyn Transport>> {
        None
    }
}

/// Response header of an acknowledgement that carries the batch's receipt, base64.
pub const RECEIPT_HEADER: &str = "tracex-receipt";

/// The receipt in a [`RECEIPT_HEADER`] value.
pub fn decode_receipt_header(value: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// Retry settings. Backoff before attempt `n` (1-based) is uniform in
/// `[0, min(max_backoff, initial_backoff · 2^(n-1))]` ("full jitter"); a `Retry-After` from the
/// server replaces it. The sender gives up once `max_elapsed` would be exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling (default 200 ms).
    pub initial_backoff: Duration,
    /// Largest backoff ceiling (default 10 s).
    pub max_backoff: Duration,
    /// Total time spent on one batch before giving up (default 30 s).
    pub max_elapsed: Duration,
    /// Timeout of one HTTP request (default 10 s).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff before attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait before fetching the collector key again after `failures` failed fetches: the
    /// full-jitter backoff, but never under the first ceiling (jitter can draw ~0, and a key fetch
    /// is not worth hammering a collector that is down). The native batcher and the WASM flush both
    /// pace their fetches with it.
    pub fn key_fetch_backoff(&self, failures: u32, random: f64) -> Duration {
        self.backoff(failures, random).max(self.initial_backoff)
    }

    /// A full-jitter backoff before attempt `attempt`, from a uniform `random` in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        self.ceiling(attempt).mul_f64(random.clamp(0.0, 1.0))
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    #[cfg(feature = "http")]
    if let Ok(at) = httpdate::parse_http_date(v) {
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    let _ = now;
    None
}

/// Classifies an HTTP status: 2xx delivered, 408/425/429/5xx retry, other 4xx reject.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Delivered,
        408 | 425 | 429 | 500..=599 => {
            SendOutcome::Retry { after: retry_after, reason: format!("HTTP {status}: {}", clip(body)) }
        }
        _ => SendOutcome::Reject { status, message: clip(body).to_owned() },
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim()
}

// === HTTP ===

/// `Content-Type` of a sealed batch.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.tracex.batch.v1";
/// Path of the ingest endpoint.
pub const BATCHES_PATH: &str = "/v1/batches";
/// Path of the public-key endpoint.
pub const PUBLIC_KEY_PATH: &str = "/v1/public-key";

/// POSTs batches to `{endpoint}/v1/batches` with the API key as a bearer token.
#[cfg(feature = "http")]
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    // Parsed and validated once: as strings, each request parsed the URL (IDNA included) and
    // checked the header again — ≈ 4 % of the HTTP client thread's samples in the sdk_e2e bench.
    url: reqwest::Url,
    authorization: reqwest::header::HeaderValue,
    /// The last acknowledgement's receipt, until taken.
    receipt: Option<String>,
}

#[cfg(feature = "http")]
impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the API key.
        f.debug_struct("HttpTransport").field("url", &self.url).finish_non_exhaustive()
    }
}

#[cfg(feature = "http")]
impl HttpTransport {
    /// A transport for `endpoint` (base URL) authenticating with `api_key`.
    pub fn new(endpoint: &str, api_key: &str, timeout: Duration) -> crate::Result<Self> {
        crate::options::check_api_key("API key", api_key)?;
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // The collector closes connections idle for 10 s (its header read timeout); letting
            // ours go first means a batch is never sent into a socket the collector is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .user_agent(concat!("tracex-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Transport(format!("building the HTTP client: {e}")))?;
        let url = format!("{}{BATCHES_PATH}", endpoint.trim_end_matches('/'));
        let url = reqwest::Url::parse(&url)
            .map_err(|e| crate::Error::Config(format!("the collector endpoint {endpoint:?} is not a URL: {e}")))?;
        let mut authorization = reqwest::header::HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| crate::Error::Config("the API key cannot be sent in an HTTP header".into()))?;
        authorization.set_sensitive(true);
        Ok(Self { client, url, authorization, receipt: None })
    }
}

#[cfg(feature = "http")]
impl Transport for HttpTransport {
    fn send(&mut self, body: &[u8]) -> SendOutcome {
        let res = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(body.to_vec())
            .send();
        match res {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                self.receipt =
                    resp.headers().get(RECEIPT_HEADER).and_then(|v| v.to_str().ok()).and_then(decode_receipt_header);
                let text = if (200..300).contains(&status) { String::new() } else { resp.text().unwrap_or_default() };
                classify_status(status, retry_after, &text)
            }
            Err(e) => {
                self.receipt = None;
                SendOutcome::Retry { after: None, reason: error_chain(&e) }
            }
        }
    }

    fn take_receipt(&mut self) -> Option<String> {
        self.receipt.take()
    }

    /// The client is a handle on one pool and one I/O thread: each clone sends on a connection
    /// of its own from that pool.
    fn try_clone(&self) -> Option<Box<dyn Transport>> {
        Some(Box::new(Self {
            client: self.client.clone(),
            url: self.url.clone(),
            authorization: self.authorization.clone(),
            receipt: None,
        }))
    }
}

/// An error with its causes, `outer: inner: …` (an HTTP client's own message, "error sending
/// request", says little without them).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Fetches the collector's public key (PEM) from `{endpoint}/v1/public-key`; the caller checks it
/// against a pinned fingerprint. Keeps its HTTP client between attempts (building one loads the TLS
/// roots, which takes longer than the request); created on the thread that fetches, so a forked
/// child makes its own.
#[cfg(feature = "http")]
#[derive(Debug)]
pub struct KeyFetcher {
    client: Option<reqwest::blocking::Client>,
    url: String,
}

#[cfg(feature = "http")]
impl KeyFetcher {
    /// A fetcher for the collector at `endpoint` (base URL).
    pub fn new(endpoint: &str) -> Self {
        Self { client: None, url: format!("{}{PUBLIC_KEY_PATH}", endpoint.trim_end_matches('/')) }
    }

    /// One attempt.
    pub fn fetch(&mut self) -> crate::Result<String> {
        let url = &self.url;
        let client = match &self.client {
            Some(c) => c,
            None => {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .connect_timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| crate::Error::Transport(format!("building the HTTP client: {e}")))?;
                self.client.insert(c)
            }
        };
        let resp = client.get(url).header(reqwest::header::ACCEPT, "application/x-pem-file").send().map_err(|e| {
            crate::Error::Transport(format!("fetching the collector key from {url}: {}", error_chain(&e)))
        })?;
        let status = resp.status();
        let text = resp.text().map_err(|e| crate::Error::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(crate::Error::Transport(format!("fetching the collector key from {url}: HTTP {status}")));
        }
        Ok(text)
    }
}

// === in memory ===

/// A transport that keeps delivered bodies in memory and can be scripted to fail: for tests of
/// code built on the core.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Default, Debug)]
pub struct MemoryTransport {
    received: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    script: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<SendOutcome>>>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryTransport {
    /// Bodies delivered so far.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Makes the next attempt return `outcome` (queued; unscripted attempts are delivered).
    pub fn script(&self, outcome: SendOutcome) {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(outcome);
        }
    }
}

#[cfg(any(test, feature = "testing"))]
impl Transport for MemoryTransport {
    fn send(&mut self, body: &[u8]) -> SendOutcome {
        let scripted = self.script.lock().ok().and_then(|mut s| s.pop_front());
        let outcome = scripted.unwrap_or(SendOutcome::Delivered);
        if outcome == SendOutcome::Delivered {
            if let Ok(mut r) = self.received.lock() {
                r.push(body.to_vec());
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(400));
        assert_eq!(p.ceiling(6), Duration::from_millis(6400));
        assert_eq!(p.ceiling(7), Duration::from_secs(10));
        assert_eq!(p.ceiling(100), Duration::from_secs(10));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify_status(202, None, ""), SendOutcome::Delivered);
        assert!(matches!(
            classify_status(503, Some(Duration::from_secs(2)), ""),
            SendOutcome::Retry { after: Some(_), .. }
        ));
        assert!(matches!(classify_status(429, None, ""), SendOutcome::Retry { .. }));
        assert!(matches!(classify_status(400, None, "bad"), SendOutcome::Reject { status: 400, .. }));
        assert!(matches!(classify_status(401, None, ""), SendOutcome::Reject { status: 401, .. }));
        assert!(matches!(classify_status(413, None, ""), SendOutcome::Reject { status: 413, .. }));
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon", now), None);
        #[cfg(feature = "http")]
        {
            let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
            assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        }
    }
}
