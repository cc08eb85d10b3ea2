//! A fleet: two real collector processes on one PostgreSQL database, sharing keys through an
//! encrypted bundle (`keys export` / `keys import`, never a copied key file). 100,000 spans in
//! sealed batches spread over both, a fifth of the batches retried against the other collector,
//! one collector killed (SIGKILL) mid-stream with its batches retried against the survivor: every
//! acknowledged span is stored, exactly once. Then a key rotation travels the fleet the same way.
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

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::otlp::{PgDb, pg_key, with_client};
use common::{BIN, Collector, post_batch, public_key_pem, temp_dir};
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
    let (resource, scope) = (Resource::new("fleet-svc"), InstrumentationScope::default());
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

#[test]
#[ignore = "needs PostgreSQL (scripts/with-postgres.sh)"]
fn postgres_fleet_stores_every_acknowledged_span_once() {
    let db = PgDb::new();
    let (dir_a, dir_b) = (temp_dir("fleet-a"), temp_dir("fleet-b"));
    let ingest = pg_key(&dir_a, &db, "ingest");
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
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (bodies, a_url, b_url, ingest, b_alive, b) =
                (bodies.clone(), a_url.clone(), b_url.clone(), ingest.clone(), b_alive.clone(), b.clone());
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
                    let status = try_post(first, &ingest, &bodies[i]).or_else(|| try_post(&a_url, &ingest, &bodies[i]));
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
