//! Shared by the collector benches: a real collector in this process (its own 2-thread runtime,
//! a temporary data dir), an ingest key and the collector's public key.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;
use tracex_collector::config::Config;
use tracex_collector::store::{KeyScope, NewBatch, Store};
use tracex_core::{KeyValue, SpanData, SpanKind, Status, TraceRequest, ids};

pub struct BenchCollector {
    pub url: String,
    /// `http://addr` of the OTLP/gRPC listener, when started with one.
    pub grpc_url: Option<String>,
    pub store: Arc<dyn Store>,
    pub ingest_key: String,
    pub public_pem: String,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), String>>,
    dir: PathBuf,
}

impl BenchCollector {
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, false, true)
    }

    /// With the OTLP/gRPC listener on a free port too, if `grpc`; the audit log on or off.
    pub fn start_with(tag: &str, grpc: bool, audit_log: bool) -> Self {
        Self::start_configured(tag, grpc, |c| c.audit_log = audit_log)
    }

    /// With the OTLP/gRPC listener on a free port too, if `grpc`, and the settings `edit` makes.
    pub fn start_configured(tag: &str, grpc: bool, edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(bench_dir(tag), grpc, edit)
    }

    /// A second collector of the same fleet: `self`'s keys (so it opens the same sealed batches and
    /// signs the same audit log), its own data dir and listener, the settings `edit` makes (the
    /// same `database_url`, for a fleet on one PostgreSQL database).
    #[must_use]
    pub fn start_fleet_member(&self, tag: &str, edit: impl FnOnce(&mut Config)) -> Self {
        let dir = bench_dir(tag);
        let (from, to) = (self.dir.join("keys"), dir.join("keys"));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let path = entry.unwrap().path();
            // `fs::copy` keeps the 0600 mode the collector insists on.
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
        Self::start_in(dir, false, edit)
    }

    fn start_in(dir: PathBuf, grpc: bool, edit: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            data_dir: dir.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            otlp_grpc_listen: grpc.then(|| "127.0.0.1:0".parse().unwrap()),
            ..Config::default()
        };
        edit(&mut config);
        // Two worker threads, like production on this machine; named so CPU accounting can tell
        // the collector's threads from the SDK's.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("collector-rt")
            .enable_all()
            .build()
            .unwrap();
        let collector = runtime.block_on(tracex_collector::Collector::start(config.clone())).unwrap();
        let url = format!("http://{}", collector.local_addr().unwrap());
        let grpc_url = collector.otlp_grpc_addr().map(|a| format!("http://{}", a.unwrap()));
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(collector.serve(async move {
            let _ = stop_rx.await;
        }));
        let store = tracex_collector::open_store(&config).unwrap();
        let key = tracex_collector::auth::generate("bench", KeyScope::Ingest, 0).unwrap();
        store.insert_api_key(&key.record).unwrap();
        let public_pem = reqwest::blocking::Client::new()
            .get(format!("{url}/v1/public-key"))
            .header("accept", "application/x-pem-file")
            .send()
            .unwrap()
            .text()
            .unwrap();
        Self { url, grpc_url, store, ingest_key: key.key, public_pem, runtime, stop, server, dir }
    }

    /// Graceful shutdown (the writer commits what is queued), then the data dir is removed.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.runtime.block_on(self.server).unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh data dir for a bench collector tagged `tag`.
fn bench_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracex-{tag}-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The PostgreSQL server to bench against, from `TRACEX_TEST_POSTGRES_URL` (set by
/// `scripts/with-postgres.sh`).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TRACEX_TEST_POSTGRES_URL").ok().filter(|u| !u.trim().is_empty())
}

/// An empty database of its own on that server, dropped (with any connections left) at the end.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn create(admin_url: &str, tag: &str) -> Self {
        let name = format!("tracex_bench_{tag}_{}", std::process::id());
        pg_execute(admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"));
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Self { admin_url: admin_url.to_owned(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        pg_execute(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Runs `sql` (one or more statements, outside a transaction) on the database at `url`.
pub fn pg_execute(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(connection);
        // One statement per query: CREATE/DROP DATABASE refuse the implicit transaction of a
        // multi-statement query.
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            client.batch_execute(statement).await.unwrap();
        }
        drop(client);
        let _ = conn.await;
    });
}

/// An OTLP/HTTP receiver that takes every request and answers 200 at once (reads the body, decodes
/// nothing): what the OTLP export costs the collector, without a receiver's cost on the same cores.
pub struct NullReceiver {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NullReceiver {
    pub fn start() -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/v1/traces", axum::routing::post(|_body: axum::body::Bytes| async { "" }))
                    .layer(axum::extract::DefaultBodyLimit::disable());
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self { url: format!("http://{addr}"), stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for NullReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` spans in traces of 8 (a facilitator's verify + settle with RPC calls), seven attributes
/// each: one payment per trace, so amount and payer are per trace, as in x402.
pub fn payment_spans(n: usize) -> Vec<SpanData> {
    payment_spans_in_traces_of(n, 8)
}

/// [`payment_spans`] in traces of `per_trace` spans (a root, then its children).
pub fn payment_spans_in_traces_of(n: usize, per_trace: usize) -> Vec<SpanData> {
    let now = tracex_collector::now_unix_nano();
    let random = random_trace_ids();
    let new_id = || if random { random_trace_id() } else { ids::new_trace_id() };
    let mut trace_id = new_id();
    (0..n)
        .map(|i| SpanData {
            trace_id: {
                if i % per_trace == 0 {
                    trace_id = new_id();
                }
                trace_id
            },
            span_id: ids::new_span_id(),
            parent_span_id: (i % per_trace != 0).then(ids::new_span_id),
            flags: 1,
            name: if i % 2 == 0 { "POST /verify".into() } else { "POST /settle".into() },
            kind: SpanKind::Server,
            start_time_unix_nano: now + i as u64,
            end_time_unix_nano: now + i as u64 + 2_500_000,
            attributes: vec![
                KeyValue::new("x402.scheme", "exact"),
                KeyValue::new("x402.network", "base"),
                KeyValue::new("x402.asset", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
                KeyValue::new(
                    "x402.amount",
                    format!("{}", 10_000 + u64::from(trace_id.0[0]) * 7 + u64::from(trace_id.0[1])),
                ),
                KeyValue::new("x402.payer", format!("0x{}", trace_id.to_hex().repeat(2).get(..40).unwrap_or_default())),
                KeyValue::new("x402.attempt", 1i64),
                KeyValue::new("http.response.status_code", 200i64),
            ],
            status: Status::ok(),
            ..Default::default()
        })
        .collect()
}

/// `BENCH_RANDOM_TRACE_IDS=1`: trace ids of sixteen random bytes, as SDKs other than tracex's
/// make them, instead of the core's, which start with the trace's start time
/// (`tracex_core::ids::new_trace_id_at`).
pub fn random_trace_ids() -> bool {
    std::env::var_os("BENCH_RANDOM_TRACE_IDS").is_some_and(|v| v == "1")
}

/// A trace id of sixteen random bytes.
pub fn random_trace_id() -> tracex_core::TraceId {
    let mut b = [0u8; 16];
    ids::fill_random(&mut b).expect("randomness");
    tracex_core::TraceId(b)
}

/// Batch `n` of one SDK instance of project `bench` (its id and sequence number follow from `n`)
/// holding `request`, not prepared: a batch as the ingest endpoints hand it to the store.
pub fn store_batch(n: usize, request: TraceRequest) -> NewBatch {
    let now = tracex_collector::now_unix_nano();
    let mut batch_id = [0u8; 16];
    batch_id[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    NewBatch {
        project: "bench".into(),
        batch_id,
        key_id: [1; 32],
        instance_id: [7; 8],
        sequence: n as u64 + 1,
        sdk_name: "tracex-rust".into(),
        sdk_version: "0.1.0".into(),
        created_at_unix_nano: now,
        received_at_unix_nano: now,
        envelope_sha256: sha2::Sha256::digest(batch_id).into(),
        origin: tracex_collector::audit::leaf::Origin::Sealed,
        prepared: None,
        request,
    }
}

/// CPU time a thread has used so far, from its `/proc` task directory (`/proc/thread-self`,
/// `/proc/self/task/<tid>`; Linux only): the scheduler's run time in nanoseconds (`schedstat`),
/// not `stat`'s utime + stime, which count 10 ms ticks — too coarse for threads that run a few
/// milliseconds in a 5-second bench (the SDK's senders read 0 there). 0 when unreadable.
pub fn task_cpu(task: &Path) -> std::time::Duration {
    let schedstat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
    let ns = schedstat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    std::time::Duration::from_nanos(ns)
}

/// CPU time of the calling thread so far ([`task_cpu`] of `/proc/thread-self`).
pub fn thread_cpu() -> std::time::Duration {
    task_cpu(Path::new("/proc/thread-self"))
}

/// Environment variable `name` as a number, `default` unless set; a value that is not one stops the
/// bench naming the variable (a typo must not measure the default under the name of a setting).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| v.trim().parse().unwrap_or_else(|_| panic!("{name}: not a number: {v:?}")))
}

/// Environment variable `name` as a comma-separated list of numbers, `default` unless set.
pub fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|n| n.trim().parse().unwrap_or_else(|_| panic!("{name}: comma-separated positive integers")))
        .collect()
}
