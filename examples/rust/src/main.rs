//! A demo x402 facilitator that traces verify/settle requests with tracex.
//!
//! With an endpoint (`TRACEX_ENDPOINT`, `TRACEX_API_KEY`, `TRACEX_COLLECTOR_PUBLIC_KEY` or
//! `TRACEX_COLLECTOR_FINGERPRINT`) it sends sealed batches to the collector; without one it seals the
//! spans itself and writes the sealed batches to `--out` (default `./demo-batches/`), which shows what
//! leaves the process: ciphertext only.
//!
//! ```text
//! cargo run -p tracex-example-rust -- --requests 200
//! cargo run -p tracex-example-rust -- --requests 200 --out ./sealed   # no collector needed
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use tracex_core::{KeyValue, SpanContext, SpanKind, Status, Tracer};

const NETWORKS: [&str; 3] = ["base", "base-sepolia", "avalanche"];
const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

struct Args {
    requests: u64,
    out: Option<PathBuf>,
    interval_ms: u64,
    public_key: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { requests: 100, out: None, interval_ms: 0, public_key: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--requests" => args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--interval-ms" => args.interval_ms = value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?,
            "--out" => args.out = Some(PathBuf::from(value()?)),
            "--public-key" => args.public_key = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("usage: tracex-demo [--requests N] [--interval-ms MS] [--out DIR] [--public-key PEM_FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// One request through the facilitator: verify, then settle with an RPC child span and a retry now
/// and then; every tenth settle fails.
fn handle(tracer: &Tracer, i: u64, incoming: Option<&SpanContext>) {
    let network = NETWORKS[(i % 3) as usize];
    let amount = (10_000 + (i * 7919) % 990_000).to_string();
    let payer = format!("0x{:040x}", 0x857b_0651_9e91u64.wrapping_mul(i + 1));

    let mut builder = tracer.span_builder("POST /verify").kind(SpanKind::Server);
    if let Some(cx) = incoming {
        builder = builder.child_of(cx.clone());
    }
    let mut verify = builder.start();
    verify.set_attributes([
        KeyValue::new("x402.phase", "verify"),
        KeyValue::new("x402.scheme", "exact"),
        KeyValue::new("x402.network", network),
        KeyValue::new("x402.asset", USDC_BASE),
        KeyValue::new("x402.amount", amount.clone()),
        KeyValue::new("x402.payer", payer.clone()),
        // Secrets like these never leave the process: redaction masks them before sealing.
        KeyValue::new("http.request.header.authorization", "Bearer sk_live_51HxYzDemoDemoDemoDemo"),
    ]);
    {
        let _in_verify = verify.enter();
        tracer.span("eip3009.verify_signature").set_attribute("x402.network", network);
    }
    verify.set_status(Status::ok());
    let traceparent = verify.traceparent();
    verify.end();

    let parent = SpanContext::from_traceparent(&traceparent, None).ok();
    let mut settle = tracer.span_builder("POST /settle").kind(SpanKind::Server).parent(match parent {
        Some(cx) => tracex_core::Parent::Context(cx),
        None => tracex_core::Parent::Root,
    });
    settle =
        settle.attribute("x402.phase", "settle").attribute("x402.network", network).attribute("x402.amount", amount);
    let mut settle = settle.start();
    let _in_settle = settle.enter();
    let attempts = if i.is_multiple_of(5) { 2 } else { 1 };
    for attempt in 1..=attempts {
        let mut rpc = tracer.span_builder("eth_sendRawTransaction").kind(SpanKind::Client).start();
        rpc.set_attribute("x402.attempt", i64::from(attempt)).set_attribute("rpc.system", "jsonrpc");
        if attempt < attempts {
            rpc.set_status(Status::error("nonce too low"));
            settle.add_event("retry", vec![KeyValue::new("x402.attempt", i64::from(attempt + 1))]);
        }
    }
    settle.set_attribute("x402.attempt", i64::from(attempts));
    if i % 10 == 9 {
        settle.record_error(&std::io::Error::other("insufficient funds for gas"));
    } else {
        settle.set_attribute("x402.tx_hash", format!("0x{:064x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        settle.set_status(Status::ok());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let mut builder = Tracer::builder()
        .with_service_name(std::env::var("TRACEX_SERVICE_NAME").unwrap_or_else(|_| "demo-facilitator".into()))
        .with_service_version(env!("CARGO_PKG_VERSION"))
        .with_operator_role("facilitator")
        .with_operator_id("demo-1");
    if let Some(path) = &args.public_key {
        builder = builder.with_collector_public_key_pem(std::fs::read_to_string(path)?);
    }
    let manual = std::env::var("TRACEX_ENDPOINT").is_err();
    let tracer = builder.build()?;

    for i in 0..args.requests {
        handle(&tracer, i, None);
        if args.interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }

    if manual {
        let dir = args.out.unwrap_or_else(|| PathBuf::from("demo-batches"));
        std::fs::create_dir_all(&dir)?;
        let batches = tracer.collect_sealed(true)?;
        for b in &batches {
            let path = dir.join(format!("batch-{:06}.trxb", b.sequence));
            std::fs::write(&path, &b.bytes)?;
            // Written out instead of sent: reported to the core's delivery accounting as delivered.
            let mut progress = tracex_core::delivery::Progress::default();
            let delivered = tracex_core::transport::SendOutcome::Delivered;
            tracer.after_attempt(b, &mut progress, &delivered, Duration::ZERO, Duration::ZERO, None);
            println!("sealed {} spans into {} ({} bytes)", b.span_count, path.display(), b.bytes.len());
        }
        println!("collector key {}: only its private key opens these batches", tracer.collector_key_id());
    } else {
        let report = tracer.shutdown(Duration::from_secs(10))?;
        let s = tracer.stats();
        println!(
            "delivered {} spans in {} batches; at shutdown: {} spooled, {} failed, {} pending",
            s.spans_sent, s.batches_sent, report.spans_spooled, report.spans_failed, report.spans_pending
        );
    }
    let s = tracer.stats();
    println!(
        "stats: recorded {} sealed {} in {} batches, {} values redacted, {} dropped",
        s.spans_recorded, s.spans_sealed, s.batches_sealed, s.values_redacted, s.spans_dropped
    );
    Ok(())
}
