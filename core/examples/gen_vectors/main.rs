//! Writes the test vectors every runtime checks (`tests/vectors/`):
//!
//! - `envelope-v1.json`: the wire format (`envelope.rs`);
//! - `span-semantics.json`: what the core does with status, attributes, `traceparent` and sampling
//!   (`semantics.rs`);
//! - `errors.json`: every error code, its kind and the class every binding raises (`errors.rs`);
//! - `audit.json`: Merkle hashing and proofs, signed notes, checkpoints and receipts (`audit.rs`).
//!
//! Run from the repository root: `cargo run -p tracex-core --example gen_vectors`. The output is
//! deterministic; `scripts/test.sh` regenerates it and fails when it differs from what is checked in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_truncation)]

mod audit;
mod envelope;
mod errors;
mod semantics;

use serde_json::Value as J;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    envelope::write(&root);
    semantics::write(&root);
    errors::write(&root);
    audit::write(&root);
}

/// Writes `doc` as JSON: nested values that fit on a line stay on one line, so a case with a
/// hundred attributes stays readable.
fn write_json(path: &std::path::Path, doc: &J) {
    let mut out = String::new();
    pretty(doc, 0, &mut out);
    out.push('\n');
    std::fs::write(path, out).expect("write");
    println!("wrote {}", path.display());
}

fn pretty(v: &J, indent: usize, out: &mut String) {
    let compact = serde_json::to_string(v).expect("json");
    if compact.len() + indent <= 110 || !(v.is_array() || v.is_object()) {
        out.push_str(&compact);
        return;
    }
    let pad = "  ".repeat(indent + 1);
    match v {
        J::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad);
                pretty(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
        }
        J::Object(map) => {
            out.push_str("{\n");
            for (i, (k, item)) in map.iter().enumerate() {
                out.push_str(&pad);
                out.push_str(&serde_json::to_string(k).expect("json"));
                out.push_str(": ");
                pretty(item, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
        }
        _ => unreachable!(),
    }
    out.push_str(&"  ".repeat(indent));
    out.push(if v.is_array() { ']' } else { '}' });
}
