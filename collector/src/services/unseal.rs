//! Opening sealed batches: parse the envelope, find the collector key by id, unwrap the data key
//! (RSA-OAEP with aws-lc-rs, constant time) unless it is cached, decrypt and authenticate
//! (AES-256-GCM, header as AAD), inflate within a limit, decode the OTLP request and validate it.
//!
//! Data keys are cached by `(key id, SHA-256 of the wrapped key)`: SDKs reuse a data key for
//! thousands of batches, so steady-state ingest performs no RSA operation at all.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use tracex_core::decode::DecodeLimits;
use tracex_core::seal::{self, Header, KeyId};
use tracex_core::{Error as CoreError, TraceRequest};

use crate::keys::{CollectorKeyPair, KeyRing};
use crate::metrics::Metrics;
use crate::services::validate;

/// Why a batch could not be opened. Each maps to a stable error code.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not a well-formed envelope.
    Malformed(String),
    /// An envelope version this collector cannot read.
    Version(u8),
    /// Sealed to a key this collector does not have.
    UnknownKey(KeyId),
    /// Authentication failed: wrong key or tampered bytes.
    Decrypt,
    /// The plaintext is not a valid OTLP request.
    Payload(String),
    /// A span failed validation.
    InvalidSpan(String),
    /// The batch exceeds a limit enforced while decoding (spans, items, decoded size).
    Limit(String),
    /// A clear-text OTLP body whose `Content-Encoding` does not decompress (bad gzip).
    Compression(String),
    /// A clear-text OTLP body in a content type or encoding this collector does not read.
    MediaType(String),
}

impl OpenError {
    /// The machine-readable code of the HTTP error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_envelope",
            Self::Version(_) => "unsupported_version",
            Self::UnknownKey(_) => "unknown_key_id",
            Self::Decrypt => "decrypt_failed",
            Self::Payload(_) => "malformed_payload",
            Self::InvalidSpan(_) => "invalid_span",
            Self::Limit(_) => "limit_exceeded",
            Self::Compression(_) => "malformed_compression",
            Self::MediaType(_) => "unsupported_media_type",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Limit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Malformed(_)
            | Self::Version(_)
            | Self::UnknownKey(_)
            | Self::Decrypt
            | Self::Payload(_)
            | Self::InvalidSpan(_)
            | Self::Compression(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A message for the client (never secret material).
    pub fn message(&self) -> String {
        match self {
            Self::Malformed(m) => format!("malformed envelope: {m}"),
            Self::Version(v) => {
                format!("unsupported envelope version {v}; this collector reads version {}", seal::VERSION)
            }
            Self::UnknownKey(k) => {
                format!("batch is sealed to key {k}, which this collector does not hold; fetch /v1/public-key")
            }
            Self::Decrypt => "authentication failed: wrong key or tampered bytes".into(),
            Self::Payload(m) => format!("malformed OTLP payload: {m}"),
            Self::InvalidSpan(m) => format!("invalid span: {m}"),
            Self::Limit(m) => format!("batch exceeds a limit: {m}"),
            Self::Compression(m) => format!("the body does not decompress: {m}"),
            Self::MediaType(m) => m.clone(),
        }
    }
}

/// A bounded FIFO cache of unwrapped data keys, kept as ready AES-256-GCM keys (aws-lc-rs, the
/// key schedule done once per data key).
struct DataKeyCache {
    map: HashMap<([u8; 32], [u8; 32]), Arc<LessSafeKey>>,
    order: VecDeque<([u8; 32], [u8; 32])>,
    capacity: usize,
}

impl DataKeyCache {
    fn get(&self, k: &([u8; 32], [u8; 32])) -> Option<Arc<LessSafeKey>> {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: ([u8; 32], [u8; 32]), v: Arc<LessSafeKey>) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// Shortest time between two reloads of the key ring from disk (e.g. after `keys rotate`).
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Opens batches; shared by all request handlers.
pub struct Unsealer {
    ring: RwLock<KeyRing>,
    keys_dir: PathBuf,
    last_reload: Mutex<Instant>,
    cache: Mutex<DataKeyCache>,
    metrics: Arc<Metrics>,
    max_plaintext: usize,
    limits: DecodeLimits,
}

impl Unsealer {
    /// An unsealer over `ring` (loaded from `keys_dir`).
    pub fn new(
        ring: KeyRing,
        keys_dir: PathBuf,
        metrics: Arc<Metrics>,
        max_plaintext: usize,
        limits: DecodeLimits,
        cache_capacity: usize,
    ) -> Self {
        Self {
            ring: RwLock::new(ring),
            keys_dir,
            last_reload: Mutex::new(Instant::now()),
            cache: Mutex::new(DataKeyCache {
                map: HashMap::new(),
                order: VecDeque::new(),
                capacity: cache_capacity.max(1),
            }),
            metrics,
            max_plaintext,
            limits,
        }
    }

    /// The key SDKs should seal to (re-read from disk at most every few seconds, so a rotation done
    /// with `tracex-collector keys rotate` is picked up without a restart).
    pub fn current_key(&self) -> Arc<CollectorKeyPair> {
        self.maybe_reload();
        self.ring.read().map_or_else(|p| p.into_inner().current(), |r| r.current())
    }

    /// Number of keys loaded.
    pub fn key_count(&self) -> usize {
        self.ring.read().map_or(0, |r| r.len())
    }

    fn maybe_reload(&self) -> bool {
        let Ok(mut last) = self.last_reload.lock() else { return false };
        if last.elapsed() < RELOAD_INTERVAL {
            return false;
        }
        *last = Instant::now();
        match KeyRing::load_or_create(&self.keys_dir) {
            Ok(ring) => {
                if let Ok(mut r) = self.ring.write() {
                    *r = ring;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "reloading the key ring failed; keeping the loaded keys");
                false
            }
        }
    }

    fn key(&self, id: &KeyId) -> Option<Arc<CollectorKeyPair>> {
        let found = self.ring.read().ok().and_then(|r| r.get(id));
        found.or_else(|| if self.maybe_reload() { self.ring.read().ok().and_then(|r| r.get(id)) } else { None })
    }

    fn data_key(&self, header: &Header) -> Result<Arc<LessSafeKey>, OpenError> {
        let cache_key = (header.key_id.0, <[u8; 32]>::from(Sha256::digest(&header.wrapped_key)));
        if let Some(k) = self.cache.lock().ok().and_then(|c| c.get(&cache_key)) {
            self.metrics.data_key_cache_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(k);
        }
        let pair = self.key(&header.key_id).ok_or(OpenError::UnknownKey(header.key_id))?;
        self.metrics.rsa_unwraps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut raw = pair.unwrap_data_key(&header.wrapped_key).ok_or(OpenError::Decrypt)?;
        let key = UnboundKey::new(&AES_256_GCM, &raw).map(|k| Arc::new(LessSafeKey::new(k)));
        raw.fill(0);
        let key = key.map_err(|_| OpenError::Decrypt)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(cache_key, key.clone());
        }
        Ok(key)
    }

    /// Opens, decodes and validates one sealed batch. CPU-bound: call from a blocking thread.
    /// Also returns the decoded request's estimated memory, for the ingest memory budget.
    pub fn open(&self, body: &[u8], now_unix_nano: u64) -> Result<(Header, TraceRequest, usize), OpenError> {
        let env = seal::parse(body).map_err(|e| match e {
            CoreError::UnsupportedVersion(v) => OpenError::Version(v),
            other => OpenError::Malformed(other.to_string().trim_start_matches("malformed envelope: ").to_owned()),
        })?;
        let key = self.data_key(&env.header)?;
        let opened = env.open_with(self.max_plaintext, |nonce, aad, in_out| {
            let nonce = Nonce::assume_unique_for_key(*nonce);
            key.open_in_place(nonce, Aad::from(aad), in_out).ok().map(|plain| plain.len())
        });
        let plain = opened.map_err(|e| match e {
            CoreError::Open => OpenError::Decrypt,
            other => OpenError::Malformed(other.to_string().trim_start_matches("malformed envelope: ").to_owned()),
        })?;
        let (req, usage) = tracex_core::decode::decode_request_within(&plain, &self.limits).map_err(|e| match e {
            CoreError::LimitExceeded(m) => OpenError::Limit(m),
            other => OpenError::Payload(other.to_string().trim_start_matches("malformed OTLP payload: ").to_owned()),
        })?;
        drop(plain);
        validate::validate(&req, now_unix_nano).map_err(OpenError::InvalidSpan)?;
        Ok((env.header, req, usage.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collector's aws-lc-rs path opens the shared wire-format vectors to the same plaintext as
    /// the core's RustCrypto path, and rejects every tampered vector.
    #[test]
    fn opens_the_shared_vectors_like_the_core() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("envelope-v1.json")).unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("tracex-unseal-vectors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Install the test key as the collector's only key (mode 0600).
        let pem = std::fs::read_to_string(root.join("collector-test-key.pem")).unwrap();
        let id = doc["key_id_hex"].as_str().unwrap();
        let path = dir.join(format!("{id}.pem"));
        std::fs::write(&path, pem).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ring = KeyRing::load_or_create(&dir).unwrap();
        let unsealer = Unsealer::new(ring, dir.clone(), Arc::new(Metrics::default()), 1 << 20, DecodeLimits::NONE, 16);
        for case in doc["cases"].as_array().unwrap() {
            let bytes = hex::decode(case["envelope"].as_str().unwrap()).unwrap();
            let env = seal::parse(&bytes).unwrap();
            let key = unsealer.data_key(&env.header).unwrap();
            let plain = env
                .open_with(1 << 20, |nonce, aad, in_out| {
                    key.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out)
                        .ok()
                        .map(|p| p.len())
                })
                .unwrap();
            assert_eq!(hex::encode(&plain), case["otlp"].as_str().unwrap());
            for t in case["tampered"].as_array().unwrap() {
                let bytes = hex::decode(t["envelope"].as_str().unwrap()).unwrap();
                let err = unsealer.open(&bytes, 1_763_900_000_000_000_000).expect_err("tampered envelope opened");
                // Crafted rejections pin the code the collector answers (docs/wire-format.md).
                if let Some(code) = t["collector"]["code"].as_str() {
                    assert_eq!(err.code(), code, "offset {}, {}", t["offset"], t["change"]);
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
