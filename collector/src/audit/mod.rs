//! The audit trail: every stored batch is one leaf of an append-only Merkle log (RFC 6962
//! hashing), appended in the transaction that stores its spans, so the log and the rows never
//! disagree. See `docs/audit.md` for what it proves and against whom.
//!
//! - [`leaf`]: what a leaf commits to, and the per-span digests that name an altered row;
//! - [`sha256_lanes`]: SHA-256 of many short messages at once (the span digests);
//! - [`tree`]: roots and proofs from the perfect subtrees the store keeps;
//! - [`signer`]: the Ed25519 audit key that signs checkpoints and receipts.
//!
//! Verification of what the log hands out (proofs, checkpoints, receipts) is the core's
//! (`tracex_core::audit`): every runtime checks them with the same code.

pub mod checkpoints;
pub mod gaps;
pub mod leaf;
pub mod sha256_lanes;
pub mod signer;
pub mod spans;
pub mod tree;
pub mod verify;

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

/// A span row as stored, with what `audit verify` recomputes its digest and checks its derived
/// columns from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRecord {
    /// The leaf the row names (`None`: stored before the log existed, or inserted outside it).
    pub leaf_index: Option<u64>,
    /// Derived columns, checked against the body.
    pub parent_span_id: Option<Vec<u8>>,
    /// Span name column.
    pub name: String,
    /// `service.name` column, checked against the resource.
    pub service: Option<String>,
    /// Kind column.
    pub kind: i32,
    /// Start column (unix ns).
    pub start_ns: i64,
    /// End column (unix ns).
    pub end_ns: i64,
    /// Duration column (ns).
    pub duration_ns: i64,
    /// Status column.
    pub status: i32,
    /// The span body.
    pub body: Vec<u8>,
    /// Its resource row.
    pub resource_id: i64,
}

/// What the store holds for one claimed span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowLookup {
    /// The row.
    Found(RowRecord),
    /// The trace has a row, the span none.
    SpanGone,
    /// The trace has no row at all (deleted whole, as retention does).
    TraceGone,
}

/// A span row's identity, as `audit verify` scans every row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowKey {
    /// Its trace's sequence number (the scan's order, with the span id).
    pub trace_seq: i64,
    /// The project.
    pub project: String,
    /// Its trace.
    pub trace_id: [u8; 16],
    /// Its id.
    pub span_id: [u8; 8],
    /// The leaf it names.
    pub leaf_index: Option<u64>,
}
