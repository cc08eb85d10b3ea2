//! Helpers shared by the integration tests: the test-only collector key and batch opening.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod http;

use std::path::PathBuf;
use std::sync::OnceLock;

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;
use tracex_core::TraceRequest;
use tracex_core::seal;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// The test collector's public key (PEM).
pub fn public_pem() -> String {
    std::fs::read_to_string(vectors_dir().join("collector-test-key.pub.pem")).unwrap()
}

pub fn private_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(vectors_dir().join("collector-test-key.pem")).unwrap())
            .unwrap()
    })
}

/// Opens a sealed batch the way the collector does (parse, unwrap, decrypt, decode).
pub fn open(bytes: &[u8]) -> (seal::Header, TraceRequest) {
    let env = seal::parse(bytes).unwrap();
    let data_key = private_key().decrypt(Oaep::new::<Sha256>(), &env.header.wrapped_key).unwrap();
    let plain = env.open(&data_key.try_into().unwrap(), 64 << 20).unwrap();
    let req = tracex_core::decode::decode_request(&plain).unwrap();
    (env.header, req)
}

/// A fresh, empty temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tracex-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
