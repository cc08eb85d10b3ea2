//! OTLP protobuf encoding, by hand.
//!
//! Writes an `ExportTraceServiceRequest` (`opentelemetry/proto/collector/trace/v1`) straight from
//! the [model](crate::model) structs: no intermediate message structs, no per-field allocation.
//! Small messages (a `KeyValue`, a resource) are sized first and then written, as prost does. A span
//! and the messages around spans are written in one pass instead: their body goes after a
//! placeholder for its length, which is filled in (and the body moved, when the length's varint
//! turns out shorter or longer than guessed) once the body is written. Sizing a span walks every
//! attribute and event, and doing it before writing it took a third of the encoder's time (`perf`,
//! `benches/seal.rs`). The `*_len` functions still give the exact size ([`encoded_len_spans`]).
//!
//! The bytes are those prost would write for the equivalent generated OTLP message, following the
//! proto3 rules: default (zero / empty) scalar fields are omitted, repeated and oneof fields are
//! written in field order. The model's own conventions map onto OTLP as follows:
//!
//! * an invalid (all-zero) trace or span id is written as an absent `bytes` field (as the
//!   OpenTelemetry Collector does); a valid one is always 16 / 8 bytes;
//! * `parent_span_id: None` is omitted, `Some(id)` is always written (8 bytes);
//! * a default [`Status`] (`Unset`, empty message) is omitted, any other is written;
//! * `ResourceSpans.resource` and `ScopeSpans.scope` are always written, even when empty;
//! * a `KeyValue`'s value is always written, and within it the `AnyValue` oneof is always set,
//!   even for `""`, `0`, `false`, `0.0`, empty bytes, empty arrays and empty maps.

use std::borrow::Borrow;

use crate::model::{
    Event, InstrumentationScope, KeyValue, Link, Resource, ResourceSpans, SpanData, SpanId, Status, TraceId,
    TraceRequest, Value,
};

// === wire-level helpers ===

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_FIXED32: u8 = 5;

/// A one-byte field key (every field number used here but `Span.flags` is below 16).
const fn key(field: u8, wire_type: u8) -> u8 {
    assert!(field > 0 && field < 16, "field number needs a multi-byte key");
    (field << 3) | wire_type
}

/// A one-byte field key, evaluated at compile time.
macro_rules! k {
    ($field:expr, $wire_type:expr) => {
        const { key($field, $wire_type) }
    };
}

/// `Span.flags` is field 16 (fixed32): its key `(16 << 3) | 5 = 133` takes two varint bytes.
const SPAN_FLAGS_KEY: [u8; 2] = [0x85, 0x01];

/// Bytes needed to write `v` as a varint (1..=10).
#[inline]
pub(crate) const fn varint_len(v: u64) -> usize {
    // Same formula as prost: bits needed, times 9/64, rounded up; at least 1.
    ((((v | 1).leading_zeros() ^ 63) * 9 + 73) / 64) as usize
}

/// An `int64`'s varint payload: its two's-complement bits (negative values take ten bytes).
#[allow(clippy::cast_sign_loss, reason = "protobuf encodes int64 as its two's-complement bits")]
fn int64_bits(i: i64) -> u64 {
    i as u64
}

/// Appends `v` as a varint (protobuf's base-128, least significant group first; the collector's
/// stored statistics use it too).
#[inline]
#[allow(clippy::cast_possible_truncation, reason = "each byte takes the low 7 bits")]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Size of a length-delimited field with a one-byte key and a body of `body` bytes.
#[inline]
const fn len_delimited(body: usize) -> usize {
    1 + varint_len(body as u64) + body
}

/// Size of an optional (proto3, omitted when empty) string or bytes field.
#[inline]
const fn bytes_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { len_delimited(len) }
}

/// Size of a proto3 `uint32` / enum field (omitted when zero).
#[inline]
const fn u32_field_len(v: u32) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v as u64) }
}

/// Size of a proto3 `fixed64` field (omitted when zero).
#[inline]
const fn fixed64_field_len(v: u64) -> usize {
    if v == 0 { 0 } else { 9 }
}

/// Size of a proto3 `fixed32` field with a one-byte key (omitted when zero).
#[inline]
const fn fixed32_field_len(v: u32) -> usize {
    if v == 0 { 0 } else { 5 }
}

#[inline]
fn put_len_prefix(out: &mut Vec<u8>, key: u8, len: usize) {
    out.push(key);
    put_varint(out, len as u64);
}

/// Starts a length-delimited field whose body is not sized yet: writes `key` and `reserved` bytes
/// for the length, and returns where the body starts ([`close_len`] fills the length in).
#[inline]
fn open_len(out: &mut Vec<u8>, key: u8, reserved: usize) -> usize {
    out.push(key);
    out.extend_from_slice(&[0; 4][..reserved]);
    out.len()
}

/// Ends the field [`open_len`] started at `body_start` with `reserved` length bytes: writes the
/// body's length there, first moving the body when its varint takes a different number of bytes
/// (the bytes are exactly those of sizing first; a wrong guess costs one move of the body).
#[inline]
#[allow(clippy::cast_possible_truncation, reason = "each byte takes the low 7 bits")]
fn close_len(out: &mut Vec<u8>, body_start: usize, reserved: usize) {
    let len = out.len() - body_start;
    let prefix_at = body_start - reserved;
    let need = varint_len(len as u64);
    if need != reserved {
        out.resize(out.len().max(prefix_at + need + len), 0);
        out.copy_within(body_start..body_start + len, prefix_at + need);
        out.truncate(prefix_at + need + len);
    }
    let (mut v, mut at) = (len as u64, prefix_at);
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
}

/// Length bytes reserved for a span's body: 128 bytes to 16 KiB (a span with a few attributes).
const SPAN_LEN_GUESS: usize = 2;
/// Length bytes reserved for the messages holding a batch's spans: 16 KiB to 2 MiB.
const BATCH_LEN_GUESS: usize = 3;

#[inline]
fn put_bytes_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_prefix(out, key, bytes.len());
        out.extend_from_slice(bytes);
    }
}

#[inline]
fn put_u32_field(out: &mut Vec<u8>, key: u8, v: u32) {
    if v != 0 {
        out.push(key);
        put_varint(out, u64::from(v));
    }
}

#[inline]
fn put_fixed64_field(out: &mut Vec<u8>, key: u8, v: u64) {
    if v != 0 {
        out.push(key);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[inline]
fn trace_id_bytes(id: &TraceId) -> &[u8] {
    if id.is_valid() { &id.0 } else { &[] }
}

#[inline]
fn span_id_bytes(id: &SpanId) -> &[u8] {
    if id.is_valid() { &id.0 } else { &[] }
}

// === AnyValue, KeyValue ===

/// Body length of an `AnyValue` (the oneof is always written).
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => len_delimited(s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(int64_bits(*i)),
        Value::Double(_) => 9,
        Value::Bytes(b) => len_delimited(b.len()),
        Value::Array(values) => len_delimited(array_value_len(values)),
        Value::Map(kvs) => len_delimited(key_values_len(kvs)),
    }
}

/// Body length of an `ArrayValue` (`values = 1`).
fn array_value_len(values: &[Value]) -> usize {
    values.iter().map(|v| len_delimited(any_value_len(v))).sum()
}

/// Body length of a `KeyValue`.
fn key_value_len(kv: &KeyValue) -> usize {
    bytes_field_len(kv.key.len()) + len_delimited(any_value_len(&kv.value))
}

/// Length of a repeated `KeyValue` field with a one-byte key (also the body of a `KeyValueList`).
fn key_values_len(kvs: &[KeyValue]) -> usize {
    kvs.iter().map(|kv| len_delimited(key_value_len(kv))).sum()
}

fn put_any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => {
            put_len_prefix(out, k!(1, WT_LEN), s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => {
            out.push(k!(2, WT_VARINT));
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(k!(3, WT_VARINT));
            put_varint(out, int64_bits(*i));
        }
        Value::Double(d) => {
            out.push(k!(4, WT_FIXED64));
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Array(values) => {
            put_len_prefix(out, k!(5, WT_LEN), array_value_len(values));
            for v in values {
                put_len_prefix(out, k!(1, WT_LEN), any_value_len(v));
                put_any_value(out, v);
            }
        }
        Value::Map(kvs) => {
            put_len_prefix(out, k!(6, WT_LEN), key_values_len(kvs));
            put_key_values(out, k!(1, WT_LEN), kvs);
        }
        Value::Bytes(b) => {
            put_len_prefix(out, k!(7, WT_LEN), b.len());
            out.extend_from_slice(b);
        }
    }
}

/// Writes a repeated `KeyValue` field.
fn put_key_values(out: &mut Vec<u8>, field_key: u8, kvs: &[KeyValue]) {
    for kv in kvs {
        // The value's length once: `key_value_len` would size it again.
        let value_len = any_value_len(&kv.value);
        put_len_prefix(out, field_key, bytes_field_len(kv.key.len()) + len_delimited(value_len));
        put_bytes_field(out, k!(1, WT_LEN), kv.key.as_bytes());
        put_len_prefix(out, k!(2, WT_LEN), value_len);
        put_any_value(out, &kv.value);
    }
}

// === Resource, InstrumentationScope ===

fn resource_len(r: &Resource) -> usize {
    key_values_len(&r.attributes) + u32_field_len(r.dropped_attributes_count)
}

fn put_resource(out: &mut Vec<u8>, r: &Resource) {
    put_key_values(out, k!(1, WT_LEN), &r.attributes);
    put_u32_field(out, k!(2, WT_VARINT), r.dropped_attributes_count);
}

fn scope_len(s: &InstrumentationScope) -> usize {
    bytes_field_len(s.name.len())
        + bytes_field_len(s.version.len())
        + key_values_len(&s.attributes)
        + u32_field_len(s.dropped_attributes_count)
}

fn put_scope(out: &mut Vec<u8>, s: &InstrumentationScope) {
    put_bytes_field(out, k!(1, WT_LEN), s.name.as_bytes());
    put_bytes_field(out, k!(2, WT_LEN), s.version.as_bytes());
    put_key_values(out, k!(3, WT_LEN), &s.attributes);
    put_u32_field(out, k!(4, WT_VARINT), s.dropped_attributes_count);
}

// === Span and its parts ===

fn event_len(e: &Event) -> usize {
    fixed64_field_len(e.time_unix_nano)
        + bytes_field_len(e.name.len())
        + key_values_len(&e.attributes)
        + u32_field_len(e.dropped_attributes_count)
}

fn put_event(out: &mut Vec<u8>, e: &Event) {
    put_fixed64_field(out, k!(1, WT_FIXED64), e.time_unix_nano);
    put_bytes_field(out, k!(2, WT_LEN), e.name.as_bytes());
    put_key_values(out, k!(3, WT_LEN), &e.attributes);
    put_u32_field(out, k!(4, WT_VARINT), e.dropped_attributes_count);
}

fn link_len(l: &Link) -> usize {
    bytes_field_len(trace_id_bytes(&l.trace_id).len())
        + bytes_field_len(span_id_bytes(&l.span_id).len())
        + bytes_field_len(l.trace_state.len())
        + key_values_len(&l.attributes)
        + u32_field_len(l.dropped_attributes_count)
        + fixed32_field_len(l.flags)
}

fn put_link(out: &mut Vec<u8>, l: &Link) {
    put_bytes_field(out, k!(1, WT_LEN), trace_id_bytes(&l.trace_id));
    put_bytes_field(out, k!(2, WT_LEN), span_id_bytes(&l.span_id));
    put_bytes_field(out, k!(3, WT_LEN), l.trace_state.as_bytes());
    put_key_values(out, k!(4, WT_LEN), &l.attributes);
    put_u32_field(out, k!(5, WT_VARINT), l.dropped_attributes_count);
    if l.flags != 0 {
        out.push(k!(6, WT_FIXED32));
        out.extend_from_slice(&l.flags.to_le_bytes());
    }
}

fn status_is_default(s: &Status) -> bool {
    s.code as u8 == 0 && s.message.is_empty()
}

fn status_len(s: &Status) -> usize {
    bytes_field_len(s.message.len()) + u32_field_len(u32::from(s.code as u8))
}

fn put_status(out: &mut Vec<u8>, s: &Status) {
    put_bytes_field(out, k!(2, WT_LEN), s.message.as_bytes());
    put_u32_field(out, k!(3, WT_VARINT), u32::from(s.code as u8));
}

/// Body length of one `Span`.
fn span_len(s: &SpanData) -> usize {
    let parent = match s.parent_span_id {
        Some(_) => len_delimited(8),
        None => 0,
    };
    let status = if status_is_default(&s.status) { 0 } else { len_delimited(status_len(&s.status)) };
    bytes_field_len(trace_id_bytes(&s.trace_id).len())
        + bytes_field_len(span_id_bytes(&s.span_id).len())
        + bytes_field_len(s.trace_state.len())
        + parent
        + bytes_field_len(s.name.len())
        + u32_field_len(u32::from(s.kind as u8))
        + fixed64_field_len(s.start_time_unix_nano)
        + fixed64_field_len(s.end_time_unix_nano)
        + key_values_len(&s.attributes)
        + u32_field_len(s.dropped_attributes_count)
        + s.events.iter().map(|e| len_delimited(event_len(e))).sum::<usize>()
        + u32_field_len(s.dropped_events_count)
        + s.links.iter().map(|l| len_delimited(link_len(l))).sum::<usize>()
        + u32_field_len(s.dropped_links_count)
        + status
        + if s.flags == 0 { 0 } else { SPAN_FLAGS_KEY.len() + 4 }
}

fn put_span(out: &mut Vec<u8>, s: &SpanData) {
    put_bytes_field(out, k!(1, WT_LEN), trace_id_bytes(&s.trace_id));
    put_bytes_field(out, k!(2, WT_LEN), span_id_bytes(&s.span_id));
    put_bytes_field(out, k!(3, WT_LEN), s.trace_state.as_bytes());
    if let Some(parent) = &s.parent_span_id {
        put_len_prefix(out, k!(4, WT_LEN), 8);
        out.extend_from_slice(&parent.0);
    }
    put_bytes_field(out, k!(5, WT_LEN), s.name.as_bytes());
    put_u32_field(out, k!(6, WT_VARINT), u32::from(s.kind as u8));
    put_fixed64_field(out, k!(7, WT_FIXED64), s.start_time_unix_nano);
    put_fixed64_field(out, k!(8, WT_FIXED64), s.end_time_unix_nano);
    put_key_values(out, k!(9, WT_LEN), &s.attributes);
    put_u32_field(out, k!(10, WT_VARINT), s.dropped_attributes_count);
    for e in &s.events {
        put_len_prefix(out, k!(11, WT_LEN), event_len(e));
        put_event(out, e);
    }
    put_u32_field(out, k!(12, WT_VARINT), s.dropped_events_count);
    for l in &s.links {
        put_len_prefix(out, k!(13, WT_LEN), link_len(l));
        put_link(out, l);
    }
    put_u32_field(out, k!(14, WT_VARINT), s.dropped_links_count);
    if !status_is_default(&s.status) {
        put_len_prefix(out, k!(15, WT_LEN), status_len(&s.status));
        put_status(out, &s.status);
    }
    if s.flags != 0 {
        out.extend_from_slice(&SPAN_FLAGS_KEY);
        out.extend_from_slice(&s.flags.to_le_bytes());
    }
}

// === ScopeSpans, ResourceSpans, request ===

/// Body length of a `ScopeSpans`.
fn scope_spans_len(scope: &InstrumentationScope, spans: &[SpanData], schema_url: &str) -> usize {
    len_delimited(scope_len(scope))
        + spans.iter().map(|s| len_delimited(span_len(s))).sum::<usize>()
        + bytes_field_len(schema_url.len())
}

/// Writes a `ScopeSpans` body, each span's length filled in after it is written.
fn put_scope_spans<S: Borrow<SpanData>>(
    out: &mut Vec<u8>,
    scope: &InstrumentationScope,
    spans: &[S],
    schema_url: &str,
) {
    put_len_prefix(out, k!(1, WT_LEN), scope_len(scope));
    put_scope(out, scope);
    for s in spans {
        let body = open_len(out, k!(2, WT_LEN), SPAN_LEN_GUESS);
        put_span(out, s.borrow());
        close_len(out, body, SPAN_LEN_GUESS);
    }
    put_bytes_field(out, k!(3, WT_LEN), schema_url.as_bytes());
}

/// Body length of a `ResourceSpans`.
fn resource_spans_len(rs: &ResourceSpans) -> usize {
    len_delimited(resource_len(&rs.resource))
        + rs.scope_spans
            .iter()
            .map(|ss| len_delimited(scope_spans_len(&ss.scope, &ss.spans, &ss.schema_url)))
            .sum::<usize>()
        + bytes_field_len(rs.schema_url.len())
}

fn put_resource_spans(out: &mut Vec<u8>, rs: &ResourceSpans) {
    put_len_prefix(out, k!(1, WT_LEN), resource_len(&rs.resource));
    put_resource(out, &rs.resource);
    for ss in &rs.scope_spans {
        let body = open_len(out, k!(2, WT_LEN), BATCH_LEN_GUESS);
        put_scope_spans(out, &ss.scope, &ss.spans, &ss.schema_url);
        close_len(out, body, BATCH_LEN_GUESS);
    }
    put_bytes_field(out, k!(3, WT_LEN), rs.schema_url.as_bytes());
}

/// The exact number of bytes [`encode_spans`] appends for these arguments.
pub fn encoded_len_spans(resource: &Resource, scope: &InstrumentationScope, spans: &[SpanData]) -> usize {
    let scope_spans = scope_spans_len(scope, spans, "");
    let resource_spans = len_delimited(resource_len(resource)) + len_delimited(scope_spans);
    len_delimited(resource_spans)
}

/// Appends an OTLP `ExportTraceServiceRequest` holding one `ResourceSpans` (for `resource`) with one
/// `ScopeSpans` (for `scope`, empty schema URL) holding all `spans`, in order.
///
/// The bytes are identical to [`encode_request`] of the equivalent [`TraceRequest`]. `out` is
/// appended to, never cleared, and grows as it is written: a caller that encodes repeatedly keeps
/// one buffer (the batcher does), or reserves [`encoded_len_spans`] first.
pub fn encode_spans(resource: &Resource, scope: &InstrumentationScope, spans: &[SpanData], out: &mut Vec<u8>) {
    encode_spans_of(resource, scope, spans, out);
}

/// [`encode_spans`] for spans in boxes (the batcher's) or by value.
pub(crate) fn encode_spans_of<S: Borrow<SpanData>>(
    resource: &Resource,
    scope: &InstrumentationScope,
    spans: &[S],
    out: &mut Vec<u8>,
) {
    let resource_spans = open_len(out, k!(1, WT_LEN), BATCH_LEN_GUESS);
    put_len_prefix(out, k!(1, WT_LEN), resource_len(resource));
    put_resource(out, resource);
    let scope_spans = open_len(out, k!(2, WT_LEN), BATCH_LEN_GUESS);
    put_scope_spans(out, scope, spans, "");
    close_len(out, scope_spans, BATCH_LEN_GUESS);
    close_len(out, resource_spans, BATCH_LEN_GUESS);
}

/// The exact number of bytes [`encode_request`] appends for `req`.
pub fn encoded_len_request(req: &TraceRequest) -> usize {
    req.resource_spans.iter().map(|rs| len_delimited(resource_spans_len(rs))).sum()
}

/// Appends `req` as an OTLP `ExportTraceServiceRequest` (protobuf). `out` is appended to, never
/// cleared, and grows as it is written ([`encoded_len_request`] gives the exact size).
pub fn encode_request(req: &TraceRequest, out: &mut Vec<u8>) {
    for rs in &req.resource_spans {
        let body = open_len(out, k!(1, WT_LEN), BATCH_LEN_GUESS);
        put_resource_spans(out, rs);
        close_len(out, body, BATCH_LEN_GUESS);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{ScopeSpans, SpanKind, StatusCode};

    fn enc_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        put_any_value(&mut out, v);
        assert_eq!(out.len(), any_value_len(v));
        out
    }

    fn enc_span(s: &SpanData) -> Vec<u8> {
        let mut out = Vec::new();
        put_span(&mut out, s);
        assert_eq!(out.len(), span_len(s));
        out
    }

    #[test]
    fn varint_lengths_at_boundaries() {
        let cases: [(u64, usize); 12] = [
            (0, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            ((1 << 21) - 1, 3),
            (1 << 21, 4),
            (u64::from(u32::MAX), 5),
            ((1 << 56) - 1, 8),
            ((1 << 63) - 1, 9),
            (u64::MAX, 10),
        ];
        for (v, len) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(varint_len(v), len, "{v}");
        }
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn scalar_values_are_always_written() {
        assert_eq!(enc_value(&Value::String(Cow::Borrowed(""))), [0x0a, 0x00]);
        assert_eq!(enc_value(&Value::Bool(false)), [0x10, 0x00]);
        assert_eq!(enc_value(&Value::Bool(true)), [0x10, 0x01]);
        assert_eq!(enc_value(&Value::Int(0)), [0x18, 0x00]);
        assert_eq!(enc_value(&Value::Int(150)), [0x18, 0x96, 0x01]);
        assert_eq!(enc_value(&Value::Double(0.0)), [0x21, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc_value(&Value::Double(1.0)), [0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
        assert_eq!(enc_value(&Value::Bytes(vec![])), [0x3a, 0x00]);
        assert_eq!(enc_value(&Value::Bytes(vec![1, 2])), [0x3a, 0x02, 1, 2]);
        assert_eq!(enc_value(&Value::Array(vec![])), [0x2a, 0x00]);
        assert_eq!(enc_value(&Value::Map(vec![])), [0x32, 0x00]);
        assert_eq!(enc_value(&Value::from("hi")), [0x0a, 0x02, b'h', b'i']);
    }

    #[test]
    fn negative_ints_are_ten_byte_twos_complement() {
        assert_eq!(enc_value(&Value::Int(-1)), [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let min = enc_value(&Value::Int(i64::MIN));
        assert_eq!(min, [0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(enc_value(&Value::Int(i64::MAX)).len(), 1 + 9);
    }

    #[test]
    fn nested_arrays_and_maps() {
        let v = Value::Array(vec![Value::Int(1), Value::Array(vec![Value::Bool(true)])]);
        // AnyValue{array_value: ArrayValue{values: [AnyValue{int 1}, AnyValue{array: [AnyValue{bool}]}]}}
        assert_eq!(enc_value(&v), [0x2a, 0x0c, 0x0a, 0x02, 0x18, 0x01, 0x0a, 0x06, 0x2a, 0x04, 0x0a, 0x02, 0x10, 0x01]);
        let m = Value::Map(vec![KeyValue::new("k", Value::Map(vec![KeyValue::new("", 2i64)]))]);
        // AnyValue{kvlist: {values: [KV{key "k", value: AnyValue{kvlist: {values: [KV{value: int 2}]}}}]}}
        assert_eq!(
            enc_value(&m),
            [0x32, 0x0f, 0x0a, 0x0d, 0x0a, 0x01, b'k', 0x12, 0x08, 0x32, 0x06, 0x0a, 0x04, 0x12, 0x02, 0x18, 0x02]
        );
    }

    #[test]
    fn default_span_fields_are_omitted() {
        let s = SpanData { kind: SpanKind::Unspecified, ..Default::default() };
        assert!(enc_span(&s).is_empty());
        // The model's default kind is Internal (1), which is written.
        assert_eq!(enc_span(&SpanData::default()), [0x30, 0x01]);
        // An explicit zero status is omitted; an Ok status or a message is written.
        let s = SpanData { kind: SpanKind::Unspecified, status: Status::ok(), ..Default::default() };
        assert_eq!(enc_span(&s), [0x7a, 0x02, 0x18, 0x01]);
        let s = SpanData {
            kind: SpanKind::Unspecified,
            status: Status { code: StatusCode::Unset, message: "m".into() },
            ..Default::default()
        };
        assert_eq!(enc_span(&s), [0x7a, 0x03, 0x12, 0x01, b'm']);
    }

    #[test]
    fn span_fields_in_order_with_fixed_widths() {
        let s = SpanData {
            trace_id: TraceId([0x11; 16]),
            span_id: SpanId([0x22; 8]),
            trace_state: "a=b".into(),
            parent_span_id: Some(SpanId::INVALID),
            flags: 0x301,
            name: "n".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1,
            end_time_unix_nano: u64::MAX,
            attributes: vec![KeyValue::new("k", true)],
            dropped_attributes_count: 300,
            events: vec![Event { time_unix_nano: 5, ..Default::default() }],
            dropped_events_count: 1,
            links: vec![Link { flags: 1, ..Default::default() }],
            dropped_links_count: 2,
            status: Status::error("x"),
        };
        let mut want = vec![0x0a, 16];
        want.extend([0x11; 16]);
        want.extend([0x12, 8]);
        want.extend([0x22; 8]);
        want.extend([0x1a, 3, b'a', b'=', b'b']);
        want.extend([0x22, 8, 0, 0, 0, 0, 0, 0, 0, 0]); // Some(invalid parent) is still written
        want.extend([0x2a, 1, b'n']);
        want.extend([0x30, 2]);
        want.extend([0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0x41, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        want.extend([0x4a, 7, 0x0a, 1, b'k', 0x12, 2, 0x10, 1]);
        want.extend([0x50, 0xac, 0x02]);
        want.extend([0x5a, 9, 0x09, 5, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0x60, 1]);
        want.extend([0x6a, 5, 0x35, 1, 0, 0, 0]); // link: invalid ids omitted, flags fixed32
        want.extend([0x70, 2]);
        want.extend([0x7a, 5, 0x12, 1, b'x', 0x18, 2]);
        want.extend([0x85, 0x01, 0x01, 0x03, 0, 0]);
        assert_eq!(enc_span(&s), want);
    }

    #[test]
    fn empty_requests() {
        let mut out = vec![0xee];
        encode_request(&TraceRequest::default(), &mut out);
        assert_eq!(out, [0xee], "appends, never clears");

        let mut out = Vec::new();
        encode_spans(&Resource::default(), &InstrumentationScope::default(), &[], &mut out);
        // resource_spans { resource {} scope_spans { scope {} } }
        assert_eq!(out, [0x0a, 0x06, 0x0a, 0x00, 0x12, 0x02, 0x0a, 0x00]);
        assert_eq!(encoded_len_spans(&Resource::default(), &InstrumentationScope::default(), &[]), out.len());
    }

    #[test]
    fn long_lengths_use_multi_byte_prefixes() {
        let spans: Vec<SpanData> =
            (0..512).map(|i| SpanData { name: format!("span-{i}").into(), ..Default::default() }).collect();
        let resource = Resource::new("svc");
        let scope = InstrumentationScope { name: "s".into(), ..Default::default() };
        let mut out = Vec::new();
        encode_spans(&resource, &scope, &spans, &mut out);
        assert_eq!(out.len(), encoded_len_spans(&resource, &scope, &spans));
        let decoded = crate::decode::decode_request(&out).expect("decodes");
        assert_eq!(decoded.span_count(), 512);
    }

    /// Length placeholders guessed too long (tiny spans and batches) and too short (a span over
    /// 16 KiB, a batch over 2 MiB): the body moves and the bytes are those of sizing first.
    #[test]
    fn lengths_longer_and_shorter_than_guessed() {
        let resource = Resource::new("svc");
        let scope = InstrumentationScope::default();
        for value_len in [0, 100, 20_000, 3 << 20] {
            let spans = vec![
                SpanData { name: "tiny".into(), ..Default::default() },
                SpanData {
                    name: "big".into(),
                    attributes: vec![KeyValue::new("v", "x".repeat(value_len))],
                    ..Default::default()
                },
            ];
            let mut out = vec![7u8];
            encode_spans(&resource, &scope, &spans, &mut out);
            assert_eq!(out.len() - 1, encoded_len_spans(&resource, &scope, &spans), "{value_len}");
            let decoded = crate::decode::decode_request(&out[1..]).expect("decodes");
            let got = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].name, "tiny");
            assert_eq!(got[1].attributes, spans[1].attributes, "{value_len}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn encode_spans_matches_encode_request(
            resource in crate::decode::tests::arb_resource(),
            scope in crate::decode::tests::arb_scope(),
            spans in prop::collection::vec(crate::decode::tests::arb_span(), 0..24),
        ) {
            let mut a = vec![7u8];
            encode_spans(&resource, &scope, &spans, &mut a);
            prop_assert_eq!(a.len() - 1, encoded_len_spans(&resource, &scope, &spans));
            let req = TraceRequest {
                resource_spans: vec![ResourceSpans {
                    resource,
                    scope_spans: vec![ScopeSpans { scope, spans, schema_url: String::new() }],
                    schema_url: String::new(),
                }],
            };
            let mut b = vec![7u8];
            encode_request(&req, &mut b);
            prop_assert_eq!(b.len() - 1, encoded_len_request(&req));
            prop_assert_eq!(a, b);
        }
    }
}
