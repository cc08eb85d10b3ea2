//! Settings with their defaults and environment variables, resolved in one place.

use std::time::Duration;

/// Default capacity of the span buffer (spans). A 10,000-span burst fits with room to spare;
/// the buffer's memory is allocated once (≈ 200 bytes a slot plus the spans' own heap).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 16_384;
/// Default spans per batch. Each batch in flight waits for the collector's durable group commit
/// (≈ 15–20 ms on a local SQLite store), so one SDK instance delivers at most
/// `DEFAULT_MAX_CONCURRENT_EXPORTS` batches per commit: with 512 spans a batch that was ≈ 78,000
/// (one-span traces) and ≈ 114,000 (eight-span traces) spans/s; with 2,048, 112,000–128,000 and
/// 194,000–235,000, and the collector's CPU per span fell by 11–30 % (its per-request work: HTTP,
/// the envelope, the receipt, the audit leaf). The Node and WASM packages hand the core 2,048
/// spans at a time already. A batch stays within [`DEFAULT_MAX_BATCH_BYTES`] (split past it);
/// OpenTelemetry's default is 512.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 2048;
/// Default longest time a finished span waits before its batch is sealed.
pub const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_secs(1);
/// Default number of sealed batches waiting for the sender before new ones go to the spool:
/// 32,768 spans at the default batch size (64 batches of 512 before the batches grew).
pub const DEFAULT_MAX_PENDING_BATCHES: usize = 16;
/// Default number of sealed batches sent at once, each on its own keep-alive connection. The
/// collector acknowledges a batch after its durable group commit (≈ 15–20 ms on a local SQLite
/// store): one batch at a time held one SDK instance to ≈ 28,000 spans/s with both cores idle,
/// while batches that arrive together share one commit.
pub const DEFAULT_MAX_CONCURRENT_EXPORTS: usize = 4;
/// Default upper bound of one sealed batch's plaintext; larger batches are split.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default on-disk spool limit.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// `TRACEX_ENDPOINT`: collector base URL, e.g. `http://127.0.0.1:3002`.
pub const ENV_ENDPOINT: &str = "TRACEX_ENDPOINT";
/// `TRACEX_API_KEY`: ingest API key.
pub const ENV_API_KEY: &str = "TRACEX_API_KEY";
/// `TRACEX_SERVICE_NAME`.
pub const ENV_SERVICE_NAME: &str = "TRACEX_SERVICE_NAME";
/// `TRACEX_SERVICE_VERSION`.
pub const ENV_SERVICE_VERSION: &str = "TRACEX_SERVICE_VERSION";
/// `TRACEX_ENVIRONMENT`: `deployment.environment.name`.
pub const ENV_ENVIRONMENT: &str = "TRACEX_ENVIRONMENT";
/// `TRACEX_COLLECTOR_PUBLIC_KEY`: the collector's public key, PEM text or a path to a PEM file.
pub const ENV_COLLECTOR_PUBLIC_KEY: &str = "TRACEX_COLLECTOR_PUBLIC_KEY";
/// `TRACEX_COLLECTOR_FINGERPRINT`: pinned SHA-256 fingerprint of the collector key.
pub const ENV_COLLECTOR_FINGERPRINT: &str = "TRACEX_COLLECTOR_FINGERPRINT";
/// `TRACEX_AUDIT_KEY`: the collector's audit key (signed-note verifier key, `GET /v1/audit-key`)
/// to check every acknowledgement's receipt against.
pub const ENV_AUDIT_KEY: &str = "TRACEX_AUDIT_KEY";
/// `TRACEX_SAMPLE_RATIO`: head-sampling ratio in `[0, 1]`.
pub const ENV_SAMPLE_RATIO: &str = "TRACEX_SAMPLE_RATIO";
/// `TRACEX_SPOOL_DIR`: directory for batches that could not be delivered.
pub const ENV_SPOOL_DIR: &str = "TRACEX_SPOOL_DIR";

/// The one rule for count options (queue and batch sizes, delays in milliseconds): a positive
/// integer no larger than `u32::MAX`. Every binding passes its caller's raw number here, so the rule
/// and the message are the same in every language.
///
/// ```
/// use tracex_core::config::positive_integer;
/// assert_eq!(positive_integer("maxQueueSize", 512.0).unwrap(), 512);
/// let err = positive_integer("maxQueueSize", 1.5).unwrap_err();
/// assert_eq!(err.to_string(), "invalid configuration: maxQueueSize must be a positive integer, got 1.5");
/// ```
pub fn positive_integer(name: &str, v: f64) -> crate::Result<u32> {
    #[allow(clippy::cast_possible_truncation)] // at most u32::MAX, checked by positive_up_to
    positive_up_to(name, v, f64::from(u32::MAX)).map(|n| n as u32)
}

/// The same rule for sizes in bytes (`spoolMaxBytes`), which may pass 4 GiB: up to 2^53, the
/// largest integer a JS number holds exactly.
pub fn positive_size(name: &str, v: f64) -> crate::Result<u64> {
    positive_up_to(name, v, 9_007_199_254_740_992.0)
}

fn positive_up_to(name: &str, v: f64, max: f64) -> crate::Result<u64> {
    if v.fract() == 0.0 && (1.0..=max).contains(&v) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked just above
        Ok(v as u64)
    } else {
        Err(crate::Error::Config(format!("{name} must be a positive integer, got {v}")))
    }
}

/// The one rule for a head-sampling ratio: a number within `[0, 1]` (NaN is not). The core's
/// `build()` applies it to `TRACEX_SAMPLE_RATIO` and to the sampler; the bindings apply it under
/// their own option name, so the message names what the caller wrote.
///
/// ```
/// use tracex_core::config::sample_ratio;
/// assert_eq!(sample_ratio("sampleRatio", 0.25).unwrap(), 0.25);
/// let err = sample_ratio("sampleRatio", 2.0).unwrap_err();
/// assert_eq!(err.to_string(), "invalid configuration: sampleRatio must be within [0, 1], got 2");
/// ```
pub fn sample_ratio(name: &str, r: f64) -> crate::Result<f64> {
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(crate::Error::Config(format!("{name} must be within [0, 1], got {r}")))
    }
}

/// The one rule for a pinned audit key: the collector's signed-note verifier key
/// (`<name>+<key hash>+<base64 key>`, as `GET /v1/audit-key` serves it), surrounding whitespace
/// ignored. A malformed key is an error here, at construction, under the name the caller wrote.
///
/// ```
/// use tracex_core::config::verifier_key;
/// let key = verifier_key("auditKey", "tracex.test/log+abb42c30+AasvLljzqPCWquKAU4QaC3VmvBMH+V5dJGHY2lESygjC\n").unwrap();
/// assert_eq!(key.name(), "tracex.test/log");
/// let err = verifier_key("audit_key", "tracex.test/log").unwrap_err();
/// assert_eq!(err.code(), "TRACEX_CONFIG");
/// assert!(err.to_string().starts_with("invalid configuration: audit_key must be a signed-note verifier key"), "{err}");
/// ```
pub fn verifier_key(name: &str, text: &str) -> crate::Result<crate::audit::VerifierKey> {
    crate::audit::VerifierKey::parse(text.trim()).map_err(|e| {
        let why = match e {
            crate::Error::Audit(why) => why,
            other => other.to_string(),
        };
        crate::Error::Config(format!(
            "{name} must be a signed-note verifier key (name+hash+key, as GET /v1/audit-key serves it): {why}"
        ))
    })
}

/// Reads an environment variable, treating empty as unset.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Per-span limits; anything beyond them is dropped and counted in the span's `dropped_*` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes per span (default 128).
    pub max_attributes: u32,
    /// Events per span (default 128).
    pub max_events: u32,
    /// Links per span (default 128).
    pub max_links: u32,
    /// Attributes per event or link (default 128).
    pub max_attributes_per_event: u32,
    /// Longest string attribute value in bytes; longer values are truncated at a character boundary
    /// on the worker (default 4096).
    pub max_attribute_value_len: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attributes: 128,
            max_events: 128,
            max_links: 128,
            max_attributes_per_event: 128,
            max_attribute_value_len: 4096,
        }
    }
}

/// Batching settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Buffer capacity in spans ([`DEFAULT_MAX_QUEUE_SIZE`]).
    pub max_queue_size: usize,
    /// Spans per batch ([`DEFAULT_MAX_BATCH_SIZE`]).
    pub max_batch_size: usize,
    /// Longest wait before a partial batch is sealed ([`DEFAULT_SCHEDULED_DELAY`]).
    pub scheduled_delay: Duration,
    /// Sealed batches queued for the sender ([`DEFAULT_MAX_PENDING_BATCHES`]).
    pub max_pending_batches: usize,
    /// Batches in flight at once ([`DEFAULT_MAX_CONCURRENT_EXPORTS`]; positive): each is held
    /// by a sender thread until acknowledged, spooled or given up on, on top of the
    /// `max_pending_batches` queued. Needs a transport that can be shared
    /// ([`Transport::try_clone`](crate::transport::Transport::try_clone)); otherwise 1.
    pub max_concurrent_exports: usize,
    /// Largest plaintext per sealed batch ([`DEFAULT_MAX_BATCH_BYTES`]).
    pub max_batch_bytes: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            scheduled_delay: DEFAULT_SCHEDULED_DELAY,
            max_pending_batches: DEFAULT_MAX_PENDING_BATCHES,
            max_concurrent_exports: DEFAULT_MAX_CONCURRENT_EXPORTS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}
