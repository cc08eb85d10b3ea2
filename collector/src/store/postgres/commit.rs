//! Commits: the shared commit plan ([`crate::store::plan::commit`]) executed as one transaction
//! of a handful of multi-row statements, retried on conflicts with a concurrent writer (see the
//! module docs of [`super`]).
//!
//! The span and attribute-index rows of traces new in the transaction go in by binary `COPY`: their
//! trace's sequence number was just handed out to this transaction, so no stored row can hold it
//! and `ON CONFLICT` has nothing to guard (and the plan passes each `(trace, span id)` once). Rows
//! of traces already stored take the `INSERT … ON CONFLICT DO NOTHING` path, so a span retried
//! into an existing trace is still stored once.

use std::collections::{HashMap, HashSet};
use std::pin::pin;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_sink::Sink as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::client::{Db, block_on, describe, get};
use super::{COMMIT_ATTEMPTS, PostgresStore, ROWS_PER_STATEMENT, Writer, partitions};
use crate::audit::tree::{NodeId, Nodes};
use crate::store::common::{ns, unns};
use crate::store::plan::commit::{
    AttrRow, AuditLeafRow, BatchKey, BatchRow, CommitSql, Committed, CounterRow, ResourceRow, SpanRow, TraceKey,
    TraceRow, run,
};
use crate::store::plan::stats::{StatKey, StatRow, StoredStat};
use crate::store::{CommitOutcome, NewBatch, StoreError, StoreResult};

/// Why a commit attempt failed.
enum CommitError {
    /// A conflict with a concurrent writer: try again.
    Retry(String),
    /// Anything else.
    Fatal(StoreError),
}

impl From<tokio_postgres::Error> for CommitError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            // A check violation can only be a partition's bound (the schema has no other check a
            // commit could break): a day's partition was attached while this transaction routed
            // a row of that day to the default partition. Tried again, the row goes to the day.
            Some(c)
                if *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::CHECK_VIOLATION =>
            {
                Self::Retry(describe(&e))
            }
            _ => Self::Fatal(StoreError::Database(describe(&e))),
        }
    }
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e)
    }
}

impl PostgresStore {
    /// Commits `batches`, retrying from the start on a conflict with a concurrent writer; the
    /// writer's cache learns the new ids once a transaction committed.
    pub(super) fn commit_with_retries(
        &self,
        client: &mut Client,
        writer: &mut Writer,
        batches: &[NewBatch],
    ) -> StoreResult<Vec<CommitOutcome>> {
        let mut attempt = 1;
        loop {
            let tx = block_on(client.transaction()).db()?;
            let planned = run(
                &mut Sql { tx: &tx, stored_seqs: HashSet::new() },
                &writer.cache,
                batches,
                self.tuning.max_spans_per_trace,
                self.tuning.audit_log,
                &self.fault,
            );
            let result = planned.and_then(|out| block_on(tx.commit()).map(|()| out).map_err(CommitError::from));
            match result {
                Ok(Committed { outcomes, ids }) => {
                    writer.cache.remember(ids);
                    return Ok(outcomes);
                }
                Err(CommitError::Retry(why)) if attempt < COMMIT_ATTEMPTS => {
                    tracing::info!(attempt, reason = %why, "commit conflicted with a concurrent writer; retrying");
                    attempt += 1;
                }
                Err(CommitError::Retry(why)) => {
                    return Err(StoreError::Database(format!("commit kept conflicting: {why}")));
                }
                Err(CommitError::Fatal(e)) => return Err(e),
            }
        }
    }
}

/// The plan's statements on one transaction: a handful of multi-row statements, never a round
/// trip per row (at most [`ROWS_PER_STATEMENT`] rows each, or one `COPY`).
struct Sql<'a> {
    tx: &'a Transaction<'a>,
    /// Sequence numbers of the traces [`CommitSql::existing_traces`] found stored. The plan gives
    /// every other trace it writes a number from [`CommitSql::new_trace_seqs`] in this transaction:
    /// rows of those cannot conflict with stored rows (see the module docs).
    stored_seqs: HashSet<i64>,
}

/// Bytes sent per `CopyData` message.
const COPY_CHUNK: usize = 1 << 20;

impl Sql<'_> {
    /// Runs `statement` (`COPY … FROM STDIN (FORMAT binary)`) with `data` ([`CopyRows`]); returns
    /// the rows copied.
    fn copy_in(&self, statement: &str, mut data: Bytes) -> Result<u64, CommitError> {
        let copied = block_on(async {
            let mut sink = pin!(self.tx.copy_in::<_, Bytes>(statement).await?);
            while !data.is_empty() {
                let chunk = data.split_to(data.len().min(COPY_CHUNK));
                std::future::poll_fn(|cx| sink.as_mut().poll_ready(cx)).await?;
                sink.as_mut().start_send(chunk)?;
            }
            sink.as_mut().finish().await
        })?;
        Ok(copied)
    }

    /// Appends rows of new traces to `spans` (see the module docs).
    fn copy_spans<'r>(&self, rows: impl Iterator<Item = &'r SpanRow<'r>>) -> Result<(), CommitError> {
        let mut copy = CopyRows::new(13);
        let mut n = 0;
        for r in rows {
            copy.row(&[
                (&r.trace_seq, Type::INT8),
                (&r.span_id(), Type::BYTEA),
                (&r.parent_span_id(), Type::BYTEA),
                (&&*r.span.name, Type::TEXT),
                (&r.service, Type::TEXT),
                (&r.kind(), Type::INT4),
                (&r.start_ns(), Type::INT8),
                (&r.end_ns(), Type::INT8),
                (&r.duration_ns(), Type::INT8),
                (&r.status(), Type::INT4),
                (&r.resource_id, Type::INT8),
                (&r.body, Type::BYTEA),
                (&r.leaf_index, Type::INT8),
            ])?;
            n += 1;
        }
        let copied = self.copy_in(
            "COPY spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, end_ns, duration_ns, \
             status, resource_id, body, leaf_index) FROM STDIN (FORMAT binary)",
            copy.finish(),
        )?;
        if copied != n {
            return Err(StoreError::Database(format!("COPY stored {copied} of {n} spans")).into());
        }
        Ok(())
    }

    /// Inserts span rows unless stored (`ON CONFLICT DO NOTHING`); says which ones were new.
    fn insert_new_spans(&self, rows: &[&SpanRow<'_>]) -> Result<Vec<bool>, CommitError> {
        let mut inserted = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let seq: Vec<i64> = chunk.iter().map(|r| r.trace_seq).collect();
            let sid: Vec<&[u8]> = chunk.iter().map(|r| r.span_id()).collect();
            let parent: Vec<Option<&[u8]>> = chunk.iter().map(|r| r.parent_span_id()).collect();
            let name: Vec<&str> = chunk.iter().map(|r| &*r.span.name).collect();
            let service: Vec<Option<&str>> = chunk.iter().map(|r| r.service).collect();
            let kind: Vec<i32> = chunk.iter().map(|r| r.kind()).collect();
            let start: Vec<i64> = chunk.iter().map(|r| r.start_ns()).collect();
            let end: Vec<i64> = chunk.iter().map(|r| r.end_ns()).collect();
            let duration: Vec<i64> = chunk.iter().map(|r| r.duration_ns()).collect();
            let status: Vec<i32> = chunk.iter().map(|r| r.status()).collect();
            let resource: Vec<i64> = chunk.iter().map(|r| r.resource_id).collect();
            let body_refs: Vec<&[u8]> = chunk.iter().map(|r| r.body).collect();
            let leaf: Vec<Option<i64>> = chunk.iter().map(|r| r.leaf_index).collect();
            let returned = block_on(self.tx.query_typed(
                "INSERT INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, end_ns, \
                 duration_ns, status, resource_id, body, leaf_index) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], $6::int[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::int[], $11::bigint[], $12::bytea[], $13::bigint[]) \
                 ON CONFLICT (trace_seq, span_id) DO NOTHING RETURNING trace_seq, span_id",
                &[
                    (&seq, Type::INT8_ARRAY),
                    (&sid, Type::BYTEA_ARRAY),
                    (&parent, Type::BYTEA_ARRAY),
                    (&name, Type::TEXT_ARRAY),
                    (&service, Type::TEXT_ARRAY),
                    (&kind, Type::INT4_ARRAY),
                    (&start, Type::INT8_ARRAY),
                    (&end, Type::INT8_ARRAY),
                    (&duration, Type::INT8_ARRAY),
                    (&status, Type::INT4_ARRAY),
                    (&resource, Type::INT8_ARRAY),
                    (&body_refs, Type::BYTEA_ARRAY),
                    (&leaf, Type::INT8_ARRAY),
                ],
            ))?;
            if returned.len() == chunk.len() {
                inserted.extend(std::iter::repeat_n(true, chunk.len()));
            } else {
                let mut done: HashSet<(i64, [u8; 8])> = HashSet::with_capacity(returned.len());
                for row in returned {
                    done.insert((get(&row, 0)?, id_of(get(&row, 1)?, "span id")?));
                }
                inserted.extend(chunk.iter().map(|r| done.contains(&(r.trace_seq, r.span.span_id.0))));
            }
        }
        Ok(inserted)
    }
}

/// Rows in PostgreSQL's binary `COPY` format.
struct CopyRows {
    buf: BytesMut,
    columns: i16,
}

impl CopyRows {
    fn new(columns: i16) -> Self {
        let mut buf = BytesMut::with_capacity(1 << 16);
        // Signature, flags (no OIDs), header extension length.
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0);
        buf.put_i32(0);
        Self { buf, columns }
    }

    /// One row: `values` in column order, each with its column's type.
    fn row(&mut self, values: &[(&(dyn ToSql + Sync), Type)]) -> Result<(), StoreError> {
        debug_assert_eq!(values.len(), usize::try_from(self.columns).unwrap_or(0));
        self.buf.put_i16(self.columns);
        for (value, ty) in values {
            // Each field is its length (-1 for NULL), then its bytes.
            let at = self.buf.len();
            self.buf.put_i32(0);
            let null = value
                .to_sql_checked(ty, &mut self.buf)
                .map_err(|e| StoreError::Database(format!("encoding a COPY row: {e}")))?;
            let len = match null {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.buf.len() - at - 4)
                    .map_err(|_| StoreError::Database("a COPY field over 2 GiB".into()))?,
            };
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

/// A `bytea` column as a fixed-size id.
fn id_of<const N: usize>(bytes: &[u8], what: &str) -> StoreResult<[u8; N]> {
    <[u8; N]>::try_from(bytes).map_err(|_| StoreError::Corrupt(format!("{what} of {} bytes", bytes.len())))
}

impl CommitSql for Sql<'_> {
    type Error = CommitError;

    fn project_ids(&mut self, names: &[&str]) -> Result<HashMap<String, i64>, CommitError> {
        let names: Vec<&str> = names.to_vec();
        block_on(self.tx.execute_typed(
            "INSERT INTO projects (name) SELECT * FROM UNNEST($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING",
            &[(&names, Type::TEXT_ARRAY)],
        ))?;
        let mut out = HashMap::with_capacity(names.len());
        for row in
            block_on(self.tx.query_typed(
                "SELECT name, id FROM projects WHERE name = ANY($1::text[])",
                &[(&names, Type::TEXT_ARRAY)],
            ))?
        {
            out.insert(get(&row, 0)?, get(&row, 1)?);
        }
        Ok(out)
    }

    fn insert_batches(&mut self, rows: &[BatchRow<'_>]) -> Result<Vec<bool>, CommitError> {
        let pid: Vec<i64> = rows.iter().map(|r| r.project_id).collect();
        let bid: Vec<&[u8]> = rows.iter().map(|r| &r.batch.batch_id[..]).collect();
        let kid: Vec<&[u8]> = rows.iter().map(|r| &r.batch.key_id[..]).collect();
        let iid: Vec<&[u8]> = rows.iter().map(|r| &r.batch.instance_id[..]).collect();
        let seq: Vec<i64> = rows.iter().map(|r| ns(r.batch.sequence)).collect();
        let sdk: Vec<&str> = rows.iter().map(|r| r.batch.sdk_name.as_str()).collect();
        let ver: Vec<&str> = rows.iter().map(|r| r.batch.sdk_version.as_str()).collect();
        let created: Vec<i64> = rows.iter().map(|r| ns(r.batch.created_at_unix_nano)).collect();
        let received: Vec<i64> = rows.iter().map(|r| ns(r.batch.received_at_unix_nano)).collect();
        let total: Vec<i64> = rows.iter().map(BatchRow::span_total).collect();
        let envelope: Vec<&[u8]> = rows.iter().map(|r| &r.batch.envelope_sha256[..]).collect();
        let service: Vec<Option<&str>> = rows.iter().map(BatchRow::service).collect();
        let returned = block_on(self.tx.query_typed(
            "INSERT INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, sdk_version, \
             created_at_ns, received_at_ns, span_count, envelope_sha256, service) \
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[], \
             $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[], $12::text[]) \
             ON CONFLICT (project_id, batch_id) DO NOTHING RETURNING project_id, batch_id",
            &[
                (&pid, Type::INT8_ARRAY),
                (&bid, Type::BYTEA_ARRAY),
                (&kid, Type::BYTEA_ARRAY),
                (&iid, Type::BYTEA_ARRAY),
                (&seq, Type::INT8_ARRAY),
                (&sdk, Type::TEXT_ARRAY),
                (&ver, Type::TEXT_ARRAY),
                (&created, Type::INT8_ARRAY),
                (&received, Type::INT8_ARRAY),
                (&total, Type::INT8_ARRAY),
                (&envelope, Type::BYTEA_ARRAY),
                (&service, Type::TEXT_ARRAY),
            ],
        ))?;
        let mut inserted: HashSet<BatchKey> = HashSet::with_capacity(returned.len());
        for row in returned {
            inserted.insert((get(&row, 0)?, id_of(get(&row, 1)?, "batch id")?));
        }
        Ok(rows.iter().map(|r| inserted.contains(&r.key())).collect())
    }

    fn stored_envelopes(&mut self, keys: &[BatchKey]) -> Result<HashMap<BatchKey, Option<Vec<u8>>>, CommitError> {
        let pid: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let bid: Vec<&[u8]> = keys.iter().map(|k| &k.1[..]).collect();
        let mut out = HashMap::with_capacity(keys.len());
        for row in block_on(self.tx.query_typed(
            "SELECT project_id, batch_id, envelope_sha256 FROM batches \
             WHERE (project_id, batch_id) IN (SELECT * FROM UNNEST($1::bigint[], $2::bytea[]))",
            &[(&pid, Type::INT8_ARRAY), (&bid, Type::BYTEA_ARRAY)],
        ))? {
            out.insert((get(&row, 0)?, id_of(get(&row, 1)?, "batch id")?), get(&row, 2)?);
        }
        Ok(out)
    }

    fn resource_ids(&mut self, rows: &[ResourceRow]) -> Result<HashMap<[u8; 32], i64>, CommitError> {
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.hash[..]).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body.as_slice()).collect();
        block_on(self.tx.execute_typed(
            "INSERT INTO resources (hash, body) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) ORDER BY 1 \
             ON CONFLICT (hash) DO NOTHING",
            &[(&hashes, Type::BYTEA_ARRAY), (&bodies, Type::BYTEA_ARRAY)],
        ))?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in block_on(self.tx.query_typed(
            "SELECT hash, id FROM resources WHERE hash = ANY($1::bytea[])",
            &[(&hashes, Type::BYTEA_ARRAY)],
        ))? {
            out.insert(id_of(get(&row, 0)?, "resource hash")?, get(&row, 1)?);
        }
        Ok(out)
    }

    fn existing_traces(&mut self, keys: &[TraceKey]) -> Result<Vec<Option<(i64, u64)>>, CommitError> {
        let mut out = vec![None; keys.len()];
        for (c, chunk) in keys.chunks(ROWS_PER_STATEMENT).enumerate() {
            let pid: Vec<i64> = chunk.iter().map(|k| k.0).collect();
            let tid: Vec<&[u8]> = chunk.iter().map(|k| &k.1[..]).collect();
            let rows = block_on(self.tx.query_typed(
                "SELECT u.n, t.id, t.span_count FROM UNNEST($1::bigint[], $2::bytea[]) \
                 WITH ORDINALITY AS u(project_id, trace_id, n) \
                 JOIN traces t ON t.project_id = u.project_id AND t.trace_id = u.trace_id",
                &[(&pid, Type::INT8_ARRAY), (&tid, Type::BYTEA_ARRAY)],
            ))?;
            for row in rows {
                let n: i64 = get(&row, 0)?;
                let slot = usize::try_from(n - 1)
                    .ok()
                    .filter(|n| *n < chunk.len())
                    .and_then(|n| out.get_mut(c * ROWS_PER_STATEMENT + n))
                    .ok_or_else(|| StoreError::Database("trace lookup out of range".into()))?;
                let seq: i64 = get(&row, 1)?;
                self.stored_seqs.insert(seq);
                *slot = Some((seq, unns(get(&row, 2)?)));
            }
        }
        Ok(out)
    }

    fn new_trace_seqs(&mut self, starts: &[u64]) -> Result<Vec<i64>, CommitError> {
        // The trace's day in the high bits picks its partition (see `super::partitions`).
        let days: Vec<i64> = starts.iter().map(|s| partitions::day_of(*s)).collect();
        let rows = block_on(self.tx.query_typed(
            &format!(
                "SELECT (u.day << {shift}) | (nextval('trace_seq') & {mask}) \
                 FROM UNNEST($1::bigint[]) WITH ORDINALITY AS u(day, n) ORDER BY u.n",
                shift = partitions::DAY_SHIFT,
                mask = partitions::COUNTER_MASK
            ),
            &[(&days, Type::INT8_ARRAY)],
        ))?;
        let mut seqs = Vec::with_capacity(rows.len());
        for row in rows {
            seqs.push(get::<i64>(&row, 0)?);
        }
        Ok(seqs)
    }

    fn insert_spans(&mut self, rows: &[SpanRow<'_>]) -> Result<Vec<bool>, CommitError> {
        // Rows of new traces are new (see the module docs); the others may be stored already.
        let mut inserted = vec![true; rows.len()];
        let stored: Vec<usize> = (0..rows.len()).filter(|i| self.stored_seqs.contains(&rows[*i].trace_seq)).collect();
        if stored.len() < rows.len() {
            self.copy_spans(rows.iter().filter(|r| !self.stored_seqs.contains(&r.trace_seq)))?;
        }
        if !stored.is_empty() {
            let checked: Vec<&SpanRow<'_>> = stored.iter().map(|i| &rows[*i]).collect();
            for (i, ok) in stored.iter().zip(self.insert_new_spans(&checked)?) {
                inserted[*i] = ok;
            }
        }
        Ok(inserted)
    }

    fn insert_traces(&mut self, rows: &[TraceRow<'_>]) -> Result<(), CommitError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let c = TraceColumns::of(chunk);
            let pid: Vec<i64> = chunk.iter().map(|t| t.project_id).collect();
            let tid: Vec<&[u8]> = chunk.iter().map(|t| &t.trace_id[..]).collect();
            let n = block_on(self.tx.execute_typed(
                "INSERT INTO traces (id, project_id, trace_id, start_ns, end_ns, has_root, root_name, \
                 root_service, span_count, error_count, max_duration_ns) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], \
                 $6::bool[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[]) \
                 ON CONFLICT (project_id, trace_id) DO NOTHING",
                &[
                    (&c.id, Type::INT8_ARRAY),
                    (&pid, Type::INT8_ARRAY),
                    (&tid, Type::BYTEA_ARRAY),
                    (&c.start, Type::INT8_ARRAY),
                    (&c.end, Type::INT8_ARRAY),
                    (&c.has_root, Type::BOOL_ARRAY),
                    (&c.root_name, Type::TEXT_ARRAY),
                    (&c.root_service, Type::TEXT_ARRAY),
                    (&c.span_count, Type::INT8_ARRAY),
                    (&c.error_count, Type::INT8_ARRAY),
                    (&c.max_duration, Type::INT8_ARRAY),
                ],
            ))?;
            if n != chunk.len() as u64 {
                return Err(CommitError::Retry("a trace was created by a concurrent commit".into()));
            }
        }
        Ok(())
    }

    fn update_traces(&mut self, rows: &[TraceRow<'_>]) -> Result<(), CommitError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let c = TraceColumns::of(chunk);
            block_on(self.tx.execute_typed(
                "UPDATE traces t SET start_ns = LEAST(t.start_ns, u.start_ns), \
                 end_ns = GREATEST(t.end_ns, u.end_ns), \
                 root_name = CASE WHEN t.has_root THEN t.root_name ELSE u.root_name END, \
                 root_service = CASE WHEN t.has_root THEN t.root_service ELSE u.root_service END, \
                 has_root = t.has_root OR u.has_root, \
                 span_count = t.span_count + u.span_count, error_count = t.error_count + u.error_count, \
                 max_duration_ns = GREATEST(t.max_duration_ns, u.max_duration_ns) \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[], $5::text[], $6::text[], \
                 $7::bigint[], $8::bigint[], $9::bigint[]) \
                 AS u(id, start_ns, end_ns, has_root, root_name, root_service, span_count, error_count, \
                 max_duration_ns) \
                 WHERE t.id = u.id",
                &[
                    (&c.id, Type::INT8_ARRAY),
                    (&c.start, Type::INT8_ARRAY),
                    (&c.end, Type::INT8_ARRAY),
                    (&c.has_root, Type::BOOL_ARRAY),
                    (&c.root_name, Type::TEXT_ARRAY),
                    (&c.root_service, Type::TEXT_ARRAY),
                    (&c.span_count, Type::INT8_ARRAY),
                    (&c.error_count, Type::INT8_ARRAY),
                    (&c.max_duration, Type::INT8_ARRAY),
                ],
            ))?;
        }
        Ok(())
    }

    fn insert_trace_attrs(&mut self, rows: &mut [AttrRow]) -> Result<(), CommitError> {
        // The primary key's order, `(project_id, attr_hash, trace_seq)`.
        rows.sort_unstable();
        // Rows of new traces by COPY (see the module docs), the others unless stored.
        let (stored, fresh): (Vec<AttrRow>, Vec<AttrRow>) =
            rows.iter().partition(|(_, _, seq)| self.stored_seqs.contains(seq));
        if !fresh.is_empty() {
            let mut copy = CopyRows::new(3);
            for (pid, hash, seq) in &fresh {
                copy.row(&[(pid, Type::INT8), (hash, Type::INT8), (seq, Type::INT8)])?;
            }
            let copied = self.copy_in(
                "COPY trace_attrs (project_id, attr_hash, trace_seq) FROM STDIN (FORMAT binary)",
                copy.finish(),
            )?;
            if copied != fresh.len() as u64 {
                return Err(StoreError::Database(format!("COPY stored {copied} of {} index rows", fresh.len())).into());
            }
        }
        for chunk in stored.chunks(ROWS_PER_STATEMENT) {
            let pid: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let hash: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let seq: Vec<i64> = chunk.iter().map(|r| r.2).collect();
            block_on(self.tx.execute_typed(
                "INSERT INTO trace_attrs (project_id, attr_hash, trace_seq) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
                &[(&pid, Type::INT8_ARRAY), (&hash, Type::INT8_ARRAY), (&seq, Type::INT8_ARRAY)],
            ))?;
        }
        Ok(())
    }

    fn stored_stats(&mut self, keys: &[StatKey<'_>]) -> Result<Vec<Option<StoredStat>>, CommitError> {
        let mut out: Vec<Option<StoredStat>> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let base = out.len();
            out.extend(std::iter::repeat_with(|| None).take(chunk.len()));
            let c = StatKeyColumns::of(chunk.iter());
            // FOR UPDATE: a concurrent writer merging into the same rows waits for this commit
            // (keys come sorted, so writers lock in one order).
            let rows = block_on(self.tx.query_typed(
                "SELECT u.n, s.count, s.max_ns, s.last_start_ns, s.sketch FROM UNNEST($1::bigint[], $2::text[], \
                 $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[], $8::bigint[]) WITH ORDINALITY \
                 AS u(project_id, dim_key, minute, service, name, status, dim_value, resolution, n) \
                 JOIN span_stats s ON s.project_id = u.project_id AND s.dim_key = u.dim_key \
                 AND s.resolution = u.resolution AND s.minute = u.minute AND s.service = u.service \
                 AND s.name = u.name AND s.status = u.status AND s.dim_value = u.dim_value \
                 ORDER BY u.n FOR UPDATE OF s",
                &c.params_with_resolution(),
            ))?;
            for row in rows {
                let n: i64 = get(&row, 0)?;
                let slot = usize::try_from(n - 1)
                    .ok()
                    .filter(|n| *n < chunk.len())
                    .and_then(|n| out.get_mut(base + n))
                    .ok_or_else(|| StoreError::Database("statistics lookup out of range".into()))?;
                *slot = Some(StoredStat {
                    count: get(&row, 1)?,
                    max_ns: get(&row, 2)?,
                    last_start_ns: get(&row, 3)?,
                    sketch: get(&row, 4)?,
                });
            }
        }
        Ok(out)
    }

    fn insert_stats(&mut self, rows: &[StatRow<'_>]) -> Result<(), CommitError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let c = StatKeyColumns::of(chunk.iter().map(|r| &r.key));
            let v = StatValueColumns::of(chunk);
            let mut params = c.params();
            params.extend(v.params());
            params.push((&c.resolution, Type::INT8_ARRAY));
            let n = block_on(self.tx.execute_typed(
                "INSERT INTO span_stats (project_id, dim_key, minute, service, name, status, dim_value, count, \
                 max_ns, last_start_ns, sketch, resolution) SELECT * FROM UNNEST($1::bigint[], $2::text[], \
                 $3::bigint[], $4::text[], $5::text[], $6::int[], $7::text[], $8::bigint[], $9::bigint[], \
                 $10::bigint[], $11::bytea[], $12::bigint[]) ON CONFLICT DO NOTHING",
                &params,
            ))?;
            if n != chunk.len() as u64 {
                return Err(CommitError::Retry("a statistics row was created by a concurrent commit".into()));
            }
        }
        Ok(())
    }

    fn update_stats(&mut self, rows: &[StatRow<'_>]) -> Result<(), CommitError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let c = StatKeyColumns::of(chunk.iter().map(|r| &r.key));
            let v = StatValueColumns::of(chunk);
            let mut params = c.params();
            params.extend(v.params());
            params.push((&c.resolution, Type::INT8_ARRAY));
            block_on(self.tx.execute_typed(
                "UPDATE span_stats s SET count = u.count, max_ns = u.max_ns, last_start_ns = u.last_start_ns, \
                 sketch = u.sketch FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                 $6::int[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[], $12::bigint[]) \
                 AS u(project_id, dim_key, minute, service, name, status, dim_value, count, max_ns, \
                 last_start_ns, sketch, resolution) \
                 WHERE s.project_id = u.project_id AND s.dim_key = u.dim_key AND s.minute = u.minute \
                 AND s.resolution = u.resolution \
                 AND s.service = u.service AND s.name = u.name AND s.status = u.status \
                 AND s.dim_value = u.dim_value",
                &params,
            ))?;
        }
        Ok(())
    }

    fn add_to_counters(&mut self, rows: &[CounterRow]) -> Result<(), CommitError> {
        let pid: Vec<i64> = rows.iter().map(|c| c.0).collect();
        let spans: Vec<i64> = rows.iter().map(|c| c.1).collect();
        let batches: Vec<i64> = rows.iter().map(|c| c.2).collect();
        block_on(self.tx.execute_typed(
            "UPDATE projects p SET span_count = p.span_count + u.spans, batch_count = p.batch_count + u.batches \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, spans, batches) WHERE p.id = u.id",
            &[(&pid, Type::INT8_ARRAY), (&spans, Type::INT8_ARRAY), (&batches, Type::INT8_ARRAY)],
        ))?;
        Ok(())
    }

    fn audit_size(&mut self) -> Result<u64, CommitError> {
        // The head row is the log's lock: concurrent writers take leaf indexes one after another,
        // and hold it from here to their commit (the spans, statistics and leaves that follow).
        let row = block_on(self.tx.query_typed_one("SELECT size FROM audit_head WHERE id = 1 FOR UPDATE", &[]))?;
        Ok(unns(get(&row, 0)?))
    }

    fn audit_nodes(&mut self, ids: &[NodeId]) -> Result<Nodes, CommitError> {
        Ok(super::audit::nodes(self.tx.client(), ids)?)
    }

    fn append_audit(
        &mut self,
        leaves: &[AuditLeafRow],
        nodes: &[(NodeId, [u8; 32])],
        new_size: u64,
    ) -> Result<(), CommitError> {
        for chunk in leaves.chunks(ROWS_PER_STATEMENT) {
            let idx: Vec<i64> = chunk.iter().map(|l| l.index).collect();
            let pid: Vec<i64> = chunk.iter().map(|l| l.project_id).collect();
            let bid: Vec<&[u8]> = chunk.iter().map(|l| &l.batch_id[..]).collect();
            let leaf: Vec<&[u8]> = chunk.iter().map(|l| &l.leaf[..]).collect();
            let hash: Vec<&[u8]> = chunk.iter().map(|l| &l.hash[..]).collect();
            let claims: Vec<&[u8]> = chunk.iter().map(|l| &l.claims[..]).collect();
            block_on(self.tx.execute_typed(
                "INSERT INTO audit_leaves (idx, project_id, batch_id, leaf, hash, claims) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])",
                &[
                    (&idx, Type::INT8_ARRAY),
                    (&pid, Type::INT8_ARRAY),
                    (&bid, Type::BYTEA_ARRAY),
                    (&leaf, Type::BYTEA_ARRAY),
                    (&hash, Type::BYTEA_ARRAY),
                    (&claims, Type::BYTEA_ARRAY),
                ],
            ))?;
        }
        for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
            let level: Vec<i32> = chunk.iter().map(|((l, _), _)| i32::try_from(*l).unwrap_or(i32::MAX)).collect();
            let idx: Vec<i64> = chunk.iter().map(|((_, i), _)| ns(*i)).collect();
            let hash: Vec<&[u8]> = chunk.iter().map(|(_, h)| &h[..]).collect();
            block_on(self.tx.execute_typed(
                "INSERT INTO audit_nodes (level, idx, hash) SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::bytea[])",
                &[(&level, Type::INT4_ARRAY), (&idx, Type::INT8_ARRAY), (&hash, Type::BYTEA_ARRAY)],
            ))?;
        }
        block_on(
            self.tx.execute_typed("UPDATE audit_head SET size = $1 WHERE id = 1", &[(&ns(new_size), Type::INT8)]),
        )?;
        Ok(())
    }
}

/// The columns `traces` inserts and updates share, for one chunk of rows.
struct TraceColumns<'a> {
    id: Vec<i64>,
    start: Vec<i64>,
    end: Vec<i64>,
    has_root: Vec<bool>,
    root_name: Vec<Option<&'a str>>,
    root_service: Vec<Option<&'a str>>,
    span_count: Vec<i64>,
    error_count: Vec<i64>,
    max_duration: Vec<i64>,
}

impl<'a> TraceColumns<'a> {
    fn of(rows: &'a [TraceRow<'a>]) -> Self {
        Self {
            id: rows.iter().map(|t| t.seq).collect(),
            start: rows.iter().map(|t| t.start).collect(),
            end: rows.iter().map(|t| t.end).collect(),
            has_root: rows.iter().map(TraceRow::has_root).collect(),
            root_name: rows.iter().map(TraceRow::root_name).collect(),
            root_service: rows.iter().map(TraceRow::root_service).collect(),
            span_count: rows.iter().map(|t| t.spans).collect(),
            error_count: rows.iter().map(|t| t.errors).collect(),
            max_duration: rows.iter().map(|t| t.max_duration).collect(),
        }
    }
}

/// The key columns of statistics rows, for one chunk.
struct StatKeyColumns<'a> {
    project_id: Vec<i64>,
    dim_key: Vec<&'a str>,
    minute: Vec<i64>,
    service: Vec<&'a str>,
    name: Vec<&'a str>,
    status: Vec<i32>,
    dim_value: Vec<&'a str>,
    resolution: Vec<i64>,
}

impl<'a> StatKeyColumns<'a> {
    fn of<'k: 'a>(keys: impl Iterator<Item = &'a StatKey<'k>> + Clone) -> Self {
        Self {
            project_id: keys.clone().map(|k| k.project_id).collect(),
            dim_key: keys.clone().map(|k| k.dim_key).collect(),
            minute: keys.clone().map(|k| k.minute).collect(),
            service: keys.clone().map(|k| k.service).collect(),
            name: keys.clone().map(|k| k.name).collect(),
            status: keys.clone().map(|k| k.status).collect(),
            dim_value: keys.clone().map(|k| &*k.dim_value).collect(),
            resolution: keys.map(|k| k.resolution).collect(),
        }
    }

    fn params(&self) -> Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> {
        vec![
            (&self.project_id, Type::INT8_ARRAY),
            (&self.dim_key, Type::TEXT_ARRAY),
            (&self.minute, Type::INT8_ARRAY),
            (&self.service, Type::TEXT_ARRAY),
            (&self.name, Type::TEXT_ARRAY),
            (&self.status, Type::INT4_ARRAY),
            (&self.dim_value, Type::TEXT_ARRAY),
        ]
    }

    /// [`Self::params`], then the resolutions.
    fn params_with_resolution(&self) -> Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> {
        let mut p = self.params();
        p.push((&self.resolution, Type::INT8_ARRAY));
        p
    }
}

/// The value columns of statistics rows, for one chunk.
struct StatValueColumns<'a> {
    count: Vec<i64>,
    max_ns: Vec<i64>,
    last_start_ns: Vec<i64>,
    sketch: Vec<&'a [u8]>,
}

impl<'a> StatValueColumns<'a> {
    fn of(rows: &'a [StatRow<'_>]) -> Self {
        Self {
            count: rows.iter().map(|r| r.stat.count).collect(),
            max_ns: rows.iter().map(|r| r.stat.max_ns).collect(),
            last_start_ns: rows.iter().map(|r| r.stat.last_start_ns).collect(),
            sketch: rows.iter().map(|r| r.stat.sketch.as_slice()).collect(),
        }
    }

    fn params(&self) -> Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> {
        vec![
            (&self.count, Type::INT8_ARRAY),
            (&self.max_ns, Type::INT8_ARRAY),
            (&self.last_start_ns, Type::INT8_ARRAY),
            (&self.sketch, Type::BYTEA_ARRAY),
        ]
    }
}
