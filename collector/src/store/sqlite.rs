//! The embedded SQLite store (the default).
//!
//! # Connections
//!
//! One writer connection behind a [`Mutex`] (SQLite has a single writer anyway) and a small pool of
//! read connections. The database runs in WAL mode, so reads (`list_traces`, `get_trace`, counts)
//! proceed concurrently with a commit and see the last committed state. A commit returns once its
//! log frames are fsynced (`synchronous=FULL`). A background thread with its own connection
//! checkpoints the log into the database file after commits, so commits do not pay for it.
//!
//! # Schema (migration 1)
//!
//! | table | key | what |
//! |---|---|---|
//! | `projects` | `id`, unique `name` | project names as small integers, plus per-project `span_count` / `batch_count` counters |
//! | `batches` | `(project_id, batch_id)` | the idempotency record of every stored batch, its envelope metadata and (migration 2) the SHA-256 of the envelope as received |
//! | `resources` | `id`, unique SHA-256 `hash` | a resource and scope pair, stored once, as OTLP protobuf |
//! | `traces` | `id` (the trace's *sequence number*), unique `(project_id, trace_id)`, `(project_id, start_ns)`, partial `(project_id, start_ns) WHERE error_count > 0` | the per-trace summary maintained on insert: start min, end max, root name and service, span and error counts |
//! | `spans` | `(trace_seq, span_id)` (clustered, `WITHOUT ROWID`) | name, service, kind, start, end, duration, status and parent as columns, `resource_id`, and the span itself as OTLP protobuf (`body`) |
//! | `trace_attrs` | `(project_id, attr_hash, trace_seq)` | the attribute index (below) |
//! | `api_keys` | `id` | API keys (hash of the secret only) |
//!
//! Write locality drives the layout. Trace and span ids are random, and a B-tree keyed by a random
//! value dirties one page per insert all over the file once it outgrows the cache (and every dirty
//! page is written twice: log, then checkpoint). So only `traces_by_id` (one small entry per trace)
//! is keyed by the trace id; each trace gets an increasing sequence number (its `traces` rowid,
//! handed out by the writer), and spans are clustered by `(trace_seq, span_id)`: new spans append
//! at the end of the table, and a trace's spans sit together for `get_trace` and the filter probes.
//!
//! Exact round trip: a span is stored as an OTLP `ExportTraceServiceRequest` holding just that span
//! (under an empty resource and scope), written with [`tracex_core::encode::encode_spans`] and read
//! back with [`tracex_core::decode::decode_request`]; its resource and scope are stored the same way
//! (a request with no spans), deduplicated by the SHA-256 of those bytes. The columns of `spans` and
//! `traces` are derived copies for filtering only. Timestamps and durations in those columns
//! saturate at `i64::MAX` (the year 2262); the span bodies keep the exact `u64`s.
//!
//! Idempotency: `batches` is keyed by `(project_id, batch_id)`; a batch whose row already exists
//! (from an earlier call or earlier in the same call) is [`CommitOutcome::Duplicate`] when its
//! envelope hash is the stored one and [`CommitOutcome::Conflict`] otherwise, and none of
//! its spans are written. Spans are unique per `(project, trace_id, span_id)` through
//! `(trace_seq, span_id)` and inserted with `INSERT OR IGNORE`; only spans actually inserted count
//! towards the trace summary and the counters. A commit is one `BEGIN IMMEDIATE` transaction.
//!
//! # Listing and the attribute index
//!
//! `list_traces` walks `traces` newest start first (`traces_by_start`, or the partial index of
//! traces with errors when filtering on status `Error`) and keeps a trace when one of its spans
//! matches every span-level filter; that check is an `EXISTS` probe on the `spans` primary key
//! (the trace's spans are contiguous). Pagination is keyset pagination on `(start_ns, trace_seq)`;
//! the cursor is the hex of a version byte, the start and the sequence number of the last trace
//! returned, and stays valid across writes (traces whose start moves may move between pages).
//!
//! Attributes are deliberately **not** stored as one row per span attribute: at ≥ 150,000 spans/s
//! with ~7 attributes each that would be a million index insertions a second. Instead:
//!
//! * `trace_attrs` is a *trace-level* index of hashes: for every stored span, each attribute whose
//!   key is *indexed* ([`is_indexed_key`]: every `x402.*` key and a few well-known low-cardinality
//!   keys such as `http.response.status_code`) and whose value is a scalar contributes the 64-bit
//!   FNV-1a hash of `key 0xFF value-as-text`; the span's `service.name` contributes a pseudo-key
//!   too. Entries are deduplicated per trace in memory before insertion, so a trace whose spans
//!   share their `x402.*` values costs a handful of rows, not one per span attribute. Span names
//!   are not indexed (a handful of distinct names per trace would cost more rows than spans, and a
//!   name filter is rarely selective): they are checked by the `EXISTS` probe.
//! * The index narrows candidates only (it is per trace, and hashes may collide): whenever a query
//!   has attribute filters, each candidate trace's spans that pass the column filters are decoded
//!   and checked in Rust, exactly (value rendered as text: strings as-is, ints and doubles in
//!   decimal via Rust's `Display`, bools `true`/`false`; bytes, arrays and maps never match; when
//!   a key repeats on a span the last value wins, as in [`tracex_core::SpanData::attribute`]).
//!   Filters on keys that are not indexed are answered by that same decoding step alone.
//! * A selective indexed filter (service or indexed attribute matching fewer than
//!   [`DRIVER_THRESHOLD`] traces, e.g. `x402.payer = 0x…`) *drives* the query: its candidates are
//!   read from `trace_attrs`, joined to `traces` and sorted, instead of walking every trace of the
//!   project by start time.
//! * When attribute filters must be checked by decoding, one page examines at most [`SCAN_BUDGET`]
//!   candidate traces; if it runs out it returns the matches found so far (possibly none) with a
//!   cursor to continue from, so a rare non-indexed value never turns into an unbounded scan.
//!
//! # Scaling note
//!
//! The remaining random-key writes are `traces_by_id` and the high-cardinality `x402.*` values
//! (payer, amount, transaction hash): about three per trace. While those indexes fit in the page
//! cache they are cheap; on databases of hundreds of millions of spans each such insert dirties
//! its own page and ingest slows down accordingly. Retention (deleting old traces) keeps them
//! bounded.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};
use sha2::{Digest, Sha256};
use tracex_core::encode::encode_spans;
use tracex_core::{InstrumentationScope, Resource, StatusCode, TraceId};

use super::common::{
    API_KEY_COLUMNS, MAX_LIMIT, SERVICE_KEY, TraceCap, Tuning, api_key_record, attr_hash, decode_cursor,
    decode_resource_body, decode_span_body, encode_cursor, lock, ns, render_value, same_envelope, span_matches_attrs,
    unns,
};
pub use super::common::{DRIVER_THRESHOLD, SCAN_BUDGET, is_indexed_key};
use super::{
    ApiKeyRecord, CommitOutcome, NewBatch, Store, StoreError, StoreResult, StoredSpan, TracePage, TraceQuery,
    TraceSummary,
};

/// Read connections in the pool.
const READERS: usize = 4;

/// How long a connection waits on a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Resource hashes remembered by the writer; the map is simply cleared when it grows past this.
const RESOURCE_CACHE_MAX: usize = 4096;

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
];

/// An `api_keys` row (columns as [`API_KEY_COLUMNS`]); the outer error is SQLite's, the inner one
/// a corrupt row.
fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<ApiKeyRecord>> {
    Ok(api_key_record(r.get(0)?, r.get(1)?, &r.get::<_, String>(2)?, &r.get::<_, Vec<u8>>(3)?, r.get(4)?, r.get(5)?))
}

/// Maps `rusqlite` errors into [`StoreError::Database`].
trait Db<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(|e| StoreError::Database(e.to_string()))
    }
}

// === span bodies ===

/// Borrows a BLOB column.
fn blob<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> StoreResult<&'r [u8]> {
    match row.get_ref(idx).db()? {
        rusqlite::types::ValueRef::Blob(b) => Ok(b),
        other => Err(StoreError::Corrupt(format!("expected a blob, got {:?}", other.data_type()))),
    }
}

// === the store ===

/// The writer connection and what it remembers between commits.
struct Writer {
    conn: Connection,
    /// Committed project names → ids.
    projects: HashMap<String, i64>,
    /// Committed resource hashes → ids.
    resources: HashMap<[u8; 32], i64>,
}

/// A pool of read connections.
struct ReadPool {
    conns: Mutex<Vec<Connection>>,
    available: Condvar,
}

/// A read connection borrowed from the pool, returned on drop.
struct Reader<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.conns).push(conn);
            self.pool.available.notify_one();
        }
    }
}

impl ReadPool {
    fn get(&self) -> Reader<'_> {
        let mut conns = lock(&self.conns);
        loop {
            if let Some(conn) = conns.pop() {
                return Reader { pool: self, conn: Some(conn) };
            }
            conns = self.available.wait(conns).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The SQLite [`Store`]: one file, WAL mode, one writer and a pool of readers.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    readers: ReadPool,
    tuning: Tuning,
    checkpointer: Checkpointer,
}

/// Shared between the store and its checkpointer thread.
#[derive(Default)]
struct CheckpointSignal {
    /// (a commit happened since the last checkpoint, the store is being dropped)
    state: Mutex<(bool, bool)>,
    wake: Condvar,
}

/// A background thread that copies the WAL back into the database file (`PRAGMA
/// wal_checkpoint(PASSIVE)`) after commits, at most every [`CHECKPOINT_INTERVAL`], so that commits
/// never wait for a checkpoint (each one writes the log's pages again and fsyncs the database).
struct Checkpointer {
    signal: std::sync::Arc<CheckpointSignal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Least time between two background checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

impl Checkpointer {
    fn start(path: &Path) -> StoreResult<Self> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .db()?;
        // FULL: the log is synced before pages are copied and the database after, so a log that
        // restarts never overwrites frames the database file does not durably hold yet.
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        let signal = std::sync::Arc::new(CheckpointSignal::default());
        let theirs = signal.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || Self::run(&conn, &theirs))
            .map_err(|e| StoreError::Database(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { signal, thread: Some(thread) })
    }

    fn run(conn: &Connection, signal: &CheckpointSignal) {
        loop {
            {
                let mut state = lock(&signal.state);
                while !state.0 && !state.1 {
                    state = signal.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                if state.1 {
                    return;
                }
                state.0 = false;
            }
            // PASSIVE: copies what it can without waiting for readers or the writer.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            std::thread::sleep(CHECKPOINT_INTERVAL);
        }
    }

    /// Called after each commit.
    fn poke(&self) {
        lock(&self.signal.state).0 = true;
        self.signal.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.signal.state).1 = true;
        self.signal.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// A trace touched by one commit: its sequence number and the aggregate of its spans inserted.
struct TraceAgg {
    seq: i64,
    /// No `traces` row yet: inserted at the end of the commit.
    is_new: bool,
    /// Spans the trace held before this commit.
    stored_before: u64,
    start: i64,
    end: i64,
    root: Option<(String, Option<String>)>,
    spans: i64,
    errors: i64,
    /// Distinct `trace_attrs` hashes of the trace's new spans.
    hashes: Vec<i64>,
}

impl SqliteStore {
    /// One of a project's counters (0 for an unknown project).
    fn counter(&self, sql: &str, project: &str) -> StoreResult<u64> {
        self.read(|conn| {
            let n: Option<i64> = conn.query_row(sql, [project], |r| r.get(0)).optional().db()?;
            Ok(unns(n.unwrap_or(0)))
        })
    }

    /// Opens (creating if needed) the database file at `path` and its connections, and sets the
    /// connection pragmas. Does not touch the schema: call [`Store::migrate`] next.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).db()?;
        // 8 KiB pages (only takes effect on a new file, before WAL is enabled): span rows carry
        // their OTLP body (≈ 400 bytes), so bigger pages mean fewer splits per commit.
        conn.pragma_update(None, "page_size", 8192).db()?;
        // WAL: readers never block the writer nor the writer readers, and a commit appends to the
        // log instead of rewriting pages in place. Persistent in the file; must hold before the
        // readers open.
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!("could not enable WAL (journal_mode is {mode})")));
        }
        // FULL: in WAL mode the log is fsynced at every commit, so a commit that returned is on
        // disk (NORMAL would only sync at checkpoints and could lose the last commits on power
        // loss, while the SDK already dropped the acknowledged batches).
        conn.pragma_update(None, "synchronous", "FULL").db()?;
        // Wait instead of failing when another process (a backup, the CLI) holds a lock.
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        // No foreign keys are declared (the derived tables are written only by `commit`, in one
        // transaction); keep enforcement off so no insert pays for a parent lookup.
        conn.pragma_update(None, "foreign_keys", "OFF").db()?;
        // 64 MiB page cache: the hot B-tree pages (index leaves being appended to) stay in memory.
        conn.pragma_update(None, "cache_size", -65_536).db()?;
        // Checkpoints normally run on the checkpointer thread (see `Checkpointer`), off the commit
        // path; the writer only checkpoints itself, as a backstop, once the log passes ~256 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", 65_536).db()?;
        // When the log restarts after a checkpoint, truncate it back to at most 64 MiB so the file
        // does not keep its high-water size.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).db()?;
        // Sorts for the listing (driver mode) and temp indexes stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY").db()?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .db()?;
            r.busy_timeout(BUSY_TIMEOUT).db()?;
            // Readers never write: a bug that tries is an error rather than a second writer.
            r.pragma_update(None, "query_only", "ON").db()?;
            // 16 MiB page cache per reader: trace lookups and listings touch the top of the indexes.
            r.pragma_update(None, "cache_size", -16_384).db()?;
            // Sorts for the listing stay in memory.
            r.pragma_update(None, "temp_store", "MEMORY").db()?;
            readers.push(r);
        }

        Ok(Self {
            writer: Mutex::new(Writer { conn, projects: HashMap::new(), resources: HashMap::new() }),
            readers: ReadPool { conns: Mutex::new(readers), available: Condvar::new() },
            tuning: Tuning::default(),
            checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Most spans stored per trace (default [`super::MAX_SPANS_PER_TRACE`]).
    pub fn set_max_spans_per_trace(&mut self, n: u64) {
        self.tuning.max_spans_per_trace = n.max(1);
    }

    /// A project's id, if it has one.
    fn project_id(conn: &Connection, project: &str) -> StoreResult<Option<i64>> {
        conn.query_row("SELECT id FROM projects WHERE name = ?1", [project], |r| r.get(0)).optional().db()
    }

    /// Runs `f` on a pooled read connection inside one read transaction (one snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut reader = self.readers.get();
        let conn = reader.conn.as_mut().ok_or_else(|| StoreError::Database("reader pool corrupted".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }

    fn commit_in(writer: &mut Writer, batches: &[NewBatch], tuning: Tuning) -> StoreResult<Vec<CommitOutcome>> {
        let Writer { conn, projects, resources } = writer;
        let mut cap = TraceCap::new(tuning.max_spans_per_trace);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        // Ids handed out in this transaction; remembered only once it commits.
        let mut new_projects: HashMap<String, i64> = HashMap::new();
        let mut new_resources: HashMap<[u8; 32], i64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let mut traces: HashMap<(i64, [u8; 16]), TraceAgg> = HashMap::new();
        let mut counters: HashMap<i64, (i64, i64)> = HashMap::new();
        {
            let mut insert_project =
                tx.prepare("INSERT INTO projects (name) VALUES (?1) ON CONFLICT (name) DO NOTHING").db()?;
            let mut select_project = tx.prepare("SELECT id FROM projects WHERE name = ?1").db()?;
            let mut insert_batch = tx
                .prepare(
                    "INSERT OR IGNORE INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, \
                     sdk_version, created_at_ns, received_at_ns, span_count, envelope_sha256) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .db()?;
            let mut select_envelope =
                tx.prepare("SELECT envelope_sha256 FROM batches WHERE project_id = ?1 AND batch_id = ?2").db()?;
            let mut insert_resource =
                tx.prepare("INSERT OR IGNORE INTO resources (hash, body) VALUES (?1, ?2)").db()?;
            let mut select_resource = tx.prepare("SELECT id FROM resources WHERE hash = ?1").db()?;
            let mut select_trace =
                tx.prepare("SELECT id, span_count FROM traces WHERE project_id = ?1 AND trace_id = ?2").db()?;
            let mut insert_span = tx
                .prepare(
                    "INSERT OR IGNORE INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, \
                     end_ns, duration_ns, status, resource_id, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .db()?;
            // Trace sequence numbers are handed out here (the writer is the only one), so spans can
            // be keyed by them before the trace's row is written.
            let mut next_seq: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM traces", [], |r| r.get(0)).db()?;

            let empty_resource = Resource::default();
            let empty_scope = InstrumentationScope::default();
            let mut body = Vec::with_capacity(1024);
            let mut text = String::with_capacity(128);

            for batch in batches {
                let project_id = match projects.get(&batch.project).or_else(|| new_projects.get(&batch.project)) {
                    Some(id) => *id,
                    None => {
                        insert_project.execute([&batch.project]).db()?;
                        let id: i64 = select_project.query_row([&batch.project], |r| r.get(0)).db()?;
                        new_projects.insert(batch.project.clone(), id);
                        id
                    }
                };
                let span_total = batch.request.span_count();
                let inserted = insert_batch
                    .execute(params![
                        project_id,
                        &batch.batch_id[..],
                        &batch.key_id[..],
                        &batch.instance_id[..],
                        batch.sequence as i64,
                        &batch.sdk_name,
                        &batch.sdk_version,
                        batch.created_at_unix_nano as i64,
                        batch.received_at_unix_nano as i64,
                        span_total as i64,
                        &batch.envelope_sha256[..],
                    ])
                    .db()?;
                if inserted == 0 {
                    let stored: Option<Vec<u8>> =
                        select_envelope.query_row(params![project_id, &batch.batch_id[..]], |r| r.get(0)).db()?;
                    outcomes.push(same_envelope(stored.as_deref(), &batch.envelope_sha256));
                    continue;
                }

                let (mut stored, mut over_cap) = (0usize, 0usize);
                for rs in &batch.request.resource_spans {
                    let service = rs.resource.service_name();
                    let service_hash = service.map(|s| attr_hash(SERVICE_KEY, s));
                    for ss in &rs.scope_spans {
                        if ss.spans.is_empty() {
                            continue;
                        }
                        body.clear();
                        encode_spans(&rs.resource, &ss.scope, &[], &mut body);
                        let hash: [u8; 32] = Sha256::digest(&body).into();
                        let resource_id = match resources.get(&hash).or_else(|| new_resources.get(&hash)) {
                            Some(id) => *id,
                            None => {
                                insert_resource.execute(params![&hash[..], &body]).db()?;
                                let id: i64 = select_resource.query_row([&hash[..]], |r| r.get(0)).db()?;
                                new_resources.insert(hash, id);
                                id
                            }
                        };

                        for span in &ss.spans {
                            let agg = match traces.entry((project_id, span.trace_id.0)) {
                                Entry::Occupied(e) => e.into_mut(),
                                Entry::Vacant(e) => {
                                    let existing: Option<(i64, i64)> = select_trace
                                        .query_row(params![project_id, &span.trace_id.0[..]], |r| {
                                            Ok((r.get(0)?, r.get(1)?))
                                        })
                                        .optional()
                                        .db()?;
                                    let (seq, is_new, stored_before) = match existing {
                                        Some((seq, count)) => (seq, false, unns(count)),
                                        None => {
                                            next_seq += 1;
                                            (next_seq - 1, true, 0)
                                        }
                                    };
                                    e.insert(TraceAgg {
                                        seq,
                                        is_new,
                                        stored_before,
                                        start: i64::MAX,
                                        end: i64::MIN,
                                        root: None,
                                        spans: 0,
                                        errors: 0,
                                        hashes: Vec::new(),
                                    })
                                }
                            };
                            if !cap.admit(project_id, span.trace_id.0, span.span_id.0, agg.stored_before) {
                                over_cap += 1;
                                continue;
                            }
                            let start = ns(span.start_time_unix_nano);
                            let end = ns(span.end_time_unix_nano);
                            body.clear();
                            encode_spans(&empty_resource, &empty_scope, std::slice::from_ref(span), &mut body);
                            let n = insert_span
                                .execute(params![
                                    agg.seq,
                                    &span.span_id.0[..],
                                    span.parent_span_id.as_ref().map(|p| &p.0[..]),
                                    &*span.name,
                                    service,
                                    span.kind.as_i32(),
                                    start,
                                    end,
                                    ns(span.duration_nanos()),
                                    span.status.code as i64,
                                    resource_id,
                                    &body,
                                ])
                                .db()?;
                            if n == 0 {
                                continue; // already stored (by an earlier batch)
                            }
                            stored += 1;

                            agg.start = agg.start.min(start);
                            agg.end = agg.end.max(end);
                            agg.spans += 1;
                            if span.status.code == StatusCode::Error {
                                agg.errors += 1;
                            }
                            if span.parent_span_id.is_none() && agg.root.is_none() {
                                agg.root = Some((span.name.to_string(), service.map(str::to_owned)));
                            }
                            let hashes = &mut agg.hashes;
                            let mut add = |h: i64| {
                                if !hashes.contains(&h) {
                                    hashes.push(h);
                                }
                            };
                            if let Some(h) = service_hash {
                                add(h);
                            }
                            // (span names are not indexed: see the module docs)
                            for kv in &span.attributes {
                                if is_indexed_key(&kv.key) && render_value(&kv.value, &mut text) {
                                    add(attr_hash(kv.key.as_bytes(), &text));
                                }
                            }
                        }
                    }
                }
                let c = counters.entry(project_id).or_default();
                c.0 += stored as i64;
                c.1 += 1;
                outcomes.push(CommitOutcome::Stored { spans: stored, over_cap });
            }

            let mut insert_trace = tx
                .prepare(
                    "INSERT INTO traces (id, project_id, trace_id, start_ns, end_ns, has_root, root_name, \
                     root_service, span_count, error_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .db()?;
            let mut update_trace = tx
                .prepare(
                    "UPDATE traces SET start_ns = min(start_ns, ?2), end_ns = max(end_ns, ?3), \
                     root_name = CASE WHEN has_root THEN root_name ELSE ?5 END, \
                     root_service = CASE WHEN has_root THEN root_service ELSE ?6 END, \
                     has_root = max(has_root, ?4), span_count = span_count + ?7, error_count = error_count + ?8 \
                     WHERE id = ?1",
                )
                .db()?;
            let mut insert_attr = tx
                .prepare("INSERT OR IGNORE INTO trace_attrs (project_id, attr_hash, trace_seq) VALUES (?1, ?2, ?3)")
                .db()?;
            let mut touched: Vec<((i64, [u8; 16]), TraceAgg)> = traces.drain().filter(|(_, a)| a.spans > 0).collect();
            // In sequence order: new traces append to the table.
            touched.sort_unstable_by_key(|(_, a)| a.seq);
            let mut attr_rows: Vec<(i64, i64, i64)> = Vec::new();
            for ((project_id, trace_id), agg) in touched {
                let has_root = i64::from(agg.root.is_some());
                let (root_name, root_service) = match agg.root {
                    Some((name, service)) => (Some(name), service),
                    None => (None, None),
                };
                if agg.is_new {
                    insert_trace
                        .execute(params![
                            agg.seq,
                            project_id,
                            &trace_id[..],
                            agg.start,
                            agg.end,
                            has_root,
                            root_name,
                            root_service,
                            agg.spans,
                            agg.errors,
                        ])
                        .db()?;
                } else {
                    update_trace
                        .execute(params![
                            agg.seq,
                            agg.start,
                            agg.end,
                            has_root,
                            root_name,
                            root_service,
                            agg.spans,
                            agg.errors
                        ])
                        .db()?;
                }
                attr_rows.extend(agg.hashes.iter().map(|h| (project_id, *h, agg.seq)));
            }
            // Sorted: consecutive inserts land on neighbouring B-tree pages.
            attr_rows.sort_unstable();
            for (project_id, hash, seq) in &attr_rows {
                insert_attr.execute(params![project_id, hash, seq]).db()?;
            }

            let mut bump = tx
                .prepare(
                    "UPDATE projects SET span_count = span_count + ?2, batch_count = batch_count + ?3 WHERE id = ?1",
                )
                .db()?;
            for (project_id, (spans, batches)) in &counters {
                bump.execute(params![project_id, spans, batches]).db()?;
            }
        }
        tx.commit().db()?;

        projects.extend(new_projects);
        if resources.len() + new_resources.len() > RESOURCE_CACHE_MAX {
            resources.clear();
        }
        resources.extend(new_resources);
        Ok(outcomes)
    }

    fn list_in(conn: &Connection, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let Some(project_id) = Self::project_id(conn, &q.project)? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

        // Span-level column filters, shared by the EXISTS probe and the decoding check; their
        // parameters are numbered from ?3 in both statements.
        let mut span_sql = String::new();
        let mut span_params: Vec<SqlValue> = Vec::new();
        {
            let mut add = |sql: &str, v: SqlValue| {
                span_params.push(v);
                let _ = write!(span_sql, " AND s.{sql} ?{}", span_params.len() + 2);
            };
            if let Some(service) = &q.service {
                add("service =", SqlValue::Text(service.clone()));
            }
            if let Some(name) = &q.span_name {
                add("name =", SqlValue::Text(name.clone()));
            }
            if let Some(status) = q.status {
                add("status =", SqlValue::Integer(status as i64));
            }
            if let Some(min) = q.min_duration_ns {
                add("duration_ns >=", SqlValue::Integer(ns(min)));
            }
            if let Some(max) = q.max_duration_ns {
                add("duration_ns <=", SqlValue::Integer(ns(max)));
            }
        }

        // Hashes of the indexed filters, any of which could drive the query.
        let mut indexed: Vec<i64> = Vec::new();
        if let Some(service) = &q.service {
            indexed.push(attr_hash(SERVICE_KEY, service));
        }
        let attr_hashes: Vec<i64> = q
            .attributes
            .iter()
            .filter(|f| is_indexed_key(&f.key))
            .map(|f| attr_hash(f.key.as_bytes(), &f.value))
            .collect();
        indexed.extend(&attr_hashes);

        // The most selective indexed filter under the threshold drives.
        let mut driver: Option<(i64, usize)> = None;
        if tuning.driver_threshold > 0 {
            let mut count = conn
                .prepare(
                    "SELECT count(*) FROM (SELECT 1 FROM trace_attrs WHERE project_id = ?1 AND attr_hash = ?2 LIMIT ?3)",
                )
                .db()?;
            for h in &indexed {
                let n: i64 =
                    count.query_row(params![project_id, h, tuning.driver_threshold as i64], |r| r.get(0)).db()?;
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n < tuning.driver_threshold && driver.is_none_or(|(_, best)| n < best) {
                    driver = Some((*h, n));
                }
            }
        }

        // ?1 = project, ?2 = driver hash (bound even when unused), ?3.. = span filters, then the rest.
        let mut params: Vec<SqlValue> =
            vec![SqlValue::Integer(project_id), SqlValue::Integer(driver.map_or(0, |d| d.0))];
        params.extend(span_params.iter().cloned());
        let mut sql = String::from(
            "SELECT t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, \
             t.error_count FROM ",
        );
        if driver.is_some() {
            sql.push_str(
                "trace_attrs d CROSS JOIN traces t WHERE d.project_id = ?1 AND d.attr_hash = ?2 \
                 AND t.id = d.trace_seq AND t.project_id = ?1",
            );
        } else if q.status == Some(StatusCode::Error) {
            sql.push_str("traces t INDEXED BY traces_with_errors WHERE t.project_id = ?1");
        } else {
            sql.push_str("traces t INDEXED BY traces_by_start WHERE t.project_id = ?1");
        }
        if q.status == Some(StatusCode::Error) {
            sql.push_str(" AND t.error_count > 0");
        }
        if let Some(from) = q.start_from_ns {
            params.push(SqlValue::Integer(ns(from)));
            let _ = write!(sql, " AND t.start_ns >= ?{}", params.len());
        }
        if let Some(to) = q.start_to_ns {
            params.push(SqlValue::Integer(ns(to)));
            let _ = write!(sql, " AND t.start_ns < ?{}", params.len());
        }
        if let Some((start, seq)) = cursor {
            params.push(SqlValue::Integer(start));
            params.push(SqlValue::Integer(seq));
            let _ = write!(sql, " AND (t.start_ns, t.id) < (?{}, ?{})", params.len() - 1, params.len());
        }
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.id{span_sql})");
        }
        for h in &attr_hashes {
            if driver.is_some_and(|d| d.0 == *h) {
                continue;
            }
            params.push(SqlValue::Integer(*h));
            let _ = write!(
                sql,
                " AND EXISTS (SELECT 1 FROM trace_attrs a WHERE a.project_id = ?1 AND a.attr_hash = ?{} \
                 AND a.trace_seq = t.id)",
                params.len()
            );
        }
        let verify = !q.attributes.is_empty();
        let budget = tuning.scan_budget.max(1);
        params.push(SqlValue::Integer(if verify { budget } else { limit + 1 } as i64));
        let _ = write!(sql, " ORDER BY t.start_ns DESC, t.id DESC LIMIT ?{}", params.len());

        // Decoding check of one candidate trace (only with attribute filters): ?1 = trace, ?2
        // unused, ?3.. = span filters.
        let mut check = if verify {
            Some(conn.prepare(&format!("SELECT s.body FROM spans s WHERE s.trace_seq = ?1{span_sql}")).db()?)
        } else {
            None
        };

        let mut text = String::new();
        let mut stmt = conn.prepare(&sql).db()?;
        let mut rows = stmt.query(params_from_iter(params.iter())).db()?;
        let mut out: Vec<(i64, i64, TraceSummary)> = Vec::with_capacity(limit + 1);
        let mut scanned = 0usize;
        let mut last_scanned: Option<(i64, i64)> = None;
        while let Some(row) = rows.next().db()? {
            scanned += 1;
            let seq: i64 = row.get(0).db()?;
            let start: i64 = row.get(2).db()?;
            last_scanned = Some((start, seq));
            if let Some(check) = check.as_mut() {
                let mut p: Vec<SqlValue> = vec![SqlValue::Integer(seq)];
                if !span_params.is_empty() {
                    p.push(SqlValue::Null);
                    p.extend(span_params.iter().cloned());
                }
                let mut bodies = check.query(params_from_iter(p.iter())).db()?;
                let mut matched = false;
                while let Some(b) = bodies.next().db()? {
                    let span = decode_span_body(blob(b, 0)?)?;
                    if span_matches_attrs(&span, &q.attributes, &mut text) {
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    continue;
                }
            }
            let trace_blob = blob(row, 1)?;
            let trace_id = TraceId::from_slice(trace_blob)
                .ok_or_else(|| StoreError::Corrupt(format!("trace id of {} bytes", trace_blob.len())))?;
            let has_root: i64 = row.get(4).db()?;
            out.push((
                start,
                seq,
                TraceSummary {
                    trace_id,
                    root_name: if has_root != 0 { row.get(5).db()? } else { None },
                    root_service: if has_root != 0 { row.get(6).db()? } else { None },
                    start_unix_nano: unns(start),
                    end_unix_nano: unns(row.get(3).db()?),
                    span_count: unns(row.get(7).db()?),
                    error_count: unns(row.get(8).db()?),
                },
            ));
            if out.len() > limit {
                break;
            }
        }

        let next_cursor = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|(start, seq, _)| encode_cursor(*start, *seq))
        } else if verify && scanned >= budget {
            // Budget spent: the next page continues after the last trace examined.
            last_scanned.map(|(start, seq)| encode_cursor(start, seq))
        } else {
            None
        };
        Ok(TracePage { traces: out.into_iter().map(|(_, _, t)| t).collect(), next_cursor })
    }

    fn get_trace_in(conn: &Connection, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        let Some(project_id) = Self::project_id(conn, project)? else {
            return Ok(Vec::new());
        };
        let seq: Option<i64> = conn
            .query_row(
                "SELECT id FROM traces WHERE project_id = ?1 AND trace_id = ?2",
                params![project_id, &trace_id.0[..]],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        let Some(seq) = seq else {
            return Ok(Vec::new());
        };
        let mut stmt =
            conn.prepare("SELECT resource_id, body FROM spans WHERE trace_seq = ?1 ORDER BY start_ns, span_id").db()?;
        let mut resource_stmt = conn.prepare("SELECT body FROM resources WHERE id = ?1").db()?;
        let mut resources: HashMap<i64, (Resource, InstrumentationScope)> = HashMap::new();
        let mut rows = stmt.query([seq]).db()?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().db()? {
            let resource_id: i64 = row.get(0).db()?;
            let span = decode_span_body(blob(row, 1)?)?;
            if span.trace_id != trace_id {
                return Err(StoreError::Corrupt(format!("span of trace {} filed under {trace_id}", span.trace_id)));
            }
            let (resource, scope) = match resources.get(&resource_id) {
                Some(rs) => rs.clone(),
                None => {
                    let body: Vec<u8> = resource_stmt
                        .query_row([resource_id], |r| r.get(0))
                        .optional()
                        .db()?
                        .ok_or_else(|| StoreError::Corrupt(format!("resource {resource_id} is missing")))?;
                    let rs = decode_resource_body(&body)?;
                    resources.insert(resource_id, rs.clone());
                    rs
                }
            };
            out.push(StoredSpan { resource, scope, span });
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn migrate(&self) -> StoreResult<()> {
        let mut writer = lock(&self.writer);
        let tx = writer.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
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
            tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64).db()?;
        }
        tx.commit().db()
    }

    fn commit(&self, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let out = Self::commit_in(&mut lock(&self.writer), batches, self.tuning)?;
        self.checkpointer.poke();
        Ok(out)
    }

    fn list_traces(&self, q: &TraceQuery) -> StoreResult<TracePage> {
        self.read(|conn| Self::list_in(conn, q, self.tuning))
    }

    fn get_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        self.read(|conn| Self::get_trace_in(conn, project, trace_id))
    }

    fn span_count(&self, project: &str) -> StoreResult<u64> {
        self.counter("SELECT span_count FROM projects WHERE name = ?1", project)
    }

    fn batch_count(&self, project: &str) -> StoreResult<u64> {
        self.counter("SELECT batch_count FROM projects WHERE name = ?1", project)
    }

    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let writer = lock(&self.writer);
        writer
            .conn
            .execute(
                "INSERT INTO api_keys (id, project, scope, secret_sha256, created_at_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.id,
                    key.project,
                    key.scope.as_str(),
                    &key.secret_sha256[..],
                    key.created_at_unix_nano as i64
                ],
            )
            .db()?;
        Ok(())
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|conn| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1");
            conn.query_row(&sql, [id], api_key_row).optional().db()?.transpose()
        })
    }

    fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id")).db()?;
            let rows = stmt.query_map([], api_key_row).db()?;
            rows.map(|r| r.db().and_then(|r| r)).collect()
        })
    }

    fn revoke_api_key(&self, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
        let writer = lock(&self.writer);
        let n = writer
            .conn
            .execute(
                "UPDATE api_keys SET revoked_at_ns = ?2 WHERE id = ?1 AND revoked_at_ns IS NULL",
                params![id, ns(now_unix_nano)],
            )
            .db()?;
        Ok(n == 1)
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).db().map(drop))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::super::common::bench_data::{Rng, realistic_request, report_scale};
    use super::super::conformance::{self, batch, request, span, tid};
    use super::*;

    /// A temporary directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tracex-sqlite-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("traces.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn conformance_suite() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        conformance::run_all(&store);
    }

    /// The same suite with the fallbacks forced: no filter drives the listing (every query walks
    /// `traces` by start), and decoded attribute checks run out of budget every few traces (short
    /// pages with a cursor).
    #[test]
    fn conformance_suite_without_driver_and_tiny_scan_budget() {
        let dir = TempDir::new();
        let mut store = SqliteStore::open(&dir.db()).unwrap();
        store.tuning = Tuning { driver_threshold: 0, scan_budget: 3, ..Tuning::default() };
        conformance::run_all(&store);
    }

    #[test]
    fn trace_cap_is_conformant() {
        let dir = TempDir::new();
        let mut store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        store.set_max_spans_per_trace(4);
        conformance::spans_past_the_trace_cap_are_counted_not_stored(&store);
    }

    #[test]
    fn open_creates_the_file_and_does_not_migrate() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        assert!(dir.db().exists());
        assert!(store.commit(&[batch("p", 1, request("s", vec![span(tid(9, 1), 1, None, "x", 1, 2)]))]).is_err());
        store.migrate().unwrap();
        store.commit(&[batch("p", 1, request("s", vec![span(tid(9, 1), 1, None, "x", 1, 2)]))]).unwrap();
    }

    #[test]
    fn reopened_file_keeps_everything() {
        let dir = TempDir::new();
        let t = tid(9, 2);
        let req = request("svc", vec![span(t, 1, None, "root", 10, 90), span(t, 2, Some(1), "child", 20, 30)]);
        {
            let store = SqliteStore::open(&dir.db()).unwrap();
            store.migrate().unwrap();
            store.commit(&[batch("p", 1, req.clone())]).unwrap();
            store
                .insert_api_key(&ApiKeyRecord {
                    id: "k".into(),
                    project: "p".into(),
                    scope: crate::store::KeyScope::Read,
                    secret_sha256: [1; 32],
                    created_at_unix_nano: 5,
                    revoked_at_unix_nano: None,
                })
                .unwrap();
        }
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        assert_eq!(store.get_trace("p", t).unwrap().len(), 2);
        assert_eq!(store.span_count("p").unwrap(), 2);
        assert_eq!(store.batch_count("p").unwrap(), 1);
        assert!(store.api_key("k").unwrap().is_some());
        // Idempotency survives the restart; new data appends after the old.
        assert_eq!(store.commit(&[batch("p", 1, req)]).unwrap(), vec![CommitOutcome::Duplicate]);
        let t2 = tid(9, 3);
        let out = store.commit(&[batch("p", 2, request("svc", vec![span(t2, 1, None, "next", 100, 200)]))]).unwrap();
        assert_eq!(out, vec![CommitOutcome::Stored { spans: 1, over_cap: 0 }]);
        assert_eq!(store.get_trace("p", t2).unwrap()[0].span.name, "next");
        assert_eq!(store.get_trace("p", t).unwrap().len(), 2);
        let page = store.list_traces(&TraceQuery { project: "p".into(), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(page.traces.iter().map(|s| s.trace_id).collect::<Vec<_>>(), vec![t2, t]);
    }

    #[test]
    fn a_failed_commit_stores_nothing_of_any_batch() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        // Make the database refuse one span half-way through the call.
        lock(&store.writer)
            .conn
            .execute_batch(
                "CREATE TEMP TRIGGER refuse_boom BEFORE INSERT ON main.spans WHEN NEW.name = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let t1 = tid(9, 4);
        let t2 = tid(9, 5);
        let good = batch("fresh-project", 1, request("fresh-service", vec![span(t1, 1, None, "ok", 1, 2)]));
        let bad = batch(
            "fresh-project",
            2,
            request("svc", vec![span(t2, 1, None, "fine", 3, 4), span(t2, 2, Some(1), "boom", 3, 4)]),
        );
        let err = store.commit(&[good.clone(), bad.clone()]).unwrap_err();
        assert!(matches!(err, StoreError::Database(ref m) if m.contains("refused")), "{err}");

        assert_eq!(store.batch_count("fresh-project").unwrap(), 0);
        assert_eq!(store.span_count("fresh-project").unwrap(), 0);
        assert!(store.get_trace("fresh-project", t1).unwrap().is_empty());
        assert!(store.get_trace("fresh-project", t2).unwrap().is_empty());
        let q = TraceQuery { project: "fresh-project".into(), limit: 10, ..Default::default() };
        assert!(store.list_traces(&q).unwrap().traces.is_empty());
        {
            let w = lock(&store.writer);
            for table in ["projects", "batches", "resources", "spans", "traces", "trace_attrs"] {
                let n: i64 = w.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
                assert_eq!(n, 0, "{table} kept rows of the failed commit");
            }
        }

        // The ids handed out in the failed transaction are not reused from a stale cache.
        assert_eq!(store.commit(&[good]).unwrap(), vec![CommitOutcome::Stored { spans: 1, over_cap: 0 }]);
        let got = store.get_trace("fresh-project", t1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].resource.service_name(), Some("fresh-service"));
        assert_eq!(store.list_traces(&q).unwrap().traces.len(), 1);
        assert_eq!(store.batch_count("fresh-project").unwrap(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        lock(&store.writer).conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(store.migrate(), Err(StoreError::Database(_))));
    }

    #[test]
    fn reads_run_while_commits_are_in_progress() {
        let dir = TempDir::new();
        let store = std::sync::Arc::new(SqliteStore::open(&dir.db()).unwrap());
        conformance::readers_never_see_partial_commits(store);
    }

    #[test]
    fn listing_queries_use_indexes() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let w = lock(&store.writer);
        let plan = |sql: &str| -> String {
            let mut stmt = w.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        };
        let p = plan(
            "SELECT t.trace_id FROM traces t INDEXED BY traces_by_start WHERE t.project_id = 1 \
             AND (t.start_ns, t.id) < (5, 9) AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.id \
             AND s.status = 2) ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        assert!(p.contains("traces_by_start"), "{p}");
        assert!(p.contains("USING INDEX spans_by_trace (trace_seq=?)"), "the EXISTS probe uses the spans key: {p}");
        let p = plan(
            "SELECT t.trace_id FROM traces t INDEXED BY traces_with_errors WHERE t.project_id = 1 \
             AND t.error_count > 0 ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        let p = plan(
            "SELECT t.trace_id FROM trace_attrs d CROSS JOIN traces t WHERE d.project_id = 1 AND d.attr_hash = 7 \
             AND t.id = d.trace_seq AND t.project_id = 1 ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(p.starts_with("SEARCH d USING COVERING INDEX") || p.starts_with("SEARCH d USING PRIMARY KEY"), "{p}");
        assert!(p.contains("SEARCH t USING INTEGER PRIMARY KEY"), "{p}");
        let p = plan("SELECT resource_id, body FROM spans WHERE trace_seq = 3 ORDER BY start_ns, span_id");
        assert!(p.contains("SEARCH spans USING INDEX spans_by_trace (trace_seq=?)"), "{p}");
    }

    // === ingest timing ===

    /// Ingest throughput: `cargo test --release -p tracex-collector store::sqlite -- --ignored --nocapture`.
    /// `TRACEX_BENCH_ROUNDS` (default 10) commits of `TRACEX_BENCH_BATCHES` (default 200) batches of
    /// 512 spans into a fresh temp-file database.
    #[test]
    #[ignore = "timing; run in release mode"]
    fn ingest_throughput() {
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let rounds = env("TRACEX_BENCH_ROUNDS", 10);
        let per_call = env("TRACEX_BENCH_BATCHES", 200);
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let services = ["facilitator", "settler", "gateway"];
        let (mut total_spans, mut total_time) = (0usize, Duration::ZERO);
        let mut n = 0u32;
        for round in 0..rounds {
            let batches: Vec<NewBatch> = (0..per_call)
                .map(|i| {
                    n += 1;
                    let req = realistic_request(
                        &mut rng,
                        services[i % 3],
                        1_750_000_000_000_000_000 + u64::from(n) * 1_000_000,
                    );
                    batch("bench", n, req)
                })
                .collect();
            let spans: usize = batches.iter().map(|b| b.request.span_count()).sum();
            let t0 = Instant::now();
            let out = store.commit(&batches).unwrap();
            let dt = t0.elapsed();
            assert!(out.iter().all(|o| matches!(o, CommitOutcome::Stored { spans: 512, over_cap: 0 })));
            total_spans += spans;
            total_time += dt;
            println!(
                "round {round}: {spans} spans in {:.1} ms = {:.0} spans/s",
                dt.as_secs_f64() * 1e3,
                spans as f64 / dt.as_secs_f64()
            );
        }
        let size = std::fs::metadata(dir.db()).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(dir.0.join("traces.db-wal")).map(|m| m.len()).unwrap_or(0);
        report_scale(&store, total_spans, total_time, per_call, size);
    }
}
