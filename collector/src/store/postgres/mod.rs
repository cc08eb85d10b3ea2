//! The PostgreSQL store, for when one machine is not enough: several collectors may share one
//! database.
//!
//! # Design
//!
//! The same logical design as the SQLite store (read [`super::sqlite`]'s module docs first): a
//! `traces` summary table keyed by a per-trace *sequence number*, `spans` keyed by
//! `(trace_seq, span_id)` holding each span as OTLP protobuf (`body`) for an exact round trip,
//! deduplicated `resources`, the trace-level attribute hash index `trace_attrs`, `batches` as the
//! idempotency record, and per-project counters. Hashes, bodies, value rendering, the exact
//! attribute check, the cursor format and the listing knobs come from the shared `common` module,
//! and which rows a commit writes and how a listing walks the traces from the shared `plan`
//! module (this store only executes its steps), so both stores answer every query identically. Ids and bodies are `BYTEA`, nanoseconds `BIGINT`
//! (saturating at `i64::MAX`, the year 2262; the bodies keep the exact `u64`s).
//!
//! Differences that PostgreSQL asks for:
//!
//! * Trace sequence numbers come from the sequence `trace_seq` (several writers may share the
//!   database). A trace created by two writers at once is detected (its `traces` insert conflicts)
//!   and the losing commit is retried from the start, as are deadlocks and serialization failures
//!   ([`COMMIT_ATTEMPTS`] in all).
//! * A commit is one transaction of a handful of multi-row statements (`INSERT … SELECT * FROM
//!   UNNEST($1::bytea[], $2::bigint[], …)`, at most [`ROWS_PER_STATEMENT`] rows each), never a round
//!   trip per span: projects, batches (`ON CONFLICT DO NOTHING RETURNING` tells the duplicates),
//!   resources, the lookup of existing traces, spans, new trace rows, updates of existing trace
//!   rows, `trace_attrs` (the span and `trace_attrs` rows of traces new in the transaction by binary
//!   `COPY`, see `commit.rs`), the statistics rows (read `FOR UPDATE`, merged, written back; a row inserted
//!   by a concurrent writer meanwhile retries the commit), counters. It returns once PostgreSQL acknowledged the `COMMIT` (durable
//!   under the default `synchronous_commit = on`).
//! * Listings read inside one `REPEATABLE READ READ ONLY` transaction (one snapshot). When
//!   attribute filters need decoding, candidates are fetched in chunks (keyset pagination on the
//!   same `(start_ns, id)` order) and the bodies of a chunk's matching spans in one query.
//! * `spans` and `trace_attrs` are partitioned by day, through the trace sequence number whose high
//!   bits are the trace's day; retention drops whole days (see `partitions`).
//! * Schema migrations are recorded in `tracex_migrations` (one row per applied step) and run
//!   under a transaction-scoped advisory lock, so collectors starting together do not race.
//!
//! # Connections and threads
//!
//! The store uses the asynchronous `tokio-postgres` client, not the synchronous `postgres` crate:
//! that crate blocks on a runtime of its own inside every call, which panics ("cannot start a
//! runtime from within a runtime") when the call happens on a thread inside a Tokio runtime, and
//! the collector opens and migrates its store inside its async startup. Instead the store owns a
//! small Tokio runtime (one worker thread, `tracex-postgres`) that drives the connections'
//! sockets, while each [`Store`] method drives its client futures to completion on the calling
//! thread with a minimal executor (park/unpark). That works from any thread: std threads (the
//! writer), `spawn_blocking` threads, and even (blocking it) an async context.
//!
//! One writer connection (commits, API key inserts, migrations) behind a [`Mutex`] and a pool of
//! [`READERS`] read connections (`default_transaction_read_only`). The readers may connect to a
//! read replica instead ([`PostgresStore::connect_with_replica`], `database_read_url`): queries,
//! statistics, the live tail's and the export's reads of the log, API key lookups and the
//! checkpointer's reads of the tree then go there, and see commits once the replica has replayed
//! them (its lag); commits, the export cursor, retention and migrations stay on the primary. A connection that died (server
//! restart, network) is replaced on its next use; the call that saw it die fails.
//!
//! No TLS: meant for a database on the same host or a private network (`NoTls`).

mod audit;
mod client;
mod commit;
mod expire;
mod export;
mod keys;
mod list;
mod partitions;
mod retention;
mod scan;
mod schema;
mod stats;

use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, IsolationLevel};
use tracex_core::{SpanData, TraceId};

use crate::audit::gaps::BatchSeq;
use crate::audit::tree::{NodeId, Nodes};
use crate::audit::{LeafRecord, RowKey, RowLookup, StoredCheckpoint};
use crate::stats::scan::{ScannedSpan, SpanScan};
use crate::stats::{StatFilter, StatRecord};

use self::client::{Db, OwnedRuntime, block_on, get, open_connection};
use super::common::{Tuning, lock, unns};
use super::plan::commit::{FaultHook, WriterCache};
use super::pool::Pool;
use super::{
    ApiKeyRecord, CommitOutcome, Expired, NewBatch, PartitionPlan, PartitionReport, Store, StoreError, StoreResult,
    StoredSpan, TracePage, TraceQuery,
};

/// Read connections in the pool.
pub const READERS: usize = 4;

/// Most rows one multi-row statement carries (a 512-span batch is one statement).
pub const ROWS_PER_STATEMENT: usize = 8192;

/// Attempts of a commit that conflicts with a concurrent writer (deadlock, serialization failure,
/// a trace created concurrently).
pub const COMMIT_ATTEMPTS: usize = 4;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer connection and what it remembers between commits.
struct Writer {
    client: Option<Client>,
    /// Committed project and resource ids.
    cache: WriterCache,
}

/// The PostgreSQL [`Store`]: one writer connection and a pool of readers, driven by a runtime of
/// its own (see the module docs).
pub struct PostgresStore {
    /// The primary's (writer, maintenance).
    config: Config,
    /// The readers' (a read replica's, or the primary's).
    read_config: Config,
    writer: Mutex<Writer>,
    /// Read connections; `None` slots (re)connect when taken.
    readers: Pool<Option<Client>>,
    tuning: Tuning,
    fault: FaultHook,
    handle: tokio::runtime::Handle,
    /// Declared last, so dropped last: the connections' tasks run on it.
    _runtime: OwnedRuntime,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Close the connections (dropping a client ends its connection task) before the runtime
        // stops (`OwnedRuntime`).
        lock(&self.writer).client = None;
        self.readers.clear();
    }
}

/// A connection URL's configuration, with tracex's connect timeout and application name unless
/// the URL sets them.
fn connection_config(url: &str) -> StoreResult<Config> {
    let mut config: Config = url.parse().map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tracex-collector");
    }
    Ok(config)
}

impl PostgresStore {
    /// Most spans stored per trace (default [`super::MAX_SPANS_PER_TRACE`]).
    pub fn set_max_spans_per_trace(&mut self, n: u64) {
        self.tuning.max_spans_per_trace = n.max(1);
    }

    /// Turns appending to the audit log on (the default) or off (`audit_log`).
    pub fn set_audit_log(&mut self, on: bool) {
        self.tuning.audit_log = on;
    }

    /// Connects to the database at `url` (`postgres://user@host:port/db`, or the key/value form)
    /// and opens the writer and reader connections. Does not touch the schema: call
    /// [`Store::migrate`] next.
    pub fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with_replica(url, None)
    }

    /// [`Self::connect`], with the read connections on a read replica at `read_url` when given
    /// (see [`Self::connect_with_replica`]'s notes in the module docs).
    pub fn connect_with_replica(url: &str, read_url: Option<&str>) -> StoreResult<Self> {
        let config = connection_config(url)?;
        let read_config = read_url.map(connection_config).transpose()?;
        let runtime = OwnedRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tracex-postgres")
                .enable_all()
                .build()
                .map_err(|e| StoreError::Database(format!("cannot start the PostgreSQL runtime: {e}")))?,
        ));
        let handle = runtime
            .0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| StoreError::Database("the PostgreSQL runtime is gone".into()))?;
        let writer = open_connection(&handle, &config, false)?;
        let read_config = read_config.unwrap_or_else(|| config.clone());
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Some(open_connection(&handle, &read_config, true)?));
        }
        Ok(Self {
            config,
            read_config,
            writer: Mutex::new(Writer { client: Some(writer), cache: WriterCache::default() }),
            readers: Pool::new(readers),
            tuning: Tuning::default(),
            fault: FaultHook::default(),
            handle,
            _runtime: runtime,
        })
    }

    /// The client in `slot`, connecting first when there is none or it died.
    fn ensure<'a>(&self, slot: &'a mut Option<Client>, read_only: bool) -> StoreResult<&'a mut Client> {
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            let config = if read_only { &self.read_config } else { &self.config };
            *slot = Some(open_connection(&self.handle, config, read_only)?);
        }
        slot.as_mut().ok_or_else(|| StoreError::Database("no connection".into()))
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> StoreResult<T>) -> StoreResult<T> {
        let mut reader = self.readers.get();
        let slot = reader.conn()?;
        let client = self.ensure(slot, true)?;
        f(client)
    }

    /// Runs `f` on the writer connection.
    fn write<T>(&self, f: impl FnOnce(&mut Client, &mut Writer) -> StoreResult<T>) -> StoreResult<T> {
        let mut writer = lock(&self.writer);
        let mut slot = writer.client.take();
        let out = self.ensure(&mut slot, false).and_then(|client| f(client, &mut writer));
        writer.client = slot;
        out
    }

    /// A project counter (`span_count` or `batch_count`).
    fn counter(&self, sql: &'static str, project: &str) -> StoreResult<u64> {
        self.read(|client| {
            let row = block_on(client.query_typed_opt(sql, &[(&project, Type::TEXT)])).db()?;
            Ok(unns(row.map(|r| get::<i64>(&r, 0)).transpose()?.unwrap_or(0)))
        })
    }
}

impl Store for PostgresStore {
    fn migrate(&self) -> StoreResult<()> {
        self.write(|client, _| schema::migrate(client))
    }

    fn commit(&self, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|client, writer| self.commit_with_retries(client, writer, batches))
    }

    fn list_traces(&self, q: &TraceQuery) -> StoreResult<TracePage> {
        self.read(|client| {
            let tx = block_on(
                client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start(),
            )
            .db()?;
            let out = Self::list_in(&tx, q, self.tuning)?;
            block_on(tx.commit()).db()?;
            Ok(out)
        })
    }

    fn stat_rows(&self, filter: &StatFilter) -> StoreResult<Vec<StatRecord>> {
        self.read(|client| Self::stat_rows_in(client, filter))
    }

    fn scan_spans(&self, scan: &SpanScan, cap: usize, each: &mut dyn FnMut(ScannedSpan)) -> StoreResult<usize> {
        // One read-only transaction: the portal the scan reads through lives in it.
        self.read(|client| {
            let tx = block_on(client.build_transaction().read_only(true).start()).db()?;
            let out = Self::scan_spans_in(&tx, scan, cap, each)?;
            block_on(tx.commit()).db()?;
            Ok(out)
        })
    }

    fn recent_spans(&self, project: &str, service: Option<&str>, max_spans: usize) -> StoreResult<Vec<SpanData>> {
        self.read(|client| Self::recent_spans_in(client, project, service, max_spans))
    }

    fn project_names(&self) -> StoreResult<Vec<String>> {
        self.read(Self::project_names_in)
    }

    fn expire(&self, project: &str, before_ns: u64, max_traces: usize, max_minutes: i64) -> StoreResult<Expired> {
        self.write(|client, _| Self::expire_in(client, project, before_ns, max_traces, max_minutes))
    }

    fn maintain_partitions(&self, plan: &PartitionPlan) -> StoreResult<PartitionReport> {
        // A connection of its own: its lock waits (bounded) must not hold the writer's commits.
        let mut client = open_connection(&self.handle, &self.config, false)?;
        partitions::maintain(&mut client, plan)
    }

    fn get_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        self.read(|client| Self::get_trace_in(client, project, trace_id))
    }

    fn span_count(&self, project: &str) -> StoreResult<u64> {
        self.counter("SELECT span_count FROM projects WHERE name = $1", project)
    }

    fn batch_count(&self, project: &str) -> StoreResult<u64> {
        self.counter("SELECT batch_count FROM projects WHERE name = $1", project)
    }

    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        self.write(|client, _| keys::insert(client, key))
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|client| keys::get_key(client, id))
    }

    fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|client| keys::list(client))
    }

    fn revoke_api_key(&self, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
        self.write(|client, _| keys::revoke(client, id, now_unix_nano))
    }

    fn retention_overrides(&self) -> StoreResult<Vec<(String, u32)>> {
        self.read(|client| retention::overrides(client))
    }

    fn set_retention_override(&self, project: &str, days: Option<u32>) -> StoreResult<bool> {
        self.write(|client, _| retention::set(client, project, days))
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|client| block_on(client.query_typed_one("SELECT 1", &[])).db().map(drop))
    }

    fn audit_size(&self) -> StoreResult<u64> {
        self.read(|client| audit::size(client))
    }

    fn audit_nodes(&self, ids: &[NodeId]) -> StoreResult<Nodes> {
        self.read(|client| audit::nodes(client, ids))
    }

    fn audit_leaves(&self, from: u64, limit: usize) -> StoreResult<Vec<LeafRecord>> {
        self.read(|client| audit::leaves(client, from, limit))
    }

    fn audit_leaf_of_batch(&self, project: &str, batch_id: &[u8; 16]) -> StoreResult<Option<u64>> {
        self.read(|client| audit::leaf_of_batch(client, project, batch_id))
    }

    fn audit_leaves_of_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<u64>> {
        self.read(|client| audit::leaves_of_trace(client, project, &trace_id.0))
    }

    fn batch_sequences(
        &self,
        project: &str,
        after_instance: Option<[u8; 8]>,
        limit: usize,
    ) -> StoreResult<Vec<BatchSeq>> {
        self.read(|client| audit::batch_sequences(client, project, after_instance, limit))
    }

    fn audit_rows(&self, project: &str, keys: &[([u8; 16], [u8; 8])]) -> StoreResult<Vec<RowLookup>> {
        self.read(|client| audit::rows(client, project, keys))
    }

    fn audit_resource(&self, id: i64) -> StoreResult<Option<([u8; 32], Vec<u8>)>> {
        self.read(|client| audit::resource(client, id))
    }

    fn audit_span_totals(&self) -> StoreResult<(u64, u64)> {
        self.read(|client| audit::span_totals(client))
    }

    fn audit_scan_rows(&self, after: Option<(i64, [u8; 8])>, limit: usize) -> StoreResult<Vec<RowKey>> {
        self.read(|client| audit::scan_rows(client, after, limit))
    }

    fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> StoreResult<()> {
        self.write(|client, _| audit::insert_checkpoint(client, checkpoint))
    }

    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>> {
        self.read(|client| audit::latest_checkpoint(client))
    }

    fn checkpoints(&self, from_size: u64, limit: usize) -> StoreResult<Vec<StoredCheckpoint>> {
        self.read(|client| audit::checkpoints(client, from_size, limit))
    }

    fn claim_export_cursor(
        &self,
        name: &str,
        holder: &str,
        now_ns: u64,
        lease_ns: u64,
        start: u64,
    ) -> StoreResult<Option<u64>> {
        self.write(|client, _| export::claim(client, name, holder, now_ns, lease_ns, start))
    }

    fn advance_export_cursor(&self, name: &str, holder: &str, from: u64, to: u64) -> StoreResult<bool> {
        self.write(|client, _| export::advance(client, name, holder, from, to))
    }

    #[cfg(test)]
    fn fail_commits_at_step(&self, step: Option<usize>) {
        self.fault.fail_at(step);
    }
}

#[cfg(test)]
mod tests {
    //! These need a PostgreSQL server: `scripts/with-postgres.sh cargo test -p tracex-collector --lib
    //! -- --ignored postgres` (each test creates and drops a database of its own).

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio_postgres::NoTls;
    use tracex_core::SpanData;

    use super::super::common::bench_data;
    use super::super::conformance::{self, batch, request, span, tid};
    use super::client::describe;
    use super::schema::MIGRATIONS;
    use super::*;

    fn admin_url() -> String {
        std::env::var("TRACEX_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "TRACEX_TEST_POSTGRES_URL is not set: run the PostgreSQL tests under scripts/with-postgres.sh \
                 (it starts a throwaway server and sets it)"
            )
        })
    }

    /// `url` with its database name replaced by `db`.
    fn with_dbname(url: &str, db: &str) -> String {
        let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let base = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        match query {
            Some(q) => format!("{base}/{db}?{q}"),
            None => format!("{base}/{db}"),
        }
    }

    /// Runs `sql` on `url` over a one-off connection.
    pub(super) fn execute(url: &str, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            let conn = tokio::spawn(connection);
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
            drop(client);
            let _ = conn.await;
        });
    }

    /// Counts the rows of `table` in the database at `url`.
    fn count_rows(url: &str, table: &str) -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            let conn = tokio::spawn(connection);
            let n: i64 = client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
            drop(client);
            let _ = conn.await;
            n
        })
    }

    /// A fresh database, dropped (with its connections) at the end of the test.
    pub(super) struct TestDb {
        pub(super) name: String,
        pub(super) url: String,
    }

    impl TestDb {
        pub(super) fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let name = format!("tracex_test_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            let admin = admin_url();
            execute(&admin, &format!("CREATE DATABASE {name}"));
            let url = with_dbname(&admin, &name);
            Self { name, url }
        }

        pub(super) fn store(&self) -> PostgresStore {
            PostgresStore::connect(&self.url).unwrap()
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            // For looking at a test's data (e.g. query plans) afterwards.
            if std::env::var_os("TRACEX_TEST_KEEP_DB").is_some() {
                eprintln!("KEEPING {}", self.url);
                return;
            }
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let admin = admin_url();
            let _ = std::panic::catch_unwind(|| execute(&admin, &sql));
        }
    }

    #[test]
    fn with_dbname_replaces_only_the_database() {
        assert_eq!(
            with_dbname("postgresql://postgres@127.0.0.1:5/postgres", "x"),
            "postgresql://postgres@127.0.0.1:5/x"
        );
        assert_eq!(with_dbname("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(with_dbname("postgres://h:5", "x"), "postgres://h:5/x");
    }

    #[test]
    fn block_on_runs_ready_and_woken_futures() {
        assert_eq!(block_on(async { 7 }), 7);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(5).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 5);
        t.join().unwrap();
    }

    #[test]
    fn a_bad_url_is_an_error_not_a_panic() {
        assert!(matches!(PostgresStore::connect("postgres://"), Err(StoreError::Database(_))));
        assert!(matches!(PostgresStore::connect("not a url at all ==="), Err(StoreError::Database(_))));
    }

    /// The collector connects inside its async startup: a refused connection there is an error,
    /// not a panic (dropping the store's runtime inside an async context).
    #[test]
    fn a_failed_connect_inside_a_runtime_is_an_error_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = rt.block_on(async { PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/x")) });
        assert!(matches!(err, Err(StoreError::Database(ref m)) if m.contains("connect")), "{err:?}");
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_conformance_suite() {
        let db = TestDb::new();
        conformance::run_all(&db.store());
    }

    /// Runs a query answering one integer on the database at `url`.
    fn query_i64(url: &str, sql: &str) -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            let conn = tokio::spawn(connection);
            let n: i64 = client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {}", describe(&e))).get(0);
            drop(client);
            let _ = conn.await;
            n
        })
    }

    /// The longest span of each trace, kept at commit and filled in by migration 8 on a database
    /// taken back to version 7.
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_longest_span_is_kept_and_filled_in_by_the_migration() {
        let db = TestDb::new();
        let open = || -> Box<dyn Store> { Box::new(db.store()) };
        let exec = |sql: &str| execute(&db.url, sql);
        let count = |sql: &str| query_i64(&db.url, sql);
        let raw = super::super::conformance_duration::RawDb {
            exec: &exec,
            count: &count,
            downgrade: "DROP INDEX traces_by_start_duration; ALTER TABLE traces DROP COLUMN max_duration_ns; \
                        CREATE INDEX traces_by_start ON traces (project_id, start_ns, id); \
                        DELETE FROM tracex_migrations WHERE version >= 8;",
        };
        super::super::conformance_duration::longest_span_is_kept_and_filled_in_by_the_migration(&open, &raw);
    }

    /// Runs one of the audit conformance checks on a database of its own, with raw SQL beside it.
    fn audit_check(check: fn(&dyn Store, &super::super::conformance_audit::RawSql<'_>)) {
        let db = TestDb::new();
        let store = db.store();
        let exec = |sql: &str| execute(&db.url, sql);
        let raw = super::super::conformance_audit::RawSql {
            exec: &exec,
            blob: |b| format!("'\\x{}'::bytea", hex::encode(b)),
            postgres: true,
        };
        check(&store, &raw);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_audit_verify_names_what_was_tampered() {
        audit_check(super::super::conformance_audit::verify_names_what_was_tampered);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_audit_verify_reads_leaves_of_both_claim_formats() {
        audit_check(super::super::conformance_audit::verify_reads_leaves_of_both_claim_formats);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_trace_cap_is_conformant() {
        let db = TestDb::new();
        let mut store = db.store();
        store.set_max_spans_per_trace(4);
        conformance::spans_past_the_trace_cap_are_counted_not_stored(&store);
    }

    /// The same suite with the fallbacks forced (see the SQLite store's twin test).
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_conformance_suite_without_driver_and_tiny_scan_budget() {
        let db = TestDb::new();
        let mut store = db.store();
        store.tuning = Tuning { driver_threshold: 0, scan_budget: 3, ..Tuning::default() };
        conformance::run_all(&store);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_connect_does_not_migrate_and_migrate_is_recorded() {
        let db = TestDb::new();
        let store = db.store();
        assert!(store.commit(&[batch("p", 1, request("s", vec![span(tid(9, 1), 1, None, "x", 1, 2)]))]).is_err());
        store.migrate().unwrap();
        store.migrate().unwrap();
        assert_eq!(count_rows(&db.url, "tracex_migrations"), MIGRATIONS.len() as i64);
        store.commit(&[batch("p", 1, request("s", vec![span(tid(9, 1), 1, None, "x", 1, 2)]))]).unwrap();
        // A newer schema than this build knows is refused.
        execute(&db.url, "INSERT INTO tracex_migrations (version) VALUES (99)");
        assert!(matches!(store.migrate(), Err(StoreError::Database(m)) if m.contains("newer")));
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_reconnect_keeps_everything() {
        let db = TestDb::new();
        conformance::a_reopened_store_keeps_everything(&|| Box::new(db.store()));
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_spans_join_their_trace_in_any_id_order() {
        let db = TestDb::new();
        conformance::spans_join_their_trace_in_any_id_order(&|| Box::new(db.store()));
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_dead_connections_are_replaced() {
        let db = TestDb::new();
        let store = db.store();
        store.migrate().unwrap();
        let t = tid(9, 6);
        store.commit(&[batch("p", 1, request("svc", vec![span(t, 1, None, "a", 1, 2)]))]).unwrap();
        // The server drops every connection of the store (as on a restart).
        execute(
            &admin_url(),
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' \
                 AND pid <> pg_backend_pid()",
                db.name
            ),
        );
        std::thread::sleep(Duration::from_millis(300));
        // Every connection reconnects on its next use; nothing was lost.
        for _ in 0..2 * READERS {
            assert_eq!(store.get_trace("p", t).unwrap().len(), 1);
        }
        store.ping().unwrap();
        let out = store.commit(&[batch("p", 2, request("svc", vec![span(t, 2, Some(1), "b", 1, 2)]))]).unwrap();
        assert!(matches!(out[..], [CommitOutcome::Stored { spans: 1, over_cap: 0, .. }]));
        assert_eq!(store.span_count("p").unwrap(), 2);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_a_failed_commit_stores_nothing_of_any_batch() {
        let db = TestDb::new();
        conformance::a_failed_commit_stores_nothing_of_any_batch(&db.store());
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_reads_run_while_commits_are_in_progress() {
        let db = TestDb::new();
        conformance::readers_never_see_partial_commits(&(Arc::new(db.store()) as Arc<dyn Store>));
    }

    /// Two collectors sharing one database write spans of the same (new) traces at once: conflicts
    /// are retried, every span is stored once and the summaries add up.
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_concurrent_writers_share_a_database() {
        let db = TestDb::new();
        let a = Arc::new(db.store());
        let b = Arc::new(db.store());
        a.migrate().unwrap();
        b.migrate().unwrap();
        const ROUNDS: u32 = 30;
        const TRACES: u32 = 20;
        let run = |store: Arc<PostgresStore>, first_span: u32, batch_base: u32| {
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    // Both writers touch the same traces (new ones each round), each with its own
                    // spans plus one span both send.
                    let spans: Vec<SpanData> = (0..TRACES)
                        .flat_map(|t| {
                            let trace = tid(11, r * TRACES + t);
                            vec![
                                span(trace, 1, None, "shared-root", 100, 900),
                                span(trace, first_span, Some(1), "own", 200, 300),
                            ]
                        })
                        .collect();
                    store.commit(&[batch("shared", batch_base + r, request("svc", spans))]).unwrap();
                }
            })
        };
        let ta = run(a.clone(), 2, 0);
        let tb = run(b.clone(), 3, 10_000);
        ta.join().unwrap();
        tb.join().unwrap();
        let traces = ROUNDS * TRACES;
        assert_eq!(a.span_count("shared").unwrap(), u64::from(traces * 3));
        assert_eq!(b.batch_count("shared").unwrap(), u64::from(ROUNDS * 2));
        let q = TraceQuery { project: "shared".into(), limit: 1000, ..Default::default() };
        let page = a.list_traces(&q).unwrap();
        assert_eq!(page.traces.len() as u32, traces);
        for s in &page.traces {
            assert_eq!(s.span_count, 3, "{s:?}");
            assert_eq!(s.root_name.as_deref(), Some("shared-root"));
            assert_eq!(b.get_trace("shared", s.trace_id).unwrap().len(), 3);
        }
        // One log for both writers: a leaf per batch, no index taken twice, the stored tree whole.
        let leaves = a.audit_leaves(0, usize::MAX >> 1).unwrap();
        assert_eq!(leaves.len() as u64, a.audit_size().unwrap());
        assert!(leaves.iter().enumerate().all(|(i, l)| l.index == i as u64));
        let size = leaves.len() as u64;
        let hashes: Vec<[u8; 32]> = leaves.iter().map(|l| l.hash).collect();
        let nodes = b.audit_nodes(&crate::audit::tree::root_nodes(size)).unwrap();
        assert_eq!(crate::audit::tree::root(size, &nodes).unwrap(), tracex_core::audit::merkle::root(&hashes));
    }

    /// The collector opens and migrates its store inside its async startup and drops it anywhere;
    /// queries run on `spawn_blocking` threads: none of that may panic.
    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_works_from_inside_a_tokio_runtime() {
        let db = TestDb::new();
        let url = db.url.clone();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).unwrap());
            store.migrate().unwrap();
            let t = tid(12, 1);
            store.commit(&[batch("rt", 1, request("svc", vec![span(t, 1, None, "a", 1, 2)]))]).unwrap();
            let s = store.clone();
            let got = tokio::task::spawn_blocking(move || s.get_trace("rt", t).unwrap()).await.unwrap();
            assert_eq!(got.len(), 1);
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.ping().unwrap()).await.unwrap();
            drop(store);
        });
        // And from a plain thread after the runtime is gone.
        let store = PostgresStore::connect(&db.url).unwrap();
        assert_eq!(store.span_count("rt").unwrap(), 1);
    }

    /// Ingest throughput: `scripts/with-postgres.sh cargo test --release -p tracex-collector --lib
    /// store::postgres::tests::ingest_throughput -- --ignored --nocapture`. `TRACEX_BENCH_ROUNDS`
    /// (default 10) commits of `TRACEX_BENCH_BATCHES` (default 200) batches of 512 spans.
    #[test]
    #[ignore = "timing; run in release mode under scripts/with-postgres.sh"]
    fn ingest_throughput() {
        let db = TestDb::new();
        let store = db.store();
        store.migrate().unwrap();
        bench_data::ingest_throughput(&store, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
                let conn = tokio::spawn(connection);
                let n: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await.unwrap().get(0);
                drop(client);
                let _ = conn.await;
                n as u64
            })
        });
    }
}
