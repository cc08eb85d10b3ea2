//! The SDK side: a sealer with data-key rotation and per-instance sequence numbers.

use std::fmt;
use std::time::Duration;

use super::aead::DataCipher;
use super::envelope::encrypt_tail;
use super::*;
use crate::error::{Error, Result};
use crate::ids::fill_random;

// === the SDK side: a sealer with data-key rotation ===

/// When a data key is replaced (each replacement costs one RSA-OAEP wrap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    /// Batches sealed under one data key (default 4096; far below the 2^32 random-nonce bound).
    pub max_batches: u64,
    /// Age of a data key (default 15 minutes).
    pub max_age: Duration,
}

impl Default for KeyRotation {
    fn default() -> Self {
        Self { max_batches: 4096, max_age: Duration::from_secs(15 * 60) }
    }
}

/// Sealer settings.
#[derive(Clone, Debug)]
pub struct SealerConfig {
    /// SDK name written into every header.
    pub sdk_name: String,
    /// SDK version written into every header.
    pub sdk_version: String,
    /// Data-key rotation.
    pub rotation: KeyRotation,
    /// DEFLATE the payload before sealing (pure Rust; smaller on the wire, more CPU).
    pub compress: bool,
}

impl SealerConfig {
    /// Fails when a header field would not fit the envelope.
    pub fn check(&self) -> Result<()> {
        if self.sdk_name.len() > MAX_SDK_FIELD_LEN || self.sdk_version.len() > MAX_SDK_FIELD_LEN {
            return Err(Error::Config(format!("SDK name/version longer than {MAX_SDK_FIELD_LEN} bytes")));
        }
        Ok(())
    }
}

impl Default for SealerConfig {
    fn default() -> Self {
        Self {
            sdk_name: "tracex-rust".into(),
            sdk_version: env!("CARGO_PKG_VERSION").into(),
            rotation: KeyRotation::default(),
            compress: false,
        }
    }
}

fn new_data_key() -> Result<DataKey> {
    let mut data_key: DataKey = Zeroizing::new([0u8; DATA_KEY_LEN]);
    fill_random(data_key.as_mut())?;
    Ok(data_key)
}

/// DEFLATE at level 1. Out of line for the reason [`Sealer::rotate`] is: compression is off by
/// default, and its inlined code would be compiled by V8 with the function that seals.
#[inline(never)]
fn deflate(plain: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(plain, 1)
}

struct ActiveKey {
    cipher: DataCipher,
    wrapped: Vec<u8>,
    created_at: u64,
    batches: u64,
}

/// One sealed batch, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBatch {
    /// The envelope bytes (the HTTP request body).
    pub bytes: Vec<u8>,
    /// Batch id from the header.
    pub batch_id: [u8; BATCH_ID_LEN],
    /// Sequence number from the header.
    pub sequence: u64,
    /// When it was sealed (unix ns), from the header.
    pub created_at_unix_nano: u64,
    /// Spans inside (for accounting; not on the wire outside the ciphertext).
    pub span_count: u32,
}

/// Seals batches for one collector key, rotating data keys by count and age.
pub struct Sealer {
    key: CollectorKey,
    config: SealerConfig,
    instance_id: [u8; INSTANCE_ID_LEN],
    next_sequence: u64,
    active: Option<ActiveKey>,
    rotations: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("key", &self.key)
            .field("next_sequence", &self.next_sequence)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for `key` with a fresh random instance id.
    pub fn new(key: CollectorKey, config: SealerConfig) -> Result<Self> {
        config.check()?;
        let mut instance_id = [0u8; INSTANCE_ID_LEN];
        fill_random(&mut instance_id)?;
        Ok(Self { key, config, instance_id, next_sequence: 1, active: None, rotations: 0 })
    }

    /// The collector key batches are sealed to.
    pub fn collector_key(&self) -> &CollectorKey {
        &self.key
    }

    /// Data keys generated so far.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// True when the next batch needs a new data key: none yet, or rotation by count or age is due.
    fn key_due(&self, now: u64) -> bool {
        let max_age = u64::try_from(self.config.rotation.max_age.as_nanos()).unwrap_or(u64::MAX);
        match &self.active {
            None => true,
            Some(k) => k.batches >= self.config.rotation.max_batches || now.saturating_sub(k.created_at) >= max_age,
        }
    }

    fn install(&mut self, now: u64, data_key: &DataKey, wrapped: Vec<u8>) -> Result<()> {
        let cipher = DataCipher::new(data_key)?;
        self.active = Some(ActiveKey { cipher, wrapped, created_at: now, batches: 0 });
        self.rotations += 1;
        Ok(())
    }

    fn active_key(&mut self, now: u64) -> Result<&mut ActiveKey> {
        if self.key_due(now) {
            self.rotate(now)?;
        }
        self.active.as_mut().ok_or_else(|| Error::Seal("no data key".into()))
    }

    /// A new data key, wrapped here with RSA-OAEP. Out of line because V8 compiles a WASM function
    /// whole on its first call: inlined, this bignum code (and DEFLATE's) was most of the 12 KB
    /// batch-sealing function an edge worker's first request compiled, though there the host
    /// wraps the key ahead of the seal (WebCrypto) and this never runs (docs/benchmarks.md).
    #[inline(never)]
    fn rotate(&mut self, now: u64) -> Result<()> {
        let data_key = new_data_key()?;
        let wrapped = self.key.wrap(&data_key)?;
        self.install(now, &data_key, wrapped)
    }

    /// For a host that wraps data keys with its own RSA-OAEP (WebCrypto on wasm32: native code,
    /// where the `rsa` crate's bignum arithmetic in WASM costs milliseconds): a fresh data key when
    /// a rotation is due at `now`, `None` while the current key is still good. The rotation rules
    /// stay here. The host wraps the key (RSA-OAEP, SHA-256, MGF1-SHA-256, empty label, to
    /// [`CollectorKey::spki_der`]) and hands it back with [`Sealer::install_wrapped_key`]; a host
    /// that does not lets the sealer wrap it in Rust when it seals, as always.
    pub fn data_key_due(&self, now: u64) -> Result<Option<DataKey>> {
        if self.key_due(now) { new_data_key().map(Some) } else { Ok(None) }
    }

    /// Makes `data_key`, wrapped by the host as `wrapped`, the active data key from `now` (a key
    /// rotation). The wrapped key must be as long as the collector key's modulus, which is what
    /// RSA-OAEP produces; its content cannot be checked without the private key, so the collector
    /// is the judge (a wrong wrap is a batch it cannot open: `TRACEX_OPEN_FAILED`).
    pub fn install_wrapped_key(&mut self, now: u64, data_key: &DataKey, wrapped: Vec<u8>) -> Result<()> {
        if wrapped.len() != self.key.bits() / 8 {
            return Err(Error::Seal(format!(
                "a wrapped data key of {} bytes for a {}-bit collector key",
                wrapped.len(),
                self.key.bits()
            )));
        }
        self.install(now, data_key, wrapped)
    }

    /// Seals the plaintext that `write_plaintext` appends to the buffer it is given. Without
    /// compression the plaintext is written straight into the output buffer and encrypted in
    /// place: one pass, no copy.
    pub fn seal_with(&mut self, now: u64, write_plaintext: impl FnOnce(&mut Vec<u8>)) -> Result<SealedBatch> {
        self.seal_with_hint(now, 64 * 1024, write_plaintext)
    }

    /// [`Sealer::seal_with`] with the expected plaintext length, so the output is allocated once.
    pub fn seal_with_hint(
        &mut self,
        now: u64,
        plaintext_len: usize,
        write_plaintext: impl FnOnce(&mut Vec<u8>),
    ) -> Result<SealedBatch> {
        // One draw for both: on wasm32 each draw is a call out to WebCrypto.
        let mut random = [0u8; BATCH_ID_LEN + NONCE_LEN];
        fill_random(&mut random)?;
        let (mut batch_id, mut nonce) = ([0u8; BATCH_ID_LEN], [0u8; NONCE_LEN]);
        batch_id.copy_from_slice(&random[..BATCH_ID_LEN]);
        nonce.copy_from_slice(&random[BATCH_ID_LEN..]);
        let sequence = self.next_sequence;
        let compress = self.config.compress;
        let key_id = self.key.key_id();
        let (sdk_name, sdk_version, instance_id) =
            (self.config.sdk_name.clone(), self.config.sdk_version.clone(), self.instance_id);
        let active = self.active_key(now)?;
        let header = Header {
            flags: if compress { FLAG_DEFLATE } else { 0 },
            key_id,
            batch_id,
            instance_id,
            sequence,
            created_at_unix_nano: now,
            sdk_name,
            sdk_version,
            wrapped_key: active.wrapped.clone(),
            nonce,
        };
        let mut out = Vec::with_capacity(header.encoded_len() + plaintext_len + TAG_LEN);
        header.write(&mut out)?;
        let aad_len = out.len();
        if compress {
            let mut plain = Vec::with_capacity(plaintext_len);
            write_plaintext(&mut plain);
            out.extend_from_slice(&deflate(&plain));
        } else {
            write_plaintext(&mut out);
        }
        encrypt_tail(&active.cipher, &nonce, &mut out, aad_len)?;
        active.batches += 1;
        self.next_sequence += 1;
        Ok(SealedBatch { bytes: out, batch_id, sequence, created_at_unix_nano: now, span_count: 0 })
    }

    /// Seals a plaintext slice.
    pub fn seal(&mut self, now: u64, plaintext: &[u8]) -> Result<SealedBatch> {
        self.seal_with_hint(now, plaintext.len(), |out| out.extend_from_slice(plaintext))
    }
}
