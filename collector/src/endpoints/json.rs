//! JSON renderings of stored spans. Attribute values follow OTLP/JSON's `AnyValue` mapping
//! (`stringValue`, `intValue` as a decimal string, `doubleValue`, `boolValue`, `bytesValue` in
//! base64, `arrayValue`, `kvlistValue`), so types survive exactly; 64-bit times are strings.

use base64::Engine;
use serde_json::{Value as J, json};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, Value};

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

/// One span with its resource and scope.
pub fn span(s: &StoredSpan) -> J {
    span_parts(&s.resource, &s.scope, &s.span)
}

/// One span with its resource and scope, given apart (as a decoded batch holds them).
pub fn span_parts(resource: &Resource, scope: &InstrumentationScope, d: &SpanData) -> J {
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
        "service_name": resource.service_name(),
        "resource": { "attributes": attributes(&resource.attributes), "dropped_attributes_count": resource.dropped_attributes_count },
        "scope": { "name": scope.name, "version": scope.version, "attributes": attributes(&scope.attributes) },
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

/// Why a span is shown at depth 0 although it names a parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detached {
    /// The parent span was never stored (not sent, dropped, or still in flight).
    ParentNotStored,
    /// The span's ancestors form a cycle (a buggy or hostile SDK); the earliest span of the cycle
    /// is shown as a root so that nothing of the trace is hidden.
    Cycle,
}

impl Detached {
    fn as_str(self) -> &'static str {
        match self {
            Self::ParentNotStored => "parent_not_stored",
            Self::Cycle => "cycle",
        }
    }
}

/// One row of a trace's waterfall: a span's index in the input, its depth, and why it is a root
/// when it names a parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeRow {
    /// Index into the spans given to [`tree_order`].
    pub index: usize,
    /// 0 for roots, parent's depth + 1 otherwise.
    pub depth: usize,
    /// Set on roots that name a parent.
    pub detached: Option<Detached>,
}

/// Every span of a trace in depth-first pre-order (each parent before its children, siblings by
/// start time), with its depth: the order a waterfall draws them in. Roots are spans without a
/// parent, spans whose parent is not stored, and, so that no span is ever hidden, the earliest
/// span of each parent cycle. Iterative, so a chain of any depth costs heap, not stack; the output
/// is flat, so neither serialising nor dropping it recurses (nested JSON a few thousand levels
/// deep overflowed the collector's stack, and breaks clients' JSON parsers too).
pub fn tree_order(spans: &[StoredSpan]) -> Vec<TreeRow> {
    use std::collections::HashMap;
    let index: HashMap<_, _> = spans.iter().enumerate().map(|(i, s)| (s.span.span_id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.span.parent_span_id.map(|p| index.get(&p)) {
            Some(Some(&p)) if p != i => children[p].push(i),
            Some(_) => roots.push((i, Some(Detached::ParentNotStored))),
            None => roots.push((i, None)),
        }
    }
    let key = |&i: &usize| (spans[i].span.start_time_unix_nano, spans[i].span.span_id);
    roots.sort_by_key(|(i, _)| key(i));
    for c in &mut children {
        c.sort_by_key(key);
    }
    let mut visited = vec![false; spans.len()];
    let mut out = Vec::with_capacity(spans.len());
    for &(r, detached) in &roots {
        walk_from(r, detached, &children, &mut visited, &mut out);
    }
    // What no root reaches hangs off a cycle: show each such component from its earliest span.
    if out.len() < spans.len() {
        let mut rest: Vec<usize> = (0..spans.len()).filter(|&i| !visited[i]).collect();
        rest.sort_by_key(key);
        for r in rest {
            if !visited[r] {
                walk_from(r, Some(Detached::Cycle), &children, &mut visited, &mut out);
            }
        }
    }
    out
}

/// Appends the unvisited spans under `root` in pre-order, with an explicit stack.
fn walk_from(
    root: usize,
    detached: Option<Detached>,
    children: &[Vec<usize>],
    visited: &mut [bool],
    out: &mut Vec<TreeRow>,
) {
    let mut stack = vec![(root, 0usize)];
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        out.push(TreeRow { index: i, depth, detached: if i == root { detached } else { None } });
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
}

/// One waterfall row: the span with its depth (and, on a root that names a parent, why).
pub fn tree_row(s: &StoredSpan, row: &TreeRow) -> J {
    let mut node = span(s);
    node["depth"] = J::from(row.depth);
    if let Some(d) = row.detached {
        node["detached"] = J::from(d.as_str());
    }
    node
}
