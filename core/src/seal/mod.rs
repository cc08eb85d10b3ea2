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

//!
//! One concern per file: `aead` (AES-256-GCM: aws-lc-rs natively, RustCrypto on wasm32), `key`
//! (the collector key, its fingerprint and the RSA-OAEP wrap),
//! `envelope` (the header, sealing with a known data key, parsing and opening) and `sealer` (the
//! SDK side: data-key rotation, sequence numbers, one envelope per batch).

use zeroize::Zeroizing;

mod aead;
mod envelope;
mod key;
mod sealer;
#[cfg(test)]
pub(crate) mod tests;

pub use envelope::{Envelope, Header, parse, seal_payload};
pub use key::{CollectorKey, KeyId};
pub use sealer::{KeyRotation, SealedBatch, Sealer, SealerConfig};

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
