//! Getting sealed bytes to the collector: the [`Transport`] trait, the retry policy (exponential
//! backoff with full jitter, honouring `Retry-After`) and, with feature `http`, the ureq + rustls
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
    use base64ct::Encoding as _;
    let bytes = base64ct::Base64::decode_vec(value.trim()).ok()?;
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
///
/// A synchronous client (ureq) on the sender threads: each send writes the request and reads the
/// acknowledgement on the thread that waits for it. reqwest's blocking client, used before, handed
/// every request to a runtime thread of its own (≈ 250 ns of CPU a span there in the sdk_e2e
/// bench). The CPU did not move with the change — that time was the kernel's loopback TCP path,
/// now spent on the senders (docs/benchmarks.md) — but there is no runtime thread per tracer to
/// re-create after `fork`, and the Python extension is 13 % smaller.
#[cfg(feature = "http")]
pub struct HttpTransport {
    agent: ureq::Agent,
    // Parsed and validated once: as strings, each request parsed the URL and checked the header
    // again — ≈ 4 % of the HTTP client's samples in the sdk_e2e bench.
    url: ureq::http::Uri,
    authorization: ureq::http::HeaderValue,
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

/// Idle keep-alive connections the batch client keeps, per collector: one per batch in flight
/// ([`DEFAULT_MAX_CONCURRENT_EXPORTS`](crate::config::DEFAULT_MAX_CONCURRENT_EXPORTS) by default)
/// with room for larger settings; beyond it a connection is closed after its request.
#[cfg(feature = "http")]
const MAX_IDLE_CONNECTIONS: usize = 32;

/// An HTTP client for the collector: rustls on aws-lc (the library that seals) with the platform's
/// certificate verifier, a proxy from the environment (ureq's rule: the first of `ALL_PROXY`,
/// `HTTPS_PROXY`, `HTTP_PROXY`, whatever the scheme, except for hosts in `NO_PROXY`), no redirects
/// (a batch and its bearer key go only where they were configured to; a 3xx is a rejection), and
/// every status returned as a response, not an error.
#[cfg(feature = "http")]
fn agent(timeout: Duration, idle_connections: usize) -> ureq::Agent {
    use std::sync::Arc;
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::PlatformVerifier)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
        // The collector closes connections idle for 10 s (its header read timeout); letting ours
        // go first means a batch is never sent into a socket the collector is closing.
        .max_idle_age(Duration::from_secs(5))
        .max_idle_connections(idle_connections)
        .max_idle_connections_per_host(idle_connections)
        // Acknowledgements are a few hundred bytes; the default 128 KiB per connection is for
        // downloads.
        .input_buffer_size(16 * 1024)
        .user_agent(concat!("tracex-core/", env!("CARGO_PKG_VERSION")))
        .build();
    // Resolving per request cost a thread per batch (crate::resolver).
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        crate::resolver::CachingResolver::default(),
    )
}

/// Most of a response body read past the part kept, so that its connection can be reused; a
/// longer body is left unread and its connection closed rather than read for as long as the
/// server cares to send.
#[cfg(feature = "http")]
const MAX_DRAIN: u64 = 64 * 1024;

/// The first `limit` bytes of a response body as text, the rest drained (a connection goes back
/// to the pool only once its response has been read to the end).
#[cfg(feature = "http")]
fn body_text(resp: &mut ureq::http::Response<ureq::Body>, limit: u64) -> String {
    use std::io::Read as _;
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut head = Vec::new();
    let _ = reader.by_ref().take(limit).read_to_end(&mut head);
    let _ = std::io::copy(&mut reader.take(MAX_DRAIN), &mut std::io::sink());
    String::from_utf8_lossy(&head).into_owned()
}

#[cfg(feature = "http")]
impl HttpTransport {
    /// A transport for `endpoint` (base URL) authenticating with `api_key`.
    pub fn new(endpoint: &str, api_key: &str, timeout: Duration) -> crate::Result<Self> {
        crate::options::check_api_key("API key", api_key)?;
        let url = parse_url(&format!("{}{BATCHES_PATH}", endpoint.trim_end_matches('/')), endpoint)?;
        let mut authorization = ureq::http::HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| crate::Error::Config("the API key cannot be sent in an HTTP header".into()))?;
        authorization.set_sensitive(true);
        Ok(Self { agent: agent(timeout, MAX_IDLE_CONNECTIONS), url, authorization, receipt: None })
    }
}

/// `url` as an absolute http(s) URI, or a config error naming `endpoint`.
#[cfg(feature = "http")]
fn parse_url(url: &str, endpoint: &str) -> crate::Result<ureq::http::Uri> {
    let not_a_url =
        |why: &str| crate::Error::Config(format!("the collector endpoint {endpoint:?} is not a URL: {why}"));
    let uri: ureq::http::Uri = url.parse().map_err(|e: ureq::http::uri::InvalidUri| not_a_url(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        Some("http" | "https") => Err(not_a_url("no host")),
        _ => Err(not_a_url("the scheme must be http or https")),
    }
}

#[cfg(feature = "http")]
impl Transport for HttpTransport {
    fn send(&mut self, body: &[u8]) -> SendOutcome {
        self.receipt = None;
        let res = self
            .agent
            .post(self.url.clone())
            .header(ureq::http::header::AUTHORIZATION, self.authorization.clone())
            .header(ureq::http::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .send(body);
        match res {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
                let retry_after =
                    header("retry-after").and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                let receipt = header(RECEIPT_HEADER).and_then(decode_receipt_header);
                let accepted = (200..300).contains(&status);
                // Read to the end either way, so the connection is reused; only a refusal's text
                // is kept (it says why).
                let text = body_text(&mut resp, if accepted { 0 } else { 4096 });
                if accepted {
                    self.receipt = receipt;
                }
                classify_status(status, retry_after, &text)
            }
            Err(e) => SendOutcome::Retry { after: None, reason: error_chain(&e) },
        }
    }

    fn take_receipt(&mut self) -> Option<String> {
        self.receipt.take()
    }

    /// The agent is a handle on one connection pool: each clone sends on a connection of its own
    /// from that pool.
    fn try_clone(&self) -> Option<Box<dyn Transport>> {
        Some(Box::new(Self {
            agent: self.agent.clone(),
            url: self.url.clone(),
            authorization: self.authorization.clone(),
            receipt: None,
        }))
    }
}

/// An error with its causes, `outer: inner: …` (an HTTP client's own message says little without
/// them).
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
/// against a pinned fingerprint. Keeps its HTTP client between attempts (building its TLS
/// configuration loads the platform's roots, which takes longer than the request); created on the
/// thread that fetches, so a forked child makes its own.
#[cfg(feature = "http")]
#[derive(Debug)]
pub struct KeyFetcher {
    agent: Option<ureq::Agent>,
    url: String,
}

/// Upper bound of a collector key response: a PEM public key is under 1 KiB at 4096 bits.
#[cfg(feature = "http")]
const MAX_KEY_RESPONSE: u64 = 64 * 1024;

#[cfg(feature = "http")]
impl KeyFetcher {
    /// A fetcher for the collector at `endpoint` (base URL).
    pub fn new(endpoint: &str) -> Self {
        Self { agent: None, url: format!("{}{PUBLIC_KEY_PATH}", endpoint.trim_end_matches('/')) }
    }

    /// One attempt.
    pub fn fetch(&mut self) -> crate::Result<String> {
        let url = &self.url;
        let agent = self.agent.get_or_insert_with(|| agent(Duration::from_secs(10), 1));
        let fail = |why: String| crate::Error::Transport(format!("fetching the collector key from {url}: {why}"));
        let mut resp = agent
            .get(url)
            .header(ureq::http::header::ACCEPT, "application/x-pem-file")
            .call()
            .map_err(|e| fail(error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let _ = body_text(&mut resp, 0);
            return Err(fail(format!("HTTP {status}")));
        }
        resp.body_mut().with_config().limit(MAX_KEY_RESPONSE).read_to_string().map_err(|e| fail(error_chain(&e)))
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
