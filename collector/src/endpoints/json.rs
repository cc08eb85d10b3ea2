//! JSON renderings of stored spans. Attribute values follow OTLP/JSON's `AnyValue` mapping
//! (`stringValue`, `intValue` as a decimal string, `doubleValue`, `boolValue`, `bytesValue` in
//! base64, `arrayValue`, `kvlistValue`), so types survive exactly; 64-bit times are strings.

use base64::Engine;
use serde_json::{Value as J, json};
use tracex_core::{KeyValue, SpanData, Value};

use crate::store::{StoredSpan, TraceSummary};

/// An OTLP/JSON `AnyValue`.
pub fn any_value(v: &Value) -> J {
    match v {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Double(d) => json!({ "doubleValue": d }),
        Value::Bytes(b) => json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) }),
        Value::Array(items) => json!({ "arrayValue": { "values": items.iter().map(any_value).collect::<Vec<_>>() } }),
        Value::Map(kvs) => json!({ "kvlistValue": { "values": attributes(kvs) } }),
    }
}

/// OTLP/JSON `KeyValue` list.
pub fn attributes(kvs: &[KeyValue]) -> Vec<J> {
    kvs.iter().map(|kv| json!({ "key": kv.key, "value": any_value(&kv.value) })).collect()
}

fn status_code(s: &SpanData) -> &'static str {
    match s.status.code {
        tracex_core::StatusCode::Unset => "unset",
        tracex_core::StatusCode::Ok => "ok",
        tracex_core::StatusCode::Error => "error",
    }
}

/// One span with its resource and scope; children are attached by the caller.
pub fn span(s: &StoredSpan) -> J {
    let d = &s.span;
    json!({
        "trace_id": d.trace_id.to_hex(),
        "span_id": d.span_id.to_hex(),
        "parent_span_id": d.parent_span_id.map(|p| p.to_hex()),
        "trace_state": d.trace_state,
        "flags": d.flags,
        "name": d.name,
        "kind": d.kind.as_str(),
        "start_time_unix_nano": d.start_time_unix_nano.to_string(),
        "end_time_unix_nano": d.end_time_unix_nano.to_string(),
        "duration_ns": d.duration_nanos(),
        "status": { "code": status_code(d), "message": d.status.message },
        "attributes": attributes(&d.attributes),
        "dropped_attributes_count": d.dropped_attributes_count,
        "events": d.events.iter().map(|e| json!({
            "time_unix_nano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": attributes(&e.attributes),
            "dropped_attributes_count": e.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "dropped_events_count": d.dropped_events_count,
        "links": d.links.iter().map(|l| json!({
            "trace_id": l.trace_id.to_hex(),
            "span_id": l.span_id.to_hex(),
            "trace_state": l.trace_state,
            "flags": l.flags,
            "attributes": attributes(&l.attributes),
            "dropped_attributes_count": l.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "dropped_links_count": d.dropped_links_count,
        "service_name": s.resource.service_name(),
        "resource": { "attributes": attributes(&s.resource.attributes), "dropped_attributes_count": s.resource.dropped_attributes_count },
        "scope": { "name": s.scope.name, "version": s.scope.version, "attributes": attributes(&s.scope.attributes) },
    })
}

/// A trace listing row.
pub fn summary(t: &TraceSummary) -> J {
    json!({
        "trace_id": t.trace_id.to_hex(),
        "root_name": t.root_name,
        "root_service": t.root_service,
        "start_time_unix_nano": t.start_unix_nano.to_string(),
        "end_time_unix_nano": t.end_unix_nano.to_string(),
        "duration_ns": t.end_unix_nano.saturating_sub(t.start_unix_nano),
        "span_count": t.span_count,
        "error_count": t.error_count,
    })
}

/// All spans of a trace as a forest: each span under its parent, roots (no parent, or a parent that
/// was not stored) at the top, siblings by start time.
pub fn tree(spans: &[StoredSpan]) -> Vec<J> {
    use std::collections::HashMap;
    let index: HashMap<_, _> = spans.iter().enumerate().map(|(i, s)| (s.span.span_id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.span.parent_span_id.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].span.start_time_unix_nano, spans[i].span.span_id));
    by_start(&mut roots);
    children.iter_mut().for_each(by_start);
    // Iterative build (deep traces must not overflow the stack): render bottom-up in reverse
    // pre-order.
    let mut order = Vec::with_capacity(spans.len());
    let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev().copied());
    }
    let mut rendered: Vec<Option<J>> = vec![None; spans.len()];
    for &i in order.iter().rev() {
        let mut node = span(&spans[i]);
        let kids: Vec<J> = children[i].iter().filter_map(|&c| rendered[c].take()).collect();
        node["children"] = J::Array(kids);
        rendered[i] = Some(node);
    }
    roots.iter().filter_map(|&r| rendered[r].take()).collect()
}
