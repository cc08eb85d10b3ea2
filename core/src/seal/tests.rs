//! Unit tests of sealing and opening, with the test-only key of the wire vectors.

use std::time::Duration;

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;

use super::*;
use crate::error::{Error, Result};

/// The test-only 3072-bit key of the wire-format vectors.
pub(crate) const TEST_PRIVATE_PEM: &str = include_str!("../../../tests/vectors/collector-test-key.pem");

pub(crate) fn test_keys() -> (RsaPrivateKey, CollectorKey) {
    let private = RsaPrivateKey::from_pkcs8_pem(TEST_PRIVATE_PEM).unwrap();
    let public = CollectorKey::from_rsa(private.to_public_key()).unwrap();
    (private, public)
}

pub(crate) fn unwrap_key(private: &RsaPrivateKey, header: &Header) -> [u8; 32] {
    let k = private.decrypt(Oaep::new::<Sha256>(), &header.wrapped_key).unwrap();
    k.try_into().unwrap()
}

fn open_all(private: &RsaPrivateKey, bytes: &[u8]) -> Result<Vec<u8>> {
    let env = parse(bytes)?;
    let k = unwrap_key(private, &env.header);
    env.open(&k, 1 << 24)
}

#[test]
fn seal_then_open_round_trips() {
    let (private, public) = test_keys();
    let mut s = Sealer::new(public.clone(), SealerConfig::default()).unwrap();
    let b = s.seal(7, b"hello batch").unwrap();
    assert_eq!(b.sequence, 1);
    let env = parse(&b.bytes).unwrap();
    assert_eq!(env.header.key_id, public.key_id());
    assert_eq!(env.header.created_at_unix_nano, 7);
    assert_eq!(env.header.sdk_name, "tracex-rust");
    assert_eq!(open_all(&private, &b.bytes).unwrap(), b"hello batch");
}

#[test]
fn a_data_key_wrapped_by_the_host_seals_batches_the_collector_opens() {
    let (private, key) = test_keys();
    let mut sealer = Sealer::new(key.clone(), SealerConfig::default()).unwrap();
    let data_key = sealer.data_key_due(1).unwrap().expect("no key yet: a rotation is due");
    // What WebCrypto does on wasm32; here the same RSA-OAEP from Rust, to the DER the host gets.
    let wrapped = CollectorKey::from_spki_der(key.spki_der()).unwrap().wrap(&data_key).unwrap();
    let short = sealer.install_wrapped_key(1, &data_key, vec![0; 7]).unwrap_err();
    assert!(short.to_string().contains("7 bytes for a 3072-bit"), "{short}");
    assert_eq!(sealer.rotations(), 0, "a refused key is not installed");
    sealer.install_wrapped_key(1, &data_key, wrapped.clone()).unwrap();
    assert!(sealer.data_key_due(2).unwrap().is_none(), "the installed key is used");
    let batch = sealer.seal(2, b"spans").unwrap();
    let env = parse(&batch.bytes).unwrap();
    assert_eq!(env.header.wrapped_key, wrapped);
    assert_eq!(unwrap_key(&private, &env.header), *data_key);
    assert_eq!(open_all(&private, &batch.bytes).unwrap(), b"spans");
    assert_eq!(sealer.rotations(), 1);

    // Rotation by count and by age is still decided by the sealer.
    let rotation = KeyRotation { max_batches: 1, max_age: Duration::from_secs(60) };
    let mut sealer = Sealer::new(key, SealerConfig { rotation, ..Default::default() }).unwrap();
    let k = sealer.data_key_due(1).unwrap().unwrap();
    sealer.install_wrapped_key(1, &k, wrapped.clone()).unwrap();
    sealer.seal(1, b"a").unwrap();
    assert!(sealer.data_key_due(1).unwrap().is_some(), "one batch per key");
    sealer.install_wrapped_key(1, &k, wrapped).unwrap();
    assert!(sealer.data_key_due(2).unwrap().is_none());
    assert!(sealer.data_key_due(61_000_000_000).unwrap().is_some(), "too old");
    // A host that never wraps: the sealer wraps in Rust when it seals, as always.
    let b = sealer.seal(61_000_000_000, b"b").unwrap();
    assert_eq!(open_all(&private, &b.bytes).unwrap(), b"b");
    assert_eq!(sealer.rotations(), 3);
}

#[test]
fn compressed_batches_round_trip() {
    let (private, public) = test_keys();
    let mut s = Sealer::new(public, SealerConfig { compress: true, ..Default::default() }).unwrap();
    let plain = b"abcabcabc".repeat(1000);
    let b = s.seal(1, &plain).unwrap();
    assert!(b.bytes.len() < plain.len() / 4);
    assert!(parse(&b.bytes).unwrap().header.is_compressed());
    assert_eq!(open_all(&private, &b.bytes).unwrap(), plain);
    // The inflate limit stops decompression bombs.
    let env = parse(&b.bytes).unwrap();
    let k = unwrap_key(&private, &env.header);
    assert!(matches!(env.open(&k, 100), Err(Error::MalformedEnvelope(_))));
}

#[test]
fn data_keys_rotate_by_count_and_age() {
    let (_, public) = test_keys();
    let rotation = KeyRotation { max_batches: 3, max_age: Duration::from_secs(10) };
    let mut s = Sealer::new(public, SealerConfig { rotation, ..Default::default() }).unwrap();
    let wrapped = |b: &SealedBatch| parse(&b.bytes).unwrap().header.wrapped_key;
    let b1 = s.seal(0, b"1").unwrap();
    let b2 = s.seal(1, b"2").unwrap();
    let b3 = s.seal(2, b"3").unwrap();
    assert_eq!(wrapped(&b1), wrapped(&b2));
    assert_eq!(wrapped(&b2), wrapped(&b3));
    let b4 = s.seal(3, b"4").unwrap();
    assert_ne!(wrapped(&b3), wrapped(&b4), "rotates after max_batches");
    let b5 = s.seal(10_000_000_003, b"5").unwrap();
    assert_ne!(wrapped(&b4), wrapped(&b5), "rotates after max_age");
    assert_eq!(s.rotations(), 3);
    assert_eq!([b1.sequence, b5.sequence], [1, 5]);
    // Every batch has a fresh nonce and batch id.
    assert_ne!(parse(&b1.bytes).unwrap().header.nonce, parse(&b2.bytes).unwrap().header.nonce);
    assert_ne!(b1.batch_id, b2.batch_id);
}

#[test]
fn wrong_key_fails_to_open() {
    let (_, public) = test_keys();
    let mut s = Sealer::new(public, SealerConfig::default()).unwrap();
    let b = s.seal(0, b"secret").unwrap();
    let env = parse(&b.bytes).unwrap();
    assert!(matches!(env.open(&[7u8; 32], 1 << 20), Err(Error::Open)));
}

#[test]
fn structural_errors_are_named() {
    let (_, public) = test_keys();
    let mut s = Sealer::new(public, SealerConfig::default()).unwrap();
    let b = s.seal(0, b"x").unwrap().bytes;
    let mut bad = b.clone();
    bad[0] = b'X';
    assert!(parse(&bad).unwrap_err().to_string().contains("bad magic"));
    let mut bad = b.clone();
    bad[4] = 2;
    assert!(matches!(parse(&bad), Err(Error::UnsupportedVersion(2))));
    let mut bad = b.clone();
    bad[5] = 0x80;
    assert!(parse(&bad).unwrap_err().to_string().contains("unknown flag"));
    assert!(parse(&b[..40]).unwrap_err().to_string().contains("truncated"));
    assert!(parse(&[]).is_err());
}

#[test]
fn fingerprints_are_checked() {
    let (_, public) = test_keys();
    let hex = public.key_id().to_hex();
    public.verify_fingerprint(&hex).unwrap();
    public.verify_fingerprint(&format!("sha256:{}", hex.to_uppercase())).unwrap();
    let wrong = "00".repeat(32);
    assert!(matches!(public.verify_fingerprint(&wrong), Err(Error::FingerprintMismatch { .. })));
    assert!(matches!(public.verify_fingerprint("abc"), Err(Error::Config(_))));
}

#[test]
fn bad_public_keys_are_rejected() {
    assert!(matches!(CollectorKey::from_pem("hello"), Err(Error::PublicKey(_))));
    assert!(matches!(
        CollectorKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        Err(Error::PublicKey(_))
    ));
}
