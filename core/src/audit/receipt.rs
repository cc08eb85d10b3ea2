//! Receipts: the collector's signed promise, given in the acknowledgement of a batch, that the
//! batch is leaf `leaf_index` of its audit log and will be in the next checkpoint (a Certificate
//! Transparency log's signed certificate timestamp, for telemetry). A receipt is a signed note
//! (C2SP) whose text is:
//!
//! ```text
//! tracex receipt v1
//! <origin: the log's name, which is also the signing key's name>
//! <leaf index, decimal>
//! <batch id, 32 lower-case hex digits>
//! <SHA-256 of the envelope as received, base64>
//! <received at, unix ns, decimal>
//! ```
//!
//! An SDK that pins the audit key checks each receipt against the batch it sent
//! ([`Receipt::verify`]): a collector that answers without one, or with a receipt for other bytes,
//! is counted.

use base64ct::{Base64, Encoding as _};
use sha2::{Digest as _, Sha256};

use super::note::{self, VerifierKey};
use crate::error::{Error, Result};

/// The first line of a receipt's text.
pub const HEADER: &str = "tracex receipt v1";

/// A receipt's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The log's name.
    pub origin: String,
    /// The batch's leaf.
    pub leaf_index: u64,
    /// The batch id.
    pub batch_id: [u8; 16],
    /// SHA-256 of the envelope as the collector received it.
    pub envelope_sha256: [u8; 32],
    /// When the collector received it (unix ns).
    pub received_at_unix_nano: u64,
}

fn fail(why: &str) -> Error {
    Error::Audit(format!("receipt: {why}"))
}

fn decimal(s: &str, what: &str) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 1 && s.starts_with('0') {
        return Err(fail(&format!("the {what} is not a decimal number")));
    }
    s.parse().map_err(|_| fail(&format!("the {what} is out of range")))
}

impl Receipt {
    /// The text that is signed.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(32);
        for b in self.batch_id {
            let _ = write!(hex, "{b:02x}");
        }
        format!(
            "{HEADER}\n{}\n{}\n{hex}\n{}\n{}\n",
            self.origin,
            self.leaf_index,
            Base64::encode_string(&self.envelope_sha256),
            self.received_at_unix_nano
        )
    }

    /// Parses a receipt's text.
    pub fn parse(text: &str) -> Result<Self> {
        let body = text.strip_suffix('\n').ok_or_else(|| fail("the text must end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, origin, index, batch, envelope, received] = lines[..] else {
            return Err(fail("not six lines"));
        };
        if header != HEADER {
            return Err(fail("not a tracex receipt"));
        }
        if origin.is_empty() {
            return Err(fail("no origin"));
        }
        if batch.len() != 32 || !batch.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(fail("the batch id is not 32 lower-case hex digits"));
        }
        let mut batch_id = [0u8; 16];
        for (i, b) in batch_id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&batch[2 * i..2 * i + 2], 16).map_err(|_| fail("the batch id is not hex"))?;
        }
        let envelope = Base64::decode_vec(envelope).map_err(|_| fail("the envelope hash is not base64"))?;
        Ok(Self {
            origin: origin.to_owned(),
            leaf_index: decimal(index, "leaf index")?,
            batch_id,
            envelope_sha256: envelope.try_into().map_err(|_| fail("the envelope hash is not 32 bytes"))?,
            received_at_unix_nano: decimal(received, "receipt time")?,
        })
    }

    /// Verifies a signed receipt `note` by the audit key `key` (whose name is the log's origin)
    /// and parses it.
    pub fn open(note_text: &str, key: &VerifierKey) -> Result<Self> {
        Ok(Self::opened(note_text, key, true)?.0)
    }

    /// Verifies a signed receipt for the batch `batch_id` whose envelope hashes to
    /// `envelope_sha256`: the signature, and that it is about those bytes.
    pub fn verify(note_text: &str, key: &VerifierKey, batch_id: &[u8; 16], envelope_sha256: &[u8; 32]) -> Result<Self> {
        Self::open(note_text, key)?.about(batch_id, envelope_sha256)
    }

    /// Everything [`Receipt::verify`] checks but the signatures themselves: the receipt's signed
    /// text and its signatures by `key`, for a host that verifies Ed25519 itself. The receipt
    /// holds only if each signature verifies over the text.
    pub(crate) fn unverified<'a>(
        note_text: &'a str,
        key: &VerifierKey,
        batch_id: &[u8; 16],
        envelope_sha256: &[u8; 32],
    ) -> Result<(&'a str, Vec<Vec<u8>>)> {
        let (r, text, signatures) = Self::opened(note_text, key, false)?;
        r.about(batch_id, envelope_sha256)?;
        Ok((text, signatures))
    }

    /// The receipt `note_text` by `key`, parsed, with its text and signatures, which are verified
    /// if `verify` ([`note::opened`]).
    fn opened<'a>(note_text: &'a str, key: &VerifierKey, verify: bool) -> Result<(Self, &'a str, Vec<Vec<u8>>)> {
        let (text, signatures) = note::opened(note_text, key, verify)?;
        let r = Self::parse(text)?;
        if r.origin != key.name() {
            return Err(fail("signed for another log"));
        }
        Ok((r, text, signatures))
    }

    fn about(self, batch_id: &[u8; 16], envelope_sha256: &[u8; 32]) -> Result<Self> {
        if self.batch_id != *batch_id {
            return Err(fail("for another batch"));
        }
        if self.envelope_sha256 != *envelope_sha256 {
            return Err(fail("for other bytes than were sent"));
        }
        Ok(self)
    }
}

/// A receipt waiting for its signature check, from [`crate::Tracer::pending_receipt`]: for a host
/// that verifies Ed25519 natively (the WASM package, with WebCrypto). Everything else about it has
/// been checked by the core; [`crate::Tracer::finish_receipt`] counts the outcome.
#[derive(Debug)]
pub struct PendingReceipt {
    key: VerifierKey,
    /// The signed text and its signatures by `key`; `None` when the receipt already failed
    /// (missing, malformed, for another batch or other bytes, a signature not 64 bytes long).
    signed: Option<(String, Vec<Vec<u8>>)>,
}

impl PendingReceipt {
    /// The receipt `note` for the batch `batch_id` whose envelope is `envelope`, as far as it can
    /// be checked without its signatures (no receipt: nothing to hash, it fails as it is).
    pub(crate) fn new(key: &VerifierKey, note: Option<&str>, batch_id: &[u8; 16], envelope: &[u8]) -> Self {
        let signed = note.and_then(|note| {
            let sha: [u8; 32] = Sha256::digest(envelope).into();
            let (text, signatures) = Receipt::unverified(note, key, batch_id, &sha).ok()?;
            // Not an Ed25519 signature at all: fails here, as it would verifying.
            signatures.iter().all(|s| s.len() == 64).then(|| (text.to_owned(), signatures))
        });
        Self { key: key.clone(), signed }
    }

    /// The signed text, or `None` when the receipt failed already (nothing left to verify).
    pub fn message(&self) -> Option<&[u8]> {
        self.signed.as_ref().map(|(text, _)| text.as_bytes())
    }

    /// The Ed25519 signatures over [`PendingReceipt::message`], 64 bytes each; every one must
    /// verify.
    pub fn signatures(&self) -> &[Vec<u8>] {
        self.signed.as_ref().map_or(&[], |(_, s)| s)
    }

    /// The audit key's Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Whether the receipt holds, given the host's verdict on its signatures (`None`: the host
    /// could not verify, so it is done here, with ed25519-dalek).
    pub(crate) fn holds(&self, host_verified: Option<bool>) -> bool {
        let Some((text, signatures)) = &self.signed else { return false };
        host_verified.unwrap_or_else(|| signatures.iter().all(|sig| self.key.verifies(text.as_bytes(), sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_malformed_text_is_refused() {
        let r = Receipt {
            origin: "tracex-0a1b2c3d".into(),
            leaf_index: 42,
            batch_id: [0xab; 16],
            envelope_sha256: [7; 32],
            received_at_unix_nano: 1_700_000_000_000_000_001,
        };
        let text = r.to_text();
        assert_eq!(Receipt::parse(&text).unwrap(), r);
        assert!(text.starts_with("tracex receipt v1\ntracex-0a1b2c3d\n42\nabababababababababababababababab\n"));
        for (from, to) in [("\n42\n", "\n042\n"), ("abab", "ABAB"), ("v1", "v2"), ("\n42\n", "\n-1\n")] {
            assert!(Receipt::parse(&text.replacen(from, to, 1)).is_err(), "{from} -> {to}");
        }
        assert!(Receipt::parse(text.trim_end()).is_err());
        assert!(Receipt::parse(&format!("{text}extra\n")).is_err());
    }
}
