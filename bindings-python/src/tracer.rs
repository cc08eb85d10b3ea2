//! `Tracer`: options in, a core tracer out; flush and shutdown wait with the GIL released.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use tracex_core::options::{Options, Spelling};
use tracex_core::{FlushReport, Tracer};

use crate::error::{self, IntoPyResult};
use crate::span::{self, PySpan};

/// The core tracer behind a Python `Tracer` and every span it started. Replaced as a whole in a
/// forked child (see [`PyTracer::after_fork_in_child`]), so spans ended after a fork record into the
/// child's working tracer.
///
/// Fork safety of the lock: every read section is short, pure Rust and runs with the GIL held, and
/// `os.fork()` runs with the GIL held by the forking thread, so no other thread can be inside a
/// section when the process forks: the child's copy of the lock is always free. Flush and shutdown
/// clone the tracer out of the lock before releasing the GIL to wait.
pub(crate) struct Shared {
    tracer: RwLock<Tracer>,
}

impl Shared {
    #[inline]
    pub(crate) fn get(&self) -> RwLockReadGuard<'_, Tracer> {
        // Nothing panics while holding the lock; a poisoned lock still holds a valid tracer.
        self.tracer.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Records spans and delivers them, sealed, to the collector.
#[pyclass(module = "tracex._native", name = "Tracer", subclass, frozen, weakref)]
pub struct PyTracer {
    pub(crate) shared: Arc<Shared>,
}

/// A `timeout=` argument of flush/shutdown.
fn seconds(py: Python<'_>, name: &str, v: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| error::config(py, format!("{name} must be a non-negative number of seconds, got {v}")))
}

#[pymethods]
impl PyTracer {
    /// See `tracex/_native.pyi` for the documented options; unset options fall back to `TRACEX_*`
    /// environment variables inside the core.
    #[new]
    #[pyo3(signature = (
        *,
        endpoint = None,
        api_key = None,
        service_name = None,
        service_version = None,
        environment = None,
        collector_public_key = None,
        collector_fingerprint = None,
        audit_key = None,
        sample_ratio = None,
        spool_dir = None,
        spool_max_bytes = None,
        resource_attributes = None,
        operator_id = None,
        operator_role = None,
        max_queue_size = None,
        max_batch_size = None,
        scheduled_delay = None,
        retry_timeout = None,
        request_timeout = None,
        compression = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        endpoint: Option<String>,
        api_key: Option<String>,
        service_name: Option<String>,
        service_version: Option<String>,
        environment: Option<String>,
        collector_public_key: Option<String>,
        collector_fingerprint: Option<String>,
        audit_key: Option<String>,
        sample_ratio: Option<f64>,
        spool_dir: Option<std::path::PathBuf>,
        spool_max_bytes: Option<u64>,
        resource_attributes: Option<&Bound<'_, PyAny>>,
        operator_id: Option<String>,
        operator_role: Option<String>,
        max_queue_size: Option<usize>,
        max_batch_size: Option<usize>,
        scheduled_delay: Option<f64>,
        retry_timeout: Option<f64>,
        request_timeout: Option<f64>,
        compression: bool,
    ) -> PyResult<Self> {
        let resource_attributes = match resource_attributes.filter(|a| !a.is_none()) {
            Some(attrs) => span::to_key_values(attrs)?.into_iter().map(|kv| (kv.key.to_string(), kv.value)).collect(),
            None => Vec::new(),
        };
        #[allow(clippy::cast_precision_loss)] // beyond 2^53 a count fails the core's check either way
        let options = Options {
            endpoint,
            api_key,
            service_name,
            service_version,
            environment,
            operator_id,
            operator_role,
            collector_public_key,
            collector_fingerprint,
            audit_key,
            sample_ratio,
            resource_attributes,
            max_queue_size: max_queue_size.map(|n| n as f64),
            max_batch_size: max_batch_size.map(|n| n as f64),
            scheduled_delay,
            retry_timeout,
            request_timeout,
            spool_dir,
            spool_max_bytes: spool_max_bytes.map(|n| n as f64),
            compression: Some(compression),
            sdk_name: Some("tracex-python".into()),
            sdk_version: None,
        };
        let b = options.into_builder(Spelling::Snake).py_err(py)?;
        // Opening the HTTP client loads the TLS roots: not with the GIL held.
        let tracer = py.detach(move || b.build()).py_err(py)?;
        Ok(Self { shared: Arc::new(Shared { tracer: RwLock::new(tracer) }) })
    }

    /// Starts a span; `with tracer.span(...) as span:` makes it current and ends it.
    #[pyo3(signature = (name, *, attributes = None, parent = None, root = false, kind = None, start_time = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn span(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        attributes: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, PyAny>>,
        root: bool,
        kind: Option<&Bound<'_, PyString>>,
        start_time: Option<u64>,
    ) -> PyResult<PySpan> {
        PySpan::start(py, &self.shared, name, attributes, parent, root, kind, start_time)
    }

    /// Starts a span that is not made current (end it with `span.end()`).
    #[pyo3(signature = (name, *, attributes = None, parent = None, root = false, kind = None, start_time = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn start_span(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        attributes: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, PyAny>>,
        root: bool,
        kind: Option<&Bound<'_, PyString>>,
        start_time: Option<u64>,
    ) -> PyResult<PySpan> {
        PySpan::start(py, &self.shared, name, attributes, parent, root, kind, start_time)
    }

    /// Delivers everything recorded so far, waiting at most `timeout` seconds (GIL released).
    #[pyo3(signature = (timeout = 5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<PyFlushReport> {
        let timeout = seconds(py, "timeout", timeout)?;
        let tracer = self.shared.get().clone();
        py.detach(move || tracer.flush(timeout)).map(PyFlushReport).py_err(py)
    }

    /// Stops accepting spans and delivers what is buffered within `timeout` seconds (GIL released).
    #[pyo3(signature = (timeout = 5.0))]
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<PyFlushReport> {
        let timeout = seconds(py, "timeout", timeout)?;
        let tracer = self.shared.get().clone();
        py.detach(move || tracer.shutdown(timeout)).map(PyFlushReport).py_err(py)
    }

    /// Self-telemetry counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.shared.get().stats();
        let d = PyDict::new(py);
        for (k, v) in [
            ("spans_recorded", s.spans_recorded),
            ("spans_sampled_out", s.spans_sampled_out),
            ("spans_dropped", s.spans_dropped),
            ("values_redacted", s.values_redacted),
            ("batches_sealed", s.batches_sealed),
            ("spans_sealed", s.spans_sealed),
            ("batches_sent", s.batches_sent),
            ("spans_sent", s.spans_sent),
            ("batches_retried", s.batches_retried),
            ("batches_failed", s.batches_failed),
            ("spans_failed", s.spans_failed),
            ("batches_spooled", s.batches_spooled),
            ("spans_spooled", s.spans_spooled),
            ("batches_unspooled", s.batches_unspooled),
            ("spans_unspooled", s.spans_unspooled),
            ("spans_spool_failed", s.spans_spool_failed),
            ("spool_errors", s.spool_errors),
            ("bytes_sent", s.bytes_sent),
            ("key_rotations", s.key_rotations),
            ("receipts_verified", s.receipts_verified),
            ("receipts_failed", s.receipts_failed),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// SHA-256 fingerprint (hex) of the collector key batches are sealed to.
    #[getter]
    fn collector_fingerprint(&self) -> String {
        self.shared.get().collector_key_id().to_hex()
    }

    /// Called in a forked child (the `tracex` package registers it with `os.register_at_fork`):
    /// swaps in the core's fresh tracer for the child (`Tracer::after_fork_in_child`).
    fn _after_fork_in_child(&self, py: Python<'_>) -> PyResult<()> {
        let mut slot = self.shared.tracer.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = slot.after_fork_in_child().py_err(py)?;
        *slot = fresh;
        Ok(())
    }
}

/// What `flush()` or `shutdown()` achieved.
#[pyclass(module = "tracex._native", name = "FlushReport", frozen)]
pub struct PyFlushReport(FlushReport);

#[pymethods]
impl PyFlushReport {
    /// Spans the collector acknowledged during the call.
    #[getter]
    fn spans_delivered(&self) -> u64 {
        self.0.spans_delivered
    }
    /// Spans written to the on-disk spool during the call (delivered later).
    #[getter]
    fn spans_spooled(&self) -> u64 {
        self.0.spans_spooled
    }
    /// Spans given up on during the call.
    #[getter]
    fn spans_failed(&self) -> u64 {
        self.0.spans_failed
    }
    /// Spans still buffered or being retried when the call returned (non-zero after a timeout).
    #[getter]
    fn spans_pending(&self) -> u64 {
        self.0.spans_pending
    }
    /// Spans dropped during the call (buffer full or tracer shut down).
    #[getter]
    fn spans_dropped(&self) -> u64 {
        self.0.spans_dropped
    }
    /// True when nothing was lost or left pending.
    #[getter]
    fn complete(&self) -> bool {
        self.0.is_complete()
    }
    fn __bool__(&self) -> bool {
        self.0.is_complete()
    }
    fn __repr__(&self) -> String {
        let r = &self.0;
        format!(
            "FlushReport(spans_delivered={}, spans_spooled={}, spans_failed={}, spans_pending={}, spans_dropped={})",
            r.spans_delivered, r.spans_spooled, r.spans_failed, r.spans_pending, r.spans_dropped
        )
    }
}
