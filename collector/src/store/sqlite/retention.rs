//! Per-project retention set by the CLI ([`crate::store::Store::retention_overrides`]).

use rusqlite::{Connection, params};

use super::Db;
use crate::store::StoreResult;

pub(super) fn overrides(conn: &Connection) -> StoreResult<Vec<(String, u32)>> {
    let mut stmt = conn.prepare("SELECT project, days FROM project_retention ORDER BY project").db()?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))).db()?;
    rows.collect::<Result<_, _>>().db()
}

pub(super) fn set(conn: &Connection, project: &str, days: Option<u32>) -> StoreResult<bool> {
    let existed = conn.execute("DELETE FROM project_retention WHERE project = ?1", params![project]).db()? == 1;
    if let Some(days) = days {
        conn.execute("INSERT INTO project_retention (project, days) VALUES (?1, ?2)", params![project, days]).db()?;
    }
    Ok(existed)
}
