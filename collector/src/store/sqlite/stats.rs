//! Reading statistics rows and the recent spans suggestions count over (the SQL comes from the
//! shared plan, [`crate::store::plan::stats`]).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use tracex_core::SpanData;

use super::{Db, SqliteStore, blob};
use crate::stats::{StatFilter, StatRecord};
use crate::store::StoreResult;
use crate::store::common::{decode_span_body, unns};
use crate::store::plan::stats::{StatParam, recent_spans_sql, stat_rows_sql};

impl SqliteStore {
    pub(super) fn stat_rows_in(conn: &Connection, f: &StatFilter) -> StoreResult<Vec<StatRecord>> {
        let Some(project_id) = Self::project_id(conn, &f.project)? else {
            return Ok(Vec::new());
        };
        let (sql, params) = stat_rows_sql(f, project_id, |i| format!("?{}", i + 1));
        let params = params.into_iter().map(|p| match p {
            StatParam::Int(i) => SqlValue::Integer(i),
            StatParam::Text(t) => SqlValue::Text(t.to_owned()),
        });
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query(params_from_iter(params)).db()?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().db()? {
            out.push(StatRecord {
                minute: r.get(0).db()?,
                service: r.get(1).db()?,
                name: r.get(2).db()?,
                status: r.get(3).db()?,
                dim_value: r.get(4).db()?,
                count: unns(r.get(5).db()?),
                max_ns: unns(r.get(6).db()?),
                last_start_ns: unns(r.get(7).db()?),
                sketch: r.get(8).db()?,
            });
        }
        Ok(out)
    }

    pub(super) fn recent_spans_in(
        conn: &Connection,
        project: &str,
        service: Option<&str>,
        max: usize,
    ) -> StoreResult<Vec<SpanData>> {
        let Some(project_id) = Self::project_id(conn, project)? else {
            return Ok(Vec::new());
        };
        let mut params = vec![SqlValue::Integer(project_id), SqlValue::Integer(i64::try_from(max).unwrap_or(i64::MAX))];
        if let Some(s) = service {
            params.push(SqlValue::Text(s.to_owned()));
        }
        let mut stmt = conn.prepare(&recent_spans_sql(service.is_some(), |i| format!("?{}", i + 1))).db()?;
        let mut rows = stmt.query(params_from_iter(params)).db()?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().db()? {
            out.push(decode_span_body(blob(r, 0)?)?);
        }
        Ok(out)
    }
}
