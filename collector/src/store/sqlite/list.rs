//! Listing and reading traces (see the module docs of [`super`] for the plan).

use std::collections::HashMap;
use std::fmt::Write as _;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tracex_core::{InstrumentationScope, Resource, StatusCode, TraceId};

use super::{Db, SqliteStore, blob};
use crate::store::common::{
    MAX_LIMIT, SERVICE_KEY, Tuning, attr_hash, decode_cursor, decode_resource_body, decode_span_body, encode_cursor,
    is_indexed_key, ns, span_matches_attrs, unns,
};
use crate::store::{StoreError, StoreResult, StoredSpan, TracePage, TraceQuery, TraceSummary};

impl SqliteStore {
    pub(super) fn list_in(conn: &Connection, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let Some(project_id) = Self::project_id(conn, &q.project)? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

        // Span-level column filters, shared by the EXISTS probe and the decoding check; their
        // parameters are numbered from ?3 in both statements.
        let mut span_sql = String::new();
        let mut span_params: Vec<SqlValue> = Vec::new();
        {
            let mut add = |sql: &str, v: SqlValue| {
                span_params.push(v);
                let _ = write!(span_sql, " AND s.{sql} ?{}", span_params.len() + 2);
            };
            if let Some(service) = &q.service {
                add("service =", SqlValue::Text(service.clone()));
            }
            if let Some(name) = &q.span_name {
                add("name =", SqlValue::Text(name.clone()));
            }
            if let Some(status) = q.status {
                add("status =", SqlValue::Integer(status as i64));
            }
            if let Some(min) = q.min_duration_ns {
                add("duration_ns >=", SqlValue::Integer(ns(min)));
            }
            if let Some(max) = q.max_duration_ns {
                add("duration_ns <=", SqlValue::Integer(ns(max)));
            }
        }

        // Hashes of the indexed filters, any of which could drive the query.
        let mut indexed: Vec<i64> = Vec::new();
        if let Some(service) = &q.service {
            indexed.push(attr_hash(SERVICE_KEY, service));
        }
        let attr_hashes: Vec<i64> = q
            .attributes
            .iter()
            .filter(|f| is_indexed_key(&f.key))
            .map(|f| attr_hash(f.key.as_bytes(), &f.value))
            .collect();
        indexed.extend(&attr_hashes);

        // The most selective indexed filter under the threshold drives.
        let mut driver: Option<(i64, usize)> = None;
        if tuning.driver_threshold > 0 {
            let mut count = conn
                .prepare(
                    "SELECT count(*) FROM (SELECT 1 FROM trace_attrs WHERE project_id = ?1 AND attr_hash = ?2 LIMIT ?3)",
                )
                .db()?;
            for h in &indexed {
                let n: i64 =
                    count.query_row(params![project_id, h, tuning.driver_threshold as i64], |r| r.get(0)).db()?;
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n < tuning.driver_threshold && driver.is_none_or(|(_, best)| n < best) {
                    driver = Some((*h, n));
                }
            }
        }

        // ?1 = project, ?2 = driver hash (bound even when unused), ?3.. = span filters, then the rest.
        let mut params: Vec<SqlValue> =
            vec![SqlValue::Integer(project_id), SqlValue::Integer(driver.map_or(0, |d| d.0))];
        params.extend(span_params.iter().cloned());
        let mut sql = String::from(
            "SELECT t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, \
             t.error_count FROM ",
        );
        if driver.is_some() {
            sql.push_str(
                "trace_attrs d CROSS JOIN traces t WHERE d.project_id = ?1 AND d.attr_hash = ?2 \
                 AND t.id = d.trace_seq AND t.project_id = ?1",
            );
        } else if q.status == Some(StatusCode::Error) {
            sql.push_str("traces t INDEXED BY traces_with_errors WHERE t.project_id = ?1");
        } else {
            sql.push_str("traces t INDEXED BY traces_by_start WHERE t.project_id = ?1");
        }
        if q.status == Some(StatusCode::Error) {
            sql.push_str(" AND t.error_count > 0");
        }
        if let Some(from) = q.start_from_ns {
            params.push(SqlValue::Integer(ns(from)));
            let _ = write!(sql, " AND t.start_ns >= ?{}", params.len());
        }
        if let Some(to) = q.start_to_ns {
            params.push(SqlValue::Integer(ns(to)));
            let _ = write!(sql, " AND t.start_ns < ?{}", params.len());
        }
        if let Some((start, seq)) = cursor {
            params.push(SqlValue::Integer(start));
            params.push(SqlValue::Integer(seq));
            let _ = write!(sql, " AND (t.start_ns, t.id) < (?{}, ?{})", params.len() - 1, params.len());
        }
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.id{span_sql})");
        }
        for h in &attr_hashes {
            if driver.is_some_and(|d| d.0 == *h) {
                continue;
            }
            params.push(SqlValue::Integer(*h));
            let _ = write!(
                sql,
                " AND EXISTS (SELECT 1 FROM trace_attrs a WHERE a.project_id = ?1 AND a.attr_hash = ?{} \
                 AND a.trace_seq = t.id)",
                params.len()
            );
        }
        let verify = !q.attributes.is_empty();
        let budget = tuning.scan_budget.max(1);
        params.push(SqlValue::Integer(if verify { budget } else { limit + 1 } as i64));
        let _ = write!(sql, " ORDER BY t.start_ns DESC, t.id DESC LIMIT ?{}", params.len());

        // Decoding check of one candidate trace (only with attribute filters): ?1 = trace, ?2
        // unused, ?3.. = span filters.
        let mut check = if verify {
            Some(conn.prepare(&format!("SELECT s.body FROM spans s WHERE s.trace_seq = ?1{span_sql}")).db()?)
        } else {
            None
        };

        let mut text = String::new();
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query(params_from_iter(params.iter())).db()?;
        let mut out: Vec<(i64, i64, TraceSummary)> = Vec::with_capacity(limit + 1);
        let mut scanned = 0usize;
        let mut last_scanned: Option<(i64, i64)> = None;
        while let Some(row) = rows.next().db()? {
            scanned += 1;
            let seq: i64 = row.get(0).db()?;
            let start: i64 = row.get(2).db()?;
            last_scanned = Some((start, seq));
            if let Some(check) = check.as_mut() {
                let mut p: Vec<SqlValue> = vec![SqlValue::Integer(seq)];
                if !span_params.is_empty() {
                    p.push(SqlValue::Null);
                    p.extend(span_params.iter().cloned());
                }
                let mut bodies = check.query(params_from_iter(p.iter())).db()?;
                let mut matched = false;
                while let Some(b) = bodies.next().db()? {
                    let span = decode_span_body(blob(b, 0)?)?;
                    if span_matches_attrs(&span, &q.attributes, &mut text) {
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    continue;
                }
            }
            let trace_blob = blob(row, 1)?;
            let trace_id = TraceId::from_slice(trace_blob)
                .ok_or_else(|| StoreError::Corrupt(format!("trace id of {} bytes", trace_blob.len())))?;
            let has_root: i64 = row.get(4).db()?;
            out.push((
                start,
                seq,
                TraceSummary {
                    trace_id,
                    root_name: if has_root != 0 { row.get(5).db()? } else { None },
                    root_service: if has_root != 0 { row.get(6).db()? } else { None },
                    start_unix_nano: unns(start),
                    end_unix_nano: unns(row.get(3).db()?),
                    span_count: unns(row.get(7).db()?),
                    error_count: unns(row.get(8).db()?),
                },
            ));
            if out.len() > limit {
                break;
            }
        }

        let next_cursor = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|(start, seq, _)| encode_cursor(*start, *seq))
        } else if verify && scanned >= budget {
            // Budget spent: the next page continues after the last trace examined.
            last_scanned.map(|(start, seq)| encode_cursor(start, seq))
        } else {
            None
        };
        Ok(TracePage { traces: out.into_iter().map(|(_, _, t)| t).collect(), next_cursor })
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
        let mut stmt =
            conn.prepare("SELECT resource_id, body FROM spans WHERE trace_seq = ?1 ORDER BY start_ns, span_id").db()?;
        let mut resource_stmt = conn.prepare("SELECT body FROM resources WHERE id = ?1").db()?;
        let mut resources: HashMap<i64, (Resource, InstrumentationScope)> = HashMap::new();
        let mut rows = stmt.query([seq]).db()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().db()? {
            let resource_id: i64 = row.get(0).db()?;
            let span = decode_span_body(blob(row, 1)?)?;
            if span.trace_id != trace_id {
                return Err(StoreError::Corrupt(format!("span of trace {} filed under {trace_id}", span.trace_id)));
            }
            let (resource, scope) = match resources.get(&resource_id) {
                Some(rs) => rs.clone(),
                None => {
                    let body: Vec<u8> = resource_stmt
                        .query_row([resource_id], |r| r.get(0))
                        .optional()
                        .db()?
                        .ok_or_else(|| StoreError::Corrupt(format!("resource {resource_id} is missing")))?;
                    let rs = decode_resource_body(&body)?;
                    resources.insert(resource_id, rs.clone());
                    rs
                }
            };
            out.push(StoredSpan { resource, scope, span });
        }
        Ok(out)
    }
}
