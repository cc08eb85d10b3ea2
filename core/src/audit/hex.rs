//! The audit verifiers as every binding exposes them: hashes, batch ids and envelope hashes as
//! hex (lower- or upper-case), notes and verifier keys as text. One parser and one set of error
//! messages for Node, Python and WASM, whose bindings only convert strings and numbers; every
//! failure, malformed input included, is an [`Error::Audit`].
//!
//! ```
//! use tracex_core::audit::{hex, merkle};
//!
//! let leaf = hex::encode(&merkle::leaf_hash(b"a batch"));
//! // A tree of one leaf: its root is the leaf hash, its proof empty.
//! hex::verify_inclusion(&leaf, 0, 1, &[] as &[&str], &leaf).unwrap();
//! assert!(hex::verify_inclusion(&leaf, 0, 1, &[] as &[&str], "00").is_err());
//! ```

use super::merkle::{self, Hash};
use super::{Checkpoint, Receipt, VerifierKey};
use crate::error::{Error, Result};

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    crate::model::hex_encode(bytes)
}

/// Exactly `N` bytes of hex; `what` names the input in the error.
pub fn decode<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    crate::model::hex_decode_into(s, &mut out).map_err(|why| Error::Audit(format!("{what} {why} ({N} bytes)")))?;
    Ok(out)
}

fn hashes<S: AsRef<str>>(proof: &[S]) -> Result<Vec<Hash>> {
    proof.iter().map(|h| decode(h.as_ref(), "a proof hash")).collect()
}

/// [`Receipt::verify`] with the key as its text and the batch id and envelope hash as hex.
pub fn verify_receipt(note: &str, verifier_key: &str, batch_id: &str, envelope_sha256: &str) -> Result<Receipt> {
    let key = VerifierKey::parse(verifier_key)?;
    Receipt::verify(note, &key, &decode(batch_id, "the batch id")?, &decode(envelope_sha256, "the envelope hash")?)
}

/// [`merkle::verify_inclusion`] with hashes as hex.
pub fn verify_inclusion<S: AsRef<str>>(leaf_hash: &str, index: u64, size: u64, proof: &[S], root: &str) -> Result<()> {
    merkle::verify_inclusion(
        &decode(leaf_hash, "the leaf hash")?,
        index,
        size,
        &hashes(proof)?,
        &decode(root, "the root")?,
    )
}

/// [`merkle::verify_consistency`] with hashes as hex.
pub fn verify_consistency<S: AsRef<str>>(
    old_size: u64,
    new_size: u64,
    old_root: &str,
    new_root: &str,
    proof: &[S],
) -> Result<()> {
    let (old_root, new_root) = (decode(old_root, "the old root")?, decode(new_root, "the new root")?);
    merkle::verify_consistency(old_size, new_size, &old_root, &new_root, &hashes(proof)?)
}

/// [`Checkpoint::open`] for the log named as its key (the collector's convention), the key as its
/// text.
pub fn open_checkpoint(note: &str, verifier_key: &str) -> Result<Checkpoint> {
    let key = VerifierKey::parse(verifier_key)?;
    Checkpoint::open(note, key.name(), &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_hex_is_an_audit_error() {
        assert_eq!(decode::<2>("aBcd", "x").unwrap(), [0xab, 0xcd]);
        for bad in ["abc", "abcdef", "zzzz", ""] {
            assert!(matches!(decode::<2>(bad, "x"), Err(Error::Audit(_))), "{bad:?}");
        }
        assert!(matches!(verify_inclusion("00", 0, 1, &["00"], "00"), Err(Error::Audit(_))));
    }
}
