//! Per-project retention set by the CLI ([`crate::store::Store::retention_overrides`]).

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::client::{Db, block_on, get};
use crate::store::{StoreError, StoreResult};

pub(super) fn overrides(client: &Client) -> StoreResult<Vec<(String, u32)>> {
    let rows =
        block_on(client.query_typed("SELECT project, days FROM project_retention ORDER BY project", &[])).db()?;
    rows.iter()
        .map(|r| {
            let days: i32 = get(r, 1)?;
            let days = u32::try_from(days).map_err(|_| StoreError::Corrupt(format!("retention of {days} days")))?;
            Ok((get(r, 0)?, days))
        })
        .collect()
}

pub(super) fn set(client: &mut Client, project: &str, days: Option<u32>) -> StoreResult<bool> {
    let days = days
        .map(|d| i32::try_from(d).map_err(|_| StoreError::Database(format!("{d} days is too long"))))
        .transpose()?;
    let tx = block_on(client.transaction()).db()?;
    let existed =
        block_on(tx.execute_typed("DELETE FROM project_retention WHERE project = $1", &[(&project, Type::TEXT)]))
            .db()?
            == 1;
    if let Some(days) = days {
        block_on(tx.execute_typed(
            "INSERT INTO project_retention (project, days) VALUES ($1, $2)",
            &[(&project, Type::TEXT), (&days, Type::INT4)],
        ))
        .db()?;
    }
    block_on(tx.commit()).db()?;
    Ok(existed)
}
