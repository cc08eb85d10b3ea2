//! Listing and reading traces (see the module docs of [`super`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};
use tracex_core::{StatusCode, TraceId};

use super::PostgresStore;
use super::client::{Db, Param, Params, block_on, get, typed};
use crate::store::common::{
    MAX_LIMIT, SERVICE_KEY, Tuning, attr_hash, decode_cursor, decode_resource_body, decode_span_body, encode_cursor,
    is_indexed_key, ns, span_matches_attrs, unns,
};
use crate::store::{StoreError, StoreResult, StoredSpan, TracePage, TraceQuery, TraceSummary};

/// Most candidate traces fetched at once when attribute filters need decoding (chunks start at
/// the page size and double up to this).
const CANDIDATE_CHUNK: usize = 512;

impl PostgresStore {
    fn span_filters(q: &TraceQuery, first: usize) -> (String, Vec<Param>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        let mut add = |clause: &str, v: Param| {
            params.push(v);
            let _ = write!(sql, " AND s.{clause} ${}", first + params.len() - 1);
        };
        if let Some(service) = &q.service {
            add("service =", Param::Text(service.clone()));
        }
        if let Some(name) = &q.span_name {
            add("name =", Param::Text(name.clone()));
        }
        if let Some(status) = q.status {
            add("status =", Param::Int4(status as i32));
        }
        if let Some(min) = q.min_duration_ns {
            add("duration_ns >=", Param::Int(ns(min)));
        }
        if let Some(max) = q.max_duration_ns {
            add("duration_ns <=", Param::Int(ns(max)));
        }
        (sql, params)
    }

    pub(super) fn list_in(tx: &Transaction<'_>, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let row = block_on(
            tx.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&q.project.as_str(), Type::TEXT)]),
        )
        .db()?;
        let Some(project_id) = row.map(|r| get::<i64>(&r, 0)).transpose()? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

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
            let threshold = tuning.driver_threshold as i64;
            for h in &indexed {
                let row = block_on(tx.query_typed_one(
                    "SELECT count(*) FROM (SELECT 1 FROM trace_attrs WHERE project_id = $1 AND attr_hash = $2 \
                     LIMIT $3) AS c",
                    &[(&project_id, Type::INT8), (h, Type::INT8), (&threshold, Type::INT8)],
                ))
                .db()?;
                let n = usize::try_from(get::<i64>(&row, 0)?).unwrap_or(usize::MAX);
                if n < tuning.driver_threshold && driver.is_none_or(|(_, best)| n < best) {
                    driver = Some((*h, n));
                }
            }
        }

        // $1 = project, then the span filters, then the rest; the keyset bound and the limit last.
        let mut params: Vec<Param> = vec![Param::Int(project_id)];
        let (span_sql, span_params) = Self::span_filters(q, 2);
        params.extend(span_params);
        let mut sql = String::from(
            "SELECT t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, \
             t.error_count FROM ",
        );
        if let Some((h, _)) = driver {
            params.push(Param::Int(h));
            let _ = write!(
                sql,
                "trace_attrs d JOIN traces t ON t.id = d.trace_seq WHERE d.project_id = $1 AND d.attr_hash = ${} \
                 AND t.project_id = $1",
                params.len()
            );
        } else {
            sql.push_str("traces t WHERE t.project_id = $1");
        }
        if q.status == Some(StatusCode::Error) {
            sql.push_str(" AND t.error_count > 0");
        }
        if let Some(from) = q.start_from_ns {
            params.push(Param::Int(ns(from)));
            let _ = write!(sql, " AND t.start_ns >= ${}", params.len());
        }
        if let Some(to) = q.start_to_ns {
            params.push(Param::Int(ns(to)));
            let _ = write!(sql, " AND t.start_ns < ${}", params.len());
        }
        // The probes are scalar subqueries with LIMIT 1, not EXISTS: PostgreSQL never turns those
        // into joins, so the listing walks traces newest first and probes each candidate's spans
        // and attribute hashes by key (as the SQLite store does), whatever the statistics say (a
        // freshly loaded table has none, and a join driven from `trace_attrs` then sorts thousands
        // of traces for one page).
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND (SELECT true FROM spans s WHERE s.trace_seq = t.id{span_sql} LIMIT 1)");
        }
        for h in &attr_hashes {
            if driver.is_some_and(|d| d.0 == *h) {
                continue;
            }
            params.push(Param::Int(*h));
            let _ = write!(
                sql,
                " AND (SELECT true FROM trace_attrs a WHERE a.project_id = $1 AND a.attr_hash = ${} \
                 AND a.trace_seq = t.id LIMIT 1)",
                params.len()
            );
        }
        // The keyset bound ($n, $n+1) and the limit ($n+2) are appended per chunk.
        let n = params.len() + 1;
        let with_bound = format!("{sql} AND (t.start_ns, t.id) < (${n}, ${}) ", n + 1);
        let with_bound = format!("{with_bound} ORDER BY t.start_ns DESC, t.id DESC LIMIT ${}", n + 2);
        let without_bound = format!("{sql} ORDER BY t.start_ns DESC, t.id DESC LIMIT ${n}");

        let verify = !q.attributes.is_empty();
        let budget = tuning.scan_budget.max(1);
        // Decoding check (only with attribute filters): the bodies of a chunk's candidate spans
        // that pass the column filters. $1 = the chunk's sequence numbers, $2.. = span filters.
        let (check_span_sql, check_params) = Self::span_filters(q, 2);
        let check_sql =
            format!("SELECT s.trace_seq, s.body FROM spans s WHERE s.trace_seq = ANY($1::bigint[]){check_span_sql}");

        let mut text = String::new();
        let mut out: Vec<(i64, i64, TraceSummary)> = Vec::with_capacity(limit + 1);
        let mut scanned = 0usize;
        let mut last_scanned: Option<(i64, i64)> = None;
        let mut bound = cursor;
        // The indexed filters are already applied in SQL, so most candidates usually match: start
        // with a page's worth and grow while the decoding check keeps rejecting.
        let mut chunk = limit + 1;
        loop {
            let want = if verify { (budget - scanned).min(chunk) } else { limit + 1 };
            let mut p = params.clone();
            if let Some((start, seq)) = bound {
                p.push(Param::Int(start));
                p.push(Param::Int(seq));
            }
            p.push(Param::Int(want as i64));
            let query = if bound.is_some() { &with_bound } else { &without_bound };
            let rows = block_on(tx.query_typed(query, &typed(&p))).db()?;
            let fetched = rows.len();

            let mut matching: HashSet<i64> = HashSet::new();
            if verify && !rows.is_empty() {
                let mut seqs = Vec::with_capacity(rows.len());
                for row in &rows {
                    seqs.push(get::<i64>(row, 0)?);
                }
                let mut cp: Params<'_> = vec![(&seqs, Type::INT8_ARRAY)];
                cp.extend(typed(&check_params));
                for b in block_on(tx.query_typed(&check_sql, &cp)).db()? {
                    let seq: i64 = get(&b, 0)?;
                    if matching.contains(&seq) {
                        continue;
                    }
                    let span = decode_span_body(get(&b, 1)?)?;
                    if span_matches_attrs(&span, &q.attributes, &mut text) {
                        matching.insert(seq);
                    }
                }
            }

            for row in &rows {
                scanned += 1;
                let seq: i64 = get(row, 0)?;
                let start: i64 = get(row, 2)?;
                last_scanned = Some((start, seq));
                if verify && !matching.contains(&seq) {
                    if scanned >= budget {
                        break;
                    }
                    continue;
                }
                let trace_blob: &[u8] = get(row, 1)?;
                let trace_id = TraceId::from_slice(trace_blob)
                    .ok_or_else(|| StoreError::Corrupt(format!("trace id of {} bytes", trace_blob.len())))?;
                let has_root: bool = get(row, 4)?;
                out.push((
                    start,
                    seq,
                    TraceSummary {
                        trace_id,
                        root_name: if has_root { get(row, 5)? } else { None },
                        root_service: if has_root { get(row, 6)? } else { None },
                        start_unix_nano: unns(start),
                        end_unix_nano: unns(get(row, 3)?),
                        span_count: unns(get(row, 7)?),
                        error_count: unns(get(row, 8)?),
                    },
                ));
                if out.len() > limit || (verify && scanned >= budget) {
                    break;
                }
            }
            if !verify || out.len() > limit || scanned >= budget || fetched < want {
                break;
            }
            bound = last_scanned;
            chunk = (chunk * 2).min(CANDIDATE_CHUNK.max(limit + 1));
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

    pub(super) fn get_trace_in(client: &Client, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        let rows = block_on(client.query_typed(
            "SELECT s.resource_id, s.body FROM spans s WHERE s.trace_seq = (SELECT t.id FROM traces t \
             JOIN projects p ON p.id = t.project_id WHERE p.name = $1 AND t.trace_id = $2) \
             ORDER BY s.start_ns, s.span_id",
            &[(&project, Type::TEXT), (&&trace_id.0[..], Type::BYTEA)],
        ))
        .db()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut spans = Vec::with_capacity(rows.len());
        let mut ids: Vec<i64> = Vec::new();
        for row in &rows {
            let resource_id: i64 = get(row, 0)?;
            let span = decode_span_body(get(row, 1)?)?;
            if span.trace_id != trace_id {
                return Err(StoreError::Corrupt(format!("span of trace {} filed under {trace_id}", span.trace_id)));
            }
            if !ids.contains(&resource_id) {
                ids.push(resource_id);
            }
            spans.push((resource_id, span));
        }
        // Resources never change once written: no snapshot needed across the two statements.
        let mut resources = HashMap::new();
        for row in
            block_on(client.query_typed(
                "SELECT id, body FROM resources WHERE id = ANY($1::bigint[])",
                &[(&ids, Type::INT8_ARRAY)],
            ))
            .db()?
        {
            resources.insert(get::<i64>(&row, 0)?, decode_resource_body(get(&row, 1)?)?);
        }
        spans
            .into_iter()
            .map(|(resource_id, span)| {
                let (resource, scope) = resources
                    .get(&resource_id)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("resource {resource_id} is missing")))?;
                Ok(StoredSpan { resource, scope, span })
            })
            .collect()
    }
}
