//! The audit log's reads and checkpoints (its appends are part of each commit, `commit.rs`).

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::client::{Db, block_on, get};
use crate::audit::gaps::BatchSeq;
use crate::audit::tree::{NodeId, Nodes};
use crate::audit::{LeafRecord, RowKey, RowLookup, RowRecord, StoredCheckpoint};
use crate::store::common::{hash32, ns, unns};
use crate::store::{StoreError, StoreResult};

pub(super) fn size(client: &Client) -> StoreResult<u64> {
    let row = block_on(client.query_typed_one("SELECT size FROM audit_head WHERE id = 1", &[])).db()?;
    Ok(unns(get(&row, 0)?))
}

/// The stored audit nodes named (level 0 from the leaves), in one round trip; absent ones are
/// left out.
pub(super) fn nodes(client: &Client, ids: &[NodeId]) -> StoreResult<Nodes> {
    let level: Vec<i32> = ids.iter().map(|(l, _)| i32::try_from(*l).unwrap_or(i32::MAX)).collect();
    let idx: Vec<i64> = ids.iter().map(|(_, i)| ns(*i)).collect();
    let rows = block_on(client.query_typed(
        "SELECT u.level, u.idx, coalesce(n.hash, l.hash) FROM UNNEST($1::int[], $2::bigint[]) AS u(level, idx) \
         LEFT JOIN audit_nodes n ON u.level > 0 AND n.level = u.level AND n.idx = u.idx \
         LEFT JOIN audit_leaves l ON u.level = 0 AND l.idx = u.idx \
         WHERE coalesce(n.hash, l.hash) IS NOT NULL",
        &[(&level, Type::INT4_ARRAY), (&idx, Type::INT8_ARRAY)],
    ))
    .db()?;
    let mut out = Nodes::with_capacity(rows.len());
    for row in rows {
        let level: i32 = get(&row, 0)?;
        let idx: i64 = get(&row, 1)?;
        out.insert((u32::try_from(level).unwrap_or(u32::MAX), unns(idx)), hash32(get(&row, 2)?)?);
    }
    Ok(out)
}

pub(super) fn leaves(client: &Client, from: u64, limit: usize) -> StoreResult<Vec<LeafRecord>> {
    let rows = block_on(client.query_typed(
        "SELECT idx, leaf, hash, claims FROM audit_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2",
        &[(&ns(from), Type::INT8), (&i64::try_from(limit).unwrap_or(i64::MAX), Type::INT8)],
    ))
    .db()?;
    rows.iter()
        .map(|r| {
            Ok(LeafRecord { index: unns(get(r, 0)?), leaf: get(r, 1)?, hash: hash32(get(r, 2)?)?, claims: get(r, 3)? })
        })
        .collect()
}

pub(super) fn leaf_of_batch(client: &Client, project: &str, batch_id: &[u8; 16]) -> StoreResult<Option<u64>> {
    let row = block_on(client.query_typed_opt(
        "SELECT l.idx FROM audit_leaves l JOIN projects p ON p.id = l.project_id WHERE p.name = $1 AND l.batch_id = $2",
        &[(&project, Type::TEXT), (&&batch_id[..], Type::BYTEA)],
    ))
    .db()?;
    row.map(|r| get::<i64>(&r, 0).map(unns)).transpose()
}

pub(super) fn leaves_of_trace(client: &Client, project: &str, trace_id: &[u8; 16]) -> StoreResult<Vec<u64>> {
    let rows = block_on(client.query_typed(
        "SELECT DISTINCT s.leaf_index FROM spans s JOIN traces t ON t.id = s.trace_seq \
         JOIN projects p ON p.id = t.project_id \
         WHERE p.name = $1 AND t.trace_id = $2 AND s.leaf_index IS NOT NULL ORDER BY 1",
        &[(&project, Type::TEXT), (&&trace_id[..], Type::BYTEA)],
    ))
    .db()?;
    rows.iter().map(|r| get::<i64>(r, 0).map(unns)).collect()
}

pub(super) fn insert_checkpoint(client: &Client, c: &StoredCheckpoint) -> StoreResult<()> {
    block_on(client.execute_typed(
        "INSERT INTO audit_checkpoints (size, root, signed_at_ns, note) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (size) DO NOTHING",
        &[
            (&ns(c.size), Type::INT8),
            (&&c.root[..], Type::BYTEA),
            (&ns(c.signed_at_unix_nano), Type::INT8),
            (&c.note, Type::TEXT),
        ],
    ))
    .db()
    .map(drop)
}

fn checkpoint(r: &Row) -> StoreResult<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        size: unns(get(r, 0)?),
        root: hash32(get(r, 1)?)?,
        signed_at_unix_nano: unns(get(r, 2)?),
        note: get(r, 3)?,
    })
}

pub(super) fn latest_checkpoint(client: &Client) -> StoreResult<Option<StoredCheckpoint>> {
    let row = block_on(client.query_typed_opt(
        "SELECT size, root, signed_at_ns, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        &[],
    ))
    .db()?;
    row.as_ref().map(checkpoint).transpose()
}

pub(super) fn checkpoints(client: &Client, from_size: u64, limit: usize) -> StoreResult<Vec<StoredCheckpoint>> {
    let rows = block_on(client.query_typed(
        "SELECT size, root, signed_at_ns, note FROM audit_checkpoints WHERE size >= $1 ORDER BY size LIMIT $2",
        &[(&ns(from_size), Type::INT8), (&i64::try_from(limit).unwrap_or(i64::MAX), Type::INT8)],
    ))
    .db()?;
    rows.iter().map(checkpoint).collect()
}

pub(super) fn batch_sequences(
    client: &Client,
    project: &str,
    after_instance: Option<[u8; 8]>,
    limit: usize,
) -> StoreResult<Vec<BatchSeq>> {
    let after = after_instance.map_or_else(Vec::new, |i| i.to_vec());
    let rows = block_on(client.query_typed(
        "SELECT b.instance_id, b.sequence, b.batch_id, b.sdk_name, b.sdk_version, b.service, b.created_at_ns, \
         b.received_at_ns FROM batches b JOIN projects p ON p.id = b.project_id \
         WHERE p.name = $1 AND b.instance_id > $2 ORDER BY b.instance_id, b.sequence LIMIT $3",
        &[(&project, Type::TEXT), (&after, Type::BYTEA), (&i64::try_from(limit).unwrap_or(i64::MAX), Type::INT8)],
    ))
    .db()?;
    rows.iter()
        .map(|r| {
            let instance: &[u8] = get(r, 0)?;
            let batch: &[u8] = get(r, 2)?;
            Ok(BatchSeq {
                instance_id: instance
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("an instance id is not 8 bytes".into()))?,
                sequence: unns(get(r, 1)?),
                batch_id: batch.try_into().map_err(|_| StoreError::Corrupt("a batch id is not 16 bytes".into()))?,
                sdk_name: get(r, 3)?,
                sdk_version: get(r, 4)?,
                service: get(r, 5)?,
                created_at_unix_nano: unns(get(r, 6)?),
                received_at_unix_nano: unns(get(r, 7)?),
            })
        })
        .collect()
}

pub(super) fn rows(client: &Client, project: &str, keys: &[([u8; 16], [u8; 8])]) -> StoreResult<Vec<RowLookup>> {
    let traces: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
    let spans: Vec<&[u8]> = keys.iter().map(|k| &k.1[..]).collect();
    // One round trip for the whole batch: `ord` keeps the answers in the keys' order.
    let rows = block_on(client.query_typed(
        "SELECT k.ord, t.id IS NOT NULL, s.span_id IS NOT NULL, s.leaf_index, s.parent_span_id, s.name, s.service, \
         s.kind, s.start_ns, s.end_ns, s.duration_ns, s.status, s.body, s.resource_id \
         FROM UNNEST($2::bytea[], $3::bytea[]) WITH ORDINALITY AS k(trace_id, span_id, ord) \
         LEFT JOIN traces t ON t.project_id = (SELECT id FROM projects WHERE name = $1) AND t.trace_id = k.trace_id \
         LEFT JOIN spans s ON s.trace_seq = t.id AND s.span_id = k.span_id ORDER BY k.ord",
        &[(&project, Type::TEXT), (&traces, Type::BYTEA_ARRAY), (&spans, Type::BYTEA_ARRAY)],
    ))
    .db()?;
    rows.iter()
        .map(|r| {
            let (trace, span): (bool, bool) = (get(r, 1)?, get(r, 2)?);
            if !trace {
                return Ok(RowLookup::TraceGone);
            }
            if !span {
                return Ok(RowLookup::SpanGone);
            }
            Ok(RowLookup::Found(RowRecord {
                leaf_index: get::<Option<i64>>(r, 3)?.map(unns),
                parent_span_id: get(r, 4)?,
                name: get(r, 5)?,
                service: get(r, 6)?,
                kind: get(r, 7)?,
                start_ns: get(r, 8)?,
                end_ns: get(r, 9)?,
                duration_ns: get(r, 10)?,
                status: get(r, 11)?,
                body: get(r, 12)?,
                resource_id: get(r, 13)?,
            }))
        })
        .collect()
}

pub(super) fn resource(client: &Client, id: i64) -> StoreResult<Option<([u8; 32], Vec<u8>)>> {
    let row = block_on(client.query_typed_opt("SELECT hash, body FROM resources WHERE id = $1", &[(&id, Type::INT8)]))
        .db()?;
    row.map(|r| Ok((hash32(get(&r, 0)?)?, get(&r, 1)?))).transpose()
}

pub(super) fn span_totals(client: &Client) -> StoreResult<(u64, u64)> {
    let row = block_on(client.query_typed_one("SELECT count(*), count(leaf_index) FROM spans", &[])).db()?;
    Ok((unns(get(&row, 0)?), unns(get(&row, 1)?)))
}

pub(super) fn scan_rows(client: &Client, after: Option<(i64, [u8; 8])>, limit: usize) -> StoreResult<Vec<RowKey>> {
    let (seq, span) = after.map_or((-1, Vec::new()), |(s, id)| (s, id.to_vec()));
    let rows = block_on(client.query_typed(
        "SELECT s.trace_seq, p.name, t.trace_id, s.span_id, s.leaf_index FROM spans s \
         LEFT JOIN traces t ON t.id = s.trace_seq LEFT JOIN projects p ON p.id = t.project_id \
         WHERE (s.trace_seq, s.span_id) > ($1, $2) ORDER BY s.trace_seq, s.span_id LIMIT $3",
        &[(&seq, Type::INT8), (&span, Type::BYTEA), (&i64::try_from(limit).unwrap_or(i64::MAX), Type::INT8)],
    ))
    .db()?;
    rows.iter()
        .map(|r| {
            let trace: Option<&[u8]> = get(r, 2)?;
            let span: &[u8] = get(r, 3)?;
            Ok(RowKey {
                trace_seq: get(r, 0)?,
                project: get::<Option<String>>(r, 1)?.unwrap_or_default(),
                trace_id: trace.and_then(|t| t.try_into().ok()).unwrap_or([0; 16]),
                span_id: span.try_into().map_err(|_| StoreError::Corrupt("a span id is not 8 bytes".into()))?,
                leaf_index: get::<Option<i64>>(r, 4)?.map(unns),
            })
        })
        .collect()
}
