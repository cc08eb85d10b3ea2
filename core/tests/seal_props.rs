//! Property tests of sealing: any plaintext round-trips, and any single tampered byte fails to open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use proptest::prelude::*;
use tracex_core::Error;
use tracex_core::seal::{self, CollectorKey, Sealer, SealerConfig};

fn sealer(compress: bool) -> Sealer {
    Sealer::new(CollectorKey::from_pem(&common::public_pem()).unwrap(), SealerConfig { compress, ..Default::default() })
        .unwrap()
}

fn data_key(header: &seal::Header) -> [u8; 32] {
    use rsa::Oaep;
    common::private_key().decrypt(Oaep::new::<sha2::Sha256>(), &header.wrapped_key).unwrap().try_into().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_plaintext_round_trips(plain in proptest::collection::vec(any::<u8>(), 0..4096), compress in any::<bool>(), now in any::<u64>()) {
        let mut s = sealer(compress);
        let batch = s.seal(now, &plain).unwrap();
        let env = seal::parse(&batch.bytes).unwrap();
        prop_assert_eq!(env.header.created_at_unix_nano, now);
        prop_assert_eq!(env.header.is_compressed(), compress);
        prop_assert_eq!(env.open(&data_key(&env.header), 1 << 20).unwrap(), plain);
    }

    #[test]
    fn any_tampered_byte_fails_to_open(plain in proptest::collection::vec(any::<u8>(), 0..512), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut s = sealer(false);
        let batch = s.seal(1, &plain).unwrap();
        let key = data_key(&seal::parse(&batch.bytes).unwrap().header);
        let mut bytes = batch.bytes.clone();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Opened with the genuine data key: header changes break the AAD, body changes the tag.
        let result = seal::parse(&bytes).and_then(|env| env.open(&key, 1 << 20));
        prop_assert!(matches!(result, Err(Error::Open | Error::MalformedEnvelope(_) | Error::UnsupportedVersion(_))), "byte {} accepted", i);
    }

    #[test]
    fn parse_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = seal::parse(&bytes);
    }
}

#[test]
fn a_batch_sealed_to_another_key_does_not_open() {
    let mut s = sealer(false);
    let batch = s.seal(1, b"payload").unwrap();
    let env = seal::parse(&batch.bytes).unwrap();
    assert!(matches!(env.open(&[0u8; 32], 1 << 20), Err(Error::Open)));
}
