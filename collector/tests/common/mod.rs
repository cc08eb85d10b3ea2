//! Starts the real `tracex-collector` binary on a free loopback port with a temporary data dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod otlp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tracex-collector");

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tracex-collector-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a CLI command against `data_dir`; returns (status success, stdout, stderr).
pub fn cli(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    cli_env(data_dir, args, &[], &[])
}

/// `cli` with `set` added to the environment and `remove` taken out of it: what a command does
/// without a variable the test process may have inherited.
pub fn cli_env(data_dir: &Path, args: &[&str], set: &[(&str, &str)], remove: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data_dir).args(args);
    for name in remove {
        cmd.env_remove(name);
    }
    cmd.envs(set.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `settle` span of trace `[trace; 16]` with id `[span; 8]`, on `x402.network` `base`.
pub fn settle_span(trace: u8, span: u8) -> tracex_core::SpanData {
    tracex_core::SpanData {
        trace_id: tracex_core::TraceId([trace; 16]),
        span_id: tracex_core::SpanId([span; 8]),
        name: "settle".into(),
        start_time_unix_nano: 1_763_900_000_000_000_000,
        end_time_unix_nano: 1_763_900_000_100_000_000,
        attributes: vec![tracex_core::KeyValue::new("x402.network", "base")],
        ..Default::default()
    }
}

/// `spans` under a resource of `service`, sealed with `data_key` under `header` as the test wrote
/// it (instance id, sequence, batch id, nonce: fields a real `Sealer` chooses itself).
pub fn seal_under(
    header: &tracex_core::seal::Header,
    data_key: &[u8; 32],
    service: &str,
    spans: &[tracex_core::SpanData],
) -> Vec<u8> {
    let mut otlp = Vec::new();
    let resource = tracex_core::Resource::new(service.to_owned());
    tracex_core::encode::encode_spans(&resource, &tracex_core::InstrumentationScope::default(), spans, &mut otlp);
    tracex_core::seal::seal_payload(header, data_key, &otlp).unwrap()
}

/// `spans` under a resource of `service`, sealed to `key` by a fresh SDK instance: the envelope and
/// its batch id.
pub fn seal_spans(
    key: &tracex_core::seal::CollectorKey,
    service: &str,
    spans: &[tracex_core::SpanData],
) -> (Vec<u8>, [u8; 16]) {
    let mut sealer = tracex_core::seal::Sealer::new(key.clone(), tracex_core::seal::SealerConfig::default()).unwrap();
    let resource = tracex_core::Resource::new(service.to_owned());
    let scope = tracex_core::InstrumentationScope::default();
    let sealed = sealer
        .seal_with(1_763_900_000_000_000_000, |out| tracex_core::encode::encode_spans(&resource, &scope, spans, out))
        .unwrap();
    (sealed.bytes, sealed.batch_id)
}

pub fn create_key(data_dir: &Path, project: &str, scope: &str) -> String {
    let (ok, out, err) = cli(data_dir, &["apikey", "create", "--project", project, "--scope", scope]);
    assert!(ok, "{err}");
    out.trim().to_owned()
}

pub fn public_key_pem(data_dir: &Path) -> String {
    let (ok, out, err) = cli(data_dir, &["keys", "show"]);
    assert!(ok, "{err}");
    out.split("fingerprint:").next().unwrap().to_owned()
}

pub struct Collector {
    pub child: Child,
    pub url: String,
    /// The OTLP/gRPC listener's `http://addr`, when it was asked for.
    pub grpc: Option<String>,
    pub data_dir: PathBuf,
}

impl Collector {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(data_dir, extra, "127.0.0.1:0", Stdio::inherit(), false)
    }

    /// Listening on `listen` (`host:port`): a collector restarted where its SDKs send.
    pub fn start_listening_on(data_dir: &Path, listen: &str) -> Self {
        Self::spawn(data_dir, &[], listen, Stdio::inherit(), false)
    }

    /// With the OTLP/gRPC listener on a free port too (`grpc`).
    pub fn start_with_grpc(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(data_dir, extra, "127.0.0.1:0", Stdio::inherit(), true)
    }

    /// With its log (stderr) going to `log`.
    pub fn start_logging_to(data_dir: &Path, log: std::fs::File) -> Self {
        Self::spawn(data_dir, &[], "127.0.0.1:0", Stdio::from(log), false)
    }

    fn spawn(data_dir: &Path, extra: &[&str], listen: &str, stderr: Stdio, grpc: bool) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(data_dir).args(extra).args(["serve", "--listen", listen]);
        if grpc {
            cmd.args(["--otlp-grpc-listen", "127.0.0.1:0"]);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut read = |prefix: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("unexpected output {line:?}")).to_owned()
        };
        let url = read("tracex-collector listening on ");
        let grpc = grpc.then(|| read("tracex-collector OTLP/gRPC listening on "));
        let c = Self { child, url, grpc, data_dir: data_dir.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client().get(format!("{}/readyz", c.url)).send().is_ok_and(|r| r.status().is_success()) {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("collector not ready");
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "collector did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One shared client: building one loads the system's root certificates (tens of milliseconds).
pub fn client() -> reqwest::blocking::Client {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap())
        .clone()
}

pub fn get_json(url: &str, key: &str) -> (u16, serde_json::Value) {
    let r = client().get(url).bearer_auth(key).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

pub fn post_batch(base: &str, key: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("{base}/v1/batches"))
        .bearer_auth(key)
        .header("content-type", "application/vnd.tracex.batch.v1")
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// A metric's value from `/metrics`.
pub fn metric(base: &str, name: &str) -> f64 {
    let text = client().get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Every trace of the project, walking all pages.
pub fn all_traces(base: &str, read_key: &str, query: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/traces?limit=1000{query}");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let (status, body) = get_json(&url, read_key);
        assert_eq!(status, 200, "{body}");
        out.extend(body["traces"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The store a test's collector uses, so one test body runs on both: the embedded SQLite file in
/// its data dir, or a PostgreSQL database of its own (dropped with this value, so keep it alive
/// as long as the collector).
pub enum TestStore {
    Sqlite,
    Postgres(otlp::PgDb),
}

impl TestStore {
    /// A fresh PostgreSQL database named after `tag` (tests of one binary running at once each
    /// need their own tag). Needs `TRACEX_TEST_POSTGRES_URL` (scripts/with-postgres.sh).
    pub fn postgres(tag: &str) -> Self {
        Self::Postgres(otlp::PgDb::named(tag))
    }

    /// The global arguments that point the collector and its CLI at this store.
    pub fn args(&self) -> Vec<&str> {
        match self {
            Self::Sqlite => Vec::new(),
            Self::Postgres(db) => vec!["--database-url", &db.url],
        }
    }
}

/// `create_key` with the global arguments `extra` (e.g. `TestStore::args`) before the command.
pub fn create_key_with(data_dir: &Path, extra: &[&str], project: &str, scope: &str) -> String {
    let args = [extra, &["apikey", "create", "--project", project, "--scope", scope]].concat();
    let (ok, out, err) = cli(data_dir, &args);
    assert!(ok, "{err}");
    out.trim().to_owned()
}
