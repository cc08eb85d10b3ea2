//! Independence check of the hand-written OTLP encoder and decoder against a second protobuf
//! implementation: prost, with the OTLP trace messages declared here by hand after the official
//! `opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto` (field numbers and
//! types), not generated from or shared with the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

// Helpers outside `#[test]` functions expect well-formed fixtures.

use std::borrow::Cow;

use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use tracex_core::decode::decode_request;
use tracex_core::encode::{encode_request, encode_spans, encoded_len_request, encoded_len_spans};
use tracex_core::{
    Event, InstrumentationScope, KeyValue, Link, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind,
    Status, StatusCode, Str, TraceId, TraceRequest, Value,
};

/// The OTLP messages, as prost would generate them.
#[allow(clippy::enum_variant_names)]
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "3")]
        pub trace_state: String,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(fixed32, tag = "16")]
        pub flags: u32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(enumeration = "span::SpanKind", tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "10")]
        pub dropped_attributes_count: u32,
        #[prost(message, repeated, tag = "11")]
        pub events: Vec<span::Event>,
        #[prost(uint32, tag = "12")]
        pub dropped_events_count: u32,
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<span::Link>,
        #[prost(uint32, tag = "14")]
        pub dropped_links_count: u32,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }

    pub mod span {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Event {
            #[prost(fixed64, tag = "1")]
            pub time_unix_nano: u64,
            #[prost(string, tag = "2")]
            pub name: String,
            #[prost(message, repeated, tag = "3")]
            pub attributes: Vec<super::KeyValue>,
            #[prost(uint32, tag = "4")]
            pub dropped_attributes_count: u32,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Link {
            #[prost(bytes = "vec", tag = "1")]
            pub trace_id: Vec<u8>,
            #[prost(bytes = "vec", tag = "2")]
            pub span_id: Vec<u8>,
            #[prost(string, tag = "3")]
            pub trace_state: String,
            #[prost(message, repeated, tag = "4")]
            pub attributes: Vec<super::KeyValue>,
            #[prost(uint32, tag = "5")]
            pub dropped_attributes_count: u32,
            #[prost(fixed32, tag = "6")]
            pub flags: u32,
        }

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum SpanKind {
            Unspecified = 0,
            Internal = 1,
            Server = 2,
            Client = 3,
            Producer = 4,
            Consumer = 5,
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(enumeration = "status::StatusCode", tag = "3")]
        pub code: i32,
    }

    pub mod status {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum StatusCode {
            Unset = 0,
            Ok = 1,
            Error = 2,
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes, tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

// === model -> prost, with the encoder's documented conventions ===

fn id_bytes(bytes: &[u8]) -> Vec<u8> {
    if bytes.iter().all(|&b| b == 0) { Vec::new() } else { bytes.to_vec() }
}

fn to_pb_value(v: &Value) -> pb::AnyValue {
    use pb::any_value::Value as V;
    let value = match v {
        Value::String(s) => V::StringValue(s.to_string()),
        Value::Bool(b) => V::BoolValue(*b),
        Value::Int(i) => V::IntValue(*i),
        Value::Double(d) => V::DoubleValue(*d),
        Value::Bytes(b) => V::BytesValue(b.clone()),
        Value::Array(vs) => V::ArrayValue(pb::ArrayValue { values: vs.iter().map(to_pb_value).collect() }),
        Value::Map(kvs) => V::KvlistValue(pb::KeyValueList { values: to_pb_attrs(kvs) }),
    };
    pb::AnyValue { value: Some(value) }
}

fn to_pb_attrs(kvs: &[KeyValue]) -> Vec<pb::KeyValue> {
    kvs.iter().map(|kv| pb::KeyValue { key: kv.key.to_string(), value: Some(to_pb_value(&kv.value)) }).collect()
}

fn to_pb_span(s: &SpanData) -> pb::Span {
    pb::Span {
        trace_id: id_bytes(&s.trace_id.0),
        span_id: id_bytes(&s.span_id.0),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.to_string(),
        kind: s.kind.as_i32(),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: to_pb_attrs(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pb::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.to_string(),
                attributes: to_pb_attrs(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pb::span::Link {
                trace_id: id_bytes(&l.trace_id.0),
                span_id: id_bytes(&l.span_id.0),
                trace_state: l.trace_state.clone(),
                attributes: to_pb_attrs(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: (s.status != Status::default())
            .then(|| pb::Status { message: s.status.message.to_string(), code: s.status.code as i32 }),
    }
}

fn to_pb_resource(r: &Resource) -> pb::Resource {
    pb::Resource { attributes: to_pb_attrs(&r.attributes), dropped_attributes_count: r.dropped_attributes_count }
}

fn to_pb_scope(s: &InstrumentationScope) -> pb::InstrumentationScope {
    pb::InstrumentationScope {
        name: s.name.to_string(),
        version: s.version.to_string(),
        attributes: to_pb_attrs(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
    }
}

fn to_pb(req: &TraceRequest) -> pb::ExportTraceServiceRequest {
    pb::ExportTraceServiceRequest {
        resource_spans: req
            .resource_spans
            .iter()
            .map(|rs| pb::ResourceSpans {
                resource: Some(to_pb_resource(&rs.resource)),
                scope_spans: rs
                    .scope_spans
                    .iter()
                    .map(|ss| pb::ScopeSpans {
                        scope: Some(to_pb_scope(&ss.scope)),
                        spans: ss.spans.iter().map(to_pb_span).collect(),
                        schema_url: ss.schema_url.clone(),
                    })
                    .collect(),
                schema_url: rs.schema_url.clone(),
            })
            .collect(),
    }
}

// === prost -> model, written independently of the decoder ===

fn from_pb_value(v: &pb::AnyValue) -> Value {
    use pb::any_value::Value as V;
    match &v.value {
        None => Value::String(Cow::Borrowed("")),
        Some(V::StringValue(s)) => Value::String(Cow::Owned(s.clone())),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::Int(*i),
        Some(V::DoubleValue(d)) => Value::Double(*d),
        Some(V::BytesValue(b)) => Value::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(from_pb_value).collect()),
        Some(V::KvlistValue(l)) => Value::Map(from_pb_attrs(&l.values)),
    }
}

fn from_pb_attrs(kvs: &[pb::KeyValue]) -> Vec<KeyValue> {
    kvs.iter()
        .map(|kv| KeyValue {
            key: Cow::Owned(kv.key.clone()),
            value: kv.value.as_ref().map_or(Value::String(Cow::Borrowed("")), from_pb_value),
        })
        .collect()
}

fn trace_id(b: &[u8]) -> TraceId {
    if b.is_empty() { TraceId::INVALID } else { TraceId::from_slice(b).expect("16-byte trace id") }
}

fn span_id(b: &[u8]) -> SpanId {
    if b.is_empty() { SpanId::INVALID } else { SpanId::from_slice(b).expect("8-byte span id") }
}

fn from_pb_span(s: &pb::Span) -> SpanData {
    SpanData {
        trace_id: trace_id(&s.trace_id),
        span_id: span_id(&s.span_id),
        trace_state: s.trace_state.clone(),
        parent_span_id: (!s.parent_span_id.is_empty()).then(|| span_id(&s.parent_span_id)),
        flags: s.flags,
        name: Cow::Owned(s.name.clone()),
        kind: SpanKind::from_i32(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: from_pb_attrs(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: Cow::Owned(e.name.clone()),
                attributes: from_pb_attrs(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| Link {
                trace_id: trace_id(&l.trace_id),
                span_id: span_id(&l.span_id),
                trace_state: l.trace_state.clone(),
                attributes: from_pb_attrs(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: s.status.as_ref().map_or_else(Status::default, |st| Status {
            code: StatusCode::from_i32(st.code),
            message: Cow::Owned(st.message.clone()),
        }),
    }
}

fn from_pb(req: &pb::ExportTraceServiceRequest) -> TraceRequest {
    TraceRequest {
        resource_spans: req
            .resource_spans
            .iter()
            .map(|rs| ResourceSpans {
                resource: rs.resource.as_ref().map_or_else(Resource::default, |r| Resource {
                    attributes: from_pb_attrs(&r.attributes),
                    dropped_attributes_count: r.dropped_attributes_count,
                }),
                scope_spans: rs
                    .scope_spans
                    .iter()
                    .map(|ss| ScopeSpans {
                        scope: ss.scope.as_ref().map_or_else(InstrumentationScope::default, |s| InstrumentationScope {
                            name: Cow::Owned(s.name.clone()),
                            version: Cow::Owned(s.version.clone()),
                            attributes: from_pb_attrs(&s.attributes),
                            dropped_attributes_count: s.dropped_attributes_count,
                        }),
                        spans: ss.spans.iter().map(from_pb_span).collect(),
                        schema_url: ss.schema_url.clone(),
                    })
                    .collect(),
                schema_url: rs.schema_url.clone(),
            })
            .collect(),
    }
}

// === strategies ===

fn arb_str() -> impl Strategy<Value = Str> {
    prop_oneof![Just(Cow::Borrowed("")), "[a-z._]{1,12}".prop_map(Cow::Owned), any::<String>().prop_map(Cow::Owned)]
}

fn arb_string() -> impl Strategy<Value = String> {
    arb_str().prop_map(Cow::into_owned)
}

fn arb_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>()]
}

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), any::<u64>()]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arb_str().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MIN), any::<i64>()].prop_map(Value::Int),
        any::<f64>().prop_filter("NaN != NaN", |d| !d.is_nan()).prop_map(Value::Double),
        vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((arb_str(), inner), 0..4)
                .prop_map(|kvs| Value::Map(kvs.into_iter().map(|(key, value)| KeyValue { key, value }).collect())),
        ]
    })
}

fn arb_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((arb_str(), arb_value()).prop_map(|(key, value)| KeyValue { key, value }), 0..4)
}

fn arb_trace_id() -> impl Strategy<Value = TraceId> {
    prop_oneof![Just(TraceId::INVALID), any::<[u8; 16]>().prop_map(TraceId)]
}

fn arb_span_id() -> impl Strategy<Value = SpanId> {
    prop_oneof![Just(SpanId::INVALID), any::<[u8; 8]>().prop_map(SpanId)]
}

fn arb_span() -> impl Strategy<Value = SpanData> {
    let event = (arb_u64(), arb_str(), arb_attrs(), arb_u32()).prop_map(|(t, name, attributes, dropped)| Event {
        time_unix_nano: t,
        name,
        attributes,
        dropped_attributes_count: dropped,
    });
    let link = (arb_trace_id(), arb_span_id(), arb_string(), arb_attrs(), arb_u32(), arb_u32()).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count,
            flags,
        },
    );
    let ids = (arb_trace_id(), arb_span_id(), arb_string(), prop::option::of(arb_span_id()), arb_u32());
    let header = (arb_str(), (0..6i32).prop_map(SpanKind::from_i32), arb_u64(), arb_u64());
    let body = (
        arb_attrs(),
        arb_u32(),
        vec(event, 0..3),
        arb_u32(),
        vec(link, 0..3),
        arb_u32(),
        ((0..3i32).prop_map(StatusCode::from_i32), arb_str()).prop_map(|(code, message)| Status { code, message }),
    );
    (ids, header, body).prop_map(
        |(
            (trace_id, span_id, trace_state, parent_span_id, flags),
            (name, kind, start_time_unix_nano, end_time_unix_nano),
            (attributes, dropped_attributes_count, events, dropped_events_count, links, dropped_links_count, status),
        )| SpanData {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
        },
    )
}

fn arb_resource() -> impl Strategy<Value = Resource> {
    (arb_attrs(), arb_u32())
        .prop_map(|(attributes, dropped_attributes_count)| Resource { attributes, dropped_attributes_count })
}

fn arb_scope() -> impl Strategy<Value = InstrumentationScope> {
    (arb_str(), arb_str(), arb_attrs(), arb_u32()).prop_map(|(name, version, attributes, dropped)| {
        InstrumentationScope { name, version, attributes, dropped_attributes_count: dropped }
    })
}

fn arb_request() -> impl Strategy<Value = TraceRequest> {
    let scope_spans = (arb_scope(), vec(arb_span(), 0..3), arb_string())
        .prop_map(|(scope, spans, schema_url)| ScopeSpans { scope, spans, schema_url });
    let resource_spans = (arb_resource(), vec(scope_spans, 0..3), arb_string())
        .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans { resource, scope_spans, schema_url });
    vec(resource_spans, 0..3).prop_map(|resource_spans| TraceRequest { resource_spans })
}

// === a populated example ===

fn populated() -> (Resource, InstrumentationScope, Vec<SpanData>) {
    let resource = Resource::new("facilitator").with("service.version", "1.2.3").with("x402.operator.id", 7i64);
    let scope = InstrumentationScope {
        name: "tracex".into(),
        version: "0.1.0".into(),
        attributes: vec![KeyValue::new("scope.attr", true)],
        dropped_attributes_count: 1,
    };
    let root = SpanData {
        trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        span_id: SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        trace_state: "congo=t61rcWkgMzE".into(),
        parent_span_id: None,
        flags: 0x301,
        name: "settle".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            KeyValue::new("x402.amount", "1000000"),
            KeyValue::new("retries", -3i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("ok", false),
            KeyValue::new("raw", vec![0u8, 255]),
            KeyValue::new("tags", vec!["a", "b"]),
            KeyValue::new(
                "nested",
                Value::Map(vec![
                    KeyValue::new("inner", Value::Array(vec![Value::Int(1), Value::Array(vec![])])),
                    KeyValue::new("empty", ""),
                ]),
            ),
        ],
        dropped_attributes_count: 2,
        events: vec![Event {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception".into(),
            attributes: vec![KeyValue::new("exception.message", "boom")],
            dropped_attributes_count: 0,
        }],
        dropped_events_count: 3,
        links: vec![Link {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([8; 8]),
            trace_state: "k=v".into(),
            attributes: vec![KeyValue::new("link.kind", "follows")],
            dropped_attributes_count: 1,
            flags: 1,
        }],
        dropped_links_count: 4,
        status: Status::error("insufficient funds"),
    };
    let child = SpanData {
        span_id: SpanId([1; 8]),
        parent_span_id: Some(root.span_id),
        name: "rpc".into(),
        kind: SpanKind::Client,
        attributes: vec![],
        events: vec![],
        links: vec![],
        status: Status::ok(),
        flags: 1,
        ..root.clone()
    };
    (resource, scope, vec![root, child])
}

fn one_resource_request(resource: Resource, scope: InstrumentationScope, spans: Vec<SpanData>) -> TraceRequest {
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource,
            scope_spans: vec![ScopeSpans { scope, spans, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn prost_reads_our_populated_batch_and_writes_the_same_bytes() {
    let (resource, scope, spans) = populated();
    let mut ours = Vec::new();
    encode_spans(&resource, &scope, &spans, &mut ours);
    assert_eq!(ours.len(), encoded_len_spans(&resource, &scope, &spans));

    let theirs = pb::ExportTraceServiceRequest::decode(ours.as_slice()).expect("prost decodes our bytes");
    let span = &theirs.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(hex::encode(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.kind, pb::span::SpanKind::Server as i32);
    assert_eq!(span.flags, 0x301);
    assert!(span.parent_span_id.is_empty());
    assert_eq!(span.attributes[1].value, Some(pb::AnyValue { value: Some(pb::any_value::Value::IntValue(-3)) }));
    assert_eq!(span.status.as_ref().map(|s| (s.code, s.message.as_str())), Some((2, "insufficient funds")));
    let child = &theirs.resource_spans[0].scope_spans[0].spans[1];
    assert_eq!(child.parent_span_id, spans[0].span_id.0.to_vec());

    let req = one_resource_request(resource, scope, spans);
    assert_eq!(theirs, to_pb(&req));
    assert_eq!(theirs.encode_to_vec(), ours, "prost re-encodes to identical bytes");
    assert_eq!(theirs.encoded_len(), encoded_len_request(&req));
}

#[test]
fn we_read_prost_bytes_including_forms_our_encoder_never_writes() {
    let (resource, scope, spans) = populated();
    let req = one_resource_request(resource, scope, spans);
    let mut msg = to_pb(&req);
    assert_eq!(decode_request(&msg.encode_to_vec()).expect("decodes"), req);

    // Absent resource and scope, an explicit empty status, an explicit Unset status with an
    // unknown code, a KeyValue with no value, an AnyValue with no member, an empty trace id.
    let rs = &mut msg.resource_spans[0];
    rs.resource = None;
    rs.scope_spans[0].scope = None;
    let span = &mut rs.scope_spans[0].spans[0];
    span.status = Some(pb::Status::default());
    span.trace_id.clear();
    span.kind = 42;
    span.attributes.push(pb::KeyValue { key: "no-value".into(), value: None });
    span.attributes.push(pb::KeyValue { key: "empty".into(), value: Some(pb::AnyValue { value: None }) });
    rs.scope_spans[0].spans[1].status = Some(pb::Status { message: String::new(), code: 17 });
    let bytes = msg.encode_to_vec();

    let got = decode_request(&bytes).expect("decodes");
    assert_eq!(got, from_pb(&msg));
    let s = &got.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(got.resource_spans[0].resource, Resource::default());
    assert_eq!(s.trace_id, TraceId::INVALID);
    assert_eq!(s.kind, SpanKind::Unspecified);
    assert_eq!(s.status, Status::default());
    assert_eq!(s.attribute("no-value"), Some(&Value::String(Cow::Borrowed(""))));
    assert_eq!(s.attribute("empty"), Some(&Value::String(Cow::Borrowed(""))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (a) prost decodes our `encode_spans` bytes to the expected message and re-encodes them
    /// byte for byte.
    #[test]
    fn prost_agrees_with_encode_spans(
        resource in arb_resource(),
        scope in arb_scope(),
        spans in vec(arb_span(), 0..4),
    ) {
        let mut ours = Vec::new();
        encode_spans(&resource, &scope, &spans, &mut ours);
        let theirs = pb::ExportTraceServiceRequest::decode(ours.as_slice()).expect("prost decodes");
        let req = one_resource_request(resource, scope, spans);
        prop_assert_eq!(&theirs, &to_pb(&req));
        prop_assert_eq!(theirs.encode_to_vec(), ours);
    }

    /// (a) the same for the general `encode_request`.
    #[test]
    fn prost_agrees_with_encode_request(req in arb_request()) {
        let mut ours = Vec::new();
        encode_request(&req, &mut ours);
        let expected = to_pb(&req);
        prop_assert_eq!(expected.encode_to_vec(), ours.clone());
        let theirs = pb::ExportTraceServiceRequest::decode(ours.as_slice()).expect("prost decodes");
        prop_assert_eq!(theirs, expected);
    }

    /// (b) bytes written by prost decode with our decoder to the equivalent model.
    #[test]
    fn we_agree_with_prost_encoding(req in arb_request()) {
        let bytes = to_pb(&req).encode_to_vec();
        prop_assert_eq!(decode_request(&bytes).expect("decodes"), req);
    }

    /// Both decoders accept and reject the same mangled inputs (where prost accepts, we agree on
    /// the content) and neither panics.
    #[test]
    fn decoders_agree_on_mangled_input(
        req in arb_request(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0..8u8,
    ) {
        let mut bytes = Vec::new();
        encode_request(&req, &mut bytes);
        if bytes.is_empty() {
            return Ok(());
        }
        let mut flipped = bytes.clone();
        flipped[flip.index(bytes.len())] ^= 1 << bit;
        for input in [&bytes[..cut.index(bytes.len())], &flipped[..]] {
            let ours = decode_request(input);
            if let Ok(theirs) = pb::ExportTraceServiceRequest::decode(input) {
                // prost is laxer (ids of any length, groups skipped), so compare only when both
                // accept (then the ids have valid lengths and `from_pb` applies).
                if let Ok(ours) = ours {
                    prop_assert_eq!(ours, from_pb(&theirs));
                }
            }
        }
    }
}
