//! Test support, compiled only with feature `testing` (never in the released addon; the packed
//! artefact is checked for it by scripts/test-node.sh): the shared vectors (`tests/vectors/`) —
//! envelopes reproduced with fixed inputs and opened, the core's sampling decision, one error of
//! each kind — and decoding of JS-written record buffers, all through the same compiled core that
//! seals real batches.
#![allow(clippy::needless_pass_by_value, reason = "napi hands JS arguments over owned")]

use napi::bindgen_prelude::Uint8Array;
use napi_derive::napi;
use tracex_core::seal::{self, CollectorKey, Header};

use std::fmt::Write as _;

use napi::Env;

use crate::error::to_js;

/// A configuration error for a malformed test input.
fn config(env: Env, message: impl Into<String>) -> napi::Error {
    to_js(env, &tracex_core::Error::Config(message.into()))
}

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn hex_array<const N: usize>(env: Env, s: &str, what: &str) -> napi::Result<[u8; N]> {
    let v = hex_bytes(env, s, what)?;
    v.try_into().map_err(|_| config(env, format!("{what} must be {N} bytes")))
}

fn hex_bytes(env: Env, s: &str, what: &str) -> napi::Result<Vec<u8>> {
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
    let key = CollectorKey::from_pem(&public_key_pem).map_err(|e| to_js(env, &e))?;
    let wrapped = key
        .wrap_with_seed(&hex_array(env, &data_key, "dataKey")?, &hex_bytes(env, &oaep_seed, "oaepSeed")?)
        .map_err(|e| to_js(env, &e))?;
    Ok(hex(&wrapped))
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
    let key = CollectorKey::from_pem(&public_key_pem).map_err(|e| to_js(env, &e))?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let h = Header {
        flags: u8::try_from(header.flags).map_err(|_| config(env, "flags must fit a byte"))?,
        key_id: key.key_id(),
        batch_id: hex_array(env, &header.batch_id, "batchId")?,
        instance_id: hex_array(env, &header.instance_id, "instanceId")?,
        sequence: header.sequence as u64,
        created_at_unix_nano: header.created_at_unix_nano.parse().map_err(|_| config(env, "createdAtUnixNano"))?,
        sdk_name: header.sdk_name,
        sdk_version: header.sdk_version,
        wrapped_key: wrapped_key.to_vec(),
        nonce: hex_array(env, &header.nonce, "nonce")?,
    };
    let dk: [u8; 32] = data_key.to_vec().try_into().map_err(|_| config(env, "dataKey must be 32 bytes"))?;
    Ok(seal::seal_payload(&h, &dk, &payload).map_err(|e| to_js(env, &e))?.into())
}

/// Opens an envelope with a known data key; returns the plaintext (OTLP protobuf) or throws with
/// the core's code (`TRACEX_OPEN_FAILED`, `TRACEX_MALFORMED_ENVELOPE`, …).
#[napi(js_name = "vectorOpen")]
pub fn vector_open(env: Env, envelope: Uint8Array, data_key: Uint8Array) -> napi::Result<Uint8Array> {
    let dk: [u8; 32] = data_key.to_vec().try_into().map_err(|_| config(env, "dataKey must be 32 bytes"))?;
    let sealed = seal::parse(&envelope).map_err(|e| to_js(env, &e))?;
    Ok(sealed.open(&dk, 16 << 20).map_err(|e| to_js(env, &e))?.into())
}

/// Decodes an OTLP plaintext into its span names (in order), to check a vector's `expect`.
#[napi(js_name = "vectorSpanNames")]
pub fn vector_span_names(env: Env, otlp: Uint8Array) -> napi::Result<Vec<String>> {
    let req = tracex_core::decode::decode_request(&otlp).map_err(|e| to_js(env, &e))?;
    Ok(req.spans().map(|(_, _, s)| s.name.to_string()).collect())
}

/// The core's decision for a root span of trace `trace_id` (hex) under `Sampler::ratio(ratio)`: the
/// JS layer applies the same rule at `startSpan`, and the tests compare the two.
#[napi(js_name = "coreSampled")]
pub fn core_sampled(env: Env, ratio: f64, trace_id: String) -> napi::Result<bool> {
    let id = tracex_core::TraceId(hex_array(env, &trace_id, "traceId")?);
    Ok(tracex_core::Sampler::ratio(ratio).should_sample(None, id))
}

/// Decodes a record buffer written by the JS layer, exactly as `ingest` does, and renders every
/// field as JSON, so the tests can compare the JS encoder with the core's decoder field by field.
/// Values are `{"s"|"b"|"i"|"d"|"x"|"a"|"m": …}` (ints as decimal strings, bytes as hex).
#[napi(js_name = "recordsJson")]
pub fn records_json(env: Env, bytes: Uint8Array) -> napi::Result<String> {
    use serde_json::{Value as J, json};
    use tracex_core::{KeyValue, Value};

    fn value(v: &Value) -> J {
        match v {
            Value::String(s) => json!({ "s": s }),
            Value::Bool(b) => json!({ "b": b }),
            Value::Int(i) => json!({ "i": i.to_string() }),
            Value::Double(d) => json!({ "d": d }),
            Value::Bytes(b) => json!({ "x": hex(b) }),
            Value::Array(a) => json!({ "a": a.iter().map(value).collect::<Vec<_>>() }),
            Value::Map(m) => json!({ "m": attrs(m) }),
        }
    }
    fn attrs(kvs: &[KeyValue]) -> J {
        J::Array(kvs.iter().map(|kv| json!([kv.key, value(&kv.value)])).collect())
    }

    let records = tracex_core::records::decode_records(&bytes).map_err(|e| to_js(env, &e))?;
    let spans: Vec<J> = records
        .spans
        .iter()
        .map(|s| {
            json!({
                "traceId": s.trace_id.to_hex(),
                "spanId": s.span_id.to_hex(),
                "parentSpanId": s.parent_span_id.map(|p| p.to_hex()),
                "flags": s.flags,
                "name": s.name,
                "kind": s.kind.as_i32(),
                "start": s.start_time_unix_nano.to_string(),
                "end": s.end_time_unix_nano.to_string(),
                "traceState": s.trace_state,
                "status": [s.status.code as u8, s.status.message],
                "attributes": attrs(&s.attributes),
                "droppedAttributes": s.dropped_attributes_count,
                "events": s.events.iter().map(|e| json!([e.name, e.time_unix_nano.to_string(), attrs(&e.attributes),
                    e.dropped_attributes_count])).collect::<Vec<_>>(),
                "droppedEvents": s.dropped_events_count,
                "links": s.links.iter().map(|l| json!([l.trace_id.to_hex(), l.span_id.to_hex(), l.flags, l.trace_state,
                    attrs(&l.attributes), l.dropped_attributes_count])).collect::<Vec<_>>(),
                "droppedLinks": s.dropped_links_count,
            })
        })
        .collect();
    Ok(json!({ "sampledOut": records.sampled_out, "spans": spans }).to_string())
}

/// Throws the core's example error with `code` (`Error::one_of_each`) through the addon's own error
/// conversion, so the tests see exactly what a real failure of that code looks like in JS.
#[napi(js_name = "coreError")]
pub fn core_error(env: Env, code: String) -> napi::Result<()> {
    let all = tracex_core::Error::one_of_each();
    let e =
        all.iter().find(|e| e.code() == code).ok_or_else(|| config(env, format!("no core error has code {code}")))?;
    Err(to_js(env, e))
}
