//! Verifying the collector's audit trail: RFC 6962 Merkle proofs ([`merkle`]), C2SP signed notes
//! ([`note`]) and checkpoints ([`checkpoint`]). Everything here is public-key verification and
//! hashing — no private key, no database — so every runtime (the SDKs, the WASM build in a
//! browser, a partner's witness) checks the collector the same way. The collector appends and
//! signs; see `docs/audit.md`. The bindings expose [`hex`]'s string-typed verifiers.

pub mod checkpoint;
pub mod hex;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod witness;

pub use checkpoint::Checkpoint;
pub use merkle::{Hash, leaf_hash, node_hash, verify_consistency, verify_inclusion};
pub use note::VerifierKey;
pub use receipt::{PendingReceipt, Receipt};
