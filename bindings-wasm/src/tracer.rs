//! `NativeTracer`: the backend the shared JS layer (`Tracer`, `Span`, …) talks to, the same
//! interface the Node addon exports. It holds the core tracer and no logic of its own beyond the
//! pump: wasm32 has no worker thread, so `flush()` collects the sealed batches from the core and
//! sends them with the host's `fetch` (see `transport.rs`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use js_sys::{Object, Promise, Reflect};
use tracex_core::seal::SealedBatch;
use tracex_core::{Error, FlushReport, StatsSnapshot, Tracer};
use wasm_bindgen::prelude::*;

use crate::config::{Endpoint, Options};
use crate::error::to_js;
use crate::transport::{self, DEFAULT_FLUSH_TIMEOUT_MS, Next};

/// A sealed batch waiting to be delivered, with the attempts it has had (across flushes).
struct Queued {
    batch: SealedBatch,
    attempts: u32,
}

/// The pump's state, shared by the handle and every running `flush()`.
struct Shared {
    tracer: Tracer,
    endpoint: Endpoint,
    sample_ratio: f64,
    /// Sealed batches not yet delivered: filled from the core by each flush, drained by all of
    /// them (several flushes may run at once, e.g. one per `ctx.waitUntil`), bounded.
    queue: RefCell<VecDeque<Queued>>,
    max_queued: usize,
    /// Retry attempts (the core's own counter belongs to its worker, which wasm32 does not have).
    retries: Cell<u64>,
    shut_down: Cell<bool>,
}

/// The backend tracer. Create it with `NativeOptions`; the JS layer builds spans and hands them
/// over in bulk with `ingest`.
#[wasm_bindgen(js_name = NativeTracer)]
pub struct NativeTracer {
    shared: Rc<Shared>,
}

fn clock() -> Arc<dyn tracex_core::clock::Clock> {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        // `Date.now()`: every host has it (`performance` is not assumed). Millisecond resolution is
        // enough for batch timestamps; span times come from the JS layer.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Arc::new(tracex_core::clock::FnClock(|| (js_sys::Date::now() * 1_000_000.0) as u64))
    }
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    {
        Arc::new(tracex_core::clock::SystemClock)
    }
}

#[wasm_bindgen(js_class = NativeTracer)]
impl NativeTracer {
    /// Validates the options and creates the tracer. Throws an `Error` whose `.code` is the core's
    /// `TRACEX_*` code (`TRACEX_CONFIG`, `TRACEX_PUBLIC_KEY`, `TRACEX_FINGERPRINT_MISMATCH`).
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(unchecked_param_type = "NativeOptions")] options: JsValue) -> Result<Self, JsValue> {
        let options = Options::from_js(&options).map_err(|e| to_js(&e))?;
        if cfg!(all(target_arch = "wasm32", target_os = "unknown")) && !transport::has_fetch() {
            return Err(to_js(&crate::error::config("this host has no global fetch() to send batches with")));
        }
        let built = options.build(clock()).map_err(|e| to_js(&e))?;
        Ok(Self {
            shared: Rc::new(Shared {
                tracer: built.tracer,
                endpoint: built.endpoint,
                sample_ratio: built.sample_ratio,
                queue: RefCell::new(VecDeque::new()),
                max_queued: built.max_pending_batches,
                retries: Cell::new(0),
                shut_down: Cell::new(false),
            }),
        })
    }

    /// Decodes a span record buffer (`docs/record-buffer.md`) and records its spans; returns how many
    /// were accepted (the rest were dropped and counted: buffer full or tracer shut down). An invalid
    /// buffer is rejected whole.
    pub fn ingest(&self, records: &[u8]) -> Result<u32, JsValue> {
        crate::records::ingest(&self.shared.tracer, records).map_err(|e| to_js(&e))
    }

    /// Seals everything buffered and sends it; resolves with the `FlushReport`. Batches that could
    /// not be sent before `timeoutMs` (default 10 s) stay queued for the next flush and are
    /// reported as `pending`; batches rejected or out of retries are reported as `failed`.
    #[wasm_bindgen(unchecked_return_type = "Promise<FlushReport>")]
    pub fn flush(&self, timeout_ms: Option<f64>) -> Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if shared.shut_down.get() {
                return Err(to_js(&Error::Shutdown));
            }
            let before = shared.tracer.stats();
            let last_error = shared.pump(timeout_ms).await.map_err(|e| to_js(&e))?;
            Ok(report_to_js(&shared.report_since(&before), last_error.as_deref()))
        })
    }

    /// Stops accepting spans, then flushes; what is still undelivered at the end can never be sent
    /// and is reported as `failed`. A second call rejects with `TRACEX_SHUTDOWN`.
    #[wasm_bindgen(unchecked_return_type = "Promise<FlushReport>")]
    pub fn shutdown(&self, timeout_ms: Option<f64>) -> Promise {
        let shared = self.shared.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if shared.shut_down.replace(true) {
                return Err(to_js(&Error::Shutdown));
            }
            let before = shared.tracer.stats();
            // Stops the core accepting spans; with no worker it only reports what is in flight.
            let _ = shared.tracer.shutdown(Duration::ZERO);
            let pumped = shared.pump(timeout_ms).await;
            let left: Vec<Queued> = shared.queue.borrow_mut().drain(..).collect();
            for q in left {
                shared.tracer.note_delivery(&q.batch, false);
            }
            let last_error = pumped.map_err(|e| to_js(&e))?;
            Ok(report_to_js(&shared.report_since(&before), last_error.as_deref()))
        })
    }

    /// Self-telemetry counters (camelCase names of the core's `StatsSnapshot`).
    #[wasm_bindgen(unchecked_return_type = "Stats")]
    pub fn stats(&self) -> JsValue {
        let mut s = self.shared.tracer.stats();
        s.batches_retried += self.shared.retries.get();
        stats_to_js(&s)
    }

    /// Hex fingerprint (SHA-256 of the SPKI DER) of the collector key batches are sealed to.
    #[wasm_bindgen(getter, js_name = keyId)]
    pub fn key_id(&self) -> String {
        self.shared.tracer.collector_key_id().to_hex()
    }

    /// The resolved head-sampling ratio of root spans (1 when always on).
    #[wasm_bindgen(getter, js_name = sampleRatio)]
    pub fn sample_ratio(&self) -> f64 {
        self.shared.sample_ratio
    }
}

impl Shared {
    /// Moves newly sealed batches into the queue; beyond its bound the oldest are given up on.
    fn enqueue(&self, batches: Vec<SealedBatch>) {
        let mut q = self.queue.borrow_mut();
        q.extend(batches.into_iter().map(|batch| Queued { batch, attempts: 0 }));
        while q.len() > self.max_queued {
            if let Some(old) = q.pop_front() {
                self.tracer.note_delivery(&old.batch, false);
            }
        }
    }

    /// Collects everything from the core and sends the queue until it is empty or the deadline.
    /// Returns why the last unsuccessful attempt of this call failed, if one did: with no worker
    /// thread to log it, the report is the only place a caller (e.g. an edge worker's `waitUntil`)
    /// can learn that the collector refused or could not be reached.
    async fn pump(&self, timeout_ms: Option<f64>) -> tracex_core::Result<Option<String>> {
        let timeout = timeout_ms.filter(|t| t.is_finite() && *t >= 0.0).unwrap_or(DEFAULT_FLUSH_TIMEOUT_MS);
        let deadline = js_sys::Date::now() + timeout;
        self.enqueue(self.tracer.collect_sealed(true)?);
        let mut last_error = None;
        loop {
            // Never hold the queue's borrow across an await: other flushes use it meanwhile.
            let Some(mut q) = self.queue.borrow_mut().pop_front() else { return Ok(last_error) };
            let remaining = deadline - js_sys::Date::now();
            if remaining <= 0.0 {
                self.queue.borrow_mut().push_front(q);
                return Ok(last_error);
            }
            let outcome = transport::send(&self.endpoint, &q.batch.bytes, remaining).await;
            q.attempts += 1;
            if let Some(reason) = transport::failure_reason(&outcome) {
                last_error = Some(reason);
            }
            let remaining = deadline - js_sys::Date::now();
            match transport::next_step(&outcome, q.attempts, remaining, random_unit()) {
                Next::Delivered => self.tracer.note_delivery(&q.batch, true),
                Next::GiveUp => self.tracer.note_delivery(&q.batch, false),
                Next::Keep => {
                    self.queue.borrow_mut().push_front(q);
                    return Ok(last_error);
                }
                Next::RetryIn(ms) => {
                    self.retries.set(self.retries.get() + 1);
                    transport::sleep_ms(ms).await;
                    self.queue.borrow_mut().push_front(q);
                }
            }
        }
    }

    /// What happened since `before`, like the core's report for its worker: delivered, failed and
    /// dropped are deltas; pending is everything recorded and not yet delivered or given up on.
    fn report_since(&self, before: &StatsSnapshot) -> FlushReport {
        let now = self.tracer.stats();
        FlushReport {
            spans_delivered: now.spans_sent.saturating_sub(before.spans_sent),
            spans_spooled: 0,
            spans_failed: now.spans_failed.saturating_sub(before.spans_failed),
            spans_pending: now.spans_recorded.saturating_sub(now.spans_sent + now.spans_failed),
            spans_dropped: now.spans_dropped.saturating_sub(before.spans_dropped),
        }
    }
}

/// Uniform in `[0, 1)` from WebCrypto (through getrandom), for the backoff jitter.
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if tracex_core::ids::fill_random(&mut b).is_err() {
        return 0.5;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    r
}

fn object(fields: &[(&str, u64)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        #[allow(clippy::cast_precision_loss)] // counters stay far below 2^53
        let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(*v as f64));
    }
    o.into()
}

fn report_to_js(r: &FlushReport, last_error: Option<&str>) -> JsValue {
    let o = object(&[
        ("spansDelivered", r.spans_delivered),
        ("spooled", r.spans_spooled),
        ("failed", r.spans_failed),
        ("pending", r.spans_pending),
        ("dropped", r.spans_dropped),
    ]);
    if let Some(e) = last_error {
        let _ = Reflect::set(&o, &JsValue::from_str("lastError"), &JsValue::from_str(e));
    }
    o
}

fn stats_to_js(s: &StatsSnapshot) -> JsValue {
    object(&[
        ("spansRecorded", s.spans_recorded),
        ("spansSampledOut", s.spans_sampled_out),
        ("spansDropped", s.spans_dropped),
        ("valuesRedacted", s.values_redacted),
        ("batchesSealed", s.batches_sealed),
        ("spansSealed", s.spans_sealed),
        ("batchesSent", s.batches_sent),
        ("spansSent", s.spans_sent),
        ("batchesRetried", s.batches_retried),
        ("batchesFailed", s.batches_failed),
        ("spansFailed", s.spans_failed),
        ("batchesSpooled", s.batches_spooled),
        ("spansSpooled", s.spans_spooled),
        ("batchesUnspooled", s.batches_unspooled),
        ("spansUnspooled", s.spans_unspooled),
        ("spansSpoolFailed", s.spans_spool_failed),
        ("spoolErrors", s.spool_errors),
        ("bytesSent", s.bytes_sent),
        ("keyRotations", s.key_rotations),
    ])
}
