//! Store conformance for the audit log (part of [`super::conformance::run_all`]): every stored
//! batch is one leaf, appended in its commit; the stored tree answers roots and proofs that the
//! core's RFC 6962 verifiers accept; checkpoints are kept.

use tracex_core::audit::merkle;

use super::Store;
use super::conformance::{batch, request, sid, span, tid};
use crate::audit::StoredCheckpoint;
use crate::audit::leaf::{Claims, Leaf, Origin, rows_sha256};
use crate::audit::tree;
use crate::store::CommitOutcome;
use tracex_core::TraceId;

fn leaf_index(o: &CommitOutcome) -> u64 {
    match o {
        CommitOutcome::Stored { leaf_index: Some(i), .. } => *i,
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
    let mut a = batch(
        project,
        1,
        request("svc", vec![span(t1, 1, None, "verify", 10, 20), span(t1, 2, Some(1), "rpc", 11, 19)]),
    );
    let mut b = batch(
        project,
        2,
        request("svc", vec![span(t2, 1, None, "settle", 30, 40), span(t1, 2, Some(1), "rpc", 11, 19)]),
    );
    // Prepared as the ingest endpoints prepare them (span bodies and digests before the writer).
    for x in [&mut a, &mut b] {
        x.prepared = Some(super::PreparedSpans::of(&x.request, true));
    }
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
        assert_eq!(leaf.claims_format, Claims::FORMAT);
        let claims = Claims::decode(&r.claims, leaf.claims_format).unwrap();
        assert_eq!(claims.spans.len(), spans as usize);
        // Each claim's check passes the row as stored, and each group's digest covers its rows.
        let mut digests = Vec::new();
        for (c, row) in claims.spans.iter().zip(store.audit_rows(project, &claims.keys()).unwrap()) {
            let crate::audit::RowLookup::Found(row) = row else { panic!("claimed row missing") };
            assert_eq!(row.leaf_index, Some(r.index));
            let (resource_sha256, _) = store.audit_resource(row.resource_id).unwrap().unwrap();
            let d = crate::audit::leaf::span_digest(&c.trace_id, &c.span_id, &resource_sha256, &row.body);
            assert!(c.check.passes(&d));
            digests.push(d);
        }
        for g in &claims.groups {
            let rows = (g.first..g.first + g.len).map(|i| (&claims.spans[i].span_id, &digests[i]));
            assert_eq!(crate::audit::leaf::group_digest(rows), g.digest);
        }
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

    // `a`'s leaf holds the claims prepared before the writer (every span of it was inserted);
    // they are byte for byte those the writer builds for the same spans (in another project,
    // unprepared). A batch repeating a span of its own inserts it once: the prepared claims (two
    // spans) are not used, the writer claims the one it inserted.
    let plain = batch("conf-audit-plain", 1, a.request.clone());
    let mut twice = batch(
        "conf-audit-plain",
        2,
        request("svc", vec![span(tid(40, 3), 1, None, "verify", 10, 20), span(tid(40, 3), 1, None, "verify", 10, 20)]),
    );
    twice.prepared = Some(super::PreparedSpans::of(&twice.request, true));
    let out = store.commit(&[plain, twice]).unwrap();
    let plain_leaf = &store.audit_leaves(leaf_index(&out[0]), 1).unwrap()[0];
    assert_eq!(plain_leaf.claims, records[0].claims);
    let twice_leaf = &store.audit_leaves(leaf_index(&out[1]), 1).unwrap()[0];
    let leaf = Leaf::decode(&twice_leaf.leaf).unwrap();
    assert_eq!((leaf.spans, leaf.rows_sha256), (1, rows_sha256(&twice_leaf.claims)));
    assert_eq!(Claims::decode(&twice_leaf.claims, leaf.claims_format).unwrap().spans.len(), 1);
}

/// Raw SQL on a store's database, for tampering the way an administrator could.
pub(crate) struct RawSql<'a> {
    /// Runs statements.
    pub exec: &'a dyn Fn(&str),
    /// A blob literal in the store's SQL.
    pub blob: fn(&[u8]) -> String,
    /// PostgreSQL (it keeps the log's size in `audit_head`).
    pub postgres: bool,
}

/// `audit verify` on a store of its own: clean, then each kind of tampering named exactly —
/// an attribute altered in a span body, a derived column altered, rows inserted (naming a leaf,
/// naming none), retention (expired, not deleted), a batch's rows deleted, a leaf rewritten (a
/// fork), the log rolled back.
pub(crate) fn verify_names_what_was_tampered(store: &dyn Store, raw: &RawSql<'_>) {
    use crate::audit::checkpoints;
    use crate::audit::signer::AuditSigner;
    use crate::audit::verify::{Finding, Options, verify};
    use crate::services::retention::RetentionPolicy;
    use crate::store::common::encode_span_body;
    use tracex_core::{KeyValue, Value};

    store.migrate().unwrap();
    let project = "conf-verify";
    let now = crate::now_unix_nano();
    let (t1, t2, t3, t_old) = (tid(50, 1), tid(50, 2), tid(50, 3), tid(50, 4));
    let mut paid = span(t1, 2, Some(1), "pay", now - 2_000, now - 1_000);
    paid.attributes = vec![KeyValue::new("x402.amount", "1000")];
    let batches = [
        batch(project, 1, request("svc", vec![span(t1, 1, None, "settle", now - 3_000, now), paid.clone()])),
        batch(project, 2, request("svc", vec![span(t2, 1, None, "verify", now - 3_000, now)])),
        batch(
            project,
            3,
            request("svc", vec![span(t3, 1, None, "a", now - 3_000, now), span(t3, 2, Some(1), "b", now - 2_000, now)]),
        ),
        batch(project, 4, request("svc", vec![span(t_old, 1, None, "old", 1_000, 2_000)])),
    ];
    let leaves: Vec<u64> =
        batches.iter().map(|b| leaf_index(&store.commit(std::slice::from_ref(b)).unwrap()[0])).collect();
    let dir = std::env::temp_dir().join(format!("tracex-verify-{}-{}", std::process::id(), raw.postgres));
    let _ = std::fs::remove_dir_all(&dir);
    let signer = AuditSigner::load_or_create(&dir).unwrap();
    let kept = checkpoints::sign_if_grown(store, &signer, now).unwrap().unwrap();
    assert_eq!(kept.size, 4);
    let opts = || Options {
        key: Some(signer.verifier().clone()),
        saved_checkpoints: vec![kept.note.clone()],
        retention: RetentionPolicy::default(),
        now_unix_nano: now,
        unlogged_ok: false,
    };
    let run = |o: &Options| {
        let r = verify(store, o).unwrap();
        (r.problems, r.findings, r.spans_expired)
    };
    let clean = verify(store, &opts()).unwrap();
    assert_eq!(
        (clean.problems, clean.leaves, clean.spans_checked, clean.checkpoints),
        (0, 4, 6, 1),
        "{:?}",
        clean.findings
    );

    let b = raw.blob;
    let where_span = |t: TraceId, s: u32| {
        format!("span_id = {} AND trace_seq = (SELECT id FROM traces WHERE trace_id = {})", b(&sid(s).0), b(&t.0))
    };
    let altered = |f: &Finding, index: u64, batch_id: [u8; 16], t: TraceId, s: u32, what: &str| {
        matches!(f, Finding::SpanAltered { index: i, batch_id: bid, trace_id, span_id, what: w, project: p }
            if *i == index && *bid == batch_id && *trace_id == t.0 && *span_id == sid(s).0 && w.contains(what) && p == project)
    };

    // An attribute of one span, altered in its body: that batch and span, nothing else.
    let mut forged = paid.clone();
    forged.attributes = vec![KeyValue::new("x402.amount", Value::from("999999"))];
    let (mut original, mut body) = (Vec::new(), Vec::new());
    encode_span_body(&paid, &mut original);
    encode_span_body(&forged, &mut body);
    (raw.exec)(&format!("UPDATE spans SET body = {} WHERE {}", b(&body), where_span(t1, 2)));
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 1, "{findings:?}");
    assert!(altered(&findings[0], leaves[0], batches[0].batch_id, t1, 2, "content"), "{findings:?}");
    (raw.exec)(&format!("UPDATE spans SET body = {} WHERE {}", b(&original), where_span(t1, 2)));
    assert_eq!(run(&opts()).0, 0);

    // A derived column: the row still hashes, the column disagrees with the body.
    (raw.exec)(&format!("UPDATE spans SET name = 'forged' WHERE {}", where_span(t2, 1)));
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 1, "{findings:?}");
    assert!(altered(&findings[0], leaves[1], batches[1].batch_id, t2, 1, "column name"), "{findings:?}");
    (raw.exec)(&format!("UPDATE spans SET name = 'verify' WHERE {}", where_span(t2, 1)));

    // A checkpoint's time column moved: its note signs the time it was made.
    (raw.exec)("UPDATE audit_checkpoints SET signed_at_ns = signed_at_ns + 1");
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 1, "{findings:?}");
    assert!(
        matches!(&findings[0], Finding::CheckpointBad { size: 4, why } if why.contains("differ from its signed note")),
        "{findings:?}"
    );
    (raw.exec)("UPDATE audit_checkpoints SET signed_at_ns = signed_at_ns - 1");
    assert_eq!(run(&opts()).0, 0);

    // Forged rows: one naming a leaf that never claimed it, one naming none.
    let columns = "trace_seq, span_id, parent_span_id, name, service, kind, start_ns, end_ns, duration_ns, status, \
                   resource_id, body";
    for (id, leaf) in [(7, "leaf_index"), (8, "NULL"), (9, "1000000")] {
        (raw.exec)(&format!(
            "INSERT INTO spans ({columns}, leaf_index) SELECT trace_seq, {}, parent_span_id, name, service, kind, \
             start_ns, end_ns, duration_ns, status, resource_id, body, {leaf} FROM spans WHERE {}",
            b(&sid(id).0),
            where_span(t2, 1)
        ));
    }
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 3, "{findings:?}");
    for (id, names) in [(7, Some(leaves[1])), (8, None), (9, Some(1_000_000))] {
        assert!(
            findings.iter().any(|f| *f
                == Finding::SpanInserted {
                    project: project.into(),
                    trace_id: t2.0,
                    span_id: sid(id).0,
                    names_leaf: names
                }),
            "{findings:?}"
        );
    }
    // A store upgraded from before the log holds rows that name no leaf: counted, not reported.
    let (problems, _, _) = run(&Options { unlogged_ok: true, ..opts() });
    assert_eq!(problems, 2);
    (raw.exec)(&format!("DELETE FROM spans WHERE span_id IN ({}, {}, {})", b(&sid(7).0), b(&sid(8).0), b(&sid(9).0)));

    // Retention removes the old trace: expired under the policy, deleted without one.
    let expired = store.expire(project, now - 1_000_000_000, 100, 0).unwrap();
    assert_eq!(expired.traces, 1);
    let policy = RetentionPolicy { default_days: 1, by_project: std::collections::HashMap::new() };
    let (problems, findings, spans_expired) = run(&Options { retention: policy, ..opts() });
    assert_eq!((problems, spans_expired), (0, 1), "{findings:?}");
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 1, "{findings:?}");
    assert!(matches!(&findings[0], Finding::SpanDeleted { index, .. } if *index == leaves[3]), "{findings:?}");

    // A batch's rows deleted: each of its spans, by batch.
    (raw.exec)(&format!("DELETE FROM spans WHERE leaf_index = {}", leaves[2]));
    let (problems, findings, _) = run(&opts());
    assert_eq!(problems, 3, "{findings:?}");
    for s in [1, 2] {
        assert!(
            findings.iter().any(|f| matches!(f, Finding::SpanDeleted { index, batch_id, trace_id, span_id, .. }
                if *index == leaves[2] && *batch_id == batches[2].batch_id && *trace_id == t3.0 && *span_id == sid(s).0)),
            "{findings:?}"
        );
    }

    // A fork: leaf 0 rewritten with its hash (another receipt time): the stored checkpoint and the
    // kept one no longer match the leaves, nor do the stored nodes.
    let record = store.audit_leaves(leaves[0], 1).unwrap().remove(0);
    let mut leaf = Leaf::decode(&record.leaf).unwrap();
    leaf.received_at_unix_nano += 1;
    (raw.exec)(&format!(
        "UPDATE audit_leaves SET leaf = {}, hash = {} WHERE idx = {}",
        b(&leaf.encode()),
        b(&leaf.hash()),
        leaves[0]
    ));
    let (_, findings, _) = run(&opts());
    assert!(findings.iter().any(|f| matches!(f, Finding::NotAnExtension { size: 4, .. })), "{findings:?}");
    assert!(findings.iter().any(|f| matches!(f, Finding::CheckpointBad { size: 4, .. })), "{findings:?}");
    assert!(findings.iter().any(|f| matches!(f, Finding::TreeAltered { size: 4 })), "{findings:?}");
    (raw.exec)(&format!(
        "UPDATE audit_leaves SET leaf = {}, hash = {} WHERE idx = {}",
        b(&record.leaf),
        b(&record.hash),
        leaves[0]
    ));

    // Rolled back: the last leaf removed; the kept checkpoint is no longer a prefix.
    (raw.exec)(&format!("DELETE FROM audit_leaves WHERE idx = {}", leaves[3]));
    if raw.postgres {
        (raw.exec)("UPDATE audit_head SET size = size - 1");
    }
    let (_, findings, _) = run(&opts());
    assert!(findings.iter().any(|f| matches!(f, Finding::NotAnExtension { size: 4, .. })), "{findings:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The OTLP export cursor: one holder at a time under a lease; only the holder moves it, and only
/// from where it is.
/// Leaves written before the compact claims (format V1: a whole digest per span) still verify,
/// and an altered row is named by either format. On a store of its own: the one leaf is rewritten
/// in V1 the way a collector before V2 wrote it (a one-leaf log has no stored inner nodes, and no
/// checkpoint is signed here).
pub(crate) fn verify_reads_leaves_of_both_claim_formats(store: &dyn Store, raw: &RawSql<'_>) {
    use crate::audit::leaf::{Claim, ClaimsFormat, span_digest};
    use crate::audit::verify::{Finding, Options, verify};
    use crate::audit::{LeafRecord, RowLookup};
    use crate::store::common::encode_span_body;
    use tracex_core::KeyValue;

    store.migrate().unwrap();
    let project = "conf-formats";
    let now = crate::now_unix_nano();
    let (t1, t2) = (tid(51, 1), tid(51, 2));
    let mut paid = span(t1, 2, Some(1), "pay", now - 2_000, now - 1_000);
    paid.attributes = vec![KeyValue::new("x402.amount", "1000")];
    let spans =
        vec![span(t1, 1, None, "settle", now - 3_000, now), paid.clone(), span(t2, 1, None, "verify", now - 500, now)];
    let index = leaf_index(&store.commit(&[batch(project, 1, request("svc", spans))]).unwrap()[0]);
    let opts = Options { now_unix_nano: now, ..Options::default() };
    let b = raw.blob;
    let where_paid =
        format!("span_id = {} AND trace_seq = (SELECT id FROM traces WHERE trace_id = {})", b(&sid(2).0), b(&t1.0));
    let (mut original, mut forged) = (Vec::new(), Vec::new());
    encode_span_body(&paid, &mut original);
    let mut altered = paid.clone();
    altered.attributes = vec![KeyValue::new("x402.amount", "999999")];
    encode_span_body(&altered, &mut forged);
    let names_paid = |findings: &[Finding]| {
        matches!(findings, [Finding::SpanAltered { index: i, trace_id, span_id, what, .. }]
            if *i == index && *trace_id == t1.0 && *span_id == sid(2).0 && what.contains("content"))
    };
    let check = |format: ClaimsFormat| {
        let r = verify(store, &opts).unwrap();
        assert_eq!((r.problems, r.leaves, r.spans_checked), (0, 1, 3), "{format:?}: {:?}", r.findings);
        (raw.exec)(&format!("UPDATE spans SET body = {} WHERE {where_paid}", b(&forged)));
        let r = verify(store, &opts).unwrap();
        assert!(r.problems == 1 && names_paid(&r.findings), "{format:?}: {:?}", r.findings);
        (raw.exec)(&format!("UPDATE spans SET body = {} WHERE {where_paid}", b(&original)));
    };

    // As committed: V2.
    let [record]: [LeafRecord; 1] = store.audit_leaves(index, 1).unwrap().try_into().unwrap();
    let leaf = Leaf::decode(&record.leaf).unwrap();
    assert_eq!(leaf.claims_format, ClaimsFormat::V2);
    check(ClaimsFormat::V2);

    // Rewritten in V1, from the rows as stored.
    let stored = Claims::decode(&record.claims, ClaimsFormat::V2).unwrap();
    let mut full = Claims::default();
    for (c, row) in stored.spans.iter().zip(store.audit_rows(project, &stored.keys()).unwrap()) {
        let RowLookup::Found(row) = row else { panic!("claimed row missing") };
        let (resource_sha256, _) = store.audit_resource(row.resource_id).unwrap().unwrap();
        let digest = span_digest(&c.trace_id, &c.span_id, &resource_sha256, &row.body);
        let start = crate::store::common::decode_span_body(&row.body).unwrap().start_time_unix_nano;
        full.0.push(Claim { trace_id: c.trace_id, span_id: c.span_id, start_unix_nano: start, digest });
    }
    let claims = full.encode_v1();
    let v1 = Leaf { claims_format: ClaimsFormat::V1, rows_sha256: rows_sha256(&claims), ..leaf };
    let encoded = v1.encode();
    (raw.exec)(&format!(
        "UPDATE audit_leaves SET leaf = {}, hash = {}, claims = {} WHERE idx = {index}",
        b(&encoded),
        b(&merkle::leaf_hash(&encoded)),
        b(&claims)
    ));
    let [record]: [LeafRecord; 1] = store.audit_leaves(index, 1).unwrap().try_into().unwrap();
    assert_eq!(Leaf::decode(&record.leaf).unwrap().claims_format, ClaimsFormat::V1);
    assert_eq!(record.claims.len(), 2 * 20 + 3 * 32);
    check(ClaimsFormat::V1);
}

pub(crate) fn export_cursor_is_leased_and_advanced_by_its_holder(store: &dyn Store) {
    let (name, lease) = ("conf-export", 1_000);
    // First claim: the cursor starts where it is told; the holder renews freely.
    assert_eq!(store.claim_export_cursor(name, "a", 100, lease, 7).unwrap(), Some(7));
    assert_eq!(store.claim_export_cursor(name, "a", 200, lease, 99).unwrap(), Some(7), "start only applies once");
    // Another holder waits out the lease (renewed until 1,200).
    assert_eq!(store.claim_export_cursor(name, "b", 1_100, lease, 0).unwrap(), None);
    assert!(!store.advance_export_cursor(name, "b", 7, 9).unwrap(), "only the holder advances");
    assert!(!store.advance_export_cursor(name, "a", 6, 9).unwrap(), "only from where it is");
    assert!(store.advance_export_cursor(name, "a", 7, 9).unwrap());
    // Past the lease another holder takes over where the first left off, and the first can no
    // longer move it.
    assert_eq!(store.claim_export_cursor(name, "b", 1_201, lease, 0).unwrap(), Some(9));
    assert!(!store.advance_export_cursor(name, "a", 9, 12).unwrap());
    assert!(store.advance_export_cursor(name, "b", 9, 12).unwrap());
    assert_eq!(store.claim_export_cursor(name, "b", 1_300, lease, 0).unwrap(), Some(12));
    // Cursors are independent.
    assert_eq!(store.claim_export_cursor("conf-export-2", "a", 1_300, lease, 0).unwrap(), Some(0));
}
