//! API keys.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::client::{Db, block_on, get};
use crate::store::common::{API_KEY_COLUMNS, api_key_record, ns};
use crate::store::{ApiKeyRecord, StoreResult};

/// An `api_keys` row (columns as [`API_KEY_COLUMNS`]).
fn api_key_row(row: &tokio_postgres::Row) -> StoreResult<ApiKeyRecord> {
    api_key_record(get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?, get(row, 4)?, get(row, 5)?)
}

/// Stores a new key.
pub(super) fn insert(client: &Client, key: &ApiKeyRecord) -> StoreResult<()> {
    let created = ns(key.created_at_unix_nano);
    block_on(client.execute_typed(
        "INSERT INTO api_keys (id, project, scope, secret_sha256, created_at_ns) VALUES ($1, $2, $3, $4, $5)",
        &[
            (&key.id, Type::TEXT),
            (&key.project, Type::TEXT),
            (&key.scope.as_str(), Type::TEXT),
            (&&key.secret_sha256[..], Type::BYTEA),
            (&created, Type::INT8),
        ],
    ))
    .db()
    .map(drop)
}

/// A key by id.
pub(super) fn get_key(client: &Client, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
    let row = block_on(client.query_typed_opt(&sql, &[(&id, Type::TEXT)])).db()?;
    row.map(|row| api_key_row(&row)).transpose()
}

/// Every key, oldest first.
pub(super) fn list(client: &Client) -> StoreResult<Vec<ApiKeyRecord>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id");
    block_on(client.query_typed(&sql, &[])).db()?.iter().map(api_key_row).collect()
}

/// Revokes a key that is not revoked yet.
pub(super) fn revoke(client: &Client, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
    let n = block_on(client.execute_typed(
        "UPDATE api_keys SET revoked_at_ns = $2 WHERE id = $1 AND revoked_at_ns IS NULL",
        &[(&id, Type::TEXT), (&ns(now_unix_nano), Type::INT8)],
    ))
    .db()?;
    Ok(n == 1)
}
