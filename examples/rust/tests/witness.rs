//! `tracex-witness` against a real collector (in this process, over real HTTP): a growing log is
//! accepted and co-signed, and a forked log — another collector holding the same audit key but a
//! different history — raises the alarm (exit 2), as does a log signed by another key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tracex_collector::config::Config;
use tracex_collector::store::KeyScope;

struct Running {
    url: String,
    read_key: String,
    ingest_key: String,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), String>>,
}

fn start(dir: &Path) -> Running {
    let config = Config {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        audit_checkpoint_interval_ms: 100,
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let collector = runtime.block_on(tracex_collector::Collector::start(config.clone())).unwrap();
    let url = format!("http://{}", collector.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(collector.serve(async move {
        let _ = stopped.await;
    }));
    let store = tracex_collector::open_store(&config).unwrap();
    let read = tracex_collector::auth::generate("default", KeyScope::Read, 0).unwrap();
    store.insert_api_key(&read.record).unwrap();
    let ingest = tracex_collector::auth::generate("default", KeyScope::Ingest, 0).unwrap();
    store.insert_api_key(&ingest.record).unwrap();
    let running = Running { url, read_key: read.key, ingest_key: ingest.key, runtime, stop, server };
    running.send_spans();
    running
}

impl Running {
    /// Ten spans through the real SDK, flushed.
    fn send_spans(&self) {
        let tracer = tracex_core::Tracer::builder()
            .with_service_name("witnessed")
            .with_endpoint(&self.url)
            .with_api_key(&self.ingest_key)
            .with_collector_public_key_pem(self.public_key_pem())
            .build()
            .unwrap();
        for _ in 0..10 {
            tracer.in_span("settle", |_| {});
        }
        tracer.shutdown(Duration::from_secs(10)).unwrap();
    }

    /// The verifier key the collector publishes.
    fn audit_key(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.get("/v1/audit-key")).unwrap();
        v["verifier_key"].as_str().unwrap().to_owned()
    }

    fn public_key_pem(&self) -> String {
        reqwest::blocking::Client::new()
            .get(format!("{}/v1/public-key", self.url))
            .header("accept", "application/x-pem-file")
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    fn get(&self, path: &str) -> String {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.read_key)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().unwrap()
    }

    /// Waits until a checkpoint covers the whole log.
    fn checkpointed(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = reqwest::blocking::Client::new()
                .get(format!("{}/api/v1/audit/checkpoint", self.url))
                .bearer_auth(&self.read_key)
                .send()
                .unwrap();
            if r.status().is_success() {
                let text = r.text().unwrap();
                let size: u64 = text.lines().nth(1).unwrap().parse().unwrap();
                if size > 0 {
                    return size;
                }
            }
            assert!(Instant::now() < deadline, "no checkpoint");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.runtime.block_on(self.server).unwrap().unwrap();
    }
}

fn witness(c: &Running, audit_key: &str, state: &Path, cosign: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracex-witness"))
        .args(["--collector", &c.url, "--read-key", &c.read_key, "--audit-key", audit_key])
        .arg("--state")
        .arg(state)
        .arg("--cosign-key")
        .arg(cosign)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracex-witness-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_witness_cosigns_a_growing_log_and_alarms_on_a_fork() {
    let (dir, fork_dir, other_dir, home) = (temp_dir("log"), temp_dir("fork"), temp_dir("other"), temp_dir("home"));
    let (state, cosign) = (home.join("checkpoint"), home.join("witness.key"));

    let c = start(&dir);
    let audit_key = c.audit_key();
    let first = c.checkpointed();
    let (code, out, err) = witness(&c, &audit_key, &state, &cosign);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("\n{first}\n")) && out.matches("\n— ").count() == 2, "co-signed: {out}");
    // The log grows: the kept checkpoint must be extended by the new one.
    c.send_spans();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.checkpointed() <= first {
        assert!(Instant::now() < deadline, "the log did not grow");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = witness(&c, &audit_key, &state, &cosign);
    assert_eq!(code, 0, "{err}");
    c.stop();

    // A fork: the same audit key over a different history (another data dir, the key copied in).
    std::fs::create_dir_all(fork_dir.join("keys")).unwrap();
    let key_file = tracex_collector::audit::signer::FILE;
    std::fs::copy(dir.join("keys").join(key_file), fork_dir.join("keys").join(key_file)).unwrap();
    let fork = start(&fork_dir);
    assert_eq!(fork.audit_key(), audit_key);
    fork.checkpointed();
    let kept = std::fs::read_to_string(&state).unwrap();
    let (code, _, err) = witness(&fork, &audit_key, &state, &cosign);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ALARM"), "{err}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), kept, "an alarm keeps the checkpoint it had");
    fork.stop();

    // Another collector's log, checked against the pinned key: not signed by it.
    let other = start(&other_dir);
    other.checkpointed();
    let (code, _, err) = witness(&other, &audit_key, &state, &cosign);
    assert_eq!(code, 2, "{err}");
    other.stop();
}
