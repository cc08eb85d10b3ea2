//! The OTLP export cursor (see `crate::export`): claimed under a lease, advanced only by its holder.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::client::{Db, block_on, get};
use crate::store::StoreResult;
use crate::store::common::{ns, unns};

pub(super) fn claim(
    client: &Client,
    name: &str,
    holder: &str,
    now_ns: u64,
    lease_ns: u64,
    start: u64,
) -> StoreResult<Option<u64>> {
    // The upsert's WHERE leaves a cursor another collector leases untouched, and then returns no
    // row; the row lock it takes makes two collectors claiming at once take turns.
    let row = block_on(client.query_typed_opt(
        "INSERT INTO export_cursors (name, next_leaf, holder, lease_until_ns) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until_ns = excluded.lease_until_ns \
         WHERE export_cursors.holder = excluded.holder OR export_cursors.lease_until_ns < $5 \
         RETURNING next_leaf",
        &[
            (&name, Type::TEXT),
            (&ns(start), Type::INT8),
            (&holder, Type::TEXT),
            (&ns(now_ns.saturating_add(lease_ns)), Type::INT8),
            (&ns(now_ns), Type::INT8),
        ],
    ))
    .db()?;
    row.map(|r| get::<i64>(&r, 0).map(unns)).transpose()
}

pub(super) fn advance(client: &Client, name: &str, holder: &str, from: u64, to: u64) -> StoreResult<bool> {
    let n = block_on(client.execute_typed(
        "UPDATE export_cursors SET next_leaf = $4 WHERE name = $1 AND holder = $2 AND next_leaf = $3",
        &[(&name, Type::TEXT), (&holder, Type::TEXT), (&ns(from), Type::INT8), (&ns(to), Type::INT8)],
    ))
    .db()?;
    Ok(n == 1)
}
