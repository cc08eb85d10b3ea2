//! `NativeOptions` (a plain JS object) → the core's [`Options`], which checks them and, for a host
//! that sends batches itself, also the endpoint and API key ([`Options::into_host_pump`]). Nothing
//! is decided here but the default SDK name.

use std::sync::Arc;

use tracex_core::options::{HostEndpoint, Options, Spelling};
use tracex_core::{Result, Tracer, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::config as config_error;

/// SDK name written into batch headers and `telemetry.sdk.name` unless the JS layer sets its own.
pub const DEFAULT_SDK_NAME: &str = "tracex-wasm";

/// Where and how the binding POSTs sealed batches.
pub type Endpoint = HostEndpoint;

/// A validated configuration: the tracer, where to send, and the resolved ratio.
#[derive(Debug)]
pub struct Built {
    /// The core tracer, without a worker: the binding pumps it.
    pub tracer: Tracer,
    /// Where to send.
    pub endpoint: Endpoint,
    /// The resolved head-sampling ratio of root spans (1 when always on).
    pub sample_ratio: f64,
    /// Most sealed batches kept for a later flush before the oldest is counted as failed.
    pub max_pending_batches: usize,
}

/// Checks the options (in the core) and builds the tracer with `clock`. The core never sees the
/// endpoint here: without a transport it starts no worker, and the binding pumps it and sends with
/// `fetch`.
pub fn build(mut options: Options, clock: Arc<dyn tracex_core::clock::Clock>) -> Result<Built> {
    options.sdk_name.get_or_insert_with(|| DEFAULT_SDK_NAME.into());
    let (builder, endpoint) = options.into_host_pump(Spelling::Camel)?;
    let tracer = builder.with_clock(clock).build()?;
    Ok(Built {
        sample_ratio: tracer.sampler().root_ratio(),
        max_pending_batches: tracer.batch_config().max_pending_batches,
        endpoint,
        tracer,
    })
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

/// Reads a `NativeOptions` object. Unknown keys are ignored (the JS layer owns the public
/// option names); known keys of the wrong type are a `TRACEX_CONFIG` error.
pub fn from_js(obj: &JsValue) -> Result<Options> {
    if obj.is_undefined() || obj.is_null() {
        return Ok(Options::default());
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
    // Filled through two loops rather than one struct literal: one call site per helper instead of
    // one per option, each with its own cleanup of the fields read before it (−1.8 KB of code,
    // −270 B gzipped: the module's size budget is tight).
    let mut o = Options { resource_attributes, compression, ..Options::default() };
    for (key, slot) in [
        ("endpoint", &mut o.endpoint),
        ("apiKey", &mut o.api_key),
        ("serviceName", &mut o.service_name),
        ("serviceVersion", &mut o.service_version),
        ("environment", &mut o.environment),
        ("operatorId", &mut o.operator_id),
        ("operatorRole", &mut o.operator_role),
        ("collectorPublicKey", &mut o.collector_public_key),
        ("collectorFingerprint", &mut o.collector_fingerprint),
        ("auditKey", &mut o.audit_key),
        ("sdkName", &mut o.sdk_name),
        ("sdkVersion", &mut o.sdk_version),
    ] {
        *slot = string(obj, key)?;
    }
    for (key, slot) in [
        ("sampleRatio", &mut o.sample_ratio),
        ("maxQueueSize", &mut o.max_queue_size),
        ("maxExportBatchSize", &mut o.max_batch_size),
    ] {
        *slot = number(obj, key)?;
    }
    Ok(o)
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
        build(o, clock()).unwrap_err().code()
    }

    #[test]
    fn a_valid_config_builds_a_tracer_without_a_worker() {
        let built = build(valid(), clock()).unwrap();
        assert!(!built.tracer.has_worker());
        assert_eq!(built.endpoint.batches_url, "http://127.0.0.1:3002/v1/batches");
        assert_eq!(built.endpoint.authorization, "Bearer tx_ingest_abc");
        assert!((built.sample_ratio - 1.0).abs() < f64::EPSILON);
        assert_eq!(built.tracer.collector_key_id().to_hex().len(), 64);
        let audit_key = "tracex.test/log+abb42c30+AasvLljzqPCWquKAU4QaC3VmvBMH+V5dJGHY2lESygjC";
        assert!(build(Options { audit_key: Some(audit_key.into()), ..valid() }, clock()).is_ok());
    }

    #[test]
    fn missing_or_bad_settings_are_config_errors() {
        assert_eq!(code(Options { endpoint: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { api_key: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { collector_public_key: None, ..valid() }), "TRACEX_CONFIG");
        assert_eq!(
            code(Options { collector_public_key: None, collector_fingerprint: Some("abc".into()), ..valid() }),
            "TRACEX_CONFIG"
        );
        assert_eq!(code(Options { max_queue_size: Some(0.0), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { sample_ratio: Some(f64::NAN), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(code(Options { audit_key: Some("tracex.test/log+abb42c30".into()), ..valid() }), "TRACEX_CONFIG");
        assert_eq!(
            code(Options { collector_fingerprint: Some("00".repeat(32)), ..valid() }),
            "TRACEX_FINGERPRINT_MISMATCH"
        );
    }

    #[test]
    fn a_fingerprint_alone_builds_a_tracer_that_waits_for_its_key() {
        let fp = build(valid(), clock()).unwrap().tracer.collector_key_id().to_hex();
        let built =
            build(Options { collector_public_key: None, collector_fingerprint: Some(fp.clone()), ..valid() }, clock())
                .unwrap();
        assert!(built.tracer.needs_collector_key());
        assert_eq!(built.tracer.collector_key_id().to_hex(), fp);
        assert_eq!(built.endpoint.key_url, "http://127.0.0.1:3002/v1/public-key");
        assert_eq!(built.tracer.install_collector_key_pem(&pem()).map_err(|e| e.code()), Ok(()));
        assert!(!built.tracer.needs_collector_key());
    }

    #[test]
    fn the_ratio_and_a_matching_fingerprint_are_kept() {
        let fp = build(valid(), clock()).unwrap().tracer.collector_key_id().to_hex();
        let built =
            build(Options { sample_ratio: Some(0.25), collector_fingerprint: Some(fp), ..valid() }, clock()).unwrap();
        assert!((built.sample_ratio - 0.25).abs() < f64::EPSILON);
    }
}
