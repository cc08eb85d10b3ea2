//! End to end on PostgreSQL: the real collector binary with `--database-url postgres://…`, the Rust
//! SDK over real HTTP. Needs a server: `scripts/with-postgres.sh cargo test -p tracex-collector
//! --test e2e_postgres -- --ignored` (the test creates and drops a database of its own).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Collector, all_traces, cli, get_json, metric, post_batch, public_key_pem, temp_dir};
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, SpanId, SpanKind, Status, TraceId, Tracer};

const TRACES: i64 = 60;
const SPANS_PER_TRACE: i64 = 50;
const NETWORKS: [&str; 3] = ["base", "base-sepolia", "solana"];

fn admin_url() -> String {
    std::env::var("TRACEX_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TRACEX_TEST_POSTGRES_URL is not set: run the PostgreSQL tests under scripts/with-postgres.sh \
             (it starts a throwaway server and sets it)"
        )
    })
}

/// Runs `f` with a one-off connection to `url`.
fn with_client<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
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

/// A fresh database, dropped at the end.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> Self {
        let admin = admin_url();
        let name = format!("tracex_e2e_{}", std::process::id());
        with_client(&admin, async |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        });
        let (base, _) = admin.rsplit_once('/').unwrap();
        Self { url: format!("{base}/{name}"), name }
    }

    fn count(&self, table: &str) -> i64 {
        with_client(&self.url, async |c| {
            c.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get::<_, i64>(0)
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::panic::catch_unwind(|| with_client(&admin_url(), async |c| c.batch_execute(&sql).await.unwrap()));
    }
}

fn create_key(dir: &std::path::Path, db: &TestDb, project: &str, scope: &str) -> String {
    let (ok, out, err) =
        cli(dir, &["--database-url", &db.url, "apikey", "create", "--project", project, "--scope", scope]);
    assert!(ok, "{err}");
    out.trim().to_owned()
}

fn record_trace(tracer: &Tracer, t: i64) {
    let mut root = tracer.span_builder("POST /settle").kind(SpanKind::Server).start();
    root.set_attribute("t", t).set_attribute("x402.network", NETWORKS[(t % 3) as usize]);
    let _entered = root.enter();
    for i in 1..SPANS_PER_TRACE {
        let mut span = tracer.span_builder("rpc").kind(SpanKind::Client).start();
        span.set_attribute("t", t)
            .set_attribute("i", i)
            .set_attribute("x402.network", NETWORKS[(t % 3) as usize])
            .set_attribute("x402.amount", format!("{}", 1_000 + t * 7 + i))
            .set_attribute("ok", i % 2 == 0);
        if i % 10 == 5 {
            span.set_status(Status::error("nonce too low"));
        }
    }
}

/// A batch sealed by hand (to replay and tamper with it).
fn seal(key: &CollectorKey, spans: &[SpanData]) -> Vec<u8> {
    let mut sealer = Sealer::new(key.clone(), SealerConfig::default()).unwrap();
    let resource = Resource::new("by-hand");
    let scope = InstrumentationScope::default();
    sealer
        .seal_with(1_763_900_000_000_000_000, |out| tracex_core::encode::encode_spans(&resource, &scope, spans, out))
        .unwrap()
        .bytes
}

#[test]
#[ignore = "needs PostgreSQL: run under scripts/with-postgres.sh"]
fn postgres_end_to_end() {
    let db = TestDb::new();
    let dir = temp_dir("e2e-postgres");
    let ingest = create_key(&dir, &db, "acme", "ingest");
    let read = create_key(&dir, &db, "acme", "read");
    let pem = public_key_pem(&dir);
    assert!(!dir.join("tracex.db").exists(), "the embedded store is not used");
    let collector = Collector::start_with(&dir, &["--database-url", &db.url]);
    let url = collector.url.clone();

    // The SDK sends a few thousand spans.
    let tracer = Tracer::builder()
        .with_service_name("settler")
        .with_endpoint(&url)
        .with_api_key(&ingest)
        .with_collector_public_key_pem(&pem)
        .build()
        .unwrap();
    for t in 0..TRACES {
        record_trace(&tracer, t);
    }
    let report = tracer.shutdown(Duration::from_secs(120)).unwrap();
    assert!(report.is_complete(), "{report:?}");
    let total = (TRACES * SPANS_PER_TRACE) as u64;
    let stats = tracer.stats();
    assert_eq!(stats.spans_sent, total, "{stats:?}");
    assert_eq!(stats.spans_dropped, 0);
    assert_eq!(metric(&url, "tracex_spans_ingested_total") as u64, total);
    assert_eq!(db.count("spans") as u64, total, "every span is in PostgreSQL");

    // Listing and filters.
    let traces = all_traces(&url, &read, "");
    assert_eq!(traces.len() as i64, TRACES);
    let ids: HashSet<_> = traces.iter().map(|t| t["trace_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len() as i64, TRACES);
    for t in &traces {
        assert_eq!(t["span_count"], SPANS_PER_TRACE);
        assert_eq!(t["error_count"], 5);
        assert_eq!(t["root_name"], "POST /settle");
        assert_eq!(t["root_service"], "settler");
    }
    // Two pages of 25 walk the same traces.
    let (status, page) = get_json(&format!("{url}/api/v1/traces?limit=25"), &read);
    assert_eq!(status, 200);
    assert_eq!(page["traces"].as_array().unwrap().len(), 25);
    assert!(page["next_cursor"].is_string());
    let errors = all_traces(&url, &read, "&status=error&name=rpc");
    assert_eq!(errors.len() as i64, TRACES);
    let solana = all_traces(&url, &read, "&attr.x402.network=solana");
    assert_eq!(solana.len() as i64, (0..TRACES).filter(|t| t % 3 == 2).count() as i64);
    let one = all_traces(&url, &read, "&attr.x402.amount=1009&attr.i=2");
    assert_eq!(one.len(), 1, "t=1, i=2");
    assert_eq!(all_traces(&url, &read, "&attr.ok=true&service=settler").len() as i64, TRACES);
    assert!(all_traces(&url, &read, "&service=nobody").is_empty());
    let (status, detail) = get_json(&format!("{url}/api/v1/traces/{}", traces[0]["trace_id"].as_str().unwrap()), &read);
    assert_eq!(status, 200);
    let rows = detail["spans"].as_array().unwrap();
    assert_eq!(rows.len() as i64, SPANS_PER_TRACE, "every span once");
    assert_eq!(rows.iter().filter(|r| r["depth"] == 0).count(), 1, "one root, the rest beneath it");

    // Statistics, from the sketches PostgreSQL stored in the spans' transactions.
    let (status, body) = get_json(&format!("{url}/api/v1/stats?sla_ms=60000"), &read);
    assert_eq!(status, 200, "{body}");
    let groups = body["groups"].as_array().unwrap();
    let summary: Vec<(&str, i64, i64, f64)> = groups
        .iter()
        .map(|g| {
            let t = &g["total"];
            (
                g["name"].as_str().unwrap(),
                t["count"].as_i64().unwrap(),
                t["errors"].as_i64().unwrap(),
                t["sla_compliance"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("POST /settle", TRACES, 0, 1.0), ("rpc", TRACES * (SPANS_PER_TRACE - 1), TRACES * 5, 1.0)],
        "counts and errors exact; every span is under a minute"
    );
    let (status, body) = get_json(&format!("{url}/api/v1/stats?name=rpc&group_by=x402.network&step=3600"), &read);
    assert_eq!(status, 200, "{body}");
    let by_network: Vec<(&str, i64)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["group"].as_str().unwrap(), g["total"]["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_network, {
        let n = TRACES / 3 * (SPANS_PER_TRACE - 1);
        [("base", n), ("base-sepolia", n), ("solana", n)]
    });
    let (status, body) = get_json(&format!("{url}/api/v1/services"), &read);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["services"][0]["name"], "settler");
    assert_eq!(body["services"][0]["operations"].as_array().unwrap().len(), 2);
    let (status, body) = get_json(&format!("{url}/api/v1/attributes/x402.network/values"), &read);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"].as_array().unwrap().len(), 3);

    // A replayed batch is a duplicate; a tampered one is rejected; neither stores anything.
    let key = CollectorKey::from_pem(&pem).unwrap();
    let by_hand = SpanData {
        trace_id: TraceId([0xab; 16]),
        span_id: SpanId([0xcd; 8]),
        name: "by-hand".into(),
        start_time_unix_nano: 1_763_900_000_000_000_000,
        end_time_unix_nano: 1_763_900_000_100_000_000,
        attributes: vec![KeyValue::new("x402.network", "base")],
        ..Default::default()
    };
    let good = seal(&key, &[by_hand]);
    let first = post_batch(&url, &ingest, good.clone());
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["status"], "stored");
    let replay = post_batch(&url, &ingest, good.clone());
    assert_eq!(replay.0, 200, "{}", replay.1);
    assert_eq!(replay.1["status"], "duplicate");
    let (batches, spans) = (db.count("batches"), db.count("spans"));
    assert_eq!(spans as u64, total + 1);
    let mut tampered = seal(&key, &[SpanData { trace_id: TraceId([0xef; 16]), ..Default::default() }]);
    let last = tampered.len() - 20;
    tampered[last] ^= 1;
    let rejected = post_batch(&url, &ingest, tampered);
    assert_eq!(rejected.0, 400, "{}", rejected.1);
    assert_eq!(rejected.1["error"]["code"], "decrypt_failed");
    assert_eq!((db.count("batches"), db.count("spans")), (batches, spans), "nothing more was stored");
    assert_eq!(all_traces(&url, &read, "").len() as i64, TRACES + 1);
    assert_eq!(metric(&url, "tracex_batches_duplicate_total"), 1.0);

    // The data outlives the collector.
    assert!(collector.terminate().success(), "SIGTERM exits 0");
    let again = Collector::start_with(&dir, &["--database-url", &db.url]);
    assert_eq!(all_traces(&again.url, &read, "").len() as i64, TRACES + 1);
    assert_eq!(post_batch(&again.url, &ingest, good).1["status"], "duplicate");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
