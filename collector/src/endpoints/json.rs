//! JSON renderings of stored spans. Attribute values follow OTLP/JSON's `AnyValue` mapping
//! (`stringValue`, `intValue` as a decimal string, `doubleValue`, `boolValue`, `bytesValue` in
//! base64, `arrayValue`, `kvlistValue`), so types survive exactly; 64-bit times are strings.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use base64::Engine;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Value as J, json};
use tracex_core::{InstrumentationScope, KeyValue, Resource, SpanData, Value};

use crate::store::{StoredSpan, TraceSummary};

/// An OTLP/JSON `AnyValue`.
pub fn any_value(v: &Value) -> J {
    serde_json::to_value(AnyValue(v)).unwrap_or(J::Null)
}

/// OTLP/JSON `KeyValue` list.
pub fn attributes(kvs: &[KeyValue]) -> Vec<J> {
    kvs.iter().map(|kv| serde_json::to_value(Attr(kv)).unwrap_or(J::Null)).collect()
}

/// One span with its resource and scope.
pub fn span(s: &StoredSpan) -> J {
    span_parts(&s.resource, &s.scope, &s.span)
}

/// One span with its resource and scope, given apart (as a decoded batch holds them).
pub fn span_parts(resource: &Resource, scope: &InstrumentationScope, d: &SpanData) -> J {
    serde_json::to_value(SpanJson { resource, scope, span: d, row: None, resource_index: None }).unwrap_or(J::Null)
}

/// [`span_parts`] as JSON text, written straight from the span (what the live tail sends).
pub fn span_text(resource: &Resource, scope: &InstrumentationScope, d: &SpanData) -> String {
    serde_json::to_string(&SpanJson { resource, scope, span: d, row: None, resource_index: None }).unwrap_or_default()
}

/// A span's summary as JSON text (what a live tail sends unless asked for whole spans): the
/// fields of [`span_text`] a tail shows, with the same names and values.
pub fn span_summary_text(resource: &Resource, d: &SpanData) -> String {
    serde_json::to_string(&SpanSummaryJson { resource, span: d }).unwrap_or_default()
}

// === impl Serialize for the span renderings ===
//
// Spans are written straight to JSON text rather than built as `serde_json::Value` trees first:
// the tree costs a map or string allocation per field, and the detail of a 10,000-span trace
// (≈ 1 KB of JSON a span, resource included) took ≈ 640 ms to render that way against ≈ 50 ms to
// read and order. Keys are written in alphabetical order, the order `Value`'s maps printed them
// in, so the text is the same as before.

/// A span, its resource and scope, and (in a trace's detail) its waterfall row.
pub struct SpanJson<'a> {
    /// The span's resource.
    pub resource: &'a Resource,
    /// The span's instrumentation scope.
    pub scope: &'a InstrumentationScope,
    /// The span.
    pub span: &'a SpanData,
    /// Its row in the trace's waterfall: adds `depth` (and `detached`).
    pub row: Option<&'a TreeRow>,
    /// In a detail page with shared resources, the index of the span's resource in the page's
    /// `resources` ([`SharedResources`]): written as `resource_index` instead of `resource`.
    pub resource_index: Option<usize>,
}

struct AnyValue<'a>(&'a Value);
struct Attr<'a>(&'a KeyValue);
struct Attrs<'a>(&'a [KeyValue]);
struct Events<'a>(&'a [tracex_core::Event]);
struct Links<'a>(&'a [tracex_core::Link]);
/// A u64 as a decimal string (64-bit times: JSON numbers lose precision past 2^53).
struct Decimal(u64);

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl Serialize for AnyValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            Value::String(v) => m.serialize_entry("stringValue", v)?,
            Value::Bool(v) => m.serialize_entry("boolValue", v)?,
            Value::Int(v) => m.serialize_entry("intValue", &v.to_string())?,
            Value::Double(v) => m.serialize_entry("doubleValue", v)?,
            Value::Bytes(v) => {
                m.serialize_entry("bytesValue", &base64::engine::general_purpose::STANDARD.encode(v))?;
            }
            Value::Array(items) => {
                m.serialize_entry("arrayValue", &Values(ItemsOrAttrs::Items(items)))?;
            }
            Value::Map(kvs) => m.serialize_entry("kvlistValue", &Values(ItemsOrAttrs::Attrs(kvs)))?,
        }
        m.end()
    }
}

enum ItemsOrAttrs<'a> {
    Items(&'a [Value]),
    Attrs(&'a [KeyValue]),
}

/// `{"values": [...]}` of an array or key-value list.
struct Values<'a>(ItemsOrAttrs<'a>);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            ItemsOrAttrs::Items(items) => m.serialize_entry("values", &Items(items))?,
            ItemsOrAttrs::Attrs(kvs) => m.serialize_entry("values", &Attrs(kvs))?,
        }
        m.end()
    }
}

struct Items<'a>(&'a [Value]);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(AnyValue))
    }
}

impl Serialize for Attr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", &self.0.key)?;
        m.serialize_entry("value", &AnyValue(&self.0.value))?;
        m.end()
    }
}

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Attr))
    }
}

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&EventJson(e))?;
        }
        seq.end()
    }
}

struct EventJson<'a>(&'a tracex_core::Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("attributes", &Attrs(&e.attributes))?;
        m.serialize_entry("dropped_attributes_count", &e.dropped_attributes_count)?;
        m.serialize_entry("name", &e.name)?;
        m.serialize_entry("time_unix_nano", &Decimal(e.time_unix_nano))?;
        m.end()
    }
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for l in self.0 {
            seq.serialize_element(&LinkJson(l))?;
        }
        seq.end()
    }
}

struct LinkJson<'a>(&'a tracex_core::Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("attributes", &Attrs(&l.attributes))?;
        m.serialize_entry("dropped_attributes_count", &l.dropped_attributes_count)?;
        m.serialize_entry("flags", &l.flags)?;
        m.serialize_entry("span_id", &l.span_id.to_hex())?;
        m.serialize_entry("trace_id", &l.trace_id.to_hex())?;
        m.serialize_entry("trace_state", &l.trace_state)?;
        m.end()
    }
}

struct ResourceJson<'a>(&'a Resource);

impl Serialize for ResourceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("attributes", &Attrs(&self.0.attributes))?;
        m.serialize_entry("dropped_attributes_count", &self.0.dropped_attributes_count)?;
        m.end()
    }
}

struct ScopeJson<'a>(&'a InstrumentationScope);

impl Serialize for ScopeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("attributes", &Attrs(&self.0.attributes))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("version", &self.0.version)?;
        m.end()
    }
}

struct StatusJson<'a>(&'a SpanData);

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("code", status_code(self.0))?;
        m.serialize_entry("message", &self.0.status.message)?;
        m.end()
    }
}

fn status_code(s: &SpanData) -> &'static str {
    match s.status.code {
        tracex_core::StatusCode::Unset => "unset",
        tracex_core::StatusCode::Ok => "ok",
        tracex_core::StatusCode::Error => "error",
    }
}

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.span;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("attributes", &Attrs(&d.attributes))?;
        if let Some(row) = self.row {
            m.serialize_entry("depth", &row.depth)?;
            if let Some(why) = row.detached {
                m.serialize_entry("detached", why.as_str())?;
            }
        }
        m.serialize_entry("dropped_attributes_count", &d.dropped_attributes_count)?;
        m.serialize_entry("dropped_events_count", &d.dropped_events_count)?;
        m.serialize_entry("dropped_links_count", &d.dropped_links_count)?;
        m.serialize_entry("duration_ns", &d.duration_nanos())?;
        m.serialize_entry("end_time_unix_nano", &Decimal(d.end_time_unix_nano))?;
        m.serialize_entry("events", &Events(&d.events))?;
        m.serialize_entry("flags", &d.flags)?;
        m.serialize_entry("kind", d.kind.as_str())?;
        m.serialize_entry("links", &Links(&d.links))?;
        m.serialize_entry("name", &d.name)?;
        m.serialize_entry("parent_span_id", &d.parent_span_id.map(|p| p.to_hex()))?;
        match self.resource_index {
            Some(i) => m.serialize_entry("resource_index", &i)?,
            None => m.serialize_entry("resource", &ResourceJson(self.resource))?,
        }
        m.serialize_entry("scope", &ScopeJson(self.scope))?;
        m.serialize_entry("service_name", &self.resource.service_name())?;
        m.serialize_entry("span_id", &d.span_id.to_hex())?;
        m.serialize_entry("start_time_unix_nano", &Decimal(d.start_time_unix_nano))?;
        m.serialize_entry("status", &StatusJson(d))?;
        m.serialize_entry("trace_id", &d.trace_id.to_hex())?;
        m.serialize_entry("trace_state", &d.trace_state)?;
        m.end()
    }
}

/// A span's summary: ids, name, kind, service, times and status.
struct SpanSummaryJson<'a> {
    resource: &'a Resource,
    span: &'a SpanData,
}

impl Serialize for SpanSummaryJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.span;
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("duration_ns", &d.duration_nanos())?;
        m.serialize_entry("end_time_unix_nano", &Decimal(d.end_time_unix_nano))?;
        m.serialize_entry("kind", d.kind.as_str())?;
        m.serialize_entry("name", &d.name)?;
        m.serialize_entry("parent_span_id", &d.parent_span_id.map(|p| p.to_hex()))?;
        m.serialize_entry("service_name", &self.resource.service_name())?;
        m.serialize_entry("span_id", &d.span_id.to_hex())?;
        m.serialize_entry("start_time_unix_nano", &Decimal(d.start_time_unix_nano))?;
        m.serialize_entry("status", &StatusJson(d))?;
        m.serialize_entry("trace_id", &d.trace_id.to_hex())?;
        m.end()
    }
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
    serde_json::to_value(SpanJson {
        resource: &s.resource,
        scope: &s.scope,
        span: &s.span,
        row: Some(row),
        resource_index: None,
    })
    .unwrap_or(J::Null)
}

// === shared resources (`resources=shared`) ===

/// The resources of a page of a trace's detail, each distinct one once in order of first use, and
/// each row's index into them: what `GET /api/v1/traces/{id}?resources=shared` sends instead of a
/// copy of the resource in every span (a trace has a few resources and up to thousands of spans;
/// the copies were ≈ 40 % of a page's bytes).
///
/// Distinct means rendered differently: attributes compared in order, doubles by their bits (so
/// `0.0` and `-0.0` stay apart and a NaN matches itself). Spans of one resource mostly follow each
/// other in waterfall order, so each row is first compared with the previous row's resource; a
/// hash map keeps a page of many distinct resources (a hostile SDK's) linear too.
pub struct SharedResources<'a> {
    /// Each distinct resource of the page once.
    pub resources: Vec<&'a Resource>,
    /// Per row of the page, its span's resource's index in `resources`.
    pub indexes: Vec<usize>,
}

impl<'a> SharedResources<'a> {
    /// The resources of `rows` (rows of [`tree_order`] over `spans`).
    pub fn of_rows(spans: &'a [StoredSpan], rows: &[TreeRow]) -> Self {
        let mut resources: Vec<&'a Resource> = Vec::new();
        let mut seen: HashMap<ByValue<'a>, usize> = HashMap::new();
        let mut indexes = Vec::with_capacity(rows.len());
        let mut last: Option<usize> = None;
        for row in rows {
            let r = &spans[row.index].resource;
            let i = match last.filter(|&i| same_resource(resources[i], r)) {
                Some(i) => i,
                None => *seen.entry(ByValue(r)).or_insert_with(|| {
                    resources.push(r);
                    resources.len() - 1
                }),
            };
            last = Some(i);
            indexes.push(i);
        }
        Self { resources, indexes }
    }
}

/// The page's `resources` array.
pub struct ResourcesJson<'a>(pub &'a [&'a Resource]);

impl Serialize for ResourcesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| ResourceJson(r)))
    }
}

/// A resource compared and hashed by what it renders to (see [`SharedResources`]).
struct ByValue<'a>(&'a Resource);

impl PartialEq for ByValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        same_resource(self.0, other.0)
    }
}

impl Eq for ByValue<'_> {}

impl Hash for ByValue<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.dropped_attributes_count.hash(h);
        hash_attrs(&self.0.attributes, h);
    }
}

fn hash_attrs<H: Hasher>(kvs: &[KeyValue], h: &mut H) {
    h.write_usize(kvs.len());
    for kv in kvs {
        kv.key.hash(h);
        hash_value(&kv.value, h);
    }
}

fn hash_value<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::String(s) => (0u8, s).hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Int(i) => (2u8, i).hash(h),
        Value::Double(d) => (3u8, d.to_bits()).hash(h),
        Value::Bytes(b) => (4u8, b).hash(h),
        Value::Array(items) => {
            (5u8, items.len()).hash(h);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Map(kvs) => {
            h.write_u8(6);
            hash_attrs(kvs, h);
        }
    }
}

fn same_resource(a: &Resource, b: &Resource) -> bool {
    // The spans of one read share their resource's decoded copy: most comparisons end here.
    std::ptr::eq(a, b)
        || a.dropped_attributes_count == b.dropped_attributes_count && same_attrs(&a.attributes, &b.attributes)
}

fn same_attrs(a: &[KeyValue], b: &[KeyValue]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.key == b.key && same_value(&a.value, &b.value))
}

/// `==`, except that doubles compare by their bits: what renders the same is the same.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y)),
        (Value::Map(x), Value::Map(y)) => same_attrs(x, y),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use tracex_core::{
        Event, InstrumentationScope, KeyValue, Link, Resource, SpanData, SpanId, SpanKind, Status, TraceId, Value,
    };

    use super::*;

    /// The OTLP/JSON mapping, spelled out: what the span renderings must produce (they used to be
    /// built with `json!` exactly like this).
    #[test]
    fn spans_render_every_value_type_events_and_links() {
        let (t, s, p) = (TraceId([1; 16]), SpanId([2; 8]), SpanId([3; 8]));
        let values = vec![
            KeyValue::new("s", "text \"quoted\""),
            KeyValue::new("b", true),
            KeyValue::new("i", -42i64),
            KeyValue::new("d", 1.5f64),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("bytes", Value::Bytes(vec![0, 255])),
            KeyValue::new("arr", Value::Array(vec![Value::Int(1), Value::String("x".into())])),
            KeyValue::new("map", Value::Map(vec![KeyValue::new("k", 7i64)])),
        ];
        let span = SpanData {
            trace_id: t,
            span_id: s,
            parent_span_id: Some(p),
            trace_state: "a=b".into(),
            flags: 1,
            name: "settle".into(),
            kind: SpanKind::Client,
            start_time_unix_nano: 1_700_000_000_000_000_001,
            end_time_unix_nano: 1_700_000_000_000_000_101,
            attributes: values,
            dropped_attributes_count: 1,
            events: vec![Event {
                time_unix_nano: 1_700_000_000_000_000_050,
                name: "exception".into(),
                attributes: vec![KeyValue::new("exception.message", "boom")],
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![Link {
                trace_id: t,
                span_id: p,
                trace_state: String::new(),
                attributes: vec![KeyValue::new("why", "retry")],
                dropped_attributes_count: 0,
                flags: 1,
            }],
            dropped_links_count: 4,
            status: Status::error("failed"),
        };
        let mut resource = Resource::new("facilitator");
        resource.attributes.push(KeyValue::new("service.version", "1.2"));
        let scope = InstrumentationScope { name: "tracex-rust".into(), version: "0.1.0".into(), ..Default::default() };
        let want = json!({
            "trace_id": t.to_hex(), "span_id": s.to_hex(), "parent_span_id": p.to_hex(), "trace_state": "a=b",
            "flags": 1, "name": "settle", "kind": "client",
            "start_time_unix_nano": "1700000000000000001", "end_time_unix_nano": "1700000000000000101", "duration_ns": 100,
            "status": { "code": "error", "message": "failed" },
            "attributes": [
                { "key": "s", "value": { "stringValue": "text \"quoted\"" } },
                { "key": "b", "value": { "boolValue": true } },
                { "key": "i", "value": { "intValue": "-42" } },
                { "key": "d", "value": { "doubleValue": 1.5 } },
                { "key": "nan", "value": { "doubleValue": null } },
                { "key": "bytes", "value": { "bytesValue": "AP8=" } },
                { "key": "arr", "value": { "arrayValue": { "values": [{ "intValue": "1" }, { "stringValue": "x" }] } } },
                { "key": "map", "value": { "kvlistValue": { "values": [{ "key": "k", "value": { "intValue": "7" } }] } } },
            ],
            "dropped_attributes_count": 1,
            "events": [{ "time_unix_nano": "1700000000000000050", "name": "exception",
                         "attributes": [{ "key": "exception.message", "value": { "stringValue": "boom" } }],
                         "dropped_attributes_count": 2 }],
            "dropped_events_count": 3,
            "links": [{ "trace_id": t.to_hex(), "span_id": p.to_hex(), "trace_state": "", "flags": 1,
                        "attributes": [{ "key": "why", "value": { "stringValue": "retry" } }], "dropped_attributes_count": 0 }],
            "dropped_links_count": 4,
            "service_name": "facilitator",
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "facilitator" } },
                { "key": "service.version", "value": { "stringValue": "1.2" } },
            ], "dropped_attributes_count": 0 },
            "scope": { "name": "tracex-rust", "version": "0.1.0", "attributes": [] },
        });
        assert_eq!(span_parts(&resource, &scope, &span), want);
        // The text is what `Value` prints (sorted keys): the same bytes as before.
        assert_eq!(span_text(&resource, &scope, &span), want.to_string());
        let stored = StoredSpan { resource: resource.into(), scope: scope.into(), span };
        let row = TreeRow { index: 0, depth: 2, detached: Some(Detached::ParentNotStored) };
        let mut with_row = want;
        with_row["depth"] = json!(2);
        with_row["detached"] = json!("parent_not_stored");
        assert_eq!(tree_row(&stored, &row).to_string(), with_row.to_string());
    }

    /// What counts as one resource in a page with `resources=shared`: whatever renders the same.
    #[test]
    fn shared_resources_are_the_distinct_renderings() {
        let with = |kvs: Vec<KeyValue>| {
            let mut r = Resource::new("svc");
            r.attributes.extend(kvs);
            r
        };
        let nested = |d: f64| Value::Map(vec![KeyValue::new("v", Value::Array(vec![Value::Double(d)]))]);
        let mut dropped = with(vec![]);
        dropped.dropped_attributes_count = 1;
        let resources = [
            with(vec![]),                                                   // 0
            with(vec![]),                                                   // equal to 0
            dropped,                                                        // 1
            with(vec![KeyValue::new("a", 1i64), KeyValue::new("b", 2i64)]), // 2
            with(vec![KeyValue::new("b", 2i64), KeyValue::new("a", 1i64)]), // 3: other order
            with(vec![KeyValue::new("a", 1i64), KeyValue::new("b", 2i64)]), // equal to 2
            with(vec![KeyValue::new("x", 0.0f64)]),                         // 4
            with(vec![KeyValue::new("x", -0.0f64)]),                        // 5: prints -0.0
            with(vec![KeyValue::new("x", f64::NAN)]),                       // 6
            with(vec![KeyValue::new("x", f64::NAN)]),                       // equal to 6
            with(vec![KeyValue::new("x", nested(1.5))]),                    // 7
            with(vec![KeyValue::new("x", nested(1.5))]),                    // equal to 7
            with(vec![KeyValue::new("x", nested(2.5))]),                    // 8
            with(vec![KeyValue::new("x", Value::Int(1))]),                  // 9
            with(vec![KeyValue::new("x", Value::Double(1.0))]),             // 10
            with(vec![]),                                                   // equal to 0
        ];
        let spans: Vec<StoredSpan> = resources
            .iter()
            .map(|r| StoredSpan {
                resource: r.clone().into(),
                scope: std::sync::Arc::default(),
                span: SpanData::default(),
            })
            .collect();
        let rows: Vec<TreeRow> = (0..spans.len()).map(|index| TreeRow { index, depth: 0, detached: None }).collect();
        let shared = SharedResources::of_rows(&spans, &rows);
        assert_eq!(shared.indexes, [0, 0, 1, 2, 3, 2, 4, 5, 6, 6, 7, 7, 8, 9, 10, 0]);
        assert_eq!(shared.resources.len(), 11);
        // Each entry renders as its spans' inline resource did.
        for (row, &i) in rows.iter().zip(&shared.indexes) {
            let text = |r: &Resource| serde_json::to_string(&ResourceJson(r)).unwrap();
            assert_eq!(text(shared.resources[i]), text(&spans[row.index].resource));
        }
        let all = serde_json::to_value(ResourcesJson(&shared.resources)).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 11);
        assert_eq!(
            all[0],
            json!({"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}], "dropped_attributes_count": 0})
        );
    }
}
