//! Test support, compiled only with feature `testing` (`scripts/build-wasm.sh --testing`, a package
//! that is never published; `test/release.test.mjs` checks the published one has none of this):
//! sealing with fixed inputs and opening with a known data key for the shared wire vectors, and one
//! core error of each code — all by calling the core's own functions, so the vectors prove that the
//! core compiled to wasm32 produces and reads the same bytes, and raises the same errors, as native
//! code.

use tracex_core::seal::{self, CollectorKey, DATA_KEY_LEN, Header, NONCE_LEN};
use wasm_bindgen::prelude::*;

use crate::error::to_js;

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], JsValue> {
    bytes
        .try_into()
        .map_err(|_| to_js(&tracex_core::Error::Config(format!("{what} must be {N} bytes, got {}", bytes.len()))))
}

/// Seals `payload` with every random input fixed: the data key is wrapped with RSA-OAEP using
/// `oaep_seed` as the randomness, the header is built from the given fields, and the payload is
/// sealed with the core's `seal_payload`. Test support for the wire vectors.
#[wasm_bindgen(js_name = sealWithFixedInputs)]
#[allow(clippy::too_many_arguments)]
pub fn seal_with_fixed_inputs(
    public_key_pem: &str,
    data_key: &[u8],
    oaep_seed: &[u8],
    flags: u8,
    batch_id: &[u8],
    instance_id: &[u8],
    sequence: u64,
    created_at_unix_nano: u64,
    sdk_name: String,
    sdk_version: String,
    nonce: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>, JsValue> {
    let key = CollectorKey::from_pem(public_key_pem).map_err(|e| to_js(&e))?;
    let data_key: [u8; DATA_KEY_LEN] = fixed(data_key, "dataKey")?;
    let wrapped_key = key.wrap_with_seed(&data_key, oaep_seed).map_err(|e| to_js(&e))?;
    let header = Header {
        flags,
        key_id: key.key_id(),
        batch_id: fixed(batch_id, "batchId")?,
        instance_id: fixed(instance_id, "instanceId")?,
        sequence,
        created_at_unix_nano,
        sdk_name,
        sdk_version,
        wrapped_key,
        nonce: fixed::<NONCE_LEN>(nonce, "nonce")?,
    };
    seal::seal_payload(&header, &data_key, payload).map_err(|e| to_js(&e))
}

/// Parses and opens an envelope with a known data key (inflating a compressed payload); throws
/// `TRACEX_OPEN_FAILED`, `TRACEX_MALFORMED_ENVELOPE` or `TRACEX_UNSUPPORTED_VERSION`. Test support
/// for the wire vectors.
#[wasm_bindgen(js_name = openWithDataKey)]
pub fn open_with_data_key(envelope: &[u8], data_key: &[u8]) -> Result<Vec<u8>, JsValue> {
    let data_key: [u8; DATA_KEY_LEN] = fixed(data_key, "dataKey")?;
    let env = seal::parse(envelope).map_err(|e| to_js(&e))?;
    env.open(&data_key, 64 << 20).map_err(|e| to_js(&e))
}

/// Throws the core's example error with `code` (`Error::one_of_each`) through this crate's error
/// conversion: what a real failure with that code throws.
#[wasm_bindgen(js_name = coreError)]
pub fn core_error(code: &str) -> Result<(), JsValue> {
    let all = tracex_core::Error::one_of_each();
    match all.iter().find(|e| e.code() == code) {
        Some(e) => Err(to_js(e)),
        None => Err(to_js(&tracex_core::Error::Config(format!("no core error has code {code}")))),
    }
}
