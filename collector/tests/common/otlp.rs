//! OTLP helpers shared by tests/otlp_http.rs and tests/otlp_grpc.rs: a request of known spans, the
//! stored trace as the query API serves it, and probes of what the store holds at rest (SQLite
//! files or every text column of a PostgreSQL database of its own).

use std::path::Path;

use tracex_core::{
    Event, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind, Status,
    TraceId, TraceRequest,
};

use super::get_json;

/// A secret the redaction rules mask (an EVM private key), placed in an attribute.
pub const SECRET: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

pub fn now() -> u64 {
    tracex_collector::now_unix_nano()
}

pub fn protobuf(spans: Vec<SpanData>) -> Vec<u8> {
    let req = TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new("otlp-svc").with("deployment.environment", "test"),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope { name: "otlp-test".into(), version: "1.0".into(), ..Default::default() },
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut out = Vec::new();
    tracex_core::encode::encode_request(&req, &mut out);
    out
}

/// `spans` as OTLP/HTTP protobuf to `base`, which must answer 200.
pub fn post_protobuf(base: &str, key: &str, spans: Vec<SpanData>) {
    let r = super::client()
        .post(format!("{base}/v1/traces"))
        .bearer_auth(key)
        .header("content-type", "application/x-protobuf")
        .body(protobuf(spans))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
}

pub fn span(trace: u8, span: u8, name: &'static str) -> SpanData {
    let start = now() - 1_000_000_000;
    SpanData {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([span; 8]),
        name: name.into(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 250_000_000,
        attributes: vec![KeyValue::new("x402.network", "base"), KeyValue::new("attempt", 2i64)],
        events: vec![Event {
            time_unix_nano: start + 1000,
            name: "retry".into(),
            attributes: vec![KeyValue::new("delay_ms", 50i64)],
            ..Default::default()
        }],
        status: Status::error("nonce too low"),
        ..Default::default()
    }
}

pub fn trace_spans(base: &str, read: &str, trace_hex: &str) -> Vec<serde_json::Value> {
    let (status, body) = get_json(&format!("{base}/api/v1/traces/{trace_hex}"), read);
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{body}");
    body["spans"].as_array().unwrap().clone()
}

pub fn attr<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map_or(&serde_json::Value::Null, |a| &a["value"])
}

/// What the store holds, looked at directly: span rows, and whether `needle` appears in any byte
/// the store keeps.
pub trait AtRest {
    fn spans(&self) -> i64;
    fn contains(&self, needle: &str) -> bool;
}

pub struct SqliteFiles(pub std::path::PathBuf);

impl AtRest for SqliteFiles {
    fn spans(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.0.join("tracex.db")).unwrap();
        conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0)).unwrap()
    }

    fn contains(&self, needle: &str) -> bool {
        std::fs::read_dir(&self.0).unwrap().any(|e| {
            let path = e.unwrap().path();
            path.file_name().unwrap().to_string_lossy().starts_with("tracex.db")
                && std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    }
}

pub fn admin_url() -> String {
    std::env::var("TRACEX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| panic!("TRACEX_TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh"))
}

pub fn with_client<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(connection);
        let out = f(&client).await;
        drop(client);
        let _ = conn.await;
        out
    })
}

/// A database of its own, dropped at the end.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn new() -> Self {
        Self::named("otlp")
    }

    /// A database of this process named after `tag` (tests running at once need their own).
    pub fn named(tag: &str) -> Self {
        let name = format!("tracex_{tag}_{}", std::process::id());
        with_client(&admin_url(), async |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        });
        let admin = admin_url();
        let (base, _) = admin.rsplit_once('/').unwrap();
        Self { url: format!("{base}/{name}"), name }
    }
}

impl AtRest for PgDb {
    fn spans(&self) -> i64 {
        with_client(&self.url, async |c| c.query_one("SELECT count(*) FROM spans", &[]).await.unwrap().get(0))
    }

    fn contains(&self, needle: &str) -> bool {
        // Every text and bytea column of every table the collector writes.
        with_client(&self.url, async |c| {
            let cols = c
                .query(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' \
                     AND data_type IN ('text', 'bytea')",
                    &[],
                )
                .await
                .unwrap();
            for col in cols {
                let (t, k): (String, String) = (col.get(0), col.get(1));
                let sql = format!("SELECT count(*) FROM {t} WHERE position(convert_to($1, 'UTF8') in {k}::bytea) > 0");
                let n: i64 = c.query_one(&sql, &[&needle]).await.unwrap().get(0);
                if n > 0 {
                    return true;
                }
            }
            false
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::panic::catch_unwind(|| with_client(&admin_url(), async |c| c.batch_execute(&sql).await.unwrap()));
    }
}

pub fn pg_key(dir: &Path, db: &PgDb, scope: &str) -> String {
    let (ok, out, err) =
        super::cli(dir, &["--database-url", &db.url, "apikey", "create", "--project", "acme", "--scope", scope]);
    assert!(ok, "{err}");
    out.trim().to_owned()
}
