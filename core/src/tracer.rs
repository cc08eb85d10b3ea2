//! The tracer: creates spans, owns the buffer and the pipeline, and (on native targets with a
//! transport) the background worker.

use std::path::PathBuf;
#[cfg(feature = "worker")]
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::batch::{Pipeline, SealerSource};
use crate::buffer::SpanBuffer;
use crate::clock::Clock;
use crate::config::{self, BatchConfig, SpanLimits};
use crate::context::SpanContext;
use crate::delivery::{Delivery, Progress, Step};
use crate::error::{Error, Result};
use crate::model::{
    DEPLOYMENT_ENVIRONMENT, InstrumentationScope, KeyValue, Resource, SERVICE_VERSION, SpanData, Str,
    TELEMETRY_SDK_LANGUAGE, TELEMETRY_SDK_NAME, TELEMETRY_SDK_VERSION, TraceId, Value, X402_OPERATOR_ID,
    X402_OPERATOR_ROLE,
};
use crate::redact::Redactor;
use crate::sampler::Sampler;
use crate::seal::{CollectorKey, KeyId, KeyRotation, SealedBatch, SealerConfig};
use crate::shared::Core;
pub use crate::shared::FlushReport;
use crate::span::{Span, SpanBuilder};
use crate::stats::{Stats, StatsSnapshot};
#[cfg(feature = "worker")]
use crate::transport::Transport;
use crate::transport::{RetryPolicy, SendOutcome};

struct Inner {
    core: Arc<Core>,
    sampler: Sampler,
    limits: SpanLimits,
    accepting: AtomicBool,
    #[cfg(feature = "worker")]
    worker: Mutex<Option<crate::worker::Worker>>,
    blueprint: Arc<Blueprint>,
}

/// Everything [`TracerBuilder::build`] resolved, kept so that a forked child can start a pipeline
/// of its own from the same configuration ([`Tracer::after_fork_in_child`]).
struct Blueprint {
    resource: Resource,
    scope: InstrumentationScope,
    redactor: Redactor,
    /// Given as PEM at build time, or set once fetched (so a forked child reuses it).
    key: Arc<OnceLock<CollectorKey>>,
    key_id: KeyId,
    sealer: SealerConfig,
    sampler: Sampler,
    limits: SpanLimits,
    batch: BatchConfig,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    /// The pinned audit key: every acknowledgement's receipt is checked against it (by the worker,
    /// or through [`Tracer::check_receipt`] by a host pump).
    audit_key: Option<crate::audit::VerifierKey>,
    #[cfg(feature = "worker")]
    delivery: Option<Transports>,
}

/// How batches leave the process: a way to open a transport, where to fetch the collector key
/// from when only its fingerprint was given, and the spool.
#[cfg(feature = "worker")]
struct Transports {
    /// `None` for a transport given as an instance ([`TracerBuilder::with_transport`]), which
    /// cannot be opened a second time.
    factory: Option<TransportFactory>,
    key_source: Option<KeySourceFactory>,
    spool: Option<(PathBuf, u64)>,
}

/// Fetches the collector's public key as PEM (checked against the pinned fingerprint by the caller).
#[cfg(feature = "worker")]
pub(crate) type KeySource = Box<dyn FnMut() -> Result<String> + Send>;
/// Makes the key source of one tracer's worker (again in a forked child, like the transport).
#[cfg(feature = "worker")]
type KeySourceFactory = Arc<dyn Fn() -> KeySource + Send + Sync>;

/// Opens a new transport: used at start and again in a forked child, whose copy of the parent's
/// transport (connection pool, runtime thread) is unusable.
#[cfg(feature = "worker")]
pub type TransportFactory = Arc<dyn Fn() -> Result<Box<dyn Transport>> + Send + Sync>;

impl Drop for Inner {
    fn drop(&mut self) {
        #[cfg(feature = "worker")]
        if let Some(w) = self.worker.get_mut().ok().and_then(Option::take) {
            let _ = w.shutdown(&self.core, DROP_SHUTDOWN_TIMEOUT);
        }
    }
}

/// How long dropping the last tracer handle waits for buffered spans to be delivered.
pub const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Records spans and gets them, sealed, to the collector. Cheap to clone (one `Arc`).
///
/// ```no_run
/// use tracex_core::{Tracer, SpanKind};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tracer = Tracer::builder()
///     .with_service_name("settler")
///     .with_endpoint("http://127.0.0.1:3002")
///     .with_api_key("tx_ingest_…")
///     .with_collector_public_key_pem(std::fs::read_to_string("collector.pub.pem")?)
///     .build()?;
/// {
///     let mut span = tracer.span_builder("settle").kind(SpanKind::Server).start();
///     span.set_attribute("x402.network", "base").set_attribute("x402.amount", "1000000");
/// } // ends here
/// tracer.shutdown(std::time::Duration::from_secs(5))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("collector_key_id", &self.inner.core.key_id()).finish_non_exhaustive()
    }
}

impl Tracer {
    /// A builder with defaults and environment fallbacks.
    pub fn builder() -> TracerBuilder {
        TracerBuilder::default()
    }

    /// Starts a span named `name` whose parent is the current span of this thread.
    #[inline]
    pub fn span(&self, name: impl Into<Str>) -> Span<'_> {
        SpanBuilder::new(self, name.into()).start()
    }

    /// A builder for a span with a kind, parent, start attributes or links.
    #[inline]
    pub fn span_builder(&self, name: impl Into<Str>) -> SpanBuilder<'_> {
        SpanBuilder::new(self, name.into())
    }

    /// Runs `f` inside a new span that is current for the duration; the span ends when `f` returns.
    pub fn in_span<T>(&self, name: impl Into<Str>, f: impl FnOnce(&mut Span<'_>) -> T) -> T {
        let mut span = self.span(name);
        let _entered = span.enter();
        f(&mut span)
    }

    /// Makes a sampling decision for a new span and counts sampled-out spans. For bindings that
    /// build spans on their own side of the language boundary.
    #[inline]
    pub fn sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        let sampled = self.inner.sampler.should_sample(parent, trace_id);
        if !sampled {
            self.inner.core.stats.sampled_out();
        }
        sampled
    }

    /// Records a finished span (bindings build spans in bulk and hand them over here). Never blocks:
    /// returns false, and counts a drop, when the buffer is full or the tracer is shut down.
    #[inline]
    pub fn record(&self, span: SpanData) -> bool {
        let mut boxed = self.span_box();
        *boxed = span;
        self.record_boxed(boxed)
    }

    /// [`record`](Self::record) for a span built in a box from [`span_box`](Self::span_box).
    #[inline]
    pub(crate) fn record_boxed(&self, span: Box<SpanData>) -> bool {
        if !self.inner.accepting.load(Ordering::Relaxed) {
            Stats::add(&self.inner.core.stats.spans_dropped, 1);
            return false;
        }
        self.inner.core.buffer.push(span, &self.inner.core.stats)
    }

    /// Records every span of a record buffer (`docs/record-buffer.md`) written by a host package, and
    /// counts the spans it sampled out. Returns how many spans were accepted (the rest were dropped
    /// and counted). A malformed buffer is rejected whole with [`Error::InvalidRecords`].
    pub fn ingest_records(&self, buf: &[u8]) -> Result<usize> {
        let (sampled_out, spans) = crate::records::decode_boxed(buf, || self.span_box())?;
        self.inner.core.stats.sampled_out_many(sampled_out);
        Ok(spans.into_iter().map(|s| self.record_boxed(s)).filter(|&accepted| accepted).count())
    }

    /// The head sampler in use (resolved from the builder or `TRACEX_SAMPLE_RATIO`). Host packages
    /// that start spans on their own side apply the same rule.
    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// Now, from the tracer's clock (unix nanoseconds).
    #[inline]
    pub fn now(&self) -> u64 {
        self.inner.core.clock.now_unix_nanos()
    }

    #[inline]
    pub(crate) fn span_box(&self) -> Box<SpanData> {
        self.inner.core.buffer.span_box()
    }

    #[inline]
    pub(crate) fn limits(&self) -> &SpanLimits {
        &self.inner.limits
    }

    /// The per-span limits in force (defaults or [`TracerBuilder::with_span_limits`]): hosts that
    /// record spans on their side (the JS layer) apply these instead of constants of their own.
    pub fn span_limits(&self) -> SpanLimits {
        self.inner.limits
    }

    /// The batching settings in force (defaults or [`TracerBuilder::with_batch_config`]).
    pub fn batch_config(&self) -> BatchConfig {
        self.inner.blueprint.batch
    }

    /// The retry policy in force (defaults or [`TracerBuilder::with_retry_policy`]): a host pump
    /// paces its key fetches with it.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.blueprint.retry
    }

    /// The fingerprint of the collector key batches are sealed to.
    pub fn collector_key_id(&self) -> KeyId {
        self.inner.core.key_id()
    }

    /// True until the collector key is known: a tracer configured with only a pinned fingerprint
    /// starts at once (the collector may be down) and keeps spans in its bounded buffer, in memory,
    /// until the key is fetched — by the worker, or by a host pump through
    /// [`Tracer::install_collector_key_pem`].
    pub fn needs_collector_key(&self) -> bool {
        self.inner.core.needs_key()
    }

    /// Installs the collector key a host fetched (`GET /v1/public-key`), after checking it against
    /// the pinned fingerprint ([`Error::FingerprintMismatch`] otherwise).
    pub fn install_collector_key_pem(&self, pem: &str) -> Result<()> {
        self.inner.core.install_key_pem(pem)
    }

    /// For a host pump's shutdown: drops the spans that can never be sealed because the collector
    /// key never arrived, counted as failed; returns how many. Nothing once the key is known.
    pub fn discard_unsealed(&self) -> u64 {
        self.inner.core.discard_unsealed()
    }

    /// Self-telemetry counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.core.snapshot()
    }

    /// True when a background worker delivers batches (native, with a transport); false when the
    /// host pumps with [`Tracer::collect_sealed`] (wasm32, or no endpoint configured).
    pub fn has_worker(&self) -> bool {
        #[cfg(feature = "worker")]
        {
            self.inner.worker.lock().is_ok_and(|w| w.is_some())
        }
        #[cfg(not(feature = "worker"))]
        {
            false
        }
    }

    /// The pump, for hosts without a worker: drains the buffer and returns the batches that are due
    /// (a full batch, or anything pending once the scheduled delay has passed; everything when
    /// `force`). The host sends them and reports each attempt with [`Tracer::after_attempt`].
    pub fn collect_sealed(&self, force: bool) -> Result<Vec<SealedBatch>> {
        if self.has_worker() {
            return Err(Error::Config("this tracer has a background worker; use flush() instead".into()));
        }
        let mut out = Vec::new();
        self.inner.core.collect(force, &mut |b| out.push(b));
        Ok(out)
    }

    /// For a host pump that wraps data keys with its own RSA-OAEP (WebCrypto on wasm32) before it
    /// collects: a fresh data key when the next batch needs one (none yet, or a rotation is due),
    /// `None` otherwise, while nothing is buffered, or while the collector key is unknown. The host wraps it to
    /// [`Tracer::collector_key_spki_der`] (RSA-OAEP, SHA-256, MGF1-SHA-256, empty label) and gives
    /// it back with [`Tracer::install_wrapped_key`]; if it never does, sealing wraps in Rust.
    pub fn data_key_due(&self) -> Result<Option<crate::seal::DataKey>> {
        self.inner.core.data_key_due()
    }

    /// Installs a data key the host wrapped (counted in `key_rotations`). Fails when `wrapped` is
    /// not as long as the collector key's modulus.
    pub fn install_wrapped_key(&self, data_key: &crate::seal::DataKey, wrapped: Vec<u8>) -> Result<()> {
        self.inner.core.install_wrapped_key(data_key, wrapped)
    }

    /// The collector key's SubjectPublicKeyInfo DER, for a host importing it into its own crypto;
    /// `None` while the key is unknown.
    pub fn collector_key_spki_der(&self) -> Option<Vec<u8>> {
        self.inner.core.key_spki_der()
    }

    /// For a host pump: feeds the outcome of one attempt at `batch` into the core's delivery
    /// state machine ([`crate::delivery`]) and counts the decision. `now` is the host's monotonic
    /// clock (any origin, the same in every call), `deadline` when its flush stops sending. On
    /// [`Step::Exhausted`] the host gives the batch up ([`Tracer::give_up`]; it has no spool), on
    /// [`Step::Deferred`] it keeps the batch, with its progress, for the next flush.
    pub fn after_attempt(
        &self,
        batch: &SealedBatch,
        progress: &mut Progress,
        outcome: &SendOutcome,
        took: Duration,
        now: Duration,
        deadline: Option<Duration>,
    ) -> Step {
        self.inner.core.after_attempt(progress, outcome, took, now, deadline, (batch.span_count, batch.bytes.len()))
    }

    /// For a host pump, after [`Step::Delivered`]: checks the receipt of `batch` against the pinned
    /// audit key and counts it in `receipts_verified` or `receipts_failed`, as the worker does.
    /// `receipt_header` is the acknowledgement's [`crate::transport::RECEIPT_HEADER`] value as
    /// received (base64), `None` when it had none. Nothing happens without an audit key.
    pub fn check_receipt(&self, batch: &SealedBatch, receipt_header: Option<&str>) {
        let note = receipt_header.and_then(crate::transport::decode_receipt_header);
        self.inner.core.check_receipt(&batch.batch_id, &batch.bytes, note.as_deref());
    }

    /// [`Tracer::check_receipt`] in two steps, for a host pump with native Ed25519 (the WASM
    /// package verifies with WebCrypto: ≈ 50–75 µs a receipt in workerd against ≈ 200 µs in WASM).
    /// This step checks everything but the signatures and hands them over, `None` without an audit
    /// key; [`Tracer::finish_receipt`] counts the outcome.
    pub fn pending_receipt(
        &self,
        batch: &SealedBatch,
        receipt_header: Option<&str>,
    ) -> Option<crate::audit::PendingReceipt> {
        let note = receipt_header.and_then(crate::transport::decode_receipt_header);
        self.inner.core.pending_receipt(&batch.batch_id, &batch.bytes, note.as_deref())
    }

    /// Counts `pending` in `receipts_verified` or `receipts_failed`: `host_verified` is whether every
    /// one of its signatures verified on the host, `None` if the host could not tell (then the core
    /// verifies them).
    pub fn finish_receipt(&self, pending: &crate::audit::PendingReceipt, host_verified: Option<bool>) {
        self.inner.core.finish_receipt(pending, host_verified);
    }

    /// For a host pump: counts a batch it will never send (queue bound, retries exhausted, shut
    /// down) as failed.
    pub fn give_up(&self, batch: &SealedBatch) {
        self.inner.core.give_up(batch.span_count);
    }

    /// What happened since the counters were `before` (taken with [`Tracer::stats`] when a host's
    /// flush began): the same report the worker's flush gives.
    pub fn report_since(&self, before: &StatsSnapshot) -> FlushReport {
        FlushReport::between(&self.inner.core, before)
    }

    /// Starts this tracer over in a child process created by `fork()`, and returns the tracer the
    /// child must use from now on. Call it in the child, right after the fork, before recording.
    ///
    /// After `fork()` only the forking thread exists in the child: the worker threads are gone, and
    /// any lock they held (the pipeline, the worker handle) stays locked in the child's copy. So this
    /// touches nothing of the old tracer's mutable state. It reseeds the id generators (parent and
    /// child must never repeat ids) and builds a new tracer from the configuration resolved at build
    /// time: new buffer and pipeline (so a new envelope instance id and sequence), a newly opened
    /// transport and new worker threads. The old handle is leaked on purpose: dropping it would try
    /// to shut down and join threads that do not exist in the child.
    ///
    /// Spans that were still buffered when the process forked are not sent by the child: they
    /// belong to the parent, which delivers them (the child's copy is leaked with the old handle and
    /// appears in neither process's counters). The parent is not affected by any of this.
    ///
    /// Errors with [`Error::Config`] when the tracer was built with a transport instance
    /// ([`TracerBuilder::with_transport`]) rather than a factory, since that cannot be reopened.
    pub fn after_fork_in_child(&self) -> Result<Tracer> {
        crate::ids::reseed_after_fork();
        std::mem::forget(self.clone());
        let bp = self.inner.blueprint.clone();
        #[cfg(feature = "worker")]
        let transport = match &bp.delivery {
            Some(Transports { factory: Some(open), .. }) => Some(open()?),
            Some(Transports { factory: None, .. }) => {
                return Err(Error::Config(
                    "a transport given as an instance cannot be reopened after fork: use with_transport_factory".into(),
                ));
            }
            None => None,
        };
        let tracer = start(
            bp,
            #[cfg(feature = "worker")]
            transport,
        )?;
        if !self.inner.accepting.load(Ordering::Relaxed) {
            tracer.inner.accepting.store(false, Ordering::Relaxed);
        }
        Ok(tracer)
    }

    /// Delivers everything recorded so far, waiting at most `timeout` (the waiting happens here;
    /// sealing and sending happen on the worker). Spans that could not be delivered in time are
    /// reported as pending and keep being retried in the background.
    pub fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        if !self.inner.accepting.load(Ordering::Relaxed) {
            return Err(Error::Shutdown);
        }
        #[cfg(feature = "worker")]
        {
            let guard = self.inner.worker.lock().map_err(|_| Error::Shutdown)?;
            if let Some(w) = guard.as_ref() {
                return w.flush(&self.inner.core, timeout);
            }
        }
        let _ = timeout;
        Err(Error::Config("no transport configured: use collect_sealed() to pump batches".into()))
    }

    /// Stops accepting spans, delivers what is buffered within `timeout`, spools (or counts as
    /// failed) what could not be delivered, and stops the worker. Later calls return
    /// [`Error::Shutdown`].
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        if !self.inner.accepting.swap(false, Ordering::AcqRel) {
            return Err(Error::Shutdown);
        }
        #[cfg(feature = "worker")]
        {
            let worker = self.inner.worker.lock().map_err(|_| Error::Shutdown)?.take();
            if let Some(w) = worker {
                return w.shutdown(&self.inner.core, timeout);
            }
        }
        let _ = timeout;
        Ok(FlushReport { spans_pending: self.inner.core.in_flight(), ..FlushReport::default() })
    }
}

// === builder ===

/// Configures a [`Tracer`]. Unset values fall back to `TRACEX_*` environment variables, then to
/// defaults; everything is resolved in [`TracerBuilder::build`].
#[must_use]
#[derive(Default)]
pub struct TracerBuilder {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    operator_id: Option<String>,
    operator_role: Option<String>,
    resource_attributes: Vec<KeyValue>,
    endpoint: Option<String>,
    api_key: Option<String>,
    public_key_pem: Option<String>,
    fingerprint: Option<String>,
    sampler: Option<Sampler>,
    limits: SpanLimits,
    batch: BatchConfig,
    rotation: KeyRotation,
    compress: bool,
    redactor: Option<Redactor>,
    retry: RetryPolicy,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    audit_key: Option<String>,
    clock: Option<Arc<dyn Clock>>,
    sdk: Option<(String, String)>,
    #[cfg(feature = "worker")]
    transport: Option<Box<dyn Transport>>,
    #[cfg(feature = "worker")]
    transport_factory: Option<TransportFactory>,
    #[cfg(feature = "worker")]
    key_source: Option<KeySourceFactory>,
}

impl TracerBuilder {
    /// `service.name` (env `TRACEX_SERVICE_NAME`; default `unknown_service`).
    pub fn with_service_name(mut self, v: impl Into<String>) -> Self {
        self.service_name = Some(v.into());
        self
    }
    /// `service.version` (env `TRACEX_SERVICE_VERSION`).
    pub fn with_service_version(mut self, v: impl Into<String>) -> Self {
        self.service_version = Some(v.into());
        self
    }
    /// `deployment.environment.name` (env `TRACEX_ENVIRONMENT`).
    pub fn with_environment(mut self, v: impl Into<String>) -> Self {
        self.environment = Some(v.into());
        self
    }
    /// `x402.operator.id`: which facilitator/settler instance this is.
    pub fn with_operator_id(mut self, v: impl Into<String>) -> Self {
        self.operator_id = Some(v.into());
        self
    }
    /// `x402.operator.role`: `facilitator`, `settler`, `treasury`, …
    pub fn with_operator_role(mut self, v: impl Into<String>) -> Self {
        self.operator_role = Some(v.into());
        self
    }
    /// Any other resource attribute.
    pub fn with_resource_attribute(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.resource_attributes.push(KeyValue::new(key, value));
        self
    }
    /// Collector base URL (env `TRACEX_ENDPOINT`), e.g. `http://127.0.0.1:3002`.
    pub fn with_endpoint(mut self, v: impl Into<String>) -> Self {
        self.endpoint = Some(v.into());
        self
    }
    /// Ingest API key (env `TRACEX_API_KEY`), sent as a bearer token.
    pub fn with_api_key(mut self, v: impl Into<String>) -> Self {
        self.api_key = Some(v.into());
        self
    }
    /// The collector's public key as PEM (env `TRACEX_COLLECTOR_PUBLIC_KEY`, PEM text or a path).
    pub fn with_collector_public_key_pem(mut self, v: impl Into<String>) -> Self {
        self.public_key_pem = Some(v.into());
        self
    }
    /// Pins the collector key's SHA-256 fingerprint (env `TRACEX_COLLECTOR_FINGERPRINT`). With an
    /// endpoint and no PEM, the key is fetched from `GET /v1/public-key` and checked against it.
    pub fn with_collector_fingerprint(mut self, v: impl Into<String>) -> Self {
        self.fingerprint = Some(v.into());
        self
    }
    /// Head sampler (env `TRACEX_SAMPLE_RATIO` gives `ParentBased(TraceIdRatio)`; default
    /// `ParentBased(AlwaysOn)`).
    pub fn with_sampler(mut self, s: Sampler) -> Self {
        self.sampler = Some(s);
        self
    }
    /// Per-span limits.
    pub fn with_span_limits(mut self, l: SpanLimits) -> Self {
        self.limits = l;
        self
    }
    /// Batching settings.
    pub fn with_batch_config(mut self, b: BatchConfig) -> Self {
        self.batch = b;
        self
    }
    /// Data-key rotation.
    pub fn with_key_rotation(mut self, r: KeyRotation) -> Self {
        self.rotation = r;
        self
    }
    /// DEFLATE batches before sealing (default off).
    pub fn with_compression(mut self, on: bool) -> Self {
        self.compress = on;
        self
    }
    /// Redaction rules (default: [`Redactor::default`]).
    pub fn with_redactor(mut self, r: Redactor) -> Self {
        self.redactor = Some(r);
        self
    }
    /// Retry policy of the sender.
    pub fn with_retry_policy(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }
    /// Directory where batches that could not be delivered are kept and retried, also across
    /// restarts (env `TRACEX_SPOOL_DIR`; default: no spool).
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }
    /// Pins the collector's audit key (env `TRACEX_AUDIT_KEY`; its verifier key as
    /// `GET /v1/audit-key` gives it, compared out of band): every acknowledgement must carry a
    /// receipt signed by it for exactly the bytes sent, counted in `receipts_verified`, or the
    /// batch is counted in `receipts_failed` (it is delivered all the same). See docs/audit.md.
    pub fn with_audit_key(mut self, verifier_key: impl Into<String>) -> Self {
        self.audit_key = Some(verifier_key.into());
        self
    }
    /// Spool size limit (default 64 MiB); beyond it the oldest spooled batches are evicted and
    /// counted as failed (`spans_spool_failed`).
    pub fn with_spool_max_bytes(mut self, n: u64) -> Self {
        self.spool_max_bytes = Some(n);
        self
    }
    /// The clock (required on wasm32, where there is no system clock).
    pub fn with_clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = Some(c);
        self
    }
    /// SDK name and version written into batch headers and `telemetry.sdk.*` (bindings set theirs).
    pub fn with_sdk(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.sdk = Some((name.into(), version.into()));
        self
    }
    /// A custom transport instead of HTTP (e.g. `transport::MemoryTransport` with feature `testing`).
    #[cfg(feature = "worker")]
    pub fn with_transport(mut self, t: Box<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// A custom transport opened by `factory` (once at start, and again in a forked child, see
    /// [`Tracer::after_fork_in_child`]). Takes precedence over [`TracerBuilder::with_transport`].
    #[cfg(feature = "worker")]
    pub fn with_transport_factory(
        mut self,
        factory: impl Fn() -> Result<Box<dyn Transport>> + Send + Sync + 'static,
    ) -> Self {
        self.transport_factory = Some(Arc::new(factory));
        self
    }

    /// Where the worker fetches the collector key (PEM) from when only its fingerprint is pinned;
    /// the default with an endpoint is `GET {endpoint}/v1/public-key`. For custom transports.
    #[cfg(feature = "worker")]
    pub fn with_collector_key_source(mut self, source: impl Fn() -> Result<String> + Send + Sync + 'static) -> Self {
        let source = Arc::new(source);
        self.key_source = Some(Arc::new(move || {
            let source = source.clone();
            Box::new(move || source()) as KeySource
        }));
        self
    }

    /// Resolves everything and starts the tracer (and its worker, when there is a transport).
    pub fn build(self) -> Result<Tracer> {
        let service_name = self
            .service_name
            .or_else(|| config::env(config::ENV_SERVICE_NAME))
            .unwrap_or_else(|| "unknown_service".into());
        let (sdk_name, sdk_version) =
            self.sdk.unwrap_or_else(|| ("tracex-rust".into(), env!("CARGO_PKG_VERSION").into()));
        let language = sdk_name.strip_prefix("tracex-").unwrap_or("rust").to_owned();
        let mut resource = Resource::new(service_name);
        resource.set(TELEMETRY_SDK_NAME, sdk_name.clone());
        resource.set(TELEMETRY_SDK_VERSION, sdk_version.clone());
        resource.set(TELEMETRY_SDK_LANGUAGE, language);
        for (key, value) in [
            (SERVICE_VERSION, self.service_version.or_else(|| config::env(config::ENV_SERVICE_VERSION))),
            (DEPLOYMENT_ENVIRONMENT, self.environment.or_else(|| config::env(config::ENV_ENVIRONMENT))),
            (X402_OPERATOR_ID, self.operator_id),
            (X402_OPERATOR_ROLE, self.operator_role),
        ] {
            if let Some(v) = value {
                resource.set(key, v);
            }
        }
        for kv in self.resource_attributes {
            resource.set(kv.key, kv.value);
        }
        if resource.service_name().is_none_or(str::is_empty) {
            return Err(Error::Config("service name must not be empty".into()));
        }

        let endpoint = self.endpoint.or_else(|| config::env(config::ENV_ENDPOINT));
        if let Some(e) = &endpoint {
            crate::options::check_endpoint(e)?;
        }
        let api_key = self.api_key.or_else(|| config::env(config::ENV_API_KEY));
        let fingerprint = self.fingerprint.or_else(|| config::env(config::ENV_COLLECTOR_FINGERPRINT));
        let pem = match self.public_key_pem.or_else(|| config::env(config::ENV_COLLECTOR_PUBLIC_KEY)) {
            Some(p) if !p.contains("-----BEGIN") => Some(std::fs::read_to_string(&p).map_err(|e| {
                Error::Config(format!("collector public key is neither PEM nor a readable file ({p}): {e}"))
            })?),
            other => other,
        };
        // With a PEM key it is known now; with only a pinned fingerprint it is fetched in the
        // background, so the service starts while the collector is down.
        let key = Arc::new(OnceLock::new());
        let key_id = match (pem, &fingerprint) {
            (Some(pem), _) => {
                let k = CollectorKey::from_pem(&pem)?;
                if let Some(fp) = &fingerprint {
                    k.verify_fingerprint(fp)?;
                }
                let id = k.key_id();
                let _ = key.set(k);
                id
            }
            (None, Some(fp)) => KeyId::from_hex(fp)?,
            (None, None) => {
                return Err(Error::Config(
                    "the collector public key is required: set it as PEM (collector public key / TRACEX_COLLECTOR_PUBLIC_KEY), \
                     or pin its fingerprint (TRACEX_COLLECTOR_FINGERPRINT) and set an endpoint to fetch it"
                        .into(),
                ));
            }
        };

        let sampler = match self.sampler {
            Some(s) => s,
            None => match config::env(config::ENV_SAMPLE_RATIO) {
                Some(r) => {
                    let ratio: f64 =
                        r.parse().map_err(|_| Error::Config(format!("TRACEX_SAMPLE_RATIO is not a number: {r:?}")))?;
                    Sampler::ratio(config::sample_ratio(config::ENV_SAMPLE_RATIO, ratio)?)
                }
                None => Sampler::default(),
            },
        };
        check_ratio(&sampler)?;
        let batch = self.batch;
        for (name, n) in [
            ("max_batch_size", batch.max_batch_size),
            ("max_queue_size", batch.max_queue_size),
            ("max_pending_batches", batch.max_pending_batches),
            ("max_concurrent_exports", batch.max_concurrent_exports),
        ] {
            #[allow(clippy::cast_precision_loss)] // beyond 2^53 it fails the check either way
            config::positive_integer(name, n as f64)?;
        }

        let clock: Arc<dyn Clock> = match self.clock {
            Some(c) => c,
            None if cfg!(all(target_arch = "wasm32", target_os = "unknown")) => {
                return Err(Error::Config("wasm32 has no system clock: configure one with with_clock".into()));
            }
            #[cfg(not(target_arch = "wasm32"))]
            None => Arc::new(crate::clock::TscClock::new()),
            #[cfg(target_arch = "wasm32")]
            None => Arc::new(crate::clock::SystemClock),
        };
        let redactor = self.redactor.unwrap_or_default();
        redactor.redact_resource(&mut resource);
        let sealer = SealerConfig {
            sdk_name: sdk_name.clone(),
            sdk_version: sdk_version.clone(),
            rotation: self.rotation,
            compress: self.compress,
        };
        sealer.check()?;
        let scope = InstrumentationScope { name: sdk_name.into(), version: sdk_version.into(), ..Default::default() };
        // Checked on every target: a host pump (wasm32) verifies receipts through the core too.
        let audit_key = match self.audit_key.or_else(|| config::env(config::ENV_AUDIT_KEY)) {
            Some(k) => Some(config::verifier_key("the audit key (TRACEX_AUDIT_KEY)", &k)?),
            None => None,
        };

        #[cfg(feature = "worker")]
        let (delivery, first_transport) = {
            let retry = self.retry;
            let mut key_source = self.key_source;
            let (factory, instance): (Option<TransportFactory>, Option<Box<dyn Transport>>) =
                match (self.transport_factory, self.transport, endpoint) {
                    (Some(f), _, _) => (Some(f), None),
                    (None, Some(t), _) => (None, Some(t)),
                    (None, None, Some(endpoint)) => {
                        let api_key = api_key.ok_or_else(|| {
                            Error::Config("an API key is required with an endpoint (api key / TRACEX_API_KEY)".into())
                        })?;
                        let base = endpoint.clone();
                        key_source.get_or_insert_with(|| key_fetcher(base));
                        let open: TransportFactory = Arc::new(move || http_transport(&endpoint, &api_key, &retry));
                        (Some(open), None)
                    }
                    (None, None, None) => (None, None),
                };
            if key.get().is_none() && (factory.is_some() || instance.is_some()) && key_source.is_none() {
                return Err(Error::Config(
                    "a pinned fingerprint without a PEM key needs an endpoint (or a key source) to fetch the key from"
                        .into(),
                ));
            }
            let transport = match (&factory, instance) {
                (Some(open), _) => Some(open()?),
                (None, t) => t,
            };
            let spool_dir = self.spool_dir.or_else(|| config::env(config::ENV_SPOOL_DIR).map(PathBuf::from));
            let spool = spool_dir.map(|d| (d, self.spool_max_bytes.unwrap_or(config::DEFAULT_SPOOL_MAX_BYTES)));
            let delivery = transport.as_ref().map(|_| Transports { factory, key_source, spool });
            (delivery, transport)
        };
        #[cfg(not(feature = "worker"))]
        {
            let _ = (api_key, self.spool_dir, self.spool_max_bytes);
            if endpoint.is_some() {
                return Err(Error::Config(
                    "this build has no HTTP transport (feature `http`); pump with collect_sealed()".into(),
                ));
            }
        }

        let blueprint = Blueprint {
            resource,
            scope,
            redactor,
            key,
            key_id,
            sealer,
            sampler,
            limits: self.limits,
            batch,
            clock,
            retry: self.retry,
            audit_key,
            #[cfg(feature = "worker")]
            delivery,
        };
        start(
            Arc::new(blueprint),
            #[cfg(feature = "worker")]
            first_transport,
        )
    }
}

/// Starts a tracer from a resolved configuration: buffer, pipeline (with a new sealer, hence a new
/// envelope instance id) and, with a transport, the worker threads.
#[cfg_attr(not(feature = "worker"), allow(clippy::unnecessary_wraps, reason = "only starting threads can fail"))]
fn start(bp: Arc<Blueprint>, #[cfg(feature = "worker")] transport: Option<Box<dyn Transport>>) -> Result<Tracer> {
    let now = bp.clock.now_unix_nanos();
    let pipeline = Pipeline::new(
        bp.resource.clone(),
        bp.scope.clone(),
        bp.redactor.clone(),
        SealerSource { key: bp.key.clone(), config: bp.sealer.clone() },
        bp.limits,
        bp.batch,
        now,
    );
    let core = Arc::new(
        Core::new(
            SpanBuffer::new(bp.batch.max_queue_size, bp.batch.max_batch_size),
            bp.clock.clone(),
            bp.batch,
            pipeline,
            bp.key.clone(),
            bp.key_id,
            Delivery::new(bp.retry),
        )
        .with_audit_key(bp.audit_key.clone()),
    );

    #[cfg(feature = "worker")]
    let worker = match (transport, &bp.delivery) {
        (Some(t), Some(d)) => {
            let spool = match &d.spool {
                Some((dir, max)) => Some(crate::spool::Spool::open(dir.clone(), *max)?),
                None => None,
            };
            let key_source = d.key_source.as_ref().map(|make| make());
            Some(crate::worker::Worker::spawn(&core, t, key_source, bp.retry, spool)?)
        }
        _ => None,
    };

    Ok(Tracer {
        inner: Arc::new(Inner {
            core,
            sampler: bp.sampler.clone(),
            limits: bp.limits,
            accepting: AtomicBool::new(true),
            #[cfg(feature = "worker")]
            worker: Mutex::new(worker),
            blueprint: bp,
        }),
    })
}

fn check_ratio(s: &Sampler) -> Result<()> {
    match s {
        Sampler::TraceIdRatio(r) => config::sample_ratio("sample ratio", *r).map(|_| ()),
        Sampler::ParentBased(root) => check_ratio(root),
        _ => Ok(()),
    }
}

#[cfg(feature = "http")]
fn http_transport(endpoint: &str, api_key: &str, retry: &RetryPolicy) -> Result<Box<dyn Transport>> {
    Ok(Box::new(crate::transport::HttpTransport::new(endpoint, api_key, retry.request_timeout)?))
}

#[cfg(all(feature = "worker", not(feature = "http")))]
fn http_transport(_endpoint: &str, _api_key: &str, _retry: &RetryPolicy) -> Result<Box<dyn Transport>> {
    Err(Error::Config("this build has no HTTP transport (feature `http`); configure with_transport".into()))
}

#[cfg(feature = "http")]
fn key_fetcher(endpoint: String) -> KeySourceFactory {
    Arc::new(move || {
        let mut fetcher = crate::transport::KeyFetcher::new(&endpoint);
        Box::new(move || fetcher.fetch()) as KeySource
    })
}

#[cfg(all(feature = "worker", not(feature = "http")))]
fn key_fetcher(_endpoint: String) -> KeySourceFactory {
    Arc::new(|| {
        Box::new(|| Err(Error::Config("this build cannot fetch the collector key: pass it as PEM".into()))) as KeySource
    })
}
