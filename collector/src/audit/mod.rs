//! The audit trail: every stored batch is one leaf of an append-only Merkle log (RFC 6962
//! hashing), appended in the transaction that stores its spans, so the log and the rows never
//! disagree. See `docs/audit.md` for what it proves and against whom.
//!
//! - [`leaf`]: what a leaf commits to, and the per-span digests that name an altered row;
//! - [`tree`]: roots and proofs from the perfect subtrees the store keeps;
//! - [`signer`]: the Ed25519 audit key that signs checkpoints and receipts.
//!
//! Verification of what the log hands out (proofs, checkpoints, receipts) is the core's
//! (`tracex_core::audit`): every runtime checks them with the same code.

pub mod checkpoints;
pub mod gaps;
pub mod leaf;
pub mod signer;
pub mod tree;

/// One stored leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRecord {
    /// Its index in the log.
    pub index: u64,
    /// Its canonical encoding ([`leaf::Leaf::encode`]).
    pub leaf: Vec<u8>,
    /// Its leaf hash, as stored (the tree is built from these).
    pub hash: [u8; 32],
    /// The encoded claims of its span rows ([`leaf::Claims`]).
    pub claims: Vec<u8>,
}

/// One signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: [u8; 32],
    /// When it was signed (unix ns).
    pub signed_at_unix_nano: u64,
    /// The signed note (C2SP checkpoint).
    pub note: String,
}
