//! The collector's public key, its fingerprint (key id) and the RSA-OAEP wrap of data keys.

use std::fmt;

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::*;
use crate::error::{Error, Result};

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
    /// The canonical SubjectPublicKeyInfo DER, for a host that wraps data keys with its own
    /// RSA-OAEP ([`super::Sealer::data_key_due`]).
    spki_der: Vec<u8>,
}

#[allow(clippy::missing_fields_in_debug, reason = "the key is shown by its fingerprint and size")]
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

    pub(super) fn from_rsa(public: RsaPublicKey) -> Result<Self> {
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
        Ok(Self { public, key_id, spki_der: der.into_vec() })
    }

    /// The key id (fingerprint).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The canonical SubjectPublicKeyInfo DER (what the key id hashes).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
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
