//! Signing checkpoints and receipts with the audit key.

use tracex_core::audit::{Checkpoint, Receipt};

use super::StoredCheckpoint;
use super::signer::AuditSigner;
use super::tree;
use crate::store::{Store, StoreError, StoreResult};

/// The root of the log's first `size` leaves (`size` ≥ 1), from the stored nodes.
pub fn root(store: &dyn Store, size: u64) -> StoreResult<[u8; 32]> {
    let nodes = store.audit_nodes(&tree::root_nodes(size))?;
    tree::root(size, &nodes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Signs and stores a checkpoint of the log as it is now, unless it is empty or the latest
/// checkpoint already covers it; returns the new checkpoint.
pub fn sign_if_grown(
    store: &dyn Store,
    signer: &AuditSigner,
    now_unix_nano: u64,
) -> StoreResult<Option<StoredCheckpoint>> {
    let size = store.audit_size()?;
    let latest = store.latest_checkpoint()?.map_or(0, |c| c.size);
    if size == 0 || size <= latest {
        return Ok(None);
    }
    let root = root(store, size)?;
    let text = Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root,
        signed_at_unix_nano: Some(now_unix_nano),
        extensions: Vec::new(),
    }
    .to_text();
    let checkpoint = StoredCheckpoint { size, root, signed_at_unix_nano: now_unix_nano, note: signer.sign_note(&text) };
    store.insert_checkpoint(&checkpoint)?;
    Ok(Some(checkpoint))
}

/// A signed receipt for a stored batch.
pub fn receipt(
    signer: &AuditSigner,
    leaf_index: u64,
    batch_id: [u8; 16],
    envelope_sha256: [u8; 32],
    received_at_unix_nano: u64,
) -> String {
    let r = Receipt { origin: signer.name().to_owned(), leaf_index, batch_id, envelope_sha256, received_at_unix_nano };
    signer.sign_note(&r.to_text())
}
