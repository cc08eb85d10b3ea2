//! Reading statistics rows and the recent spans suggestions count over (the SQL comes from the
//! shared plan, [`crate::store::plan::stats`]).

use tokio_postgres::Client;
use tokio_postgres::types::Type;
use tracex_core::SpanData;

use super::PostgresStore;
use super::client::{Db, Param, block_on, get, typed};
use crate::stats::{StatFilter, StatRecord};
use crate::store::StoreResult;
use crate::store::common::{decode_span_body, unns};
use crate::store::plan::stats::{StatParam, recent_spans_sql, stat_rows_sql};

fn project_id(client: &Client, project: &str) -> StoreResult<Option<i64>> {
    let row =
        block_on(client.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&project, Type::TEXT)])).db()?;
    row.map(|r| get::<i64>(&r, 0)).transpose()
}

impl PostgresStore {
    pub(super) fn stat_rows_in(client: &Client, f: &StatFilter) -> StoreResult<Vec<StatRecord>> {
        let Some(project_id) = project_id(client, &f.project)? else {
            return Ok(Vec::new());
        };
        let (sql, params) = stat_rows_sql(f, project_id, |i| format!("${}", i + 1));
        let params: Vec<Param> = params
            .into_iter()
            .map(|p| match p {
                StatParam::Int(i) => Param::Int(i),
                StatParam::Text(t) => Param::Text(t.to_owned()),
            })
            .collect();
        let rows = block_on(client.query_typed(&sql, &typed(&params))).db()?;
        rows.iter()
            .map(|r| {
                Ok(StatRecord {
                    minute: get(r, 0)?,
                    service: get(r, 1)?,
                    name: get(r, 2)?,
                    status: get(r, 3)?,
                    dim_value: get(r, 4)?,
                    count: unns(get(r, 5)?),
                    max_ns: unns(get(r, 6)?),
                    last_start_ns: unns(get(r, 7)?),
                    sketch: get(r, 8)?,
                })
            })
            .collect()
    }

    pub(super) fn recent_spans_in(
        client: &Client,
        project: &str,
        service: Option<&str>,
        max: usize,
    ) -> StoreResult<Vec<SpanData>> {
        let Some(project_id) = project_id(client, project)? else {
            return Ok(Vec::new());
        };
        let mut params = vec![Param::Int(project_id), Param::Int(i64::try_from(max).unwrap_or(i64::MAX))];
        if let Some(s) = service {
            params.push(Param::Text(s.to_owned()));
        }
        let sql = recent_spans_sql(service.is_some(), |i| format!("${}", i + 1));
        let rows = block_on(client.query_typed(&sql, &typed(&params))).db()?;
        rows.iter().map(|r| decode_span_body(get(r, 0)?)).collect()
    }
}
