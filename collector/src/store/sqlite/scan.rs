//! The statistics scan ([`crate::stats::scan`]): the shared plan's SQL
//! ([`crate::store::plan::scan`]) on a read connection, rows stepped one at a time and the
//! statement left as soon as the cap is passed.

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::list::attr_probe;
use super::{Db, SqliteStore};
use crate::stats::scan::{ScannedSpan, SpanScan};
use crate::store::common::unns;
use crate::store::plan::list::FilterValue;
use crate::store::plan::scan::{ScanPlan, traces_of};
use crate::store::{StoreError, StoreResult};

/// The scan's statement in this dialect. The traces' start index drives, as in a listing (CROSS
/// JOIN keeps it the outer loop): each trace's spans are then one range of `spans_by_trace`.
fn scan_sql(plan: &ScanPlan<'_>, project_id: i64) -> (String, Vec<FilterValue>) {
    let index = if plan.errors_only() { "traces_with_errors" } else { "traces_by_start_duration" };
    let from = format!("traces t INDEXED BY {index} CROSS JOIN spans s");
    plan.sql(project_id, &from, |i| format!("?{}", i + 1), attr_probe)
}

impl SqliteStore {
    pub(super) fn scan_spans_in(
        conn: &Connection,
        scan: &SpanScan,
        cap: usize,
        each: &mut dyn FnMut(ScannedSpan),
    ) -> StoreResult<usize> {
        let traces = traces_of(scan);
        let plan = ScanPlan::new(scan, &traces, cap)?;
        let Some(project_id) = Self::project_id(conn, &scan.project)? else {
            return Ok(0);
        };
        let (sql, params) = scan_sql(&plan, project_id);
        let params: Vec<SqlValue> = params.iter().map(SqlValue::from).collect();
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query(params_from_iter(params.iter())).db()?;
        let (mut kept, mut text) = (0, String::new());
        while let Some(r) = rows.next().db()? {
            let span = ScannedSpan {
                service: r.get::<_, Option<String>>(0).db()?.unwrap_or_default(),
                name: r.get(1).db()?,
                status: r.get(2).db()?,
                start_ns: unns(r.get(3).db()?),
                duration_ns: unns(r.get(4).db()?),
                group: None,
            };
            let body = match r.get_ref(5).db()? {
                ValueRef::Blob(b) => Some(b),
                ValueRef::Null => None,
                other => return Err(StoreError::Corrupt(format!("span body of type {:?}", other.data_type()))),
            };
            if let Some(span) = plan.keep(span, body, &mut text)? {
                each(span);
                kept += 1;
                if kept >= plan.max_rows() {
                    break;
                }
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AttributeFilter;

    #[test]
    fn the_scan_walks_the_start_index_and_reads_each_traces_spans_by_key() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let scan = SpanScan {
            project: "p".into(),
            from_ns: 5,
            to_ns: 9,
            min_duration_ns: Some(1),
            attributes: vec![AttributeFilter { key: "http.route".into(), value: "/pay".into() }],
            ..SpanScan::default()
        };
        for status in [None, Some(tracex_core::StatusCode::Error)] {
            let scan = SpanScan { status, ..scan.clone() };
            let traces = traces_of(&scan);
            let plan = ScanPlan::new(&scan, &traces, 10).unwrap();
            let (sql, params) = scan_sql(&plan, 1);
            let params: Vec<SqlValue> = params.iter().map(SqlValue::from).collect();
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| r.get(3)).unwrap();
            let p: Vec<String> = rows.map(Result::unwrap).collect();
            let p = p.join("\n");
            assert!(p.contains("(project_id=? AND start_ns>? AND start_ns<?)"), "a range of the start index: {p}");
            assert!(p.contains("USING INDEX spans_by_trace (trace_seq=?)"), "spans by their trace: {p}");
            assert!(
                p.contains("USING PRIMARY KEY (project_id=? AND epoch=? AND attr_hash=?)"),
                "the attribute index probe: {p}"
            );
            assert!(!p.contains("SCAN"), "nothing read whole: {p}");
        }
    }
}
