//! The options every binding offers, defined, validated and resolved once. A binding copies what its
//! caller wrote into [`Options`] field by field — the numbers as given (JS and Python numbers are
//! `f64`), no checks — and picks its [`Spelling`], which names the options in error messages and
//! says the unit of durations. Defaults and `TRACEX_*` environment fallbacks are resolved by the
//! builder (`TracerBuilder::build`); everything else is checked here.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{self, BatchConfig};
use crate::error::{Error, Result};
use crate::model::Value;
use crate::sampler::Sampler;
use crate::tracer::TracerBuilder;
use crate::transport::{BATCHES_PATH, PUBLIC_KEY_PATH, RetryPolicy};

/// How a binding spells its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// JS (`maxQueueSize`); durations in milliseconds.
    Camel,
    /// Python (`max_queue_size`); durations in seconds.
    Snake,
}

/// One option's names, for messages.
#[derive(Clone, Copy, Debug)]
struct Name {
    camel: &'static str,
    snake: &'static str,
}

const SAMPLE_RATIO: Name = Name { camel: "sampleRatio", snake: "sample_ratio" };
const MAX_QUEUE_SIZE: Name = Name { camel: "maxQueueSize", snake: "max_queue_size" };
const MAX_BATCH_SIZE: Name = Name { camel: "maxExportBatchSize", snake: "max_batch_size" };
const SCHEDULED_DELAY: Name = Name { camel: "scheduledDelayMillis", snake: "scheduled_delay" };
const RETRY_TIMEOUT: Name = Name { camel: "retryTimeoutMillis", snake: "retry_timeout" };
const REQUEST_TIMEOUT: Name = Name { camel: "requestTimeoutMillis", snake: "request_timeout" };
const SPOOL_MAX_BYTES: Name = Name { camel: "spoolMaxBytes", snake: "spool_max_bytes" };
const API_KEY: Name = Name { camel: "apiKey", snake: "api_key" };
const COLLECTOR_PUBLIC_KEY: Name = Name { camel: "collectorPublicKey", snake: "collector_public_key" };
const AUDIT_KEY: Name = Name { camel: "auditKey", snake: "audit_key" };

impl Spelling {
    fn name(self, n: Name) -> &'static str {
        match self {
            Self::Camel => n.camel,
            Self::Snake => n.snake,
        }
    }

    /// A duration given in this spelling's unit: finite and non-negative.
    fn duration(self, n: Name, v: f64) -> Result<Duration> {
        let (secs, unit) = match self {
            Self::Camel => (v / 1000.0, "milliseconds"),
            Self::Snake => (v, "seconds"),
        };
        Duration::try_from_secs_f64(secs)
            .map_err(|_| Error::Config(format!("{} must be a non-negative number of {unit}, got {v}", self.name(n))))
    }
}

/// Everything a binding can set. `None` and empty mean "unset": the core's default or the
/// `TRACEX_*` variable applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Collector base URL (`TRACEX_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Ingest API key (`TRACEX_API_KEY`).
    pub api_key: Option<String>,
    /// `service.name` (`TRACEX_SERVICE_NAME`; default `unknown_service`).
    pub service_name: Option<String>,
    /// `service.version` (`TRACEX_SERVICE_VERSION`).
    pub service_version: Option<String>,
    /// `deployment.environment.name` (`TRACEX_ENVIRONMENT`).
    pub environment: Option<String>,
    /// `x402.operator.id`.
    pub operator_id: Option<String>,
    /// `x402.operator.role`.
    pub operator_role: Option<String>,
    /// The collector's public key: PEM text, or a path to it where there are files
    /// (`TRACEX_COLLECTOR_PUBLIC_KEY`).
    pub collector_public_key: Option<String>,
    /// Pinned SHA-256 fingerprint of the collector key (`TRACEX_COLLECTOR_FINGERPRINT`); without a
    /// PEM key the key is fetched from the collector in the background.
    pub collector_fingerprint: Option<String>,
    /// The collector's audit key, pinned (`TRACEX_AUDIT_KEY`): its signed-note verifier key as
    /// `GET /v1/audit-key` serves it, compared out of band. Every acknowledgement's receipt is then
    /// checked and counted in `receipts_verified` / `receipts_failed` (see docs/audit.md).
    pub audit_key: Option<String>,
    /// Head-sampling ratio of root spans in `[0, 1]` (`TRACEX_SAMPLE_RATIO`; default 1).
    pub sample_ratio: Option<f64>,
    /// Extra resource attributes, in the order given.
    pub resource_attributes: Vec<(String, Value)>,
    /// Span buffer capacity (default [`config::DEFAULT_MAX_QUEUE_SIZE`]).
    pub max_queue_size: Option<f64>,
    /// Spans per sealed batch (default [`config::DEFAULT_MAX_BATCH_SIZE`]).
    pub max_batch_size: Option<f64>,
    /// Longest wait before a partial batch is sealed, in the spelling's unit (default
    /// [`config::DEFAULT_SCHEDULED_DELAY`]).
    pub scheduled_delay: Option<f64>,
    /// Time spent retrying one batch before it is spooled or given up, in the spelling's unit
    /// (default 30 s, [`RetryPolicy`]).
    pub retry_timeout: Option<f64>,
    /// Timeout of one request, in the spelling's unit (default 10 s).
    pub request_timeout: Option<f64>,
    /// Directory for batches that could not be delivered (`TRACEX_SPOOL_DIR`).
    pub spool_dir: Option<PathBuf>,
    /// Spool size limit in bytes (default [`config::DEFAULT_SPOOL_MAX_BYTES`]); past it the oldest
    /// spooled batches are evicted and counted as failed.
    pub spool_max_bytes: Option<f64>,
    /// DEFLATE batches before sealing (default off).
    pub compression: Option<bool>,
    /// SDK name in batch headers and `telemetry.sdk.name` (each binding passes its own).
    pub sdk_name: Option<String>,
    /// SDK version.
    pub sdk_version: Option<String>,
}

/// Where a host that sends batches itself (the WASM package, with `fetch`) sends them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEndpoint {
    /// `{endpoint}/v1/batches`.
    pub batches_url: String,
    /// `{endpoint}/v1/public-key`, for a tracer configured with only a fingerprint.
    pub key_url: String,
    /// `Bearer <api key>`.
    pub authorization: String,
}

impl Options {
    /// Checks every option and returns the builder; [`TracerBuilder::build`] then resolves the
    /// defaults and environment fallbacks.
    pub fn into_builder(self, spelling: Spelling) -> Result<TracerBuilder> {
        let mut b = TracerBuilder::default();
        for (value, set) in [
            (self.endpoint, TracerBuilder::with_endpoint as fn(TracerBuilder, String) -> TracerBuilder),
            (self.api_key, TracerBuilder::with_api_key),
            (self.service_name, TracerBuilder::with_service_name),
            (self.service_version, TracerBuilder::with_service_version),
            (self.environment, TracerBuilder::with_environment),
            (self.operator_id, TracerBuilder::with_operator_id),
            (self.operator_role, TracerBuilder::with_operator_role),
            (self.collector_public_key, TracerBuilder::with_collector_public_key_pem),
            (self.collector_fingerprint, TracerBuilder::with_collector_fingerprint),
        ] {
            if let Some(v) = value {
                b = set(b, v);
            }
        }
        if let Some(k) = self.audit_key {
            config::verifier_key(spelling.name(AUDIT_KEY), &k)?;
            b = b.with_audit_key(k);
        }
        if let Some(r) = self.sample_ratio {
            b = b.with_sampler(Sampler::ratio(config::sample_ratio(spelling.name(SAMPLE_RATIO), r)?));
        }
        for (k, v) in self.resource_attributes {
            b = b.with_resource_attribute(k, v);
        }
        let mut batch = BatchConfig::default();
        if let Some(n) = self.max_queue_size {
            batch.max_queue_size = config::positive_integer(spelling.name(MAX_QUEUE_SIZE), n)? as usize;
        }
        if let Some(n) = self.max_batch_size {
            batch.max_batch_size = config::positive_integer(spelling.name(MAX_BATCH_SIZE), n)? as usize;
        }
        if let Some(d) = self.scheduled_delay {
            batch.scheduled_delay = spelling.duration(SCHEDULED_DELAY, d)?;
        }
        let mut retry = RetryPolicy::default();
        if let Some(d) = self.retry_timeout {
            retry.max_elapsed = spelling.duration(RETRY_TIMEOUT, d)?;
        }
        if let Some(d) = self.request_timeout {
            retry.request_timeout = spelling.duration(REQUEST_TIMEOUT, d)?;
        }
        b = b.with_batch_config(batch).with_retry_policy(retry).with_compression(self.compression.unwrap_or(false));
        if let Some(dir) = self.spool_dir {
            b = b.with_spool_dir(dir);
        }
        if let Some(n) = self.spool_max_bytes {
            b = b.with_spool_max_bytes(config::positive_size(spelling.name(SPOOL_MAX_BYTES), n)?);
        }
        if let Some(name) = self.sdk_name {
            b = b.with_sdk(name, self.sdk_version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()));
        }
        Ok(b)
    }

    /// For a host that sends batches itself and has no files or environment (the WASM package):
    /// the endpoint and API key are required and checked here and kept out of the core (which would
    /// otherwise open a transport of its own), and the key must be PEM text or a fingerprint.
    pub fn into_host_pump(mut self, spelling: Spelling) -> Result<(TracerBuilder, HostEndpoint)> {
        let endpoint =
            self.endpoint.take().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).ok_or_else(|| {
                Error::Config(
                    "endpoint is required (the collector base URL, e.g. https://collector.example.com)".into(),
                )
            })?;
        check_endpoint(&endpoint)?;
        let api_key = self
            .api_key
            .take()
            .ok_or_else(|| Error::Config(format!("{} is required with an endpoint", spelling.name(API_KEY))))?;
        check_api_key(spelling.name(API_KEY), &api_key)?;
        match (&self.collector_public_key, &self.collector_fingerprint) {
            (Some(pem), _) if !pem.contains("-----BEGIN") => {
                return Err(Error::PublicKey(format!(
                    "{} must be PEM text (\"-----BEGIN PUBLIC KEY-----\"); there are no files to read here",
                    spelling.name(COLLECTOR_PUBLIC_KEY)
                )));
            }
            (None, None) => {
                return Err(Error::Config(format!(
                    "{} (PEM) or a collector fingerprint is required: `tracex-collector keys show` prints both, \
                     GET {{endpoint}}/v1/public-key serves the key",
                    spelling.name(COLLECTOR_PUBLIC_KEY)
                )));
            }
            _ => {}
        }
        let base = endpoint.trim_end_matches('/');
        let host = HostEndpoint {
            batches_url: format!("{base}{BATCHES_PATH}"),
            key_url: format!("{base}{PUBLIC_KEY_PATH}"),
            authorization: format!("Bearer {api_key}"),
        };
        Ok((self.into_builder(spelling)?, host))
    }
}

/// The endpoint rule: an `http://` or `https://` URL.
pub(crate) fn check_endpoint(e: &str) -> Result<()> {
    if e.starts_with("http://") || e.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::Config(format!("endpoint must start with http:// or https://: {e:?}")))
    }
}

/// The API key rule: non-empty, no spaces or control characters (it goes into a header).
pub(crate) fn check_api_key(name: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Error::Config(format!("{name} must be non-empty and contain no spaces or control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<TracerBuilder>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn messages_name_the_option_as_the_caller_spelled_it() {
        let o = Options { max_queue_size: Some(1.5), ..Options::default() };
        assert_eq!(
            message(o.clone().into_builder(Spelling::Camel)),
            "invalid configuration: maxQueueSize must be a positive integer, got 1.5"
        );
        assert_eq!(
            message(o.into_builder(Spelling::Snake)),
            "invalid configuration: max_queue_size must be a positive integer, got 1.5"
        );
        let o = Options { sample_ratio: Some(2.0), ..Options::default() };
        assert_eq!(
            message(o.into_builder(Spelling::Snake)),
            "invalid configuration: sample_ratio must be within [0, 1], got 2"
        );
    }

    #[test]
    fn a_malformed_audit_key_is_an_option_error_in_the_callers_spelling() {
        let o = Options { audit_key: Some("tracex.test/log+abb42c30".into()), ..Options::default() };
        let camel = message(o.clone().into_builder(Spelling::Camel));
        assert!(camel.starts_with("invalid configuration: auditKey must be a signed-note verifier key"), "{camel}");
        let snake = o.into_builder(Spelling::Snake).err().unwrap();
        assert_eq!(snake.code(), "TRACEX_CONFIG");
        assert!(snake.to_string().contains("audit_key must be"), "{snake}");
        // A key with a wrong key hash is as malformed as one with no key at all.
        let wrong_hash = "tracex.test/log+abb42c31+AasvLljzqPCWquKAU4QaC3VmvBMH+V5dJGHY2lESygjC";
        let o = Options { audit_key: Some(wrong_hash.into()), ..Options::default() };
        assert!(message(o.into_builder(Spelling::Camel)).contains("the key hash does not match"));
        for bad in ["", "  "] {
            let o = Options { audit_key: Some(bad.into()), ..Options::default() };
            assert!(message(o.into_builder(Spelling::Camel)).contains("auditKey"), "{bad:?}");
        }
        let good = "tracex.test/log+abb42c30+AasvLljzqPCWquKAU4QaC3VmvBMH+V5dJGHY2lESygjC";
        assert!(
            Options { audit_key: Some(format!(" {good}\n")), ..Options::default() }
                .into_builder(Spelling::Snake)
                .is_ok()
        );
    }

    #[test]
    fn durations_are_in_the_spellings_unit() {
        let o = Options { scheduled_delay: Some(-1.0), ..Options::default() };
        assert_eq!(
            message(o.clone().into_builder(Spelling::Snake)),
            "invalid configuration: scheduled_delay must be a non-negative number of seconds, got -1"
        );
        assert_eq!(
            message(o.into_builder(Spelling::Camel)),
            "invalid configuration: scheduledDelayMillis must be a non-negative number of milliseconds, got -1"
        );
        assert!(
            Options { scheduled_delay: Some(f64::NAN), ..Options::default() }.into_builder(Spelling::Camel).is_err()
        );
        assert!(Options { retry_timeout: Some(2.5), ..Options::default() }.into_builder(Spelling::Snake).is_ok());
    }

    #[test]
    fn a_host_pump_needs_an_endpoint_a_key_and_pem_text_or_a_fingerprint() {
        let pem = "-----BEGIN PUBLIC KEY-----\n…".to_owned();
        let ok = Options {
            endpoint: Some(" http://127.0.0.1:3002/ ".into()),
            api_key: Some("tx_ingest_abc".into()),
            collector_fingerprint: Some("ab".repeat(32)),
            ..Options::default()
        };
        let (_, host) = ok.clone().into_host_pump(Spelling::Camel).unwrap();
        assert_eq!(host.batches_url, "http://127.0.0.1:3002/v1/batches");
        assert_eq!(host.key_url, "http://127.0.0.1:3002/v1/public-key");
        assert_eq!(host.authorization, "Bearer tx_ingest_abc");
        let code = |o: Options| o.into_host_pump(Spelling::Camel).err().map(|e| e.code());
        assert_eq!(code(Options { endpoint: None, ..ok.clone() }), Some("TRACEX_CONFIG"));
        assert_eq!(code(Options { endpoint: Some("ftp://x".into()), ..ok.clone() }), Some("TRACEX_CONFIG"));
        assert_eq!(code(Options { api_key: Some("a b".into()), ..ok.clone() }), Some("TRACEX_CONFIG"));
        assert_eq!(code(Options { collector_fingerprint: None, ..ok.clone() }), Some("TRACEX_CONFIG"));
        let file = Options { collector_public_key: Some("/etc/key.pem".into()), ..ok.clone() };
        assert_eq!(code(file), Some("TRACEX_PUBLIC_KEY"));
        assert_eq!(code(Options { collector_public_key: Some(pem), ..ok }), None);
    }
}
