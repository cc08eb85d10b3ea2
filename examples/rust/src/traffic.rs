//! One x402 payment as spans with explicit times: the shape and the numbers of real traffic
//! (latencies per network, retries, error reasons), computed instead of slept.

use tracex_core::{KeyValue, SpanContext, SpanKind, Status, Tracer};

const MS: u64 = 1_000_000;
const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

/// (network, share of traffic in %, settle latency factor): L2s settle fast, others slower.
const NETWORKS: [(&str, u64, f64); 4] =
    [("base", 50, 1.0), ("base-sepolia", 20, 0.8), ("avalanche", 15, 1.15), ("polygon", 15, 1.3)];
const VERIFY_ERRORS: [&str; 3] = ["invalid_signature", "authorization_expired", "insufficient_balance"];
const SETTLE_ERRORS: [&str; 3] = ["insufficient_funds_for_gas", "transaction_reverted", "rpc_timeout"];

/// Now, unix nanoseconds.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// xorshift64*: demo numbers only (latencies, outcomes), nothing secret; seeded from the clock so
/// that two runs differ.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock.
    pub fn seeded() -> Self {
        Self(now_ns() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next() >> 11) as f64;
        x / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi) milliseconds, as nanoseconds; skewed towards `lo` (most requests are
    /// fast, a few are slow) by squaring.
    fn ms(&mut self, lo: f64, hi: f64) -> u64 {
        let u = self.unit();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ns = ((lo + (hi - lo) * u * u) * 1e6) as u64;
        ns
    }

    fn chance(&mut self, percent: f64) -> bool {
        self.unit() * 100.0 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.next() % items.len() as u64) as usize;
        items[i]
    }
}

fn network(rng: &mut Rng) -> (&'static str, f64) {
    let mut roll = rng.next() % 100;
    for (name, share, factor) in NETWORKS {
        if roll < share {
            return (name, factor);
        }
        roll -= share;
    }
    ("base", 1.0)
}

fn fail(span: &mut tracex_core::Span<'_>, at: u64, reason: &str, message: &str) {
    span.set_attribute("x402.error", reason.to_owned());
    span.add_event_at(
        "exception",
        at,
        vec![
            KeyValue::new("exception.type", "FacilitatorError"),
            KeyValue::new("exception.message", message.to_owned()),
            KeyValue::new(
                "exception.stacktrace",
                format!(
                    "FacilitatorError: {message}\n    at settle::submit (facilitator/src/settle.rs:88)\n    at handlers::settle (facilitator/src/handlers.rs:41)"
                ),
            ),
        ],
    );
    span.set_status(Status::error(message.to_owned()));
}

/// One payment ending at `end` (unix ns): the resource server's span (`resource`, its own service)
/// around the facilitator's (`tracer`), all ended with explicit times. Returns the spans it ended
/// (3 for a payment rejected at verify, 6 or 7 otherwise), which `--rate` paces by.
pub fn payment(resource: &Tracer, tracer: &Tracer, rng: &mut Rng, i: u64, end: u64) -> u64 {
    let (network, slow) = network(rng);
    let amount = (10_000 + (i * 7919) % 990_000).to_string();
    let payer = format!("0x{:040x}", 0x857b_0651_9e91u64.wrapping_mul(i + 1));

    // Work out the durations first, then lay the spans out backwards from `end`.
    let verify_ns = rng.ms(20.0, 80.0);
    let verify_fails = rng.chance(2.0);
    let retry = !verify_fails && rng.chance(8.0);
    let first_rpc_ns = rng.ms(40.0, 250.0);
    let rpc_ns = rng.ms(40.0, 200.0);
    // With the slowest network, settle stays within ≈ 0.3–3 s (retry and RPCs included).
    let receipt_ns = rng.ms(200.0 * slow, 1900.0 * slow);
    let settle_ns =
        if verify_fails { 0 } else { (if retry { first_rpc_ns } else { 0 }) + rpc_ns + receipt_ns + 3 * MS };
    let settle_fails = !verify_fails && rng.chance(3.0);
    let total = 2 * MS + verify_ns + MS + settle_ns + 2 * MS;
    let t0 = end.saturating_sub(total);

    let mut root = resource
        .span_builder("POST /resource")
        .kind(SpanKind::Server)
        .root()
        .start_time(t0)
        .attribute("http.request.method", "POST")
        .attribute("x402.network", network)
        .start();
    let root_cx: SpanContext = root.context().clone();

    let v0 = t0 + 2 * MS;
    let mut verify = tracer
        .span_builder("POST /verify")
        .kind(SpanKind::Server)
        .child_of(root_cx.clone())
        .start_time(v0)
        .attributes([
            KeyValue::new("x402.phase", "verify"),
            KeyValue::new("x402.scheme", "exact"),
            KeyValue::new("x402.network", network),
            KeyValue::new("x402.asset", USDC_BASE),
            KeyValue::new("x402.amount", amount.clone()),
            KeyValue::new("x402.payer", payer),
            // Secrets like this never leave the process: redaction masks them before sealing.
            KeyValue::new("http.request.header.authorization", "Bearer sk_live_51HxYzDemoDemoDemoDemo"),
        ])
        .start();
    let sig_ns = verify_ns / 5;
    tracer
        .span_builder("eip3009.verify_signature")
        .child_of(verify.context().clone())
        .start_time(v0 + MS)
        .attribute("x402.network", network)
        .start()
        .end_at(v0 + MS + sig_ns);
    let v1 = v0 + verify_ns;
    if verify_fails {
        let reason = rng.pick(&VERIFY_ERRORS);
        fail(&mut verify, v1, reason, &format!("verify failed: {reason}"));
        verify.end_at(v1);
        root.set_attribute("x402.error", reason.to_owned());
        root.set_status(Status::error(format!("payment rejected: {reason}")));
        root.end_at(end);
        return 3;
    }
    verify.set_status(Status::ok());
    verify.end_at(v1);

    let s0 = v1 + MS;
    let mut settle = tracer
        .span_builder("POST /settle")
        .kind(SpanKind::Server)
        .child_of(root_cx)
        .start_time(s0)
        .attributes([
            KeyValue::new("x402.phase", "settle"),
            KeyValue::new("x402.network", network),
            KeyValue::new("x402.amount", amount),
        ])
        .start();
    let settle_cx = settle.context().clone();
    let mut t = s0 + MS;
    let attempts: i64 = if retry { 2 } else { 1 };
    if retry {
        let mut rpc = tracer
            .span_builder("eth_sendRawTransaction")
            .kind(SpanKind::Client)
            .child_of(settle_cx.clone())
            .start_time(t)
            .attributes([KeyValue::new("rpc.system", "jsonrpc"), KeyValue::new("x402.attempt", 1i64)])
            .start();
        rpc.set_status(Status::error(rng.pick(&["nonce too low", "upstream timeout"]).to_owned()));
        rpc.end_at(t + first_rpc_ns);
        t += first_rpc_ns;
        settle.add_event_at("retry", t, vec![KeyValue::new("x402.attempt", 2i64)]);
    }
    tracer
        .span_builder("eth_sendRawTransaction")
        .kind(SpanKind::Client)
        .child_of(settle_cx.clone())
        .start_time(t)
        .attributes([KeyValue::new("rpc.system", "jsonrpc"), KeyValue::new("x402.attempt", attempts)])
        .start()
        .end_at(t + rpc_ns);
    t += rpc_ns + MS;
    let mut receipt = tracer
        .span_builder("eth_getTransactionReceipt")
        .kind(SpanKind::Client)
        .child_of(settle_cx)
        .start_time(t)
        .attribute("rpc.system", "jsonrpc")
        .start();
    t += receipt_ns;
    let s1 = s0 + settle_ns;
    settle.set_attribute("x402.attempt", attempts);
    if settle_fails {
        let reason = rng.pick(&SETTLE_ERRORS);
        receipt.set_status(Status::error(reason.to_owned()));
        receipt.end_at(t);
        fail(&mut settle, s1, reason, &format!("settlement failed: {reason}"));
        root.set_attribute("x402.error", reason.to_owned());
        root.set_status(Status::error(format!("payment failed: {reason}")));
    } else {
        receipt.end_at(t);
        settle.set_attribute("x402.tx_hash", format!("0x{:064x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        settle.set_status(Status::ok());
        root.set_status(Status::ok());
    }
    settle.end_at(s1);
    root.end_at(end);
    6 + u64::from(retry)
}
