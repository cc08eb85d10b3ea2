//! `NativeTracer`: the backend the shared JS layer (`Tracer`, `Span`, …) talks to, the same
//! interface the Node addon exports. It holds the core tracer and no logic of its own beyond the
//! pump: wasm32 has no worker thread, so `flush()` fetches the collector key if only its
//! fingerprint was given, collects the sealed batches from the core, sends them with the host's
//! `fetch` (see `transport.rs`) and does what the core's delivery state machine decides; the
//! `tracex-receipt` header of each acknowledgement goes back to the core, which checks it against
//! the pinned audit key (`auditKey`) and counts it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use js_sys::{Object, Promise, Reflect};
use tracex_core::delivery::{Progress, Step};
use tracex_core::seal::{DataKey, SealedBatch};
use tracex_core::{Error, StatsSnapshot, Tracer};
use wasm_bindgen::prelude::*;

use crate::config::{self, Endpoint};
use crate::error::to_js;
use crate::transport::{self, DEFAULT_FLUSH_TIMEOUT_MS};
use crate::webcrypto::{self, HostKey};

/// A sealed batch waiting to be delivered, with its delivery progress (across flushes).
struct Queued {
    batch: SealedBatch,
    progress: Progress,
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
    /// Failed key fetches in a row and when the next may be made (`Date.now()` ms): a worker that
    /// flushes on every request must not fetch on every request while the collector is down.
    key_failures: Cell<u32>,
    next_key_fetch: Cell<f64>,
    shut_down: Cell<bool>,
    /// The collector key in the host's WebCrypto, which wraps data keys (`webcrypto.rs`).
    host_key: Rc<HostKey>,
    /// The host wrap under way, if any: flushes run concurrently (one per `waitUntil`) and wait
    /// for it rather than have the core wrap a second data key in WASM meanwhile.
    wrapping: RefCell<Option<Promise>>,
    /// The host's WebCrypto (`crypto.subtle`), looked up once (two property reads and a type check
    /// on every flush were ≈ 2 % of a flush in workerd: docs/benchmarks.md).
    host_crypto: OnceCell<Option<Object>>,
    /// The batch POST bound to this tracer's endpoint and key, made at the first send.
    sender: OnceCell<transport::Sender>,
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
    #[allow(clippy::needless_pass_by_value, reason = "wasm-bindgen hands JS arguments over owned")]
    pub fn new(#[wasm_bindgen(unchecked_param_type = "NativeOptions")] options: JsValue) -> Result<Self, JsValue> {
        let options = config::from_js(&options).map_err(|e| to_js(&e))?;
        if cfg!(all(target_arch = "wasm32", target_os = "unknown")) && !transport::has_fetch() {
            return Err(to_js(&crate::error::config("this host has no global fetch() to send batches with")));
        }
        let built = config::build(options, clock()).map_err(|e| to_js(&e))?;
        Ok(Self {
            shared: Rc::new(Shared {
                tracer: built.tracer,
                endpoint: built.endpoint,
                sample_ratio: built.sample_ratio,
                queue: RefCell::new(VecDeque::new()),
                max_queued: built.max_pending_batches,
                key_failures: Cell::new(0),
                next_key_fetch: Cell::new(f64::NEG_INFINITY),
                shut_down: Cell::new(false),
                host_key: Rc::new(HostKey::default()),
                wrapping: RefCell::new(None),
                host_crypto: OnceCell::new(),
                sender: OnceCell::new(),
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
            Ok(transport::report(&shared.tracer.report_since(&before), last_error.as_deref()))
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
                shared.tracer.give_up(&q.batch);
            }
            // Spans that never got the collector key can never be sealed.
            shared.tracer.discard_unsealed();
            let last_error = pumped.map_err(|e| to_js(&e))?;
            Ok(transport::report(&shared.tracer.report_since(&before), last_error.as_deref()))
        })
    }

    /// Self-telemetry counters (camelCase names of the core's `StatsSnapshot`).
    #[wasm_bindgen(unchecked_return_type = "Stats")]
    pub fn stats(&self) -> JsValue {
        stats_to_js(&self.shared.tracer.stats())
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

    /// The limits and batching the core resolved, which the JS layer applies on its side:
    /// `{ maxAttributes, maxEvents, maxLinks, maxExportBatchSize, maxQueueSize, scheduledDelayMillis }`.
    #[wasm_bindgen(getter)]
    pub fn limits(&self) -> JsValue {
        let (l, b) = (self.shared.tracer.span_limits(), self.shared.tracer.batch_config());
        let o = js_sys::Object::new();
        #[allow(clippy::cast_precision_loss)] // each was checked to fit a u32 when built
        for (k, v) in [
            ("maxAttributes", f64::from(l.max_attributes)),
            ("maxEvents", f64::from(l.max_events)),
            ("maxLinks", f64::from(l.max_links)),
            ("maxExportBatchSize", b.max_batch_size as f64),
            ("maxQueueSize", b.max_queue_size as f64),
            ("scheduledDelayMillis", b.scheduled_delay.as_millis() as f64),
        ] {
            // Setting a property on a fresh plain object cannot fail.
            let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_f64(v));
        }
        o.into()
    }
}

impl NativeTracer {
    /// The core tracer (for the warm-up, `warm.rs`).
    pub(crate) fn core(&self) -> &Tracer {
        &self.shared.tracer
    }
}

impl Shared {
    /// Moves newly sealed batches into the queue; beyond its bound the oldest are given up on.
    fn enqueue(&self, batches: Vec<SealedBatch>) {
        let mut q = self.queue.borrow_mut();
        q.extend(batches.into_iter().map(|batch| Queued { batch, progress: Progress::default() }));
        while q.len() > self.max_queued {
            if let Some(old) = q.pop_front() {
                self.tracer.give_up(&old.batch);
            }
        }
    }

    /// Fetches and installs the collector key when only its fingerprint is known and a fetch is
    /// due (backing off like the native worker after each failure). Why it failed, if it did.
    async fn fetch_key(&self, remaining_ms: f64) -> Option<String> {
        if !self.tracer.needs_collector_key() || js_sys::Date::now() < self.next_key_fetch.get() {
            return None;
        }
        let fetched = transport::fetch_key(&self.endpoint, remaining_ms).await;
        let installed = fetched.and_then(|pem| self.tracer.install_collector_key_pem(&pem).map_err(|e| e.to_string()));
        let Err(why) = installed else { return None };
        let failures = self.key_failures.get().saturating_add(1);
        self.key_failures.set(failures);
        let wait = self.tracer.retry_policy().key_fetch_backoff(failures, random_unit());
        self.next_key_fetch.set(js_sys::Date::now() + wait.as_secs_f64() * 1000.0);
        Some(why)
    }

    /// When the core says a new data key is due, wraps it with the host's WebCrypto and installs
    /// it, so that sealing runs no RSA in WASM. Without WebCrypto, or if it fails, the core wraps
    /// in WASM when it seals.
    async fn wrap_on_host(&self) {
        let running = self.wrapping.borrow().clone();
        let promise = match running {
            Some(p) => p,
            None => {
                let Some(subtle) = self.host_crypto.get_or_init(webcrypto::subtle).clone() else {
                    return;
                };
                let (Ok(Some(data_key)), Some(spki)) =
                    (self.tracer.data_key_due(), self.tracer.collector_key_spki_der())
                else {
                    return;
                };
                let p = wrap_and_install(subtle, self.host_key.clone(), self.tracer.clone(), spki, data_key);
                *self.wrapping.borrow_mut() = Some(p.clone());
                p
            }
        };
        let _ = wasm_bindgen_futures::JsFuture::from(promise.clone()).await;
        let mut w = self.wrapping.borrow_mut();
        if w.as_ref().is_some_and(|p| Object::is(p, &promise)) {
            *w = None;
        }
    }

    /// Collects everything from the core and sends the queue until it is empty or the deadline.
    /// Returns why the last unsuccessful attempt of this call failed, if one did: with no worker
    /// thread to log it, the report is the only place a caller (e.g. an edge worker's `waitUntil`)
    /// can learn that the collector refused or could not be reached.
    async fn pump(&self, timeout_ms: Option<f64>) -> tracex_core::Result<Option<String>> {
        let timeout = timeout_ms.filter(|t| t.is_finite() && *t >= 0.0).unwrap_or(DEFAULT_FLUSH_TIMEOUT_MS);
        let deadline = js_sys::Date::now() + timeout;
        let mut last_error = self.fetch_key(timeout).await;
        self.wrap_on_host().await;
        self.enqueue(self.tracer.collect_sealed(true)?);
        loop {
            // Never hold the queue's borrow across an await: other flushes use it meanwhile.
            let Some(mut q) = self.queue.borrow_mut().pop_front() else { return Ok(last_error) };
            let started = js_sys::Date::now();
            if deadline - started <= 0.0 {
                self.queue.borrow_mut().push_front(q);
                return Ok(last_error);
            }
            let sender = self.sender.get_or_init(|| transport::Sender::new(&self.endpoint));
            let (outcome, receipt) = transport::send(sender, &q.batch.bytes, deadline - started).await;
            let now = js_sys::Date::now();
            if let Some(reason) = transport::failure_reason(&outcome) {
                // An attempt the flush's own deadline cut short ("signal timed out") says nothing
                // new about the collector: the reason of the attempt before it stays (a browser's
                // CORS refusal, a refused connection), or the report would name whichever of the
                // two happened to come last.
                if now < deadline || last_error.is_none() {
                    last_error = Some(reason);
                }
            }
            let step = self.tracer.after_attempt(
                &q.batch,
                &mut q.progress,
                &outcome,
                millis(now - started),
                millis(now),
                Some(millis(deadline)),
            );
            match step {
                // The core checks the receipt against the pinned audit key, if any, and counts it;
                // the signature is verified by the host's WebCrypto where it has Ed25519.
                Step::Delivered => {
                    if let Some(pending) = self.tracer.pending_receipt(&q.batch, receipt.as_deref()) {
                        let verified = transport::verify_on_host(&pending).await;
                        self.tracer.finish_receipt(&pending, verified);
                    }
                }
                Step::Rejected => {}
                Step::Exhausted => self.tracer.give_up(&q.batch),
                Step::Deferred => {
                    self.queue.borrow_mut().push_front(q);
                    return Ok(last_error);
                }
                Step::RetryIn(wait) => {
                    transport::sleep_ms(wait.as_secs_f64() * 1000.0).await;
                    self.queue.borrow_mut().push_front(q);
                }
            }
        }
    }
}

/// Wraps `data_key` to the collector key `spki` with `subtle` and installs it in `tracer`; a
/// promise of its own, which concurrent flushes wait for. `init`'s warm-up runs it too, with a
/// stand-in `subtle` (`warm.rs`).
pub(crate) fn wrap_and_install(
    subtle: Object,
    host: Rc<HostKey>,
    tracer: Tracer,
    spki: Vec<u8>,
    data_key: DataKey,
) -> Promise {
    wasm_bindgen_futures::future_to_promise(async move {
        if let Some(wrapped) = host.wrap(&subtle, &spki, data_key.as_ref()).await {
            // Only a wrong length can fail; the core then wraps in WASM instead.
            let _ = tracer.install_wrapped_key(&data_key, wrapped);
        }
        Ok(JsValue::UNDEFINED)
    })
}

/// `Date.now()` milliseconds as the delivery state machine's clock.
fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
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
        ("receiptsVerified", s.receipts_verified),
        ("receiptsFailed", s.receipts_failed),
    ])
}
