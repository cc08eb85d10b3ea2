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

/// A second request: two `ResourceSpans` of one service, one span each, in two traces. The
/// collector accepts any number of them in one batch.
fn two_resources_request() -> TraceRequest {
    let resource_spans = [("settler", 0x11u8), ("facilitator", 0x12)]
        .into_iter()
        .map(|(role, id)| ResourceSpans {
            resource: Resource::new("vector-settler").with("x402.operator.role", role),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope {
                    name: "tracex-vectors".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                },
                spans: vec![SpanData {
                    trace_id: TraceId([id; 16]),
                    span_id: SpanId([id; 8]),
                    flags: 1,
                    name: Cow::Owned(format!("{role} step")),
                    kind: SpanKind::Internal,
                    start_time_unix_nano: 1_763_900_000_000_000_000,
                    end_time_unix_nano: 1_763_900_000_001_000_000,
                    attributes: vec![KeyValue::new("x402.phase", role)],
                    status: Status::ok(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    TraceRequest { resource_spans }
}

/// One case's inputs. `base` seeds every fixed byte string (data key, OAEP seed, ids, nonce).
struct Input {
    name: &'static str,
    flags: u8,
    payload: Vec<u8>,
    otlp: Vec<u8>,
    base: u8,
    sdk_name: &'static str,
    sdk_version: &'static str,
    expect: J,
    /// Crafted rejections appended to `tampered` (see `rejections`).
    rejections: bool,
}

pub fn write(root: &std::path::Path) {
    let public_pem = std::fs::read_to_string(root.join("collector-test-key.pub.pem")).expect("test public key");
    let key = CollectorKey::from_pem(&public_pem).expect("valid key");

    let mut otlp = Vec::new();
    tracex_core::encode::encode_request(&request(), &mut otlp);
    let deflated = miniz_oxide::deflate::compress_to_vec(&otlp, 6);
    // Level 0: stored blocks only. Openers must accept any valid raw DEFLATE stream, not just what
    // one compressor at one level writes.
    let stored = miniz_oxide::deflate::compress_to_vec(&otlp, 0);
    assert_eq!(stored[0] & 0b110, 0, "level 0 writes stored blocks (BTYPE 00)");
    let mut two_otlp = Vec::new();
    tracex_core::encode::encode_request(&two_resources_request(), &mut two_otlp);
    let empty = json!({ "service_name": null, "spans": [] });
    let input = |name, flags, payload: &Vec<u8>, otlp: &Vec<u8>, base, expect: &J| Input {
        name,
        flags,
        payload: payload.clone(),
        otlp: otlp.clone(),
        base,
        sdk_name: "tracex-vectors",
        sdk_version: "1.0.0",
        expect: expect.clone(),
        rejections: false,
    };
    // The first three cases predate the rest; their bytes are frozen with envelope v1.
    let settle = expect_json(&request());
    let inputs = [
        input("settle-trace", 0, &otlp, &otlp, 0x00, &settle),
        input("settle-trace-deflate", seal::FLAG_DEFLATE, &deflated, &otlp, 0x40, &settle),
        input("empty-request", 0, &Vec::new(), &Vec::new(), 0x80, &empty),
        input("settle-trace-deflate-stored", seal::FLAG_DEFLATE, &stored, &otlp, 0x20, &settle),
        input("two-resources", 0, &two_otlp, &two_otlp, 0x60, &expect_json(&two_resources_request())),
        // The shortest envelope for this key: empty SDK name and version, empty payload.
        Input {
            sdk_name: "",
            sdk_version: "",
            rejections: true,
            ..input("minimal", 0, &Vec::new(), &Vec::new(), 0xc0, &empty)
        },
    ];
    let public = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_pem(&public_pem).expect("pem")
    };
    let out: Vec<J> = inputs.iter().map(|i| case(&key, &public, i)).collect();
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

fn case(key: &CollectorKey, public: &rsa::RsaPublicKey, i: &Input) -> J {
    let base = i.base;
    let data_key: [u8; 32] = arr(&seq(base, 32));
    let oaep_seed = seq(base.wrapping_add(0xa0), 32);
    let wrapped = key.wrap_with_rng(&data_key, &mut FixedRng(oaep_seed.clone(), 0)).expect("wrap");
    let header = Header {
        flags: i.flags,
        key_id: key.key_id(),
        batch_id: arr(&seq(base.wrapping_add(0x50), 16)),
        instance_id: arr(&seq(base.wrapping_add(0x60), 8)),
        sequence: 1 + u64::from(base),
        created_at_unix_nano: 1_763_900_001_000_000_000,
        sdk_name: i.sdk_name.into(),
        sdk_version: i.sdk_version.into(),
        wrapped_key: wrapped.clone(),
        nonce: arr(&seq(base.wrapping_add(0x70), 12)),
    };
    let envelope = seal::seal_payload(&header, &data_key, &i.payload).expect("seal");
    let header_len = header.encoded_len();
    assert_eq!(RawHeader::of(&header).bytes(), envelope[..header_len], "RawHeader writes what Header writes");
    // One flipped byte in each region: header fields, wrapped key, nonce, ciphertext, tag.
    let mut offsets = vec![0usize, 4, 5, 6, 40, 56, 64, 72, 80, 100, header_len - 13, header_len - 1];
    if envelope.len() > header_len + 16 {
        offsets.push(header_len);
        offsets.push(header_len + (envelope.len() - header_len - 16) / 2);
    }
    offsets.push(envelope.len() - 1);
    let mut tampered: Vec<J> = offsets
        .into_iter()
        .map(|o| {
            let mut t = envelope.clone();
            t[o] ^= 0x01;
            json!({ "offset": o, "envelope": hex::encode(t) })
        })
        .collect();
    if i.rejections {
        tampered.extend(rejections(public, &header, &data_key, &oaep_seed, &envelope));
    }
    json!({
        "name": i.name,
        "key_id": key.key_id().to_hex(),
        "data_key": hex::encode(data_key),
        "oaep_seed": hex::encode(&oaep_seed),
        "wrapped_key": hex::encode(&wrapped),
        "wrapped_key_sha256": hex::encode(header.wrapped_key_hash()),
        "header": {
            "version": 1,
            "flags": i.flags,
            "batch_id": hex::encode(header.batch_id),
            "instance_id": hex::encode(header.instance_id),
            "sequence": header.sequence,
            "created_at_unix_nano": header.created_at_unix_nano.to_string(),
            "sdk_name": header.sdk_name,
            "sdk_version": header.sdk_version,
            "nonce": hex::encode(header.nonce),
            "length": header_len,
        },
        "payload": hex::encode(&i.payload),
        "otlp": hex::encode(&i.otlp),
        "envelope": hex::encode(&envelope),
        "expect": i.expect,
        "tampered": tampered,
    })
}

// === crafted rejections ===

/// A header as raw fields, so a rejection can carry values [`Header::write`] refuses.
#[derive(Clone)]
struct RawHeader {
    version: u8,
    flags: u8,
    key_id: [u8; 32],
    rest: Vec<u8>, // batch_id, instance_id, sequence, created_at: unchanged by every rejection
    sdk_name: Vec<u8>,
    sdk_version: Vec<u8>,
    wrapped_key: Vec<u8>,
    nonce: [u8; 12],
}

impl RawHeader {
    fn of(h: &Header) -> Self {
        let mut rest = Vec::new();
        rest.extend_from_slice(&h.batch_id);
        rest.extend_from_slice(&h.instance_id);
        rest.extend_from_slice(&h.sequence.to_be_bytes());
        rest.extend_from_slice(&h.created_at_unix_nano.to_be_bytes());
        Self {
            version: seal::VERSION,
            flags: h.flags,
            key_id: h.key_id.0,
            rest,
            sdk_name: h.sdk_name.as_bytes().to_vec(),
            sdk_version: h.sdk_version.as_bytes().to_vec(),
            wrapped_key: h.wrapped_key.clone(),
            nonce: h.nonce,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = seal::MAGIC.to_vec();
        out.extend([self.version, self.flags]);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.rest);
        for f in [&self.sdk_name, &self.sdk_version] {
            out.push(u8::try_from(f.len()).expect("u8 length"));
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&u16::try_from(self.wrapped_key.len()).expect("u16 length").to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out
    }

    /// The header, then `payload` encrypted under `data_key` with the header as AAD: a correct seal
    /// of whatever the header says.
    fn seal(&self, data_key: &[u8; 32], payload: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::AeadInPlace;
        use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
        let mut out = self.bytes();
        let mut body = payload.to_vec();
        let tag = Aes256Gcm::new(data_key.into())
            .encrypt_in_place_detached(Nonce::from_slice(&self.nonce), &out, &mut body)
            .expect("encrypt");
        out.extend(body);
        out.extend_from_slice(&tag);
        out
    }
}

/// Envelopes every opener must refuse, each built from the case's `envelope`, with the collector's
/// answer. Some are sealed under 32 zero bytes instead of the case's data key: replayers that open
/// with the known data key (and skip the RSA unwrap) must refuse them too.
fn rejections(public: &rsa::RsaPublicKey, h: &Header, data_key: &[u8; 32], seed: &[u8], envelope: &[u8]) -> Vec<J> {
    const ZERO: [u8; 32] = [0; 32];
    let raw = RawHeader::of(h);
    let with = |f: &dyn Fn(&mut RawHeader)| {
        let mut r = raw.clone();
        f(&mut r);
        r
    };
    let len = envelope.len();
    let mut long_wk = h.wrapped_key.repeat(3);
    long_wk.truncate(1025);
    let sixteen = wrap_bytes(public, &[0u8; 16], seed);
    let zlib_empty = miniz_oxide::deflate::compress_to_vec_zlib(&[], 6);
    let list: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "malformed_envelope"),
        (
            "magic and version 2, nothing else: the version is checked before any length",
            b"TRXB\x02".to_vec(),
            "unsupported_version",
        ),
        (
            "cut one byte short of the header (inside the nonce)",
            envelope[..h.encoded_len() - 1].to_vec(),
            "malformed_envelope",
        ),
        (
            "cut one byte short of the smallest envelope (header and 16-byte tag)",
            envelope[..len - 1].to_vec(),
            "malformed_envelope",
        ),
        (
            "flags 0x02 (an unknown bit), correctly sealed",
            with(&|r| r.flags = 0x02).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "sdk_name of 65 bytes, correctly sealed",
            with(&|r| r.sdk_name = vec![b'a'; 65]).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "sdk_version not UTF-8 (0xff), correctly sealed",
            with(&|r| r.sdk_version = vec![0xff]).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "wrapped_key_len 255, correctly sealed",
            with(&|r| r.wrapped_key.truncate(255)).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "wrapped_key_len 1025, correctly sealed",
            with(&|r| r.wrapped_key.clone_from(&long_wk)).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "wrapped_key_len 256: in range, but not the 384-byte modulus of the named key (payload sealed under 32 zero bytes)",
            with(&|r| r.wrapped_key.truncate(256)).seal(&ZERO, &[]),
            "decrypt_failed",
        ),
        (
            "the wrapped key unwraps to 16 zero bytes, not 32 (payload sealed under 32 zero bytes)",
            with(&|r| r.wrapped_key.clone_from(&sixteen)).seal(&ZERO, &[]),
            "decrypt_failed",
        ),
        (
            "key_id of 32 zero bytes: no such key (not resealed)",
            with(&|r| r.key_id = [0; 32])
                .bytes()
                .into_iter()
                .chain(envelope[h.encoded_len()..].iter().copied())
                .collect(),
            "unknown_key_id",
        ),
        (
            "flag 0x01 with an empty payload: not a DEFLATE stream, correctly sealed",
            with(&|r| r.flags = seal::FLAG_DEFLATE).seal(data_key, &[]),
            "malformed_envelope",
        ),
        (
            "flag 0x01 with a zlib stream (RFC 1950) of the empty request instead of raw DEFLATE, correctly sealed",
            with(&|r| r.flags = seal::FLAG_DEFLATE).seal(data_key, &zlib_empty),
            "malformed_envelope",
        ),
    ];
    list.into_iter()
        .map(|(change, bytes, code)| {
            check_refused(&bytes, data_key, code, change);
            let offset = bytes.iter().zip(envelope).position(|(a, b)| a != b).unwrap_or(bytes.len().min(len));
            json!({
                "offset": offset,
                "envelope": hex::encode(&bytes),
                "change": change,
                "collector": { "status": 400, "code": code },
            })
        })
        .collect()
}

/// RSA-OAEP-SHA256 of any bytes (the SDK API wraps only 32-byte keys), with a fixed seed.
fn wrap_bytes(public: &rsa::RsaPublicKey, bytes: &[u8], seed: &[u8]) -> Vec<u8> {
    public.encrypt(&mut FixedRng(seed.to_vec(), 0), rsa::Oaep::new::<sha2::Sha256>(), bytes).expect("wrap")
}

/// What the binding replayers do (parse, then open with the case's data key) must fail the way the
/// collector's code says.
fn check_refused(bytes: &[u8], data_key: &[u8; 32], code: &str, change: &str) {
    use tracex_core::Error as E;
    let got = seal::parse(bytes).and_then(|env| env.open(data_key, 1 << 20));
    let ok = matches!(
        (&got, code),
        (Err(E::MalformedEnvelope(_)), "malformed_envelope")
            | (Err(E::UnsupportedVersion(_)), "unsupported_version")
            | (Err(E::Open), "decrypt_failed" | "unknown_key_id")
    );
    assert!(ok, "{change}: {code} expected, core says {got:?}");
}

fn der_of(pem: &str) -> Vec<u8> {
    use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
    let k = rsa::RsaPublicKey::from_public_key_pem(pem).expect("pem");
    k.to_public_key_der().expect("der").as_bytes().to_vec()
}
