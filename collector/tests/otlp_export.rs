//! OTLP export between real collector processes over real HTTP: into a second tracex collector's
//! OTLP ingest (set up by the `--export-otlp` and `--export-otlp-header` flags; every field as
//! stored, secrets still redacted), and into a protobuf sink in this test (set up by TOML
//! `[export]`) that checks every span and plays the receiver's part — 503 with `Retry-After`
//! (and the wait it asks for), 400, a partial success, 413, going away and coming back — while the
//! exporting collector restarts mid-stream. Nothing is lost: every span is delivered or counted
//! under exactly one outcome of `tracex_export_spans_total`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::otlp::{SECRET, attr, post_protobuf, span, trace_spans};
use common::{Collector, client, create_key, metric, temp_dir};
use tracex_core::{KeyValue, SpanData, SpanId};

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exporter_config(dir: &Path, toml: &str) -> String {
    let path = dir.join("export.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A collector with `serve_args` after `serve`, where the export flags belong
/// (`Collector::start_with` puts its arguments before it).
fn serve_with(dir: &Path, global: &[&str], serve_args: &[&str]) -> Collector {
    let mut child = Command::new(common::BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(global)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url =
        line.trim().strip_prefix("tracex-collector listening on ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    let c = Collector { child, url, grpc: None, data_dir: dir.to_owned() };
    wait_for("the collector to be ready", Duration::from_secs(20), || {
        client().get(format!("{}/readyz", c.url)).send().is_ok_and(|r| r.status().is_success())
    });
    c
}

fn export_metric(base: &str, outcome: &str) -> f64 {
    metric(base, &format!("tracex_export_spans_total{{outcome=\"{outcome}\"}}"))
}

#[test]
fn a_second_tracex_collector_receives_every_span_as_stored() {
    let (up_dir, down_dir) = (temp_dir("export-up"), temp_dir("export-down"));
    let down_ingest = create_key(&down_dir, "downstream", "ingest");
    let down_read = create_key(&down_dir, "downstream", "read");
    let down = Collector::start(&down_dir);
    // The receiver and its credentials by the flags, as an operator starting one collector by
    // hand would; only the project opt-in, which has no flag, is in TOML (the other tests set
    // everything there).
    let config = exporter_config(&up_dir, "[export]\nprojects = [\"payments\"]\n");
    let up_ingest = create_key(&up_dir, "payments", "ingest");
    let up_read = create_key(&up_dir, "payments", "read");
    let other_ingest = create_key(&up_dir, "not-exported", "ingest");
    let auth = format!("authorization=Bearer {down_ingest}");
    let up = serve_with(&up_dir, &["--config", &config], &["--export-otlp", &down.url, "--export-otlp-header", &auth]);

    let mut s1 = span(0x51, 1, "settle");
    s1.attributes.push(KeyValue::new("payer.private_key", SECRET));
    let mut s2 = span(0x51, 2, "rpc");
    s2.parent_span_id = Some(SpanId([1; 8]));
    post_protobuf(&up.url, &up_ingest, vec![s1, s2]);
    post_protobuf(&up.url, &other_ingest, vec![span(0x52, 1, "elsewhere")]);

    let trace = hex::encode([0x51u8; 16]);
    wait_for("the exported trace", Duration::from_secs(20), || trace_spans(&down.url, &down_read, &trace).len() == 2);
    let (sent, got) = (trace_spans(&up.url, &up_read, &trace), trace_spans(&down.url, &down_read, &trace));
    assert_eq!(sent, got, "every field arrives as stored: attributes, events, status, parent, resource");
    assert_eq!(got[0]["events"][0]["name"], "retry");
    assert_eq!(got[0]["status"]["message"], "nonce too low");
    let secret = attr(got.iter().find(|s| s["name"] == "settle").unwrap(), "payer.private_key");
    assert!(!secret.to_string().contains(&SECRET[10..]), "redacted at rest upstream, so redacted downstream: {secret}");
    // Only the opted-in project is exported.
    assert!(trace_spans(&down.url, &down_read, &hex::encode([0x52u8; 16])).is_empty());
    assert_eq!(export_metric(&up.url, "exported"), 2.0);
    assert_eq!(metric(&down.url, "tracex_spans_ingested_total"), 2.0);
    // The downstream collector took the header's key: without it every request would have been
    // 401 (retried by the exporter, nothing delivered) and counted here.
    assert_eq!(metric(&down.url, "tracex_batches_rejected_total{reason=\"unauthorized\"}"), 0.0);
}

/// What the sink answers a request with, given its spans' names and how many requests came before.
type Script = dyn Fn(&[String], usize) -> (u16, Vec<(&'static str, String)>, Vec<u8>) + Send + Sync;

/// A minimal OTLP/HTTP receiver: decodes every request (gzip, protobuf) and records the names of
/// the spans it acknowledged.
struct Sink {
    port: u16,
    names: Arc<Mutex<Vec<String>>>,
    /// When each request arrived, in order.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start(port: u16, script: Arc<Script>) -> Self {
        let names: Arc<Mutex<Vec<String>>> = Arc::default();
        let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let requests: Arc<Mutex<usize>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (received, arrived) = (names.clone(), arrivals.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                bound_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let (received, requests, script) = (received.clone(), requests.clone(), script.clone());
                        let arrived = arrived.clone();
                        async move {
                            arrived.lock().unwrap().push(Instant::now());
                            assert_eq!(headers["content-type"], "application/x-protobuf");
                            assert_eq!(headers["content-encoding"], "gzip");
                            let mut raw = Vec::new();
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut raw).unwrap();
                            let req = tracex_core::decode::decode_request(&raw).unwrap();
                            let names: Vec<String> = req
                                .resource_spans
                                .iter()
                                .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()))
                                .map(|s| s.name.to_string())
                                .collect();
                            let n = {
                                let mut r = requests.lock().unwrap();
                                *r += 1;
                                *r - 1
                            };
                            let (status, headers, answer) = script(&names, n);
                            if (200..300).contains(&status) {
                                received.lock().unwrap().extend(names);
                            }
                            let mut response = axum::http::Response::builder().status(status);
                            for (k, v) in headers {
                                response = response.header(k, v);
                            }
                            response.body(axum::body::Body::from(answer)).unwrap()
                        }
                    }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let port = bound_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self { port, names, arrivals, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

fn named(names: &[&str]) -> Vec<SpanData> {
    names.iter().enumerate().map(|(i, n)| span(0x60, i as u8 + 1, Box::leak(n.to_string().into_boxed_str()))).collect()
}

fn with_ids(trace: u8, names: &[String]) -> Vec<SpanData> {
    names.iter().enumerate().map(|(i, n)| span(trace, i as u8 + 1, Box::leak(n.clone().into_boxed_str()))).collect()
}

fn partial_success(rejected: u8, message: &str) -> Vec<u8> {
    // ExportTraceServiceResponse { partial_success (1) { rejected_spans (1), error_message (2) } }
    let mut inner = vec![0x08, rejected, 0x12, message.len() as u8];
    inner.extend_from_slice(message.as_bytes());
    let mut out = vec![0x0a, inner.len() as u8];
    out.extend(inner);
    out
}

#[test]
fn receiver_faults_and_an_exporter_restart_lose_nothing() {
    // 503 + Retry-After on the first request; 400 for a request holding "poison"; a partial
    // success rejecting one span for "half"; 413 for any request of more than 3 spans.
    let script: Arc<Script> = Arc::new(|names: &[String], n: usize| {
        if n == 0 {
            return (503, vec![("retry-after", "1".into())], b"warming up".to_vec());
        }
        if names.iter().any(|n| n == "poison") {
            return (400, vec![], b"cannot take poison".to_vec());
        }
        if names.len() > 3 {
            return (413, vec![], Vec::new());
        }
        if names.iter().any(|n| n == "half") {
            return (200, vec![("content-type", "application/x-protobuf".into())], partial_success(1, "one bad span"));
        }
        (200, vec![("content-type", "application/x-protobuf".into())], Vec::new())
    });
    let sink = Sink::start(0, script.clone());
    let port = sink.port;
    let dir = temp_dir("export-faults");
    let config = exporter_config(
        &dir,
        &format!("[export]\nurl = \"{}\"\nmax_spans_per_request = 8\ntimeout_ms = 2000\n", sink.url()),
    );
    let key = create_key(&dir, "payments", "ingest");
    let up = Collector::start_with(&dir, &["--config", &config]);

    // 6 spans: one request of 6 → 503 (retried after 1 s) → 413 → halves of 3 → delivered.
    let first: Vec<String> = (1..=6).map(|i| format!("a{i}")).collect();
    post_protobuf(&up.url, &key, with_ids(0x61, &first));
    wait_for("the first spans", Duration::from_secs(20), || sink.names().len() == 6);
    assert!(metric(&up.url, "tracex_export_retries_total") >= 1.0, "the 503 was retried");
    // Not before the second the 503 asked for. A lower bound only (a loaded machine may be later,
    // never earlier); the slack covers nothing but rounding, and the backoff without
    // `Retry-After` (at most 250 ms after a first failure) stays far below it.
    let arrivals = sink.arrivals();
    let waited = arrivals[1] - arrivals[0];
    assert!(waited >= Duration::from_millis(950), "the retry came {waited:?} after the 503 with Retry-After: 1");
    // A poisoned request is dropped and counted; the next one goes through.
    post_protobuf(&up.url, &key, named(&["poison"]));
    // (Waited for, so the next batch is not read into the same request.)
    wait_for("the poisoned request", Duration::from_secs(20), || export_metric(&up.url, "rejected") == 1.0);
    post_protobuf(&up.url, &key, with_ids(0x62, &["half".into(), "b2".into()]));
    wait_for("the partial success", Duration::from_secs(20), || sink.names().len() == 8);
    assert_eq!(export_metric(&up.url, "rejected"), 2.0, "the poisoned span and the one of the partial success");
    assert_eq!(export_metric(&up.url, "exported"), 7.0);

    // The receiver goes away; spans keep arriving; the exporter retries, then restarts.
    let before = sink.names();
    sink.stop();
    let during: Vec<String> = (1..=5).map(|i| format!("c{i}")).collect();
    post_protobuf(&up.url, &key, with_ids(0x63, &during[..3]));
    let retries = metric(&up.url, "tracex_export_retries_total");
    wait_for("retries against the absent receiver", Duration::from_secs(20), || {
        metric(&up.url, "tracex_export_retries_total") > retries
    });
    assert!(up.terminate().success());
    let up = Collector::start_with(&dir, &["--config", &config]);
    post_protobuf(&up.url, &key, with_ids(0x64, &during[3..]));
    // It comes back on the same address: everything stored meanwhile arrives.
    let sink = Sink::start(port, script);
    wait_for("the spans stored while the receiver was away", Duration::from_secs(30), || {
        let names: BTreeSet<String> = sink.names().into_iter().collect();
        during.iter().all(|d| names.contains(d))
    });
    let received: BTreeSet<String> = before.into_iter().chain(sink.names()).collect();
    for name in first.iter().chain(&during).chain(&["b2".to_owned()]) {
        assert!(received.contains(name), "{name} was not delivered");
    }
    assert!(!received.contains("poison"));
    // The restarted collector counts what it delivered itself.
    assert_eq!(export_metric(&up.url, "exported"), 5.0);
    wait_for("the lag to go back to zero", Duration::from_secs(10), || {
        metric(&up.url, "tracex_export_lag_seconds") == 0.0
    });
    sink.stop();
}

#[test]
fn spans_older_than_the_lag_bound_are_dropped_and_counted() {
    // A port nothing listens on: the receiver is down from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = temp_dir("export-lag");
    let config = exporter_config(&dir, &format!("[export]\nurl = \"http://127.0.0.1:{port}\"\nmax_lag_seconds = 1\n"));
    let key = create_key(&dir, "payments", "ingest");
    let up = Collector::start_with(&dir, &["--config", &config]);
    post_protobuf(&up.url, &key, with_ids(0x71, &["old1".into(), "old2".into(), "old3".into()]));
    wait_for("the old spans to be dropped", Duration::from_secs(20), || export_metric(&up.url, "dropped_lag") == 3.0);
    let script: Arc<Script> = Arc::new(|_: &[String], _| (200, vec![], Vec::new()));
    let sink = Sink::start(port, script);
    post_protobuf(&up.url, &key, with_ids(0x72, &["new1".into()]));
    wait_for("the new span", Duration::from_secs(20), || sink.names() == ["new1"]);
    assert_eq!(export_metric(&up.url, "exported"), 1.0);
    sink.stop();
}

#[test]
fn export_without_the_audit_log_is_refused_at_start() {
    let dir = temp_dir("export-no-log");
    let config = exporter_config(&dir, "audit_log = false\n[export]\nurl = \"http://127.0.0.1:4318\"\n");
    let out = std::process::Command::new(common::BIN)
        .args(["--data-dir", dir.to_str().unwrap(), "--config", &config, "serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit_log = true"), "{err}");
}

/// Two collectors on one PostgreSQL database, both exporting: they take turns under the cursor's
/// lease, every span stored through either arrives, and when the holder stops the other goes on
/// from its cursor. Ignored without a server: `scripts/with-postgres.sh cargo test -p
/// tracex-collector --test otlp_export -- --ignored`.
#[test]
#[ignore = "needs PostgreSQL (scripts/with-postgres.sh)"]
fn postgres_two_collectors_export_every_span_in_turns() {
    let db = common::otlp::PgDb::new();
    let script: Arc<Script> = Arc::new(|_: &[String], _| (200, vec![], Vec::new()));
    let sink = Sink::start(0, script);
    let (dir_a, dir_b) = (temp_dir("export-pg-a"), temp_dir("export-pg-b"));
    let toml = format!("[export]\nurl = \"{}\"\nmax_spans_per_request = 5\n", sink.url());
    let key = common::otlp::pg_key(&dir_a, &db, "ingest");
    // The fleet shares one database and its keys (through an encrypted bundle).
    let a = Collector::start_with(&dir_a, &["--database-url", &db.url, "--config", &exporter_config(&dir_a, &toml)]);
    let bundle = dir_a.join("fleet.bundle");
    for (dir, args) in [
        (&dir_a, vec!["export", "--out", bundle.to_str().unwrap()]),
        (&dir_b, vec!["import", bundle.to_str().unwrap()]),
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(["--data-dir", dir.to_str().unwrap(), "keys"])
            .args(args)
            .env("TRACEX_KEYS_PASSPHRASE", "export test fleet passphrase")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let b = Collector::start_with(&dir_b, &["--database-url", &db.url, "--config", &exporter_config(&dir_b, &toml)]);
    let mut expected = BTreeSet::new();
    for i in 0..20u8 {
        let names: Vec<String> = (1..=3).map(|j| format!("s{i}-{j}")).collect();
        expected.extend(names.iter().cloned());
        post_protobuf(if i % 2 == 0 { &a.url } else { &b.url }, &key, with_ids(0x80 + i, &names));
    }
    let delivered = |sink: &Sink| sink.names().into_iter().collect::<BTreeSet<String>>();
    wait_for("every span of both collectors", Duration::from_secs(30), || delivered(&sink).is_superset(&expected));
    let exported = export_metric(&a.url, "exported") + export_metric(&b.url, "exported");
    assert!(exported >= 60.0, "{exported}");
    // The holder stops (handing its lease back); the other exports what arrives next.
    let (stays, stays_url) = if export_metric(&a.url, "exported") > 0.0 {
        assert!(a.terminate().success());
        (b, "b")
    } else {
        assert!(b.terminate().success());
        (a, "a")
    };
    let later: Vec<String> = (1..=3).map(|j| format!("later-{j}")).collect();
    post_protobuf(&stays.url, &key, with_ids(0xa0, &later));
    wait_for(&format!("collector {stays_url} to take the export over"), Duration::from_secs(45), || {
        later.iter().all(|l| delivered(&sink).contains(l))
    });
    drop(stays);
    sink.stop();
}
