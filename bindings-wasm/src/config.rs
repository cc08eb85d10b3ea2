//! `NativeOptions` (a plain JS object) → the core's [`TracerBuilder`]. Every default is resolved in
//! the core except the few that only exist here (the endpoint, which the core never sees on wasm32
//! because the binding sends with the host's `fetch`, and the default SDK name).

use std::sync::Arc;

use tracex_core::config::BatchConfig;
use tracex_core::transport::{BATCHES_PATH, PUBLIC_KEY_PATH};
use tracex_core::{Error, Result, Sampler, Tracer, TracerBuilder, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::config as config_error;

/// SDK name written into batch headers and `telemetry.sdk.name` unless the JS layer sets its own.
pub const DEFAULT_SDK_NAME: &str = "tracex-wasm";

/// The options, parsed from JS but not yet validated (validation is [`Options::build`]'s job, so it
/// can be unit-tested on the host).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Collector base URL; required on wasm32.
    pub endpoint: Option<String>,
    /// Ingest API key; required with an endpoint.
    pub api_key: Option<String>,
    /// `service.name`.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `deployment.environment.name`.
    pub environment: Option<String>,
    /// `x402.operator.id`.
    pub operator_id: Option<String>,
    /// `x402.operator.role`.
    pub operator_role: Option<String>,
    /// The collector public key, PEM text (required on wasm32: there are no files to read and a
    /// blocking key fetch is impossible).
    pub collector_public_key: Option<String>,
    /// Pinned fingerprint; checked against the PEM key when both are given.
    pub collector_fingerprint: Option<String>,
    /// Head-sampling ratio of root spans in `[0, 1]`.
    pub sample_ratio: Option<f64>,
    /// Extra resource attributes, in the order given.
    pub resource_attributes: Vec<(String, Value)>,
    /// Span buffer capacity.
    pub max_queue_size: Option<usize>,
    /// Spans per sealed batch.
    pub max_export_batch_size: Option<usize>,
    /// DEFLATE batches before sealing.
    pub compression: Option<bool>,
    /// SDK name (the JS layer passes its own).
    pub sdk_name: Option<String>,
    /// SDK version.
    pub sdk_version: Option<String>,
}

/// Where and how the binding POSTs sealed batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `{endpoint}/v1/batches`.
    pub batches_url: String,
    /// `{endpoint}/v1/public-key`, for a tracer configured with only a fingerprint.
    pub key_url: String,
    /// `Bearer <api key>`.
    pub authorization: String,
}

/// A validated configuration: the tracer, where to send, and the resolved ratio.
#[derive(Debug)]
pub struct Built {
    /// The core tracer, without a worker: the binding pumps it.
    pub tracer: Tracer,
    /// Where to send.
    pub endpoint: Endpoint,
    /// The resolved head-sampling ratio (1 when always on).
    pub sample_ratio: f64,
    /// Most sealed batches kept for a later flush before the oldest is counted as failed.
    pub max_pending_batches: usize,
}

impl Options {
    /// Validates and builds the core tracer with `clock`.
    pub fn build(self, clock: Arc<dyn tracex_core::clock::Clock>) -> Result<Built> {
        let endpoint = self.endpoint.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).ok_or_else(|| {
            config_error("endpoint is required (the collector base URL, e.g. https://collector.example.com)")
        })?;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(config_error(format!("endpoint must start with http:// or https://: {endpoint:?}")));
        }
        let api_key = self.api_key.ok_or_else(|| config_error("apiKey is required with an endpoint"))?;
        // The same rule as the core's HTTP transport; `fetch` would otherwise throw on every send.
        if api_key.is_empty() || api_key.chars().any(|c| c.is_control() || c == ' ') {
            return Err(config_error("apiKey must be non-empty and contain no spaces or control characters"));
        }
        // PEM text, or a pinned fingerprint alone: then the key is fetched from the collector by the
        // first flush (and the next ones until it arrives), so the worker starts while it is down.
        let pem = match (self.collector_public_key, &self.collector_fingerprint) {
            (Some(pem), _) if pem.contains("-----BEGIN") => Some(pem),
            (Some(_), _) => {
                return Err(Error::PublicKey(
                    "collectorPublicKey must be PEM text (\"-----BEGIN PUBLIC KEY-----\"); there are no files to read here"
                        .into(),
                ));
            }
            (None, Some(_)) => None,
            (None, None) => {
                return Err(config_error(
                    "collectorPublicKey (PEM) or collectorFingerprint is required: `tracex-collector keys show` prints \
                     both, GET {endpoint}/v1/public-key serves the key",
                ));
            }
        };

        let mut b = Tracer::builder().with_clock(clock);
        if let Some(pem) = pem {
            b = b.with_collector_public_key_pem(pem);
        }
        if let Some(fp) = self.collector_fingerprint {
            b = b.with_collector_fingerprint(fp);
        }
        for (value, set) in [
            (self.service_name, TracerBuilder::with_service_name as fn(TracerBuilder, String) -> TracerBuilder),
            (self.service_version, TracerBuilder::with_service_version),
            (self.environment, TracerBuilder::with_environment),
            (self.operator_id, TracerBuilder::with_operator_id),
            (self.operator_role, TracerBuilder::with_operator_role),
        ] {
            if let Some(v) = value {
                b = set(b, v);
            }
        }
        for (k, v) in self.resource_attributes {
            b = b.with_resource_attribute(k, v);
        }
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if let Some(r) = self.sample_ratio {
            // The core's rule (NaN included), under the name the caller wrote.
            b = b.with_sampler(Sampler::ratio(tracex_core::config::sample_ratio("sampleRatio", r)?));
        }
        let mut batch = BatchConfig::default();
        if let Some(n) = self.max_queue_size {
            batch.max_queue_size = n;
        }
        if let Some(n) = self.max_export_batch_size {
            batch.max_batch_size = n;
        }
        b = b.with_batch_config(batch).with_compression(self.compression.unwrap_or(false)).with_sdk(
            self.sdk_name.unwrap_or_else(|| DEFAULT_SDK_NAME.into()),
            self.sdk_version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        );
        // No endpoint for the core: without a transport it starts no worker, and the binding pumps it
        // with collect_sealed() and sends with fetch.
        let tracer = b.build()?;
        Ok(Built {
            tracer,
            endpoint: Endpoint {
                batches_url: format!("{}{BATCHES_PATH}", endpoint.trim_end_matches('/')),
                key_url: format!("{}{PUBLIC_KEY_PATH}", endpoint.trim_end_matches('/')),
                authorization: format!("Bearer {api_key}"),
            },
            sample_ratio,
            max_pending_batches: batch.max_pending_batches,
        })
    }
}

// === from JS ===

fn get(obj: &JsValue, key: &str) -> Result<Option<JsValue>> {
    let v = js_sys::Reflect::get(obj, &JsValue::from_str(key))
        .map_err(|_| config_error(format!("options.{key} could not be read")))?;
    Ok(if v.is_undefined() || v.is_null() { None } else { Some(v) })
}

fn string(obj: &JsValue, key: &str) -> Result<Option<String>> {
    get(obj, key)?
        .map(|v| v.as_string().ok_or_else(|| config_error(format!("options.{key} must be a string"))))
        .transpose()
}

fn number(obj: &JsValue, key: &str) -> Result<Option<f64>> {
    get(obj, key)?
        .map(|v| v.as_f64().ok_or_else(|| config_error(format!("options.{key} must be a number"))))
        .transpose()
}

fn count(obj: &JsValue, key: &str) -> Result<Option<usize>> {
    number(obj, key)?.map(|n| tracex_core::config::positive_integer(key, n).map(|v| v as usize)).transpose()
}

/// A JS attribute value: strings, booleans, and numbers (safe integers become ints, the rest doubles).
pub(crate) fn value_from_js(v: &JsValue) -> Option<Value> {
    if let Some(s) = v.as_string() {
        return Some(Value::from(s));
    }
    if let Some(b) = v.as_bool() {
        return Some(Value::Bool(b));
    }
    v.as_f64().map(Value::from_js_number)
}

impl Options {
    /// Reads a `NativeOptions` object. Unknown keys are ignored (the JS layer owns the public
    /// option names); known keys of the wrong type are a `TRACEX_CONFIG` error.
    pub fn from_js(obj: &JsValue) -> Result<Self> {
        if obj.is_undefined() || obj.is_null() {
            return Ok(Self::default());
        }
        if !obj.is_object() {
            return Err(config_error("options must be an object"));
        }
        let mut resource_attributes = Vec::new();
        if let Some(attrs) = get(obj, "resourceAttributes")? {
            let attrs: &js_sys::Object =
                attrs.dyn_ref().ok_or_else(|| config_error("options.resourceAttributes must be an object"))?;
            for entry in js_sys::Object::entries(attrs).iter() {
                let pair: js_sys::Array = entry.unchecked_into();
                let key = pair.get(0).as_string().unwrap_or_default();
                let value = value_from_js(&pair.get(1)).ok_or_else(|| {
                    config_error(format!("options.resourceAttributes.{key} must be a string, number or boolean"))
                })?;
                resource_attributes.push((key, value));
            }
        }
        let compression = get(obj, "compression")?
            .map(|v| v.as_bool().ok_or_else(|| config_error("options.compression must be a boolean")))
            .transpose()?;
        Ok(Self {
            endpoint: string(obj, "endpoint")?,
            api_key: string(obj, "apiKey")?,
            service_name: string(obj, "serviceName")?,
            service_version: string(obj, "serviceVersion")?,
            environment: string(obj, "environment")?,
            operator_id: string(obj, "operatorId")?,
            operator_role: string(obj, "operatorRole")?,
            collector_public_key: string(obj, "collectorPublicKey")?,
            collector_fingerprint: string(obj, "collectorFingerprint")?,
            sample_ratio: number(obj, "sampleRatio")?,
            resource_attributes,
            max_queue_size: count(obj, "maxQueueSize")?,
            max_export_batch_size: count(obj, "maxExportBatchSize")?,
            compression,
            sdk_name: string(obj, "sdkName")?,
            sdk_version: string(obj, "sdkVersion")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/collector-test-key.pub.pem"))
            .unwrap()
    }

    fn valid() -> Options {
        Options {
            endpoint: Some("http://127.0.0.1:3002/".into()),
            api_key: Some("tx_ingest_abc".into()),
            service_name: Some("edge".into()),
            collector_public_key: Some(pem()),
            ..Options::default()
        }
    }

    fn clock() -> Arc<dyn tracex_core::clock::Clock> {
        Arc::new(tracex_core::clock::SystemClock)
    }

    fn code(o: Options) -> &'static str {
        o.build(clock()).unwrap_err().code()
    }

    #[test]
    fn a_valid_config_builds_a_tracer_without_a_worker() {
        let built = valid().build(clock()).unwrap();
        assert!(!built.tracer.has_worker());
        assert_eq!(built.endpoint.batches_url, "http://127.0.0.1:3002/v1/batches");
        assert_eq!(built.endpoint.authorization, "Bearer tx_ingest_abc");
        assert!((built.sample_ratio - 1.0).abs() < f64::EPSILON);
        assert_eq!(built.tracer.collector_key_id().to_hex().len(), 64);
    }

    #[test]
    fn missing_or_bad_settings_are_config_errors() {
        assert_eq!(code(Options { endpoint: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { endpoint: Some("ftp://x".into()), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { api_key: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { api_key: Some("a b".into()), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { collector_public_key: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(
            code(Options { collector_public_key: None, collector_fingerprint: Some("abc".into()), ..valid() }),
            "TRACEX_CONFIG"
        );
        assert_eq!(code(Options { sample_ratio: Some(1.5), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { sample_ratio: Some(f64::NAN), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { collector_public_key: Some("/etc/key.pem".into()), ..valid() }), "TRACEX_PUBLIC_KEY");
        assert_eq!(
            code(Options { collector_fingerprint: Some("00".repeat(32)), ..valid() }),
            "TRACEX_FINGERPRINT_MISMATCH"
        );
    }

    #[test]
    fn a_fingerprint_alone_builds_a_tracer_that_waits_for_its_key() {
        let fp = valid().build(clock()).unwrap().tracer.collector_key_id().to_hex();
        let built = Options { collector_public_key: None, collector_fingerprint: Some(fp.clone()), ..valid() }
            .build(clock())
            .unwrap();
        assert!(built.tracer.needs_collector_key());
        assert_eq!(built.tracer.collector_key_id().to_hex(), fp);
        assert_eq!(built.endpoint.key_url, "http://127.0.0.1:3002/v1/public-key");
        assert_eq!(built.tracer.install_collector_key_pem(&pem()).map_err(|e| e.code()), Ok(()));
        assert!(!built.tracer.needs_collector_key());
    }

    #[test]
    fn the_ratio_and_a_matching_fingerprint_are_kept() {
        let fp = valid().build(clock()).unwrap().tracer.collector_key_id().to_hex();
        let built =
            Options { sample_ratio: Some(0.25), collector_fingerprint: Some(fp), ..valid() }.build(clock()).unwrap();
        assert!((built.sample_ratio - 0.25).abs() < f64::EPSILON);
    }
}
