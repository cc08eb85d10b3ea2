//! The SQLite schema and its migrations (see the module docs of [`super`] for the design).

use rusqlite::{Connection, TransactionBehavior};

use super::Db;
use crate::store::{StoreError, StoreResult};

/// Schema migrations, applied in order; `PRAGMA user_version` holds how many have run.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema (see the module docs).
    "
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        span_count INTEGER NOT NULL DEFAULT 0,
        batch_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE batches (
        project_id INTEGER NOT NULL,
        batch_id BLOB NOT NULL,
        key_id BLOB NOT NULL,
        instance_id BLOB NOT NULL,
        sequence INTEGER NOT NULL,
        sdk_name TEXT NOT NULL,
        sdk_version TEXT NOT NULL,
        created_at_ns INTEGER NOT NULL,
        received_at_ns INTEGER NOT NULL,
        span_count INTEGER NOT NULL,
        PRIMARY KEY (project_id, batch_id)
    ) WITHOUT ROWID;
    CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        body BLOB NOT NULL
    );
    CREATE TABLE traces (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        trace_id BLOB NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        has_root INTEGER NOT NULL,
        root_name TEXT,
        root_service TEXT,
        span_count INTEGER NOT NULL,
        error_count INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX traces_by_id ON traces (project_id, trace_id);
    CREATE INDEX traces_by_start ON traces (project_id, start_ns);
    CREATE INDEX traces_with_errors ON traces (project_id, start_ns) WHERE error_count > 0;
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_seq INTEGER NOT NULL,
        span_id BLOB NOT NULL,
        parent_span_id BLOB,
        name TEXT NOT NULL,
        service TEXT,
        kind INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        status INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    -- A rowid table: span rows (with their body) are too wide for WITHOUT ROWID, and new rows
    -- append at the end; the identity index grows at the end too, as trace_seq increases.
    CREATE UNIQUE INDEX spans_by_trace ON spans (trace_seq, span_id);
    CREATE TABLE trace_attrs (
        project_id INTEGER NOT NULL,
        attr_hash INTEGER NOT NULL,
        trace_seq INTEGER NOT NULL,
        PRIMARY KEY (project_id, attr_hash, trace_seq)
    ) WITHOUT ROWID;
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        scope TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL,
        created_at_ns INTEGER NOT NULL
    );
    ",
    // 2: the envelope hash of each batch, to tell a retry from a reused batch id (NULL for batches
    // stored before: they count as the same envelope).
    "ALTER TABLE batches ADD COLUMN envelope_sha256 BLOB;",
    // 3: API keys can be revoked.
    "ALTER TABLE api_keys ADD COLUMN revoked_at_ns INTEGER;",
    // 4: per-minute latency sketches (see `crate::stats`), written with the spans from now on
    // (spans stored before this step are not counted in statistics). Keyed dimension first so
    // base-row queries never read dimension rows, then resolution (1: a minute, 60: an hour) and
    // minute so a range is one index range.
    "
    CREATE TABLE span_stats (
        project_id INTEGER NOT NULL,
        dim_key TEXT NOT NULL,
        resolution INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        status INTEGER NOT NULL,
        dim_value TEXT NOT NULL,
        count INTEGER NOT NULL,
        max_ns INTEGER NOT NULL,
        last_start_ns INTEGER NOT NULL,
        sketch BLOB NOT NULL,
        PRIMARY KEY (project_id, dim_key, resolution, minute, service, name, status, dim_value)
    ) WITHOUT ROWID;
    ",
    // 5: the audit log (see `crate::audit`): one leaf per batch stored from now on, the perfect
    // subtrees of level ≥ 1 (level 0 is the leaves' hash), signed checkpoints; each span row
    // names its batch's leaf (NULL: stored before the log existed). Batches record their first
    // resource's `service.name`, and are indexed by SDK instance and sequence number (gaps).
    "
    ALTER TABLE batches ADD COLUMN service TEXT;
    CREATE INDEX batches_by_instance ON batches (project_id, instance_id, sequence);
    ALTER TABLE spans ADD COLUMN leaf_index INTEGER;
    CREATE TABLE audit_leaves (
        idx INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        batch_id BLOB NOT NULL,
        leaf BLOB NOT NULL,
        hash BLOB NOT NULL,
        claims BLOB NOT NULL
    );
    CREATE UNIQUE INDEX audit_leaves_by_batch ON audit_leaves (project_id, batch_id);
    CREATE TABLE audit_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE audit_checkpoints (
        size INTEGER PRIMARY KEY,
        root BLOB NOT NULL,
        signed_at_ns INTEGER NOT NULL,
        note TEXT NOT NULL
    );
    ",
    // 6: OTLP export cursors (see `crate::export`): the next audit-log leaf to export, and which
    // collector holds the right to export it until when (a lease, so collectors sharing a
    // database take turns rather than each sending everything).
    "
    CREATE TABLE export_cursors (
        name TEXT PRIMARY KEY,
        next_leaf INTEGER NOT NULL,
        holder TEXT NOT NULL,
        lease_until_ns INTEGER NOT NULL
    );
    ",
    // 7: each trace's longest span (`max_duration_ns`, kept at commit with the other aggregates),
    // so that a `min_duration_ms` search skips traces that cannot match (see `plan::list`). It
    // joins the start index, which the listing walks: a trace ruled out costs an index entry, not
    // a row and a probe of its spans; the index it replaces is its prefix, so a commit still
    // writes as many index entries. `id` is named before it: the listing's order is
    // `(start_ns, id)`, which the index then holds (after the duration, ties in start would be
    // sorted per query). Stored traces are filled in from their spans (one pass over
    // `spans_by_trace`, whose trace order follows the table's; measured in docs/benchmarks.md);
    // the default only stands for a row that has no spans, which no listing filter can match.
    "
    ALTER TABLE traces ADD COLUMN max_duration_ns INTEGER NOT NULL DEFAULT 9223372036854775807;
    UPDATE traces SET max_duration_ns =
        coalesce((SELECT max(s.duration_ns) FROM spans s WHERE s.trace_seq = traces.id), max_duration_ns);
    CREATE INDEX traces_by_start_duration ON traces (project_id, start_ns, id, max_duration_ns);
    DROP INDEX traces_by_start;
    ",
    // 8: the attribute index keyed by epoch first (`trace_seq >> ATTR_EPOCH_SHIFT`, see the module
    // docs of `super`): new entries land in the current epoch's small key range instead of all
    // over the index. Rebuilt from the old one in key order, before the collector serves: ≈ 1.6 µs
    // an index row (4,000,000 in 6.5 s, docs/benchmarks.md).
    "
    CREATE TABLE trace_attrs_by_epoch (
        project_id INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        attr_hash INTEGER NOT NULL,
        trace_seq INTEGER NOT NULL,
        PRIMARY KEY (project_id, epoch, attr_hash, trace_seq)
    ) WITHOUT ROWID;
    INSERT INTO trace_attrs_by_epoch (project_id, epoch, attr_hash, trace_seq)
        SELECT project_id, trace_seq >> 12, attr_hash, trace_seq FROM trace_attrs ORDER BY 1, 2, 3, 4;
    DROP TABLE trace_attrs;
    ALTER TABLE trace_attrs_by_epoch RENAME TO trace_attrs;
    ",
    // 9: per-project retention set with `tracex-collector retention set` (see
    // `crate::services::retention`): kept in the store, not the config file, so every collector
    // of a fleet and the next start see it. A project named here need not have a row elsewhere.
    // (`IF NOT EXISTS`: the migration tests take a store back to an earlier version and replay.)
    "
    CREATE TABLE IF NOT EXISTS project_retention (
        project TEXT PRIMARY KEY,
        days INTEGER NOT NULL
    );
    ",
    // 10: the attribute index as one set of traces per (project, epoch, hash) (see `attr_sets`):
    // a value shared by many traces is one entry per epoch, not one per trace. Built from the
    // rows of migration 8 in one pass in key order (`tracex_set_of` is registered on the writer).
    "
    CREATE TABLE trace_attr_sets (
        project_id INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        attr_hash INTEGER NOT NULL,
        members BLOB NOT NULL,
        PRIMARY KEY (project_id, epoch, attr_hash)
    ) WITHOUT ROWID;
    INSERT INTO trace_attr_sets (project_id, epoch, attr_hash, members)
        SELECT project_id, epoch, attr_hash, tracex_set_of(json_group_array(trace_seq)) FROM trace_attrs
        GROUP BY project_id, epoch, attr_hash ORDER BY 1, 2, 3;
    DROP TABLE trace_attrs;
    ",
];

/// Creates or upgrades the schema (idempotent): runs the steps `PRAGMA user_version` says are missing.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    // Migration 10 builds the attribute sets with `tracex_set_of`.
    super::attr_sets::register(conn).db()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the database schema is version {version}, newer than this build knows ({})",
            MIGRATIONS.len()
        )));
    }
    for step in &MIGRATIONS[done..] {
        tx.execute_batch(step).db()?;
    }
    if done < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)).db()?;
    }
    tx.commit().db()
}
