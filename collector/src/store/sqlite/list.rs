//! Listing and reading traces: the shared listing plan ([`crate::store::plan::list`]) as SQLite
//! statements (see the module docs of [`super`] for the design).

use std::collections::HashMap;
use std::fmt::Write as _;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Statement, params, params_from_iter};
use tracex_core::TraceId;

use super::{ATTR_EPOCH_SHIFT, Db, SqliteStore, attr_sets, blob};
use crate::store::common::{Tuning, decode_resource_body};
use crate::store::plan::list::{FilterValue, ListPlan, Page, SUMMARY_COLUMNS, TraceSpans, summary};
use crate::store::{StoreError, StoreResult, StoredSpan, TracePage, TraceQuery};

impl From<&FilterValue> for SqlValue {
    fn from(v: &FilterValue) -> Self {
        match v {
            FilterValue::Text(s) => Self::Text(s.clone()),
            FilterValue::Int(i) => Self::Integer(*i),
            FilterValue::Int4(i) => Self::Integer(i64::from(*i)),
        }
    }
}

/// `e(n)`: the epochs of the attribute index ([`ATTR_EPOCH_SHIFT`]) that hold sets of project
/// `?1`, one index seek each (the next epoch past the last), so that a lookup by hash alone seeks
/// once per epoch rather than reading every epoch's rows.
pub(super) const EPOCHS: &str = "WITH RECURSIVE e(n) AS (SELECT (SELECT min(epoch) FROM trace_attr_sets WHERE project_id = ?1) \
                      UNION ALL SELECT (SELECT min(epoch) FROM trace_attr_sets WHERE project_id = ?1 AND epoch > e.n) \
                      FROM e WHERE e.n IS NOT NULL)";

/// The attribute index probe of the hash in placeholder `p` for trace `t` of project `?1` (one
/// key lookup — the trace's epoch, then the hash — and a test of its set).
pub(super) fn attr_probe(p: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM trace_attr_sets a WHERE a.project_id = ?1 AND a.epoch = t.id >> {ATTR_EPOCH_SHIFT} \
         AND a.attr_hash = {p} AND tracex_has(a.members, t.id))"
    )
}

/// The sets of hash `?2` in project `?1`, epoch by epoch.
const ATTR_TRACES: &str = "SELECT d.epoch, d.members FROM e CROSS JOIN trace_attr_sets d \
                           WHERE d.project_id = ?1 AND d.epoch = e.n AND d.attr_hash = ?2";

/// The traces of project `project_id` whose sets hold `hash`, in every epoch, as sequence
/// numbers; `None` once there are `limit` or more (the count that chooses the driver stops there).
/// `stmt` is [`ATTR_TRACES`].
fn attr_traces(stmt: &mut Statement<'_>, project_id: i64, hash: i64, limit: usize) -> StoreResult<Option<Vec<i64>>> {
    let mut rows = stmt.query(params![project_id, hash]).db()?;
    let mut seqs = Vec::new();
    while let Some(row) = rows.next().db()? {
        let epoch: i64 = row.get(0).db()?;
        let members = attr_sets::decode(blob(row, 1)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        seqs.extend(members.into_iter().map(|p| attr_sets::seq_at(epoch, p)));
        if seqs.len() >= limit {
            return Ok(None);
        }
    }
    Ok(Some(seqs))
}

/// Adds an integer parameter; returns its placeholder.
fn bind(params: &mut Vec<SqlValue>, v: i64) -> String {
    params.push(SqlValue::Integer(v));
    format!("?{}", params.len())
}

impl SqliteStore {
    pub(super) fn list_in(conn: &Connection, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let plan = ListPlan::new(q, tuning)?;
        let Some(project_id) = Self::project_id(conn, &q.project)? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

        // The candidates of each indexed filter under the threshold, read once: the count chooses
        // the driver, whose candidates then go to the query as a JSON array.
        let mut candidates: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut sets = conn.prepare(&format!("{EPOCHS} {ATTR_TRACES}")).db()?;
        let driver = plan
            .choose_driver(|h, threshold| {
                let limit = usize::try_from(threshold).unwrap_or(usize::MAX);
                Ok(match attr_traces(&mut sets, project_id, h, limit)? {
                    Some(seqs) => {
                        let n = i64::try_from(seqs.len()).unwrap_or(i64::MAX);
                        candidates.insert(h, seqs);
                        n
                    }
                    None => threshold,
                })
            })?
            .filter(|h| candidates.contains_key(h));

        // Span-level column filters, shared by the EXISTS probe and the decoding check; their
        // parameters are numbered from ?3 in both statements.
        let span_sql = plan.span_filter_sql(|i| format!("?{}", i + 3));
        let span_params: Vec<SqlValue> = plan.span_filters.iter().map(|f| SqlValue::from(&f.value)).collect();

        // ?1 = project, ?2 = the driver's candidates as a JSON array (bound even when unused), ?3.. =
        // span filters, then the rest.
        let driven = match driver.and_then(|h| candidates.get(&h)) {
            Some(seqs) => serde_json::to_string(seqs).map_err(|e| StoreError::Database(e.to_string()))?,
            None => String::new(),
        };
        let mut params: Vec<SqlValue> = vec![SqlValue::Integer(project_id), SqlValue::Text(driven)];
        params.extend(span_params.iter().cloned());
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM ");
        if driver.is_some() {
            sql.push_str("json_each(?2) d CROSS JOIN traces t WHERE t.id = d.value AND t.project_id = ?1");
        } else if plan.errors_only {
            sql.push_str("traces t INDEXED BY traces_with_errors WHERE t.project_id = ?1");
        } else {
            sql.push_str("traces t INDEXED BY traces_by_start_duration WHERE t.project_id = ?1");
        }
        sql.push_str(&plan.trace_bounds_sql(|v| bind(&mut params, v)));
        let key = plan.key_sql();
        if let Some((k, seq)) = plan.cursor {
            params.push(SqlValue::Integer(k));
            params.push(SqlValue::Integer(seq));
            let _ = write!(sql, " AND ({key}, t.id) < (?{}, ?{})", params.len() - 1, params.len());
        }
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.id{span_sql})");
        }
        sql.push_str(&plan.attr_probes_sql(driver, |h| bind(&mut params, h), attr_probe));
        params.push(SqlValue::Integer(i64::try_from(plan.candidates()).unwrap_or(i64::MAX)));
        let _ = write!(sql, " ORDER BY {key} DESC, t.id DESC LIMIT ?{}", params.len());

        // Decoding check of one candidate trace (only with attribute filters): ?1 = trace, ?2
        // unused, ?3.. = span filters.
        let mut check = if plan.verify() {
            Some(conn.prepare(&format!("SELECT s.body FROM spans s WHERE s.trace_seq = ?1{span_sql}")).db()?)
        } else {
            None
        };

        let mut text = String::new();
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query(params_from_iter(params.iter())).db()?;
        let mut page = Page::new(&plan);
        while let Some(row) = rows.next().db()? {
            let seq: i64 = row.get(0).db()?;
            let (start, end): (i64, i64) = (row.get(2).db()?, row.get(3).db()?);
            page.examine(plan.key(start, end), seq);
            if let Some(check) = check.as_mut() {
                let mut p: Vec<SqlValue> = vec![SqlValue::Integer(seq)];
                if !span_params.is_empty() {
                    p.push(SqlValue::Null);
                    p.extend(span_params.iter().cloned());
                }
                let mut bodies = check.query(params_from_iter(p.iter())).db()?;
                let mut matched = false;
                while let Some(b) = bodies.next().db()? {
                    if plan.span_matches(blob(b, 0)?, &mut text)? {
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    if page.is_done() {
                        break;
                    }
                    continue;
                }
            }
            let has_root: i64 = row.get(4).db()?;
            let root = if has_root != 0 { Some((row.get(5).db()?, row.get(6).db()?)) } else { None };
            let summary = summary(blob(row, 1)?, start, end, root, row.get(7).db()?, row.get(8).db()?)?;
            page.keep(plan.key(start, end), seq, summary);
            if page.is_done() {
                break;
            }
        }
        Ok(page.finish())
    }

    pub(super) fn get_trace_in(conn: &Connection, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        let Some(project_id) = Self::project_id(conn, project)? else {
            return Ok(Vec::new());
        };
        let seq: Option<i64> = conn
            .query_row(
                "SELECT id FROM traces WHERE project_id = ?1 AND trace_id = ?2",
                params![project_id, &trace_id.0[..]],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        let Some(seq) = seq else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare("SELECT resource_id, body FROM spans WHERE trace_seq = ?1").db()?;
        let mut rows = stmt.query([seq]).db()?;
        let mut spans = TraceSpans::new(trace_id);
        while let Some(row) = rows.next().db()? {
            spans.push(row.get(0).db()?, blob(row, 1)?)?;
        }
        let mut resource_stmt = conn.prepare("SELECT body FROM resources WHERE id = ?1").db()?;
        let mut resources = HashMap::with_capacity(spans.resource_ids().len());
        for id in spans.resource_ids() {
            let body: Vec<u8> = resource_stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .db()?
                .ok_or_else(|| StoreError::Corrupt(format!("resource {id} is missing")))?;
            resources.insert(*id, decode_resource_body(&body)?);
        }
        spans.finish(resources)
    }
}
