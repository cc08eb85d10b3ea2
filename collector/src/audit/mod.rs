//! The audit trail: every stored batch is one leaf of an append-only Merkle log (RFC 6962
//! hashing), appended in the transaction that stores its spans, so the log and the rows never
//! disagree. See `docs/audit.md` for what it proves and against whom.
//!
//! - [`leaf`]: what a leaf commits to, and the per-span digests that name an altered row;
//! - [`tree`]: roots and proofs from the perfect subtrees the store keeps.
//!
//! Verification of what the log hands out (proofs, checkpoints, receipts) is the core's
//! (`tracex_core::audit`): every runtime checks them with the same code.

pub mod leaf;
pub mod tree;
