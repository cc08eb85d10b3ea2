//! OTLP export: forwards stored spans — decrypted, redacted, exactly as stored — to an OTLP/HTTP
//! receiver (Jaeger, Tempo, an OpenTelemetry Collector, a vendor, another tracex collector).
//!
//! The outbox is the audit log itself ([`crate::audit`]). Its leaves are the stored batches in
//! commit order, gap-free in both stores (PostgreSQL writers take leaf indexes in turn under the
//! `audit_head` row lock, held until commit), and each leaf's claims name exactly the span rows
//! its commit inserted. So the export needs no table written on the ingest path: a persisted
//! cursor (the next leaf to send, `export_cursors`) is all the state it keeps, and a restart
//! resumes from it. The cursor moves only after the receiver acknowledged everything before it:
//! delivery is at least once (a crash between an acknowledgement and the cursor's write sends
//! those spans again; receivers deduplicate by trace and span id, as tracex's OTLP ingest does).
//!
//! Several collectors on one database take turns: the cursor is held under a lease
//! ([`LEASE`]) that the holder renews on every step; another collector takes over only once it
//! has run out, from where the holder left off.
//!
//! What happens to spans that cannot be delivered, each counted in `tracex_export_spans_total`
//! under one outcome (see [`sender::Sent`] for the status mapping):
//! - the receiver is down, slow, overloaded or refuses the credentials (any status but 2xx, 400
//!   and 413, or no answer): retried with full-jitter backoff up to [`MAX_BACKOFF`], honouring
//!   `Retry-After`, for as long as the spans are younger than `max_lag_seconds`; older ones are
//!   dropped (`dropped_lag`), so a receiver that comes back gets recent spans, not a day's flood;
//! - 400 (the receiver cannot take the data): dropped (`rejected`), with the receiver's message
//!   logged; a partial success counts its `rejected_spans` the same way;
//! - 413: the request is halved and each half sent, down to one span;
//! - a row gone from the store before its turn (retention): counted `missing`.

pub mod outbox;
mod response;
pub mod sender;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::metrics::Metrics;
use crate::store::Store;

/// Default of `max_spans_per_request`: the OpenTelemetry SDKs' batch size (512) rounded up to a
/// number that keeps a request of typical payment spans (≈ 0.5 KiB each) near 1 MiB.
pub const DEFAULT_MAX_SPANS_PER_REQUEST: usize = 2_000;
/// Default of `max_request_bytes` (uncompressed protobuf): under the 4 MiB a stock OpenTelemetry
/// Collector's receivers accept, and half of tracex's own 8 MiB body limit.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// Default of `max_lag_seconds`: spans not delivered within a day are dropped and counted.
pub const DEFAULT_MAX_LAG_SECONDS: u64 = 24 * 3600;
/// Default of `timeout_ms`, per request.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default of `poll_interval_ms`: how soon a commit is noticed when the export has caught up.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 250;
/// How long a claim of the cursor lasts without renewal. The holder renews it at every step
/// (each poll, each retry); a collector that stops renewing hands over after this long.
pub const LEASE: Duration = Duration::from_secs(30);
/// The longest wait between attempts (a `Retry-After` may ask for up to [`MAX_RETRY_AFTER`]).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The first backoff ceiling.
const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// The cursor's name (one export target per deployment).
const CURSOR: &str = "otlp";

/// Export settings (TOML `[export]`; `--export-otlp URL` sets `url`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// The OTLP/HTTP receiver, e.g. `http://jaeger:4318` (then `/v1/traces` is appended, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` does) or a full URL with its path, used as is (as
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Default: none, no export.
    pub url: Option<String>,
    /// Headers sent with every request, e.g. `{ authorization = "Bearer …" }`
    /// (`--export-otlp-header name=value`, repeatable).
    pub headers: BTreeMap<String, String>,
    /// Projects whose spans are exported (default: empty, every project).
    pub projects: Vec<String>,
    /// Most spans in one request (default 2,000).
    pub max_spans_per_request: usize,
    /// Most uncompressed bytes in one request (default 3 MiB); requests are gzip-compressed.
    pub max_request_bytes: usize,
    /// Spans older than this (since the collector received them) are dropped and counted instead
    /// of sent (default a day).
    pub max_lag_seconds: u64,
    /// Timeout of one request (default 10 s).
    pub timeout_ms: u64,
    /// How often the log is checked for new leaves once everything is sent (default 250 ms).
    pub poll_interval_ms: u64,
}

/// Header values are left out: they are credentials (`authorization`, API keys).
impl std::fmt::Debug for ExportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportConfig")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("projects", &self.projects)
            .field("max_spans_per_request", &self.max_spans_per_request)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_lag_seconds", &self.max_lag_seconds)
            .field("timeout_ms", &self.timeout_ms)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .finish()
    }
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            url: None,
            headers: BTreeMap::new(),
            projects: Vec::new(),
            max_spans_per_request: DEFAULT_MAX_SPANS_PER_REQUEST,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_lag_seconds: DEFAULT_MAX_LAG_SECONDS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
        }
    }
}

impl ExportConfig {
    /// The receiver's URL as requests go to it: `/v1/traces` appended to a URL without a path.
    pub fn endpoint(&self) -> Option<String> {
        let url = self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        Some(match rest.find('/') {
            Some(i) if rest[i..] != *"/" => url.to_owned(),
            _ => format!("{}/v1/traces", url.trim_end_matches('/')),
        })
    }

    /// Checks the settings once, at start, and builds the export's sender (`None` with `url`
    /// unset: no export).
    pub fn sender(&self, audit_log: bool) -> Result<Option<sender::Sender>, String> {
        let Some(endpoint) = self.endpoint() else {
            return Ok(None);
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!("export url {endpoint:?}: use http:// or https://"));
        }
        if !audit_log {
            return Err(
                "the OTLP export reads stored spans in the audit log's commit order: it needs audit_log = true".into(),
            );
        }
        if self.max_spans_per_request == 0 || self.max_request_bytes == 0 {
            return Err("export max_spans_per_request and max_request_bytes must be at least 1".into());
        }
        sender::Sender::new(&endpoint, &self.headers, Duration::from_millis(self.timeout_ms.max(1))).map(Some)
    }

    fn max_lag(&self) -> Duration {
        Duration::from_secs(self.max_lag_seconds)
    }
}

/// Creates the cursor, at the log's end, before the collector accepts its first batch: every batch
/// stored from the first start with the export on is exported. (A cursor that exists stays where
/// it is.)
pub fn prepare(store: &dyn Store, holder: &str) -> Result<(), String> {
    let lease = u64::try_from(LEASE.as_nanos()).unwrap_or(u64::MAX);
    store
        .audit_size()
        .and_then(|start| store.claim_export_cursor(CURSOR, holder, crate::now_unix_nano(), lease, start))
        .map(drop)
        .map_err(|e| format!("opening the OTLP export's cursor: {e}"))
}

/// Hands the cursor's lease back at shutdown, so the next collector (or this one, restarted)
/// resumes at once rather than after [`LEASE`].
pub fn release(store: &dyn Store, holder: &str) {
    // A claim with a lease of zero ends now: any later claim finds it run out. (A cursor never
    // claimed starts at the log's end, as in `Worker::claim`.)
    let released = store
        .audit_size()
        .and_then(|start| store.claim_export_cursor(CURSOR, holder, crate::now_unix_nano(), 0, start));
    if let Err(e) = released {
        tracing::warn!(error = %e, "could not hand the OTLP export's lease back; the next collector waits it out");
    }
}

/// Runs the export until aborted (at shutdown; the cursor is written after each delivery, so an
/// abort loses nothing).
/// `sender` is [`ExportConfig::sender`]'s, built when the collector started.
pub async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: ExportConfig,
    sender: sender::Sender,
    holder: String,
) {
    let poll = Duration::from_millis(config.poll_interval_ms.max(1));
    tracing::info!(endpoint = %sender.endpoint(), "OTLP export on");
    let mut worker = Worker { store, metrics, config, sender, holder, failures: 0 };
    loop {
        match worker.step().await {
            Ok(Step::Sent) => {}
            Ok(Step::Idle) => tokio::time::sleep(poll).await,
            Err(e) => {
                tracing::warn!(error = %e, "the OTLP export could not read the store; retrying");
                tokio::time::sleep(worker.backoff(None)).await;
            }
        }
    }
}

enum Step {
    /// Something was sent (or dropped): look again at once.
    Sent,
    /// Nothing to send, or another collector holds the cursor.
    Idle,
}

struct Worker {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    config: ExportConfig,
    sender: sender::Sender,
    holder: String,
    /// Failed attempts in a row (backoff).
    failures: u32,
}

impl Worker {
    /// Claims the cursor, reads the next chunk of the log and delivers it.
    async fn step(&mut self) -> Result<Step, String> {
        let Some(from) = self.claim().await? else {
            return Ok(Step::Idle);
        };
        let (store, config, now) = (self.store.clone(), self.config.clone(), crate::now_unix_nano());
        let chunk = tokio::task::spawn_blocking(move || outbox::read(&*store, from, &config, now))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.metrics.export_lag_ms.store(chunk.lag.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        if chunk.end == from {
            return Ok(Step::Idle);
        }
        self.metrics.export_spans_dropped_lag.fetch_add(chunk.dropped_lag, Ordering::Relaxed);
        self.metrics.export_spans_missing.fetch_add(chunk.missing, Ordering::Relaxed);
        let mut queue: Vec<outbox::Request> = chunk.requests;
        queue.reverse();
        while let Some(request) = queue.pop() {
            if !self.deliver(request, &mut queue).await? {
                // Another collector took the cursor over while the receiver kept us waiting: it
                // sends from the cursor on, this chunk included.
                return Ok(Step::Idle);
            }
        }
        let (store, holder, end) = (self.store.clone(), self.holder.clone(), chunk.end);
        let moved = tokio::task::spawn_blocking(move || store.advance_export_cursor(CURSOR, &holder, from, end))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if !moved {
            tracing::info!("another collector took the OTLP export over; its cursor stands");
        }
        Ok(Step::Sent)
    }

    /// Sends one request until it is delivered or dropped (pushing halves onto `queue` on 413).
    /// False when the cursor's lease was lost meanwhile.
    async fn deliver(&mut self, request: outbox::Request, queue: &mut Vec<outbox::Request>) -> Result<bool, String> {
        let m = self.metrics.clone();
        loop {
            let age = Duration::from_nanos(crate::now_unix_nano().saturating_sub(request.oldest_received_ns));
            if age > self.config.max_lag() {
                m.export_spans_dropped_lag.fetch_add(request.spans, Ordering::Relaxed);
                tracing::warn!(spans = request.spans, "OTLP export: spans older than max_lag_seconds dropped");
                return Ok(true);
            }
            match self.sender.send(&request.body).await {
                sender::Sent::Delivered { rejected, message } => {
                    self.failures = 0;
                    let rejected = rejected.min(request.spans);
                    m.export_spans_exported.fetch_add(request.spans - rejected, Ordering::Relaxed);
                    m.export_requests.fetch_add(1, Ordering::Relaxed);
                    if rejected > 0 {
                        m.export_spans_rejected.fetch_add(rejected, Ordering::Relaxed);
                        tracing::warn!(rejected, message = %message, "OTLP export: the receiver rejected spans");
                    }
                    return Ok(true);
                }
                sender::Sent::Reject { status, message } => {
                    self.failures = 0;
                    m.export_spans_rejected.fetch_add(request.spans, Ordering::Relaxed);
                    tracing::warn!(status, spans = request.spans, message = %message, "OTLP export: request rejected; its spans are dropped");
                    return Ok(true);
                }
                sender::Sent::TooLarge if request.spans > 1 => {
                    let (a, b) = request.halve().map_err(|e| e.to_string())?;
                    tracing::info!(spans = a.spans + b.spans, "OTLP export: the receiver said 413; sending halves");
                    queue.push(b);
                    queue.push(a);
                    return Ok(true);
                }
                sender::Sent::TooLarge => {
                    m.export_spans_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("OTLP export: one span is larger than the receiver takes; dropped");
                    return Ok(true);
                }
                sender::Sent::Retry { after, reason } => {
                    m.export_retries.fetch_add(1, Ordering::Relaxed);
                    // The lag keeps growing while the receiver is away.
                    m.export_lag_ms.store(age.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
                    let wait = self.backoff(after);
                    tracing::warn!(reason = %reason, retry_in_ms = wait.as_millis(), "OTLP export: receiver unavailable");
                    tokio::time::sleep(wait).await;
                    if self.claim().await?.is_none() {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Claims (or renews) the cursor: where it stands, or `None` if another collector holds it.
    async fn claim(&self) -> Result<Option<u64>, String> {
        let (store, holder) = (self.store.clone(), self.holder.clone());
        tokio::task::spawn_blocking(move || {
            // A new cursor starts at the log's end: turning the export on forwards what arrives
            // from then on, not the whole retained history.
            let start = store.audit_size()?;
            let lease = u64::try_from(LEASE.as_nanos()).unwrap_or(u64::MAX);
            store.claim_export_cursor(CURSOR, &holder, crate::now_unix_nano(), lease, start)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    /// The wait before the next attempt: the receiver's `Retry-After` (capped), else full jitter.
    fn backoff(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if let Some(after) = retry_after {
            return after.min(MAX_RETRY_AFTER);
        }
        let policy = tracex_core::transport::RetryPolicy {
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            ..Default::default()
        };
        // Never under the first ceiling: jitter can draw ~0, and a receiver that is down is not
        // worth hammering.
        policy.backoff(self.failures, tracex_core::ids::random_unit()).max(INITIAL_BACKOFF / 2)
    }
}

/// This process's name as a cursor holder: random, so two collectors never share a lease. A
/// collector that stops cleanly hands its lease back ([`release`]); after a crash the next holder
/// waits it out (at most [`LEASE`]).
pub fn holder_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    format!("{}-{}", std::process::id(), hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_the_signal_path_only_to_a_bare_url() {
        let with = |u: &str| ExportConfig { url: Some(u.into()), ..Default::default() }.endpoint();
        assert_eq!(with("http://jaeger:4318").as_deref(), Some("http://jaeger:4318/v1/traces"));
        assert_eq!(with("http://jaeger:4318/").as_deref(), Some("http://jaeger:4318/v1/traces"));
        assert_eq!(
            with("https://api.vendor.io/otlp/v1/traces").as_deref(),
            Some("https://api.vendor.io/otlp/v1/traces")
        );
        assert_eq!(with("  ").as_deref(), None);
        assert_eq!(ExportConfig::default().endpoint(), None);
    }

    #[test]
    fn check_names_what_is_wrong() {
        let c = ExportConfig { url: Some("ftp://x".into()), ..Default::default() };
        assert!(c.sender(true).unwrap_err().contains("http://"));
        let c = ExportConfig { url: Some("http://x:4318".into()), ..Default::default() };
        assert!(c.sender(false).unwrap_err().contains("audit_log"));
        assert!(c.sender(true).unwrap().is_some());
        let mut bad = c.clone();
        bad.headers.insert("bad header".into(), "v".into());
        assert!(bad.sender(true).unwrap_err().contains("bad header"));
        assert!(ExportConfig::default().sender(false).unwrap().is_none(), "no export, nothing to check");
    }

    #[test]
    fn debug_leaves_header_values_out() {
        let mut c = ExportConfig { url: Some("http://x:4318".into()), ..Default::default() };
        c.headers.insert("authorization".into(), "Bearer s3cret".into());
        let text = format!("{c:?}");
        assert!(text.contains("authorization") && !text.contains("s3cret"), "{text}");
    }

    #[test]
    fn backoff_honours_retry_after_up_to_its_cap() {
        let dir = std::env::temp_dir().join(format!("tracex-export-backoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.join("t.db")).unwrap();
        let mut w = Worker {
            store: Arc::new(store),
            metrics: Arc::default(),
            config: ExportConfig::default(),
            sender: sender::Sender::new("http://127.0.0.1:1/v1/traces", &BTreeMap::new(), Duration::from_secs(1))
                .unwrap(),
            holder: "test".into(),
            failures: 0,
        };
        // The receiver's delay is used as is, not jittered: it knows when it can take more.
        assert_eq!(w.backoff(Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(w.backoff(Some(Duration::from_millis(1500))), Duration::from_millis(1500));
        // Longer than MAX_BACKOFF is honoured (the receiver knows its outage), longer than
        // MAX_RETRY_AFTER is not: a hostile or broken receiver cannot park the export for a day.
        assert_eq!(w.backoff(Some(MAX_BACKOFF * 3)), MAX_BACKOFF * 3);
        assert_eq!(w.backoff(Some(Duration::from_secs(86_400))), MAX_RETRY_AFTER);
        assert_eq!(w.backoff(Some(Duration::MAX)), MAX_RETRY_AFTER);
        assert_eq!(w.failures, 5, "a Retry-After answer is still a failed attempt");
        // Without one: jittered, never under half the first ceiling nor over MAX_BACKOFF.
        for _ in 0..200 {
            let d = w.backoff(None);
            assert!((INITIAL_BACKOFF / 2..=MAX_BACKOFF).contains(&d), "{d:?}");
        }
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn toml_table() {
        #[derive(Deserialize)]
        struct T {
            export: ExportConfig,
        }
        let t: T = toml::from_str(
            "[export]\nurl = \"http://127.0.0.1:4318\"\nprojects = [\"acme\"]\nmax_lag_seconds = 60\n\
             [export.headers]\nauthorization = \"Bearer k\"",
        )
        .unwrap();
        assert_eq!(t.export.projects, ["acme"]);
        assert_eq!(t.export.headers["authorization"], "Bearer k");
        assert_eq!(t.export.max_spans_per_request, DEFAULT_MAX_SPANS_PER_REQUEST);
        assert!(toml::from_str::<T>("[export]\nurll = \"x\"").is_err());
    }
}
