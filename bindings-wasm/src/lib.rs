//! # tracex-wasm
//!
//! tracex for edge workers (Cloudflare-Workers-style runtimes, Deno, browsers) and Node: the core
//! compiled to `wasm32-unknown-unknown` with wasm-bindgen. This crate is only the backend the shared
//! JS layer talks to (`NativeTracer`, the same interface as the Node addon's); the user-facing API
//! (`Tracer`, `Span`, `trace`) is JavaScript, in the package built by `scripts/build-wasm.sh`.
//!
//! ```text
//! JS layer ─ record buffer ─▶ NativeTracer::ingest ─▶ core buffer
//! flush() ─▶ core pump (collect_sealed: batch, redact, encode, seal) ─▶ fetch POST /v1/batches
//!                                                                      └─ retry / count, report
//! ```
//!
//! wasm32 has no threads and no clock: the batcher runs when the host calls `flush()` (typically
//! `ctx.waitUntil(tracer.flush())`), time is `Date.now()`, randomness is WebCrypto (getrandom's
//! `js` backend), and sealed batches go out through the host's global `fetch`.

mod audit;
mod config;
mod error;
mod records;
mod seal;
// Test-only entry points: only `scripts/build-wasm.sh --testing` builds with feature `testing`.
#[cfg(feature = "testing")]
mod testing;
mod tracer;
mod transport;
mod warm;
mod webcrypto;

pub use audit::{open_checkpoint, verify_consistency, verify_inclusion, verify_receipt};
pub use config::{DEFAULT_SDK_NAME, Endpoint};
pub use seal::collector_key_id;
#[cfg(feature = "testing")]
pub use testing::{core_error, open_with_data_key, seal_with_fixed_inputs};
pub use tracer::NativeTracer;
pub use transport::{DEFAULT_FLUSH_TIMEOUT_MS, retry_after};
pub use warm::warm_up;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of the backend tracer; the JS layer resolves defaults and passes these through. */
export interface NativeOptions {
  /** Collector base URL, e.g. "https://collector.example.com" (required). */
  endpoint?: string;
  /** Ingest API key, sent as a bearer token (required). */
  apiKey?: string;
  serviceName?: string;
  serviceVersion?: string;
  environment?: string;
  operatorId?: string;
  operatorRole?: string;
  /** The collector public key as PEM (required in the WASM package). */
  collectorPublicKey?: string;
  /** Pinned SHA-256 fingerprint, checked against collectorPublicKey. */
  collectorFingerprint?: string;
  /**
   * The collector's audit key, pinned: its signed-note verifier key as `GET /v1/audit-key` serves it
   * (`verifier_key`), compared out of band. Every acknowledgement's receipt (the `tracex-receipt`
   * header) is then verified by the core and counted in `receiptsVerified` / `receiptsFailed`; a
   * malformed key throws a `ConfigError` here.
   */
  auditKey?: string;
  /** Head-sampling ratio of root spans in [0, 1] (default 1). */
  sampleRatio?: number;
  resourceAttributes?: Record<string, string | number | boolean>;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  compression?: boolean;
  sdkName?: string;
  sdkVersion?: string;
}

/** What a flush or shutdown achieved (spans). */
export interface FlushReport {
  spansDelivered: number;
  /** Always 0 here: the WASM package has no disk spool. */
  spooled: number;
  failed: number;
  /** Still queued when the call returned; retried by the next flush. */
  pending: number;
  dropped: number;
  /**
   * Why the last unsuccessful send of this call failed ("HTTP 401: …", a network error), when one
   * did; absent when every attempt succeeded.
   */
  lastError?: string;
}

/** Self-telemetry counters. */
export interface Stats {
  spansRecorded: number; spansSampledOut: number; spansDropped: number; valuesRedacted: number;
  batchesSealed: number; spansSealed: number; batchesSent: number; spansSent: number;
  batchesRetried: number; batchesFailed: number; spansFailed: number; batchesSpooled: number;
  spansSpooled: number; batchesUnspooled: number; spansUnspooled: number; spansSpoolFailed: number;
  spoolErrors: number; bytesSent: number; keyRotations: number;
  /** Acknowledged batches whose receipt verified against the pinned `auditKey`. */
  receiptsVerified: number;
  /** Acknowledged batches without a receipt, or with one that does not verify (with `auditKey` pinned). */
  receiptsFailed: number;
}
"#;
