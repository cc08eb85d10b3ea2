//! The shared wire-format vectors (`tests/vectors/envelope-v1.json`): sealing reproduces the exact
//! envelope bytes, opening recovers the data key and the OTLP request, and every tampered byte fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use serde_json::Value as J;
use sha2::Sha256;
use tracex_core::seal::{self, CollectorKey, Header, KeyId};
use tracex_core::{Error, Value};

fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn load() -> J {
    let text = std::fs::read_to_string(vectors_dir().join("envelope-v1.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn h(v: &J) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(v: &J) -> [u8; N] {
    h(v).try_into().unwrap()
}

struct FixedRng(Vec<u8>, usize);
impl rsa::rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!()
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!()
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

fn header_of(case: &J, key_id: KeyId) -> Header {
    let hd = &case["header"];
    Header {
        flags: u8::try_from(hd["flags"].as_u64().unwrap()).unwrap(),
        key_id,
        batch_id: arr(&hd["batch_id"]),
        instance_id: arr(&hd["instance_id"]),
        sequence: hd["sequence"].as_u64().unwrap(),
        created_at_unix_nano: hd["created_at_unix_nano"].as_str().unwrap().parse().unwrap(),
        sdk_name: hd["sdk_name"].as_str().unwrap().into(),
        sdk_version: hd["sdk_version"].as_str().unwrap().into(),
        wrapped_key: h(&case["wrapped_key"]),
        nonce: arr(&hd["nonce"]),
    }
}

#[test]
fn sealing_reproduces_every_vector_byte_for_byte() {
    let doc = load();
    let public =
        CollectorKey::from_pem(&std::fs::read_to_string(vectors_dir().join("collector-test-key.pub.pem")).unwrap())
            .unwrap();
    assert_eq!(public.key_id().to_hex(), doc["key_id_hex"].as_str().unwrap());
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert_eq!(public.key_id().to_hex(), case["key_id"].as_str().unwrap(), "{name}");
        let data_key: [u8; 32] = arr(&case["data_key"]);
        let wrapped = public.wrap_with_rng(&data_key, &mut FixedRng(h(&case["oaep_seed"]), 0)).unwrap();
        assert_eq!(public.wrap_with_seed(&data_key, &h(&case["oaep_seed"])).unwrap(), wrapped);
        assert_eq!(hex::encode(&wrapped), case["wrapped_key"].as_str().unwrap(), "{name}: RSA-OAEP wrap");
        let header = header_of(case, public.key_id());
        assert_eq!(header.encoded_len() as u64, case["header"]["length"].as_u64().unwrap());
        let envelope = seal::seal_payload(&header, &data_key, &h(&case["payload"])).unwrap();
        assert_eq!(hex::encode(envelope), case["envelope"].as_str().unwrap(), "{name}: envelope");
    }
}

#[test]
fn opening_recovers_the_key_the_payload_and_the_spans() {
    let doc = load();
    let private =
        RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(vectors_dir().join("collector-test-key.pem")).unwrap())
            .unwrap();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let bytes = h(&case["envelope"]);
        let env = seal::parse(&bytes).unwrap();
        let key_id = KeyId(arr(&case["key_id"]));
        assert_eq!(env.header, header_of(case, key_id), "{name}: header");
        assert_eq!(hex::encode(env.header.wrapped_key_hash()), case["wrapped_key_sha256"].as_str().unwrap());
        let data_key = private.decrypt(Oaep::new::<Sha256>(), &env.header.wrapped_key).unwrap();
        assert_eq!(hex::encode(&data_key), case["data_key"].as_str().unwrap(), "{name}: unwrap");
        let plaintext = env.open(&data_key.try_into().unwrap(), 1 << 20).unwrap();
        assert_eq!(hex::encode(&plaintext), case["otlp"].as_str().unwrap(), "{name}: plaintext");

        let req = tracex_core::decode::decode_request(&plaintext).unwrap();
        let expect = &case["expect"];
        let spans: Vec<_> = req.spans().collect();
        assert_eq!(spans.len(), expect["spans"].as_array().unwrap().len());
        for ((resource, _, span), want) in spans.iter().zip(expect["spans"].as_array().unwrap()) {
            assert_eq!(resource.service_name(), expect["service_name"].as_str());
            assert_eq!(span.trace_id.to_hex(), want["trace_id"].as_str().unwrap());
            assert_eq!(span.span_id.to_hex(), want["span_id"].as_str().unwrap());
            assert_eq!(span.parent_span_id.map(|p| p.to_hex()).as_deref(), want["parent_span_id"].as_str());
            assert_eq!(span.name, want["name"].as_str().unwrap());
            assert_eq!(span.status.message, want["status_message"].as_str().unwrap());
            for (k, v) in want["attributes"].as_object().unwrap() {
                let got = span.attribute(k).unwrap_or_else(|| panic!("{name}: missing {k}"));
                match (got, v) {
                    (Value::String(s), J::String(w)) => assert_eq!(s, w),
                    (Value::Int(i), J::Number(w)) => assert_eq!(Some(*i), w.as_i64()),
                    (Value::Double(d), J::Number(w)) => assert_eq!(Some(*d), w.as_f64()),
                    (Value::Bool(b), J::Bool(w)) => assert_eq!(b, w),
                    (Value::Array(a), J::Array(w)) => assert_eq!(a.len(), w.len()),
                    other => panic!("{name}: {k}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn every_tampered_vector_is_rejected() {
    let doc = load();
    let private =
        RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(vectors_dir().join("collector-test-key.pem")).unwrap())
            .unwrap();
    let mut checked = 0;
    let mut crafted = 0;
    for case in doc["cases"].as_array().unwrap() {
        let data_key: [u8; 32] = arr(&case["data_key"]);
        for t in case["tampered"].as_array().unwrap() {
            let bytes = h(&t["envelope"]);
            let result = seal::parse(&bytes).and_then(|env| {
                // Open as the collector does: with what the wrapped key unwraps to. A wrapped key
                // that does not unwrap (wrong length, OAEP check) or unwraps to anything but 32
                // bytes refuses the batch just the same.
                match private.decrypt(Oaep::new::<Sha256>(), &env.header.wrapped_key) {
                    Ok(k) if k.len() == 32 => env.open(&k.try_into().unwrap(), 1 << 20),
                    _ => Err(Error::Open),
                }
            });
            let err = result.expect_err("tampered byte accepted");
            let what = format!("offset {}, {}: {err}", t["offset"], t["change"]);
            assert!(matches!(err, Error::Open | Error::MalformedEnvelope(_) | Error::UnsupportedVersion(_)), "{what}");
            // Crafted entries name the collector's answer; the core's error must be the one it maps from
            // (`unknown_key_id` is the collector's key lookup, which fails authentication here).
            if let Some(code) = t["collector"]["code"].as_str() {
                let same = match code {
                    "malformed_envelope" => matches!(err, Error::MalformedEnvelope(_)),
                    "unsupported_version" => matches!(err, Error::UnsupportedVersion(_)),
                    "decrypt_failed" | "unknown_key_id" => matches!(err, Error::Open),
                    other => panic!("{what}: unknown collector code {other}"),
                };
                assert!(same, "{what}: the collector answers {code}");
                assert_eq!(t["collector"]["status"], 400, "{what}");
                crafted += 1;
            }
            checked += 1;
        }
        // A case's own data key is what its wrapped key unwraps to.
        let bytes = h(&case["envelope"]);
        let env = seal::parse(&bytes).unwrap();
        assert_eq!(private.decrypt(Oaep::new::<Sha256>(), &env.header.wrapped_key).unwrap(), data_key);
    }
    assert!(checked >= 30, "{checked}");
    assert!(crafted >= 10, "{crafted} crafted rejections");
}
