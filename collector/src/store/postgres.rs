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
//! so both stores answer every query identically. Ids and bodies are `BYTEA`, nanoseconds `BIGINT`
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
//!   rows, `trace_attrs`, counters. It returns once PostgreSQL acknowledged the `COMMIT` (durable
//!   under the default `synchronous_commit = on`).
//! * Listings read inside one `REPEATABLE READ READ ONLY` transaction (one snapshot). When
//!   attribute filters need decoding, candidates are fetched in chunks (keyset pagination on the
//!   same `(start_ns, id)` order) and the bodies of a chunk's matching spans in one query.
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
//! [`READERS`] read connections (`default_transaction_read_only`). A connection that died (server
//! restart, network) is replaced on its next use; the call that saw it die fails.
//!
//! No TLS: meant for a database on the same host or a private network (`NoTls`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, IsolationLevel, NoTls, Row, Transaction};
use tracex_core::{SpanData, StatusCode, TraceId};

use super::common::{
    API_KEY_COLUMNS, MAX_LIMIT, SERVICE_KEY, TraceCap, Tuning, api_key_record, attr_hash, decode_cursor,
    decode_resource_body, decode_span_body, encode_cursor, encode_resource_body, encode_span_body, is_indexed_key,
    lock, ns, render_value, same_envelope, span_matches_attrs, unns,
};
use super::{
    ApiKeyRecord, CommitOutcome, NewBatch, Store, StoreError, StoreResult, StoredSpan, TracePage, TraceQuery,
    TraceSummary,
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

/// Resource hashes remembered by the writer; the map is simply cleared when it grows past this.
const RESOURCE_CACHE_MAX: usize = 4096;

/// Most candidate traces fetched at once when attribute filters need decoding (chunks start at
/// the page size and double up to this).
const CANDIDATE_CHUNK: usize = 512;

/// Key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x7472_6163_6578_0001;

/// Schema migrations, applied in order; `tracex_migrations` records the versions applied.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema (see the module docs and the SQLite store's).
    "
    CREATE TABLE projects (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        span_count BIGINT NOT NULL DEFAULT 0,
        batch_count BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE batches (
        project_id BIGINT NOT NULL,
        batch_id BYTEA NOT NULL,
        key_id BYTEA NOT NULL,
        instance_id BYTEA NOT NULL,
        sequence BIGINT NOT NULL,
        sdk_name TEXT NOT NULL,
        sdk_version TEXT NOT NULL,
        created_at_ns BIGINT NOT NULL,
        received_at_ns BIGINT NOT NULL,
        span_count BIGINT NOT NULL,
        PRIMARY KEY (project_id, batch_id)
    );
    CREATE TABLE resources (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        hash BYTEA NOT NULL UNIQUE,
        body BYTEA NOT NULL
    );
    CREATE SEQUENCE trace_seq AS BIGINT;
    CREATE TABLE traces (
        id BIGINT PRIMARY KEY,
        project_id BIGINT NOT NULL,
        trace_id BYTEA NOT NULL,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        has_root BOOLEAN NOT NULL,
        root_name TEXT,
        root_service TEXT,
        span_count BIGINT NOT NULL,
        error_count BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX traces_by_id ON traces (project_id, trace_id);
    CREATE INDEX traces_by_start ON traces (project_id, start_ns, id);
    CREATE INDEX traces_with_errors ON traces (project_id, start_ns, id) WHERE error_count > 0;
    CREATE TABLE spans (
        trace_seq BIGINT NOT NULL,
        span_id BYTEA NOT NULL,
        parent_span_id BYTEA,
        name TEXT NOT NULL,
        service TEXT,
        kind INTEGER NOT NULL,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        duration_ns BIGINT NOT NULL,
        status INTEGER NOT NULL,
        resource_id BIGINT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (trace_seq, span_id)
    );
    CREATE TABLE trace_attrs (
        project_id BIGINT NOT NULL,
        attr_hash BIGINT NOT NULL,
        trace_seq BIGINT NOT NULL,
        PRIMARY KEY (project_id, attr_hash, trace_seq)
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        scope TEXT NOT NULL,
        secret_sha256 BYTEA NOT NULL,
        created_at_ns BIGINT NOT NULL
    );
    ",
    // 2: as SQLite's migration 2 (envelope hashes tell retries from reused batch ids).
    "ALTER TABLE batches ADD COLUMN envelope_sha256 BYTEA;",
    // 3: API keys can be revoked.
    "ALTER TABLE api_keys ADD COLUMN revoked_at_ns BIGINT;",
];

/// An `api_keys` row (columns as [`API_KEY_COLUMNS`]).
fn api_key_row(row: &tokio_postgres::Row) -> StoreResult<ApiKeyRecord> {
    api_key_record(get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?, get(row, 4)?, get(row, 5)?)
}

// === errors ===

/// A `tokio-postgres` error as text, with the server's message when there is one.
fn describe(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{db} (SQLSTATE {})", db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// Maps `tokio-postgres` errors into [`StoreError::Database`].
trait Db<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> Db<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(|e| StoreError::Database(describe(&e)))
    }
}

/// Why a commit attempt failed.
enum CommitError {
    /// A conflict with a concurrent writer: try again.
    Retry(String),
    /// Anything else.
    Fatal(StoreError),
}

impl From<tokio_postgres::Error> for CommitError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE => {
                Self::Retry(describe(&e))
            }
            _ => Self::Fatal(StoreError::Database(describe(&e))),
        }
    }
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e)
    }
}

// === running client futures ===

/// Wakes a parked thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` to completion on this thread. Client futures only exchange messages with their
/// connection's task, which runs on the store's runtime; nothing here needs a Tokio context, so
/// this works on any thread.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Typed statement parameters.
type Params<'a> = Vec<(&'a (dyn ToSql + Sync), Type)>;

/// An owned statement parameter (for statements built at run time).
#[derive(Clone, Debug)]
enum Param {
    Int(i64),
    Int4(i32),
    Text(String),
}

impl Param {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Self::Int(v) => (v, Type::INT8),
            Self::Int4(v) => (v, Type::INT4),
            Self::Text(v) => (v, Type::TEXT),
        }
    }
}

fn typed(params: &[Param]) -> Params<'_> {
    params.iter().map(Param::typed).collect()
}

/// A column as `T`.
fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).db()
}

// === the store ===

/// Connects and spawns the connection's task on the store's runtime.
fn open_connection(runtime: &tokio::runtime::Handle, config: &Config, read_only: bool) -> StoreResult<Client> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let config = config.clone();
    runtime.spawn(async move {
        let out = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %describe(&e), "PostgreSQL connection ended");
                    }
                });
                Ok(client)
            }
            Err(e) => Err(e),
        };
        let _ = tx.send(out);
    });
    let client = rx.recv().map_err(|_| StoreError::Database("the PostgreSQL runtime is gone".into()))?.db()?;
    if read_only {
        block_on(client.batch_execute("SET default_transaction_read_only = on")).db()?;
    }
    Ok(client)
}

/// The writer connection and what it remembers between commits.
struct Writer {
    client: Option<Client>,
    /// Committed project names → ids.
    projects: HashMap<String, i64>,
    /// Committed resource hashes → ids.
    resources: HashMap<[u8; 32], i64>,
}

/// A pool of read connections; `None` slots (re)connect when taken.
struct ReadPool {
    conns: Mutex<Vec<Option<Client>>>,
    available: Condvar,
}

/// A read connection borrowed from the pool, returned on drop.
struct Reader<'a> {
    pool: &'a ReadPool,
    client: Option<Option<Client>>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            lock(&self.pool.conns).push(client);
            self.pool.available.notify_one();
        }
    }
}

/// The PostgreSQL [`Store`]: one writer connection and a pool of readers, driven by a runtime of
/// its own (see the module docs).
pub struct PostgresStore {
    config: Config,
    writer: Mutex<Writer>,
    readers: ReadPool,
    tuning: Tuning,
    handle: tokio::runtime::Handle,
    /// Declared last, so dropped last: the connections' tasks run on it.
    _runtime: OwnedRuntime,
}

/// The store's runtime, stopped on drop without waiting: the drop may happen inside an async
/// context (the collector opens its store in its async startup), where dropping a runtime the
/// ordinary way panics.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
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
        lock(&self.readers.conns).clear();
    }
}

/// What a commit attempt did: the outcomes, and the project and resource ids it created (to
/// remember once the transaction committed).
type Committed = (Vec<CommitOutcome>, HashMap<String, i64>, HashMap<[u8; 32], i64>);

/// A span of an accepted batch, on its way into `spans`.
struct SpanIn<'a> {
    batch: usize,
    project_id: i64,
    resource: usize,
    service: Option<&'a str>,
    span: &'a SpanData,
}

/// A trace touched by one commit: the aggregate of its spans inserted.
struct TraceAgg {
    seq: i64,
    project_id: i64,
    trace_id: [u8; 16],
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

impl PostgresStore {
    /// Most spans stored per trace (default [`super::MAX_SPANS_PER_TRACE`]).
    pub fn set_max_spans_per_trace(&mut self, n: u64) {
        self.tuning.max_spans_per_trace = n.max(1);
    }

    /// Connects to the database at `url` (`postgres://user@host:port/db`, or the key/value form)
    /// and opens the writer and reader connections. Does not touch the schema: call
    /// [`Store::migrate`] next.
    pub fn connect(url: &str) -> StoreResult<Self> {
        let mut config: Config = url.parse().map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tracex-collector");
        }
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
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Some(open_connection(&handle, &config, true)?));
        }
        Ok(Self {
            config,
            writer: Mutex::new(Writer { client: Some(writer), projects: HashMap::new(), resources: HashMap::new() }),
            readers: ReadPool { conns: Mutex::new(readers), available: Condvar::new() },
            tuning: Tuning::default(),
            handle,
            _runtime: runtime,
        })
    }

    /// The client in `slot`, connecting first when there is none or it died.
    fn ensure<'a>(&self, slot: &'a mut Option<Client>, read_only: bool) -> StoreResult<&'a mut Client> {
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            *slot = Some(open_connection(&self.handle, &self.config, read_only)?);
        }
        slot.as_mut().ok_or_else(|| StoreError::Database("no connection".into()))
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> StoreResult<T>) -> StoreResult<T> {
        let mut reader = {
            let mut conns = lock(&self.readers.conns);
            loop {
                if let Some(client) = conns.pop() {
                    break Reader { pool: &self.readers, client: Some(client) };
                }
                conns = self.readers.available.wait(conns).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let slot = reader.client.as_mut().ok_or_else(|| StoreError::Database("reader pool corrupted".into()))?;
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

    fn commit_in(
        tx: &Transaction<'_>,
        writer: &Writer,
        batches: &[NewBatch],
        tuning: Tuning,
    ) -> Result<Committed, CommitError> {
        // --- projects
        let mut new_projects: HashMap<String, i64> = HashMap::new();
        let mut missing: Vec<&str> =
            batches.iter().map(|b| b.project.as_str()).filter(|p| !writer.projects.contains_key(*p)).collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            block_on(tx.execute_typed(
                "INSERT INTO projects (name) SELECT * FROM UNNEST($1::text[]) ORDER BY 1 ON CONFLICT (name) DO NOTHING",
                &[(&missing, Type::TEXT_ARRAY)],
            ))?;
            for row in block_on(tx.query_typed(
                "SELECT name, id FROM projects WHERE name = ANY($1::text[])",
                &[(&missing, Type::TEXT_ARRAY)],
            ))? {
                new_projects.insert(get(&row, 0)?, get(&row, 1)?);
            }
        }
        let project_id = |name: &str| -> StoreResult<i64> {
            writer
                .projects
                .get(name)
                .or_else(|| new_projects.get(name))
                .copied()
                .ok_or_else(|| StoreError::Database(format!("project {name:?} has no id")))
        };

        // --- batches: the first copy of each (project, batch id) in this call is inserted if new
        let mut keys: Vec<(i64, [u8; 16])> = Vec::with_capacity(batches.len());
        for b in batches {
            keys.push((project_id(&b.project)?, b.batch_id));
        }
        let mut first = vec![false; batches.len()];
        {
            let mut seen = HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                first[i] = seen.insert(*k);
            }
        }
        let mut order: Vec<usize> = (0..batches.len()).filter(|i| first[*i]).collect();
        order.sort_unstable_by_key(|i| keys[*i]);
        let mut accepted = vec![false; batches.len()];
        {
            let pid: Vec<i64> = order.iter().map(|i| keys[*i].0).collect();
            let bid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].batch_id[..]).collect();
            let kid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].key_id[..]).collect();
            let iid: Vec<&[u8]> = order.iter().map(|i| &batches[*i].instance_id[..]).collect();
            let seq: Vec<i64> = order.iter().map(|i| batches[*i].sequence as i64).collect();
            let sdk: Vec<&str> = order.iter().map(|i| batches[*i].sdk_name.as_str()).collect();
            let ver: Vec<&str> = order.iter().map(|i| batches[*i].sdk_version.as_str()).collect();
            let created: Vec<i64> = order.iter().map(|i| batches[*i].created_at_unix_nano as i64).collect();
            let received: Vec<i64> = order.iter().map(|i| batches[*i].received_at_unix_nano as i64).collect();
            let total: Vec<i64> = order.iter().map(|i| batches[*i].request.span_count() as i64).collect();
            let envelope: Vec<&[u8]> = order.iter().map(|i| &batches[*i].envelope_sha256[..]).collect();
            let rows = block_on(tx.query_typed(
                "INSERT INTO batches (project_id, batch_id, key_id, instance_id, sequence, sdk_name, sdk_version, \
                 created_at_ns, received_at_ns, span_count, envelope_sha256) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[], \
                 $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[]) \
                 ON CONFLICT (project_id, batch_id) DO NOTHING RETURNING project_id, batch_id",
                &[
                    (&pid, Type::INT8_ARRAY),
                    (&bid, Type::BYTEA_ARRAY),
                    (&kid, Type::BYTEA_ARRAY),
                    (&iid, Type::BYTEA_ARRAY),
                    (&seq, Type::INT8_ARRAY),
                    (&sdk, Type::TEXT_ARRAY),
                    (&ver, Type::TEXT_ARRAY),
                    (&created, Type::INT8_ARRAY),
                    (&received, Type::INT8_ARRAY),
                    (&total, Type::INT8_ARRAY),
                    (&envelope, Type::BYTEA_ARRAY),
                ],
            ))?;
            let mut inserted: HashSet<(i64, [u8; 16])> = HashSet::with_capacity(rows.len());
            for row in rows {
                let id: &[u8] = get(&row, 1)?;
                let id = <[u8; 16]>::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("batch id of {} bytes", id.len())))?;
                inserted.insert((get(&row, 0)?, id));
            }
            for i in order {
                accepted[i] = inserted.contains(&keys[i]);
            }
        }
        // The envelope hashes now stored under the ids of batches not accepted (stored earlier, or
        // earlier in this call): same hash, a retry; another, a conflict.
        let mut stored_envelopes: HashMap<(i64, [u8; 16]), Option<Vec<u8>>> = HashMap::new();
        let rejected: Vec<usize> = (0..batches.len()).filter(|i| !accepted[*i]).collect();
        if !rejected.is_empty() {
            let pid: Vec<i64> = rejected.iter().map(|i| keys[*i].0).collect();
            let bid: Vec<&[u8]> = rejected.iter().map(|i| &batches[*i].batch_id[..]).collect();
            for row in block_on(tx.query_typed(
                "SELECT project_id, batch_id, envelope_sha256 FROM batches \
                 WHERE (project_id, batch_id) IN (SELECT * FROM UNNEST($1::bigint[], $2::bytea[]))",
                &[(&pid, Type::INT8_ARRAY), (&bid, Type::BYTEA_ARRAY)],
            ))? {
                let id: &[u8] = get(&row, 1)?;
                let id = <[u8; 16]>::try_from(id)
                    .map_err(|_| StoreError::Corrupt(format!("batch id of {} bytes", id.len())))?;
                stored_envelopes.insert((get(&row, 0)?, id), get(&row, 2)?);
            }
        }

        // --- resources and the spans of accepted batches
        let mut body = Vec::with_capacity(1024);
        let mut resource_hashes: Vec<[u8; 32]> = Vec::new();
        let mut resource_index: HashMap<[u8; 32], usize> = HashMap::new();
        let mut new_resource_bodies: Vec<Vec<u8>> = Vec::new();
        let mut new_resource_hashes: Vec<[u8; 32]> = Vec::new();
        let mut spans: Vec<SpanIn<'_>> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            if !accepted[i] {
                continue;
            }
            let project_id = keys[i].0;
            for rs in &b.request.resource_spans {
                let service = rs.resource.service_name();
                for ss in &rs.scope_spans {
                    if ss.spans.is_empty() {
                        continue;
                    }
                    let hash = encode_resource_body(&rs.resource, &ss.scope, &mut body);
                    let resource = *resource_index.entry(hash).or_insert_with(|| {
                        resource_hashes.push(hash);
                        if !writer.resources.contains_key(&hash) {
                            new_resource_hashes.push(hash);
                            new_resource_bodies.push(body.clone());
                        }
                        resource_hashes.len() - 1
                    });
                    for span in &ss.spans {
                        spans.push(SpanIn { batch: i, project_id, resource, service, span });
                    }
                }
            }
        }
        let mut new_resources: HashMap<[u8; 32], i64> = HashMap::new();
        if !new_resource_hashes.is_empty() {
            let hashes: Vec<&[u8]> = new_resource_hashes.iter().map(|h| &h[..]).collect();
            let bodies: Vec<&[u8]> = new_resource_bodies.iter().map(Vec::as_slice).collect();
            block_on(tx.execute_typed(
                "INSERT INTO resources (hash, body) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) ORDER BY 1 \
                 ON CONFLICT (hash) DO NOTHING",
                &[(&hashes, Type::BYTEA_ARRAY), (&bodies, Type::BYTEA_ARRAY)],
            ))?;
            for row in block_on(tx.query_typed(
                "SELECT hash, id FROM resources WHERE hash = ANY($1::bytea[])",
                &[(&hashes, Type::BYTEA_ARRAY)],
            ))? {
                let hash: &[u8] = get(&row, 0)?;
                let hash = <[u8; 32]>::try_from(hash)
                    .map_err(|_| StoreError::Corrupt(format!("resource hash of {} bytes", hash.len())))?;
                new_resources.insert(hash, get(&row, 1)?);
            }
        }
        let mut resource_ids = Vec::with_capacity(resource_hashes.len());
        for h in &resource_hashes {
            let id = writer.resources.get(h).or_else(|| new_resources.get(h)).copied();
            resource_ids.push(id.ok_or_else(|| StoreError::Database("a resource has no id".into()))?);
        }

        // --- traces: existing ones by lookup, new ones get sequence numbers
        let mut traces: Vec<TraceAgg> = Vec::new();
        let mut trace_index: HashMap<(i64, [u8; 16]), usize> = HashMap::new();
        let mut span_trace: Vec<usize> = Vec::with_capacity(spans.len());
        for s in &spans {
            let key = (s.project_id, s.span.trace_id.0);
            let idx = *trace_index.entry(key).or_insert_with(|| {
                traces.push(TraceAgg {
                    seq: 0,
                    project_id: key.0,
                    trace_id: key.1,
                    is_new: true,
                    stored_before: 0,
                    start: i64::MAX,
                    end: i64::MIN,
                    root: None,
                    spans: 0,
                    errors: 0,
                    hashes: Vec::new(),
                });
                traces.len() - 1
            });
            span_trace.push(idx);
        }
        for chunk in traces.chunks_mut(ROWS_PER_STATEMENT) {
            let pid: Vec<i64> = chunk.iter().map(|t| t.project_id).collect();
            let tid: Vec<&[u8]> = chunk.iter().map(|t| &t.trace_id[..]).collect();
            let rows = block_on(tx.query_typed(
                "SELECT u.n, t.id, t.span_count FROM UNNEST($1::bigint[], $2::bytea[]) \
                 WITH ORDINALITY AS u(project_id, trace_id, n) \
                 JOIN traces t ON t.project_id = u.project_id AND t.trace_id = u.trace_id",
                &[(&pid, Type::INT8_ARRAY), (&tid, Type::BYTEA_ARRAY)],
            ))?;
            for row in rows {
                let n: i64 = get(&row, 0)?;
                let t = usize::try_from(n - 1)
                    .ok()
                    .and_then(|n| chunk.get_mut(n))
                    .ok_or_else(|| StoreError::Database("trace lookup out of range".into()))?;
                t.seq = get(&row, 1)?;
                t.stored_before = unns(get(&row, 2)?);
                t.is_new = false;
            }
        }
        let fresh = traces.iter().filter(|t| t.is_new).count();
        if fresh > 0 {
            let rows = block_on(tx.query_typed(
                "SELECT nextval('trace_seq') FROM generate_series(1, $1::bigint)",
                &[(&(fresh as i64), Type::INT8)],
            ))?;
            let mut seqs = Vec::with_capacity(rows.len());
            for row in rows {
                seqs.push(get::<i64>(&row, 0)?);
            }
            seqs.sort_unstable();
            if seqs.len() != fresh {
                return Err(StoreError::Database("the trace sequence handed out too few numbers".into()).into());
            }
            for (t, seq) in traces.iter_mut().filter(|t| t.is_new).zip(seqs) {
                t.seq = seq;
            }
        }

        // --- spans: the first copy of each (trace, span id) in this call, in trace order
        // (the per-trace cap applies here, in arrival order, as in the SQLite store)
        let mut order: Vec<usize> = Vec::with_capacity(spans.len());
        let mut over_cap = vec![0usize; batches.len()];
        {
            let mut cap = TraceCap::new(tuning.max_spans_per_trace);
            let mut seen: HashSet<(i64, [u8; 8])> = HashSet::with_capacity(spans.len());
            for (i, s) in spans.iter().enumerate() {
                let t = &traces[span_trace[i]];
                if !cap.admit(t.project_id, t.trace_id, s.span.span_id.0, t.stored_before) {
                    over_cap[s.batch] += 1;
                } else if seen.insert((t.seq, s.span.span_id.0)) {
                    order.push(i);
                }
            }
        }
        order.sort_by_key(|i| (traces[span_trace[*i]].seq, spans[*i].span.span_id.0));
        let mut inserted = vec![false; spans.len()];
        let mut bodies: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        for chunk in order.chunks(ROWS_PER_STATEMENT) {
            bodies.clear();
            ends.clear();
            for i in chunk {
                encode_span_body(spans[*i].span, &mut body);
                bodies.extend_from_slice(&body);
                ends.push(bodies.len());
            }
            let seq: Vec<i64> = chunk.iter().map(|i| traces[span_trace[*i]].seq).collect();
            let sid: Vec<&[u8]> = chunk.iter().map(|i| &spans[*i].span.span_id.0[..]).collect();
            let parent: Vec<Option<&[u8]>> =
                chunk.iter().map(|i| spans[*i].span.parent_span_id.as_ref().map(|p| &p.0[..])).collect();
            let name: Vec<&str> = chunk.iter().map(|i| &*spans[*i].span.name).collect();
            let service: Vec<Option<&str>> = chunk.iter().map(|i| spans[*i].service).collect();
            let kind: Vec<i32> = chunk.iter().map(|i| spans[*i].span.kind.as_i32()).collect();
            let start: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.start_time_unix_nano)).collect();
            let end: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.end_time_unix_nano)).collect();
            let duration: Vec<i64> = chunk.iter().map(|i| ns(spans[*i].span.duration_nanos())).collect();
            let status: Vec<i32> = chunk.iter().map(|i| spans[*i].span.status.code as i32).collect();
            let resource: Vec<i64> = chunk.iter().map(|i| resource_ids[spans[*i].resource]).collect();
            let body_refs: Vec<&[u8]> =
                ends.iter().scan(0, |from, to| Some(&bodies[std::mem::replace(from, *to)..*to])).collect();
            let rows = block_on(tx.query_typed(
                "INSERT INTO spans (trace_seq, span_id, parent_span_id, name, service, kind, start_ns, end_ns, \
                 duration_ns, status, resource_id, body) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], $6::int[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::int[], $11::bigint[], $12::bytea[]) \
                 ON CONFLICT (trace_seq, span_id) DO NOTHING RETURNING trace_seq, span_id",
                &[
                    (&seq, Type::INT8_ARRAY),
                    (&sid, Type::BYTEA_ARRAY),
                    (&parent, Type::BYTEA_ARRAY),
                    (&name, Type::TEXT_ARRAY),
                    (&service, Type::TEXT_ARRAY),
                    (&kind, Type::INT4_ARRAY),
                    (&start, Type::INT8_ARRAY),
                    (&end, Type::INT8_ARRAY),
                    (&duration, Type::INT8_ARRAY),
                    (&status, Type::INT4_ARRAY),
                    (&resource, Type::INT8_ARRAY),
                    (&body_refs, Type::BYTEA_ARRAY),
                ],
            ))?;
            if rows.len() == chunk.len() {
                for i in chunk {
                    inserted[*i] = true;
                }
            } else {
                let mut done: HashSet<(i64, [u8; 8])> = HashSet::with_capacity(rows.len());
                for row in rows {
                    let id: &[u8] = get(&row, 1)?;
                    let id = <[u8; 8]>::try_from(id)
                        .map_err(|_| StoreError::Corrupt(format!("span id of {} bytes", id.len())))?;
                    done.insert((get(&row, 0)?, id));
                }
                for i in chunk {
                    inserted[*i] = done.contains(&(traces[span_trace[*i]].seq, spans[*i].span.span_id.0));
                }
            }
        }

        // --- aggregates, in input order (the first parentless span is the root)
        let mut stored = vec![0usize; batches.len()];
        let mut text = String::with_capacity(128);
        for (i, s) in spans.iter().enumerate() {
            if !inserted[i] {
                continue;
            }
            stored[s.batch] += 1;
            let agg = &mut traces[span_trace[i]];
            let span = s.span;
            agg.start = agg.start.min(ns(span.start_time_unix_nano));
            agg.end = agg.end.max(ns(span.end_time_unix_nano));
            agg.spans += 1;
            if span.status.code == StatusCode::Error {
                agg.errors += 1;
            }
            if span.parent_span_id.is_none() && agg.root.is_none() {
                agg.root = Some((span.name.to_string(), s.service.map(str::to_owned)));
            }
            let hashes = &mut agg.hashes;
            let mut add = |h: i64| {
                if !hashes.contains(&h) {
                    hashes.push(h);
                }
            };
            if let Some(service) = s.service {
                add(attr_hash(SERVICE_KEY, service));
            }
            for kv in &span.attributes {
                if is_indexed_key(&kv.key) && render_value(&kv.value, &mut text) {
                    add(attr_hash(kv.key.as_bytes(), &text));
                }
            }
        }
        traces.retain(|t| t.spans > 0);
        traces.sort_unstable_by_key(|t| t.seq);

        // --- trace rows: insert the new, update the existing
        let (fresh, existing): (Vec<&TraceAgg>, Vec<&TraceAgg>) = traces.iter().partition(|t| t.is_new);
        let chunks = fresh.chunks(ROWS_PER_STATEMENT).map(|c| (true, c));
        for (is_new, chunk) in chunks.chain(existing.chunks(ROWS_PER_STATEMENT).map(|c| (false, c))) {
            let id: Vec<i64> = chunk.iter().map(|t| t.seq).collect();
            let start: Vec<i64> = chunk.iter().map(|t| t.start).collect();
            let end: Vec<i64> = chunk.iter().map(|t| t.end).collect();
            let has_root: Vec<bool> = chunk.iter().map(|t| t.root.is_some()).collect();
            let root_name: Vec<Option<&str>> = chunk.iter().map(|t| t.root.as_ref().map(|(n, _)| n.as_str())).collect();
            let root_service: Vec<Option<&str>> =
                chunk.iter().map(|t| t.root.as_ref().and_then(|(_, s)| s.as_deref())).collect();
            let span_count: Vec<i64> = chunk.iter().map(|t| t.spans).collect();
            let error_count: Vec<i64> = chunk.iter().map(|t| t.errors).collect();
            if is_new {
                let pid: Vec<i64> = chunk.iter().map(|t| t.project_id).collect();
                let tid: Vec<&[u8]> = chunk.iter().map(|t| &t.trace_id[..]).collect();
                let n = block_on(tx.execute_typed(
                    "INSERT INTO traces (id, project_id, trace_id, start_ns, end_ns, has_root, root_name, \
                     root_service, span_count, error_count) \
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], \
                     $6::bool[], $7::text[], $8::text[], $9::bigint[], $10::bigint[]) \
                     ON CONFLICT (project_id, trace_id) DO NOTHING",
                    &[
                        (&id, Type::INT8_ARRAY),
                        (&pid, Type::INT8_ARRAY),
                        (&tid, Type::BYTEA_ARRAY),
                        (&start, Type::INT8_ARRAY),
                        (&end, Type::INT8_ARRAY),
                        (&has_root, Type::BOOL_ARRAY),
                        (&root_name, Type::TEXT_ARRAY),
                        (&root_service, Type::TEXT_ARRAY),
                        (&span_count, Type::INT8_ARRAY),
                        (&error_count, Type::INT8_ARRAY),
                    ],
                ))?;
                if n != chunk.len() as u64 {
                    return Err(CommitError::Retry("a trace was created by a concurrent commit".into()));
                }
            } else {
                block_on(tx.execute_typed(
                    "UPDATE traces t SET start_ns = LEAST(t.start_ns, u.start_ns), \
                     end_ns = GREATEST(t.end_ns, u.end_ns), \
                     root_name = CASE WHEN t.has_root THEN t.root_name ELSE u.root_name END, \
                     root_service = CASE WHEN t.has_root THEN t.root_service ELSE u.root_service END, \
                     has_root = t.has_root OR u.has_root, \
                     span_count = t.span_count + u.span_count, error_count = t.error_count + u.error_count \
                     FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[], $5::text[], $6::text[], \
                     $7::bigint[], $8::bigint[]) \
                     AS u(id, start_ns, end_ns, has_root, root_name, root_service, span_count, error_count) \
                     WHERE t.id = u.id",
                    &[
                        (&id, Type::INT8_ARRAY),
                        (&start, Type::INT8_ARRAY),
                        (&end, Type::INT8_ARRAY),
                        (&has_root, Type::BOOL_ARRAY),
                        (&root_name, Type::TEXT_ARRAY),
                        (&root_service, Type::TEXT_ARRAY),
                        (&span_count, Type::INT8_ARRAY),
                        (&error_count, Type::INT8_ARRAY),
                    ],
                ))?;
            }
        }

        // --- the attribute index, sorted
        let mut attr_rows: Vec<(i64, i64, i64)> =
            traces.iter().flat_map(|t| t.hashes.iter().map(|h| (t.project_id, *h, t.seq))).collect();
        attr_rows.sort_unstable();
        for chunk in attr_rows.chunks(ROWS_PER_STATEMENT) {
            let pid: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let hash: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let seq: Vec<i64> = chunk.iter().map(|r| r.2).collect();
            block_on(tx.execute_typed(
                "INSERT INTO trace_attrs (project_id, attr_hash, trace_seq) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING",
                &[(&pid, Type::INT8_ARRAY), (&hash, Type::INT8_ARRAY), (&seq, Type::INT8_ARRAY)],
            ))?;
        }

        // --- counters
        let mut counters: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        for (i, key) in keys.iter().enumerate() {
            if accepted[i] {
                let c = counters.entry(key.0).or_default();
                c.0 += stored[i] as i64;
                c.1 += 1;
                outcomes.push(CommitOutcome::Stored { spans: stored[i], over_cap: over_cap[i] });
            } else {
                let stored = stored_envelopes.get(key).and_then(Option::as_deref);
                outcomes.push(same_envelope(stored, &batches[i].envelope_sha256));
            }
        }
        let mut counters: Vec<(i64, (i64, i64))> = counters.into_iter().collect();
        counters.sort_unstable();
        if !counters.is_empty() {
            let pid: Vec<i64> = counters.iter().map(|c| c.0).collect();
            let spans: Vec<i64> = counters.iter().map(|c| c.1.0).collect();
            let batches: Vec<i64> = counters.iter().map(|c| c.1.1).collect();
            block_on(tx.execute_typed(
                "UPDATE projects p SET span_count = p.span_count + u.spans, batch_count = p.batch_count + u.batches \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, spans, batches) WHERE p.id = u.id",
                &[(&pid, Type::INT8_ARRAY), (&spans, Type::INT8_ARRAY), (&batches, Type::INT8_ARRAY)],
            ))?;
        }
        Ok((outcomes, new_projects, new_resources))
    }

    /// The span-level column filters of `q` as `AND s.… = $n` clauses numbered from `first`.
    fn span_filters(q: &TraceQuery, first: usize) -> (String, Vec<Param>) {
        let mut sql = String::new();
        let mut params = Vec::new();
        let mut add = |clause: &str, v: Param| {
            params.push(v);
            let _ = write!(sql, " AND s.{clause} ${}", first + params.len() - 1);
        };
        if let Some(service) = &q.service {
            add("service =", Param::Text(service.clone()));
        }
        if let Some(name) = &q.span_name {
            add("name =", Param::Text(name.clone()));
        }
        if let Some(status) = q.status {
            add("status =", Param::Int4(status as i32));
        }
        if let Some(min) = q.min_duration_ns {
            add("duration_ns >=", Param::Int(ns(min)));
        }
        if let Some(max) = q.max_duration_ns {
            add("duration_ns <=", Param::Int(ns(max)));
        }
        (sql, params)
    }

    fn list_in(tx: &Transaction<'_>, q: &TraceQuery, tuning: Tuning) -> StoreResult<TracePage> {
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let row = block_on(
            tx.query_typed_opt("SELECT id FROM projects WHERE name = $1", &[(&q.project.as_str(), Type::TEXT)]),
        )
        .db()?;
        let Some(project_id) = row.map(|r| get::<i64>(&r, 0)).transpose()? else {
            return Ok(TracePage { traces: Vec::new(), next_cursor: None });
        };

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
            let threshold = tuning.driver_threshold as i64;
            for h in &indexed {
                let row = block_on(tx.query_typed_one(
                    "SELECT count(*) FROM (SELECT 1 FROM trace_attrs WHERE project_id = $1 AND attr_hash = $2 \
                     LIMIT $3) AS c",
                    &[(&project_id, Type::INT8), (h, Type::INT8), (&threshold, Type::INT8)],
                ))
                .db()?;
                let n = usize::try_from(get::<i64>(&row, 0)?).unwrap_or(usize::MAX);
                if n < tuning.driver_threshold && driver.is_none_or(|(_, best)| n < best) {
                    driver = Some((*h, n));
                }
            }
        }

        // $1 = project, then the span filters, then the rest; the keyset bound and the limit last.
        let mut params: Vec<Param> = vec![Param::Int(project_id)];
        let (span_sql, span_params) = Self::span_filters(q, 2);
        params.extend(span_params);
        let mut sql = String::from(
            "SELECT t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, \
             t.error_count FROM ",
        );
        if let Some((h, _)) = driver {
            params.push(Param::Int(h));
            let _ = write!(
                sql,
                "trace_attrs d JOIN traces t ON t.id = d.trace_seq WHERE d.project_id = $1 AND d.attr_hash = ${} \
                 AND t.project_id = $1",
                params.len()
            );
        } else {
            sql.push_str("traces t WHERE t.project_id = $1");
        }
        if q.status == Some(StatusCode::Error) {
            sql.push_str(" AND t.error_count > 0");
        }
        if let Some(from) = q.start_from_ns {
            params.push(Param::Int(ns(from)));
            let _ = write!(sql, " AND t.start_ns >= ${}", params.len());
        }
        if let Some(to) = q.start_to_ns {
            params.push(Param::Int(ns(to)));
            let _ = write!(sql, " AND t.start_ns < ${}", params.len());
        }
        // The probes are scalar subqueries with LIMIT 1, not EXISTS: PostgreSQL never turns those
        // into joins, so the listing walks traces newest first and probes each candidate's spans
        // and attribute hashes by key (as the SQLite store does), whatever the statistics say (a
        // freshly loaded table has none, and a join driven from `trace_attrs` then sorts thousands
        // of traces for one page).
        if !span_sql.is_empty() {
            let _ = write!(sql, " AND (SELECT true FROM spans s WHERE s.trace_seq = t.id{span_sql} LIMIT 1)");
        }
        for h in &attr_hashes {
            if driver.is_some_and(|d| d.0 == *h) {
                continue;
            }
            params.push(Param::Int(*h));
            let _ = write!(
                sql,
                " AND (SELECT true FROM trace_attrs a WHERE a.project_id = $1 AND a.attr_hash = ${} \
                 AND a.trace_seq = t.id LIMIT 1)",
                params.len()
            );
        }
        // The keyset bound ($n, $n+1) and the limit ($n+2) are appended per chunk.
        let n = params.len() + 1;
        let with_bound = format!("{sql} AND (t.start_ns, t.id) < (${n}, ${}) ", n + 1);
        let with_bound = format!("{with_bound} ORDER BY t.start_ns DESC, t.id DESC LIMIT ${}", n + 2);
        let without_bound = format!("{sql} ORDER BY t.start_ns DESC, t.id DESC LIMIT ${n}");

        let verify = !q.attributes.is_empty();
        let budget = tuning.scan_budget.max(1);
        // Decoding check (only with attribute filters): the bodies of a chunk's candidate spans
        // that pass the column filters. $1 = the chunk's sequence numbers, $2.. = span filters.
        let (check_span_sql, check_params) = Self::span_filters(q, 2);
        let check_sql =
            format!("SELECT s.trace_seq, s.body FROM spans s WHERE s.trace_seq = ANY($1::bigint[]){check_span_sql}");

        let mut text = String::new();
        let mut out: Vec<(i64, i64, TraceSummary)> = Vec::with_capacity(limit + 1);
        let mut scanned = 0usize;
        let mut last_scanned: Option<(i64, i64)> = None;
        let mut bound = cursor;
        // The indexed filters are already applied in SQL, so most candidates usually match: start
        // with a page's worth and grow while the decoding check keeps rejecting.
        let mut chunk = limit + 1;
        loop {
            let want = if verify { (budget - scanned).min(chunk) } else { limit + 1 };
            let mut p = params.clone();
            if let Some((start, seq)) = bound {
                p.push(Param::Int(start));
                p.push(Param::Int(seq));
            }
            p.push(Param::Int(want as i64));
            let query = if bound.is_some() { &with_bound } else { &without_bound };
            let rows = block_on(tx.query_typed(query, &typed(&p))).db()?;
            let fetched = rows.len();

            let mut matching: HashSet<i64> = HashSet::new();
            if verify && !rows.is_empty() {
                let mut seqs = Vec::with_capacity(rows.len());
                for row in &rows {
                    seqs.push(get::<i64>(row, 0)?);
                }
                let mut cp: Params<'_> = vec![(&seqs, Type::INT8_ARRAY)];
                cp.extend(typed(&check_params));
                for b in block_on(tx.query_typed(&check_sql, &cp)).db()? {
                    let seq: i64 = get(&b, 0)?;
                    if matching.contains(&seq) {
                        continue;
                    }
                    let span = decode_span_body(get(&b, 1)?)?;
                    if span_matches_attrs(&span, &q.attributes, &mut text) {
                        matching.insert(seq);
                    }
                }
            }

            for row in &rows {
                scanned += 1;
                let seq: i64 = get(row, 0)?;
                let start: i64 = get(row, 2)?;
                last_scanned = Some((start, seq));
                if verify && !matching.contains(&seq) {
                    if scanned >= budget {
                        break;
                    }
                    continue;
                }
                let trace_blob: &[u8] = get(row, 1)?;
                let trace_id = TraceId::from_slice(trace_blob)
                    .ok_or_else(|| StoreError::Corrupt(format!("trace id of {} bytes", trace_blob.len())))?;
                let has_root: bool = get(row, 4)?;
                out.push((
                    start,
                    seq,
                    TraceSummary {
                        trace_id,
                        root_name: if has_root { get(row, 5)? } else { None },
                        root_service: if has_root { get(row, 6)? } else { None },
                        start_unix_nano: unns(start),
                        end_unix_nano: unns(get(row, 3)?),
                        span_count: unns(get(row, 7)?),
                        error_count: unns(get(row, 8)?),
                    },
                ));
                if out.len() > limit || (verify && scanned >= budget) {
                    break;
                }
            }
            if !verify || out.len() > limit || scanned >= budget || fetched < want {
                break;
            }
            bound = last_scanned;
            chunk = (chunk * 2).min(CANDIDATE_CHUNK.max(limit + 1));
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

    fn get_trace_in(client: &Client, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>> {
        let rows = block_on(client.query_typed(
            "SELECT s.resource_id, s.body FROM spans s WHERE s.trace_seq = (SELECT t.id FROM traces t \
             JOIN projects p ON p.id = t.project_id WHERE p.name = $1 AND t.trace_id = $2) \
             ORDER BY s.start_ns, s.span_id",
            &[(&project, Type::TEXT), (&&trace_id.0[..], Type::BYTEA)],
        ))
        .db()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut spans = Vec::with_capacity(rows.len());
        let mut ids: Vec<i64> = Vec::new();
        for row in &rows {
            let resource_id: i64 = get(row, 0)?;
            let span = decode_span_body(get(row, 1)?)?;
            if span.trace_id != trace_id {
                return Err(StoreError::Corrupt(format!("span of trace {} filed under {trace_id}", span.trace_id)));
            }
            if !ids.contains(&resource_id) {
                ids.push(resource_id);
            }
            spans.push((resource_id, span));
        }
        // Resources never change once written: no snapshot needed across the two statements.
        let mut resources = HashMap::new();
        for row in
            block_on(client.query_typed(
                "SELECT id, body FROM resources WHERE id = ANY($1::bigint[])",
                &[(&ids, Type::INT8_ARRAY)],
            ))
            .db()?
        {
            resources.insert(get::<i64>(&row, 0)?, decode_resource_body(get(&row, 1)?)?);
        }
        spans
            .into_iter()
            .map(|(resource_id, span)| {
                let (resource, scope) = resources
                    .get(&resource_id)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("resource {resource_id} is missing")))?;
                Ok(StoredSpan { resource, scope, span })
            })
            .collect()
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
        self.write(|client, _| {
            let tx = block_on(client.transaction()).db()?;
            block_on(tx.execute_typed("SELECT pg_advisory_xact_lock($1)", &[(&MIGRATION_LOCK, Type::INT8)])).db()?;
            block_on(tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS tracex_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            ))
            .db()?;
            let row =
                block_on(tx.query_typed_one("SELECT coalesce(max(version), 0) FROM tracex_migrations", &[])).db()?;
            let version: i32 = get(&row, 0)?;
            let done = usize::try_from(version).unwrap_or(usize::MAX);
            if done > MIGRATIONS.len() {
                return Err(StoreError::Database(format!(
                    "the database schema is version {version}, newer than this build knows ({})",
                    MIGRATIONS.len()
                )));
            }
            for (i, step) in MIGRATIONS.iter().enumerate().skip(done) {
                block_on(tx.batch_execute(step)).db()?;
                let v = i32::try_from(i + 1).unwrap_or(i32::MAX);
                block_on(tx.execute_typed("INSERT INTO tracex_migrations (version) VALUES ($1)", &[(&v, Type::INT4)]))
                    .db()?;
            }
            block_on(tx.commit()).db()
        })
    }

    fn commit(&self, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|client, writer| {
            let mut attempt = 1;
            loop {
                let tx = block_on(client.transaction()).db()?;
                let result = Self::commit_in(&tx, writer, batches, self.tuning)
                    .and_then(|out| block_on(tx.commit()).map(|()| out).map_err(CommitError::from));
                match result {
                    Ok((outcomes, projects, resources)) => {
                        writer.projects.extend(projects);
                        if writer.resources.len() + resources.len() > RESOURCE_CACHE_MAX {
                            writer.resources.clear();
                        }
                        writer.resources.extend(resources);
                        return Ok(outcomes);
                    }
                    Err(CommitError::Retry(why)) if attempt < COMMIT_ATTEMPTS => {
                        tracing::info!(attempt, reason = %why, "commit conflicted with a concurrent writer; retrying");
                        attempt += 1;
                    }
                    Err(CommitError::Retry(why)) => {
                        return Err(StoreError::Database(format!("commit kept conflicting: {why}")));
                    }
                    Err(CommitError::Fatal(e)) => return Err(e),
                }
            }
        })
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
        self.write(|client, _| {
            let created = key.created_at_unix_nano as i64;
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
        })
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(|client| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
            let row = block_on(client.query_typed_opt(&sql, &[(&id, Type::TEXT)])).db()?;
            row.map(|row| api_key_row(&row)).transpose()
        })
    }

    fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.read(|client| {
            let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at_ns, id");
            block_on(client.query_typed(&sql, &[])).db()?.iter().map(api_key_row).collect()
        })
    }

    fn revoke_api_key(&self, id: &str, now_unix_nano: u64) -> StoreResult<bool> {
        self.write(|client, _| {
            let n = block_on(client.execute_typed(
                "UPDATE api_keys SET revoked_at_ns = $2 WHERE id = $1 AND revoked_at_ns IS NULL",
                &[(&id, Type::TEXT), (&ns(now_unix_nano), Type::INT8)],
            ))
            .db()?;
            Ok(n == 1)
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|client| block_on(client.query_typed_one("SELECT 1", &[])).db().map(drop))
    }
}

#[cfg(test)]
mod tests {
    //! These need a PostgreSQL server: `scripts/with-postgres.sh cargo test -p tracex-collector --lib
    //! -- --ignored postgres` (each test creates and drops a database of its own).

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::super::common::bench_data::{Rng, realistic_request, report_scale};
    use super::super::conformance::{self, batch, request, span, tid};
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
    fn execute(url: &str, sql: &str) {
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
    struct TestDb {
        name: String,
        url: String,
    }

    impl TestDb {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let name = format!("tracex_test_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            let admin = admin_url();
            execute(&admin, &format!("CREATE DATABASE {name}"));
            let url = with_dbname(&admin, &name);
            Self { name, url }
        }

        fn store(&self) -> PostgresStore {
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
        let t = tid(9, 2);
        let req = request("svc", vec![span(t, 1, None, "root", 10, 90), span(t, 2, Some(1), "child", 20, 30)]);
        {
            let store = db.store();
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
        let store = db.store();
        store.migrate().unwrap();
        assert_eq!(store.get_trace("p", t).unwrap().len(), 2);
        assert_eq!(store.span_count("p").unwrap(), 2);
        assert_eq!(store.batch_count("p").unwrap(), 1);
        assert!(store.api_key("k").unwrap().is_some());
        // Idempotency survives the reconnect; new data comes after the old.
        assert_eq!(store.commit(&[batch("p", 1, req)]).unwrap(), vec![CommitOutcome::Duplicate]);
        let t2 = tid(9, 3);
        let out = store.commit(&[batch("p", 2, request("svc", vec![span(t2, 1, None, "next", 100, 200)]))]).unwrap();
        assert_eq!(out, vec![CommitOutcome::Stored { spans: 1, over_cap: 0 }]);
        assert_eq!(store.get_trace("p", t2).unwrap()[0].span.name, "next");
        let page = store.list_traces(&TraceQuery { project: "p".into(), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(page.traces.iter().map(|s| s.trace_id).collect::<Vec<_>>(), vec![t2, t]);
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
        assert_eq!(out, vec![CommitOutcome::Stored { spans: 1, over_cap: 0 }]);
        assert_eq!(store.span_count("p").unwrap(), 2);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_a_failed_commit_stores_nothing_of_any_batch() {
        let db = TestDb::new();
        let store = db.store();
        store.migrate().unwrap();
        // Make the database refuse one span half-way through the call.
        execute(
            &db.url,
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.name = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_boom BEFORE INSERT ON spans FOR EACH ROW EXECUTE FUNCTION refuse_boom();",
        );
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
        for table in ["projects", "batches", "resources", "spans", "traces", "trace_attrs"] {
            assert_eq!(count_rows(&db.url, table), 0, "{table} kept rows of the failed commit");
        }

        // The ids handed out in the failed transaction are not reused from a stale cache.
        assert_eq!(store.commit(&[good]).unwrap(), vec![CommitOutcome::Stored { spans: 1, over_cap: 0 }]);
        let got = store.get_trace("fresh-project", t1).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].resource.service_name(), Some("fresh-service"));
        assert_eq!(store.list_traces(&q).unwrap().traces.len(), 1);
        assert_eq!(store.batch_count("fresh-project").unwrap(), 1);
        // The refused batch goes through once the database accepts it.
        execute(&db.url, "DROP TRIGGER refuse_boom ON spans");
        assert_eq!(store.commit(&[bad]).unwrap(), vec![CommitOutcome::Stored { spans: 2, over_cap: 0 }]);
    }

    #[test]
    #[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
    fn postgres_reads_run_while_commits_are_in_progress() {
        let db = TestDb::new();
        conformance::readers_never_see_partial_commits(Arc::new(db.store()));
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
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let rounds = env("TRACEX_BENCH_ROUNDS", 10);
        let per_call = env("TRACEX_BENCH_BATCHES", 200);
        let db = TestDb::new();
        let store = db.store();
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
        let size = {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
                let conn = tokio::spawn(connection);
                let n: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await.unwrap().get(0);
                drop(client);
                let _ = conn.await;
                n
            })
        };
        report_scale(&store, total_spans, total_time, per_call, size as u64);
    }
}
