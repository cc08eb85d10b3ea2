//! # tracex-collector
//!
//! One binary that payment teams run next to their services. One batch's way:
//!
//! ```text
//! POST /v1/batches ─▶ endpoints::ingest ─ auth (hashed API keys, constant-time)
//!        │                    │
//!        │                    ▼ (blocking thread)
//!        │            services::unseal ─ key ring (RSA-OAEP, aws-lc-rs) + data-key cache
//!        │                    │          AES-256-GCM open ─ OTLP decode ─ services::validate
//!        │                    ▼
//!        │            services::writer ─ group commit (many requests, one transaction)
//!        │                    │
//!        ▼                    ▼
//!      200 ◀──────────── store (SQLite WAL, or PostgreSQL) ─ durable before the answer
//!
//! POST /v1/traces (OTLP/HTTP, clear text) ─▶ endpoints::otlp::http ─┐ same auth and limits,
//! gRPC TraceService/Export (own listener) ─▶ endpoints::otlp::grpc ─┴▶ endpoints::otlp::export
//!        └─▶ services::otlp: gunzip ─ decode (protobuf | JSON) ─ redact (the SDKs' rules)
//!            ─ validate (invalid spans answered as a partial success) ─▶ services::writer
//!
//! GET /api/v1/traces[/{id}] ─▶ endpoints::query ─▶ store (read connections)
//! GET /api/v1/live ◀── SSE ── live (fan-out after each commit, bounded per viewer)
//! GET /api/v1/{stats,services,attributes} ─▶ endpoints::stats ─▶ stats (merge sketches) ─▶ store
//! every minute: services::retention ─▶ store (old traces, their spans and statistics, in chunks)
//! with [export] url: export ─ audit log after its cursor ─▶ OTLP/HTTP receiver (at least once)
//! GET / , /assets/* ─▶ endpoints::dashboard (embedded with feature `dashboard`)
//! ```
//!
//! The writer's transaction also merges each stored span into its per-minute and hourly latency
//! sketches (`stats`), so statistics never disagree with the stored spans.

// Tests do arithmetic on small, known numbers; the library itself is checked without this (clippy
// runs on the non-test build too).
#![cfg_attr(test, allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss))]

pub mod allocator;
pub mod audit;
pub mod auth;
pub mod civil;
pub mod config;
pub mod endpoints;
pub mod export;
pub mod key_bundle;
pub mod keys;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod priority;
pub mod private;
pub mod ratelimit;
pub mod server;
pub mod services;
pub mod stats;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::auth::Authenticator;
use crate::config::{Config, Database};
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::services::unseal::Unsealer;
use crate::services::writer::Writer;
use crate::store::Store;

/// Now, unix nanoseconds.
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What every handler shares.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// The trace store.
    pub store: Arc<dyn Store>,
    /// API key checks.
    pub auth: Authenticator,
    /// Opens sealed batches.
    pub unsealer: Unsealer,
    /// The group-commit writer.
    pub writer: Writer,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Browser origins allowed on the SDK endpoints (CORS; empty: off).
    pub cors: endpoints::cors::AllowedOrigins,
    /// Batches being opened and decoded at once (bounds decode memory across requests).
    pub decode_slots: tokio::sync::Semaphore,
    /// Decoded batches waiting for their commit, in KiB of estimated memory.
    pub decoded_budget: tokio::sync::Semaphore,
    /// Requests per second per API key.
    pub rate_limits: ratelimit::RateLimiter,
    /// Live-tail viewers.
    pub live: live::LiveHub,
    /// Redacts clear-text OTLP spans with the rules the SDKs apply before sealing.
    pub redactor: tracex_core::redact::Redactor,
    /// Signs the audit log's checkpoints and each batch's receipt.
    pub audit: Arc<audit::signer::AuditSigner>,
    /// Set when shutdown begins: requests that still arrive are refused (503, gRPC `UNAVAILABLE`)
    /// while those in flight finish.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Declares the API's routes once: the router is built from this list, and the OpenAPI document
/// (`endpoints::openapi`) is checked against it in a test, so neither can drift from the other.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// `(method, path)` of every API route, in axum's path syntax (which is OpenAPI's).
        pub const API_ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn api_router() -> Router<Arc<AppState>> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

api_routes! {
    post "/v1/batches" => endpoints::ingest::post_batch,
    post "/v1/traces" => endpoints::otlp::post_traces,
    get "/v1/public-key" => endpoints::keys::public_key,
    get "/v1/audit-key" => endpoints::audit::audit_key,
    get "/api/v1/traces" => endpoints::query::list,
    get "/api/v1/traces/{trace_id}" => endpoints::query::get,
    get "/api/v1/stats" => endpoints::stats::stats,
    get "/api/v1/services" => endpoints::stats::services,
    get "/api/v1/attributes" => endpoints::stats::attribute_keys,
    get "/api/v1/attributes/{key}/values" => endpoints::stats::attribute_values,
    get "/api/v1/live" => endpoints::live::live,
    get "/api/v1/audit/checkpoint" => endpoints::audit::checkpoint,
    get "/api/v1/audit/checkpoints" => endpoints::audit::checkpoints,
    get "/api/v1/audit/inclusion" => endpoints::audit::inclusion,
    get "/api/v1/audit/consistency" => endpoints::audit::consistency,
    get "/api/v1/audit/gaps" => endpoints::audit::gaps,
    get "/api/v1/openapi.json" => endpoints::openapi::document,
    get "/healthz" => endpoints::health::healthz,
    get "/readyz" => endpoints::health::readyz,
    get "/metrics" => endpoints::health::metrics,
}

/// The routes.
pub fn app(state: Arc<AppState>) -> Router {
    let cors = axum::middleware::from_fn_with_state(state.clone(), endpoints::cors::cors);
    // The dashboard's page and assets are not part of the API (nor of its OpenAPI document).
    api_router()
        .route("/", get(endpoints::dashboard::index))
        .route("/assets/{*path}", get(endpoints::dashboard::asset))
        .layer(cors)
        .with_state(state)
}

/// Opens the configured store and runs its migrations.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    // The data dir holds keys and (by default) the database: decrypted spans and API-key hashes.
    private::dir(&config.data_dir)?;
    let store: Arc<dyn Store> = match config.database()? {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            private::sqlite_files(&path)?;
            let mut store = store::sqlite::SqliteStore::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            store.set_max_spans_per_trace(config.max_spans_per_trace);
            store.set_audit_log(config.audit_log);
            Arc::new(store)
        }
        Database::Postgres(url) => {
            let mut store = store::postgres::PostgresStore::connect_with_replica(&url, config.database_read_url()?)
                .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
            store.set_max_spans_per_trace(config.max_spans_per_trace);
            store.set_audit_log(config.audit_log);
            Arc::new(store)
        }
    };
    store.migrate().map_err(|e| format!("migrating the store: {e}"))?;
    Ok(store)
}

/// A collector that has opened its store and keys and is ready to serve.
pub struct Collector {
    state: Arc<AppState>,
    writer_thread: std::thread::JoinHandle<()>,
    listener: tokio::net::TcpListener,
    otlp_grpc: Option<tokio::net::TcpListener>,
    /// This collector's name as a holder of the OTLP export's cursor.
    export_holder: String,
    /// The OTLP export's sender, with the export on.
    export_sender: Option<export::sender::Sender>,
}

impl Collector {
    /// Opens keys and store, starts the writer and binds the listener.
    pub async fn start(config: Config) -> Result<Self, String> {
        let cors = endpoints::cors::AllowedOrigins::parse(&config.cors_allowed_origins)?;
        // Refused before anything is opened, as a bad setting should be.
        config.audit_checkpoint_interval()?;
        config.retention_interval()?;
        let export_sender = config.export.sender(config.audit_log)?;
        let ring = KeyRing::load_or_create(&config.keys_dir()).map_err(|e| e.to_string())?;
        tracing::info!(key_id = %ring.current().key_id, keys = ring.len(), "collector key loaded");
        let audit =
            Arc::new(audit::signer::AuditSigner::load_or_create(&config.keys_dir()).map_err(|e| e.to_string())?);
        tracing::info!(audit_key = %audit.verifier(), "audit key loaded");
        let store = open_store(&config)?;
        let export_holder = export::holder_id();
        if export_sender.is_some() {
            export::prepare(&*store, &export_holder)?;
        }
        let metrics = Arc::new(Metrics::default());
        // Collectors sharing a database (PostgreSQL) also show what the others commit.
        let fleet = config.audit_log && matches!(config.database()?, Database::Postgres(_));
        let live = live::LiveHub::spawn(config.live_limits(), metrics.clone(), fleet)
            .map_err(|e| format!("starting the live tail: {e}"))?;
        let (writer, writer_thread) = Writer::spawn(
            store.clone(),
            metrics.clone(),
            live.clone(),
            config.commit_max_batches,
            Duration::from_millis(config.commit_max_wait_ms),
            config.writer_queue,
        )
        .map_err(|e| format!("starting the writer: {e}"))?;
        let unsealer = Unsealer::new(
            ring,
            config.keys_dir(),
            metrics.clone(),
            config.max_plaintext_bytes,
            config.decode_limits(),
            config.data_key_cache,
        );
        let decode_slots = tokio::sync::Semaphore::new(config.decode_slots());
        let rate_limits =
            ratelimit::RateLimiter::new(config.rate_limit_per_key_per_second, config.rate_limit_burst_per_key);
        // At least one largest batch always fits, whatever the settings say.
        let decoded_budget = tokio::sync::Semaphore::new(
            config.max_inflight_decoded_bytes.max(config.max_decoded_bytes).div_ceil(endpoints::ingest::BUDGET_UNIT),
        );
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("listening on {}: {e}", config.listen))?;
        let otlp_grpc = match config.otlp_grpc_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("listening for OTLP/gRPC on {addr}: {e}"))?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            auth: Authenticator::new(store.clone()),
            config,
            store,
            unsealer,
            writer,
            metrics,
            cors,
            decode_slots,
            decoded_budget,
            rate_limits,
            live,
            redactor: tracex_core::redact::Redactor::default(),
            audit,
            draining: Arc::default(),
        });
        Ok(Self { state, writer_thread, listener, otlp_grpc, export_holder, export_sender })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The OTLP/gRPC listener's bound address, if it is on.
    pub fn otlp_grpc_addr(&self) -> Option<std::io::Result<std::net::SocketAddr>> {
        self.otlp_grpc.as_ref().map(tokio::net::TcpListener::local_addr)
    }

    /// Serves until `shutdown` resolves: then stops accepting, finishes in-flight requests, lets
    /// the writer commit everything queued, and returns.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let Self { state, writer_thread, listener, otlp_grpc, export_holder, export_sender } = self;
        let (final_store, final_signer) = (state.store.clone(), state.audit.clone());
        let final_export_store = state.store.clone();
        let router = app(state.clone());
        // A writer that dies (it only ends on its own by panicking) stops the server too: a
        // collector that can no longer store must not keep accepting connections.
        let writer_stopped = state.writer.stopped();
        let live = state.live.clone();
        let draining = state.draining.clone();
        // Both listeners stop together: the HTTP one on the signal, the gRPC one when it fires.
        let (stopping, stop) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {},
                () = writer_stopped => tracing::error!("the writer stopped; shutting down"),
            }
            draining.store(true, std::sync::atomic::Ordering::Release);
            let _ = stopping.send(true);
            // Live streams never end on their own: end them, or the drain waits out its grace.
            live.close();
        };
        services::retention::prepare_partitions(state.store.clone(), state.config.retention()).await;
        let retention = tokio::spawn(services::retention::run(
            state.store.clone(),
            state.config.retention(),
            state.config.retention_interval()?,
        ));
        let checkpointer = tokio::spawn(services::checkpointer::run(
            state.store.clone(),
            state.audit.clone(),
            state.metrics.clone(),
            state.config.audit_checkpoint_interval()?,
        ));
        let fleet_live = if state.live.is_fleet() {
            let store = state.store.clone();
            let start = tokio::task::spawn_blocking(move || store.audit_size())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("reading the audit log's size: {e}"))?;
            Some(tokio::spawn(live::fleet::run(
                state.store.clone(),
                state.live.clone(),
                live::fleet::POLL_INTERVAL,
                start,
            )))
        } else {
            None
        };
        let export_on = export_sender.is_some();
        let exporter = export_sender.map(|sender| {
            tokio::spawn(export::run(
                state.store.clone(),
                state.metrics.clone(),
                state.config.export.clone(),
                sender,
                export_holder.clone(),
            ))
        });
        let limits = state.config.server_limits();
        let grpc = async {
            if let Some(listener) = otlp_grpc {
                let mut stop = stop;
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let router = endpoints::otlp::grpc::router(state.clone());
                server::serve(listener, router, limits, server::Protocol::Http2, stopped).await;
            }
        };
        tokio::join!(server::serve(listener, router, limits, server::Protocol::Http1, shutdown), grpc);
        retention.abort();
        checkpointer.abort();
        if let Some(e) = exporter {
            e.abort();
        }
        if let Some(f) = fleet_live {
            f.abort();
        }
        // The router (and its state clones) are gone once serve returns; dropping the last state
        // closes the writer's queue, and the writer exits after committing what it holds.
        drop(state);
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the writer panicked".to_owned())?;
        // Receipts promise the next checkpoint: the batches of the last commits get theirs now.
        let signed = tokio::task::spawn_blocking(move || {
            audit::checkpoints::sign_if_grown(&*final_store, &final_signer, now_unix_nano())
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Err(e) = signed {
            tracing::warn!(error = %e, "signing the last audit checkpoint failed; the next start signs it");
        }
        if export_on {
            // What the export had in flight is sent again by whoever claims the cursor next.
            let _ = tokio::task::spawn_blocking(move || export::release(&*final_export_store, &export_holder)).await;
        }
        tracing::info!("collector stopped cleanly");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received: draining");
}
