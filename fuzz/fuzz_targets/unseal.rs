//! The collector's unsealer past authentication: the fuzzer's bytes are sealed for real (under the
//! test collector key, as a DEFLATE payload or not, by the first byte) so that inflating and
//! decoding arbitrary plaintext is reached, which random envelopes never do (AES-GCM rejects
//! them first). Never panics; an authentic envelope is never "decrypt_failed"; the limits hold.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tracex_collector::metrics::Metrics;
use tracex_collector::services::unseal::{OpenError, Unsealer};
use tracex_core::decode::DecodeLimits;
use tracex_core::seal::{CollectorKey, FLAG_DEFLATE, Header, seal_payload};

const LIMITS: DecodeLimits = DecodeLimits { max_spans: 64, max_items: 256, max_decoded_bytes: 64 * 1024 };
const NOW: u64 = 1_763_900_000_000_000_000;

struct Fixture {
    unsealer: Unsealer,
    header: Header,
    data_key: [u8; 32],
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");
        let pem = std::fs::read_to_string(format!("{vectors}/collector-test-key.pem")).unwrap();
        let public =
            CollectorKey::from_pem(&std::fs::read_to_string(format!("{vectors}/collector-test-key.pub.pem")).unwrap())
                .unwrap();
        let dir = std::env::temp_dir().join(format!("tracex-fuzz-unseal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.pem", public.key_id().to_hex()));
        std::fs::write(&path, pem).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ring = tracex_collector::keys::KeyRing::load_or_create(&dir).unwrap();
        let data_key = [9u8; 32];
        let header = Header {
            flags: 0,
            key_id: public.key_id(),
            batch_id: [1; 16],
            instance_id: [2; 8],
            sequence: 1,
            created_at_unix_nano: NOW,
            sdk_name: "fuzz".into(),
            sdk_version: "0".into(),
            wrapped_key: public.wrap(&data_key).unwrap(),
            nonce: [3; 12],
        };
        Fixture {
            unsealer: Unsealer::new(ring, dir, Arc::new(Metrics::default()), 1 << 20, LIMITS, 4),
            header,
            data_key,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    let f = fixture();
    let header = Header { flags: if mode & 1 == 1 { FLAG_DEFLATE } else { 0 }, ..f.header.clone() };
    let envelope = seal_payload(&header, &f.data_key, payload).unwrap();
    match f.unsealer.open(&envelope, NOW) {
        Ok((_, req, decoded)) => assert!(req.span_count() <= LIMITS.max_spans && decoded <= LIMITS.max_decoded_bytes),
        Err(OpenError::Decrypt | OpenError::UnknownKey(_) | OpenError::Version(_)) => {
            panic!("an authentic envelope was refused as inauthentic")
        }
        Err(e) => assert!(e.message().len() < 4096, "messages stay short: {}", e.message().len()),
    }
});
