//! A demo x402 facilitator that traces realistic payment traffic with tracex.
//!
//! Each payment is one trace: the resource server's `POST /resource` around the facilitator's
//! `POST /verify` (≈ 20–80 ms, signature check inside) and `POST /settle` (≈ 0.3–3 s: an
//! `eth_sendRawTransaction` RPC, retried now and then, and the wait for the receipt). A few percent
//! fail with an `x402.error` reason; payments spread over several networks, each with its own
//! latency. Spans carry explicit start and end times, so the demo never sleeps to look realistic:
//! `--spread-s` lays the payments out over the last S seconds (history for charts), and without it
//! each payment ends at the moment it is recorded.
//!
//! With an endpoint (`TRACEX_ENDPOINT`, `TRACEX_API_KEY`, `TRACEX_COLLECTOR_PUBLIC_KEY` or
//! `TRACEX_COLLECTOR_FINGERPRINT`) it sends sealed batches to the collector; without one it seals the
//! spans itself and writes the sealed batches to `--out` (default `./demo-batches/`), which shows what
//! leaves the process: ciphertext only.
//!
//! ```text
//! cargo run -p tracex-example-rust -- --requests 200
//! cargo run -p tracex-example-rust -- --requests 2000 --spread-s 3600   # an hour of history at once
//! cargo run -p tracex-example-rust -- --requests 200 --out ./sealed     # no collector needed
//! cargo run -p tracex-example-rust -- --rate 50000 --duration-s 600     # scripts/soak.sh's load
//! ```
#![allow(clippy::print_stdout)]

mod traffic;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracex_core::Tracer;

struct Args {
    requests: u64,
    out: Option<PathBuf>,
    interval_ms: u64,
    spread_s: u64,
    public_key: Option<PathBuf>,
    /// Spans per second (both services together), paced against the clock; 0: as fast as the
    /// payments are made (with `--interval-ms` between them).
    rate: u64,
    /// With `--rate`: run this long instead of `--requests` payments; 0: `--requests` decides.
    duration_s: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args =
        Args { requests: 100, out: None, interval_ms: 0, spread_s: 0, public_key: None, rate: 0, duration_s: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--requests" => args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--interval-ms" => args.interval_ms = value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?,
            "--spread-s" => args.spread_s = value()?.parse().map_err(|e| format!("--spread-s: {e}"))?,
            "--rate" => args.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--duration-s" => args.duration_s = value()?.parse().map_err(|e| format!("--duration-s: {e}"))?,
            "--out" => args.out = Some(PathBuf::from(value()?)),
            "--public-key" => args.public_key = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "usage: tracex-demo [--requests N] [--interval-ms MS] [--rate SPANS_PER_S [--duration-s S]] \
                     [--spread-s S] [--out DIR] [--public-key PEM_FILE]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
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
    // The paid API in front of the facilitator: a second service in the same traces.
    let mut resource =
        Tracer::builder().with_service_name("demo-resource-server").with_service_version(env!("CARGO_PKG_VERSION"));
    if let Some(path) = &args.public_key {
        resource = resource.with_collector_public_key_pem(std::fs::read_to_string(path)?);
    }
    let resource = resource.build()?;

    let mut rng = traffic::Rng::seeded();
    let spread_ns = args.spread_s.saturating_mul(1_000_000_000);
    let start = traffic::now_ns().saturating_sub(spread_ns);
    let began = Instant::now();
    let until = (args.rate > 0 && args.duration_s > 0).then(|| began + Duration::from_secs(args.duration_s));
    let mut spans = 0u64;
    let mut i = 0u64;
    while until.map_or(i < args.requests, |t| Instant::now() < t) {
        // Spread: payment i ends at its slot in the window; otherwise it ends now.
        let end = if spread_ns > 0 { start + spread_ns / args.requests.max(1) * (i + 1) } else { traffic::now_ns() };
        spans += traffic::payment(&resource, &tracer, &mut rng, i, end);
        i += 1;
        if args.rate > 0 {
            // Paced against the start, not per payment, so a sleep that overshoots (Linux's timer
            // slack is 50 µs by default) is made up by the next payments; sleeping only when 1 ms
            // ahead makes one sleep per ≈ 50 spans at 50,000 spans/s.
            #[allow(clippy::cast_precision_loss)]
            let due = Duration::from_secs_f64(spans as f64 / args.rate as f64);
            let ahead = due.saturating_sub(began.elapsed());
            if ahead >= Duration::from_millis(1) {
                std::thread::sleep(ahead);
            }
        } else if args.interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    let elapsed = began.elapsed();
    #[allow(clippy::cast_precision_loss)]
    let achieved = spans as f64 / elapsed.as_secs_f64().max(1e-9);
    println!("ended {spans} spans in {i} payments over {:.1} s: {achieved:.0} spans/s", elapsed.as_secs_f64());

    if manual {
        // The sealed batches of the facilitator only: enough to show what leaves the process.
        drop(resource);
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
        // Both services' totals: scripts/soak.sh compares this line with what the collector stored.
        let (ra, rb) = (resource.shutdown(Duration::from_secs(10))?, tracer.shutdown(Duration::from_secs(10))?);
        let (sa, sb) = (resource.stats(), tracer.stats());
        let (delivered, spooled, failed, pending) = (
            sa.spans_sent + sb.spans_sent,
            ra.spans_spooled + rb.spans_spooled,
            ra.spans_failed + rb.spans_failed,
            ra.spans_pending + rb.spans_pending,
        );
        println!(
            "delivered {delivered} spans in {} batches; at shutdown: {spooled} spooled, {failed} failed, {pending} pending",
            sa.batches_sent + sb.batches_sent,
        );
        // Every span ended is accounted for: delivered, dropped when the buffer was full, or left in
        // the spool / failed / pending at shutdown (scripts/soak.sh checks the sum).
        println!(
            "totals: recorded {} dropped {} delivered {delivered} spooled {spooled} failed {failed} pending {pending}",
            sa.spans_recorded + sb.spans_recorded,
            sa.spans_dropped + sb.spans_dropped,
        );
    }
    let s = tracer.stats();
    println!(
        "stats: recorded {} sealed {} in {} batches, {} values redacted, {} dropped",
        s.spans_recorded, s.spans_sealed, s.batches_sealed, s.values_redacted, s.spans_dropped
    );
    Ok(())
}
