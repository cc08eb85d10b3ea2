//! Commits: the shared commit plan ([`crate::store::plan::commit`]) executed as one `BEGIN
//! IMMEDIATE` transaction. Rows that cannot be there yet (spans and trace rows of new traces) and
//! attribute index rows go in as multi-row `INSERT`s bound without copies ([`super::bulk`]); the
//! rest are single-row statements (in-process calls: no round trips to save, only the statement's
//! own per-execution work).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::bulk::{Insert, Statements, insert_many, insert_many_then, values};
use super::{Db, SqliteStore, Writer, attr_sets};
use crate::audit::tree::{NodeId, Nodes};
use crate::store::common::{ns, unns};
use crate::store::plan::commit::{
    AttrRow, AuditLeafRow, BatchKey, BatchRow, CommitSql, CounterRow, ResourceRow, SpanRow, TraceKey, TraceRow, run,
};
use crate::store::plan::stats::{StatKey, StatRow, StoredStat};
use crate::store::{CommitOutcome, NewBatch, StoreError, StoreResult};

impl SqliteStore {
    /// Commits `batches` in one transaction; the writer's cache learns the new ids once it committed.
    pub(super) fn commit_in(&self, writer: &mut Writer, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>> {
        let Writer { statements, conn, cache, max_trace_ids } = writer;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        let committed = run(
            &mut Sql { conn: &tx, statements, stored_seqs: HashSet::new(), max_trace_ids, next_seq: None },
            cache,
            batches,
            self.tuning.max_spans_per_trace,
            self.tuning.audit_log,
            &self.fault,
        )?;
        tx.commit().db()?;
        cache.remember(committed.ids);
        Ok(committed.outcomes)
    }
}

/// `insert_traces` on its own transaction, as a commit whose `new_trace_seqs` started at
/// `next_seq` would call it (tests of both of its statements).
#[cfg(test)]
pub(super) fn insert_traces_alone(
    writer: &mut Writer,
    next_seq: Option<i64>,
    rows: &[TraceRow<'_>],
) -> StoreResult<()> {
    let Writer { statements, conn, max_trace_ids, .. } = writer;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    Sql { conn: &tx, statements, stored_seqs: HashSet::new(), max_trace_ids, next_seq }.insert_traces(rows)?;
    tx.commit().db()
}

/// The plan's statements on the writer's transaction.
struct Sql<'a> {
    conn: &'a Connection,
    /// The multi-row statements, kept prepared between commits.
    statements: &'a mut Statements,
    /// Sequence numbers of the traces `existing_traces` found: only their spans may be stored already.
    stored_seqs: HashSet<i64>,
    /// The writer's bound on stored trace ids per project (see `Writer::max_trace_ids`).
    max_trace_ids: &'a mut HashMap<i64, Option<Vec<u8>>>,
    /// The first sequence number `new_trace_seqs` handed out: the table's largest id + 1.
    next_seq: Option<i64>,
}

impl CommitSql for Sql<'_> {
    type Error = StoreError;

    fn project_ids(&mut self, names: &[&str]) -> StoreResult<HashMap<String, i64>> {
        let mut insert =
            self.conn.prepare("INSERT INTO projects (name) VALUES (?1) ON CONFLICT (name) DO NOTHING").db()?;
        let mut select = self.conn.prepare("SELECT id FROM projects WHERE name = ?1").db()?;
        let mut out = HashMap::with_capacity(names.len());
        for name in names {
            insert.execute([name]).db()?;
            out.insert((*name).to_owned(), select.query_row([name], |r| r.get(0)).db()?);
        }
        Ok(out)
    }

    fn insert_batches(&mut self, rows: &[BatchRow<'_>]) -> StoreResult<Vec<bool>> {
        let mut insert = self
            .conn
            .prepare(
                "INSERT OR IGNORE INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, \
                 sdk_version, created_at_ns, received_at_ns, span_count, envelope_sha256, service) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .db()?;
        rows.iter()
            .map(|r| {
                let b = r.batch;
                let n = insert
                    .execute(params![
                        r.project_id,
                        &b.batch_id[..],
                        &b.key_id[..],
                        &b.instance_id[..],
                        ns(b.sequence),
                        &b.sdk_name,
                        &b.sdk_version,
                        ns(b.created_at_unix_nano),
                        ns(b.received_at_unix_nano),
                        r.span_total(),
                        &b.envelope_sha256[..],
                        r.service(),
                    ])
                    .db()?;
                Ok(n == 1)
            })
            .collect()
    }

    fn stored_envelopes(&mut self, keys: &[BatchKey]) -> StoreResult<HashMap<BatchKey, Option<Vec<u8>>>> {
        let mut select =
            self.conn.prepare("SELECT envelope_sha256 FROM batches WHERE project_id = ?1 AND batch_id = ?2").db()?;
        let mut out = HashMap::with_capacity(keys.len());
        for key in keys {
            out.insert(*key, select.query_row(params![key.0, &key.1[..]], |r| r.get(0)).db()?);
        }
        Ok(out)
    }

    fn resource_ids(&mut self, rows: &[ResourceRow]) -> StoreResult<HashMap<[u8; 32], i64>> {
        let mut insert = self.conn.prepare("INSERT OR IGNORE INTO resources (hash, body) VALUES (?1, ?2)").db()?;
        let mut select = self.conn.prepare("SELECT id FROM resources WHERE hash = ?1").db()?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            insert.execute(params![&r.hash[..], &r.body]).db()?;
            out.insert(r.hash, select.query_row([&r.hash[..]], |r| r.get(0)).db()?);
        }
        Ok(out)
    }

    fn existing_traces(&mut self, keys: &[TraceKey]) -> StoreResult<Vec<Option<(i64, u64)>>> {
        let conn = self.conn;
        // Once per run of one project's keys (a map lookup a key was 140 instructions a trace).
        let mut last = None;
        for k in keys {
            if last == Some(k.0) {
                continue;
            }
            last = Some(k.0);
            if let Entry::Vacant(e) = self.max_trace_ids.entry(k.0) {
                e.insert(
                    conn.query_row("SELECT max(trace_id) FROM traces WHERE project_id = ?1", [k.0], |r| r.get(0))
                        .db()?,
                );
            }
        }
        // Every key is compared with the bound as this commit found it: the keys are distinct and
        // none is stored before this returns. (Raised key by key, the bound would send most keys
        // to the index: ids of one millisecond are random after their time prefix.) BLOBs compare
        // as byte slices do (`memcmp`, then the shorter first). The bound is looked up once per
        // run of one project's keys, and raised once per project, to its largest key: by key, a
        // one-span trace cost three map lookups and a copy of its id (293 instructions, callgrind).
        let above: Vec<bool> = {
            let mut bound: Option<(i64, Option<Option<&[u8]>>)> = None;
            keys.iter()
                .map(|k| {
                    let b = match bound {
                        Some((project, b)) if project == k.0 => b,
                        _ => {
                            let b = self.max_trace_ids.get(&k.0).map(|b| b.as_deref());
                            bound = Some((k.0, b));
                            b
                        }
                    };
                    b.is_some_and(|b| b.is_none_or(|b| &k.1[..] > b))
                })
                .collect()
        };
        let mut select =
            conn.prepare("SELECT id, span_count FROM traces WHERE project_id = ?1 AND trace_id = ?2").db()?;
        let mut out = Vec::with_capacity(keys.len());
        for (k, above) in keys.iter().zip(&above) {
            if *above {
                out.push(None);
                continue;
            }
            let found: Option<(i64, i64)> =
                select.query_row(params![k.0, &k.1[..]], |r| Ok((r.get(0)?, r.get(1)?))).optional().db()?;
            out.push(found.map(|(seq, count)| {
                self.stored_seqs.insert(seq);
                (seq, unns(count))
            }));
        }
        let mut raised: Vec<(i64, &[u8; 16])> = Vec::new();
        for (k, _) in keys.iter().zip(&above).filter(|(_, above)| **above) {
            match raised.iter_mut().find(|(project, _)| *project == k.0) {
                Some(r) => r.1 = r.1.max(&k.1),
                None => raised.push((k.0, &k.1)),
            }
        }
        for (project, id) in raised {
            self.max_trace_ids.insert(project, Some(id.to_vec()));
        }
        Ok(out)
    }

    fn new_trace_seqs(&mut self, starts: &[u64]) -> StoreResult<Vec<i64>> {
        // The writer is the only one: sequence numbers are handed out here, so spans can be keyed
        // by them before the trace's row is written.
        let next: i64 = self.conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM traces", [], |r| r.get(0)).db()?;
        self.next_seq = Some(next);
        Ok((next..).take(starts.len()).collect())
    }

    fn insert_spans(&mut self, rows: &[SpanRow<'_>]) -> StoreResult<Vec<bool>> {
        const COLUMNS: &str = "INSERT OR IGNORE INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, \
                               end_ns, duration_ns, status, resource_id, body, leaf_index) VALUES ";
        fn bind<'a>(stmt: &mut Insert<'_, 'a>, r: &'a SpanRow<'_>, at: usize) {
            stmt.int(at, r.trace_seq);
            stmt.blob(at + 1, Some(r.span_id()));
            stmt.blob(at + 2, r.parent_span_id());
            stmt.text(at + 3, Some(&r.span.name));
            stmt.text(at + 4, r.service);
            stmt.int(at + 5, i64::from(r.kind()));
            stmt.int(at + 6, r.start_ns());
            stmt.int(at + 7, r.end_ns());
            stmt.int(at + 8, r.duration_ns());
            stmt.int(at + 9, i64::from(r.status()));
            stmt.int(at + 10, r.resource_id);
            stmt.blob(at + 11, Some(r.body));
            match r.leaf_index {
                Some(leaf) => stmt.int(at + 12, leaf),
                None => stmt.null(at + 12),
            }
        }
        // Spans of traces new in this transaction cannot be stored yet (the plan inserts the first
        // copy of each `(trace, span id)` only): many rows a statement, and a row not inserted is
        // an error (`OR IGNORE` all the same: see `insert_many`). Those of traces stored before
        // may be retries: one statement each, whose change count says whether it was new.
        let fresh: Vec<&SpanRow<'_>> = rows.iter().filter(|r| !self.stored_seqs.contains(&r.trace_seq)).collect();
        let n = insert_many(self.conn, self.statements, COLUMNS, 13, &fresh, |stmt, r, at| bind(stmt, r, at))?;
        if n != fresh.len() {
            return Err(StoreError::Corrupt(format!("{} of {} spans of new traces were inserted", n, fresh.len())));
        }
        let mut inserted = vec![true; rows.len()];
        if fresh.len() < rows.len() {
            let mut insert = Insert::prepare(self.conn, &format!("{COLUMNS}{}", values(13, 1)))?;
            for (ok, r) in inserted.iter_mut().zip(rows) {
                if self.stored_seqs.contains(&r.trace_seq) {
                    bind(&mut insert, r, 1);
                    *ok = insert.execute()? == 1;
                }
            }
        }
        Ok(inserted)
    }

    fn insert_traces(&mut self, rows: &[TraceRow<'_>]) -> StoreResult<()> {
        fn bind<'a>(stmt: &mut Insert<'_, 'a>, t: &'a TraceRow<'_>, at: usize) {
            stmt.int(at, t.project_id);
            stmt.blob(at + 1, Some(&t.trace_id));
            stmt.int(at + 2, t.start);
            stmt.int(at + 3, t.end);
            stmt.int(at + 4, i64::from(t.has_root()));
            stmt.text(at + 5, t.root_name());
            stmt.text(at + 6, t.root_service());
            stmt.int(at + 7, t.spans);
            stmt.int(at + 8, t.errors);
            stmt.int(at + 9, t.max_duration);
        }
        const COLUMNS: &str = "project_id, trace_id, start_ns, end_ns, has_root, root_name, root_service, span_count, \
                               error_count, max_duration_ns";
        // Rows whose sequence numbers run on from the table's largest id, as `new_trace_seqs`
        // hands them out (every commit's, unless a new trace stored no span), go in without their
        // `id`: SQLite gives each the largest rowid + 1, the same numbers. An explicit `INTEGER
        // PRIMARY KEY` may fail its integer check, so SQLite keeps a statement journal for such a
        // multi-row INSERT (a copy of every page it touches, to undo it alone): the insert took
        // 11,200 instructions a one-span trace with it, 9,440 without (callgrind, `--bench
        // store`). The last id is checked all the same.
        let runs_on = self.next_seq.is_some_and(|next| {
            rows.first().is_some_and(|r| r.seq == next) && rows.windows(2).all(|w| w[1].seq == w[0].seq + 1)
        });
        let n = if runs_on {
            let n = insert_many(
                self.conn,
                self.statements,
                &format!("INSERT OR IGNORE INTO traces ({COLUMNS}) VALUES "),
                10,
                rows,
                bind,
            )?;
            let last = rows.last().map_or(0, |r| r.seq);
            if n == rows.len() && self.conn.last_insert_rowid() != last {
                return Err(StoreError::Database(format!(
                    "new trace rows were given ids up to {}, not {last}",
                    self.conn.last_insert_rowid()
                )));
            }
            n
        } else {
            insert_many(
                self.conn,
                self.statements,
                &format!("INSERT OR IGNORE INTO traces (id, {COLUMNS}) VALUES "),
                11,
                rows,
                |stmt, t, at| {
                    stmt.int(at, t.seq);
                    bind(stmt, t, at + 1);
                },
            )?
        };
        if n != rows.len() {
            return Err(StoreError::Database(format!("{n} of {} new trace rows were inserted", rows.len())));
        }
        Ok(())
    }

    fn update_traces(&mut self, rows: &[TraceRow<'_>]) -> StoreResult<()> {
        let mut update = self
            .conn
            .prepare(
                "UPDATE traces SET start_ns = min(start_ns, ?2), end_ns = max(end_ns, ?3), \
                 root_name = CASE WHEN has_root THEN root_name ELSE ?5 END, \
                 root_service = CASE WHEN has_root THEN root_service ELSE ?6 END, \
                 has_root = max(has_root, ?4), span_count = span_count + ?7, error_count = error_count + ?8, \
                 max_duration_ns = max(max_duration_ns, ?9) WHERE id = ?1",
            )
            .db()?;
        for t in rows {
            update
                .execute(params![
                    t.seq,
                    t.start,
                    t.end,
                    i64::from(t.has_root()),
                    t.root_name(),
                    t.root_service(),
                    t.spans,
                    t.errors,
                    t.max_duration
                ])
                .db()?;
        }
        Ok(())
    }

    fn insert_trace_attrs(&mut self, rows: &mut [AttrRow]) -> StoreResult<()> {
        // One set per `(project, epoch, hash)` (see `attr_sets`), merged into the stored one, in
        // the key's order: a commit whose traces straddle two epochs (most commits of one-span
        // traces) would otherwise alternate between their two ranges.
        let sets = attr_sets::group(rows);
        insert_many_then(
            self.conn,
            self.statements,
            "INSERT INTO trace_attr_sets (project_id, epoch, attr_hash, members) VALUES ",
            4,
            &sets,
            |stmt, (project, epoch, hash, members), at| {
                stmt.int(at, *project);
                stmt.int(at + 1, *epoch);
                stmt.int(at + 2, *hash);
                stmt.blob(at + 3, Some(members));
            },
            " ON CONFLICT (project_id, epoch, attr_hash) DO UPDATE SET members = tracex_merge(members, excluded.members)",
        )
        .map(drop)
    }

    fn stored_stats(&mut self, keys: &[StatKey<'_>]) -> StoreResult<Vec<Option<StoredStat>>> {
        let mut select = self
            .conn
            .prepare(
                "SELECT count, max_ns, last_start_ns, sketch FROM span_stats WHERE project_id = ?1 AND dim_key = ?2 \
                 AND minute = ?3 AND service = ?4 AND name = ?5 AND status = ?6 AND dim_value = ?7 AND resolution = ?8",
            )
            .db()?;
        keys.iter()
            .map(|k| {
                select
                    .query_row(
                        params![
                            k.project_id,
                            k.dim_key,
                            k.minute,
                            k.service,
                            k.name,
                            k.status,
                            &*k.dim_value,
                            k.resolution
                        ],
                        |r| {
                            Ok(StoredStat {
                                count: r.get(0)?,
                                max_ns: r.get(1)?,
                                last_start_ns: r.get(2)?,
                                sketch: r.get(3)?,
                            })
                        },
                    )
                    .optional()
                    .db()
            })
            .collect()
    }

    fn insert_stats(&mut self, rows: &[StatRow<'_>]) -> StoreResult<()> {
        self.write_stats(
            "INSERT INTO span_stats (project_id, dim_key, minute, service, name, status, dim_value, count, max_ns, \
             last_start_ns, sketch, resolution) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            rows,
        )
    }

    fn update_stats(&mut self, rows: &[StatRow<'_>]) -> StoreResult<()> {
        self.write_stats(
            "UPDATE span_stats SET count = ?8, max_ns = ?9, last_start_ns = ?10, sketch = ?11 \
             WHERE project_id = ?1 AND dim_key = ?2 AND minute = ?3 AND service = ?4 AND name = ?5 \
             AND status = ?6 AND dim_value = ?7 AND resolution = ?12",
            rows,
        )
    }

    fn add_to_counters(&mut self, rows: &[CounterRow]) -> StoreResult<()> {
        self.each(
            "UPDATE projects SET span_count = span_count + ?2, batch_count = batch_count + ?3 WHERE id = ?1",
            rows,
        )
    }

    fn audit_size(&mut self) -> StoreResult<u64> {
        // The writer is the only one: the next index is simply one past the last.
        super::audit::size(self.conn)
    }

    fn audit_nodes(&mut self, ids: &[NodeId]) -> StoreResult<Nodes> {
        super::audit::nodes(self.conn, ids)
    }

    fn append_audit(
        &mut self,
        leaves: &[AuditLeafRow],
        nodes: &[(NodeId, [u8; 32])],
        _new_size: u64,
    ) -> StoreResult<()> {
        let mut insert = self
            .conn
            .prepare("INSERT INTO audit_leaves (idx, project_id, batch_id, leaf, hash, claims) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .db()?;
        for l in leaves {
            insert.execute(params![l.index, l.project_id, &l.batch_id[..], &l.leaf, &l.hash[..], &l.claims]).db()?;
        }
        let mut insert = self.conn.prepare("INSERT INTO audit_nodes (level, idx, hash) VALUES (?1, ?2, ?3)").db()?;
        for ((level, idx), hash) in nodes {
            insert.execute(params![level, ns(*idx), &hash[..]]).db()?;
        }
        Ok(())
    }
}

impl Sql<'_> {
    /// Runs `sql` once per statistics row (parameters: the key, then the values).
    fn write_stats(&self, sql: &str, rows: &[StatRow<'_>]) -> StoreResult<()> {
        let mut stmt = self.conn.prepare(sql).db()?;
        for StatRow { key: k, stat: s } in rows {
            let n = stmt
                .execute(params![
                    k.project_id,
                    k.dim_key,
                    k.minute,
                    k.service,
                    k.name,
                    k.status,
                    k.dim_value,
                    s.count,
                    s.max_ns,
                    s.last_start_ns,
                    s.sketch,
                    k.resolution
                ])
                .db()?;
            if n != 1 {
                return Err(StoreError::Database("a statistics row was not written".into()));
            }
        }
        Ok(())
    }

    /// Runs `sql` once per row of three integers.
    fn each(&self, sql: &str, rows: &[(i64, i64, i64)]) -> StoreResult<()> {
        let mut stmt = self.conn.prepare(sql).db()?;
        for (a, b, c) in rows {
            stmt.execute(params![a, b, c]).db()?;
        }
        Ok(())
    }
}
