//! The envelope: header layout, sealing with a known data key, parsing and opening.

use sha2::{Digest, Sha256};

use super::aead::DataCipher;
use super::*;
use crate::error::{Error, Result};

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
    let cipher = DataCipher::new(data_key)?;
    let mut out = Vec::with_capacity(header.encoded_len() + payload.len() + TAG_LEN);
    header.write(&mut out)?;
    let aad_len = out.len();
    out.extend_from_slice(payload);
    encrypt_tail(&cipher, &header.nonce, &mut out, aad_len)?;
    Ok(out)
}

/// Encrypts `out[aad_len..]` in place with `out[..aad_len]` as AAD and appends the tag.
pub(super) fn encrypt_tail(
    cipher: &DataCipher,
    nonce: &[u8; NONCE_LEN],
    out: &mut Vec<u8>,
    aad_len: usize,
) -> Result<()> {
    let (aad, body) = out.split_at_mut(aad_len);
    let tag = cipher
        .encrypt(nonce, aad, body)
        .ok_or_else(|| Error::Seal("AES-GCM encryption failed (payload too large?)".into()))?;
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
        let cipher = DataCipher::new(data_key)?;
        self.open_with(max_plaintext, |nonce, aad, in_out| cipher.decrypt(nonce, aad, in_out))
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
