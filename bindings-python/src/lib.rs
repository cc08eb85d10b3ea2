//! tracex for Python: the `tracex._native` extension module.
//!
//! A translation layer only: the core (`tracex-core`) owns every decision (sampling, limits,
//! batching, sealing, delivery, fork handling); this crate converts Python values to the core's
//! types and the core's errors to Python exceptions. The pure-Python package `tracex` on top adds
//! the idioms that need Python itself (decorators, `atexit`, `os.register_at_fork`).
//!
//! The span is native (`Span` here) because the hot path — start, a few attributes, end — must
//! cross the language boundary as few times as possible and allocate as little as possible.

mod audit;
mod error;
mod span;
// Test-only entry points (`_native._testing`): only the test scripts build with `--features testing`.
#[cfg(feature = "testing")]
mod testing;
mod tracer;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    span::init_interning(m.py())?;
    m.add_class::<tracer::PyTracer>()?;
    m.add_class::<tracer::PyFlushReport>()?;
    m.add_class::<span::PySpan>()?;
    m.add_class::<span::PySpanContext>()?;
    m.add_class::<span::Ready>()?;
    m.add_function(wrap_pyfunction!(span::current_span, m)?)?;
    m.add("_CURRENT_SPAN", span::current_var(m.py())?)?;
    audit::register(m)?;
    #[cfg(feature = "testing")]
    {
        let testing = PyModule::new(m.py(), "_testing")?;
        testing::register(&testing)?;
        m.add_submodule(&testing)?;
    }
    Ok(())
}
