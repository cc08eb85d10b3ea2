//! `tests/vectors/envelope-v1.json`: the wire format. Deterministic (fixed keys, nonces, OAEP
//! seeds); it must only change with a new format version.

use std::borrow::Cow;

use serde_json::{Value as J, json};
use tracex_core::seal::{self, CollectorKey, Header, KeyId};
use tracex_core::{
    Event, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind, Status,
    TraceId, TraceRequest, Value,
};

/// Yields a fixed byte sequence: makes RSA-OAEP's random seed reproducible. Test vectors only.
struct FixedRng(Vec<u8>, usize);

impl rsa::rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.0[self.1 % self.0.len()];
            self.1 += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rsa::rand_core::CryptoRng for FixedRng {}

fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().expect("length")
}

fn request() -> TraceRequest {
    let trace_id = TraceId(arr(&seq(0x10, 16)));
    let root = SpanData {
        trace_id,
        span_id: SpanId(arr(&seq(0x20, 8))),
        flags: 1,
        name: Cow::Borrowed("POST /settle"),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_763_900_000_000_000_000,
        end_time_unix_nano: 1_763_900_000_250_000_000,
        attributes: vec![
            KeyValue::new("x402.phase", "settle"),
            KeyValue::new("x402.scheme", "exact"),
            KeyValue::new("x402.network", "base-sepolia"),
            KeyValue::new("x402.asset", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            KeyValue::new("x402.amount", "10000"),
            KeyValue::new("x402.attempt", 2i64),
            KeyValue::new("http.response.status_code", 200i64),
        ],
        status: Status::ok(),
        ..Default::default()
    };
    let child = SpanData {
        trace_id,
        span_id: SpanId(arr(&seq(0x30, 8))),
        parent_span_id: Some(root.span_id),
        flags: 0x101,
        name: Cow::Borrowed("eth_sendRawTransaction"),
        kind: SpanKind::Client,
        start_time_unix_nano: 1_763_900_000_010_000_000,
        end_time_unix_nano: 1_763_900_000_200_000_000,
        attributes: vec![
            KeyValue::new("x402.tx_hash", "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"),
            KeyValue::new("rpc.latency_ms", 189.5f64),
            KeyValue::new("retry", true),
            KeyValue::new("tags", vec!["a", "b"]),
        ],
        events: vec![Event {
            time_unix_nano: 1_763_900_000_100_000_000,
            name: Cow::Borrowed("retry"),
            attributes: vec![KeyValue::new("x402.attempt", 1i64)],
            dropped_attributes_count: 0,
        }],
        status: Status::error("nonce too low"),
        ..Default::default()
    };
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new("vector-settler").with("x402.operator.role", "settler"),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope {
                    name: "tracex-vectors".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                },
                spans: vec![root, child],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn attr_json(v: &Value) -> J {
    match v {
        Value::String(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Double(d) => json!(d),
        Value::Bytes(b) => json!(hex::encode(b)),
        Value::Array(a) => J::Array(a.iter().map(attr_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|kv| (kv.key.to_string(), attr_json(&kv.value))).collect()),
    }
}

fn expect_json(req: &TraceRequest) -> J {
    let spans: Vec<J> = req
        .spans()
        .map(|(_, _, s)| {
            json!({
                "trace_id": s.trace_id.to_hex(),
                "span_id": s.span_id.to_hex(),
                "parent_span_id": s.parent_span_id.map(|p| p.to_hex()),
                "name": s.name,
                "kind": s.kind.as_i32(),
                "start_time_unix_nano": s.start_time_unix_nano.to_string(),
                "end_time_unix_nano": s.end_time_unix_nano.to_string(),
                "status_code": s.status.code as i32,
                "status_message": s.status.message,
                "attributes": J::Object(s.attributes.iter().map(|kv| (kv.key.to_string(), attr_json(&kv.value))).collect()),
                "events": s.events.iter().map(|e| json!({"name": e.name, "time_unix_nano": e.time_unix_nano.to_string()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let service = req.resource_spans.first().and_then(|r| r.resource.service_name()).unwrap_or_default();
    json!({ "service_name": service, "spans": spans })
}

pub fn write(root: &std::path::Path) {
    let public_pem = std::fs::read_to_string(root.join("collector-test-key.pub.pem")).expect("test public key");
    let key = CollectorKey::from_pem(&public_pem).expect("valid key");

    let mut otlp = Vec::new();
    tracex_core::encode::encode_request(&request(), &mut otlp);
    let empty_otlp = Vec::new();
    let deflated = miniz_oxide::deflate::compress_to_vec(&otlp, 6);

    let cases = [
        ("settle-trace", 0u8, otlp.clone(), otlp.clone(), 0x00u8),
        ("settle-trace-deflate", seal::FLAG_DEFLATE, deflated, otlp.clone(), 0x40u8),
        ("empty-request", 0u8, empty_otlp.clone(), empty_otlp, 0x80u8),
    ];
    let mut out = Vec::new();
    for (name, flags, payload, plaintext, base) in cases {
        let data_key: [u8; 32] = arr(&seq(base, 32));
        let oaep_seed = seq(base.wrapping_add(0xa0), 32);
        let wrapped = key.wrap_with_rng(&data_key, &mut FixedRng(oaep_seed.clone(), 0)).expect("wrap");
        let header = Header {
            flags,
            key_id: key.key_id(),
            batch_id: arr(&seq(base.wrapping_add(0x50), 16)),
            instance_id: arr(&seq(base.wrapping_add(0x60), 8)),
            sequence: 1 + u64::from(base),
            created_at_unix_nano: 1_763_900_001_000_000_000,
            sdk_name: "tracex-vectors".into(),
            sdk_version: "1.0.0".into(),
            wrapped_key: wrapped.clone(),
            nonce: arr(&seq(base.wrapping_add(0x70), 12)),
        };
        let envelope = seal::seal_payload(&header, &data_key, &payload).expect("seal");
        let header_len = header.encoded_len();
        // One flipped byte in each region: header fields, wrapped key, nonce, ciphertext, tag.
        let mut offsets = vec![0usize, 4, 5, 6, 40, 56, 64, 72, 80, 100, header_len - 13, header_len - 1];
        if envelope.len() > header_len + 16 {
            offsets.push(header_len);
            offsets.push(header_len + (envelope.len() - header_len - 16) / 2);
        }
        offsets.push(envelope.len() - 1);
        let tampered: Vec<J> = offsets
            .into_iter()
            .map(|o| {
                let mut t = envelope.clone();
                t[o] ^= 0x01;
                json!({ "offset": o, "envelope": hex::encode(t) })
            })
            .collect();
        let expect =
            if plaintext.is_empty() { json!({ "service_name": null, "spans": [] }) } else { expect_json(&request()) };
        out.push(json!({
            "name": name,
            "key_id": key.key_id().to_hex(),
            "data_key": hex::encode(data_key),
            "oaep_seed": hex::encode(&oaep_seed),
            "wrapped_key": hex::encode(&wrapped),
            "wrapped_key_sha256": hex::encode(header.wrapped_key_hash()),
            "header": {
                "version": 1,
                "flags": flags,
                "batch_id": hex::encode(header.batch_id),
                "instance_id": hex::encode(header.instance_id),
                "sequence": header.sequence,
                "created_at_unix_nano": header.created_at_unix_nano.to_string(),
                "sdk_name": header.sdk_name,
                "sdk_version": header.sdk_version,
                "nonce": hex::encode(header.nonce),
                "length": header_len,
            },
            "payload": hex::encode(&payload),
            "otlp": hex::encode(&plaintext),
            "envelope": hex::encode(&envelope),
            "expect": expect,
            "tampered": tampered,
        }));
    }
    let doc = json!({
        "format": "tracex envelope v1 test vectors; see docs/wire-format.md",
        "private_key_pem_file": "collector-test-key.pem",
        "public_key_pem_file": "collector-test-key.pub.pem",
        "key_id_hex": KeyId::of_spki_der(&der_of(&public_pem)).to_hex(),
        "cases": out,
    });
    let path = root.join("envelope-v1.json");
    // Plain `to_string_pretty` (not `super::write_json`): the file's bytes predate the other vector
    // files and stay as they are.
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json") + "\n").expect("write");
    println!("wrote {}", path.display());
}

fn der_of(pem: &str) -> Vec<u8> {
    use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
    let k = rsa::RsaPublicKey::from_public_key_pem(pem).expect("pem");
    k.to_public_key_der().expect("der").as_bytes().to_vec()
}
