//! Ingest throughput, three ways into the same collector code, side by side in one run: a load
//! generator sends 512-span requests over loopback to a real collector (same process, its own
//! 2-thread runtime, release build) storing into the embedded SQLite store; every request waits for
//! its acknowledgement, which comes only after the group commit is durable.
//!
//! - `sealed`: pre-sealed batches, `POST /v1/batches` (the tracex SDKs' path);
//! - `otlp-http`: the same plaintext (an `ExportTraceServiceRequest`) in clear, `POST /v1/traces`,
//!   `application/x-protobuf` (decoded, redacted and validated by the collector);
//! - `otlp-grpc`: the same message over OTLP/gRPC (`TraceService/Export`, `--otlp-grpc-listen`);
//! - `sealed-no-audit`: `sealed` with the audit log off (`audit_log = false`): what the log costs
//!   (also as the median of each round's own on ÷ off ratio, the two paths being run back to back);
//! - `sealed-export`: `sealed` with the OTLP export on, to a receiver that answers at once: what
//!   exporting costs ingest, and how fast the export drains (spans/s from the first request until
//!   the receiver acknowledged the last span);
//! - `postgres`: `sealed` into PostgreSQL (`--database-url`) instead of SQLite;
//! - `postgres-two`: two collectors of one fleet (the same keys) on the same PostgreSQL database,
//!   the clients split between them, as behind a load balancer.
//!
//! Each round starts a fresh collector (an empty database; with PostgreSQL a `CREATE DATABASE` of
//! its own) per path, and the paths take turns, so the machine's noise falls on all of them alike;
//! the summary compares medians over the rounds. The PostgreSQL paths need a server:
//! `TRACEX_TEST_POSTGRES_URL`, which `scripts/with-postgres.sh` starts and sets; without it they
//! are skipped.
//!
//! `cargo bench -p tracex-collector --bench ingest` (env: `INGEST_BATCHES`, default 400 requests of
//! 512 spans per path and round; `INGEST_CLIENTS`, default 64: concurrent connections, as many SDK
//! instances or exporters would hold; `INGEST_ROUNDS`, default 3; `INGEST_RATE`, spans/s: an open
//! loop at that offered rate instead of as fast as acknowledgements come, latencies counted from
//! each request's due time (the acknowledgement latency at a given load); `INGEST_PATHS`, default
//! `sealed,sealed-no-audit,otlp-http,otlp-grpc,sealed-export`, also `postgres,postgres-two`:
//! `scripts/with-postgres.sh env INGEST_PATHS=sealed,postgres,postgres-two cargo bench -p
//! tracex-collector --bench ingest`)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf as _, BufMut as _, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, Resource};

#[path = "common.rs"]
mod common;

/// The collector binary's allocator (collector/src/main.rs), so this measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use common::{BenchCollector, PgDb};

/// A minimal HTTP/1.1 keep-alive client for the load generator.
struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Self { reader: BufReader::new(s.try_clone().unwrap()), writer: s }
    }

    fn post(&mut self, host: &str, path: Path, key: &str, body: &[u8]) -> (u16, String) {
        let (target, content_type) = if path == Path::OtlpHttp {
            ("/v1/traces", "application/x-protobuf")
        } else {
            ("/v1/batches", "application/vnd.tracex.batch.v1")
        };
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).unwrap();
        (status, String::from_utf8_lossy(&buf).into_owned())
    }
}

/// The way requests reach the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Sealed,
    SealedNoAudit,
    OtlpHttp,
    OtlpGrpc,
    SealedExport,
    Postgres,
    PostgresTwo,
}

const PATHS: [Path; 7] = [
    Path::Sealed,
    Path::SealedNoAudit,
    Path::OtlpHttp,
    Path::OtlpGrpc,
    Path::SealedExport,
    Path::Postgres,
    Path::PostgresTwo,
];

impl Path {
    fn name(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::SealedNoAudit => "sealed-no-audit",
            Self::OtlpHttp => "otlp-http",
            Self::OtlpGrpc => "otlp-grpc",
            Self::SealedExport => "sealed-export",
            Self::Postgres => "postgres",
            Self::PostgresTwo => "postgres-two",
        }
    }

    /// Pre-sealed batches (`POST /v1/batches`), not OTLP in clear.
    fn sealed(self) -> bool {
        !matches!(self, Self::OtlpHttp | Self::OtlpGrpc)
    }

    /// Collectors sharing the database: 0 for the embedded SQLite store.
    fn postgres_collectors(self) -> usize {
        match self {
            Self::Postgres => 1,
            Self::PostgresTwo => 2,
            _ => 0,
        }
    }
}

/// One path's run: spans/s acknowledged, and the acknowledgement latencies.
struct Run {
    spans_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The collector's CPU time per span stored, ns (Linux; NaN elsewhere).
    cpu_ns: f64,
}

/// CPU time of the whole process so far, threads that have ended included (`/proc/self/stat`'s
/// utime + stime, in clock ticks of 10 ms: ≈ 0.4 % of a round's CPU); `None` off Linux.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC generator's codec: the message is already encoded.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The collectors of one run: one, or (`postgres-two`) two sharing the database and keys.
fn start_collectors(
    path: Path,
    round: usize,
    receiver: Option<&common::NullReceiver>,
) -> (Vec<BenchCollector>, Option<PgDb>) {
    let db = (path.postgres_collectors() > 0).then(|| {
        let admin = common::postgres_admin_url().expect("checked in main");
        PgDb::create(&admin, &format!("{}_{round}", path.name().replace('-', "_")))
    });
    let database_url = db.as_ref().map(|d| d.url.clone());
    let first = BenchCollector::start_configured("ingest", path == Path::OtlpGrpc, |c| {
        c.audit_log = path != Path::SealedNoAudit;
        c.export.url = receiver.map(|r| r.url.clone());
        c.database_url.clone_from(&database_url);
    });
    let mut collectors = vec![first];
    for i in 1..path.postgres_collectors() {
        let member =
            collectors[0].start_fleet_member(&format!("ingest-{i}"), |c| c.database_url.clone_from(&database_url));
        collectors.push(member);
    }
    (collectors, db)
}

fn run(path: Path, round: usize, batches: usize, clients: usize, rate: Option<f64>) -> Run {
    let receiver = (path == Path::SealedExport).then(common::NullReceiver::start);
    let (collectors, db) = start_collectors(path, round, receiver.as_ref());
    let collector = &collectors[0];
    let (url, store) = (collector.url.clone(), collector.store.clone());

    // Every request is encoded (and sealed) before the clock starts, so the generator's cost is
    // the transport only. The plaintext is the same on every path: an ExportTraceServiceRequest.
    let resource = Resource::new("bench-facilitator");
    let scope = InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() };
    let mut sealer =
        Sealer::new(CollectorKey::from_pem(&collector.public_pem).unwrap(), SealerConfig::default()).unwrap();
    let bodies: Vec<Bytes> = (0..batches)
        .map(|_| {
            let s = common::payment_spans(512);
            let encode = |out: &mut Vec<u8>| tracex_core::encode::encode_spans(&resource, &scope, &s, out);
            Bytes::from(if path.sealed() {
                sealer.seal_with(tracex_collector::now_unix_nano(), encode).unwrap().bytes
            } else {
                let mut out = Vec::new();
                encode(&mut out);
                out
            })
        })
        .collect();
    let bytes: usize = bodies.iter().map(Bytes::len).sum();

    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    // Client `i` talks to collector `i % n` with that collector's key (both keys are the project's).
    let targets: Vec<(String, String)> =
        collectors.iter().map(|c| (c.url.trim_start_matches("http://").to_owned(), c.ingest_key.clone())).collect();
    let auth = collector.ingest_key.clone();
    // The collector's CPU: the process's, less the load generator's (the client threads, and
    // this thread, which runs the gRPC clients). Unlike spans/s, which moves by ± 15 % a round
    // with this VM's fsync latency, CPU per span does not wait on the disk.
    let (process_cpu0, main_cpu0) = (process_cpu(), common::thread_cpu());
    let clients_cpu = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let started = Instant::now();
    // Open loop (`INGEST_RATE`): request `i` is due at `i * 512 / rate` seconds, and its latency
    // counts from then, not from when a client got round to sending it — a collector that falls
    // behind shows it in the latencies instead of slowing the generator (coordinated omission).
    let due = move |i: usize| rate.map(|r| started + Duration::from_secs_f64(i as f64 * 512.0 / r));
    let mut latencies: Vec<Duration> = match path {
        // The HTTP generator is deliberately cheap (hand-written HTTP/1.1 over keep-alive sockets,
        // no client library, no copies), so the two cores go to the collector.
        Path::Sealed
        | Path::SealedNoAudit
        | Path::SealedExport
        | Path::OtlpHttp
        | Path::Postgres
        | Path::PostgresTwo => {
            let handles: Vec<_> = (0..clients)
                .map(|i| {
                    let (bodies, next, clients_cpu) = (bodies.clone(), next.clone(), clients_cpu.clone());
                    let (addr, auth) = targets[i % targets.len()].clone();
                    std::thread::spawn(move || {
                        let mut conn = RawClient::connect(&addr);
                        let mut latencies = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(body) = bodies.get(i) else { break };
                            let t = due(i).map_or_else(Instant::now, |at| {
                                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                                at
                            });
                            let (status, text) = conn.post(&addr, path, &auth, body);
                            assert_eq!(status, 200, "{text}");
                            // OTLP: an empty ExportTraceServiceResponse, no partial success.
                            assert!(path.sealed() || text.is_empty(), "{text}");
                            latencies.push(t.elapsed());
                        }
                        *clients_cpu.lock().unwrap() += common::thread_cpu();
                        latencies
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        }
        // gRPC: tonic's client (HTTP/2 is not hand-written in a few lines), one connection per
        // client as separate exporters would hold, on one runtime thread of its own.
        Path::OtlpGrpc => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let grpc_url = collector.grpc_url.clone().unwrap();
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..clients {
                    let channel =
                        tonic::transport::Endpoint::from_shared(grpc_url.clone()).unwrap().connect().await.unwrap();
                    let (bodies, next, auth) = (bodies.clone(), next.clone(), format!("Bearer {auth}"));
                    tasks.spawn(async move {
                        let mut grpc = tonic::client::Grpc::new(channel);
                        let mut latencies = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(body) = bodies.get(i) else { break };
                            let t = match due(i) {
                                Some(at) => {
                                    tokio::time::sleep_until(at.into()).await;
                                    at
                                }
                                None => Instant::now(),
                            };
                            let mut req = tonic::Request::new(body.clone());
                            req.metadata_mut().insert("authorization", auth.parse().unwrap());
                            grpc.ready().await.unwrap();
                            let path = axum::http::uri::PathAndQuery::from_static(EXPORT);
                            let answer = grpc.unary(req, path, Raw).await.unwrap().into_inner();
                            assert!(answer.is_empty(), "a partial success");
                            latencies.push(t.elapsed());
                        }
                        latencies
                    });
                }
                tasks.join_all().await.into_iter().flatten().collect()
            })
        }
    };
    let elapsed = started.elapsed();
    let generator = *clients_cpu.lock().unwrap() + common::thread_cpu().saturating_sub(main_cpu0);
    let collector_cpu = process_cpu().zip(process_cpu0).map(|(now, then)| now.saturating_sub(then + generator));
    latencies.sort();
    let spans_total = batches * 512;
    assert_eq!(store.span_count("bench").unwrap(), spans_total as u64, "every acknowledged span is stored");
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
    let run = Run {
        spans_per_s: spans_total as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        cpu_ns: collector_cpu.map_or(f64::NAN, |c| c.as_nanos() as f64 / spans_total as f64),
    };
    let commits = collectors
        .iter()
        .map(|c| {
            let metrics = reqwest::blocking::get(format!("{}/metrics", c.url)).unwrap().text().unwrap();
            metrics.lines().find_map(|l| l.strip_prefix("tracex_commits_total ")).unwrap_or("?").to_owned()
        })
        .collect::<Vec<_>>()
        .join(" + ");
    println!(
        "   {:<12} {:>8.0} spans/s ({:.1} MB/s), {batches} requests in {:.2} s; ack p50 {:.1} ms, p99 {:.1} ms; {commits} commits; collector CPU {:.0} ns/span",
        path.name(),
        run.spans_per_s,
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        run.p50_ms,
        run.p99_ms,
        run.cpu_ns,
    );
    if receiver.is_some() {
        let exported = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("tracex_export_spans_total{outcome=\"exported\"} "))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as usize
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while exported(&reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap()) < spans_total {
            assert!(Instant::now() < deadline, "the export did not drain");
            std::thread::sleep(Duration::from_millis(20));
        }
        let drained = started.elapsed();
        println!(
            "   {:<12} export drained {spans_total} spans {:.2} s after the first request: {:.0} spans/s",
            "",
            drained.as_secs_f64(),
            spans_total as f64 / drained.as_secs_f64()
        );
    }
    drop(store);
    for c in collectors {
        c.stop();
    }
    drop(db);
    run
}

fn main() {
    // As the collector binary does (src/allocator.rs).
    tracex_collector::allocator::disable_huge_pages();
    let batches = common::env_usize("INGEST_BATCHES", 400);
    let clients = common::env_usize("INGEST_CLIENTS", 64);
    let rate = std::env::var("INGEST_RATE").ok().map(|r| r.parse::<f64>().expect("INGEST_RATE: spans per second"));
    let rounds = common::env_usize("INGEST_ROUNDS", 3).max(1);
    let mut paths: Vec<Path> = std::env::var("INGEST_PATHS")
        .unwrap_or_else(|_| "sealed,sealed-no-audit,otlp-http,otlp-grpc,sealed-export".to_owned())
        .split(',')
        .map(|p| {
            PATHS.into_iter().find(|known| known.name() == p.trim()).unwrap_or_else(|| {
                let names: Vec<&str> = PATHS.iter().map(|k| k.name()).collect();
                panic!("unknown path {p:?}: one of {}", names.join(", "))
            })
        })
        .collect();
    if common::postgres_admin_url().is_none() {
        let skipped: Vec<&str> = paths.iter().filter(|p| p.postgres_collectors() > 0).map(|p| p.name()).collect();
        if !skipped.is_empty() {
            println!(
                "skipping {}: TRACEX_TEST_POSTGRES_URL is not set (run under scripts/with-postgres.sh)",
                skipped.join(", ")
            );
            paths.retain(|p| p.postgres_collectors() == 0);
        }
    }
    let offered = rate.map_or_else(|| "as fast as acknowledged".to_owned(), |r| format!("offered at {r:.0} spans/s"));
    println!(
        "{batches} requests of 512 spans per path and round, {clients} concurrent clients, {rounds} rounds, {offered}"
    );
    let mut runs: Vec<(Path, Vec<Run>)> = paths.iter().map(|p| (*p, Vec::new())).collect();
    for round in 1..=rounds {
        println!("round {round}");
        for (path, done) in &mut runs {
            done.push(run(*path, round, batches, clients, rate));
        }
    }
    let median = |v: &[Run], f: fn(&Run) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let rate_of = |path: Path| runs.iter().find(|(p, _)| *p == path).map(|(_, v)| median(v, |r| r.spans_per_s));
    let (sealed, postgres) = (rate_of(Path::Sealed), rate_of(Path::Postgres));
    let sealed_cpu = runs.iter().find(|(p, _)| *p == Path::Sealed).map(|(_, v)| median(v, |r| r.cpu_ns));
    let offered_rate = rate;
    for (path, done) in &runs {
        let rate = median(done, |r| r.spans_per_s);
        let mut ratio = sealed.map_or_else(String::new, |s| format!(", {:.2}x sealed", rate / s));
        if *path == Path::PostgresTwo {
            ratio += &postgres.map_or_else(String::new, |one| format!(", {:.2}x postgres", rate / one));
        }
        let each: Vec<String> = done.iter().map(|r| format!("{:.0}", r.spans_per_s)).collect();
        let cpu = median(done, |r| r.cpu_ns);
        let cpu_ratio = sealed_cpu.map_or_else(String::new, |s| format!(", {:.3}x sealed's", cpu / s));
        println!(
            "== ingest {:<15}: {rate:.0} spans/s median of {rounds} ({}){ratio}; ack p50 {:.1} ms, p99 {:.1} ms; collector CPU {cpu:.0} ns/span{cpu_ratio}{}",
            path.name(),
            each.join(", "),
            median(done, |r| r.p50_ms),
            median(done, |r| r.p99_ms),
            offered_rate.map_or_else(String::new, |r| format!(" (open loop, offered {r:.0} spans/s)")),
        );
    }
    // What the audit log costs, round by round: each round runs both paths back to back, so the
    // ratio of a round's pair is spared the drift between rounds that moves both (this VM's speed
    // moves by ± 15 % within minutes); its median beside the ratio of the medians above.
    let rounds_of = |path: Path| runs.iter().find(|(p, _)| *p == path).map(|(_, v)| v);
    if let (Some(on), Some(off)) = (rounds_of(Path::Sealed), rounds_of(Path::SealedNoAudit)) {
        let mut ratios: Vec<f64> = on.iter().zip(off).map(|(a, b)| a.spans_per_s / b.spans_per_s).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "== audit log on ÷ off, the rounds' own ratios: median {:.3} (from {:.3} to {:.3}, {} rounds)",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            ratios.len()
        );
    }
}
