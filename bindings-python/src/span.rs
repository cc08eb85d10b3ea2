//! `Span` and `SpanContext`: the core's `UnboundSpan` and `SpanContext` behind Python objects, the
//! current span in a `contextvars.ContextVar`, and Python values converted to attribute values.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::exceptions::{PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use pyo3::{IntoPyObjectExt, intern};
use tracex_core::{KeyValue, Parent, SpanContext, SpanKind, Status, StatusCode, Str, Tracer, UnboundSpan, Value};

use crate::error::IntoPyResult;
use crate::tracer::Shared;

// === current span ===

/// The `ContextVar` and, under the limited API, its bound methods, looked up once (the hot path
/// calls them per span).
pub(crate) struct Current {
    var: Py<PyAny>,
    #[cfg(limited_api)]
    get: Py<PyAny>,
    #[cfg(limited_api)]
    set: Py<PyAny>,
    #[cfg(limited_api)]
    reset: Py<PyAny>,
}

static CURRENT: PyOnceLock<Current> = PyOnceLock::new();

fn current(py: Python<'_>) -> PyResult<&Current> {
    CURRENT.get_or_try_init(py, || {
        let cv = py.import("contextvars")?.getattr("ContextVar")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        let var = cv.call(("tracex_current_span",), Some(&kwargs))?;
        Ok::<_, PyErr>(Current {
            #[cfg(limited_api)]
            get: var.getattr("get")?.unbind(),
            #[cfg(limited_api)]
            set: var.getattr("set")?.unbind(),
            #[cfg(limited_api)]
            reset: var.getattr("reset")?.unbind(),
            var: var.unbind(),
        })
    })
}

/// Makes `span` the current span; returns the token that undoes it ([`reset_current`]).
#[cfg(limited_api)]
fn set_current<'py>(span: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    call_one(current(span.py())?.set.bind(span.py()), span)
}

/// Undoes [`set_current`]; fails when called in another context than the one it was set in.
#[cfg(limited_api)]
fn reset_current(token: &Bound<'_, PyAny>) -> PyResult<()> {
    call_one(current(token.py())?.reset.bind(token.py()), token).map(drop)
}

/// Makes `span` the current span; returns the token that undoes it ([`reset_current`]). The
/// version-specific wheel calls the `contextvars` C API, not in the limited API: the bound method's
/// call and its argument handling are gone (6 % of the hot path's instructions, docs/benchmarks.md).
#[cfg(not(limited_api))]
#[allow(unsafe_code, reason = "the contextvars C API; pyo3 has no safe wrapper")]
fn set_current<'py>(span: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let var = current(span.py())?.var.bind(span.py());
    // SAFETY: `var` is a `ContextVar` and `span` a live object; `PyContextVar_Set` returns a new
    // reference to the token, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(span.py(), pyo3::ffi::PyContextVar_Set(var.as_ptr(), span.as_ptr())) }
}

/// Undoes [`set_current`]; fails when called in another context than the one it was set in.
#[cfg(not(limited_api))]
#[allow(unsafe_code, reason = "the contextvars C API; pyo3 has no safe wrapper")]
fn reset_current(token: &Bound<'_, PyAny>) -> PyResult<()> {
    let var = current(token.py())?.var.bind(token.py());
    // SAFETY: `var` is a `ContextVar` and `token` a live object (CPython checks that it is a token
    // of this variable and context); -1 means an exception is set.
    if unsafe { pyo3::ffi::PyContextVar_Reset(var.as_ptr(), token.as_ptr()) } < 0 {
        return Err(PyErr::fetch(token.py()));
    }
    Ok(())
}

/// The current span object, or `None`.
#[cfg(limited_api)]
fn get_current(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    current(py)?.get.bind(py).call0()
}

/// The current span object, or `None` (the `contextvars` C API, see [`set_current`]).
#[cfg(not(limited_api))]
#[allow(unsafe_code, reason = "the contextvars C API; pyo3 has no safe wrapper")]
fn get_current(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let var = current(py)?.var.bind(py);
    let mut value = std::ptr::null_mut();
    // SAFETY: `var` is a `ContextVar`; with no default given, `value` is set to a new reference
    // to the value (the variable's own default, `None`, when unset) or left NULL; -1 means an
    // exception is set.
    if unsafe { pyo3::ffi::PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &raw mut value) } < 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference when not NULL.
    Ok(unsafe { Bound::from_owned_ptr_or_opt(py, value) }.unwrap_or_else(|| py.None().into_bound(py)))
}

/// Calls `f(arg)`. Under the limited API before 3.12 (the abi3 wheels), pyo3's `call1` builds a
/// one-element tuple and goes through `PyObject_Call`; `PyObject_CallFunctionObjArgs` (stable ABI)
/// hands CPython the argument on the stack instead (its vectorcall path). The hot path makes two
/// such calls a span, the `ContextVar`'s `set` and `reset`: ≈ 300 instructions less each
/// (callgrind of the bench's span shape).
#[cfg(limited_api)]
#[allow(unsafe_code, reason = "one stable-ABI call; pyo3 has no tuple-free call under the limited API")]
fn call_one<'py>(f: &Bound<'py, PyAny>, arg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: both pointers are live references held by `f` and `arg` for the call; the argument
    // list ends with the NULL sentinel the function requires; it returns a new reference or NULL
    // with an exception set, which is what `from_owned_ptr_or_err` takes.
    unsafe {
        let result = pyo3::ffi::PyObject_CallFunctionObjArgs(
            f.as_ptr(),
            arg.as_ptr(),
            std::ptr::null_mut::<pyo3::ffi::PyObject>(),
        );
        Bound::from_owned_ptr_or_err(f.py(), result)
    }
}

/// The `ContextVar` holding the current `Span` (per thread and per asyncio task, as contextvars are).
pub(crate) fn current_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    current(py).map(|c| c.var.bind(py))
}

/// The current span (the innermost `with tracer.span(...)` of this thread or task), or `None`.
#[pyfunction]
pub(crate) fn current_span(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    get_current(py)
}

// === interned keys and names ===

/// Most distinct key/name strings kept per process. Attribute keys and span names are few (they
/// are code, not data); past this bound strings are simply copied per use.
const MAX_INTERNED: usize = 4096;
static INTERNED: AtomicUsize = AtomicUsize::new(0);
/// Most distinct string *values* kept per process: long-lived value objects (literals, config,
/// enum-like constants such as a network name) are then never copied again; values made per call
/// (amounts, addresses) miss, are copied as usual, and stop being added once this bound is reached.
const MAX_INTERNED_VALUES: usize = 1024;
static INTERNED_VALUES: AtomicUsize = AtomicUsize::new(0);

type InternTable = HashMap<usize, (Py<PyString>, &'static str), BuildHasherDefault<AddrHasher>>;

/// Slots in the direct-mapped front of the intern table.
const FRONT: usize = 256;

/// The process's interned strings.
struct Strings {
    /// Every `str` object interned: the object (kept alive, so its address stays its identity, and
    /// never removed) and its UTF-8 copy, leaked once so every span can borrow it.
    table: RefCell<InternTable>,
    /// The last entry of `table` seen at each slot (by address; 0: none). A span looks up its name,
    /// keys and literal values, eight strings in the bench's shape: the table's hash lookup cost ≈
    /// 100 instructions each, a slot's compare a handful (callgrind, `bench_spans.py`'s shape).
    front: [Cell<(usize, &'static str)>; FRONT],
}

/// [`Strings`] shared by every thread, serialised by the GIL: every lookup holds it (it has a
/// `Python` token) and calls nothing that could release it. A thread-local before: in a shared
/// library each access to one goes through `__tls_get_addr` (the general-dynamic model), and with
/// its lazy-destructor check that was ≈ 30 instructions a lookup, nine lookups a span.
struct GilSerialised(Strings);

// SAFETY: only reached through `strings`, which requires a `Python` token and returns `None` when
// the interpreter runs without a GIL; a reference it returns cannot cross into code that releases
// the GIL (`Strings` is not `Sync`, so it is not `Ungil`), and the GIL's release and acquisition
// order one thread's accesses before the next thread's.
#[allow(unsafe_code, reason = "the GIL is the lock; see the SAFETY note")]
unsafe impl Sync for GilSerialised {}

static STRINGS: GilSerialised = GilSerialised(Strings {
    table: RefCell::new(HashMap::with_hasher(BuildHasherDefault::new())),
    front: [const { Cell::new((0, "")) }; FRONT],
});

/// Whether the interpreter has a GIL, decided once when the module loads ([`init_interning`]).
/// A free-threaded CPython re-enables its GIL for this module (it does not declare itself
/// free-threading safe) unless told not to (`PYTHON_GIL=0`); without one, strings are copied.
static GIL_ENABLED: AtomicBool = AtomicBool::new(false);

/// Decides [`GIL_ENABLED`]: `sys._is_gil_enabled()` where it exists (3.13+), true before.
pub(crate) fn init_interning(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let enabled = match sys.getattr_opt("_is_gil_enabled")? {
        Some(f) => f.call0()?.is_truthy()?,
        None => true,
    };
    GIL_ENABLED.store(enabled, Ordering::Relaxed);
    Ok(())
}

/// The interned strings, for as long as `_py`'s GIL is held; `None` without a GIL.
#[inline]
fn strings(_py: Python<'_>) -> Option<&Strings> {
    GIL_ENABLED.load(Ordering::Relaxed).then_some(&STRINGS.0)
}

/// The front slot of an object address: the top byte of its hash in the table.
fn front_slot(addr: usize) -> usize {
    (addr_hash(addr) >> 56) as usize
}

/// An object address's hash (already unique; drop the alignment bits and spread).
#[inline]
fn addr_hash(addr: usize) -> u64 {
    ((addr as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hashes an object address ([`addr_hash`]).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = addr_hash(n);
    }
}

/// A key or span name as a `Str`, borrowed from the intern table when this very `str` object was
/// seen before (string literals are the same object on every call).
fn interned(s: &Bound<'_, PyString>) -> PyResult<Str> {
    intern_in(s, &INTERNED, MAX_INTERNED)
}

fn intern_in(s: &Bound<'_, PyString>, count: &AtomicUsize, max: usize) -> PyResult<Str> {
    let addr = s.as_ptr() as usize;
    let Some(strings) = strings(s.py()) else {
        return Ok(Cow::Owned(s.to_cow()?.into_owned()));
    };
    let slot = &strings.front[front_slot(addr)];
    let (seen, text) = slot.get();
    if seen == addr {
        return Ok(Cow::Borrowed(text));
    }
    let mut table = strings.table.borrow_mut();
    if let Some((_, text)) = table.get(&addr) {
        slot.set((addr, text));
        return Ok(Cow::Borrowed(*text));
    }
    let owned = s.to_cow()?.into_owned();
    if count.load(Ordering::Relaxed) >= max || count.fetch_add(1, Ordering::Relaxed) >= max {
        return Ok(Cow::Owned(owned));
    }
    let text: &'static str = Box::leak(owned.into_boxed_str());
    table.insert(addr, (s.clone().unbind(), text));
    slot.set((addr, text));
    Ok(Cow::Borrowed(text))
}

// === attribute values ===

/// Converts a Python value to an attribute value: str, bool, int, float, bytes, a list or tuple of
/// those, or a mapping with str keys (nested).
pub(crate) fn to_value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(s) = v.cast_exact::<PyString>() {
        return intern_in(s, &INTERNED_VALUES, MAX_INTERNED_VALUES).map(Value::String);
    }
    if let Ok(b) = v.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = v.cast_exact::<PyInt>() {
        return i.extract::<i64>().map(Value::Int).map_err(|_| {
            PyValueError::new_err(format!("attribute int {i} does not fit in 64 bits; pass it as a str"))
        });
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return Ok(Value::Double(f.value()));
    }
    to_value_slow(v)
}

#[cold]
fn to_value_slow(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(Cow::Owned(s.to_cow()?.into_owned())));
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = v.cast::<PyInt>() {
        return i.extract::<i64>().map(Value::Int).map_err(|_| {
            PyValueError::new_err(format!("attribute int {i} does not fit in 64 bits; pass it as a str"))
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Double(f.value()));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l.iter().map(|x| to_value(&x)).collect::<PyResult<_>>().map(Value::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t.iter().map(|x| to_value(&x)).collect::<PyResult<_>>().map(Value::Array);
    }
    if let Ok(m) = v.cast::<PyMapping>() {
        return to_key_values(m.as_any()).map(Value::Map);
    }
    Err(PyTypeError::new_err(format!(
        "unsupported attribute value of type {}: use str, bool, int, float, bytes, a list or tuple of them, or a dict",
        v.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
    )))
}

fn to_key(k: &Bound<'_, PyAny>) -> PyResult<Str> {
    let s = k.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "attribute keys must be str, got {}",
            k.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    interned(s)
}

/// A dict (or any mapping) of attributes.
pub(crate) fn to_key_values(m: &Bound<'_, PyAny>) -> PyResult<Vec<KeyValue>> {
    if let Ok(d) = m.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            out.push(KeyValue { key: to_key(&k)?, value: to_value(&v)? });
        }
        return Ok(out);
    }
    let m = m.cast::<PyMapping>().map_err(|_| PyTypeError::new_err("attributes must be a dict (or a mapping)"))?;
    let mut out = Vec::new();
    for item in m.items()?.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        out.push(KeyValue { key: to_key(&k)?, value: to_value(&v)? });
    }
    Ok(out)
}

fn to_kind(kind: &Bound<'_, PyString>) -> PyResult<SpanKind> {
    let k = kind.to_cow()?;
    Ok(match k.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown span kind {k:?}: use internal, server, client, producer or consumer"
            )));
        }
    })
}

// === Span ===

/// A span in progress. `with` makes it current and ends it; `end()` ends it explicitly.
#[pyclass(module = "tracex._native", name = "Span", freelist = 64)]
pub struct PySpan {
    /// Where the span is recorded when it ends: the tracer current at that time (after a fork, the
    /// child's).
    shared: Arc<Shared>,
    /// The tracer the span started in: limits and clock while it is open.
    tracer: Tracer,
    span: UnboundSpan,
    /// The `ContextVar` token while the span is current (between `__enter__` and `__exit__`).
    token: Option<Py<PyAny>>,
}

impl PySpan {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        py: Python<'_>,
        shared: &Arc<Shared>,
        name: &Bound<'_, PyString>,
        attributes: Option<&Bound<'_, PyAny>>,
        parent: Option<&Bound<'_, PyAny>>,
        root: bool,
        kind: Option<&Bound<'_, PyString>>,
        start_time: Option<u64>,
    ) -> PyResult<Self> {
        let parent = if root {
            Parent::Root
        } else {
            match parent {
                Some(p) => parent_of(p)?.map_or(Parent::Root, Parent::Context),
                None => parent_of(&get_current(py)?)?.map_or(Parent::Root, Parent::Context),
            }
        };
        let name = interned(name)?;
        let attributes = match attributes {
            Some(a) if !a.is_none() => Some(to_key_values(a)?),
            _ => None,
        };
        let kind = kind.map(to_kind).transpose()?;
        let tracer = shared.get().clone();
        let mut b = tracer.span_builder(name).parent(parent);
        if let Some(k) = kind {
            b = b.kind(k);
        }
        if let Some(a) = attributes {
            b = b.attributes(a);
        }
        if let Some(t) = start_time {
            b = b.start_time(t);
        }
        let span = b.start_unbound();
        Ok(Self { shared: shared.clone(), tracer, span, token: None })
    }

    fn exception(&mut self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.span.is_recording() {
            return Ok(());
        }
        let ty = exc.get_type();
        let module = ty.getattr(intern!(py, "__module__"))?.str()?.to_cow()?.into_owned();
        let qualname = ty.qualname()?.to_cow()?.into_owned();
        let type_name = if module == "builtins" { qualname } else { format!("{module}.{qualname}") };
        let message = exc.str()?.to_cow()?.into_owned();
        // OpenTelemetry's `exception.stacktrace`: the formatted traceback, as Python prints it.
        let lines = py
            .import(intern!(py, "traceback"))?
            .call_method1(intern!(py, "format_exception"), (&ty, exc, exc.getattr(intern!(py, "__traceback__"))?))?;
        let stacktrace =
            PyString::new(py, "").call_method1(intern!(py, "join"), (lines,))?.str()?.to_cow()?.into_owned();
        self.span.record_exception(&self.tracer, type_name, message, Some(stacktrace));
        Ok(())
    }

    fn exit(&mut self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        if !exc.is_none() {
            self.exception(py, exc)?;
        }
        if let Some(token) = self.token.take() {
            // Fails only when exited in another context than entered (e.g. another asyncio task);
            // the span still ends, and that context's value is left alone.
            let _ = reset_current(token.bind(py));
        }
        let tracer = self.shared.get();
        self.span.end(&tracer, None);
        Ok(())
    }
}

fn parent_of(p: &Bound<'_, PyAny>) -> PyResult<Option<SpanContext>> {
    if p.is_none() {
        return Ok(None);
    }
    if let Ok(s) = p.cast::<PySpan>() {
        return Ok(Some(s.borrow().span.context().clone()));
    }
    if let Ok(c) = p.cast::<PySpanContext>() {
        return Ok(Some(c.get().0.clone()));
    }
    Err(PyTypeError::new_err("parent must be a Span, a SpanContext or None"))
}

#[pymethods]
impl PySpan {
    /// Sets an attribute (a later value for the same key replaces an earlier one).
    fn set_attribute(&mut self, key: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.span.is_recording() {
            return Ok(());
        }
        let key = interned(key)?;
        let value = to_value(value)?;
        self.span.set_attribute(&self.tracer, key, value);
        Ok(())
    }

    /// Sets every attribute of a dict.
    fn set_attributes(&mut self, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.span.is_recording() {
            return Ok(());
        }
        let kvs = to_key_values(attributes)?;
        self.span.set_attributes(&self.tracer, kvs);
        Ok(())
    }

    /// Adds an event (now, or at `timestamp` unix nanoseconds).
    #[pyo3(signature = (name, attributes = None, *, timestamp = None))]
    fn add_event(
        &mut self,
        name: &Bound<'_, PyString>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
    ) -> PyResult<()> {
        if !self.span.is_recording() {
            return Ok(());
        }
        let attrs = match attributes {
            Some(a) if !a.is_none() => to_key_values(a)?,
            _ => Vec::new(),
        };
        let name = interned(name)?;
        self.span.add_event(&self.tracer, name, timestamp, attrs);
        Ok(())
    }

    /// Links this span to another span or context.
    #[pyo3(signature = (context, attributes = None))]
    fn add_link(&mut self, context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let Some(cx) = parent_of(context)? else {
            return Err(PyTypeError::new_err("add_link needs a Span or a SpanContext"));
        };
        let attrs = match attributes {
            Some(a) if !a.is_none() => to_key_values(a)?,
            _ => Vec::new(),
        };
        self.span.add_link(&self.tracer, &cx, attrs);
        Ok(())
    }

    /// Records an exception: an `exception` event (type, message, stack trace) and status error.
    fn record_exception(&mut self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        if !exception.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            return Err(PyTypeError::new_err("record_exception needs an exception instance"));
        }
        self.exception(py, exception)
    }

    /// Sets the status: "ok", "error" or "unset" (with a description for errors). `ok` is final.
    #[pyo3(signature = (status, description = None))]
    fn set_status(&mut self, status: &Bound<'_, PyString>, description: Option<String>) -> PyResult<()> {
        let s = status.to_cow()?;
        let code = match s.to_ascii_lowercase().as_str() {
            "ok" => StatusCode::Ok,
            "error" => StatusCode::Error,
            "unset" => StatusCode::Unset,
            _ => {
                return Err(PyValueError::new_err(format!("unknown status {s:?}: use \"ok\", \"error\" or \"unset\"")));
            }
        };
        let message = if code == StatusCode::Error { description.unwrap_or_default() } else { String::new() };
        self.span.set_status(Status { code, message: Cow::Owned(message) });
        Ok(())
    }

    /// Renames the span.
    fn update_name(&mut self, name: &Bound<'_, PyString>) -> PyResult<()> {
        self.span.update_name(name.to_cow()?.into_owned());
        Ok(())
    }

    /// Ends the span (now, or at `end_time` unix nanoseconds). Later calls do nothing.
    #[pyo3(signature = (end_time = None))]
    fn end(&mut self, end_time: Option<u64>) {
        let tracer = self.shared.get();
        self.span.end(&tracer, end_time);
    }

    /// False when sampled out or ended.
    #[getter]
    fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// The span's context (ids, flags, trace state).
    #[getter]
    fn context(&self) -> PySpanContext {
        PySpanContext(self.span.context().clone())
    }

    /// Trace id, 32 lower-case hex digits.
    #[getter]
    fn trace_id(&self) -> String {
        self.span.context().trace_id.to_hex()
    }

    /// Span id, 16 lower-case hex digits.
    #[getter]
    fn span_id(&self) -> String {
        self.span.context().span_id.to_hex()
    }

    /// The W3C `traceparent` header value for calls made inside this span.
    #[getter]
    fn traceparent(&self) -> String {
        self.span.context().to_traceparent()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let token = set_current(slf.as_any())?;
        slf.borrow_mut().token = Some(token.unbind());
        Ok(slf)
    }

    /// `(exc_type, exc, traceback)` as three positional arguments: taken as `*args`, pyo3 built a
    /// tuple of them for every span (≈ 150 instructions more than extracting them, callgrind).
    #[pyo3(signature = (exc_type, exc, traceback, /))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let _ = (exc_type, traceback);
        self.exit(py, exc)?;
        Ok(false)
    }

    fn __aenter__(slf: Bound<'_, Self>) -> PyResult<Ready> {
        let entered = Self::__enter__(slf)?;
        Ok(Ready(Some(entered.into_any().unbind())))
    }

    #[pyo3(signature = (*args))]
    fn __aexit__(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Ready> {
        match args.get_item(1) {
            Ok(exc) => self.exit(py, &exc)?,
            Err(_) => self.exit(py, &py.None().into_bound(py))?,
        }
        Ok(Ready(Some(false.into_py_any(py)?)))
    }

    fn __repr__(&self) -> String {
        let cx = self.span.context();
        format!("Span(trace_id={}, span_id={}, recording={})", cx.trace_id, cx.span_id, self.span.is_recording())
    }
}

/// An awaitable that is already done: what `__aenter__`/`__aexit__` return, since entering and
/// exiting a span never waits.
#[pyclass(module = "tracex._native", name = "Ready")]
pub struct Ready(Option<Py<PyAny>>);

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __next__(&mut self, py: Python<'_>) -> PyResult<()> {
        let v = self.0.take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((v,)))
    }
}

// === SpanContext ===

/// What crosses process boundaries: ids, flags and trace state (from `traceparent`/`tracestate`).
#[pyclass(module = "tracex._native", name = "SpanContext", frozen, eq)]
#[derive(PartialEq)]
pub struct PySpanContext(pub(crate) SpanContext);

#[pymethods]
impl PySpanContext {
    /// Parses a W3C `traceparent` (and optional `tracestate`); raises `InvalidContextError`.
    #[staticmethod]
    #[pyo3(signature = (traceparent, tracestate = None))]
    fn from_traceparent(py: Python<'_>, traceparent: &str, tracestate: Option<&str>) -> PyResult<Self> {
        SpanContext::from_traceparent(traceparent, tracestate).map(Self).py_err(py)
    }

    /// Trace id, 32 lower-case hex digits.
    #[getter]
    fn trace_id(&self) -> String {
        self.0.trace_id.to_hex()
    }
    /// Span id, 16 lower-case hex digits.
    #[getter]
    fn span_id(&self) -> String {
        self.0.span_id.to_hex()
    }
    /// The sampled flag.
    #[getter]
    fn sampled(&self) -> bool {
        self.0.is_sampled()
    }
    /// True when this context came from another process.
    #[getter]
    fn is_remote(&self) -> bool {
        self.0.is_remote
    }
    /// W3C `tracestate`, passed through untouched.
    #[getter]
    fn trace_state(&self) -> Option<String> {
        self.0.trace_state.as_deref().map(str::to_owned)
    }
    /// The W3C `traceparent` header value.
    #[getter]
    fn traceparent(&self) -> String {
        self.0.to_traceparent()
    }
    fn __repr__(&self) -> String {
        format!("SpanContext({:?}, remote={})", self.0.to_traceparent(), self.0.is_remote)
    }
}
