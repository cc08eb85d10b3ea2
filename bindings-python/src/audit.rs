//! The audit trail's verifiers (`tracex_core::audit::hex`), exposed by `tracex.audit`: strings and
//! ints in, frozen `Receipt`/`Checkpoint` objects out, every failure an `AuditError`
//! (`TRACEX_AUDIT`). Pure computation: no GIL release needed for a few hashes and one signature.
#![allow(clippy::needless_pass_by_value, reason = "pyo3 extracts a Python list into an owned Vec")]

use pyo3::prelude::*;
use tracex_core::audit::hex;

use crate::error::IntoPyResult;

/// A receipt that verified: the batch `batch_id` (hex) is leaf `leaf_index` of the log `origin`.
#[pyclass(module = "tracex._native", name = "Receipt", frozen, get_all)]
pub struct PyReceipt {
    origin: String,
    leaf_index: u64,
    batch_id: String,
    envelope_sha256: String,
    received_at_unix_nano: u64,
}

#[pymethods]
impl PyReceipt {
    fn __repr__(&self) -> String {
        format!(
            "Receipt(origin={:?}, leaf_index={}, batch_id={:?}, envelope_sha256={:?}, received_at_unix_nano={})",
            self.origin, self.leaf_index, self.batch_id, self.envelope_sha256, self.received_at_unix_nano
        )
    }
}

/// A checkpoint that verified: the log `origin` had `size` leaves with root `root_hash` (hex),
/// signed at `signed_at_unix_nano` (None for a checkpoint without a time line).
#[pyclass(module = "tracex._native", name = "Checkpoint", frozen, get_all)]
pub struct PyCheckpoint {
    origin: String,
    size: u64,
    root_hash: String,
    signed_at_unix_nano: Option<u64>,
}

#[pymethods]
impl PyCheckpoint {
    fn __repr__(&self) -> String {
        format!(
            "Checkpoint(origin={:?}, size={}, root_hash={:?}, signed_at_unix_nano={})",
            self.origin,
            self.size,
            self.root_hash,
            self.signed_at_unix_nano.map_or_else(|| "None".to_owned(), |t| t.to_string())
        )
    }
}

/// Verifies a batch's receipt signed by the audit key `verifier_key`, for that batch id and
/// envelope hash (hex).
#[pyfunction]
pub fn verify_receipt(
    py: Python<'_>,
    note: &str,
    verifier_key: &str,
    batch_id: &str,
    envelope_sha256: &str,
) -> PyResult<PyReceipt> {
    let r = hex::verify_receipt(note, verifier_key, batch_id, envelope_sha256).py_err(py)?;
    Ok(PyReceipt {
        origin: r.origin,
        leaf_index: r.leaf_index,
        batch_id: hex::encode(&r.batch_id),
        envelope_sha256: hex::encode(&r.envelope_sha256),
        received_at_unix_nano: r.received_at_unix_nano,
    })
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root` (hex).
#[pyfunction]
pub fn verify_inclusion(
    py: Python<'_>,
    leaf_hash: &str,
    index: u64,
    size: u64,
    proof: Vec<String>,
    root: &str,
) -> PyResult<()> {
    hex::verify_inclusion(leaf_hash, index, size, &proof, root).py_err(py)
}

/// Checks that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves.
#[pyfunction]
pub fn verify_consistency(
    py: Python<'_>,
    old_size: u64,
    new_size: u64,
    old_root: &str,
    new_root: &str,
    proof: Vec<String>,
) -> PyResult<()> {
    hex::verify_consistency(old_size, new_size, old_root, new_root, &proof).py_err(py)
}

/// Verifies a checkpoint signed by `verifier_key` for the log named as the key.
#[pyfunction]
pub fn open_checkpoint(py: Python<'_>, note: &str, verifier_key: &str) -> PyResult<PyCheckpoint> {
    let c = hex::open_checkpoint(note, verifier_key).py_err(py)?;
    Ok(PyCheckpoint {
        origin: c.origin,
        size: c.size,
        root_hash: hex::encode(&c.root),
        signed_at_unix_nano: c.signed_at_unix_nano,
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReceipt>()?;
    m.add_class::<PyCheckpoint>()?;
    m.add_function(wrap_pyfunction!(verify_receipt, m)?)?;
    m.add_function(wrap_pyfunction!(verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(verify_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(open_checkpoint, m)?)?;
    Ok(())
}
