//! The audit trail's verifiers (`tracex_core::audit::hex`): strings and numbers in, plain objects
//! out, every failure an `AuditError` (`TRACEX_AUDIT`). The JS layer (`bindings-js/src/audit.js`)
//! checks that sizes are safe integers before they get here and exports these as `audit`.
#![allow(clippy::needless_pass_by_value, reason = "napi hands JS arguments over owned")]
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]

use napi::Env;
use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;
use tracex_core::audit::hex;

use crate::error::to_js;

/// A verified receipt: the batch is leaf `leafIndex` of the log `origin`.
#[napi(object)]
pub struct JsReceipt {
    pub origin: String,
    pub leaf_index: f64,
    /// Hex.
    pub batch_id: String,
    /// Hex.
    pub envelope_sha256: String,
    /// Unix ns, decimal (beyond a JS number's exact range).
    pub received_at_unix_nano: String,
}

/// A verified checkpoint: the log `origin` had `size` leaves with root `rootHash` (hex), signed at
/// `signedAtUnixNano` (decimal; null for a checkpoint without a time line).
#[napi(object)]
pub struct JsCheckpoint {
    pub origin: String,
    pub size: f64,
    pub root_hash: String,
    pub signed_at_unix_nano: Either<String, Null>,
}

#[napi(js_name = "auditVerifyReceipt")]
pub fn verify_receipt(
    env: Env,
    note: String,
    verifier_key: String,
    batch_id: String,
    envelope_sha256: String,
) -> napi::Result<JsReceipt> {
    let r = hex::verify_receipt(&note, &verifier_key, &batch_id, &envelope_sha256).map_err(|e| to_js(env, &e))?;
    Ok(JsReceipt {
        origin: r.origin,
        leaf_index: r.leaf_index as f64,
        batch_id: hex::encode(&r.batch_id),
        envelope_sha256: hex::encode(&r.envelope_sha256),
        received_at_unix_nano: r.received_at_unix_nano.to_string(),
    })
}

#[napi(js_name = "auditVerifyInclusion")]
pub fn verify_inclusion(
    env: Env,
    leaf_hash: String,
    index: f64,
    size: f64,
    proof: Vec<String>,
    root: String,
) -> napi::Result<()> {
    hex::verify_inclusion(&leaf_hash, index as u64, size as u64, &proof, &root).map_err(|e| to_js(env, &e))
}

#[napi(js_name = "auditVerifyConsistency")]
pub fn verify_consistency(
    env: Env,
    old_size: f64,
    new_size: f64,
    old_root: String,
    new_root: String,
    proof: Vec<String>,
) -> napi::Result<()> {
    hex::verify_consistency(old_size as u64, new_size as u64, &old_root, &new_root, &proof).map_err(|e| to_js(env, &e))
}

#[napi(js_name = "auditOpenCheckpoint")]
pub fn open_checkpoint(env: Env, note: String, verifier_key: String) -> napi::Result<JsCheckpoint> {
    let c = hex::open_checkpoint(&note, &verifier_key).map_err(|e| to_js(env, &e))?;
    Ok(JsCheckpoint {
        origin: c.origin,
        size: c.size as f64,
        root_hash: hex::encode(&c.root),
        signed_at_unix_nano: c.signed_at_unix_nano.map_or(Either::B(Null), |t| Either::A(t.to_string())),
    })
}
