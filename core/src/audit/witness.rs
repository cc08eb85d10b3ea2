//! What a witness checks (docs/audit.md): the collector's latest checkpoint is signed by the
//! pinned audit key and extends the checkpoint the witness kept — the log was only appended to,
//! never rolled back, forked or rewritten. The witness then keeps the new one (and may co-sign it).

use super::checkpoint::Checkpoint;
use super::merkle::{Hash, verify_consistency};
use super::note::VerifierKey;
use crate::error::{Error, Result};

/// Opens `latest` (a signed checkpoint note) with `key` and checks that it extends `kept` (the
/// note the witness accepted last, if any) by the consistency `proof` between their sizes.
/// Returns the new checkpoint, to keep.
pub fn check_extension(key: &VerifierKey, kept: Option<&str>, latest: &str, proof: &[Hash]) -> Result<Checkpoint> {
    let new = Checkpoint::open(latest, key.name(), key)?;
    if let Some(kept) = kept {
        let old = Checkpoint::open(kept, key.name(), key)?;
        if new.size < old.size {
            return Err(Error::Audit(format!(
                "witness: the log shrank from {} to {} leaves: it was rolled back",
                old.size, new.size
            )));
        }
        verify_consistency(old.size, new.size, &old.root, &new.root, proof)
            .map_err(|e| Error::Audit(format!("witness: the log does not extend the kept checkpoint: {e}")))?;
        // A log signs its checkpoints in order: one older than the kept one was held back or
        // signed with a clock turned back.
        if let (Some(old_at), Some(new_at)) = (old.signed_at_unix_nano, new.signed_at_unix_nano)
            && new_at < old_at
        {
            return Err(Error::Audit(format!(
                "witness: the latest checkpoint was signed at {new_at}, before the kept one ({old_at})"
            )));
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;
    use crate::audit::{merkle, note};

    fn signed(key: &SigningKey, name: &str, c: &Checkpoint) -> String {
        let text = c.to_text();
        let public = key.verifying_key().to_bytes();
        let sig = key.sign(text.as_bytes()).to_bytes();
        format!("{text}\n{}", note::signature_line(name, note::key_hash(name, &public), &sig))
    }

    #[test]
    fn extensions_pass_and_rollbacks_forks_and_other_keys_fail() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let name = "tracex-witness-test";
        let vkey = VerifierKey::new(name, &key.verifying_key().to_bytes()).unwrap();
        let leaves: Vec<Hash> = (0u8..10).map(|i| merkle::leaf_hash(&[i])).collect();
        let at = |n: usize| {
            let c = Checkpoint {
                origin: name.into(),
                size: n as u64,
                root: merkle::root(&leaves[..n]),
                signed_at_unix_nano: Some(1_000 + n as u64),
                extensions: vec![],
            };
            signed(&key, name, &c)
        };
        let (old, new) = (at(4), at(10));
        let proof = merkle::consistency_proof(&leaves, 4);
        assert_eq!(check_extension(&vkey, None, &old, &[]).unwrap().size, 4);
        assert_eq!(check_extension(&vkey, Some(&old), &new, &proof).unwrap().size, 10);
        assert_eq!(check_extension(&vkey, Some(&new), &new, &[]).unwrap().size, 10);
        // Rolled back.
        assert!(check_extension(&vkey, Some(&new), &old, &[]).is_err());
        // Forked: another leaf 2, the same sizes.
        let mut forked = leaves.clone();
        forked[2] = merkle::leaf_hash(b"forged");
        let fork = signed(
            &key,
            name,
            &Checkpoint {
                origin: name.into(),
                size: 10,
                root: merkle::root(&forked),
                signed_at_unix_nano: None,
                extensions: vec![],
            },
        );
        assert!(check_extension(&vkey, Some(&old), &fork, &merkle::consistency_proof(&forked, 4)).is_err());
        // Signed by another key of the same name.
        let other = SigningKey::from_bytes(&[8; 32]);
        let c = Checkpoint {
            origin: name.into(),
            size: 10,
            root: merkle::root(&leaves),
            signed_at_unix_nano: None,
            extensions: vec![],
        };
        assert!(check_extension(&vkey, Some(&old), &signed(&other, name, &c), &proof).is_err());
        // The same tree, signed again with an earlier time than the kept checkpoint's.
        let earlier = Checkpoint { signed_at_unix_nano: Some(1_003), ..c.clone() };
        let err = check_extension(&vkey, Some(&old), &signed(&key, name, &earlier), &proof).unwrap_err();
        assert!(err.to_string().contains("before the kept one"), "{err}");
        // Untimed checkpoints (signed before times were written) are checked on size and root alone.
        assert_eq!(check_extension(&vkey, Some(&old), &signed(&key, name, &c), &proof).unwrap().size, 10);
    }
}
