//! The collector key's fingerprint, as the collector shows it (`tracex-collector keys show`).

use tracex_core::seal::CollectorKey;
use wasm_bindgen::prelude::*;

use crate::error::to_js;

/// The collector key id (hex fingerprint) of a PEM public key.
#[wasm_bindgen(js_name = collectorKeyId)]
pub fn collector_key_id(public_key_pem: &str) -> Result<String, JsValue> {
    CollectorKey::from_pem(public_key_pem).map(|k| k.key_id().to_hex()).map_err(|e| to_js(&e))
}
