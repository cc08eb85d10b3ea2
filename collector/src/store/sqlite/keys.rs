//! API keys.

use rusqlite::{Connection, OptionalExtension, params};

use super::Db;
use crate::store::common::{API_KEY_COLUMNS, api_key_record, ns};
use crate::store::{ApiKeyRecord, StoreResult};

/// An `api_keys` row (columns as [`API_KEY_COLUMNS`]); the outer error is SQLite's, the inner one
/// a corrupt row.
fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<ApiKeyRecord>> {
    Ok(api_key_record(r.get(0)?, r.get(1)?, &r.get::<_, String>(2)?, &r.get::<_, Vec<u8>>(3)?, r.get(4)?, r.get(5)?))
}

/// Stores a new key.
pub(super) fn insert(conn: &Connection, key: &ApiKeyRecord) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO api_keys (id, project, scope, secret_sha256, created_at_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.id, key.project, key.scope.as_str(), &key.secret_sha256[..], ns(key.created_at_unix_nano)],
    )
    .db()?;
    Ok(())
}

/// A key by id.
pub(super) fn get(conn: &Connection, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1");
    conn.query_row(&sql, [id], api_key_row).optional().db()?.transpose()
}

/// Every key, oldest first.
pub(super) fn list(conn: &Connection) -> StoreResult<Vec<ApiKeyRecord>> {
    let mut stmt = conn.prepare(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id")).db()?;
    let rows = stmt.query_map([], api_key_row).db()?;
    rows.map(|r| r.db().and_then(|r| r)).collect()
}

/// Revokes a key that is not revoked yet.
pub(super) fn revoke(conn: &Connection, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
    let n = conn
        .execute(
            "UPDATE api_keys SET revoked_at_ns = ?2 WHERE id = ?1 AND revoked_at_ns IS NULL",
            params![id, ns(now_unix_nano)],
        )
        .db()?;
    Ok(n == 1)
}
