//! `NativeTracer`: the core tracer behind the JS `Tracer`. Every method returns at once; decoding a
//! record buffer, flushing and shutting down run as `AsyncTask`s on the libuv pool.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Uint8Array};
use napi::{Env, Task};
use napi_derive::napi;
use tracex_core::{FlushReport, Tracer};

use crate::error::to_js;
use crate::options::{NativeOptions, build};

const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// What a flush or shutdown delivered and what it could not.
#[napi(object)]
pub struct JsFlushReport {
    /// Spans the collector acknowledged.
    pub spans_delivered: f64,
    /// Spans written to the on-disk spool for a later attempt.
    pub spooled: f64,
    /// Spans given up on.
    pub failed: f64,
    /// Spans still buffered or in flight when the timeout struck.
    pub pending: f64,
    /// Spans dropped before sealing (buffer full or tracer shut down).
    pub dropped: f64,
}

#[allow(clippy::cast_precision_loss)]
impl From<FlushReport> for JsFlushReport {
    fn from(r: FlushReport) -> Self {
        Self {
            spans_delivered: r.spans_delivered as f64,
            spooled: r.spans_spooled as f64,
            failed: r.spans_failed as f64,
            pending: r.spans_pending as f64,
            dropped: r.spans_dropped as f64,
        }
    }
}

/// The core's self-telemetry counters.
#[napi(object)]
pub struct JsStats {
    pub spans_recorded: f64,
    pub spans_sampled_out: f64,
    pub spans_dropped: f64,
    pub values_redacted: f64,
    pub batches_sealed: f64,
    pub spans_sealed: f64,
    pub batches_sent: f64,
    pub spans_sent: f64,
    pub batches_retried: f64,
    pub batches_failed: f64,
    pub spans_failed: f64,
    pub batches_spooled: f64,
    pub spans_spooled: f64,
    pub batches_unspooled: f64,
    pub spans_unspooled: f64,
    pub spans_spool_failed: f64,
    pub spool_errors: f64,
    pub bytes_sent: f64,
    pub key_rotations: f64,
    /// Acknowledged batches whose receipt verified against the pinned `auditKey`.
    pub receipts_verified: f64,
    /// Acknowledged batches without a receipt, or with one that does not verify for the bytes sent
    /// (with an `auditKey` pinned): the collector did not promise to log them.
    pub receipts_failed: f64,
}

/// The native tracer. Use the JS `Tracer` instead; this is its engine.
#[napi]
pub struct NativeTracer {
    tracer: Tracer,
    buffers: Arc<BufferPool>,
}

/// Record buffers in transit from the JS thread to the pool threads, recycled. A buffer of 2,048
/// spans is ≈ 170 KB: freshly allocated, that is an `mmap` and a page fault per 4 KiB on the JS
/// thread, and the `munmap` (with its TLB shootdown) again on the JS thread when the task is
/// dropped there — together more than the spans' own recording cost. Recycled, handing one over
/// is a `memcpy` into memory that is already mapped.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// Buffers kept for reuse; more are only in flight when the pool threads fall behind.
    const KEEP: usize = 4;
    /// Larger buffers (a drain of unusually large spans) are freed rather than kept.
    const MAX_KEPT_BYTES: usize = 4 << 20;

    fn filled_with(&self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default();
        buf.extend_from_slice(bytes);
        buf
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() > Self::MAX_KEPT_BYTES {
            return;
        }
        buf.clear();
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < Self::KEEP {
            kept.push(buf);
        }
    }
}

#[napi]
impl NativeTracer {
    /// Builds the tracer; throws an `Error` with `code` `TRACEX_CONFIG`, `TRACEX_PUBLIC_KEY`, … on bad
    /// options. With only a fingerprint pinned, the key is fetched from the collector here.
    #[napi(constructor)]
    pub fn new(env: Env, options: Option<NativeOptions>) -> napi::Result<Self> {
        Ok(Self { tracer: build(env, options.unwrap_or_default())?, buffers: Arc::default() })
    }

    /// Hands a span record buffer to the core; resolves with the number of spans accepted.
    #[napi(ts_return_type = "Promise<number>")]
    #[allow(clippy::needless_pass_by_value, reason = "napi hands JS arguments over owned")]
    pub fn ingest(&self, records: Uint8Array) -> AsyncTask<Ingest> {
        AsyncTask::new(Ingest {
            tracer: self.tracer.clone(),
            bytes: self.buffers.filled_with(&records),
            buffers: Arc::clone(&self.buffers),
        })
    }

    /// Seals and sends everything buffered; resolves with what was delivered and what was not.
    #[napi(ts_return_type = "Promise<JsFlushReport>")]
    pub fn flush(&self, timeout_ms: Option<u32>) -> AsyncTask<Flush> {
        AsyncTask::new(Flush { tracer: self.tracer.clone(), timeout: timeout(timeout_ms), shutdown: false })
    }

    /// Flushes, then stops the worker; later spans are dropped and counted.
    #[napi(ts_return_type = "Promise<JsFlushReport>")]
    pub fn shutdown(&self, timeout_ms: Option<u32>) -> AsyncTask<Flush> {
        AsyncTask::new(Flush { tracer: self.tracer.clone(), timeout: timeout(timeout_ms), shutdown: true })
    }

    /// Self-telemetry counters.
    #[napi]
    #[allow(clippy::cast_precision_loss)]
    pub fn stats(&self) -> JsStats {
        let s = self.tracer.stats();
        JsStats {
            spans_recorded: s.spans_recorded as f64,
            spans_sampled_out: s.spans_sampled_out as f64,
            spans_dropped: s.spans_dropped as f64,
            values_redacted: s.values_redacted as f64,
            batches_sealed: s.batches_sealed as f64,
            spans_sealed: s.spans_sealed as f64,
            batches_sent: s.batches_sent as f64,
            spans_sent: s.spans_sent as f64,
            batches_retried: s.batches_retried as f64,
            batches_failed: s.batches_failed as f64,
            spans_failed: s.spans_failed as f64,
            batches_spooled: s.batches_spooled as f64,
            spans_spooled: s.spans_spooled as f64,
            batches_unspooled: s.batches_unspooled as f64,
            spans_unspooled: s.spans_unspooled as f64,
            spans_spool_failed: s.spans_spool_failed as f64,
            spool_errors: s.spool_errors as f64,
            bytes_sent: s.bytes_sent as f64,
            key_rotations: s.key_rotations as f64,
            receipts_verified: s.receipts_verified as f64,
            receipts_failed: s.receipts_failed as f64,
        }
    }

    /// Hex SHA-256 fingerprint of the collector key batches are sealed to.
    #[napi(getter)]
    pub fn key_id(&self) -> String {
        self.tracer.collector_key_id().to_hex()
    }

    /// The head-sampling ratio for root spans, as resolved by the core (options or env).
    #[napi(getter)]
    pub fn sample_ratio(&self) -> f64 {
        self.tracer.sampler().root_ratio()
    }

    /// The limits and batching the core resolved, which the JS layer applies on its side.
    #[napi(getter)]
    pub fn limits(&self) -> NativeLimits {
        let (l, b) = (self.tracer.span_limits(), self.tracer.batch_config());
        #[allow(clippy::cast_possible_truncation)] // each was checked to fit a u32 when built
        NativeLimits {
            max_attributes: l.max_attributes,
            max_events: l.max_events,
            max_links: l.max_links,
            max_export_batch_size: b.max_batch_size as u32,
            max_queue_size: b.max_queue_size as u32,
            scheduled_delay_millis: b.scheduled_delay.as_millis() as u32,
        }
    }
}

/// Per-span limits and batching as the core resolved them (defaults, options, environment).
#[napi(object)]
pub struct NativeLimits {
    pub max_attributes: u32,
    pub max_events: u32,
    pub max_links: u32,
    pub max_export_batch_size: u32,
    pub max_queue_size: u32,
    pub scheduled_delay_millis: u32,
}

fn timeout(ms: Option<u32>) -> Duration {
    Duration::from_millis(u64::from(ms.unwrap_or(DEFAULT_TIMEOUT_MS)))
}

/// Decodes and records a record buffer off the event loop.
pub struct Ingest {
    tracer: Tracer,
    bytes: Vec<u8>,
    buffers: Arc<BufferPool>,
}

impl Task for Ingest {
    type Output = tracex_core::Result<usize>;
    type JsValue = u32;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let accepted = self.tracer.ingest_records(&self.bytes);
        // Back to the pool from here, so that the JS thread neither frees nor allocates it.
        self.buffers.recycle(std::mem::take(&mut self.bytes));
        Ok(accepted)
    }

    fn resolve(&mut self, env: Env, n: Self::Output) -> napi::Result<u32> {
        n.map(|n| u32::try_from(n).unwrap_or(u32::MAX)).map_err(|e| to_js(env, &e))
    }
}

/// Flush or shutdown, waiting on a pool thread.
pub struct Flush {
    tracer: Tracer,
    timeout: Duration,
    shutdown: bool,
}

impl Task for Flush {
    type Output = tracex_core::Result<FlushReport>;
    type JsValue = JsFlushReport;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(if self.shutdown { self.tracer.shutdown(self.timeout) } else { self.tracer.flush(self.timeout) })
    }

    fn resolve(&mut self, env: Env, r: Self::Output) -> napi::Result<JsFlushReport> {
        r.map(Into::into).map_err(|e| to_js(env, &e))
    }
}
