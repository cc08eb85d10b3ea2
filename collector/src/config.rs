//! Collector settings: defaults, overridden by a TOML file, then by `TRACEX_*` environment
//! variables and command-line flags (clap resolves those two), in that order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Default of `audit_checkpoint_interval_ms`: half the 10 s the log promises, so a checkpoint
/// that fails once (a busy database) is retried within the promise.
pub const DEFAULT_AUDIT_CHECKPOINT_INTERVAL_MS: u64 = 5_000;

/// Longest `audit_checkpoint_interval_ms` accepted: the log promises a checkpoint within 10 s of
/// a leaf (`docs/audit.md`), and a receipt promises inclusion in the next one.
pub const MAX_AUDIT_CHECKPOINT_INTERVAL_MS: u64 = 10_000;

/// Everything `serve` needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`TRACEX_LISTEN`, default `127.0.0.1:3002`).
    pub listen: SocketAddr,
    /// Address of the OTLP/gRPC listener (`TraceService/Export`), e.g. `127.0.0.1:4317`, OTLP's
    /// usual gRPC port (`TRACEX_OTLP_GRPC_LISTEN`, `--otlp-grpc-listen`). Default: none, no
    /// listener: a second open port is the operator's choice, and OTLP/HTTP (`POST /v1/traces` on
    /// `listen`) serves the same exporters without one.
    pub otlp_grpc_listen: Option<SocketAddr>,
    /// Keys and the embedded database live here (`TRACEX_DATA_DIR`, default `./tracex-data`).
    pub data_dir: PathBuf,
    /// `sqlite:///path/to/file.db` (default: `<data_dir>/tracex.db`) or `postgres://…`
    /// (`TRACEX_DATABASE_URL`).
    pub database_url: Option<String>,
    /// `postgres://…` of a read replica of `database_url` (`TRACEX_DATABASE_READ_URL`,
    /// `--database-read-url`): reads go there, writes to `database_url`. See `docs/deploy.md`.
    pub database_read_url: Option<String>,
    /// Largest accepted request body (default 8 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest decrypted (and inflated) batch (default 64 MiB).
    pub max_plaintext_bytes: usize,
    /// Most memory one batch may take once decoded, estimated while decoding (default 256 MiB);
    /// decoding stops at the first byte over it (413 `limit_exceeded`).
    pub max_decoded_bytes: usize,
    /// Most attributes, events, links and array elements in one batch (default 2,000,000).
    pub max_items_per_batch: usize,
    /// Batches opened and decoded at once (default 0: one per CPU core). With the limits above it
    /// bounds decode memory across requests: a request waits for a slot, it never adds to the peak.
    pub decode_concurrency: usize,
    /// Most decoded memory held by batches waiting for their commit, all requests together
    /// (default 1 GiB); over it, ingest answers 503 + `Retry-After` and stores nothing.
    pub max_inflight_decoded_bytes: usize,
    /// A request's headers must arrive within this long (default 10 s), or the connection closes.
    pub header_read_timeout_ms: u64,
    /// A batch body must arrive within this long once its headers have (default 30 s); else 408.
    pub body_read_timeout_ms: u64,
    /// Connections served at once (default 1024); keep it under the process's descriptor limit.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before closing their connections (default 10 s).
    pub shutdown_grace_ms: u64,
    /// Most spans stored per trace (default 50,000); spans past it are acknowledged, counted
    /// (`tracex_spans_over_trace_cap_total`, `over_trace_cap` in the answer) and not stored.
    pub max_spans_per_trace: u64,
    /// Requests a second each API key may make (default 1,000; 0: unlimited); over it, 429
    /// `rate_limited` with `Retry-After`, before the body is read.
    pub rate_limit_per_key_per_second: f64,
    /// Requests an idle API key may make at once before the rate applies (default 2,000).
    pub rate_limit_burst_per_key: f64,
    /// Most ingest requests committed in one transaction (default 200).
    pub commit_max_batches: usize,
    /// Longest a commit waits for more requests to join it (default 5 ms).
    pub commit_max_wait_ms: u64,
    /// Requests waiting for the writer before new ones get 503 + `Retry-After` (default 2048).
    pub writer_queue: usize,
    /// Unwrapped data keys kept in memory (default 4096).
    pub data_key_cache: usize,
    /// Log format (`TRACEX_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Browser origins allowed to call `POST /v1/batches` and `GET /v1/public-key` (CORS), e.g.
    /// `["https://app.example.com"]`, or `["*"]` for any (`TRACEX_CORS_ORIGINS`, comma-separated;
    /// `--cors-origin`). Default: none, and no CORS headers are sent.
    pub cors_allowed_origins: Vec<String>,
    /// Live-tail streams (`GET /api/v1/live`) one read key may hold open at once (default 16);
    /// past it, 429 `too_many_streams`.
    pub live_max_streams_per_key: usize,
    /// Live-tail streams open at once, all keys together (default 256).
    pub live_max_streams: usize,
    /// Rendered spans queued for one live viewer that has not read them yet (default 1 MiB); past
    /// it, spans are skipped for that viewer and reported to it as `lagged`.
    pub live_buffer_bytes: usize,
    /// Spans per second one live viewer is sent at most, with a burst of one second's worth
    /// (default 2,000; 0: no limit); past it, spans are skipped for that viewer and reported to it
    /// as `lagged`. Bounds what each viewer costs the collector whatever the ingest rate: 50
    /// viewers each sent every span of 50,000 spans/s took 0.74 of the collector's ingest
    /// throughput on 2 cores (`docs/benchmarks.md`), and a tail shows a few hundred rows.
    pub live_max_spans_per_second: u32,
    /// Most spans a statistics query may count by scanning them, when the stored sketches cannot
    /// answer it (default 1,000,000: [`crate::stats::scan::MAX_SCAN_SPANS`]); one matching more
    /// answers 400 `scan_too_large`.
    pub stats_max_scan_spans: usize,
    /// Days spans (and their statistics) are kept (`TRACEX_RETENTION_DAYS`, `--retention-days`;
    /// default 30; 0 keeps everything). See `services::retention`.
    pub retention_days: u32,
    /// Per-project retention in days, over `retention_days` (TOML: `[retention_days_by_project]`,
    /// `acme = 7`; 0 keeps everything).
    pub retention_days_by_project: std::collections::HashMap<String, u32>,
    /// Seconds between retention passes, which also keep the time partitions (default 60:
    /// [`crate::services::retention::RETENTION_INTERVAL`]; at least 1). A pass deletes in bounded
    /// chunks whatever its interval, so a shorter one only makes expiry more punctual.
    pub retention_interval_seconds: u64,
    /// How often the audit log's checkpoint is signed while leaves arrive (default 5,000 ms; at
    /// most 10,000, what the log promises: a longer one is refused at start). Receipts promise
    /// inclusion in the next checkpoint.
    pub audit_checkpoint_interval_ms: u64,
    /// Whether stored batches are appended to the audit log (default true; `docs/audit.md`). Off:
    /// no leaves, receipts or checkpoints (batches stored meanwhile are outside the trail, and
    /// `audit verify` reports their rows as naming no leaf).
    pub audit_log: bool,
    /// Forwarding of stored spans to an OTLP/HTTP receiver (TOML `[export]`; `--export-otlp URL`,
    /// `TRACEX_EXPORT_OTLP`). Default: off. See `crate::export`.
    pub export: crate::export::ExportConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3002)),
            otlp_grpc_listen: None,
            data_dir: PathBuf::from("./tracex-data"),
            database_url: None,
            database_read_url: None,
            max_body_bytes: 8 * 1024 * 1024,
            max_plaintext_bytes: 64 * 1024 * 1024,
            max_decoded_bytes: 256 * 1024 * 1024,
            max_items_per_batch: 2_000_000,
            decode_concurrency: 0,
            max_inflight_decoded_bytes: 1024 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            max_connections: 1024,
            shutdown_grace_ms: 10_000,
            max_spans_per_trace: crate::store::MAX_SPANS_PER_TRACE,
            rate_limit_per_key_per_second: 1000.0,
            rate_limit_burst_per_key: 2000.0,
            commit_max_batches: 200,
            commit_max_wait_ms: 5,
            writer_queue: 2048,
            data_key_cache: 4096,
            log_format: LogFormat::Text,
            cors_allowed_origins: Vec::new(),
            live_max_streams_per_key: 16,
            live_max_streams: 256,
            live_buffer_bytes: 1024 * 1024,
            live_max_spans_per_second: 2_000,
            stats_max_scan_spans: crate::stats::scan::MAX_SCAN_SPANS,
            retention_days: crate::services::retention::DEFAULT_RETENTION_DAYS,
            retention_days_by_project: std::collections::HashMap::new(),
            retention_interval_seconds: crate::services::retention::RETENTION_INTERVAL.as_secs(),
            audit_checkpoint_interval_ms: DEFAULT_AUDIT_CHECKPOINT_INTERVAL_MS,
            audit_log: true,
            export: crate::export::ExportConfig::default(),
        }
    }
}

impl Config {
    /// How often retention runs; an error for 0.
    pub fn retention_interval(&self) -> Result<std::time::Duration, String> {
        match self.retention_interval_seconds {
            0 => Err("retention_interval_seconds must be at least 1".into()),
            s => Ok(std::time::Duration::from_secs(s)),
        }
    }

    /// Reads a TOML file over the defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How long each project's spans are kept.
    pub fn retention(&self) -> crate::services::retention::RetentionPolicy {
        crate::services::retention::RetentionPolicy {
            default_days: self.retention_days,
            by_project: self.retention_days_by_project.clone(),
        }
    }

    /// Limits enforced while decoding a batch.
    pub fn decode_limits(&self) -> tracex_core::decode::DecodeLimits {
        tracex_core::decode::DecodeLimits {
            max_spans: crate::services::validate::MAX_SPANS_PER_BATCH,
            max_items: self.max_items_per_batch,
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }

    /// The live tail's limits.
    pub fn live_limits(&self) -> crate::live::LiveLimits {
        crate::live::LiveLimits {
            per_key: self.live_max_streams_per_key,
            total: self.live_max_streams,
            buffer_bytes: self.live_buffer_bytes,
            spans_per_second: self.live_max_spans_per_second,
        }
    }

    /// The accept loop's limits.
    pub fn server_limits(&self) -> crate::server::ServerLimits {
        crate::server::ServerLimits {
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms.max(1)),
            max_connections: self.max_connections.max(1),
            shutdown_grace: std::time::Duration::from_millis(self.shutdown_grace_ms),
        }
    }

    /// Batches decoded at once: the setting, or one per core.
    pub fn decode_slots(&self) -> usize {
        match self.decode_concurrency {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n,
        }
    }

    /// Where the keys live.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// The database to use: an explicit URL, else the embedded SQLite file in the data dir.
    pub fn database(&self) -> Result<Database, String> {
        match self.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Database::Sqlite(self.data_dir.join("tracex.db"))),
            Some(url) => {
                if let Some(path) = url.strip_prefix("sqlite://") {
                    Ok(Database::Sqlite(PathBuf::from(path)))
                } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Ok(Database::Postgres(url.to_owned()))
                } else {
                    Err(format!("unsupported database URL {url:?}: use sqlite:///path or postgres://…"))
                }
            }
        }
    }
}

impl Config {
    /// How often checkpoints are signed; an error past what the log promises.
    pub fn audit_checkpoint_interval(&self) -> Result<std::time::Duration, String> {
        match self.audit_checkpoint_interval_ms {
            0 => Err("audit_checkpoint_interval_ms must be at least 1".into()),
            ms if ms > MAX_AUDIT_CHECKPOINT_INTERVAL_MS => Err(format!(
                "audit_checkpoint_interval_ms = {ms}: the audit log promises a checkpoint within \
                 {MAX_AUDIT_CHECKPOINT_INTERVAL_MS} ms of a batch"
            )),
            ms => Ok(std::time::Duration::from_millis(ms)),
        }
    }

    /// The read replica's URL, if one is set; an error unless both it and the database are
    /// PostgreSQL.
    pub fn database_read_url(&self) -> Result<Option<&str>, String> {
        let Some(url) = self.database_read_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!("unsupported read replica URL {url:?}: use postgres://…"));
        }
        match self.database()? {
            Database::Postgres(_) => Ok(Some(url)),
            Database::Sqlite(_) => Err("a read replica (database_read_url) needs a PostgreSQL database_url".into()),
        }
    }
}

/// Which store to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// Embedded SQLite file.
    Sqlite(PathBuf),
    /// PostgreSQL connection URL.
    Postgres(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("listen = \"0.0.0.0:9000\"\nlog_format = \"json\"").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.commit_max_batches, 200);
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let c: Config = toml::from_str("cors_allowed_origins = [\"https://app.example.com\"]").unwrap();
        assert_eq!(c.cors_allowed_origins, ["https://app.example.com"]);
        assert!(Config::default().cors_allowed_origins.is_empty());
        assert_eq!(Config::default().otlp_grpc_listen, None, "no second port unless asked for");
        let c: Config = toml::from_str("otlp_grpc_listen = \"127.0.0.1:4317\"").unwrap();
        assert_eq!(c.otlp_grpc_listen, Some(SocketAddr::from(([127, 0, 0, 1], 4317))));
    }

    #[test]
    fn database_urls() {
        let mut c = Config::default();
        assert_eq!(c.database().unwrap(), Database::Sqlite(PathBuf::from("./tracex-data/tracex.db")));
        c.database_url = Some("sqlite:///tmp/x.db".into());
        assert_eq!(c.database().unwrap(), Database::Sqlite(PathBuf::from("/tmp/x.db")));
        c.database_url = Some("postgres://u@h/db".into());
        assert!(matches!(c.database().unwrap(), Database::Postgres(_)));
        c.database_url = Some("mysql://x".into());
        assert!(c.database().is_err());
        c.database_url = None;
        c.database_read_url = Some("postgres://u@replica/db".into());
        assert!(c.database_read_url().unwrap_err().contains("needs a PostgreSQL"));
        c.database_url = Some("postgres://u@h/db".into());
        assert_eq!(c.database_read_url().unwrap(), Some("postgres://u@replica/db"));
        c.database_read_url = Some("sqlite:///x".into());
        assert!(c.database_read_url().is_err());
    }

    #[test]
    fn checkpoints_are_signed_within_what_the_log_promises() {
        let interval = |toml: &str| toml::from_str::<Config>(toml).unwrap().audit_checkpoint_interval();
        assert_eq!(Config::default().audit_checkpoint_interval().unwrap().as_millis(), 5_000);
        assert_eq!(interval("audit_checkpoint_interval_ms = 10000").unwrap().as_millis(), 10_000);
        assert_eq!(interval("audit_checkpoint_interval_ms = 1").unwrap().as_millis(), 1);
        assert!(interval("audit_checkpoint_interval_ms = 10001").unwrap_err().contains("within 10000 ms"));
        assert!(interval("audit_checkpoint_interval_ms = 0").unwrap_err().contains("at least 1"));
        let retention = |toml: &str| toml::from_str::<Config>(toml).unwrap().retention_interval();
        assert_eq!(retention("").unwrap().as_secs(), 60);
        assert_eq!(retention("retention_interval_seconds = 5").unwrap().as_secs(), 5);
        assert!(retention("retention_interval_seconds = 0").unwrap_err().contains("at least 1"));
    }
}
