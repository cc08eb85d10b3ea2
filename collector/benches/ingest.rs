//! Ingest throughput: a load generator posts pre-sealed 512-span batches over loopback HTTP to a real
//! collector (same process, its own runtime) storing into the embedded SQLite store; every request
//! waits for its acknowledgement, which comes only after the group commit is durable.
//!
//! `cargo bench -p tracex-collector --bench ingest` (env: `INGEST_BATCHES`, default 400;
//! `INGEST_CLIENTS`, default 64: concurrent connections, as many SDK instances would hold)
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

use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, SpanKind, Status, ids};

#[path = "common.rs"]
mod common;
use common::BenchCollector;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// 512 spans in traces of 8 (a facilitator's verify + settle with RPC calls): one payment per
/// trace, so amount and payer are per trace, as in x402.
fn spans(n: usize) -> Vec<SpanData> {
    let now = tracex_collector::now_unix_nano();
    let mut trace_id = ids::new_trace_id();
    (0..n)
        .map(|i| SpanData {
            trace_id: {
                if i % 8 == 0 {
                    trace_id = ids::new_trace_id();
                }
                trace_id
            },
            span_id: ids::new_span_id(),
            parent_span_id: (i % 8 != 0).then(ids::new_span_id),
            flags: 1,
            name: if i % 2 == 0 { "POST /verify".into() } else { "POST /settle".into() },
            kind: SpanKind::Server,
            start_time_unix_nano: now + i as u64,
            end_time_unix_nano: now + i as u64 + 2_500_000,
            attributes: vec![
                KeyValue::new("x402.scheme", "exact"),
                KeyValue::new("x402.network", "base"),
                KeyValue::new("x402.asset", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
                KeyValue::new(
                    "x402.amount",
                    format!("{}", 10_000 + u64::from(trace_id.0[0]) * 7 + u64::from(trace_id.0[1])),
                ),
                KeyValue::new("x402.payer", format!("0x{}", trace_id.to_hex().repeat(2).get(..40).unwrap_or_default())),
                KeyValue::new("x402.attempt", 1i64),
                KeyValue::new("http.response.status_code", 200i64),
            ],
            status: Status::ok(),
            ..Default::default()
        })
        .collect()
}

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

    fn post(&mut self, host: &str, key: &str, body: &[u8]) -> (u16, String) {
        let head = format!(
            "POST /v1/batches HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/vnd.tracex.batch.v1\r\nContent-Length: {}\r\n\r\n",
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

fn main() {
    let batches = env_usize("INGEST_BATCHES", 400);
    let clients = env_usize("INGEST_CLIENTS", 64);
    let collector = BenchCollector::start("ingest");
    let (url, store) = (collector.url.clone(), collector.store.clone());
    let collector_key = CollectorKey::from_pem(&collector.public_pem).unwrap();

    // Pre-seal every batch so the generator's cost is HTTP only.
    let resource = Resource::new("bench-facilitator");
    let scope = InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() };
    let mut sealer = Sealer::new(collector_key, SealerConfig::default()).unwrap();
    let bodies: Vec<Vec<u8>> = (0..batches)
        .map(|_| {
            let s = spans(512);
            sealer
                .seal_with(tracex_collector::now_unix_nano(), |out| {
                    tracex_core::encode::encode_spans(&resource, &scope, &s, out);
                })
                .unwrap()
                .bytes
        })
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!("{batches} sealed batches of 512 spans ({:.1} MB), {clients} concurrent clients", bytes as f64 / 1e6);

    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let addr = url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    // The generator is deliberately cheap (hand-written HTTP/1.1 over keep-alive sockets, no client
    // library, no copies), so the two cores go to the collector.
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (bodies, next, addr, auth) = (bodies.clone(), next.clone(), addr.clone(), collector.ingest_key.clone());
            std::thread::spawn(move || {
                let mut conn = RawClient::connect(&addr);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let (status, text) = conn.post(&addr, &auth, body);
                    assert_eq!(status, 200, "{text}");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let spans_total = batches * 512;
    assert_eq!(store.span_count("bench").unwrap(), spans_total as u64, "every acknowledged span is stored");
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "== ingest: {:.0} spans/s ({:.1} MB/s sealed), {} batches in {:.2} s; ack latency p50 {:.1} ms, p99 {:.1} ms",
        spans_total as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        batches,
        elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    let metrics = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
    for line in
        metrics.lines().filter(|l| l.starts_with("tracex_commits_total") || l.starts_with("tracex_rsa_unwraps_total"))
    {
        println!("   {line}");
    }
    collector.stop();
}
