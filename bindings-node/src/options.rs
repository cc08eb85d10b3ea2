//! `NativeOptions` (camelCase in JS) → `TracerBuilder`. Unset options fall back to the core's
//! defaults and `TRACEX_*` environment variables, resolved in one place: the core's `build()`.

use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::Either3;
use tracex_core::config::BatchConfig;
use tracex_core::{Sampler, Tracer, TracerBuilder, Value};

use napi::Env;

use crate::error::to_js;

/// Options of the native tracer; the JS `Tracer` passes its options through.
#[napi_derive::napi(object)]
#[derive(Default)]
pub struct NativeOptions {
    /// Collector base URL (env `TRACEX_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Ingest API key (env `TRACEX_API_KEY`).
    pub api_key: Option<String>,
    /// `service.name` (env `TRACEX_SERVICE_NAME`).
    pub service_name: Option<String>,
    /// `service.version` (env `TRACEX_SERVICE_VERSION`).
    pub service_version: Option<String>,
    /// `deployment.environment.name` (env `TRACEX_ENVIRONMENT`).
    pub environment: Option<String>,
    /// `x402.operator.id`: this facilitator's or settler's id.
    pub operator_id: Option<String>,
    /// `x402.operator.role`, e.g. `facilitator`.
    pub operator_role: Option<String>,
    /// The collector's public key as PEM, or a path to it (env `TRACEX_COLLECTOR_PUBLIC_KEY`).
    pub collector_public_key: Option<String>,
    /// Pinned SHA-256 fingerprint of the collector key (env `TRACEX_COLLECTOR_FINGERPRINT`).
    pub collector_fingerprint: Option<String>,
    /// Head-sampling ratio for root spans in [0, 1] (env `TRACEX_SAMPLE_RATIO`; default 1).
    pub sample_ratio: Option<f64>,
    /// Extra resource attributes.
    pub resource_attributes: Option<HashMap<String, Either3<String, f64, bool>>>,
    /// Spans buffered before new ones are dropped (default 16,384, the core's
    /// `DEFAULT_MAX_QUEUE_SIZE`).
    pub max_queue_size: Option<f64>,
    /// Spans per sealed batch (default 512).
    pub max_export_batch_size: Option<f64>,
    /// Longest wait before a partial batch is sent, in ms (default 1,000).
    pub scheduled_delay_millis: Option<f64>,
    /// Directory for batches that could not be delivered (env `TRACEX_SPOOL_DIR`).
    pub spool_dir: Option<String>,
    /// Deflate the plaintext before sealing (default false).
    pub compression: Option<bool>,
    /// SDK name written into each batch header (the JS layer sets `tracex-node`).
    pub sdk_name: Option<String>,
    /// SDK version written into each batch header.
    pub sdk_version: Option<String>,
}

/// Builds the core tracer from JS options.
pub fn build(env: &Env, o: NativeOptions) -> napi::Result<Tracer> {
    let mut b: TracerBuilder = Tracer::builder();
    macro_rules! set {
        ($field:expr, $with:ident) => {
            if let Some(v) = $field {
                b = b.$with(v);
            }
        };
    }
    set!(o.endpoint, with_endpoint);
    set!(o.api_key, with_api_key);
    set!(o.service_name, with_service_name);
    set!(o.service_version, with_service_version);
    set!(o.environment, with_environment);
    set!(o.operator_id, with_operator_id);
    set!(o.operator_role, with_operator_role);
    set!(o.collector_public_key, with_collector_public_key_pem);
    set!(o.collector_fingerprint, with_collector_fingerprint);
    set!(o.spool_dir, with_spool_dir);
    set!(o.compression, with_compression);
    if let Some(r) = o.sample_ratio {
        let r = tracex_core::config::sample_ratio("sampleRatio", r).map_err(|e| to_js(env, &e))?;
        b = b.with_sampler(Sampler::ratio(r));
    }
    for (k, v) in o.resource_attributes.unwrap_or_default() {
        let v: Value = match v {
            Either3::A(s) => s.into(),
            Either3::B(n) => Value::from_js_number(n),
            Either3::C(flag) => flag.into(),
        };
        b = b.with_resource_attribute(k, v);
    }
    let mut batch = BatchConfig::default();
    if let Some(n) = o.max_queue_size {
        batch.max_queue_size = positive(env, n, "maxQueueSize")? as usize;
    }
    if let Some(n) = o.max_export_batch_size {
        batch.max_batch_size = positive(env, n, "maxExportBatchSize")? as usize;
    }
    if let Some(ms) = o.scheduled_delay_millis {
        batch.scheduled_delay = Duration::from_millis(u64::from(positive(env, ms, "scheduledDelayMillis")?));
    }
    b = b.with_batch_config(batch);
    b = b.with_sdk(
        o.sdk_name.unwrap_or_else(|| "tracex-node".into()),
        o.sdk_version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
    );
    b.build().map_err(|e| to_js(env, &e))
}

/// The JS number as given (a `u32` field would silently truncate 1.5 or wrap -1), checked by the
/// core's one rule for counts.
fn positive(env: &Env, n: f64, name: &str) -> napi::Result<u32> {
    tracex_core::config::positive_integer(name, n).map_err(|e| to_js(env, &e))
}

/// The ratio the JS layer applies to root spans, read back from the core's resolved sampler.
pub fn root_ratio(s: &Sampler) -> f64 {
    match s {
        Sampler::AlwaysOn => 1.0,
        Sampler::AlwaysOff => 0.0,
        Sampler::TraceIdRatio(r) => *r,
        Sampler::ParentBased(root) => root_ratio(root),
    }
}
