//! `tests/vectors/span-semantics.json`: what the core decides about a span, for every runtime to
//! reproduce. Each case is a list of operations in a runtime-neutral form and what the core made of
//! them — computed here by running the core's own code (the public API, then the pump that seals a
//! batch, then opening it as the collector does), never written by hand. The layout is described in
//! `docs/semantic-conventions.md`.

use std::fmt::Write as _;

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Oaep, RsaPrivateKey};
use serde_json::{Value as J, json};
use sha2::Sha256;
use tracex_core::{KeyValue, Sampler, SpanContext, SpanData, Status, StatusCode, TraceId, Tracer, UnboundSpan, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

pub fn write(root: &std::path::Path) {
    let tracer = Tracer::builder()
        .with_service_name("semantics-vectors")
        .with_collector_public_key_pem(std::fs::read_to_string(root.join("collector-test-key.pub.pem")).expect("key"))
        .build()
        .expect("tracer");
    let private =
        RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(root.join("collector-test-key.pem")).expect("key"))
            .expect("private key");
    let doc = json!({
        "format": "tracex span semantics vectors; see docs/semantic-conventions.md",
        "limits": { "max_attributes": 128, "max_attribute_value_len": 4096 },
        "status": status_cases(&tracer, &private),
        "attributes": attribute_cases(&tracer, &private),
        "traceparent": traceparent_cases(&tracer),
        "sampling": sampling_cases(),
        "trace_ids": trace_id_cases(&tracer),
    });
    super::write_json(&root.join("span-semantics.json"), &doc);
}

/// Runs `f` on a new root span, ends it, and returns the span as the collector receives it. The
/// span is the unbound kind the bindings hold (it has `record_exception` with a given type name).
fn run(tracer: &Tracer, private: &RsaPrivateKey, f: impl FnOnce(&mut UnboundSpan)) -> SpanData {
    let mut span = tracer.span_builder("case").root().start_unbound();
    f(&mut span);
    span.end(tracer, None);
    let batches = tracer.collect_sealed(true).expect("seal");
    assert_eq!(batches.len(), 1);
    let env = tracex_core::seal::parse(&batches[0].bytes).expect("parse");
    let data_key = private.decrypt(Oaep::new::<Sha256>(), &env.header.wrapped_key).expect("unwrap");
    let plain = env.open(&data_key.try_into().expect("32 bytes"), 64 << 20).expect("open");
    let mut req = tracex_core::decode::decode_request(&plain).expect("decode");
    req.resource_spans.remove(0).scope_spans.remove(0).spans.remove(0)
}

// === status ===

fn status_op(op: &J) -> Status {
    let message = op["message"].as_str().unwrap_or_default().to_owned();
    let code = match op["status"].as_str().expect("status") {
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        "unset" => StatusCode::Unset,
        other => panic!("status {other}"),
    };
    Status { code, message: message.into() }
}

fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

fn status_cases(tracer: &Tracer, private: &RsaPrivateKey) -> Vec<J> {
    let set = |s: &str| json!({ "status": s });
    let set_m = |s: &str, m: &str| json!({ "status": s, "message": m });
    let exc = |ty: &str, m: &str| json!({ "exception": m, "type": ty });
    let cases: Vec<(&str, Vec<J>)> = vec![
        ("never-set-is-unset", vec![]),
        ("ok", vec![set("ok")]),
        ("error-with-description", vec![set_m("error", "nonce too low")]),
        ("error-without-description", vec![set("error")]),
        ("ok-is-final", vec![set("ok"), set_m("error", "too late")]),
        ("ok-is-final-against-exceptions", vec![set("ok"), exc("ValueError", "too late")]),
        ("unset-is-ignored-after-error", vec![set_m("error", "boom"), set("unset")]),
        ("unset-is-ignored-after-ok", vec![set("ok"), set("unset")]),
        ("error-then-ok", vec![set_m("error", "boom"), set("ok")]),
        ("later-error-replaces-error", vec![set_m("error", "first"), set_m("error", "second")]),
        ("ok-ignores-description", vec![set_m("ok", "fine")]),
        ("unset-ignores-description", vec![set_m("unset", "nothing")]),
        ("unset-then-ok", vec![set("unset"), set("ok")]),
        ("error-unset-error", vec![set_m("error", "a"), set("unset"), set_m("error", "c")]),
        ("exception-sets-error", vec![exc("ValueError", "kaput")]),
        ("exception-without-message-uses-type", vec![exc("ValueError", "")]),
        ("exception-replaces-error", vec![set_m("error", "first"), exc("ValueError", "second")]),
        ("ok-after-exception", vec![exc("ValueError", "kaput"), set("ok")]),
    ];
    cases
        .into_iter()
        .map(|(name, ops)| {
            let span = run(tracer, private, |s| {
                for op in &ops {
                    if let Some(message) = op["exception"].as_str() {
                        // What `record_error` / the bindings' `record_exception` call.
                        let ty = op["type"].as_str().unwrap_or_default().to_owned();
                        s.record_exception(tracer, ty, message.to_owned(), None);
                    } else {
                        s.set_status(status_op(op));
                    }
                }
            });
            json!({
                "name": name,
                "ops": ops,
                "expect": { "code": status_name(span.status.code), "message": span.status.message },
            })
        })
        .collect()
}

// === attributes ===

fn value_json(v: &Value) -> J {
    match v {
        Value::String(s) => json!({ "s": s }),
        Value::Bool(b) => json!({ "b": b }),
        Value::Int(i) => json!({ "i": i.to_string() }),
        Value::Double(d) => json!({ "d": d }),
        Value::Bytes(b) => json!({ "x": hex::encode(b) }),
        Value::Array(a) => json!({ "a": a.iter().map(value_json).collect::<Vec<_>>() }),
        Value::Map(m) => json!({ "m": m.iter().map(|kv| json!([kv.key, value_json(&kv.value)])).collect::<Vec<_>>() }),
    }
}

fn value_of(j: &J) -> Value {
    let (tag, v) = j.as_object().and_then(|o| o.iter().next()).expect("tagged value");
    match tag.as_str() {
        "s" => Value::from(v.as_str().expect("s").to_owned()),
        "b" => Value::Bool(v.as_bool().expect("b")),
        "i" => Value::Int(v.as_str().expect("i").parse().expect("int")),
        "d" => Value::Double(v.as_f64().expect("d")),
        "x" => Value::Bytes(hex::decode(v.as_str().expect("x")).expect("hex")),
        "a" => Value::Array(v.as_array().expect("a").iter().map(value_of).collect()),
        other => panic!("value tag {other}"),
    }
}

fn attribute_cases(tracer: &Tracer, private: &RsaPrivateKey) -> Vec<J> {
    let s = |v: &str| json!({ "s": v });
    let i = |v: i64| json!({ "i": v.to_string() });
    let kv = |k: &str, v: J| json!([k, v]);
    let fill =
        |prefix: &str, from: u32, count: u32| json!({ "fill": { "prefix": prefix, "from": from, "count": count } });
    let cases: Vec<(&str, Vec<J>)> = vec![
        (
            "one-of-each-type",
            vec![
                kv("str", s("exact")),
                kv("bool", json!({ "b": true })),
                kv("int", i(-42)),
                kv("int64.max", i(i64::MAX)),
                kv("int64.min", i(i64::MIN)),
                kv("double", json!({ "d": 189.5 })),
                kv("bytes", json!({ "x": "00ff10" })),
                kv("strings", json!({ "a": [s("a"), s("b")] })),
                kv("ints", json!({ "a": [i(1), i(2)] })),
                kv("empty.string", s("")),
                kv("unicode", s("€ 1,00 支付 🚀")),
            ],
        ),
        ("same-key-replaces-in-place", vec![kv("a", i(1)), kv("b", s("x")), kv("a", i(2))]),
        ("replacement-may-change-type", vec![kv("a", i(1)), kv("a", s("one"))]),
        ("last-of-many-replacements-wins", vec![kv("a", i(1)), kv("a", i(2)), kv("b", i(3)), kv("a", i(4))]),
        ("limit-keeps-the-first-128-keys", vec![fill("k", 0, 130)]),
        ("limit-exactly-128", vec![fill("k", 0, 128)]),
        ("replacement-at-the-limit-is-kept", vec![fill("k", 0, 128), kv("k5", s("new")), kv("extra", i(1))]),
        ("repeats-do-not-use-up-the-limit", vec![fill("k", 0, 100), fill("k", 0, 100), kv("after", i(1))]),
        ("long-string-is-truncated-to-4096-bytes", vec![kv("long", s(&"x".repeat(5000)))]),
        ("truncation-keeps-whole-characters", vec![kv("long", s(&"é".repeat(2100)))]),
        ("string-array-items-are-truncated", vec![kv("list", json!({ "a": [s(&"y".repeat(4100)), s("z")] }))]),
    ];
    cases
        .into_iter()
        .map(|(name, ops)| {
            let span = run(tracer, private, |span| {
                for op in &ops {
                    if let Some(f) = op.get("fill") {
                        let prefix = f["prefix"].as_str().expect("prefix");
                        let from = f["from"].as_u64().expect("from");
                        for n in from..from + f["count"].as_u64().expect("count") {
                            span.set_attribute(tracer, format!("{prefix}{n}"), i64::try_from(n).expect("small"));
                        }
                    } else {
                        span.set_attribute(tracer, op[0].as_str().expect("key").to_owned(), value_of(&op[1]));
                    }
                }
            });
            let attributes: Vec<_> =
                span.attributes.iter().map(|a: &KeyValue| json!([a.key, value_json(&a.value)])).collect();
            json!({
                "name": name,
                "ops": ops,
                "expect": { "attributes": attributes, "dropped_attributes_count": span.dropped_attributes_count },
            })
        })
        .collect()
}

// === traceparent / tracestate ===

fn traceparent_cases(tracer: &Tracer) -> Vec<J> {
    let tp = |flags: &str| format!("00-{TRACE_ID}-{SPAN_ID}-{flags}");
    let long_state = |n: usize| {
        // Valid list members ("kNNN=vvvvvvvvvv"), `n` characters in all: whole members while they
        // fit, then one last member padded to the exact length.
        let mut s = String::new();
        let mut k = 0;
        while s.len() + 16 + 16 < n {
            let _ = write!(s, "k{k:03}=vvvvvvvvvv,");
            k += 1;
        }
        let rest = n - s.len() - 5;
        let _ = write!(s, "k{k:03}={}", "v".repeat(rest));
        assert_eq!(s.len(), n);
        s
    };
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("sampled", tp("01"), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into())),
        ("not-sampled", tp("00"), None),
        ("random-flag-only-the-sampled-bit-is-kept", tp("02"), None),
        ("sampled-and-random-flags", tp("03"), None),
        ("all-flag-bits-set", tp("ff"), None),
        ("reserved-flag-bit-not-sampled", tp("80"), None),
        ("uppercase-trace-id", format!("00-{}-{SPAN_ID}-01", TRACE_ID.to_uppercase()), None),
        ("uppercase-span-id", format!("00-{TRACE_ID}-{}-01", "00F067AA0BA902B7"), None),
        ("uppercase-flags", tp("0A"), None),
        ("version-ff-is-invalid", format!("ff-{TRACE_ID}-{SPAN_ID}-01"), None),
        ("version-not-hex", format!("0g-{TRACE_ID}-{SPAN_ID}-01"), None),
        ("version-00-with-more-fields", format!("{}-extra", tp("01")), None),
        ("future-version-with-more-fields", format!("01-{TRACE_ID}-{SPAN_ID}-01-future"), None),
        ("future-version-exact-length", format!("cc-{TRACE_ID}-{SPAN_ID}-00"), None),
        ("future-version-trailing-garbage", format!("01-{TRACE_ID}-{SPAN_ID}-01x"), None),
        ("all-zero-trace-id", format!("00-{}-{SPAN_ID}-01", "0".repeat(32)), None),
        ("all-zero-span-id", format!("00-{TRACE_ID}-{}-01", "0".repeat(16)), None),
        ("too-short", format!("00-{TRACE_ID}-{SPAN_ID}-1"), None),
        ("empty", String::new(), None),
        ("misplaced-separator", format!("00_{TRACE_ID}-{SPAN_ID}-01"), None),
        ("flags-not-hex", tp("0g"), None),
        ("surrounding-whitespace-is-trimmed", format!(" \t{} ", tp("01")), None),
        ("inner-whitespace", format!("00- {}-{SPAN_ID}-01", &TRACE_ID[1..]), None),
        ("tracestate-is-trimmed", tp("01"), Some("  rojo=00f067aa0ba902b7 ".into())),
        ("empty-tracestate-is-none", tp("01"), Some("   ".into())),
        ("tracestate-of-512-characters-is-kept", tp("01"), Some(long_state(512))),
        ("tracestate-over-512-characters-is-dropped", tp("01"), Some(long_state(513))),
        ("non-ascii-tracestate-is-dropped", tp("01"), Some("rojo=caf\u{e9}".into())),
    ];
    cases
        .into_iter()
        .map(|(name, traceparent, tracestate)| {
            let expect = match SpanContext::from_traceparent(&traceparent, tracestate.as_deref()) {
                Err(e) => {
                    assert_eq!(e.code(), "TRACEX_INVALID_CONTEXT");
                    J::Null
                }
                Ok(cx) => {
                    let child = tracer.span_builder("child").child_of(cx.clone()).start();
                    let child_cx = child.context().clone();
                    drop(child);
                    json!({
                        "trace_id": cx.trace_id.to_hex(),
                        "span_id": cx.span_id.to_hex(),
                        "trace_flags": cx.trace_flags.0,
                        "sampled": cx.is_sampled(),
                        "trace_state": cx.trace_state.as_deref(),
                        "inject": cx.to_traceparent(),
                        "child_trace_flags": child_cx.trace_flags.0,
                        "child_trace_state": child_cx.trace_state.as_deref(),
                    })
                }
            };
            json!({ "name": name, "traceparent": traceparent, "tracestate": tracestate, "expect": expect })
        })
        .collect()
}

// === trace ids ===

/// A new trace's id starts with its start time in unix milliseconds (48 bits, big-endian; the
/// other ten bytes are random, so only the prefix is a vector). Each start is half a millisecond
/// past a whole one, so a runtime whose clock is a float in ms (JS) cannot round across it.
fn trace_id_cases(tracer: &Tracer) -> Vec<J> {
    let ms = [
        1_765_001_600_123,            // 2025-12-06T06:13:20.123Z
        1_000_000_000_000,            // 2001
        4_102_444_800_999,            // 2100
        26_932_006 * 65_536 + 65_535, // the low 16 bits all ones (JS splits the ms there)
        26_932_007 * 65_536,          // and all zeros
    ];
    ms.into_iter()
        .map(|ms: u64| {
            let start = ms * 1_000_000 + 500_000;
            let span = tracer.span_builder("root").root().start_time(start).start_unbound();
            json!({
                "start_unix_nano": start.to_string(),
                "trace_id_prefix": span.context().trace_id.to_hex()[..2 * tracex_core::ids::TRACE_ID_TIME_BYTES],
            })
        })
        .collect()
}

// === sampling ===

fn sampling_cases() -> Vec<J> {
    // Fixed pseudo-random trace ids (a 64-bit LCG), so the file never changes.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state
    };
    let mut out = Vec::new();
    for ratio in [0.0, 1e-9, 0.001, 0.25, 0.5, 0.999_999, 1.0] {
        let mut ids: Vec<[u8; 16]> = (0..6)
            .map(|_| {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&next().to_be_bytes());
                id[8..].copy_from_slice(&next().to_be_bytes());
                id
            })
            .collect();
        // Ids at the bound: the low 63 bits of bytes 8..16 equal to, just under and just over
        // ratio · 2^63 — where a rounding difference between runtimes would show.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let bound = (ratio * (1u64 << 63) as f64) as u64;
        for low in [bound.checked_sub(1), Some(bound), bound.checked_add(1)].into_iter().flatten() {
            if low < (1u64 << 63) {
                let mut id = [0u8; 16];
                id[0] = 0x5a;
                id[8..].copy_from_slice(&(low << 1).to_be_bytes());
                ids.push(id);
            }
        }
        for id in ids {
            let trace_id = TraceId(id);
            out.push(json!({
                "ratio": ratio,
                "trace_id": trace_id.to_hex(),
                "sampled": Sampler::ratio(ratio).should_sample(None, trace_id),
            }));
        }
    }
    // With a parent, the parent's sampled flag decides, whatever the ratio (ParentBased).
    for (ratio, flags) in [(0.0, "01"), (1.0, "00"), (0.5, "01"), (0.5, "00")] {
        let parent = format!("00-{TRACE_ID}-{SPAN_ID}-{flags}");
        let cx = SpanContext::from_traceparent(&parent, None).expect("valid");
        out.push(json!({
            "ratio": ratio,
            "parent": parent,
            "trace_id": TRACE_ID,
            "sampled": Sampler::ratio(ratio).should_sample(Some(&cx), cx.trace_id),
        }));
    }
    out
}
