//! A fleet: two real collector processes on one PostgreSQL database, sharing keys through an
//! encrypted bundle (`keys export` / `keys import`, never a copied key file). 100,000 spans in
//! sealed batches spread over both, a fifth of the batches retried against the other collector,
//! one collector killed (SIGKILL) mid-stream with its batches retried against the survivor: every
//! acknowledged span is stored, exactly once, and the query API of the survivor and of the killed
//! collector restarted lists, finds and counts it once. Then a key rotation travels the fleet the
//! same way.
//! Needs a server: `scripts/with-postgres.sh cargo test -p tracex-collector --test fleet_postgres
//! -- --ignored` (the test creates and drops a database of its own).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::otlp::{PgDb, pg_key, with_client};
use common::{BIN, Collector, all_traces, get_json, post_batch, public_key_pem, temp_dir};
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, Resource, SpanData, SpanId, TraceId};

const PASSPHRASE: &str = "fleet passphrase for the test run";
const BATCHES: usize = 200;
const SPANS_PER_BATCH: usize = 500;

fn keys(dir: &Path, db: &PgDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["--data-dir", dir.to_str().unwrap(), "--database-url", &db.url, "keys"])
        .args(args)
        .env("TRACEX_KEYS_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `from`'s keys into `to`, through a bundle file.
fn share_keys(from: &Path, to: &Path, db: &PgDb) {
    let bundle = from.join("fleet.bundle");
    let (ok, _, err) = keys(from, db, &["export", "--out", bundle.to_str().unwrap()]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(text.starts_with("-----BEGIN TRACEX KEY BUNDLE-----") && !text.contains("PRIVATE"), "{text}");
    let (ok, out, err) = keys(to, db, &["import", bundle.to_str().unwrap(), "--replace-audit-key"]);
    assert!(ok, "{err}");
    assert!(out.contains("keys added:"), "{out}");
}

/// The service of batch `i`'s spans: odd batches go to B first, and the queries must tell the two
/// halves apart.
fn service(i: usize) -> &'static str {
    if i % 2 == 1 { "fleet-b" } else { "fleet-a" }
}

/// Trace `k` of batch `i`, as the query API spells it.
fn trace_hex(i: usize, k: usize) -> String {
    format!("{:016x}{:016x}", i as u64 + 1, k as u64)
}

fn batch(key: &CollectorKey, i: usize) -> Vec<u8> {
    let spans: Vec<SpanData> = (0..SPANS_PER_BATCH)
        .map(|j| {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            trace[8..].copy_from_slice(&((j / 10) as u64).to_be_bytes());
            SpanData {
                trace_id: TraceId(trace),
                span_id: SpanId(((j + 1) as u64).to_be_bytes()),
                name: "settle".into(),
                start_time_unix_nano: tracex_collector::now_unix_nano() - 1_000_000,
                end_time_unix_nano: tracex_collector::now_unix_nano(),
                ..Default::default()
            }
        })
        .collect();
    let mut sealer = Sealer::new(key.clone(), SealerConfig::default()).unwrap();
    let (resource, scope) = (Resource::new(service(i)), InstrumentationScope::default());
    sealer
        .seal_with(tracex_collector::now_unix_nano(), |out| {
            tracex_core::encode::encode_spans(&resource, &scope, &spans, out);
        })
        .unwrap()
        .bytes
}

/// Posts `body` to `url`; `None` when the collector is gone (connection refused or reset).
fn try_post(url: &str, key: &str, body: &[u8]) -> Option<u16> {
    let r = common::client()
        .post(format!("{url}/v1/batches"))
        .bearer_auth(key)
        .header("content-type", "application/vnd.tracex.batch.v1")
        .body(body.to_vec())
        .send()
        .ok()?;
    Some(r.status().as_u16())
}

fn stored_spans(db: &PgDb) -> i64 {
    with_client(&db.url, async |c| c.query_one("SELECT count(*) FROM spans", &[]).await.unwrap().get(0))
}

/// What the query API at `url` must answer about the `BATCHES` batches, whichever collector stored
/// them: every trace listed once with its 10 spans, a search by service finds exactly the odd half,
/// the detail of traces that `via_b` (batches B acknowledged before it was killed) stored, and
/// statistics that count every span once.
fn check_queries(url: &str, read: &str, via_b: &[usize]) {
    let traces_per_batch = SPANS_PER_BATCH / 10;
    let expected: HashMap<String, &str> =
        (0..BATCHES).flat_map(|i| (0..traces_per_batch).map(move |k| (trace_hex(i, k), service(i)))).collect();
    let listed = all_traces(url, read, "");
    assert_eq!(listed.len(), BATCHES * traces_per_batch, "{url}: each trace listed once");
    let got: HashMap<String, &str> = listed
        .iter()
        .map(|t| {
            assert_eq!(t["span_count"], 10, "{url}: {t}");
            (t["trace_id"].as_str().unwrap().to_owned(), t["root_service"].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, expected, "{url}: the listed traces");

    let found: HashSet<String> =
        all_traces(url, read, "&service=fleet-b").iter().map(|t| t["trace_id"].as_str().unwrap().to_owned()).collect();
    let odd: HashSet<String> = expected.iter().filter(|(_, s)| **s == "fleet-b").map(|(t, _)| t.clone()).collect();
    assert_eq!(found, odd, "{url}: a search finds exactly the odd batches' traces");

    assert!(!via_b.is_empty(), "B acknowledged batches before it was killed");
    for &i in via_b {
        let k = i % traces_per_batch;
        let (status, detail) = get_json(&format!("{url}/api/v1/traces/{}", trace_hex(i, k)), read);
        assert_eq!(status, 200, "{url}: batch {i} {detail}");
        assert_eq!(detail["span_count"], 10, "{url}: batch {i}");
        let spans = detail["spans"].as_array().unwrap();
        let ids: HashSet<String> = spans
            .iter()
            .map(|s| {
                let row = (s["service_name"].as_str(), s["name"].as_str(), s["depth"].as_i64());
                assert_eq!(row, (Some("fleet-b"), Some("settle"), Some(0)), "{url}: batch {i}");
                s["span_id"].as_str().unwrap().to_owned()
            })
            .collect();
        let want: HashSet<String> = (10 * k + 1..=10 * k + 10).map(|j| format!("{j:016x}")).collect();
        assert_eq!((spans.len(), ids), (10, want), "{url}: batch {i}'s trace {k}, every span once");
    }

    // The default range is the last hour: every span of the run started in it.
    let (status, body) = get_json(&format!("{url}/api/v1/stats"), read);
    assert_eq!(status, 200, "{body}");
    let groups: Vec<(&str, &str, i64, i64, i64)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let in_buckets = g["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum();
            let t = &g["total"];
            (
                g["service"].as_str().unwrap(),
                g["name"].as_str().unwrap(),
                t["count"].as_i64().unwrap(),
                t["errors"].as_i64().unwrap(),
                in_buckets,
            )
        })
        .collect();
    let half = (BATCHES / 2 * SPANS_PER_BATCH) as i64;
    assert_eq!(
        groups,
        [("fleet-a", "settle", half, 0, half), ("fleet-b", "settle", half, 0, half)],
        "{url}: statistics count every stored span once, retries and the kill included"
    );
}

#[test]
#[ignore = "needs PostgreSQL (scripts/with-postgres.sh)"]
fn postgres_fleet_stores_every_acknowledged_span_once() {
    let db = PgDb::new();
    let (dir_a, dir_b) = (temp_dir("fleet-a"), temp_dir("fleet-b"));
    let (ingest, read) = (pg_key(&dir_a, &db, "ingest"), pg_key(&dir_a, &db, "read"));
    let (ok, _, err) = keys(&dir_a, &db, &["export"]);
    assert!(!ok && err.contains("no keys yet"), "{err}");
    // B has keys of its own until it takes the fleet's.
    for dir in [&dir_a, &dir_b] {
        let (ok, _, err) = keys(dir, &db, &["show"]);
        assert!(ok, "{err}");
    }
    share_keys(&dir_a, &dir_b, &db);
    let a = Collector::start_with(&dir_a, &["--database-url", &db.url]);
    let b = Collector::start_with(&dir_b, &["--database-url", &db.url]);
    let pem = public_key_pem(&dir_a);
    assert_eq!(pem, public_key_pem(&dir_b), "one fleet key");
    let key = CollectorKey::from_pem(&pem).unwrap();
    let bodies: Vec<Vec<u8>> = (0..BATCHES).map(|i| batch(&key, i)).collect();

    // Four senders; odd batches go to B, even to A, every fifth is sent again to the other one.
    // Halfway through B is killed; its batches then go to A, as an SDK's retry would.
    let b_alive = Arc::new(AtomicBool::new(true));
    let b = Arc::new(Mutex::new(Some(b)));
    let (a_url, b_url) = (a.url.clone(), b.lock().unwrap().as_ref().unwrap().url.clone());
    let bodies = Arc::new(bodies);
    let via_b = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (bodies, a_url, b_url, ingest, b_alive, b, via_b) = (
                bodies.clone(),
                a_url.clone(),
                b_url.clone(),
                ingest.clone(),
                b_alive.clone(),
                b.clone(),
                via_b.clone(),
            );
            std::thread::spawn(move || {
                let mut acked = 0;
                for i in (t..BATCHES).step_by(4) {
                    if i == BATCHES / 2 {
                        // SIGKILL: no drain, no final checkpoint.
                        if let Some(mut c) = b.lock().unwrap().take() {
                            c.child.kill().unwrap();
                            c.child.wait().unwrap();
                            b_alive.store(false, Ordering::SeqCst);
                        }
                    }
                    let first = if i % 2 == 1 { &b_url } else { &a_url };
                    let answer = try_post(first, &ingest, &bodies[i]);
                    if first == &b_url && answer == Some(200) {
                        via_b.lock().unwrap().push(i);
                    }
                    let status = answer.or_else(|| try_post(&a_url, &ingest, &bodies[i]));
                    assert_eq!(status, Some(200), "batch {i}");
                    acked += 1;
                    if i % 5 == 0 {
                        let other = if first == &a_url { &b_url } else { &a_url };
                        // A retry answers 200 (stored once); a dead collector does not answer.
                        if let Some(s) = try_post(other, &ingest, &bodies[i]) {
                            assert_eq!(s, 200, "retry of batch {i}");
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let acked: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(acked, BATCHES);
    assert!(!b_alive.load(Ordering::SeqCst), "B was killed mid-stream");
    assert_eq!(stored_spans(&db), (BATCHES * SPANS_PER_BATCH) as i64, "every acknowledged span, exactly once");

    // Queries and statistics live in the database, not in the collector that stored the spans: the
    // survivor and the killed collector restarted answer the same, B's batches included.
    let via_b = via_b.lock().unwrap().clone();
    check_queries(&a.url, &read, &via_b);
    let restarted = Collector::start_with(&dir_b, &["--database-url", &db.url]);
    check_queries(&restarted.url, &read, &via_b);
    assert!(restarted.terminate().success());

    // Rotation across the fleet: A rotates, the bundle carries the new key to B, B restarts (a
    // running collector would reload the ring by itself on the first unknown key id).
    let (ok, _, err) = keys(&dir_a, &db, &["rotate"]);
    assert!(ok, "{err}");
    share_keys(&dir_a, &dir_b, &db);
    let b = Collector::start_with(&dir_b, &["--database-url", &db.url]);
    let rotated = CollectorKey::from_pem(&public_key_pem(&dir_b)).unwrap();
    assert_ne!(rotated.key_id(), key.key_id(), "B seals to the rotated key now");
    let (status, body) = post_batch(&b.url, &ingest, batch(&rotated, BATCHES));
    assert_eq!(status, 200, "{body}");
    // A batch sealed to the old key before the rotation (an SDK's spool) still opens, on A and B.
    let (status, body) = post_batch(&b.url, &ingest, batch(&key, BATCHES + 1));
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_batch(&a.url, &ingest, batch(&rotated, BATCHES + 2));
    assert_eq!(status, 200, "A reloads its ring on the new key id: {body}");
    assert_eq!(stored_spans(&db), ((BATCHES + 3) * SPANS_PER_BATCH) as i64);

    // A wrong passphrase takes nothing in.
    let bundle = dir_a.join("fleet.bundle");
    let out = Command::new(BIN)
        .args(["--data-dir", temp_dir("fleet-c").to_str().unwrap(), "keys", "import", bundle.to_str().unwrap()])
        .env("TRACEX_KEYS_PASSPHRASE", "not the fleet passphrase at all")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not open with this passphrase"));
}

/// The URL of database `name` on the read replica `with-postgres.sh` starts with
/// `WITH_POSTGRES_REPLICA=1`.
fn replica_url(name: &str) -> String {
    let admin = std::env::var("TRACEX_TEST_POSTGRES_REPLICA_URL").unwrap_or_else(|_| {
        panic!(
            "TRACEX_TEST_POSTGRES_REPLICA_URL is not set: run under WITH_POSTGRES_REPLICA=1 scripts/with-postgres.sh"
        )
    });
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Traces the collector at `url` lists (the query API, read from wherever its readers connect).
fn listed_traces(url: &str, read: &str) -> usize {
    let (status, page) = get_json(&format!("{url}/api/v1/traces?limit=1000"), read);
    assert_eq!(status, 200, "{page}");
    page["traces"].as_array().unwrap().len()
}

/// A collector whose reads go to a streaming read replica: queries are answered from the replica
/// (with replay paused there they stand still while ingest commits on the primary and is
/// acknowledged), and catch up when it replays.
#[test]
#[ignore = "needs PostgreSQL with a replica (WITH_POSTGRES_REPLICA=1 scripts/with-postgres.sh)"]
fn postgres_queries_read_from_a_replica() {
    let db = PgDb::named("replica");
    let replica = replica_url(&db.name);
    let dir = temp_dir("replica");
    let (ingest, read) = (pg_key(&dir, &db, "ingest"), pg_key(&dir, &db, "read"));
    // The database and the keys reach the replica by replay.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ready = rt.block_on(async {
            let Ok((c, conn)) = tokio_postgres::connect(&replica, tokio_postgres::NoTls).await else { return false };
            let conn = tokio::spawn(conn);
            let keys = c.query_one("SELECT count(*) FROM api_keys", &[]).await.map_or(0, |r| r.get::<_, i64>(0));
            drop(c);
            let _ = conn.await;
            keys == 2
        });
        if ready {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let c = Collector::start_with(&dir, &["--database-url", &db.url, "--database-read-url", &replica]);
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let (status, body) = post_batch(&c.url, &ingest, batch(&key, 0));
    assert_eq!(status, 200, "{body}");
    let traces_per_batch = SPANS_PER_BATCH / 10;
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while listed_traces(&c.url, &read) != n {
            assert!(std::time::Instant::now() < deadline, "never listed {n} traces");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for(traces_per_batch);

    // The readers are the replica's connections.
    let on_replica: i64 = with_client(&replica, async |c| {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'tracex-collector'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert!(on_replica >= 1, "{on_replica} collector connections on the replica");

    // Replay paused: ingest goes on (acknowledged after the primary's commit), queries stand still.
    with_client(&replica, async |c| c.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap());
    let (status, body) = post_batch(&c.url, &ingest, batch(&key, 1));
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored_spans(&db), 2 * SPANS_PER_BATCH as i64, "the primary holds both batches");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(listed_traces(&c.url, &read), traces_per_batch, "answered from the paused replica");
    with_client(&replica, async |c| c.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap());
    wait_for(2 * traces_per_batch);
    assert!(c.terminate().success());
}
