//! The audit trail's verifiers (`tracex_core::audit::hex`), as the Node addon exports them:
//! strings and numbers in, plain objects out, every failure an `AuditError` (`TRACEX_AUDIT`). The
//! shared JS layer (`shared/audit.js`) checks that sizes are safe integers and exports these as
//! `audit` — what a browser needs to verify a proof the collector served.
#![allow(clippy::needless_pass_by_value, reason = "wasm-bindgen hands JS arguments over owned")]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]

use js_sys::{Object, Reflect};
use tracex_core::audit::hex;
use wasm_bindgen::prelude::*;

use crate::error::to_js;

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

/// Verifies a batch's receipt signed by the audit key `verifierKey` for that batch id and envelope
/// hash (hex): `{ origin, leafIndex, batchId, envelopeSha256, receivedAtUnixNano }` (hex; the time
/// a decimal string, beyond a number's exact range).
#[wasm_bindgen(js_name = auditVerifyReceipt)]
pub fn verify_receipt(
    note: String,
    verifier_key: String,
    batch_id: String,
    envelope_sha256: String,
) -> Result<JsValue, JsValue> {
    let r = hex::verify_receipt(&note, &verifier_key, &batch_id, &envelope_sha256).map_err(|e| to_js(&e))?;
    Ok(object(&[
        ("origin", JsValue::from_str(&r.origin)),
        ("leafIndex", JsValue::from_f64(r.leaf_index as f64)),
        ("batchId", JsValue::from_str(&hex::encode(&r.batch_id))),
        ("envelopeSha256", JsValue::from_str(&hex::encode(&r.envelope_sha256))),
        ("receivedAtUnixNano", JsValue::from_str(&r.received_at_unix_nano.to_string())),
    ]))
}

/// Checks that `leafHash` is leaf `index` of the tree of `size` leaves whose root is `root` (hex).
#[wasm_bindgen(js_name = auditVerifyInclusion)]
pub fn verify_inclusion(
    leaf_hash: String,
    index: f64,
    size: f64,
    proof: Vec<String>,
    root: String,
) -> Result<(), JsValue> {
    hex::verify_inclusion(&leaf_hash, index as u64, size as u64, &proof, &root).map_err(|e| to_js(&e))
}

/// Checks that the tree of `oldSize` leaves is a prefix of the tree of `newSize` leaves (hex roots).
#[wasm_bindgen(js_name = auditVerifyConsistency)]
pub fn verify_consistency(
    old_size: f64,
    new_size: f64,
    old_root: String,
    new_root: String,
    proof: Vec<String>,
) -> Result<(), JsValue> {
    hex::verify_consistency(old_size as u64, new_size as u64, &old_root, &new_root, &proof).map_err(|e| to_js(&e))
}

/// Verifies a checkpoint signed by `verifierKey` for the log named as the key: `{ origin, size,
/// rootHash, signedAtUnixNano }` (hex; the time a decimal string, null without a time line).
#[wasm_bindgen(js_name = auditOpenCheckpoint)]
pub fn open_checkpoint(note: String, verifier_key: String) -> Result<JsValue, JsValue> {
    let c = hex::open_checkpoint(&note, &verifier_key).map_err(|e| to_js(&e))?;
    Ok(object(&[
        ("origin", JsValue::from_str(&c.origin)),
        ("size", JsValue::from_f64(c.size as f64)),
        ("rootHash", JsValue::from_str(&hex::encode(&c.root))),
        ("signedAtUnixNano", c.signed_at_unix_nano.map_or(JsValue::NULL, |t| JsValue::from_str(&t.to_string()))),
    ]))
}
