//! AES-256-GCM under one data key, detached tag: aws-lc-rs on native targets, RustCrypto's
//! `aes-gcm` on wasm32.
//!
//! Why two: sealing was the batcher's largest single step, and on x86-64 aws-lc's AES-NI/VAES code
//! with aggregated GHASH seals a 512-span batch 6–8× faster than `aes-gcm` (whose POLYVAL
//! multiplies one block at a time): `cargo bench -p tracex-core --bench seal -- seal`,
//! docs/benchmarks.md. wasm32 has no AES instructions and no C toolchain, so the WASM build keeps
//! the pure-Rust cipher. Both produce the same bytes: the envelope vectors in `tests/vectors/` are
//! checked by the native tests and by the WASM build's.
//!
//! Key hygiene differs: `aes-gcm` (feature `zeroize`) wipes its key schedule when dropped; aws-lc
//! frees its own (`EVP_AEAD_CTX_cleanup`) without wiping it, as it does in the collector. The data
//! key itself is a `Zeroizing` array on both paths, and the process that holds a schedule also
//! holds the plaintext of every span it seals.

use super::{DATA_KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};

/// An AES-256-GCM key ready to seal and open.
pub(crate) struct DataCipher(backend::Key);

impl DataCipher {
    pub(crate) fn new(key: &[u8; DATA_KEY_LEN]) -> Result<Self> {
        backend::Key::new(key).map(Self).ok_or_else(|| Error::Seal("the AES-256-GCM key was refused".into()))
    }

    /// Encrypts `body` in place with `aad` authenticated; the tag, or `None` when the input is
    /// longer than AES-GCM allows (2^36 bytes).
    pub(crate) fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        self.0.encrypt(nonce, aad, body)
    }

    /// Decrypts `body_and_tag` (ciphertext followed by its tag) in place; the plaintext length, or
    /// `None` when authentication fails — nothing of the plaintext is to be used then.
    pub(crate) fn decrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body_and_tag: &mut [u8]) -> Option<usize> {
        self.0.decrypt(nonce, aad, body_and_tag)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backend {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    use super::{DATA_KEY_LEN, NONCE_LEN, TAG_LEN};

    // `LessSafeKey` because nonces are random per batch and chosen by the sealer, not by a
    // counter aws-lc-rs would keep (the envelope carries them; the rotation bounds their count).
    pub(super) struct Key(LessSafeKey);

    impl Key {
        /// `None` only for a key of the wrong length, which the array type rules out.
        pub(super) fn new(key: &[u8; DATA_KEY_LEN]) -> Option<Self> {
            UnboundKey::new(&AES_256_GCM, key).ok().map(|k| Self(LessSafeKey::new(k)))
        }

        pub(super) fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body: &mut [u8]) -> Option<[u8; TAG_LEN]> {
            let tag =
                self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), body).ok()?;
            tag.as_ref().try_into().ok()
        }

        pub(super) fn decrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body_and_tag: &mut [u8]) -> Option<usize> {
            let plain =
                self.0.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), body_and_tag).ok()?;
            Some(plain.len())
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod backend {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

    use super::{DATA_KEY_LEN, NONCE_LEN, TAG_LEN};

    pub(super) struct Key(Aes256Gcm);

    impl Key {
        pub(super) fn new(key: &[u8; DATA_KEY_LEN]) -> Option<Self> {
            Some(Self(Aes256Gcm::new(key.into())))
        }

        pub(super) fn encrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body: &mut [u8]) -> Option<[u8; TAG_LEN]> {
            let tag = self.0.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body).ok()?;
            Some(tag.into())
        }

        pub(super) fn decrypt(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], body_and_tag: &mut [u8]) -> Option<usize> {
            let split = body_and_tag.len().checked_sub(TAG_LEN)?;
            let (body, tag) = body_and_tag.split_at_mut(split);
            self.0.decrypt_in_place_detached(Nonce::from_slice(nonce), aad, body, Tag::from_slice(tag)).ok()?;
            Some(split)
        }
    }
}
