//! The audit log's reads and checkpoints (its appends are part of each commit, `commit.rs`).

use rusqlite::{Connection, OptionalExtension, params};

use super::Db;
use crate::audit::gaps::BatchSeq;
use crate::audit::tree::{NodeId, Nodes};
use crate::audit::{LeafRecord, RowKey, RowLookup, RowRecord, StoredCheckpoint};
use crate::store::common::{hash32, ns, unns};
use crate::store::{StoreError, StoreResult};

pub(super) fn size(conn: &Connection) -> StoreResult<u64> {
    let next: i64 = conn.query_row("SELECT coalesce(max(idx), -1) + 1 FROM audit_leaves", [], |r| r.get(0)).db()?;
    Ok(unns(next))
}

/// The stored audit nodes named (level 0 from the leaves); absent ones are left out.
pub(super) fn nodes(conn: &Connection, ids: &[NodeId]) -> StoreResult<Nodes> {
    let mut leaf = conn.prepare("SELECT hash FROM audit_leaves WHERE idx = ?1").db()?;
    let mut node = conn.prepare("SELECT hash FROM audit_nodes WHERE level = ?1 AND idx = ?2").db()?;
    let mut out = Nodes::with_capacity(ids.len());
    for &(level, idx) in ids {
        let hash: Option<Vec<u8>> = if level == 0 {
            leaf.query_row([ns(idx)], |r| r.get(0)).optional().db()?
        } else {
            node.query_row(params![level, ns(idx)], |r| r.get(0)).optional().db()?
        };
        if let Some(h) = hash {
            let h: [u8; 32] = h.try_into().map_err(|_| StoreError::Corrupt("an audit node is not 32 bytes".into()))?;
            out.insert((level, idx), h);
        }
    }
    Ok(out)
}

pub(super) fn leaves(conn: &Connection, from: u64, limit: usize) -> StoreResult<Vec<LeafRecord>> {
    let mut stmt =
        conn.prepare("SELECT idx, leaf, hash, claims FROM audit_leaves WHERE idx >= ?1 ORDER BY idx LIMIT ?2").db()?;
    let rows = stmt
        .query_map(params![ns(from), i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, Vec<u8>>(3)?))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (index, leaf, hash, claims) = row.db()?;
        out.push(LeafRecord { index: unns(index), leaf, hash: hash32(&hash)?, claims });
    }
    Ok(out)
}

pub(super) fn leaf_of_batch(conn: &Connection, project: &str, batch_id: &[u8; 16]) -> StoreResult<Option<u64>> {
    let idx: Option<i64> = conn
        .query_row(
            "SELECT l.idx FROM audit_leaves l JOIN projects p ON p.id = l.project_id \
             WHERE p.name = ?1 AND l.batch_id = ?2",
            params![project, &batch_id[..]],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    Ok(idx.map(unns))
}

pub(super) fn leaves_of_trace(conn: &Connection, project: &str, trace_id: &[u8; 16]) -> StoreResult<Vec<u64>> {
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT s.leaf_index FROM spans s JOIN traces t ON t.id = s.trace_seq \
             JOIN projects p ON p.id = t.project_id \
             WHERE p.name = ?1 AND t.trace_id = ?2 AND s.leaf_index IS NOT NULL ORDER BY 1",
        )
        .db()?;
    let rows = stmt.query_map(params![project, &trace_id[..]], |r| r.get::<_, i64>(0)).db()?;
    rows.map(|r| r.db().map(unns)).collect()
}

pub(super) fn insert_checkpoint(conn: &Connection, c: &StoredCheckpoint) -> StoreResult<()> {
    conn.execute(
        "INSERT OR IGNORE INTO audit_checkpoints (size, root, signed_at_ns, note) VALUES (?1, ?2, ?3, ?4)",
        params![ns(c.size), &c.root[..], ns(c.signed_at_unix_nano), &c.note],
    )
    .db()?;
    Ok(())
}

const CHECKPOINT: &str = "SELECT size, root, signed_at_ns, note FROM audit_checkpoints";

fn checkpoint(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Vec<u8>, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_checkpoint((size, root, at, note): (i64, Vec<u8>, i64, String)) -> StoreResult<StoredCheckpoint> {
    Ok(StoredCheckpoint { size: unns(size), root: hash32(&root)?, signed_at_unix_nano: unns(at), note })
}

pub(super) fn latest_checkpoint(conn: &Connection) -> StoreResult<Option<StoredCheckpoint>> {
    let row = conn.query_row(&format!("{CHECKPOINT} ORDER BY size DESC LIMIT 1"), [], checkpoint).optional().db()?;
    row.map(to_checkpoint).transpose()
}

pub(super) fn checkpoints(conn: &Connection, from_size: u64, limit: usize) -> StoreResult<Vec<StoredCheckpoint>> {
    let mut stmt = conn.prepare(&format!("{CHECKPOINT} WHERE size >= ?1 ORDER BY size LIMIT ?2")).db()?;
    let rows = stmt.query_map(params![ns(from_size), i64::try_from(limit).unwrap_or(i64::MAX)], checkpoint).db()?;
    rows.map(|r| r.db().and_then(to_checkpoint)).collect()
}

pub(super) fn batch_sequences(
    conn: &Connection,
    project: &str,
    after_instance: Option<[u8; 8]>,
    limit: usize,
) -> StoreResult<Vec<BatchSeq>> {
    let mut stmt = conn
        .prepare(
            "SELECT b.instance_id, b.sequence, b.batch_id, b.sdk_name, b.sdk_version, b.service, b.created_at_ns, \
             b.received_at_ns FROM batches b JOIN projects p ON p.id = b.project_id \
             WHERE p.name = ?1 AND b.instance_id > ?2 ORDER BY b.instance_id, b.sequence LIMIT ?3",
        )
        .db()?;
    let after = after_instance.map_or_else(Vec::new, |i| i.to_vec());
    let rows = stmt
        .query_map(params![project, after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (instance, sequence, batch, sdk_name, sdk_version, service, created, received) = row.db()?;
        out.push(BatchSeq {
            instance_id: instance
                .try_into()
                .map_err(|_| StoreError::Corrupt("an instance id is not 8 bytes".into()))?,
            sequence: unns(sequence),
            batch_id: batch.try_into().map_err(|_| StoreError::Corrupt("a batch id is not 16 bytes".into()))?,
            sdk_name,
            sdk_version,
            service,
            created_at_unix_nano: unns(created),
            received_at_unix_nano: unns(received),
        });
    }
    Ok(out)
}

pub(super) fn rows(conn: &Connection, project: &str, keys: &[([u8; 16], [u8; 8])]) -> StoreResult<Vec<RowLookup>> {
    let mut trace = conn
        .prepare(
            "SELECT t.id FROM traces t JOIN projects p ON p.id = t.project_id WHERE p.name = ?1 AND t.trace_id = ?2",
        )
        .db()?;
    let mut span = conn
        .prepare(
            "SELECT leaf_index, parent_span_id, name, service, kind, start_ns, end_ns, duration_ns, status, body, \
             resource_id FROM spans WHERE trace_seq = ?1 AND span_id = ?2",
        )
        .db()?;
    let mut out = Vec::with_capacity(keys.len());
    let mut last: Option<([u8; 16], Option<i64>)> = None;
    for (trace_id, span_id) in keys {
        let seq = match &last {
            Some((t, seq)) if t == trace_id => *seq,
            _ => {
                let seq: Option<i64> =
                    trace.query_row(params![project, &trace_id[..]], |r| r.get(0)).optional().db()?;
                last = Some((*trace_id, seq));
                seq
            }
        };
        let Some(seq) = seq else {
            out.push(RowLookup::TraceGone);
            continue;
        };
        let row = span
            .query_row(params![seq, &span_id[..]], |r| {
                Ok(RowRecord {
                    leaf_index: r.get::<_, Option<i64>>(0)?.map(unns),
                    parent_span_id: r.get(1)?,
                    name: r.get(2)?,
                    service: r.get(3)?,
                    kind: r.get(4)?,
                    start_ns: r.get(5)?,
                    end_ns: r.get(6)?,
                    duration_ns: r.get(7)?,
                    status: r.get(8)?,
                    body: r.get(9)?,
                    resource_id: r.get(10)?,
                })
            })
            .optional()
            .db()?;
        out.push(row.map_or(RowLookup::SpanGone, RowLookup::Found));
    }
    Ok(out)
}

pub(super) fn resource(conn: &Connection, id: i64) -> StoreResult<Option<([u8; 32], Vec<u8>)>> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row("SELECT hash, body FROM resources WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    row.map(|(h, b)| Ok((hash32(&h)?, b))).transpose()
}

pub(super) fn span_totals(conn: &Connection) -> StoreResult<(u64, u64)> {
    let (all, logged): (i64, i64) =
        conn.query_row("SELECT count(*), count(leaf_index) FROM spans", [], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
    Ok((unns(all), unns(logged)))
}

pub(super) fn scan_rows(conn: &Connection, after: Option<(i64, [u8; 8])>, limit: usize) -> StoreResult<Vec<RowKey>> {
    let (seq, span) = after.map_or((-1, Vec::new()), |(s, id)| (s, id.to_vec()));
    let mut stmt = conn
        .prepare(
            "SELECT s.trace_seq, p.name, t.trace_id, s.span_id, s.leaf_index FROM spans s \
             LEFT JOIN traces t ON t.id = s.trace_seq LEFT JOIN projects p ON p.id = t.project_id \
             WHERE (s.trace_seq, s.span_id) > (?1, ?2) ORDER BY s.trace_seq, s.span_id LIMIT ?3",
        )
        .db()?;
    let rows = stmt
        .query_map(params![seq, span, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (trace_seq, project, trace_id, span_id, leaf) = row.db()?;
        out.push(RowKey {
            trace_seq,
            project: project.unwrap_or_default(),
            trace_id: trace_id.and_then(|t| t.try_into().ok()).unwrap_or([0; 16]),
            span_id: span_id.try_into().map_err(|_| StoreError::Corrupt("a span id is not 8 bytes".into()))?,
            leaf_index: leaf.map(unns),
        });
    }
    Ok(out)
}
