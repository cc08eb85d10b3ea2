//! RFC 6962 Merkle trees (the hashing Certificate Transparency logs, Trillian and Tessera use):
//! leaf and node hashes with domain separation, and the verification of inclusion and consistency
//! proofs as RFC 9162 §2.1.3.2 and §2.1.4.2 give them (iterative, no recursion, `O(log n)`).
//!
//! The proof *generators* here work over every leaf hash in memory (RFC 6962 §2.1.1–2.1.2 as
//! written, recursive): the reference the tests and the published vectors pin, not what a
//! collector with millions of leaves serves from.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 hash: a leaf, a node or a root.
pub type Hash = [u8; 32];

/// Most hashes an inclusion or consistency proof can hold: a tree of 2^64 leaves needs 64 (a
/// consistency proof one more); anything longer is malformed.
pub const MAX_PROOF_HASHES: usize = 65;

/// The hash of a leaf's data: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(data).finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([1u8]).chain_update(left).chain_update(right).finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n` ≥ 2): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root (Merkle tree hash) of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `leaves`.
///
/// # Panics
/// When `index` is not a leaf of the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    assert!(index < leaves.len(), "leaf {index} of a tree of {}", leaves.len());
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    let (mut path, sibling) = if index < k {
        (inclusion_proof(&leaves[..k], index), root(&leaves[k..]))
    } else {
        (inclusion_proof(&leaves[k..], index - k), root(&leaves[..k]))
    };
    path.push(sibling);
    path
}

/// The consistency proof between the tree of the first `old_size` of `leaves` and the tree of all.
///
/// # Panics
/// When `old_size` is larger than the tree.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Vec<Hash> {
    assert!(old_size <= leaves.len(), "a tree of {old_size} is not a prefix of one of {}", leaves.len());
    if old_size == 0 || old_size == leaves.len() {
        return Vec::new();
    }
    subproof(old_size, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![root(leaves)] };
    }
    let k = split(n);
    let (mut proof, sibling) = if m <= k {
        (subproof(m, &leaves[..k], whole), root(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), root(&leaves[..k]))
    };
    proof.push(sibling);
    proof
}

fn fail(why: &str) -> Error {
    Error::Audit(why.to_owned())
}

/// The root of the tree of `size` leaves in which `leaf` (a leaf hash) is leaf `index` with the
/// inclusion `proof` (RFC 9162 §2.1.3.2): what a verifier compares with a signed root.
pub fn root_from_inclusion_proof(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash> {
    if index >= size {
        return Err(fail("inclusion proof: the leaf index is not in the tree"));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(fail("inclusion proof: too many hashes"));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(fail("inclusion proof: longer than the tree is deep"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(fail("inclusion proof: shorter than the tree is deep"));
    }
    Ok(r)
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root`, by its inclusion `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<()> {
    if root_from_inclusion_proof(leaf, index, size, proof)? != *root {
        return Err(fail("inclusion proof: the leaf is not in the tree with this root"));
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, by their consistency `proof` (RFC 9162 §2.1.4.2):
/// the log was only appended to — nothing in the old tree was changed, removed or reordered.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    if old_size > new_size {
        return Err(fail("consistency proof: the old tree is larger than the new one"));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(fail("consistency proof: too many hashes"));
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(fail("consistency proof: trees of the same size need an empty proof"));
        }
        return if old_root == new_root { Ok(()) } else { Err(fail("consistency proof: same size, different roots")) };
    }
    if old_size == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(fail("consistency proof: the empty tree needs an empty proof"))
        };
    }
    if proof.is_empty() {
        return Err(fail("consistency proof: empty"));
    }
    // An old tree that is a complete subtree is its own first node; otherwise the proof starts with it.
    let (first, rest) = if old_size.is_power_of_two() { (old_root, proof) } else { (&proof[0], &proof[1..]) };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(fail("consistency proof: longer than the trees need"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(fail("consistency proof: shorter than the trees need"));
    }
    if fr != *old_root || sr != *new_root {
        return Err(fail("consistency proof: the new tree does not extend the old one"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
    }

    #[test]
    fn every_generated_proof_verifies_and_every_flipped_bit_fails() {
        for n in 1..=33 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i);
                let (leaf, iu, nu) = (&l[i], i as u64, n as u64);
                verify_inclusion(leaf, iu, nu, &p, &r).unwrap();
                if n > 1 {
                    assert!(verify_inclusion(leaf, (iu + 1) % nu, nu, &p, &r).is_err());
                }
                for j in 0..p.len() {
                    let mut bad = p.clone();
                    bad[j][j % 32] ^= 1;
                    assert!(verify_inclusion(leaf, iu, nu, &bad, &r).is_err(), "n {n} i {i} hash {j}");
                }
                let mut longer = p.clone();
                longer.push(r);
                assert!(verify_inclusion(leaf, iu, nu, &longer, &r).is_err());
            }
            for m in 0..=n {
                let p = consistency_proof(&l, m);
                let old = root(&l[..m]);
                verify_consistency(m as u64, n as u64, &old, &r, &p).unwrap();
                for j in 0..p.len() {
                    let mut bad = p.clone();
                    bad[j][0] ^= 0x80;
                    assert!(verify_consistency(m as u64, n as u64, &old, &r, &bad).is_err(), "n {n} m {m} hash {j}");
                }
                if m > 0 && m < n {
                    // A forked log: the same size, one old leaf changed.
                    let mut forked = l.clone();
                    forked[m - 1] = leaf_hash(b"forged");
                    assert!(verify_consistency(m as u64, n as u64, &root(&forked[..m]), &r, &p).is_err());
                    assert!(verify_consistency(m as u64, n as u64, &old, &root(&forked), &p).is_err());
                    assert!(verify_consistency(n as u64, m as u64, &r, &old, &p).is_err(), "rolled back");
                }
            }
        }
    }

    #[test]
    fn out_of_range_inputs_fail_cleanly() {
        let h = leaf_hash(b"");
        assert!(verify_inclusion(&h, 0, 0, &[], &h).is_err());
        assert!(verify_inclusion(&h, u64::MAX, u64::MAX, &[], &h).is_err());
        assert!(verify_inclusion(&h, 0, u64::MAX, &[h; 64], &h).is_err());
        assert!(verify_inclusion(&h, 0, u64::MAX, &[h; 66], &h).is_err());
        assert!(verify_consistency(1, u64::MAX, &h, &h, &[h; 64]).is_err());
        assert!(verify_consistency(3, 2, &h, &h, &[h]).is_err());
        assert!(verify_consistency(0, 5, &empty_root(), &h, &[]).is_ok());
        assert!(verify_consistency(0, 0, &empty_root(), &h, &[]).is_err());
        assert!(verify_consistency(2, 2, &h, &h, &[h]).is_err());
        assert_eq!(root(&[]), empty_root());
    }
}
