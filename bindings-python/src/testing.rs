//! `tracex._native._testing`: TEST SUPPORT ONLY, compiled only with feature `testing` (never in a
//! released wheel; `tests/test_release.py` checks), for checking the shared vectors
//! (`tests/vectors/`) through this binding. Each function calls the core's own sealing, parsing,
//! opening, decoding, sampling or error code; nothing here is reimplemented or used by `tracex`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tracex_core::seal::{self, CollectorKey, Header};
use tracex_core::{KeyValue, Value};

use crate::error::IntoPyResult;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(key_id, m)?)?;
    m.add_function(wrap_pyfunction!(wrap_key, m)?)?;
    m.add_function(wrap_pyfunction!(seal_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(open_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(decode_otlp, m)?)?;
    m.add_function(wrap_pyfunction!(root_sampled, m)?)?;
    m.add_function(wrap_pyfunction!(raise_core_error, m)?)?;
    Ok(())
}

fn fixed<const N: usize>(name: &str, b: &[u8]) -> PyResult<[u8; N]> {
    b.try_into().map_err(|_| PyValueError::new_err(format!("{name} must be {N} bytes, got {}", b.len())))
}

/// The collector key's fingerprint (SHA-256 of the SPKI DER), hex.
#[pyfunction]
fn key_id(py: Python<'_>, public_pem: &str) -> PyResult<String> {
    Ok(CollectorKey::from_pem(public_pem).py_err(py)?.key_id().to_hex())
}

/// RSA-OAEP-wraps `data_key` for `public_pem` with the OAEP seed taken from `oaep_seed`.
#[pyfunction]
fn wrap_key<'py>(
    py: Python<'py>,
    public_pem: &str,
    data_key: &[u8],
    oaep_seed: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    if oaep_seed.is_empty() {
        return Err(PyValueError::new_err("oaep_seed must not be empty"));
    }
    let key = CollectorKey::from_pem(public_pem).py_err(py)?;
    let wrapped = key.wrap_with_seed(&fixed("data_key", data_key)?, oaep_seed).py_err(py)?;
    Ok(PyBytes::new(py, &wrapped))
}

/// Seals `payload` under `data_key` with the header given as a dict of the vector's fields.
#[pyfunction]
fn seal_envelope<'py>(
    py: Python<'py>,
    header: &Bound<'py, PyDict>,
    data_key: &[u8],
    payload: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let get = |k: &str| -> PyResult<Bound<'py, PyAny>> {
        header.get_item(k)?.ok_or_else(|| PyValueError::new_err(format!("header needs {k:?}")))
    };
    let bytes = |k: &str| -> PyResult<Vec<u8>> { get(k)?.extract::<Vec<u8>>() };
    let h = Header {
        flags: get("flags")?.extract()?,
        key_id: seal::KeyId(fixed("key_id", &bytes("key_id")?)?),
        batch_id: fixed("batch_id", &bytes("batch_id")?)?,
        instance_id: fixed("instance_id", &bytes("instance_id")?)?,
        sequence: get("sequence")?.extract()?,
        created_at_unix_nano: get("created_at_unix_nano")?.extract()?,
        sdk_name: get("sdk_name")?.extract()?,
        sdk_version: get("sdk_version")?.extract()?,
        wrapped_key: bytes("wrapped_key")?,
        nonce: fixed("nonce", &bytes("nonce")?)?,
    };
    let sealed = seal::seal_payload(&h, &fixed("data_key", data_key)?, payload).py_err(py)?;
    Ok(PyBytes::new(py, &sealed))
}

/// Parses an envelope and opens it with `data_key`: `(header dict, plaintext)`. Raises
/// `EnvelopeError` for malformed or tampered bytes.
#[pyfunction]
fn open_envelope<'py>(
    py: Python<'py>,
    envelope: &[u8],
    data_key: &[u8],
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyBytes>)> {
    let env = seal::parse(envelope).py_err(py)?;
    let plaintext = env.open(&fixed("data_key", data_key)?, 1 << 20).py_err(py)?;
    let h = &env.header;
    let d = PyDict::new(py);
    d.set_item("flags", h.flags)?;
    d.set_item("key_id", h.key_id.to_hex())?;
    d.set_item("batch_id", PyBytes::new(py, &h.batch_id))?;
    d.set_item("instance_id", PyBytes::new(py, &h.instance_id))?;
    d.set_item("sequence", h.sequence)?;
    d.set_item("created_at_unix_nano", h.created_at_unix_nano)?;
    d.set_item("sdk_name", &h.sdk_name)?;
    d.set_item("sdk_version", &h.sdk_version)?;
    d.set_item("wrapped_key", PyBytes::new(py, &h.wrapped_key))?;
    d.set_item("wrapped_key_sha256", PyBytes::new(py, &h.wrapped_key_hash()))?;
    d.set_item("nonce", PyBytes::new(py, &h.nonce))?;
    Ok((d, PyBytes::new(py, &plaintext)))
}

fn py_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::String(s) => s.as_ref().into_pyobject(py)?.into_any(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Double(d) => d.into_pyobject(py)?.into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Array(items) => {
            PyList::new(py, items.iter().map(|x| py_value(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Value::Map(kvs) => py_attrs(py, kvs)?.into_any(),
    })
}

fn py_attrs<'py>(py: Python<'py>, kvs: &[KeyValue]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for kv in kvs {
        d.set_item(kv.key.as_ref(), py_value(py, &kv.value)?)?;
    }
    Ok(d)
}

/// Decodes an OTLP `ExportTraceServiceRequest` into a list of span dicts (`service_name`, ids,
/// `name`, `status_message`, `attributes`).
#[pyfunction]
fn decode_otlp<'py>(py: Python<'py>, otlp: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let req = tracex_core::decode::decode_request(otlp).py_err(py)?;
    let out = PyList::empty(py);
    for (resource, _, span) in req.spans() {
        let d = PyDict::new(py);
        d.set_item("service_name", resource.service_name())?;
        d.set_item("trace_id", span.trace_id.to_hex())?;
        d.set_item("span_id", span.span_id.to_hex())?;
        d.set_item("parent_span_id", span.parent_span_id.map(|p| p.to_hex()))?;
        d.set_item("name", span.name.as_ref())?;
        d.set_item("status_message", span.status.message.as_ref())?;
        d.set_item("attributes", py_attrs(py, &span.attributes)?)?;
        out.append(d)?;
    }
    Ok(out)
}

/// The core's decision for a root span of trace `trace_id` (hex) under `sample_ratio = ratio`.
#[pyfunction]
fn root_sampled(py: Python<'_>, ratio: f64, trace_id: &str) -> PyResult<bool> {
    let id = tracex_core::TraceId::from_hex(trace_id).py_err(py)?;
    Ok(tracex_core::Sampler::ratio(ratio).should_sample(None, id))
}

/// Raises the core's example error with `code` (`Error::one_of_each`) through the binding's own
/// error conversion: what a real failure with that code raises.
#[pyfunction]
fn raise_core_error(py: Python<'_>, code: &str) -> PyResult<()> {
    let all = tracex_core::Error::one_of_each();
    let e = all.iter().find(|e| e.code() == code).ok_or_else(|| PyValueError::new_err(format!("no code {code}")))?;
    Err(crate::error::to_py(py, e))
}
