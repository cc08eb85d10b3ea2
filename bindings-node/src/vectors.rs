//! Test support for the shared wire vectors (`tests/vectors/envelope-v1.json`): the package's tests
//! reproduce and open the vectors through these, i.e. through the same compiled core that seals
//! real batches. Nothing here is part of the public API.

use napi::bindgen_prelude::Uint8Array;
use napi_derive::napi;
use tracex_core::seal::{self, CollectorKey, Header};

use napi::Env;

use crate::error::{config, to_js};

/// An envelope header, as the vector file spells it (hex strings, decimal strings for u64).
#[napi(object)]
pub struct VectorHeader {
    pub flags: u32,
    pub batch_id: String,
    pub instance_id: String,
    pub sequence: f64,
    pub created_at_unix_nano: String,
    pub sdk_name: String,
    pub sdk_version: String,
    pub nonce: String,
}

fn hex_array<const N: usize>(env: &Env, s: &str, what: &str) -> napi::Result<[u8; N]> {
    let v = hex_bytes(env, s, what)?;
    v.try_into().map_err(|_| config(env, format!("{what} must be {N} bytes")))
}

fn hex_bytes(env: &Env, s: &str, what: &str) -> napi::Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(config(env, format!("{what}: odd-length hex")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| config(env, format!("{what}: not hex"))))
        .collect()
}

/// Wraps `dataKey` to `publicKeyPem` with the vector's fixed OAEP seed (hex in, hex out).
#[napi(js_name = "vectorWrapKey")]
pub fn vector_wrap_key(env: Env, public_key_pem: String, data_key: String, oaep_seed: String) -> napi::Result<String> {
    let key = CollectorKey::from_pem(&public_key_pem).map_err(|e| to_js(&env, &e))?;
    let wrapped = key
        .wrap_with_seed(&hex_array(&env, &data_key, "dataKey")?, &hex_bytes(&env, &oaep_seed, "oaepSeed")?)
        .map_err(|e| to_js(&env, &e))?;
    Ok(wrapped.iter().map(|b| format!("{b:02x}")).collect())
}

/// Seals `payload` under `dataKey` with a fixed header (what the vector's `envelope` must equal).
#[napi(js_name = "vectorSeal")]
pub fn vector_seal(
    env: Env,
    public_key_pem: String,
    header: VectorHeader,
    wrapped_key: Uint8Array,
    data_key: Uint8Array,
    payload: Uint8Array,
) -> napi::Result<Uint8Array> {
    let key = CollectorKey::from_pem(&public_key_pem).map_err(|e| to_js(&env, &e))?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let h = Header {
        flags: u8::try_from(header.flags).map_err(|_| config(&env, "flags must fit a byte"))?,
        key_id: key.key_id(),
        batch_id: hex_array(&env, &header.batch_id, "batchId")?,
        instance_id: hex_array(&env, &header.instance_id, "instanceId")?,
        sequence: header.sequence as u64,
        created_at_unix_nano: header.created_at_unix_nano.parse().map_err(|_| config(&env, "createdAtUnixNano"))?,
        sdk_name: header.sdk_name,
        sdk_version: header.sdk_version,
        wrapped_key: wrapped_key.to_vec(),
        nonce: hex_array(&env, &header.nonce, "nonce")?,
    };
    let dk: [u8; 32] = data_key.to_vec().try_into().map_err(|_| config(&env, "dataKey must be 32 bytes"))?;
    Ok(seal::seal_payload(&h, &dk, &payload).map_err(|e| to_js(&env, &e))?.into())
}

/// Opens an envelope with a known data key; returns the plaintext (OTLP protobuf) or throws with
/// the core's code (`TRACEX_OPEN_FAILED`, `TRACEX_MALFORMED_ENVELOPE`, …).
#[napi(js_name = "vectorOpen")]
pub fn vector_open(env: Env, envelope: Uint8Array, data_key: Uint8Array) -> napi::Result<Uint8Array> {
    let dk: [u8; 32] = data_key.to_vec().try_into().map_err(|_| config(&env, "dataKey must be 32 bytes"))?;
    let sealed = seal::parse(&envelope).map_err(|e| to_js(&env, &e))?;
    Ok(sealed.open(&dk, 16 << 20).map_err(|e| to_js(&env, &e))?.into())
}

/// Decodes an OTLP plaintext into its span names (in order), to check a vector's `expect`.
#[napi(js_name = "vectorSpanNames")]
pub fn vector_span_names(env: Env, otlp: Uint8Array) -> napi::Result<Vec<String>> {
    let req = tracex_core::decode::decode_request(&otlp).map_err(|e| to_js(&env, &e))?;
    Ok(req.spans().map(|(_, _, s)| s.name.to_string()).collect())
}

/// The core's decision for a root span of trace `trace_id` (hex) under `Sampler::ratio(ratio)`: the
/// JS layer applies the same rule at `startSpan`, and the tests compare the two.
#[napi(js_name = "coreSampled")]
pub fn core_sampled(env: Env, ratio: f64, trace_id: String) -> napi::Result<bool> {
    let id = tracex_core::TraceId(hex_array(&env, &trace_id, "traceId")?);
    Ok(tracex_core::Sampler::ratio(ratio).should_sample(None, id))
}
