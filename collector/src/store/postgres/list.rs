//! Listing and reading traces: the shared listing plan ([`crate::store::plan::list`]) as
//! PostgreSQL statements (see the module docs of [`super`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};
use tracex_core::TraceId;

use super::PostgresStore;
use super::client::{Db, Param, Params, block_on, get, typed};
use crate::store::common::{Tuning, decode_resource_body};
use crate::store::plan::list::{FilterValue, ListPlan, Page, SUMMARY_COLUMNS, TraceSpans, summary};
use crate::store::{StoreResult, StoredSpan, TracePage, TraceQuery};

/// Most candidate traces fetched at once when attribute filters need decoding (chunks start at
/// the page size and double up to this).
const CANDIDATE_CHUNK: usize = 512;

impl From<&FilterValue> for Param {
    fn from(v: &FilterValue) -> Self {
        match v {
            FilterValue::Text(s) => Self::Text(s.clone()),
            FilterValue::Int(i) => Self::Int(*i),
            FilterValue::Int4(i) => Self::Int4(*i),
        }
    }
}

/// The attribute index probe of the hash in placeholder `p` for trace `t` of project `$1`: a
/// scalar subquery, for the reason given where the listing uses it.
pub(super) fn attr_probe(p: &str) -> String {
    format!(
        "(SELECT true FROM trace_attrs a WHERE a.project_id = $1 AND a.attr_hash = {p} AND a.trace_seq = t.id LIMIT 1)"
    )
}

/// Adds an integer parameter; returns its placeholder.
fn bind(params: &mut Vec<Param>, v: i64) -> String {
    params.push(Param::Int(v));
    format!("${}", params.len())
}

impl PostgresStore {
    pub(super) fn list_in(tx: &Transaction<'_>, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let plan = ListPlan::new(q, tuning)?;
        let row = block_on(
            tx.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&q.project.as_str(), Type::TEXT)]),
        )
        .db()?;
        let Some(project_id) = row.map(|r| get::<i64>(&r, 0)).transpose()? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

        let driver = plan.choose_driver(|h, threshold| {
            let row = block_on(tx.query_typed_one(
                "SELECT count(*) FROM (SELECT 1 FROM trace_attrs WHERE project_id = $1 AND attr_hash = $2 \
                 LIMIT $3) AS c",
                &[(&project_id, Type::INT8), (&h, Type::INT8), (&threshold, Type::INT8)],
            ))
            .db()?;
            get::<i64>(&row, 0)
        })?;

        // $1 = project, then the span filters, then the rest; the keyset bound and the limit last.
        let span_params: Vec<Param> = plan.span_filters.iter().map(|f| Param::from(&f.value)).collect();
        let span_sql = plan.span_filter_sql(|i| format!("${}", i + 2));
        let mut params: Vec<Param> = vec![Param::Int(project_id)];
        params.extend(span_params.iter().cloned());
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM ");
        if let Some(h) = driver {
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
        sql.push_str(&plan.trace_bounds_sql(|v| bind(&mut params, v)));
        // The probes are scalar subqueries with LIMIT 1, not EXISTS: PostgreSQL never turns those
        // into joins, so the listing walks traces newest first and probes each candidate's spans
        // and attribute hashes by key (as the SQLite store does), whatever the statistics say (a
        // freshly loaded table has none, and a join driven from `trace_attrs` then sorts thousands
        // of traces for one page).
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND (SELECT true FROM spans s WHERE s.trace_seq = t.id{span_sql} LIMIT 1)");
        }
        sql.push_str(&plan.attr_probes_sql(driver, |h| bind(&mut params, h), attr_probe));
        // The keyset bound ($n, $n+1) and the limit ($n+2) are appended per chunk.
        let n = params.len() + 1;
        let key = plan.key_sql();
        let with_bound = format!("{sql} AND ({key}, t.id) < (${n}, ${}) ", n + 1);
        let with_bound = format!("{with_bound} ORDER BY {key} DESC, t.id DESC LIMIT ${}", n + 2);
        let without_bound = format!("{sql} ORDER BY {key} DESC, t.id DESC LIMIT ${n}");

        let verify = plan.verify();
        // Decoding check (only with attribute filters): the bodies of a chunk's candidate spans
        // that pass the column filters. $1 = the chunk's sequence numbers, $2.. = span filters.
        let check_sql =
            format!("SELECT s.trace_seq, s.body FROM spans s WHERE s.trace_seq = ANY($1::bigint[]){span_sql}");

        let mut text = String::new();
        let mut page = Page::new(&plan);
        let mut bound = plan.cursor;
        // The indexed filters are already applied in SQL, so most candidates usually match: start
        // with a page's worth and grow while the decoding check keeps rejecting.
        let mut chunk = plan.limit + 1;
        loop {
            let want = if verify { (plan.budget - page.scanned()).min(chunk) } else { plan.candidates() };
            let mut p = params.clone();
            if let Some((start, seq)) = bound {
                p.push(Param::Int(start));
                p.push(Param::Int(seq));
            }
            p.push(Param::Int(i64::try_from(want).unwrap_or(i64::MAX)));
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
                cp.extend(typed(&span_params));
                for b in block_on(tx.query_typed(&check_sql, &cp)).db()? {
                    let seq: i64 = get(&b, 0)?;
                    if !matching.contains(&seq) && plan.span_matches(get(&b, 1)?, &mut text)? {
                        matching.insert(seq);
                    }
                }
            }

            for row in &rows {
                let seq: i64 = get(row, 0)?;
                let (start, end): (i64, i64) = (get(row, 2)?, get(row, 3)?);
                page.examine(plan.key(start, end), seq);
                if verify && !matching.contains(&seq) {
                    if page.is_done() {
                        break;
                    }
                    continue;
                }
                let has_root: bool = get(row, 4)?;
                let root = if has_root { Some((get(row, 5)?, get(row, 6)?)) } else { None };
                page.keep(
                    plan.key(start, end),
                    seq,
                    summary(get(row, 1)?, start, end, root, get(row, 7)?, get(row, 8)?)?,
                );
                if page.is_done() {
                    break;
                }
            }
            if !verify || page.is_done() || fetched < want {
                break;
            }
            bound = page.last_scanned();
            chunk = (chunk * 2).min(CANDIDATE_CHUNK.max(plan.limit + 1));
        }
        Ok(page.finish())
    }

    pub(super) fn get_trace_in(client: &Client, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        let rows = block_on(client.query_typed(
            "SELECT s.resource_id, s.body FROM spans s WHERE s.trace_seq = (SELECT t.id FROM traces t \
             JOIN projects p ON p.id = t.project_id WHERE p.name = $1 AND t.trace_id = $2)",
            &[(&project, Type::TEXT), (&&trace_id.0[..], Type::BYTEA)],
        ))
        .db()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut spans = TraceSpans::new(trace_id);
        for row in &rows {
            spans.push(get(row, 0)?, get(row, 1)?)?;
        }
        // Resources never change once written: no snapshot needed across the two statements.
        let mut resources = HashMap::new();
        for row in block_on(client.query_typed(
            "SELECT id, body FROM resources WHERE id = ANY($1::bigint[])",
            &[(&spans.resource_ids(), Type::INT8_ARRAY)],
        ))
        .db()?
        {
            resources.insert(get::<i64>(&row, 0)?, decode_resource_body(get(&row, 1)?)?);
        }
        spans.finish(resources)
    }
}
