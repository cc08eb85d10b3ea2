//! The load generator and HTTP timer behind `scripts/bench-collector.sh` (issue #14's benchmarks):
//! a real release collector on loopback, driven over real HTTP.
//!
//! ```text
//! tracex-bench-collector load  --url U --ingest-key K --spans 10000000 --days 30 --meta meta.json
//! tracex-bench-collector query --url U --read-key R --meta meta.json --runs 50 --out query.json
//! tracex-bench-collector live  --url U --ingest-key K --read-key R --out live.json [--probes probes.json]
//! ```
//!
//! * `load` records x402 payments (`traffic.rs`, the demo's generator: explicit span times, nothing
//!   sleeps) with several SDK instances (`tracex-core` sealing batches, one sender each) laid out
//!   over `--days` of history, plus one trace of exactly 10,000 spans, and checks through the
//!   statistics API that every acknowledged span is stored.
//! * `query` times the read API: filtered trace searches, 24-hour and 30-day statistics, the
//!   10,000-span trace (with `resources=shared`, as the dashboard asks for it, and inline, with the
//!   bytes of each answer); each request on a keep-alive connection, from sending it to the last
//!   byte of the answer.
//! * `live` measures ingest throughput with no live viewer and with 50 (`/api/v1/live`, each
//!   reading everything), phases alternating, and the live tail's lag: probe spans sent one per
//!   batch while background ingest runs, timed from the request (an upper bound for the commit)
//!   and from the acknowledgement (a lower bound: the collector acknowledges after commit) to their
//!   arrival at an SSE client here; the probes' times are written to `--probes` so that the browser
//!   script can time the dashboard's Live page against them (same machine, same clock).
//!
//! Every result is written as JSON (`--out`) and printed.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

#[path = "traffic.rs"]
mod traffic;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as J, json};
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, SpanKind, Status, Tracer, ids};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SEC: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * SEC;
/// Spans per payment of `traffic::payment`, on average: 3 always (resource, verify, signature
/// check), and when verify passes (98 %) settle, RPC and receipt, plus a retried RPC in 8 %.
const SPANS_PER_PAYMENT: f64 = 3.0 + 0.98 * 3.08;
/// The one big trace: a treasury job settling 99 payments of 100 RPC calls each, under one root.
const BIG_TRACE_SPANS: u64 = 10_000;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(it: impl Iterator<Item = String>) -> Res<Self> {
        let mut m = HashMap::new();
        let mut it = it.peekable();
        while let Some(a) = it.next() {
            let k = a.strip_prefix("--").ok_or_else(|| format!("unexpected argument {a}"))?;
            let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
            m.insert(k.to_owned(), v);
        }
        Ok(Self(m))
    }
    fn s(&self, k: &str) -> Res<String> {
        self.0.get(k).cloned().ok_or_else(|| format!("--{k} is required").into())
    }
    fn n(&self, k: &str, default: u64) -> Res<u64> {
        self.0.get(k).map_or(Ok(default), |v| v.parse().map_err(|e| format!("--{k}: {e}").into()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let result = Args::parse(args).and_then(|a| match cmd.as_str() {
        "load" => load(&a),
        "query" => query(&a),
        "live" => live(&a),
        _ => Err("usage: tracex-bench-collector load|query|live --url … (see the file's docs)".into()),
    });
    if let Err(e) = result {
        eprintln!("tracex-bench-collector {cmd}: {e}");
        std::process::exit(1);
    }
}

fn public_key_pem(http: &reqwest::blocking::Client, url: &str) -> Res<String> {
    Ok(http
        .get(format!("{url}/v1/public-key"))
        .header("accept", "application/x-pem-file")
        .send()?
        .error_for_status()?
        .text()?)
}

fn api(http: &reqwest::blocking::Client, url: &str, key: &str, path: &str) -> Res<J> {
    let r = http.get(format!("{url}/api/v1{path}")).bearer_auth(key).send()?;
    let status = r.status();
    let body = r.text()?;
    if !status.is_success() {
        return Err(format!("GET {path}: {status}: {body}").into());
    }
    Ok(serde_json::from_str(&body)?)
}

fn write_json(path: &str, v: &J) -> Res<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

// === load ===

fn tracer(url: &str, key: &str, pem: &str, service: &str) -> Res<Tracer> {
    Ok(Tracer::builder()
        .with_service_name(service)
        .with_service_version("0.1.0")
        .with_operator_role("facilitator")
        .with_endpoint(url)
        .with_api_key(key)
        .with_collector_public_key_pem(pem)
        .build()?)
}

/// Waits while more than `max` spans of `t` are recorded and not yet acknowledged: the SDK never
/// blocks the caller and drops what its bounded queue cannot hold, so a generator far faster than
/// the collector paces itself, as real traffic would be paced by time.
fn pace(t: &Tracer, max: u64) {
    loop {
        let s = t.stats();
        if s.spans_recorded.saturating_sub(s.spans_sent + s.spans_dropped + s.spans_failed) <= max {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn load(a: &Args) -> Res<()> {
    let (url, key, meta_path) = (a.s("url")?, a.s("ingest-key")?, a.s("meta")?);
    let read_key = a.s("read-key")?;
    let target = a.n("spans", 10_000_000)?;
    let days = a.n("days", 30)?;
    let threads = a.n("threads", 6)?.max(1);
    let http = reqwest::blocking::Client::new();
    let pem = public_key_pem(&http, &url)?;
    // History ends a minute ago and starts `days` earlier (minus an hour, so that a range of
    // exactly `days` ending now still holds every span).
    let end_ns = traffic::now_ns() - 60 * SEC;
    let start_ns = end_ns - days * DAY + 3600 * SEC;
    let payments_per_thread =
        ((target.saturating_sub(BIG_TRACE_SPANS)) as f64 / threads as f64 / SPANS_PER_PAYMENT) as u64;
    let quota = target.saturating_sub(BIG_TRACE_SPANS) / threads;
    let resources = ["weather-api", "market-data-api", "inference-api", "news-api"];
    let facilitators = ["facilitator-us", "facilitator-eu"];
    println!(
        "load: {target} spans over {days} days ({threads} threads, each with its own 2 SDK instances), \
         one trace of {BIG_TRACE_SPANS} spans"
    );
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (url, key, pem, progress) = (url.clone(), key.clone(), pem.clone(), progress.clone());
            let res = resources[t as usize % resources.len()];
            let fac = facilitators[t as usize % facilitators.len()];
            std::thread::spawn(move || -> Res<(u64, u64, u64)> {
                let resource = tracer(&url, &key, &pem, res)?;
                let facilitator = tracer(&url, &key, &pem, fac)?;
                let mut rng = traffic::Rng::seeded();
                let step = (end_ns - start_ns) as f64 / payments_per_thread.max(1) as f64;
                let mut i = 0u64;
                let mut last = 0u64;
                loop {
                    let recorded = resource.stats().spans_recorded + facilitator.stats().spans_recorded;
                    if recorded >= quota {
                        break;
                    }
                    progress.fetch_add(recorded - last, Ordering::Relaxed);
                    last = recorded;
                    // Each thread walks through the whole history in time order, as live traffic
                    // arrives; payments of different threads interleave.
                    let end = (start_ns + (i as f64 * step) as u64 + t * 7_919_000).min(end_ns);
                    traffic::payment(&resource, &facilitator, &mut rng, i * threads + t, end);
                    i += 1;
                    if i.is_multiple_of(64) {
                        pace(&resource, 8192);
                        pace(&facilitator, 8192);
                    }
                }
                let (ra, fa) =
                    (resource.shutdown(Duration::from_mins(2))?, facilitator.shutdown(Duration::from_mins(2))?);
                let (rs, fs) = (resource.stats(), facilitator.stats());
                if !ra.is_complete() || !fa.is_complete() || rs.spans_dropped + fs.spans_dropped > 0 {
                    return Err(format!(
                        "thread {t}: not all delivered: {ra:?} {fa:?}, dropped {}",
                        rs.spans_dropped + fs.spans_dropped
                    )
                    .into());
                }
                Ok((rs.spans_sent + fs.spans_sent, rs.batches_sent + fs.batches_sent, i))
            })
        })
        .collect();
    let reporter = {
        let progress = progress.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let h = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut next = Duration::from_secs(15);
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if t0.elapsed() >= next {
                    next += Duration::from_secs(15);
                    let n = progress.load(Ordering::Relaxed);
                    eprintln!(
                        "  load: {n} spans recorded after {:.0} s ({:.0} spans/s)",
                        t0.elapsed().as_secs_f64(),
                        n as f64 / t0.elapsed().as_secs_f64()
                    );
                }
            }
        });
        (done, h)
    };
    let (mut sent, mut batches, mut payments) = (0, 0, 0);
    for h in handles {
        let (s, b, p) = h.join().map_err(|_| "a load thread panicked")??;
        sent += s;
        batches += b;
        payments += p;
    }
    reporter.0.store(true, Ordering::Relaxed);
    let _ = reporter.1.join();

    // The big trace, an hour before the end of history.
    let treasury = tracer(&url, &key, &pem, "treasury-settler")?;
    let t0 = end_ns - 3600 * SEC;
    let mut root = treasury
        .span_builder("settle-batch")
        .kind(SpanKind::Internal)
        .root()
        .start_time(t0)
        .attribute("x402.batch_size", 99i64)
        .start();
    let root_cx = root.context().clone();
    let big_trace_id = root_cx.trace_id.to_hex();
    let mut t = t0 + SEC / 1000;
    for p in 0..99u64 {
        let mut settle = treasury
            .span_builder("settle")
            .kind(SpanKind::Internal)
            .child_of(root_cx.clone())
            .start_time(t)
            .attributes([
                KeyValue::new("x402.network", ["base", "polygon", "avalanche"][p as usize % 3]),
                KeyValue::new("x402.amount", (10_000 + p * 17).to_string()),
            ])
            .start();
        let cx = settle.context().clone();
        for r in 0..100u64 {
            let name = if r % 10 == 9 { "eth_getTransactionReceipt" } else { "eth_call" };
            let d = 2_000_000 + (p * 7 + r * 13) % 40 * 1_000_000;
            let mut rpc = treasury
                .span_builder(name)
                .kind(SpanKind::Client)
                .child_of(cx.clone())
                .start_time(t)
                .attribute("rpc.system", "jsonrpc")
                .start();
            if (p + r) % 97 == 0 {
                rpc.set_status(Status::error("upstream timeout"));
            }
            rpc.end_at(t + d);
            t += d + 100_000;
        }
        settle.set_status(Status::ok());
        settle.end_at(t);
        t += 1_000_000;
        pace(&treasury, 8192);
    }
    root.set_status(Status::ok());
    root.end_at(t);
    let rep = treasury.shutdown(Duration::from_mins(1))?;
    let ts = treasury.stats();
    if !rep.is_complete() || ts.spans_sent != BIG_TRACE_SPANS {
        return Err(format!("big trace: {} of {BIG_TRACE_SPANS} spans delivered: {rep:?}", ts.spans_sent).into());
    }
    sent += ts.spans_sent;
    batches += ts.batches_sent;
    let seconds = started.elapsed().as_secs_f64();

    // Every acknowledged span is stored: the statistics count what each commit stored.
    let stats = api(
        &http,
        &url,
        &read_key,
        &format!("/stats?from={}&to={}&step=86400", end_ns - days * DAY, end_ns + 3600 * SEC),
    )?;
    let stored: u64 =
        stats["groups"].as_array().map_or(0, |g| g.iter().map(|g| g["total"]["count"].as_u64().unwrap_or(0)).sum());
    // The big trace is there (a 404 is an error).
    api(&http, &url, &read_key, &format!("/traces/{big_trace_id}?limit=1"))?;
    println!(
        "load: {sent} spans ({payments} payments + the big trace) acknowledged in {batches} batches, {seconds:.1} s: {:.0} spans/s; \
         {stored} counted by /api/v1/stats",
        sent as f64 / seconds
    );
    if stored != sent {
        return Err(format!("{sent} spans acknowledged but {stored} counted by the statistics").into());
    }
    // A few small traces for the browser script to flip to between renders of the big one.
    let small = api(&http, &url, &read_key, &format!("/traces?limit=5&service=facilitator-us&to={end_ns}"))?;
    let small: Vec<J> =
        small["traces"].as_array().cloned().unwrap_or_default().iter().map(|t| t["trace_id"].clone()).collect();
    let meta = json!({
        "spans": sent, "payments": payments, "batches": batches, "load_seconds": seconds,
        "load_spans_per_second": sent as f64 / seconds, "start_ns": start_ns.to_string(), "end_ns": end_ns.to_string(),
        "days": days, "big_trace_id": big_trace_id, "small_trace_ids": small,
        "services": resources.iter().chain(facilitators.iter()).collect::<Vec<_>>(),
        "loaded_at": traffic::now_ns().to_string(),
    });
    write_json(&meta_path, &meta)
}

// === query ===

struct Timings {
    kinds: Vec<(String, Vec<f64>)>,
}

impl Timings {
    fn add(&mut self, kind: &str, ms: f64) {
        if let Some((_, v)) = self.kinds.iter_mut().find(|(k, _)| k == kind) {
            v.push(ms);
        } else {
            self.kinds.push((kind.to_owned(), vec![ms]));
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank: the smallest value with at least p of the samples at or under it.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(v: &[f64]) -> J {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    json!({"n": s.len(), "p50": pct(&s, 0.5), "p95": pct(&s, 0.95), "p99": pct(&s, 0.99), "max": s.last().copied().unwrap_or(f64::NAN),
           "mean": s.iter().sum::<f64>() / s.len().max(1) as f64})
}

fn query(a: &Args) -> Res<()> {
    let (url, key, meta_path, out) = (a.s("url")?, a.s("read-key")?, a.s("meta")?, a.s("out")?);
    let runs = a.n("runs", 50)?;
    let meta: J = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
    let end: u64 = meta["end_ns"].as_str().unwrap_or("0").parse()?;
    let days = meta["days"].as_u64().unwrap_or(30);
    let big = meta["big_trace_id"].as_str().unwrap_or_default().to_owned();
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_mins(2)).build()?;
    // xorshift64: which filter values and windows to query, nothing secret.
    let mut state = traffic::now_ns() | 1;
    let mut pick = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let services = ["weather-api", "market-data-api", "inference-api", "news-api", "facilitator-us", "facilitator-eu"];
    let fac = ["facilitator-us", "facilitator-eu"];
    let res = ["weather-api", "market-data-api", "inference-api", "news-api"];
    let networks = ["base", "base-sepolia", "avalanche", "polygon"];
    let errors = [
        "invalid_signature",
        "authorization_expired",
        "insufficient_balance",
        "insufficient_funds_for_gas",
        "transaction_reverted",
        "rpc_timeout",
    ];
    let fac_names = [
        "POST /verify",
        "POST /settle",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
        "eip3009.verify_signature",
    ];
    let span = days * DAY;
    let mut t = Timings { kinds: Vec::new() };
    let mut answers: HashMap<String, (u64, u64)> = HashMap::new(); // kind → (answers with traces, answers)
    let mut sizes: HashMap<String, usize> = HashMap::new(); // kind → bytes of its last answer
    let mut timed = |t: &mut Timings, kind: &str, path: &str| -> Res<J> {
        let started = Instant::now();
        let r = http.get(format!("{url}/api/v1{path}")).bearer_auth(&key).send()?;
        let status = r.status();
        let body = r.bytes()?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        t.add(kind, ms);
        sizes.insert(kind.to_owned(), body.len());
        let v: J = serde_json::from_slice(&body)?;
        if let Some(tr) = v["traces"].as_array() {
            let e = answers.entry(kind.to_owned()).or_default();
            e.0 += u64::from(!tr.is_empty());
            e.1 += 1;
        }
        Ok(v)
    };
    // A window of `len` ending at a random point of the history (the newest hour more often, as
    // people look at the recent past most).
    let window = |len: u64, rng_pick: &mut dyn FnMut(usize) -> usize| -> (u64, u64) {
        let slots = (span.saturating_sub(len) / (5 * 60 * SEC)).max(1);
        let back = if rng_pick(3) == 0 { 0 } else { rng_pick(slots as usize) as u64 * 5 * 60 * SEC };
        let to = end - back;
        (to - len, to)
    };
    // Warm-up: the page cache and the collector's connections (not counted).
    for _ in 0..3 {
        let _ = api(&http, &url, &key, &format!("/traces?from={}&to={end}", end - 3600 * SEC));
        let _ = api(&http, &url, &key, &format!("/stats?service=facilitator-us&from={}&to={end}", end - DAY));
    }
    println!("query: {runs} runs per kind against {} spans", meta["spans"]);
    for _ in 0..runs {
        let s = services[pick(services.len())];
        let f = fac[pick(2)];
        let (from, to) = window(3600 * SEC, &mut pick);
        timed(&mut t, "search: service, last/any 1 h", &format!("/traces?service={s}&from={from}&to={to}"))?;
        let (from, to) = window(DAY, &mut pick);
        let n = fac_names[pick(fac_names.len())].replace(' ', "%20").replace('/', "%2F");
        timed(&mut t, "search: service + name, 24 h", &format!("/traces?service={f}&name={n}&from={from}&to={to}"))?;
        let (from, to) = window(DAY, &mut pick);
        timed(&mut t, "search: status=error, 24 h", &format!("/traces?status=error&from={from}&to={to}"))?;
        let (from, to) = window(DAY, &mut pick);
        let min = 500 + pick(2000);
        timed(
            &mut t,
            "search: service + min duration, 24 h",
            &format!("/traces?service={f}&min_duration_ms={min}&from={from}&to={to}"),
        )?;
        let (from, to) = window(DAY, &mut pick);
        let net = networks[pick(networks.len())];
        timed(
            &mut t,
            "search: attr x402.network, 24 h",
            &format!("/traces?attr.x402.network={net}&from={from}&to={to}"),
        )?;
        let (from, to) = window(7 * DAY, &mut pick);
        let e = errors[pick(errors.len())];
        timed(&mut t, "search: attr x402.error, 7 d", &format!("/traces?attr.x402.error={e}&from={from}&to={to}"))?;
        let r = res[pick(res.len())];
        let net = networks[pick(networks.len())];
        timed(
            &mut t,
            "search: service + status=error + attr + max duration, 30 d",
            &format!(
                "/traces?service={r}&status=error&attr.x402.network={net}&max_duration_ms=2000&from={}&to={end}",
                end - span
            ),
        )?;
        timed(&mut t, "search: no filter, newest", "/traces")?;
    }
    for _ in 0..runs {
        let s = services[pick(services.len())];
        let (from, to) = window(DAY, &mut pick);
        timed(
            &mut t,
            "stats: 24 h, one service by span name",
            &format!("/stats?service={s}&from={from}&to={to}&sla_ms=500"),
        )?;
    }
    for _ in 0..runs {
        let s = services[pick(services.len())];
        timed(
            &mut t,
            "stats: 30 d, one service by span name",
            &format!("/stats?service={s}&from={}&to={end}&sla_ms=500", end - span),
        )?;
        timed(&mut t, "stats: 30 d, every service", &format!("/stats?from={}&to={end}&sla_ms=500", end - span))?;
        let net = if pick(2) == 0 { "" } else { "&group_by=x402.network" };
        let f = fac[pick(2)];
        timed(
            &mut t,
            "stats: 30 d, one service, by x402.network",
            &format!("/stats?service={f}&name=POST%20%2Fsettle{net}&from={}&to={end}&sla_ms=500", end - span),
        )?;
    }
    // The 10,000-span trace in both shapes, alternating: its resources shared (what the dashboard
    // asks for) and inline in every span (the default).
    for _ in 0..runs {
        for (kind, query) in [
            ("trace: the 10,000-span trace, resources=shared", "?resources=shared"),
            ("trace: the 10,000-span trace, resources inline", ""),
        ] {
            let v = timed(&mut t, kind, &format!("/traces/{big}{query}"))?;
            let spans = v["spans"].as_array().map_or(0, Vec::len);
            if spans != BIG_TRACE_SPANS as usize {
                return Err(format!("the big trace answered {spans} spans ({kind})").into());
            }
        }
    }
    let mut all_search = Vec::new();
    let mut results = serde_json::Map::new();
    println!("{:<62} {:>5} {:>9} {:>9} {:>9}", "query", "runs", "p50 ms", "p95 ms", "max ms");
    for (kind, v) in &t.kinds {
        if kind.starts_with("search") {
            all_search.extend_from_slice(v);
        }
        let s = summary(v);
        let hits = answers.get(kind).map(|(h, n)| format!("  ({h}/{n} answers held traces)")).unwrap_or_default();
        // The trace's answer is the same every run: its size is part of the result.
        let bytes = sizes.get(kind).filter(|_| kind.starts_with("trace:"));
        println!(
            "{kind:<62} {:>5} {:>9.1} {:>9.1} {:>9.1}{hits}{}",
            v.len(),
            s["p50"].as_f64().unwrap_or(0.0),
            s["p95"].as_f64().unwrap_or(0.0),
            s["max"].as_f64().unwrap_or(0.0),
            bytes.map(|b| format!("  ({b} bytes)")).unwrap_or_default()
        );
        let mut s = s;
        if let Some((h, n)) = answers.get(kind) {
            s["with_traces"] = json!(h);
            s["answers"] = json!(n);
        }
        if let Some(b) = bytes {
            s["bytes"] = json!(b);
        }
        results.insert(kind.clone(), s);
    }
    let s = summary(&all_search);
    println!(
        "{:<62} {:>5} {:>9.1} {:>9.1} {:>9.1}",
        "search: all of the above",
        all_search.len(),
        s["p50"].as_f64().unwrap_or(0.0),
        s["p95"].as_f64().unwrap_or(0.0),
        s["max"].as_f64().unwrap_or(0.0)
    );
    results.insert("search: all".into(), s);
    write_json(&out, &J::Object(results))
}

// === live ===

/// 512 spans of background traffic, a payment per 8 spans, starting now.
fn background_spans(n: usize, seq: u64) -> Vec<SpanData> {
    let now = traffic::now_ns();
    let mut trace_id = ids::new_trace_id();
    let mut root = ids::new_span_id();
    (0..n)
        .map(|i| {
            if i % 8 == 0 {
                trace_id = ids::new_trace_id();
                root = ids::new_span_id();
            }
            SpanData {
                trace_id,
                span_id: if i % 8 == 0 { root } else { ids::new_span_id() },
                parent_span_id: (i % 8 != 0).then_some(root),
                flags: 1,
                name: if i % 2 == 0 { "POST /verify".into() } else { "POST /settle".into() },
                kind: SpanKind::Server,
                start_time_unix_nano: now + i as u64,
                end_time_unix_nano: now + i as u64 + 2_500_000 + (i as u64 % 97) * 1_000_000,
                attributes: vec![
                    KeyValue::new("x402.scheme", "exact"),
                    KeyValue::new("x402.network", ["base", "polygon", "avalanche", "base-sepolia"][i % 4]),
                    KeyValue::new("x402.asset", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
                    KeyValue::new("x402.amount", format!("{}", 10_000 + (seq * 512 + i as u64) % 990_000)),
                    KeyValue::new("x402.attempt", 1i64),
                    KeyValue::new("http.response.status_code", 200i64),
                ],
                status: if i % 50 == 7 { Status::error("rpc_timeout") } else { Status::ok() },
                ..Default::default()
            }
        })
        .collect()
}

/// A minimal HTTP/1.1 keep-alive client for posting batches: cheap, so the CPU goes to the collector.
struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    fn connect(addr: &str) -> Res<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Self { reader: BufReader::new(s.try_clone()?), writer: s })
    }

    fn post(&mut self, addr: &str, key: &str, body: &[u8]) -> Res<(u16, String)> {
        let head = format!(
            "POST /v1/batches HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/vnd.tracex.batch.v1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse()?;
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

/// An SSE viewer of `/api/v1/live` on its own thread: reads everything as it comes (64 KiB reads),
/// counts bytes, and for a probe viewer notes when each probe span id first appears.
struct Viewer {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Res<u64>>,
}

fn open_viewer(
    addr: &str,
    key: &str,
    query: &str,
    probes: Option<Arc<Mutex<HashMap<String, Instant>>>>,
) -> Res<Viewer> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    write!(
        s,
        "GET /api/v1/live{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    // The status line, before the stream counts as open.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Err("live stream closed".into()),
            Err(_) if Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("live stream refused: {}", head.lines().next().unwrap_or_default()).into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let handle = std::thread::Builder::new().name("live-viewer".into()).spawn(move || -> Res<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut carry = String::new();
        while !st.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    if let Some(p) = &probes {
                        let now = Instant::now();
                        carry.push_str(&String::from_utf8_lossy(&buf[..n]));
                        // Probe span ids are unique hex strings: find `"span_id":"…"` anywhere.
                        let mut found = Vec::new();
                        let mut rest = carry.as_str();
                        while let Some(i) = rest.find("\"span_id\":\"") {
                            let after = &rest[i + 11..];
                            if after.len() < 17 {
                                break;
                            }
                            found.push(after[..16].to_owned());
                            rest = &after[16..];
                        }
                        let keep = rest.len().min(64);
                        carry = rest[rest.len() - keep..].to_owned();
                        let mut m = p.lock().map_err(|_| "poisoned")?;
                        for id in found {
                            m.entry(id).or_insert(now);
                        }
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(total)
    })?;
    Ok(Viewer { stop, handle })
}

fn close_viewers(v: Vec<Viewer>) -> Res<u64> {
    for x in &v {
        x.stop.store(true, Ordering::Relaxed);
    }
    let mut total = 0;
    for x in v {
        total += x.handle.join().map_err(|_| "viewer panicked")??;
    }
    Ok(total)
}

/// CPU seconds of this process's threads named `name` (Linux, 10 ms ticks).
fn thread_cpu(name: &str) -> f64 {
    let mut sum = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    for task in tasks.flatten() {
        let dir = task.path();
        if std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let s: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        sum += (u + s) / 100.0;
    }
    sum
}

/// CPU seconds of process `pid` (all threads).
fn process_cpu(pid: u64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (u + s) / 100.0
}

struct Prober {
    sealer: Sealer,
    resource: Resource,
    scope: InstrumentationScope,
}

impl Prober {
    /// One probe: a batch of a single span, its id, the time the request was sent and acknowledged.
    fn probe(&mut self, conn: &mut RawClient, addr: &str, key: &str) -> Res<(String, Instant, Instant, u64, u64)> {
        let now = traffic::now_ns();
        let span = SpanData {
            trace_id: ids::new_trace_id(),
            span_id: ids::new_span_id(),
            flags: 1,
            name: "live-probe".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: now,
            end_time_unix_nano: now + 1000,
            ..Default::default()
        };
        let id = span.span_id.to_hex();
        let (resource, scope) = (&self.resource, &self.scope);
        let body = self
            .sealer
            .seal_with(now, |out| tracex_core::encode::encode_spans(resource, scope, std::slice::from_ref(&span), out))?
            .bytes;
        let sent_unix = traffic::now_ns();
        let sent = Instant::now();
        let (status, text) = conn.post(addr, key, &body)?;
        let acked = Instant::now();
        let acked_unix = traffic::now_ns();
        if status != 200 {
            return Err(format!("probe: {status} {text}").into());
        }
        Ok((id, sent, acked, sent_unix, acked_unix))
    }
}

fn seal_batches(pem: &str, n: usize, seq0: u64) -> Res<Vec<Vec<u8>>> {
    let key = CollectorKey::from_pem(pem)?;
    let mut sealer = Sealer::new(key, SealerConfig::default())?;
    let resource = Resource::new("live-bench-facilitator");
    let scope = InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() };
    (0..n)
        .map(|i| {
            let s = background_spans(512, seq0 + i as u64);
            Ok(sealer
                .seal_with(traffic::now_ns(), |out| tracex_core::encode::encode_spans(&resource, &scope, &s, out))?
                .bytes)
        })
        .collect()
}

/// Posts `bodies` over `clients` keep-alive connections as fast as acknowledgements allow; paced
/// to `rate` batches per second when `rate` > 0. Returns (seconds, batches).
fn ingest(
    addr: &str,
    key: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    rate: f64,
    stop: Option<&Arc<AtomicBool>>,
) -> Res<(f64, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (bodies, next, addr, key, stop) =
                (bodies.clone(), next.clone(), addr.to_owned(), key.to_owned(), stop.cloned());
            std::thread::Builder::new().name("ingest-client".into()).spawn(move || -> Res<()> {
                let mut conn = RawClient::connect(&addr)?;
                loop {
                    if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                        return Ok(());
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { return Ok(()) };
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let (status, text) = conn.post(&addr, &key, body)?;
                    if status != 200 {
                        return Err(format!("ingest: {status} {text}").into());
                    }
                }
            })
        })
        .collect::<Result<_, _>>()?;
    for h in handles {
        h.join().map_err(|_| "ingest client panicked")??;
    }
    Ok((started.elapsed().as_secs_f64(), next.load(Ordering::Relaxed).min(bodies.len())))
}

fn live(a: &Args) -> Res<()> {
    let (url, key, read_key, out) = (a.s("url")?, a.s("ingest-key")?, a.s("read-key")?, a.s("out")?);
    let probes_path = a.0.get("probes").cloned();
    let viewers_n = a.n("viewers", 50)? as usize;
    let phase_batches = a.n("phase-batches", 400)? as usize;
    let rounds = a.n("rounds", 2)? as usize;
    let clients = a.n("clients", 64)? as usize;
    let lag_seconds = a.n("lag-seconds", 30)?;
    let lag_rate = a.n("lag-rate", 20_000)? as f64; // background spans per second during the lag phase
    let collector_pid = a.n("collector-pid", 0)?;
    let addr = url.trim_start_matches("http://").to_owned();
    let http = reqwest::blocking::Client::new();
    let pem = public_key_pem(&http, &url)?;
    let mut results = serde_json::Map::new();

    // --- Ingest throughput: none vs `viewers_n` viewers, alternating, fresh batches each phase.
    println!(
        "live: ingest throughput, {rounds} rounds of [no viewer, {viewers_n} viewers], {phase_batches} batches of 512 spans per phase, {clients} connections"
    );
    let mut table: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut seq = 0u64;
    let mut per_mode: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        for mode in ["none", "viewers"] {
            let bodies = Arc::new(seal_batches(&pem, phase_batches, seq)?);
            seq += phase_batches as u64;
            let viewers = if mode == "viewers" {
                (0..viewers_n).map(|_| open_viewer(&addr, &read_key, "", None)).collect::<Res<Vec<_>>>()?
            } else {
                Vec::new()
            };
            std::thread::sleep(Duration::from_millis(300));
            let (cpu_c0, cpu_v0) = (process_cpu(collector_pid), thread_cpu("live-viewer"));
            let (secs, n) = ingest(&addr, &key, &bodies, clients, 0.0, None)?;
            let (cpu_c, cpu_v) = (process_cpu(collector_pid) - cpu_c0, thread_cpu("live-viewer") - cpu_v0);
            let bytes = close_viewers(viewers)?;
            let rate = (n * 512) as f64 / secs;
            per_mode.entry(mode).or_default().push(rate);
            let label = if mode == "none" { "no viewer".to_owned() } else { format!("{viewers_n} viewers") };
            println!(
                "  round {}: {label:<11} {rate:>9.0} spans/s ({} spans in {secs:.2} s); collector CPU {cpu_c:.1} s, viewers' reading CPU {cpu_v:.1} s, {:.0} MB streamed to viewers",
                round + 1,
                n * 512,
                bytes as f64 / 1e6
            );
            table.push((label, rate, cpu_c, cpu_v));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (none, with) = (mean(&per_mode["none"]), mean(&per_mode["viewers"]));
    println!("  mean: no viewer {none:.0} spans/s, {viewers_n} viewers {with:.0} spans/s: ratio {:.3}", with / none);
    results.insert(
        "throughput".into(),
        json!({"none": per_mode["none"], "viewers": per_mode["viewers"], "viewers_n": viewers_n, "mean_none": none, "mean_viewers": with,
               "ratio": with / none, "phases": table.iter().map(|(l, r, c, v)| json!({"phase": l, "spans_per_s": r, "collector_cpu_s": c, "viewer_cpu_s": v})).collect::<Vec<_>>()}),
    );

    // --- Lag: probes every 100 ms for `lag_seconds` while background ingest runs at `lag_rate`
    // spans/s; once with no other viewer, once with `viewers_n` unfiltered viewers reading; one more
    // viewer (here) filtered to the probes, and the browser's Live page (same filter) beside it.
    let mut log = Vec::new();
    let mut lag = Vec::new();
    for others in [0, viewers_n] {
        println!(
            "live: lag, a probe every 100 ms for {lag_seconds} s, background ingest {lag_rate:.0} spans/s, {others} other viewers reading everything"
        );
        let probe_seen = Arc::new(Mutex::new(HashMap::new()));
        let probe_viewer = open_viewer(&addr, &read_key, "?name=live-probe", Some(probe_seen.clone()))?;
        let viewers = (0..others).map(|_| open_viewer(&addr, &read_key, "", None)).collect::<Res<Vec<_>>>()?;
        let batches_needed = (lag_rate / 512.0 * lag_seconds as f64).ceil() as usize + 8;
        let bodies = Arc::new(seal_batches(&pem, batches_needed, seq)?);
        seq += batches_needed as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let bg = {
            let (addr, key, stop) = (addr.clone(), key.clone(), stop.clone());
            std::thread::spawn(move || ingest(&addr, &key, &bodies, 8, lag_rate / 512.0, Some(&stop)))
        };
        let mut prober = Prober {
            sealer: Sealer::new(CollectorKey::from_pem(&pem)?, SealerConfig::default())?,
            resource: Resource::new("live-probe"),
            scope: InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() },
        };
        let mut conn = RawClient::connect(&addr)?;
        let mut sent = Vec::new();
        let t0 = Instant::now();
        let mut k = 0u32;
        while t0.elapsed() < Duration::from_secs(lag_seconds) {
            let due = t0 + Duration::from_millis(100) * k;
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            sent.push(prober.probe(&mut conn, &addr, &key)?);
            k += 1;
        }
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let _ = bg.join().map_err(|_| "background ingest panicked")??;
        close_viewers(viewers)?;
        close_viewers(vec![probe_viewer])?;
        let seen = probe_seen.lock().map_err(|_| "poisoned")?.clone();
        let (mut upper, mut lower, mut ack) = (Vec::new(), Vec::new(), Vec::new());
        let mut missing = 0;
        for (id, s, a, su, au) in &sent {
            ack.push((*a - *s).as_secs_f64() * 1e3);
            log.push(json!({"span_id": id, "viewers": others, "sent_unix_ms": *su as f64 / 1e6, "acked_unix_ms": *au as f64 / 1e6}));
            match seen.get(id) {
                Some(at) => {
                    upper.push(at.saturating_duration_since(*s).as_secs_f64() * 1e3);
                    lower.push(if *at >= *a {
                        (*at - *a).as_secs_f64() * 1e3
                    } else {
                        -((*a - *at).as_secs_f64() * 1e3)
                    });
                }
                None => missing += 1,
            }
        }
        let (su, sl, sa) = (summary(&upper), summary(&lower), summary(&ack));
        let g = |v: &J, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "  SSE client: {} probes, {missing} not seen; lag from send p50 {:.1} p99 {:.1} max {:.1} ms; from ack p50 {:.1} p99 {:.1} max {:.1} ms; probe ack p50 {:.1} p99 {:.1} ms",
            sent.len(),
            g(&su, "p50"),
            g(&su, "p99"),
            g(&su, "max"),
            g(&sl, "p50"),
            g(&sl, "p99"),
            g(&sl, "max"),
            g(&sa, "p50"),
            g(&sa, "p99"),
        );
        lag.push(json!({"viewers": others, "probes": sent.len(), "missing": missing, "from_send": su, "from_ack": sl, "ack": sa, "background_spans_per_s": lag_rate}));
    }
    results.insert("lag_sse".into(), J::Array(lag));
    if let Some(p) = probes_path {
        write_json(&p, &J::Array(log))?;
    }
    write_json(&out, &J::Object(results))
}
