//! The core's one error enum as Python exceptions. The classes live in `tracex/_errors.py` (pure
//! Python, so each can also inherit the matching builtin, e.g. `ConfigError(TracexError,
//! ValueError)`), one per kind of core error with the core's name for it; every exception carries
//! the core's stable `TRACEX_*` code as `.code` (tests/vectors/errors.json pins both).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use tracex_core::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The Python class for a core error: the class of its kind, named as in every binding
/// (`ErrorKind::class_name`; `Error::kind` maps every variant, so there is no arm here to miss one).
fn class_name(e: &Error) -> &'static str {
    e.kind().class_name()
}

/// Converts a core error into the matching `tracex` exception (with `.code` set).
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = ERRORS.get_or_try_init(py, || py.import("tracex._errors").map(Bound::unbind))?;
        let class = module.bind(py).getattr(class_name(e))?;
        let exc = class.call1((e.to_string(),))?;
        exc.setattr("code", e.code())?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|import_failed| {
        PyRuntimeError::new_err(format!("{} ({}; tracex._errors unavailable: {import_failed})", e, e.code()))
    })
}

/// `Result<T, tracex_core::Error>` → `PyResult<T>`.
pub(crate) trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}

/// A `ConfigError` for a binding-side check of an option's Python value.
pub(crate) fn config(py: Python<'_>, message: impl Into<String>) -> PyErr {
    to_py(py, &Error::Config(message.into()))
}
