//! `NativeOptions` (camelCase in JS) → `TracerBuilder`. Unset options fall back to the core's
//! defaults and `TRACEX_*` environment variables, resolved in one place: the core's `build()`.

use std::collections::HashMap;

use napi::bindgen_prelude::Either3;
use tracex_core::options::{Options, Spelling};
use tracex_core::{Tracer, TracerBuilder, Value};

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
    /// The collector's audit key, pinned (env `TRACEX_AUDIT_KEY`): its signed-note verifier key as
    /// `GET /v1/audit-key` serves it (`verifier_key`), compared out of band. Every acknowledgement's
    /// receipt is then checked and counted in `receiptsVerified` / `receiptsFailed`; a malformed
    /// key throws a `ConfigError` here.
    pub audit_key: Option<String>,
    /// Head-sampling ratio for root spans in [0, 1] (env `TRACEX_SAMPLE_RATIO`; default 1).
    pub sample_ratio: Option<f64>,
    /// Extra resource attributes.
    pub resource_attributes: Option<HashMap<String, Either3<String, f64, bool>>>,
    /// Spans buffered before new ones are dropped (default 16,384, the core's
    /// `DEFAULT_MAX_QUEUE_SIZE`).
    pub max_queue_size: Option<f64>,
    /// Spans per sealed batch (default 2,048, the core's `DEFAULT_MAX_BATCH_SIZE`).
    pub max_export_batch_size: Option<f64>,
    /// Longest wait before a partial batch is sent, in ms (default 1,000).
    pub scheduled_delay_millis: Option<f64>,
    /// Time spent retrying one batch before it is spooled or counted as failed, in ms (default
    /// 30,000).
    pub retry_timeout_millis: Option<f64>,
    /// Timeout of one request to the collector, in ms (default 10,000).
    pub request_timeout_millis: Option<f64>,
    /// Directory for batches that could not be delivered (env `TRACEX_SPOOL_DIR`).
    pub spool_dir: Option<String>,
    /// Spool size limit in bytes (default 64 MiB); past it the oldest spooled batches are evicted
    /// and counted as failed (`spansSpoolFailed`).
    pub spool_max_bytes: Option<f64>,
    /// Deflate the plaintext before sealing (default false).
    pub compression: Option<bool>,
    /// SDK name written into each batch header (the JS layer sets `tracex-node`).
    pub sdk_name: Option<String>,
    /// SDK version written into each batch header.
    pub sdk_version: Option<String>,
}

/// Builds the core tracer from JS options: a copy into the core's `Options`, which checks them.
pub fn build(env: Env, o: NativeOptions) -> napi::Result<Tracer> {
    let resource_attributes = o
        .resource_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v: Value = match v {
                Either3::A(s) => s.into(),
                Either3::B(n) => Value::from_js_number(n),
                Either3::C(flag) => flag.into(),
            };
            (k, v)
        })
        .collect();
    let options = Options {
        endpoint: o.endpoint,
        api_key: o.api_key,
        service_name: o.service_name,
        service_version: o.service_version,
        environment: o.environment,
        operator_id: o.operator_id,
        operator_role: o.operator_role,
        collector_public_key: o.collector_public_key,
        collector_fingerprint: o.collector_fingerprint,
        audit_key: o.audit_key,
        sample_ratio: o.sample_ratio,
        resource_attributes,
        max_queue_size: o.max_queue_size,
        max_batch_size: o.max_export_batch_size,
        scheduled_delay: o.scheduled_delay_millis,
        retry_timeout: o.retry_timeout_millis,
        request_timeout: o.request_timeout_millis,
        spool_dir: o.spool_dir.map(Into::into),
        spool_max_bytes: o.spool_max_bytes,
        compression: o.compression,
        sdk_name: Some(o.sdk_name.unwrap_or_else(|| "tracex-node".into())),
        sdk_version: o.sdk_version,
    };
    options.into_builder(Spelling::Camel).and_then(TracerBuilder::build).map_err(|e| to_js(env, &e))
}
