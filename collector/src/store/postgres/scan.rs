//! The statistics scan ([`crate::stats::scan`]): the shared plan's SQL
//! ([`crate::store::plan::scan`]) through a portal, read a chunk at a time, so the server stops
//! producing rows once the cap is passed (a plain query would send every matching row).

use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};

use super::PostgresStore;
use super::client::{Db, Param, block_on, get, typed};
use super::list::attr_probe;
use crate::stats::scan::{ScannedSpan, SpanScan};
use crate::store::StoreResult;
use crate::store::common::unns;
use crate::store::plan::scan::{ScanPlan, traces_of};

/// Rows fetched from the portal at a time: few round trips, a bounded batch in memory.
const CHUNK_ROWS: i32 = 10_000;

impl PostgresStore {
    pub(super) fn scan_spans_in(
        tx: &Transaction<'_>,
        scan: &SpanScan,
        cap: usize,
        each: &mut dyn FnMut(ScannedSpan),
    ) -> StoreResult<usize> {
        let traces = traces_of(scan);
        let plan = ScanPlan::new(scan, &traces, cap)?;
        let row = block_on(
            tx.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&scan.project.as_str(), Type::TEXT)]),
        )
        .db()?;
        let Some(project_id) = row.map(|r| get::<i64>(&r, 0)).transpose()? else {
            return Ok(0);
        };
        let (sql, params) = plan.sql(project_id, "traces t CROSS JOIN spans s", |i| format!("${}", i + 1), attr_probe);
        let params: Vec<Param> = params.iter().map(Param::from).collect();
        let params = typed(&params);
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        let statement = block_on(tx.prepare_typed(&sql, &types)).db()?;
        let portal = block_on(tx.bind(&statement, &values)).db()?;
        let (mut kept, mut text) = (0, String::new());
        loop {
            let rows = block_on(tx.query_portal(&portal, CHUNK_ROWS)).db()?;
            for r in &rows {
                let span = ScannedSpan {
                    service: get::<Option<String>>(r, 0)?.unwrap_or_default(),
                    name: get(r, 1)?,
                    status: get(r, 2)?,
                    start_ns: unns(get(r, 3)?),
                    duration_ns: unns(get(r, 4)?),
                    group: None,
                };
                if let Some(span) = plan.keep(span, get(r, 5)?, &mut text)? {
                    each(span);
                    kept += 1;
                    if kept >= plan.max_rows() {
                        return Ok(kept);
                    }
                }
            }
            if rows.len() < usize::try_from(CHUNK_ROWS).unwrap_or(usize::MAX) {
                return Ok(kept);
            }
        }
    }
}
