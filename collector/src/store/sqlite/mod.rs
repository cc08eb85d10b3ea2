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
//! | `traces` | `id` (the trace's *sequence number*), unique `(project_id, trace_id)`, `(project_id, start_ns, id, max_duration_ns)` (migration 7; `(project_id, start_ns)` before), partial `(project_id, start_ns) WHERE error_count > 0` | the per-trace summary maintained on insert: start min, end max, root name and service, span and error counts, (migration 7) the longest span's duration |
//! | `spans` | `(trace_seq, span_id)` (clustered, `WITHOUT ROWID`) | name, service, kind, start, end, duration, status and parent as columns, `resource_id`, and the span itself as OTLP protobuf (`body`) |
//! | `trace_attr_sets` | `(project_id, epoch, attr_hash)` (migration 10; before, `trace_attrs` had a row per trace: `(project_id, epoch, attr_hash, trace_seq)` from migration 8, `(project_id, attr_hash, trace_seq)` before) | the attribute index (below): the set of the epoch's traces holding the hash (`attr_sets`); `epoch` is `trace_seq >> ATTR_EPOCH_SHIFT` |
//! | `api_keys` | `id` | API keys (hash of the secret only) |
//! | `span_stats` | `(project_id, dim_key, minute, service, name, status, dim_value)` | (migration 4) per-minute latency sketches with exact counts and maxima, written with the spans (see [`crate::stats`]) |
//!
//! Write locality drives the layout. Trace and span ids are random, and a B-tree keyed by a random
//! value dirties one page per insert all over the file once it outgrows the cache (and every dirty
//! page is written twice: log, then checkpoint). So only `traces_by_id` (one small entry per trace)
//! is keyed by the trace id; each trace gets an increasing sequence number (its `traces` rowid,
//! handed out by the writer), and spans are clustered by `(trace_seq, span_id)`: new spans append
//! at the end of the table, and a trace's spans sit together for `get_trace` and the filter probes.
//! A commit looks its traces up in `traces_by_id` only when their id is not above every stored
//! one (`Writer::max_trace_ids`): SDK trace ids start with the time, so new traces skip the probe.
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
//! Which rows a commit writes, and how a listing walks the traces, is decided once for both stores
//! in the shared `plan` module; this store executes its steps as SQLite statements.
//!
//! # Listing and the attribute index
//!
//! `list_traces` walks `traces` newest start first (`traces_by_start_duration`, or the partial
//! index of traces with errors when filtering on status `Error`) and keeps a trace when one of its
//! spans matches every span-level filter; that check is an `EXISTS` probe on the `spans` primary
//! key (the trace's spans are contiguous). A minimum duration is checked first against the
//! trace's longest span, which the start index carries: traces that cannot match are passed over
//! in the index without a probe. Pagination is keyset pagination on `(start_ns, trace_seq)`;
//! the cursor is the hex of a version byte, the start and the sequence number of the last trace
//! returned, and stays valid across writes (traces whose start moves may move between pages).
//!
//! Attributes are deliberately **not** stored as one row per span attribute: at ≥ 150,000 spans/s
//! with ~7 attributes each that would be a million index insertions a second. Instead:
//!
//! * `trace_attr_sets` is a *trace-level* index of hashes: for every stored span, each attribute whose
//!   key is *indexed* ([`is_indexed_key`]: every `x402.*` key and a few well-known low-cardinality
//!   keys such as `http.response.status_code`) and whose value is a scalar contributes the 64-bit
//!   FNV-1a hash of `key 0xFF value-as-text`; the span's `service.name` contributes a pseudo-key
//!   too. Entries are deduplicated per trace in memory, and a commit merges each distinct
//!   `(epoch, hash)` into that hash's set for the epoch (`attr_sets`): a value many traces share
//!   (network, scheme, service) is one row per epoch, a high-cardinality one (payer) a small row
//!   per trace. Span names
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
//!   read from its sets (decoded here, handed to the query as a JSON array), looked up in `traces`
//!   and sorted, instead of walking every trace of the
//!   project by start time.
//! * The sets are keyed by epoch (4,096 consecutive trace sequence numbers) before the hash,
//!   so that a commit's entries land in one or two small key ranges rather than on a random page
//!   of the whole index each (`ATTR_EPOCH_SHIFT` has the measurement). A probe for one trace
//!   knows its epoch (one point lookup and a bit test, `tracex_has`); a lookup by hash alone (the
//!   driver, and its count) walks the project's epochs, one seek each.
//! * When attribute filters must be checked by decoding, one page examines at most [`SCAN_BUDGET`]
//!   candidate traces; if it runs out it returns the matches found so far (possibly none) with a
//!   cursor to continue from, so a rare non-indexed value never turns into an unbounded scan.
//!
//! # Scaling note
//!
//! The remaining random-key writes are `traces_by_id` (one per trace) and, within the current
//! epoch of `trace_attr_sets`, the high-cardinality `x402.*` values (payer, amount, transaction hash).
//! `traces_by_id` cannot take an epoch: every commit looks each incoming trace up by id. While it
//! fits in the page cache it is cheap; on databases of hundreds of millions of spans each insert
//! dirties its own page. Retention (deleting old traces) keeps it bounded.

mod attr_sets;
mod audit;
mod bulk;
mod commit;
mod expire;
mod export;
mod keys;
mod list;
mod retention;
mod scan;
mod schema;
mod stats;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tracex_core::{SpanData, TraceId};

use crate::audit::gaps::BatchSeq;
use crate::audit::tree::{NodeId, Nodes};
use crate::audit::{LeafRecord, RowKey, RowLookup, StoredCheckpoint};
use crate::stats::scan::{ScannedSpan, SpanScan};
use crate::stats::{StatFilter, StatRecord};

pub use super::common::{DRIVER_THRESHOLD, SCAN_BUDGET, is_indexed_key};
use super::common::{Tuning, lock, unns};
use super::plan::commit::{FaultHook, WriterCache};
use super::pool::Pool;
use super::{
    ApiKeyRecord, CommitOutcome, Expired, NewBatch, Store, StoreError, StoreResult, StoredSpan, TracePage, TraceQuery,
};

/// Traces per epoch of the attribute index, as a shift: a `trace_attr_sets` row's key is `(project,
/// trace_seq >> ATTR_EPOCH_SHIFT, attribute hash)`, so 4,096 consecutive traces share an epoch
/// (and a set; before migration 10 the index had a row per trace, keyed by its `trace_seq` last).
/// Keyed by hash first (before migration 8), each entry of a high-cardinality value (payer,
/// amount) went to a random page of the whole index, and a commit wrote most of the
/// index's pages to the log once the index outgrew a commit: 2,256 bytes reached the disk per
/// span (`--bench store`, 1,048,576 spans). With the epoch first, a commit's entries fall in one
/// or two epochs of ≈ 150 pages: 1,591–1,607 bytes (−29 %), for the same instructions. The price
/// is on the read side: a lookup by hash alone seeks once per epoch of the project (see
/// [`list`]): 300 seeks at 10,000,000 spans in traces of 8. Migration 8 wrote 12: changing it
/// needs a migration that rebuilds the index.
pub(super) const ATTR_EPOCH_SHIFT: u32 = 12;

/// Read connections in the pool.
const READERS: usize = 4;

/// How long a connection waits on a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Declared before the connection, so dropped before it (see [`bulk::Statements`]).
    statements: bulk::Statements,
    conn: Connection,
    /// Committed project and resource ids.
    cache: WriterCache,
    /// Per project, a trace id no stored trace id exceeds (`None`: no trace stored), read once per
    /// project with the index's `max`, then raised after each commit's lookups to the largest
    /// trace id of the commit, probed or not. A trace id above it is not stored, so `existing_traces` does not look for it:
    /// SDK trace ids start with the time (`tracex_core::ids::new_trace_id_at`), so the new traces
    /// of an instance's batch are above everything stored before it, and a one-span trace skips
    /// its point lookup. Sound because this writer is the only one (as for the sequence numbers
    /// it hands out); never lowered, so a rolled-back commit or retention leaves it high, which
    /// only costs lookups.
    max_trace_ids: HashMap<i64, Option<Vec<u8>>>,
}

/// The SQLite [`Store`]: one file, WAL mode, one writer and a pool of readers.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    readers: Pool<Connection>,
    tuning: Tuning,
    fault: FaultHook,
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
/// wal_checkpoint(PASSIVE)`) after every commit, so that commits do not run a checkpoint
/// themselves (each one writes the log's pages again and fsyncs the database) — except the
/// writer's backstop once the log passes 64 MiB, which lets the log restart under saturation (see
/// `wal_autocheckpoint` in [`SqliteStore::open`]).
///
/// After every commit rather than at most every 200 ms (as until 2026-12-05): a checkpoint that
/// had gathered 200 ms of commits wrote back that much at once, and the next commit's fsync of
/// the log waited behind the write-back — the acknowledgement p99 at half the maximum rate was
/// 265–325 ms, against 30–38 ms checkpointing each commit (open-loop ingest bench at 60,000
/// spans/s, alternating). The price is pages rewritten by consecutive commits being copied once
/// per commit: +27 % bytes written a span (1,602–1,620 → 2,045, `--bench store`), still below
/// the 2,234–2,364 of before the attribute index was keyed by epoch; the maximum rate did not
/// move measurably (docs/benchmarks.md, "Acknowledgement latency at a given load").
struct Checkpointer {
    signal: std::sync::Arc<CheckpointSignal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

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
            .spawn(move || {
                // Nothing waits for a checkpoint: the writer gets the core first (crate::priority).
                crate::priority::set_this_thread_nice(crate::priority::BACKGROUND_NICE);
                Self::run(&conn, &theirs);
            })
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
        // Incremental auto-vacuum (also only on a new file): retention deletes in chunks and
        // each chunk gives its free pages back (`expire`), never a whole-file VACUUM.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").db()?;
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
        // Checkpoints run on the checkpointer thread (see `Checkpointer`), off the commit path. But
        // while commits follow each other without a pause, that thread never finds the log fully
        // copied (the writer appends while it copies), and SQLite restarts the log only at a write
        // transaction that does: the log grew until this threshold, every frame extending the
        // file, for which ext4 allocates blocks and zeroes new page-cache folios (over 40 % of
        // the writer's time was in the kernel at saturation, `__pi_memset` under
        // `ext4_da_write_begin` its largest item). So the writer copies what the thread has not
        // yet once the log passes 8,192 pages (64 MiB; PASSIVE: it waits for no reader; then one
        // fsync of the database file), and unless a reader still holds old frames the log
        // restarts at its next commit, overwriting the same 64 MiB of file that the page cache
        // holds. 65,536 pages (512 MiB) before: sealed ingest 181–235k → 213–260k spans/s in
        // eight alternating pairs (docs/benchmarks.md, "The log restarts").
        conn.pragma_update(None, "wal_autocheckpoint", 8_192).db()?;
        // When the log restarts, truncate it to at most 64 MiB: the size it cycles through, which
        // it then keeps instead of its high-water size.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).db()?;
        // Sorts for the listing (driver mode) and temp indexes stay in memory.
        conn.pragma_update(None, "temp_store", "MEMORY").db()?;
        // The attribute sets' functions: commits merge into sets, retention removes from them,
        // migration 10 builds them.
        attr_sets::register(&conn).db()?;

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
            // The listing's probe of an attribute set (`tracex_has`).
            attr_sets::register(&r).db()?;
            readers.push(r);
        }

        Ok(Self {
            writer: Mutex::new(Writer {
                statements: bulk::Statements::default(),
                conn,
                cache: WriterCache::default(),
                max_trace_ids: HashMap::new(),
            }),
            readers: Pool::new(readers),
            tuning: Tuning::default(),
            fault: FaultHook::default(),
            checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Most spans stored per trace (default [`super::MAX_SPANS_PER_TRACE`]).
    pub fn set_max_spans_per_trace(&mut self, n: u64) {
        self.tuning.max_spans_per_trace = n.max(1);
    }

    /// Turns appending to the audit log on (the default) or off (`audit_log`).
    pub fn set_audit_log(&mut self, on: bool) {
        self.tuning.audit_log = on;
    }

    /// A project's id, if it has one.
    fn project_id(conn: &Connection, project: &str) -> StoreResult<Option<i64>> {
        conn.query_row("SELECT id FROM projects WHERE name = ?1", [project], |r| r.get(0)).optional().db()
    }

    /// Runs `f` on a pooled read connection inside one read transaction (one snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut reader = self.readers.get();
        let conn = reader.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn migrate(&self) -> StoreResult<()> {
        schema::migrate(&mut lock(&self.writer).conn)
    }

    fn commit(&self, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.commit_in(&mut lock(&self.writer), batches)?;
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
        keys::insert(&lock(&self.writer).conn, key)
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|conn| keys::get(conn, id))
    }

    fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(keys::list)
    }

    fn revoke_api_key(&self, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
        keys::revoke(&lock(&self.writer).conn, id, now_unix_nano)
    }

    fn stat_rows(&self, filter: &StatFilter) -> StoreResult<Vec<StatRecord>> {
        self.read(|conn| Self::stat_rows_in(conn, filter))
    }

    fn scan_spans(&self, scan: &SpanScan, cap: usize, each: &mut dyn FnMut(ScannedSpan)) -> StoreResult<usize> {
        self.read(|conn| Self::scan_spans_in(conn, scan, cap, each))
    }

    fn recent_spans(&self, project: &str, service: Option<&str>, max_spans: usize) -> StoreResult<Vec<SpanData>> {
        self.read(|conn| Self::recent_spans_in(conn, project, service, max_spans))
    }

    fn project_names(&self) -> StoreResult<Vec<String>> {
        self.read(Self::project_names_in)
    }

    fn retention_overrides(&self) -> StoreResult<Vec<(String, u32)>> {
        self.read(retention::overrides)
    }

    fn set_retention_override(&self, project: &str, days: Option<u32>) -> StoreResult<bool> {
        let mut w = lock(&self.writer);
        let tx = w.conn.transaction().db()?;
        let existed = retention::set(&tx, project, days)?;
        tx.commit().db()?;
        Ok(existed)
    }

    fn expire(&self, project: &str, before_ns: u64, max_traces: usize, max_minutes: i64) -> StoreResult<Expired> {
        let out = Self::expire_in(&mut lock(&self.writer).conn, project, before_ns, max_traces, max_minutes)?;
        self.checkpointer.poke();
        Ok(out)
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).db().map(drop))
    }

    fn audit_size(&self) -> StoreResult<u64> {
        self.read(audit::size)
    }

    fn audit_nodes(&self, ids: &[NodeId]) -> StoreResult<Nodes> {
        self.read(|conn| audit::nodes(conn, ids))
    }

    fn audit_leaves(&self, from: u64, limit: usize) -> StoreResult<Vec<LeafRecord>> {
        self.read(|conn| audit::leaves(conn, from, limit))
    }

    fn audit_leaf_of_batch(&self, project: &str, batch_id: &[u8; 16]) -> StoreResult<Option<u64>> {
        self.read(|conn| audit::leaf_of_batch(conn, project, batch_id))
    }

    fn audit_leaves_of_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<u64>> {
        self.read(|conn| audit::leaves_of_trace(conn, project, &trace_id.0))
    }

    fn batch_sequences(
        &self,
        project: &str,
        after_instance: Option<[u8; 8]>,
        limit: usize,
    ) -> StoreResult<Vec<BatchSeq>> {
        self.read(|conn| audit::batch_sequences(conn, project, after_instance, limit))
    }

    fn audit_rows(&self, project: &str, keys: &[([u8; 16], [u8; 8])]) -> StoreResult<Vec<RowLookup>> {
        self.read(|conn| audit::rows(conn, project, keys))
    }

    fn audit_resource(&self, id: i64) -> StoreResult<Option<([u8; 32], Vec<u8>)>> {
        self.read(|conn| audit::resource(conn, id))
    }

    fn audit_span_totals(&self) -> StoreResult<(u64, u64)> {
        self.read(audit::span_totals)
    }

    fn audit_scan_rows(&self, after: Option<(i64, [u8; 8])>, limit: usize) -> StoreResult<Vec<RowKey>> {
        self.read(|conn| audit::scan_rows(conn, after, limit))
    }

    fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> StoreResult<()> {
        audit::insert_checkpoint(&lock(&self.writer).conn, checkpoint)
    }

    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>> {
        self.read(audit::latest_checkpoint)
    }

    fn checkpoints(&self, from_size: u64, limit: usize) -> StoreResult<Vec<StoredCheckpoint>> {
        self.read(|conn| audit::checkpoints(conn, from_size, limit))
    }

    fn claim_export_cursor(
        &self,
        name: &str,
        holder: &str,
        now_ns: u64,
        lease_ns: u64,
        start: u64,
    ) -> StoreResult<Option<u64>> {
        export::claim(&lock(&self.writer).conn, name, holder, now_ns, lease_ns, start)
    }

    fn advance_export_cursor(&self, name: &str, holder: &str, from: u64, to: u64) -> StoreResult<bool> {
        export::advance(&lock(&self.writer).conn, name, holder, from, to)
    }

    #[cfg(test)]
    fn fail_commits_at_step(&self, step: Option<usize>) {
        self.fault.fail_at(step);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::super::common::bench_data;
    use super::super::conformance::{self, batch, request, span, tid};
    use super::super::plan::commit::TraceRow;
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

    /// The checkpointer yields the core to the writer (crate::priority).
    #[cfg(target_os = "linux")]
    #[test]
    fn checkpointer_runs_at_background_priority() {
        let dir = TempDir::new();
        let _store = SqliteStore::open(&dir.db()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // The thread sets its own value as it starts: wait for it, and fail if it never does.
        loop {
            match crate::priority::nice_of_thread("sqlite-checkpoi") {
                Some(n) if n >= crate::priority::BACKGROUND_NICE => break,
                _ if std::time::Instant::now() > deadline => panic!("no checkpointer thread at nice ≥ 10"),
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }

    /// New trace rows go in without their id when their sequence numbers run on from the table's
    /// largest id (SQLite numbers them the same), and with it otherwise: both keep the numbers.
    #[test]
    fn new_trace_rows_keep_their_sequence_numbers_with_or_without_the_id_column() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let row = |seq: i64| TraceRow {
            seq,
            project_id: 1,
            trace_id: [u8::try_from(seq).unwrap(); 16],
            start: seq,
            end: seq + 1,
            root: None,
            spans: 1,
            errors: 0,
            max_duration: 1,
        };
        let mut w = lock(&store.writer);
        // Run on from the largest id (none: 1), then with a gap, then not from the largest id.
        commit::insert_traces_alone(&mut w, Some(1), &[row(1), row(2), row(3)]).unwrap();
        commit::insert_traces_alone(&mut w, Some(4), &[row(4), row(6)]).unwrap();
        commit::insert_traces_alone(&mut w, Some(7), &[row(9), row(10)]).unwrap();
        // Told the wrong largest id: the run is numbered by SQLite, and the check fails the insert.
        let err = commit::insert_traces_alone(&mut w, Some(20), &[row(20), row(21)]).unwrap_err();
        assert!(err.to_string().contains("ids up to 12, not 21"), "{err}");
        let ids: Vec<(i64, Vec<u8>)> = w
            .conn
            .prepare("SELECT id, trace_id FROM traces ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(i64, Vec<u8>)> =
            [1, 2, 3, 4, 6, 9, 10].iter().map(|&s| (s, vec![u8::try_from(s).unwrap(); 16])).collect();
        assert_eq!(ids, want);
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

    /// Runs one of the audit conformance checks on a store of its own, with raw SQL beside it.
    fn audit_check(check: fn(&dyn Store, &super::super::conformance_audit::RawSql<'_>)) {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        let conn = Connection::open(dir.db()).unwrap();
        let exec = |sql: &str| conn.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let raw = super::super::conformance_audit::RawSql {
            exec: &exec,
            blob: |b| format!("x'{}'", hex::encode(b)),
            postgres: false,
        };
        check(&store, &raw);
    }

    /// The longest span of each trace, kept at commit and filled in by migration 7 on a database
    /// taken back to version 6.
    #[test]
    fn longest_span_is_kept_and_filled_in_by_the_migration() {
        let dir = TempDir::new();
        let open = || -> Box<dyn Store> { Box::new(SqliteStore::open(&dir.db()).unwrap()) };
        let conn = Connection::open(dir.db()).unwrap();
        attr_sets::register_members(&conn).unwrap();
        let exec = |sql: &str| conn.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let raw = super::super::conformance_duration::RawDb {
            exec: &exec,
            count: &count,
            downgrade: "DROP INDEX traces_by_start_duration; ALTER TABLE traces DROP COLUMN max_duration_ns; \
                        CREATE INDEX traces_by_start ON traces (project_id, start_ns); \
                        CREATE TABLE trace_attrs (project_id INTEGER NOT NULL, attr_hash INTEGER NOT NULL, \
                        trace_seq INTEGER NOT NULL, PRIMARY KEY (project_id, attr_hash, trace_seq)) WITHOUT ROWID; \
                        INSERT INTO trace_attrs SELECT s.project_id, s.attr_hash, j.value FROM trace_attr_sets s, \
                        json_each(tracex_members(s.epoch, s.members)) j; DROP TABLE trace_attr_sets; \
                        PRAGMA user_version = 6;",
        };
        super::super::conformance_duration::longest_span_is_kept_and_filled_in_by_the_migration(&open, &raw);
    }

    /// Commits `groups` commits of 8 batches of project `p`, each a `realistic_request` (64 traces
    /// of 8 spans), drawn from seed `seed`.
    fn commit_realistic(store: &SqliteStore, seed: u64, groups: usize) {
        let mut rng = bench_data::Rng(seed);
        for group in 0..groups {
            let batches: Vec<_> = (0..8)
                .map(|k| {
                    let n = u32::try_from(group * 8 + k).unwrap();
                    batch("p", n, bench_data::realistic_request(&mut rng, "svc", 1_750_000_000_000_000_000))
                })
                .collect();
            store.commit(&batches).unwrap();
        }
    }

    /// Migrations 8 and 10 rebuild the attribute index (by epoch, then as sets), row for row, and a
    /// lookup by hash alone finds traces in every epoch (the first and the last of 4,608 traces:
    /// epochs 0 and 1).
    #[test]
    fn attribute_index_is_rebuilt_as_sets_by_epoch_and_found_in_every_epoch() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        commit_realistic(&store, 11, 9);
        let raw = Connection::open(dir.db()).unwrap();
        // Every (project, hash, trace) the sets hold, in order.
        let rows = || -> Vec<(i64, i64, i64)> {
            let mut stmt = raw.prepare("SELECT project_id, epoch, attr_hash, members FROM trace_attr_sets").unwrap();
            let mut out = Vec::new();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let (project, epoch, hash): (i64, i64, i64) = (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap());
                let members: Vec<u8> = r.get(3).unwrap();
                let members = attr_sets::decode(&members).unwrap();
                assert!(!members.is_empty(), "an empty set is never kept");
                out.extend(members.into_iter().map(|p| (project, hash, attr_sets::seq_at(epoch, p))));
            }
            out.sort_unstable();
            out
        };
        let before = rows();
        assert_eq!(before.iter().map(|r| r.2 >> ATTR_EPOCH_SHIFT).max(), Some(1), "two epochs");
        let sets: i64 = raw.query_row("SELECT count(*) FROM trace_attr_sets", [], |r| r.get(0)).unwrap();
        assert!(sets < i64::try_from(before.len() / 2).unwrap(), "{sets} sets for {} entries", before.len());
        // Back to version 7: one row per (project, hash, trace), keyed by hash.
        raw.execute_batch(
            "CREATE TABLE trace_attrs (project_id INTEGER NOT NULL, attr_hash INTEGER NOT NULL, \
             trace_seq INTEGER NOT NULL, PRIMARY KEY (project_id, attr_hash, trace_seq)) WITHOUT ROWID; \
             DROP TABLE trace_attr_sets; PRAGMA user_version = 7;",
        )
        .unwrap();
        {
            let mut insert = raw.prepare("INSERT INTO trace_attrs VALUES (?1, ?2, ?3)").unwrap();
            for (project, hash, seq) in &before {
                insert.execute([project, hash, seq]).unwrap();
            }
        }
        drop(store);
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        assert_eq!(rows(), before);

        let page =
            store.list_traces(&TraceQuery { project: "p".into(), limit: 1000, ..TraceQuery::default() }).unwrap();
        let newest = page.traces.first().unwrap().trace_id;
        let mut oldest = page;
        while let Some(cursor) = oldest.next_cursor.clone() {
            oldest = store
                .list_traces(&TraceQuery {
                    project: "p".into(),
                    limit: 1000,
                    cursor: Some(cursor),
                    ..TraceQuery::default()
                })
                .unwrap();
        }
        let oldest = oldest.traces.last().unwrap().trace_id;
        for trace in [newest, oldest] {
            let spans = store.get_trace("p", trace).unwrap();
            let payer = spans.iter().find_map(|s| s.span.attribute("x402.payer")).unwrap();
            let tracex_core::Value::String(payer) = payer else { panic!("{payer:?}") };
            let q = TraceQuery {
                project: "p".into(),
                attributes: vec![super::super::AttributeFilter { key: "x402.payer".into(), value: payer.to_string() }],
                limit: 10,
                ..TraceQuery::default()
            };
            let found: Vec<TraceId> = store.list_traces(&q).unwrap().traces.iter().map(|t| t.trace_id).collect();
            assert_eq!(found, [trace]);
        }

        // A value many traces share: its sets are bitmaps (over 255 traces an epoch). Driven by
        // its decoded sets, and walked by start with each trace's set probed (`tracex_has`), the
        // listing finds exactly the traces one of whose spans holds it.
        let walk = |store: &SqliteStore, attributes: Vec<super::super::AttributeFilter>| -> Vec<TraceId> {
            let mut ids = Vec::new();
            let mut cursor = None;
            loop {
                let q = TraceQuery {
                    project: "p".into(),
                    attributes: attributes.clone(),
                    limit: 1000,
                    cursor,
                    ..TraceQuery::default()
                };
                let page = store.list_traces(&q).unwrap();
                ids.extend(page.traces.iter().map(|t| t.trace_id));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return ids,
                }
            }
        };
        let network = |trace: TraceId| -> Vec<String> {
            let spans = store.get_trace("p", trace).unwrap();
            let mut values: Vec<String> = spans
                .iter()
                .filter_map(|s| match s.span.attribute("x402.network") {
                    Some(tracex_core::Value::String(v)) => Some(v.to_string()),
                    _ => None,
                })
                .collect();
            values.dedup();
            values
        };
        let all = walk(&store, Vec::new());
        assert_eq!(all.len(), 4_608);
        let value = network(newest).remove(0);
        let want: Vec<TraceId> = all.iter().copied().filter(|t| network(*t).contains(&value)).collect();
        assert!(want.len() > 1_000, "{} traces on {value}", want.len());
        let filter = vec![super::super::AttributeFilter { key: "x402.network".into(), value }];
        assert_eq!(walk(&store, filter.clone()), want, "driven by the sets");
        let mut store = store;
        store.tuning = Tuning { driver_threshold: 0, ..Tuning::default() };
        assert_eq!(walk(&store, filter), want, "each trace's set probed");
    }

    #[test]
    fn audit_verify_names_what_was_tampered() {
        audit_check(super::super::conformance_audit::verify_names_what_was_tampered);
    }

    #[test]
    fn audit_verify_reads_leaves_of_both_claim_formats() {
        audit_check(super::super::conformance_audit::verify_reads_leaves_of_both_claim_formats);
    }

    #[test]
    fn with_the_audit_log_off_batches_are_stored_without_leaves() {
        let dir = TempDir::new();
        let mut store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        store.set_audit_log(false);
        let out = store.commit(&[batch("p", 1, request("svc", vec![span(tid(1, 1), 1, None, "a", 1, 2)]))]).unwrap();
        assert_eq!(out, [CommitOutcome::Stored { spans: 1, over_cap: 0, leaf_index: None }]);
        assert_eq!((store.audit_size().unwrap(), store.audit_span_totals().unwrap()), (0, (1, 0)));
        store.set_audit_log(true);
        let out = store.commit(&[batch("p", 2, request("svc", vec![span(tid(1, 2), 1, None, "b", 1, 2)]))]).unwrap();
        assert_eq!(out, [CommitOutcome::Stored { spans: 1, over_cap: 0, leaf_index: Some(0) }]);
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

    /// Retention leaves no index or statistics rows behind, and the file shrinks (incremental
    /// auto-vacuum), chunk by chunk.
    #[test]
    fn retention_removes_every_row_and_gives_pages_back() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let mut rng = bench_data::Rng(5);
        let batches: Vec<_> = (0..8)
            .map(|n| batch("ttl", n, bench_data::realistic_request(&mut rng, "svc", 1_750_000_000_000_000_000)))
            .collect();
        store.commit(&batches).unwrap();
        let raw = Connection::open(dir.db()).unwrap();
        let count =
            |table: &str| -> i64 { raw.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap() };
        let pages = || -> i64 { raw.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
        assert!(count("trace_attr_sets") > 1_000 && count("span_stats") > 10);
        let (full, mut chunks) = (pages(), 0);
        while !store.expire("ttl", u64::MAX >> 1, 100, 60).unwrap().done {
            chunks += 1;
        }
        assert!(chunks >= 5, "512 traces at 100 a chunk: {chunks}");
        // The checkpointer copies the log into the file in the background: do it here.
        raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        for table in ["traces", "spans", "trace_attr_sets", "span_stats"] {
            assert_eq!(count(table), 0, "{table}");
        }
        assert!(pages() < full / 4, "the file gave its pages back: {} of {full}", pages());
    }

    #[test]
    fn reopened_file_keeps_everything() {
        let dir = TempDir::new();
        conformance::a_reopened_store_keeps_everything(&|| Box::new(SqliteStore::open(&dir.db()).unwrap()));
    }

    #[test]
    fn spans_join_their_trace_in_any_id_order() {
        let dir = TempDir::new();
        conformance::spans_join_their_trace_in_any_id_order(&|| Box::new(SqliteStore::open(&dir.db()).unwrap()));
    }

    #[test]
    fn a_failed_commit_stores_nothing_of_any_batch() {
        let dir = TempDir::new();
        conformance::a_failed_commit_stores_nothing_of_any_batch(&SqliteStore::open(&dir.db()).unwrap());
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
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(&dir.db()).unwrap());
        conformance::readers_never_see_partial_commits(&store);
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
            "SELECT t.trace_id FROM traces t INDEXED BY traces_by_start_duration WHERE t.project_id = 1 \
             AND t.max_duration_ns >= 7 AND (t.start_ns, t.id) < (5, 9) AND EXISTS (SELECT 1 FROM spans s \
             WHERE s.trace_seq = t.id AND s.status = 2) ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        assert!(p.contains("traces_by_start_duration"), "{p}");
        assert!(p.contains("USING INDEX spans_by_trace (trace_seq=?)"), "the EXISTS probe uses the spans key: {p}");
        let p = plan(
            "SELECT t.trace_id FROM traces t INDEXED BY traces_with_errors WHERE t.project_id = 1 \
             AND t.error_count > 0 ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        let epochs = list::EPOCHS.replace("?1", "1");
        let p = plan(&format!(
            "{epochs} SELECT d.epoch, d.members FROM e CROSS JOIN trace_attr_sets d WHERE d.project_id = 1 \
             AND d.epoch = e.n AND d.attr_hash = 7"
        ));
        // One seek per epoch (the next one past the last), then one per (epoch, hash).
        assert!(p.contains("SEARCH trace_attr_sets USING PRIMARY KEY (project_id=? AND epoch>?)"), "{p}");
        assert!(p.contains("SEARCH d USING PRIMARY KEY (project_id=? AND epoch=? AND attr_hash=?)"), "{p}");
        let p = plan(
            "SELECT t.trace_id FROM json_each('[1,2]') d CROSS JOIN traces t WHERE t.id = d.value \
             AND t.project_id = 1 ORDER BY t.start_ns DESC, t.id DESC LIMIT 10",
        );
        assert!(p.contains("SEARCH t USING INTEGER PRIMARY KEY"), "the driver's candidates are rowid lookups: {p}");
        let p = plan(
            &list::attr_probe("7")
                .replace("?1", "1")
                .replace("EXISTS", "SELECT t.trace_id FROM traces t WHERE t.project_id = 1 AND EXISTS"),
        );
        assert!(
            p.contains("USING PRIMARY KEY (project_id=? AND epoch=? AND attr_hash=?)"),
            "the probe is one point lookup: {p}"
        );
        let p = plan("SELECT resource_id, body FROM spans WHERE trace_seq = 3 ORDER BY start_ns, span_id");
        assert!(p.contains("SEARCH spans USING INDEX spans_by_trace (trace_seq=?)"), "{p}");
    }

    // === statistics timing ===

    /// Statistics over a day: `cargo test -p tracex-collector --lib store::sqlite::tests::stats_query_timing
    /// -- --ignored --nocapture`. One 512-span batch per minute for `TRACEX_BENCH_MINUTES` (default
    /// 1440) minutes from 3 services (`TRACEX_BENCH_SPANS_PER_MINUTE` of its spans, default all), then
    /// the API's queries, timed (store read + merge).
    #[test]
    #[ignore = "timing"]
    fn stats_query_timing() {
        use crate::stats::query::{StatsQuery, answer};
        use std::time::Instant;
        let minutes: u64 = std::env::var("TRACEX_BENCH_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1440);
        // Fewer spans a minute still touch every key (8 spans a trace, each name once): the rows,
        // which the queries' time depends on, stay nearly the same; the spans to commit do not.
        let per_minute: usize =
            std::env::var("TRACEX_BENCH_SPANS_PER_MINUTE").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let t0 = 29_166_720 * crate::stats::MINUTE_NS;
        let mut rng = bench_data::Rng(3);
        let t = Instant::now();
        for chunk in (0..minutes).collect::<Vec<_>>().chunks(60) {
            let batches: Vec<_> = chunk
                .iter()
                .map(|m| {
                    let service = ["facilitator", "settler", "gateway"][(m % 3) as usize];
                    let mut req = bench_data::realistic_request(&mut rng, service, t0 + m * crate::stats::MINUTE_NS);
                    req.resource_spans[0].scope_spans[0].spans.truncate(per_minute);
                    batch("bench", u32::try_from(*m).unwrap(), req)
                })
                .collect();
            store.commit(&batches).unwrap();
        }
        let rows: i64 =
            lock(&store.writer).conn.query_row("SELECT count(*) FROM span_stats", [], |r| r.get(0)).unwrap();
        println!(
            "{} spans over {minutes} min committed in {:.1} s; {rows} statistics rows",
            minutes * per_minute as u64,
            t.elapsed().as_secs_f64()
        );
        let run = |what: &str, tweak: &dyn Fn(&mut StatsQuery)| {
            let (from_ns, to_ns, step_seconds) =
                StatsQuery::range(t0, t0 + minutes * crate::stats::MINUTE_NS, None).unwrap();
            let mut q = StatsQuery {
                project: "bench".into(),
                from_ns,
                to_ns,
                step_seconds,
                sla_ms: Some(3.0),
                ..StatsQuery::default()
            };
            tweak(&mut q);
            let mut times = Vec::new();
            let mut groups = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let rows = store.stat_rows(&q.sketch_filter().unwrap()).unwrap();
                groups = answer(q.clone(), rows).unwrap().groups.len();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!("{what}: {groups} groups, median {:.1} ms, max {:.1} ms", times[2], times[4]);
        };
        run("one service by span name", &|q| q.service = Some("settler".into()));
        run("one service by span name, hourly steps (rollup rows)", &|q| {
            q.service = Some("settler".into());
            (q.from_ns, q.to_ns, q.step_seconds) = StatsQuery::range(q.from_ns, q.to_ns, Some(3_600)).unwrap();
        });
        run("every service by span name", &|_| {});
        run("one service, name, by x402.network", &|q| {
            q.service = Some("settler".into());
            q.name = Some("settle".into());
            q.group_by = Some("x402.network".into());
        });
    }

    /// How long migration 10 takes on an existing database: `cargo test -p tracex-collector
    /// --release --lib store::sqlite::tests::attribute_sets_migration_timing -- --ignored
    /// --nocapture`. Stores `TRACEX_BENCH_SPANS` spans (default 1,048,576; traces of 8, the
    /// ingest bench's shape), takes the attribute index back to version 9's row per trace, and
    /// times the migration that builds the sets again (checked row for row).
    #[test]
    #[ignore = "timing; run in release mode"]
    fn attribute_sets_migration_timing() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        let spans: usize = std::env::var("TRACEX_BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
        commit_realistic(&store, 13, spans.div_ceil(512 * 8));
        let raw = Connection::open(dir.db()).unwrap();
        attr_sets::register_members(&raw).unwrap();
        let count = |sql: &str| -> i64 { raw.query_row(sql, [], |r| r.get(0)).unwrap() };
        let sets_of = |raw: &Connection| -> Vec<(i64, i64, i64, Vec<u8>)> {
            let mut stmt = raw.prepare("SELECT * FROM trace_attr_sets ORDER BY 1, 2, 3").unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap();
            rows.map(Result::unwrap).collect()
        };
        let before = sets_of(&raw);
        raw.execute_batch(
            "CREATE TABLE trace_attrs (project_id INTEGER NOT NULL, epoch INTEGER NOT NULL, \
             attr_hash INTEGER NOT NULL, trace_seq INTEGER NOT NULL, \
             PRIMARY KEY (project_id, epoch, attr_hash, trace_seq)) WITHOUT ROWID; \
             INSERT INTO trace_attrs SELECT s.project_id, s.epoch, s.attr_hash, j.value FROM trace_attr_sets s, \
             json_each(tracex_members(s.epoch, s.members)) j ORDER BY 1, 2, 3, 4; \
             DROP TABLE trace_attr_sets; PRAGMA user_version = 9;",
        )
        .unwrap();
        let rows = count("SELECT count(*) FROM trace_attrs");
        drop(store);
        let store = SqliteStore::open(&dir.db()).unwrap();
        let t = std::time::Instant::now();
        store.migrate().unwrap();
        let took = t.elapsed();
        assert_eq!(sets_of(&raw), before);
        println!(
            "migration 10: {rows} index rows of {spans} spans into {} sets in {:.2} s ({:.0} ns a row)",
            before.len(),
            took.as_secs_f64(),
            took.as_secs_f64() * 1e9 / rows as f64
        );
    }

    // === ingest timing ===

    /// Ingest throughput: `cargo test --release -p tracex-collector store::sqlite -- --ignored --nocapture`.
    /// `TRACEX_BENCH_ROUNDS` (default 10) commits of `TRACEX_BENCH_BATCHES` (default 200) batches of
    /// 512 spans into a fresh temp-file database.
    #[test]
    #[ignore = "timing; run in release mode"]
    fn ingest_throughput() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.migrate().unwrap();
        bench_data::ingest_throughput(&store, || {
            std::fs::metadata(dir.db()).map_or(0, |m| m.len())
                + std::fs::metadata(dir.0.join("traces.db-wal")).map_or(0, |m| m.len())
        });
    }
}
