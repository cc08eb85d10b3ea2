//! Store conformance for the audit log (part of [`super::conformance::run_all`]): every stored
//! batch is one leaf, appended in its commit; the stored tree answers roots and proofs that the
//! core's RFC 6962 verifiers accept; checkpoints are kept.

use tracex_core::audit::merkle;

use super::Store;
use super::conformance::{batch, request, span, tid};
use crate::audit::StoredCheckpoint;
use crate::audit::leaf::{Claims, Leaf, Origin, rows_sha256};
use crate::audit::tree;
use crate::store::CommitOutcome;

fn leaf_index(o: &CommitOutcome) -> u64 {
    match o {
        CommitOutcome::Stored { leaf_index, .. } => *leaf_index,
        other => panic!("not stored: {other:?}"),
    }
}

/// The root of the first `size` leaves, from the stored nodes the tree names.
fn stored_root(store: &dyn Store, size: u64) -> [u8; 32] {
    tree::root(size, &store.audit_nodes(&tree::root_nodes(size)).unwrap()).unwrap()
}

pub(crate) fn every_stored_batch_is_a_leaf_of_a_verifiable_log(store: &dyn Store) {
    let project = "conf-audit";
    let (t1, t2) = (tid(40, 1), tid(40, 2));
    let before = store.audit_size().unwrap();
    let a = batch(
        project,
        1,
        request("svc", vec![span(t1, 1, None, "verify", 10, 20), span(t1, 2, Some(1), "rpc", 11, 19)]),
    );
    let b = batch(
        project,
        2,
        request("svc", vec![span(t2, 1, None, "settle", 30, 40), span(t1, 2, Some(1), "rpc", 11, 19)]),
    );
    let out = store.commit(&[a.clone(), b.clone(), a.clone()]).unwrap();
    assert_eq!(out[2], CommitOutcome::Duplicate);
    let (la, lb) = (leaf_index(&out[0]), leaf_index(&out[1]));
    assert_eq!((la, lb), (before, before + 1), "leaves in call order, a duplicate takes none");
    let size = store.audit_size().unwrap();
    assert_eq!(size, before + 2);

    // The leaves say what was stored: b's repeated span is not claimed by b.
    let records = store.audit_leaves(la, 10).unwrap();
    assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [la, lb]);
    for (r, (b, spans)) in records.iter().zip([(&a, 2), (&b, 1)]) {
        let leaf = Leaf::decode(&r.leaf).unwrap();
        assert_eq!((leaf.project.as_str(), leaf.batch_id, leaf.sequence), (project, b.batch_id, b.sequence));
        assert_eq!((leaf.envelope_sha256, leaf.origin, leaf.spans), (b.envelope_sha256, Origin::Sealed, spans));
        assert_eq!(r.hash, merkle::leaf_hash(&r.leaf));
        assert_eq!(leaf.rows_sha256, rows_sha256(&r.claims));
        let claims = Claims::decode(&r.claims).unwrap();
        assert_eq!(claims.0.len(), spans as usize);
    }
    assert_eq!(store.audit_leaf_of_batch(project, &b.batch_id).unwrap(), Some(lb));
    assert_eq!(store.audit_leaf_of_batch(project, &[9; 16]).unwrap(), None);
    assert_eq!(store.audit_leaves_of_trace(project, t1).unwrap(), [la]);
    assert_eq!(store.audit_leaves_of_trace(project, t2).unwrap(), [lb]);

    // The stored tree is the RFC 6962 tree of every leaf hash.
    let all: Vec<[u8; 32]> = store.audit_leaves(0, usize::MAX >> 1).unwrap().iter().map(|r| r.hash).collect();
    assert_eq!(all.len() as u64, size);
    let root = stored_root(store, size);
    assert_eq!(root, merkle::root(&all));
    for i in [la, lb] {
        let proof = tree::inclusion(i, size, &store.audit_nodes(&tree::inclusion_nodes(i, size)).unwrap()).unwrap();
        merkle::verify_inclusion(&all[i as usize], i, size, &proof, &root).unwrap();
    }
    let old = before.max(1).min(size - 1);
    let proof = tree::consistency(old, size, &store.audit_nodes(&tree::consistency_nodes(old, size)).unwrap()).unwrap();
    merkle::verify_consistency(old, size, &stored_root(store, old), &root, &proof).unwrap();

    // The batches' places in their instance's sequence, for gap reports.
    let seqs = store.batch_sequences(project, None, 10).unwrap();
    assert_eq!(
        seqs.iter().map(|s| (s.instance_id, s.sequence)).collect::<Vec<_>>(),
        [(a.instance_id, 1), (a.instance_id, 2)]
    );
    assert_eq!(seqs[0].service.as_deref(), Some("svc"));
    assert_eq!((seqs[1].batch_id, seqs[1].created_at_unix_nano), (b.batch_id, b.created_at_unix_nano));
    assert!(store.batch_sequences(project, Some(a.instance_id), 10).unwrap().is_empty());
    assert_eq!(store.batch_sequences(project, None, 1).unwrap().len(), 1);

    // Checkpoints: the first signed at a size is kept.
    let c = StoredCheckpoint { size, root, signed_at_unix_nano: 5, note: "note\n".into() };
    store.insert_checkpoint(&c).unwrap();
    store.insert_checkpoint(&StoredCheckpoint { note: "other\n".into(), ..c.clone() }).unwrap();
    assert_eq!(store.latest_checkpoint().unwrap(), Some(c.clone()));
    assert_eq!(store.checkpoints(size, 10).unwrap(), [c]);
    assert!(store.checkpoints(size + 1, 10).unwrap().is_empty());
}
