//! Hybrid sealing: envelope format v1, specified in `docs/wire-format.md`.
//!
//! Each batch is encrypted with AES-256-GCM under a data key; the data key is wrapped with
//! RSA-OAEP-SHA256 under the collector's public key. The wrap is done once per data key, not once
//! per batch: a data key is reused for up to [`KeyRotation::max_batches`] batches or
//! [`KeyRotation::max_age`], each batch with a fresh random nonce. The whole header — including the
//! wrapped key and the nonce — is the AES-GCM additional authenticated data, so no header byte can
//! be changed, swapped or replayed into another batch unnoticed.
//!
//! ```text
//! "TRXB" | version u8 = 1 | flags u8 | key_id [32] | batch_id [16] | instance_id [8] | sequence u64 BE
//! | created_at u64 BE (unix ns) | sdk_name_len u8 | sdk_name | sdk_version_len u8 | sdk_version
//! | wrapped_key_len u16 BE | wrapped_key | nonce [12] || ciphertext | tag [16]
//! ```

use std::fmt;
use std::time::Duration;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::fill_random;

/// The four magic bytes that open every envelope.
pub const MAGIC: [u8; 4] = *b"TRXB";
/// The envelope format version this module writes and reads.
pub const VERSION: u8 = 1;
/// Flag bit: the sealed payload is raw DEFLATE (RFC 1951) of the OTLP protobuf.
pub const FLAG_DEFLATE: u8 = 0x01;
/// Length of the AES-256 data key.
pub const DATA_KEY_LEN: usize = 32;
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of the key id (SHA-256).
pub const KEY_ID_LEN: usize = 32;
/// Length of the batch id.
pub const BATCH_ID_LEN: usize = 16;
/// Length of the SDK instance id.
pub const INSTANCE_ID_LEN: usize = 8;
/// Longest SDK name or version.
pub const MAX_SDK_FIELD_LEN: usize = 64;
/// Smallest RSA modulus accepted for the collector key.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted for the collector key.
pub const MAX_RSA_BITS: usize = 8192;
/// Offset of the fixed part's end (magic … created_at).
const FIXED_LEN: usize = 4 + 1 + 1 + KEY_ID_LEN + BATCH_ID_LEN + INSTANCE_ID_LEN + 8 + 8;

/// A data key: 32 secret bytes, wiped from memory when dropped.
pub type DataKey = Zeroizing<[u8; DATA_KEY_LEN]>;

// === key id and collector key ===

/// SHA-256 of the collector public key's SubjectPublicKeyInfo DER: names the key a batch is sealed to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of a public key given as SPKI DER.
    pub fn of_spki_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Lower-case hex (64 characters): the fingerprint printed by `tracex-collector keys show`.
    pub fn to_hex(&self) -> String {
        crate::model::hex_encode(&self.0)
    }

    /// Parses a fingerprint: 64 hex digits, optionally prefixed by `sha256:` and grouped by `:`.
    pub fn from_hex(s: &str) -> Result<Self> {
        let t = s.trim();
        let t = t.strip_prefix("sha256:").or_else(|| t.strip_prefix("SHA256:")).unwrap_or(t);
        let cleaned: String = t.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; KEY_ID_LEN];
        crate::model::hex_decode_into(&cleaned, &mut out)
            .map_err(|why| Error::Config(format!("collector fingerprint {why}: {s:?} (want 64 hex digits)")))?;
        Ok(Self(out))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The collector's RSA public key, used only to wrap data keys (public-key operations only).
#[derive(Clone)]
pub struct CollectorKey {
    public: RsaPublicKey,
    key_id: KeyId,
}

impl fmt::Debug for CollectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorKey").field("key_id", &self.key_id).field("bits", &self.bits()).finish()
    }
}

impl CollectorKey {
    /// Parses a PEM public key: `BEGIN PUBLIC KEY` (SPKI, what the collector serves) or
    /// `BEGIN RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let pem = pem.trim();
        let public = if pem.contains("BEGIN RSA PUBLIC KEY") {
            RsaPublicKey::from_pkcs1_pem(pem)
                .map_err(|e| Error::PublicKey(format!("not a PKCS#1 RSA public key: {e}")))?
        } else if pem.contains("BEGIN PUBLIC KEY") {
            RsaPublicKey::from_public_key_pem(pem)
                .map_err(|e| Error::PublicKey(format!("not an RSA SubjectPublicKeyInfo: {e}")))?
        } else {
            return Err(Error::PublicKey("expected a PEM block \"-----BEGIN PUBLIC KEY-----\"".into()));
        };
        Self::from_rsa(public)
    }

    /// Parses SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let public = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| Error::PublicKey(format!("not an RSA SubjectPublicKeyInfo: {e}")))?;
        Self::from_rsa(public)
    }

    fn from_rsa(public: RsaPublicKey) -> Result<Self> {
        let bits = public.size() * 8;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(Error::PublicKey(format!(
                "RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}"
            )));
        }
        // The key id is computed over the canonical DER re-encoding, so PEM whitespace or PKCS#1
        // vs SPKI input cannot change it.
        let der = public.to_public_key_der().map_err(|e| Error::PublicKey(e.to_string()))?;
        let key_id = KeyId::of_spki_der(der.as_bytes());
        Ok(Self { public, key_id })
    }

    /// The key id (fingerprint).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.size() * 8
    }

    /// Fails with [`Error::FingerprintMismatch`] unless the key's fingerprint is `expected`.
    pub fn verify_fingerprint(&self, expected: &str) -> Result<()> {
        let want = KeyId::from_hex(expected)?;
        if want == self.key_id {
            Ok(())
        } else {
            Err(Error::FingerprintMismatch { expected: want.to_hex(), actual: self.key_id.to_hex() })
        }
    }

    /// Wraps a data key with RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) using OS randomness.
    pub fn wrap(&self, data_key: &[u8; DATA_KEY_LEN]) -> Result<Vec<u8>> {
        self.wrap_rng(data_key, &mut OsRandom)
    }

    /// Wraps with a caller-supplied RNG: only for reproducible test vectors (feature `testing`,
    /// so no release build can wrap with a predictable seed).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn wrap_with_rng<R: rsa::rand_core::CryptoRngCore>(
        &self,
        data_key: &[u8; DATA_KEY_LEN],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        self.wrap_rng(data_key, rng)
    }

    fn wrap_rng<R: rsa::rand_core::CryptoRngCore>(
        &self,
        data_key: &[u8; DATA_KEY_LEN],
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        self.public
            .encrypt(rng, Oaep::new::<Sha256>(), data_key)
            .map_err(|e| Error::Seal(format!("RSA-OAEP wrap: {e}")))
    }
}

#[cfg(feature = "testing")]
impl CollectorKey {
    /// Wraps with a fixed OAEP seed (repeated as needed): only for reproducing the shared test
    /// vectors from the bindings' tests. Never use it for real batches.
    #[doc(hidden)]
    pub fn wrap_with_seed(&self, data_key: &[u8; DATA_KEY_LEN], seed: &[u8]) -> Result<Vec<u8>> {
        if seed.is_empty() {
            return Err(Error::Seal("empty OAEP seed".into()));
        }
        self.wrap_rng(data_key, &mut FixedSeed(seed, 0))
    }
}

/// Repeats a fixed byte string: the OAEP seed of a test vector.
#[cfg(feature = "testing")]
struct FixedSeed<'a>(&'a [u8], usize);

#[cfg(feature = "testing")]
impl rsa::rand_core::RngCore for FixedSeed<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.0[self.1 % self.0.len()];
            self.1 += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(feature = "testing")]
impl rsa::rand_core::CryptoRng for FixedSeed<'_> {}

/// `getrandom` as a `rand_core` RNG for the `rsa` crate.
struct OsRandom;

impl rsa::rand_core::RngCore for OsRandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // OAEP seeds must be random; if the OS RNG fails there is nothing safe to fall back to, and
        // `try_fill_bytes` (which rsa uses for its seed) reports the failure instead of panicking.
        let _ = getrandom::getrandom(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rsa::rand_core::Error> {
        getrandom::getrandom(dest).map_err(|e| rsa::rand_core::Error::from(e.code()))
    }
}

impl rsa::rand_core::CryptoRng for OsRandom {}

// === header ===

/// The authenticated header of a sealed batch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    /// Flag bits ([`FLAG_DEFLATE`]); unknown bits are rejected.
    pub flags: u8,
    /// The collector key the data key is wrapped to.
    pub key_id: KeyId,
    /// Random batch id: the collector's idempotency key.
    pub batch_id: [u8; BATCH_ID_LEN],
    /// Random id of the SDK instance (one per tracer), for gap detection with `sequence`.
    pub instance_id: [u8; INSTANCE_ID_LEN],
    /// Per-instance batch sequence number, starting at 1.
    pub sequence: u64,
    /// When the batch was sealed, unix nanoseconds.
    pub created_at_unix_nano: u64,
    /// SDK name (e.g. `tracex-node`).
    pub sdk_name: String,
    /// SDK version.
    pub sdk_version: String,
    /// The data key, RSA-OAEP-wrapped to `key_id`.
    pub wrapped_key: Vec<u8>,
    /// AES-GCM nonce, fresh and random per batch.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// True when the payload is DEFLATE-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_DEFLATE != 0
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + 1 + self.sdk_name.len() + 1 + self.sdk_version.len() + 2 + self.wrapped_key.len() + NONCE_LEN
    }

    /// SHA-256 of the wrapped key: with the key id, the collector's cache key for the unwrapped data key.
    pub fn wrapped_key_hash(&self) -> [u8; 32] {
        Sha256::digest(&self.wrapped_key).into()
    }

    fn validate(&self) -> Result<()> {
        if self.flags & !FLAG_DEFLATE != 0 {
            return Err(Error::MalformedEnvelope(format!("unknown flag bits {:#04x}", self.flags)));
        }
        if self.sdk_name.len() > MAX_SDK_FIELD_LEN || self.sdk_version.len() > MAX_SDK_FIELD_LEN {
            return Err(Error::MalformedEnvelope(format!("SDK name/version longer than {MAX_SDK_FIELD_LEN} bytes")));
        }
        let wk = self.wrapped_key.len();
        if !(MIN_RSA_BITS / 8..=MAX_RSA_BITS / 8).contains(&wk) {
            return Err(Error::MalformedEnvelope(format!("wrapped key of {wk} bytes")));
        }
        Ok(())
    }

    /// Appends the encoded header (the AES-GCM AAD) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        self.validate()?;
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.batch_id);
        out.extend_from_slice(&self.instance_id);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.created_at_unix_nano.to_be_bytes());
        for field in [&self.sdk_name, &self.sdk_version] {
            #[allow(clippy::cast_possible_truncation)] // validated ≤ 64
            out.push(field.len() as u8);
            out.extend_from_slice(field.as_bytes());
        }
        #[allow(clippy::cast_possible_truncation)] // validated ≤ 1024
        out.extend_from_slice(&(self.wrapped_key.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        Ok(())
    }
}

// === sealing with a known data key (deterministic) ===

/// Seals `payload` (already compressed if `header.flags` says so) under `data_key`: the
/// deterministic core of sealing, used by [`Sealer`] and by the test vectors.
pub fn seal_payload(header: &Header, data_key: &[u8; DATA_KEY_LEN], payload: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(data_key.into());
    let mut out = Vec::with_capacity(header.encoded_len() + payload.len() + TAG_LEN);
    header.write(&mut out)?;
    let aad_len = out.len();
    out.extend_from_slice(payload);
    encrypt_tail(&cipher, &header.nonce, &mut out, aad_len)?;
    Ok(out)
}

/// Encrypts `out[aad_len..]` in place with `out[..aad_len]` as AAD and appends the tag.
fn encrypt_tail(cipher: &Aes256Gcm, nonce: &[u8; NONCE_LEN], out: &mut Vec<u8>, aad_len: usize) -> Result<()> {
    let (aad, body) = out.split_at_mut(aad_len);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body)
        .map_err(|_| Error::Seal("AES-GCM encryption failed (payload too large?)".into()))?;
    out.extend_from_slice(&tag);
    Ok(())
}

// === parsing and opening ===

/// A parsed (not yet decrypted) envelope, borrowing the sealed bytes.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The authenticated header.
    pub header: Header,
    aad: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| {
            Error::MalformedEnvelope(format!("truncated at {what} (offset {}, need {n} bytes)", self.pos))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let [len] = self.array::<1>(what)?;
        let bytes = self.take(usize::from(len), what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::MalformedEnvelope(format!("{what} is not UTF-8")))
    }
}

/// Parses sealed bytes. Checks structure only; authenticity is checked by [`Envelope::open`].
pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(Error::MalformedEnvelope("not a tracex batch (bad magic)".into()));
    }
    let [version] = r.array::<1>("version")?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let [flags] = r.array::<1>("flags")?;
    let key_id = KeyId(r.array("key_id")?);
    let batch_id = r.array("batch_id")?;
    let instance_id = r.array("instance_id")?;
    let sequence = u64::from_be_bytes(r.array("sequence")?);
    let created_at_unix_nano = u64::from_be_bytes(r.array("created_at")?);
    let sdk_name = r.string("sdk_name")?;
    let sdk_version = r.string("sdk_version")?;
    let wk_len = u16::from_be_bytes(r.array("wrapped_key_len")?);
    let wrapped_key = r.take(usize::from(wk_len), "wrapped_key")?.to_vec();
    let nonce = r.array("nonce")?;
    let header = Header {
        flags,
        key_id,
        batch_id,
        instance_id,
        sequence,
        created_at_unix_nano,
        sdk_name,
        sdk_version,
        wrapped_key,
        nonce,
    };
    header.validate()?;
    let aad = &bytes[..r.pos];
    let rest = &bytes[r.pos..];
    if rest.len() < TAG_LEN {
        return Err(Error::MalformedEnvelope("truncated: no room for the authentication tag".into()));
    }
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Envelope { header, aad, ciphertext, tag })
}

impl Envelope<'_> {
    /// Length of the ciphertext (without the tag).
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext.len()
    }

    /// Decrypts and authenticates with the unwrapped data key, then inflates if the payload is
    /// compressed. Fails with [`Error::Open`] for a wrong key or any tampered byte, and refuses
    /// plaintexts larger than `max_plaintext` (decompression bombs included).
    pub fn open(&self, data_key: &[u8; DATA_KEY_LEN], max_plaintext: usize) -> Result<Vec<u8>> {
        let cipher = Aes256Gcm::new(data_key.into());
        self.open_with(max_plaintext, |nonce, aad, in_out| {
            let split = in_out.len().checked_sub(TAG_LEN)?;
            let (body, tag) = in_out.split_at_mut(split);
            cipher.decrypt_in_place_detached(Nonce::from_slice(nonce), aad, body, Tag::from_slice(tag)).ok()?;
            Some(split)
        })
    }

    /// [`Envelope::open`] with a caller-supplied AES-256-GCM implementation (the collector plugs in
    /// aws-lc-rs). `decrypt(nonce, aad, ciphertext || tag)` decrypts in place and returns the
    /// plaintext length, or `None` when authentication fails. Size limits and inflation stay here.
    pub fn open_with(
        &self,
        max_plaintext: usize,
        decrypt: impl FnOnce(&[u8; NONCE_LEN], &[u8], &mut [u8]) -> Option<usize>,
    ) -> Result<Vec<u8>> {
        if !self.header.is_compressed() && self.ciphertext.len() > max_plaintext {
            return Err(Error::MalformedEnvelope(format!(
                "payload of {} bytes exceeds the {max_plaintext}-byte limit",
                self.ciphertext.len()
            )));
        }
        let mut buf = Vec::with_capacity(self.ciphertext.len() + TAG_LEN);
        buf.extend_from_slice(self.ciphertext);
        buf.extend_from_slice(self.tag);
        let len = decrypt(&self.header.nonce, self.aad, &mut buf).ok_or(Error::Open)?;
        buf.truncate(len);
        if self.header.is_compressed() {
            // Only the status goes into the message: the error also holds the partial output, and
            // printing it with `{:?}` once made a rejected 4 MB bomb answer with a 201 MB body.
            miniz_oxide::inflate::decompress_to_vec_with_limit(&buf, max_plaintext).map_err(|e| {
                use miniz_oxide::inflate::TINFLStatus;
                let why = match e.status {
                    TINFLStatus::HasMoreOutput => format!("inflates to more than {max_plaintext} bytes"),
                    TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => "truncated DEFLATE".into(),
                    _ => "invalid DEFLATE".into(),
                };
                Error::MalformedEnvelope(format!("payload {why}"))
            })
        } else {
            Ok(buf)
        }
    }
}

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

struct ActiveKey {
    cipher: Aes256Gcm,
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

    fn active_key(&mut self, now: u64) -> Result<&mut ActiveKey> {
        let max_age = u64::try_from(self.config.rotation.max_age.as_nanos()).unwrap_or(u64::MAX);
        let stale = match &self.active {
            None => true,
            Some(k) => k.batches >= self.config.rotation.max_batches || now.saturating_sub(k.created_at) >= max_age,
        };
        if stale {
            let mut data_key: DataKey = Zeroizing::new([0u8; DATA_KEY_LEN]);
            fill_random(data_key.as_mut())?;
            let wrapped = self.key.wrap(&data_key)?;
            let cipher = Aes256Gcm::new(data_key.as_ref().into());
            self.active = Some(ActiveKey { cipher, wrapped, created_at: now, batches: 0 });
            self.rotations += 1;
        }
        self.active.as_mut().ok_or_else(|| Error::Seal("no data key".into()))
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
        let mut batch_id = [0u8; BATCH_ID_LEN];
        fill_random(&mut batch_id)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
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
            out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(&plain, 1));
        } else {
            write_plaintext(&mut out);
        }
        encrypt_tail(&active.cipher, &nonce, &mut out, aad_len)?;
        active.batches += 1;
        self.next_sequence += 1;
        Ok(SealedBatch { bytes: out, batch_id, sequence, span_count: 0 })
    }

    /// Seals a plaintext slice.
    pub fn seal(&mut self, now: u64, plaintext: &[u8]) -> Result<SealedBatch> {
        self.seal_with_hint(now, plaintext.len(), |out| out.extend_from_slice(plaintext))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;

    /// The test-only 3072-bit key of the wire-format vectors.
    pub(crate) const TEST_PRIVATE_PEM: &str = include_str!("../../tests/vectors/collector-test-key.pem");

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
}
