//! The OTLP export cursor (see `crate::export`): claimed under a lease, advanced only by its holder.

use rusqlite::{Connection, OptionalExtension, params};

use super::Db;
use crate::store::StoreResult;
use crate::store::common::{ns, unns};

pub(super) fn claim(
    conn: &Connection,
    name: &str,
    holder: &str,
    now_ns: u64,
    lease_ns: u64,
    start: u64,
) -> StoreResult<Option<u64>> {
    // The upsert's WHERE leaves a cursor another holder leases untouched, and then returns no row.
    conn.query_row(
        "INSERT INTO export_cursors (name, next_leaf, holder, lease_until_ns) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until_ns = excluded.lease_until_ns \
         WHERE export_cursors.holder = excluded.holder OR export_cursors.lease_until_ns < ?5 \
         RETURNING next_leaf",
        params![name, ns(start), holder, ns(now_ns.saturating_add(lease_ns)), ns(now_ns)],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .db()
    .map(|next| next.map(unns))
}

pub(super) fn advance(conn: &Connection, name: &str, holder: &str, from: u64, to: u64) -> StoreResult<bool> {
    let n = conn
        .execute(
            "UPDATE export_cursors SET next_leaf = ?4 WHERE name = ?1 AND holder = ?2 AND next_leaf = ?3",
            params![name, holder, ns(from), ns(to)],
        )
        .db()?;
    Ok(n == 1)
}
