//! The shared span-semantics vectors (`tests/vectors/span-semantics.json`) replayed through the
//! core's public API: status transitions, attribute replacement and limits, `traceparent` /
//! `tracestate` parsing and injection, and sampling decisions. The Node, Python and WASM suites
//! replay the same file through their own packages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, clippy::cast_possible_wrap)]

mod common;

use serde_json::{Value as J, json};
use tracex_core::{Sampler, SpanContext, SpanData, Status, StatusCode, TraceId, Tracer, UnboundSpan, Value};

fn load() -> J {
    serde_json::from_str(&std::fs::read_to_string(common::vectors_dir().join("span-semantics.json")).unwrap()).unwrap()
}

fn tracer() -> Tracer {
    Tracer::builder()
        .with_service_name("semantics")
        .with_collector_public_key_pem(common::public_pem())
        .build()
        .unwrap()
}

/// A root span with `f` applied, as the collector receives it.
fn run(tracer: &Tracer, f: impl FnOnce(&mut UnboundSpan)) -> SpanData {
    let mut span = tracer.span_builder("case").root().start_unbound();
    f(&mut span);
    span.end(tracer, None);
    let batches = tracer.collect_sealed(true).unwrap();
    let (_, mut req) = common::open(&batches[0].bytes);
    req.resource_spans.remove(0).scope_spans.remove(0).spans.remove(0)
}

fn value_of(j: &J) -> Value {
    let (tag, v) = j.as_object().and_then(|o| o.iter().next()).unwrap();
    match tag.as_str() {
        "s" => Value::from(v.as_str().unwrap().to_owned()),
        "b" => Value::Bool(v.as_bool().unwrap()),
        "i" => Value::Int(v.as_str().unwrap().parse().unwrap()),
        "d" => Value::Double(v.as_f64().unwrap()),
        "x" => Value::Bytes(hex::decode(v.as_str().unwrap()).unwrap()),
        "a" => Value::Array(v.as_array().unwrap().iter().map(value_of).collect()),
        other => panic!("value tag {other}"),
    }
}

#[test]
fn status_transitions_match_the_vectors() {
    let doc = load();
    let tracer = tracer();
    let cases = doc["status"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let span = run(&tracer, |s| {
            for op in case["ops"].as_array().unwrap() {
                if let Some(message) = op["exception"].as_str() {
                    s.record_exception(&tracer, op["type"].as_str().unwrap().to_owned(), message.to_owned(), None);
                } else {
                    let code = match op["status"].as_str().unwrap() {
                        "ok" => StatusCode::Ok,
                        "error" => StatusCode::Error,
                        _ => StatusCode::Unset,
                    };
                    s.set_status(Status { code, message: op["message"].as_str().unwrap_or("").to_owned().into() });
                }
            }
        });
        let code = ["unset", "ok", "error"][span.status.code as usize];
        let got = json!({ "code": code, "message": span.status.message });
        assert_eq!(got, case["expect"], "{}", case["name"]);
    }
}

#[test]
fn attributes_match_the_vectors() {
    let doc = load();
    let tracer = tracer();
    let cases = doc["attributes"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let span = run(&tracer, |s| {
            for op in case["ops"].as_array().unwrap() {
                if let Some(f) = op.get("fill") {
                    let from = f["from"].as_u64().unwrap();
                    for n in from..from + f["count"].as_u64().unwrap() {
                        s.set_attribute(&tracer, format!("{}{n}", f["prefix"].as_str().unwrap()), n as i64);
                    }
                } else {
                    s.set_attribute(&tracer, op[0].as_str().unwrap().to_owned(), value_of(&op[1]));
                }
            }
        });
        let want = &case["expect"];
        let name = &case["name"];
        let want_attrs = want["attributes"].as_array().unwrap();
        assert_eq!(span.attributes.len(), want_attrs.len(), "{name}");
        for (got, w) in span.attributes.iter().zip(want_attrs) {
            assert_eq!(got.key, w[0].as_str().unwrap(), "{name}");
            assert_eq!(got.value, value_of(&w[1]), "{name}: {}", got.key);
        }
        assert_eq!(
            u64::from(span.dropped_attributes_count),
            want["dropped_attributes_count"].as_u64().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn traceparent_parsing_and_injection_match_the_vectors() {
    let doc = load();
    let tracer = tracer();
    let cases = doc["traceparent"].as_array().unwrap();
    assert!(cases.len() >= 25);
    for case in cases {
        let name = &case["name"];
        let parsed = SpanContext::from_traceparent(case["traceparent"].as_str().unwrap(), case["tracestate"].as_str());
        let want = &case["expect"];
        if want.is_null() {
            assert_eq!(parsed.unwrap_err().code(), "TRACEX_INVALID_CONTEXT", "{name}");
            continue;
        }
        let cx = parsed.unwrap();
        assert!(cx.is_remote, "{name}");
        assert_eq!(cx.trace_id.to_hex(), want["trace_id"].as_str().unwrap(), "{name}");
        assert_eq!(cx.span_id.to_hex(), want["span_id"].as_str().unwrap(), "{name}");
        assert_eq!(u64::from(cx.trace_flags.0), want["trace_flags"].as_u64().unwrap(), "{name}");
        assert_eq!(cx.is_sampled(), want["sampled"].as_bool().unwrap(), "{name}");
        assert_eq!(cx.trace_state.as_deref(), want["trace_state"].as_str(), "{name}");
        assert_eq!(cx.to_traceparent(), want["inject"].as_str().unwrap(), "{name}");
        let child = tracer.span_builder("child").child_of(cx).start();
        assert_eq!(u64::from(child.context().trace_flags.0), want["child_trace_flags"].as_u64().unwrap(), "{name}");
        assert_eq!(child.context().trace_state.as_deref(), want["child_trace_state"].as_str(), "{name}");
    }
}

#[test]
fn sampling_decisions_match_the_vectors() {
    let doc = load();
    let cases = doc["sampling"].as_array().unwrap();
    assert!(cases.len() >= 50);
    let (mut kept, mut dropped) = (0, 0);
    for case in cases {
        let ratio = case["ratio"].as_f64().unwrap();
        let parent = case["parent"].as_str().map(|tp| SpanContext::from_traceparent(tp, None).unwrap());
        let id = TraceId::from_hex(case["trace_id"].as_str().unwrap()).unwrap();
        let sampled = Sampler::ratio(ratio).should_sample(parent.as_ref(), id);
        assert_eq!(sampled, case["sampled"].as_bool().unwrap(), "ratio {ratio}, trace {id}");
        if sampled { kept += 1 } else { dropped += 1 }
    }
    assert!(kept > 10 && dropped > 10, "{kept} kept, {dropped} dropped");
}

#[test]
fn new_trace_ids_start_with_the_start_time_as_the_vectors_say() {
    let doc = load();
    let cases = doc["trace_ids"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let tracer = tracer();
    for case in cases {
        let start: u64 = case["start_unix_nano"].as_str().unwrap().parse().unwrap();
        let want = case["trace_id_prefix"].as_str().unwrap();
        let ids: Vec<String> = (0..2)
            .map(|_| tracer.span_builder("root").root().start_time(start).start().context().trace_id.to_hex())
            .collect();
        for id in &ids {
            assert!(id.starts_with(want), "{id} for a start at {start}");
        }
        assert_ne!(ids[0], ids[1], "the rest of the id is random");
    }
}
