//! Shared by the benches: the test collector key, a transport that discards, and ratio printing
//! from criterion's own estimates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::missing_panics_doc)]

use std::path::PathBuf;

use tracex_core::transport::{SendOutcome, Transport};

pub fn public_pem() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/collector-test-key.pub.pem"),
    )
    .unwrap()
}

/// Accepts every batch without sending it anywhere.
pub struct Discard;

impl Transport for Discard {
    fn send(&mut self, _body: &[u8]) -> SendOutcome {
        SendOutcome::Delivered
    }
}

/// Where `cargo bench` has criterion write: the workspace's target directory (the one holding
/// `Cargo.lock`), not the nearest `target/criterion` above the working directory — a criterion
/// binary once run by hand from `core/` left a `core/target/criterion` whose stale estimates were
/// then read instead of the run's.
fn criterion_dir() -> PathBuf {
    if let Ok(d) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(d).join("criterion");
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").is_file() {
        if !dir.pop() {
            return PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
        }
    }
    dir.join("target/criterion")
}

/// Mean time per iteration (ns) of a finished criterion benchmark.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir().join(group).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// Prints `a` vs `b` from criterion's estimates (same run), the ratio always ≥ 1 and said of
/// whichever is faster: "0.40x faster" reads as a win.
pub fn print_ratio(group: &str, ours: &str, theirs: &str) {
    match (mean_ns(group, ours), mean_ns(group, theirs)) {
        (Some(a), Some(b)) if b >= a => {
            println!("\n== {group}: {ours} {a:.1} ns vs {theirs} {b:.1} ns -> {ours} is {:.2}x faster\n", b / a);
        }
        (Some(a), Some(b)) => {
            println!("\n== {group}: {ours} {a:.1} ns vs {theirs} {b:.1} ns -> {theirs} is {:.2}x faster\n", a / b);
        }
        _ => println!("\n== {group}: estimates not found (filtered run?)\n"),
    }
}
