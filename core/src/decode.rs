//! OTLP protobuf decoding, by hand.
//!
//! [`decode_request`] parses an `ExportTraceServiceRequest` (`opentelemetry/proto/collector/trace/v1`)
//! into the [model](crate::model) structs. It is strict about what it understands and lenient about
//! what it does not:
//!
//! * unknown fields of every valid wire type (varint, fixed64, length-delimited, fixed32) are
//!   skipped, so newer OTLP versions decode; groups (wire types 3 and 4) and the invalid wire types
//!   6 and 7 are errors, as is a known field with the wrong wire type;
//! * every length is checked against the remaining input before slicing, varints longer than ten
//!   bytes or overflowing 64 bits are errors, and `AnyValue` nesting is bounded
//!   ([`MAX_VALUE_DEPTH`]), so no input panics or exhausts the stack;
//! * protobuf merge semantics: repeated fields append, a later singular scalar overwrites an
//!   earlier one, a repeated embedded message (e.g. `Span.status` twice) is merged into the first;
//! * ids: an empty `trace_id` / `span_id` is the invalid (all-zero) id, an empty `parent_span_id` is
//!   `None`; any other length than 16 / 8 bytes is an error;
//! * unknown enum numbers map through [`SpanKind::from_i32`] and [`StatusCode::from_i32`];
//!   `uint32` / `int32` fields keep the low 32 bits of the varint, as protobuf does;
//! * an absent `Span.kind` is [`SpanKind::Unspecified`] (the OTLP zero value), not the model's
//!   default `Internal`;
//! * the model has no "empty" attribute value, so an `AnyValue` with no member set (or a
//!   `KeyValue` without a value) decodes as the empty string.
//!
//! Every error is an [`Error::Decode`] naming the message and field, e.g.
//! `Span.trace_id: expected 16 bytes, got 3`.

use std::borrow::Cow;
use std::fmt::Display;

use crate::error::{Error, Result};
use crate::model::{
    Event, InstrumentationScope, KeyValue, Link, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind,
    Status, StatusCode, TraceId, TraceRequest, Value,
};

/// The deepest `AnyValue` nesting accepted (an attribute's own value is level 1; each array or
/// key-value list adds one). Deeper input is rejected with an error instead of recursing further.
pub const MAX_VALUE_DEPTH: usize = 32;

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_FIXED32: u8 = 5;

fn wire_type_name(wt: u8) -> &'static str {
    match wt {
        WT_VARINT => "varint",
        WT_FIXED64 => "fixed64",
        WT_LEN => "length-delimited",
        3 => "start-group",
        4 => "end-group",
        WT_FIXED32 => "fixed32",
        _ => "invalid",
    }
}

/// Names an unknown field in errors, without allocating on the happy path.
struct UnknownField(u32);

impl Display for UnknownField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<unknown field {}>", self.0)
    }
}

/// A cursor over one message's bytes; `msg` names the message in errors.
struct Reader<'a> {
    buf: &'a [u8],
    msg: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], msg: &'static str) -> Self {
        Self { buf, msg }
    }

    /// An error about one field of this message.
    #[cold]
    fn fail(&self, field: &dyn Display, what: impl Display) -> Error {
        Error::Decode(format!("{}.{field}: {what}", self.msg))
    }

    /// An error about this message as a whole.
    #[cold]
    fn fail_msg(&self, what: impl Display) -> Error {
        Error::Decode(format!("{}: {what}", self.msg))
    }

    fn varint(&mut self, field: &dyn Display) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(self.fail(field, "truncated varint"));
            };
            self.buf = rest;
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.fail(field, "varint overflows 64 bits"))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn next_key(&mut self) -> Result<Option<(u32, u8)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint(&"<field key>")?;
        let Ok(key) = u32::try_from(key) else {
            return Err(self.fail_msg(format_args!("field key {key} out of range")));
        };
        let (tag, wt) = (key >> 3, (key & 7) as u8);
        if tag == 0 {
            return Err(self.fail_msg("invalid field number 0"));
        }
        match wt {
            WT_VARINT | WT_FIXED64 | WT_LEN | WT_FIXED32 => Ok(Some((tag, wt))),
            3 | 4 => Err(self.fail_msg(format_args!("field {tag}: groups (wire type {wt}) are not supported"))),
            _ => Err(self.fail_msg(format_args!("field {tag}: invalid wire type {wt}"))),
        }
    }

    fn expect(&self, field: &str, wt: u8, want: u8) -> Result<()> {
        if wt == want {
            Ok(())
        } else {
            Err(self.fail(
                &field,
                format_args!(
                    "wrong wire type {wt} ({}), expected {want} ({})",
                    wire_type_name(wt),
                    wire_type_name(want)
                ),
            ))
        }
    }

    fn take(&mut self, field: &dyn Display, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.buf.split_at_checked(n) {
            Some((head, rest)) => {
                self.buf = rest;
                Ok(head)
            }
            None => Err(self.fail(field, format_args!("truncated {what}: needs {n} bytes, {} remain", self.buf.len()))),
        }
    }

    fn raw_len_delimited(&mut self, field: &dyn Display) -> Result<&'a [u8]> {
        let len = self.varint(field)?;
        match usize::try_from(len) {
            Ok(n) if n <= self.buf.len() => self.take(field, n, "length-delimited field"),
            _ => Err(self.fail(field, format_args!("length {len} exceeds the {} remaining bytes", self.buf.len()))),
        }
    }

    fn bytes_field(&mut self, field: &str, wt: u8) -> Result<&'a [u8]> {
        self.expect(field, wt, WT_LEN)?;
        self.raw_len_delimited(&field)
    }

    fn string_field(&mut self, field: &str, wt: u8) -> Result<String> {
        let bytes = self.bytes_field(field, wt)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::Decode(format!("invalid UTF-8 in {}.{field}", self.msg))),
        }
    }

    fn str_field(&mut self, field: &str, wt: u8) -> Result<Cow<'static, str>> {
        self.string_field(field, wt).map(Cow::Owned)
    }

    fn varint_field(&mut self, field: &str, wt: u8) -> Result<u64> {
        self.expect(field, wt, WT_VARINT)?;
        self.varint(&field)
    }

    /// `uint32`: protobuf keeps the low 32 bits of a longer varint.
    #[allow(clippy::cast_possible_truncation, reason = "protobuf keeps the low 32 bits")]
    fn u32_field(&mut self, field: &str, wt: u8) -> Result<u32> {
        self.varint_field(field, wt).map(|v| v as u32)
    }

    /// `int32` / enum: the low 32 bits, as two's complement.
    #[allow(clippy::cast_possible_truncation, reason = "protobuf keeps the low 32 bits")]
    fn i32_field(&mut self, field: &str, wt: u8) -> Result<i32> {
        self.varint_field(field, wt).map(|v| v as i32)
    }

    fn fixed64_field(&mut self, field: &str, wt: u8) -> Result<u64> {
        self.expect(field, wt, WT_FIXED64)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(&field, 8, "fixed64")?);
        Ok(u64::from_le_bytes(b))
    }

    fn fixed32_field(&mut self, field: &str, wt: u8) -> Result<u32> {
        self.expect(field, wt, WT_FIXED32)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(&field, 4, "fixed32")?);
        Ok(u32::from_le_bytes(b))
    }

    /// An id of exactly `N` bytes, or `None` when empty (proto3's absent `bytes`).
    fn id_field<const N: usize>(&mut self, field: &str, wt: u8) -> Result<Option<[u8; N]>> {
        let bytes = self.bytes_field(field, wt)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        match <[u8; N]>::try_from(bytes) {
            Ok(id) => Ok(Some(id)),
            Err(_) => Err(self.fail(&field, format_args!("expected {N} bytes, got {}", bytes.len()))),
        }
    }

    /// Skips an unknown field (the wire type was validated by [`Reader::next_key`]).
    fn skip(&mut self, tag: u32, wt: u8) -> Result<()> {
        let field = UnknownField(tag);
        let field: &dyn Display = &field;
        match wt {
            WT_VARINT => self.varint(field).map(drop),
            WT_FIXED64 => self.take(field, 8, "fixed64").map(drop),
            WT_FIXED32 => self.take(field, 4, "fixed32").map(drop),
            _ => self.raw_len_delimited(field).map(drop),
        }
    }
}

/// Decodes an OTLP `ExportTraceServiceRequest` (protobuf bytes, e.g. the plaintext of a sealed
/// batch) into the model.
///
/// Never panics; malformed input is an [`Error::Decode`] naming the message and field at fault.
/// See the [module docs](self) for the exact rules.
pub fn decode_request(bytes: &[u8]) -> Result<TraceRequest> {
    decode_request_within(bytes, &DecodeLimits::NONE).map(|(req, _)| req)
}

/// Limits enforced while decoding, so that a small request cannot make the decoder allocate far
/// more than the request itself: a few kilobytes of DEFLATE can inflate to tens of millions of
/// empty spans, gigabytes once decoded, and checking the span count afterwards is too late.
/// Decoding stops at the first breach with [`Error::LimitExceeded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most spans in one request.
    pub max_spans: usize,
    /// Most attributes, events, links and array elements in one request, all nesting levels and
    /// resources and scopes included.
    pub max_items: usize,
    /// Most memory the decoded request may take, estimated as the size of every decoded struct plus
    /// the bytes of every string and byte value.
    pub max_decoded_bytes: usize,
}

impl DecodeLimits {
    /// No limits beyond the input's own length (for input the process produced itself).
    pub const NONE: Self = Self { max_spans: usize::MAX, max_items: usize::MAX, max_decoded_bytes: usize::MAX };
}

/// What a request has used of its [`DecodeLimits`] so far.
struct Budget<'l> {
    limits: &'l DecodeLimits,
    spans: usize,
    items: usize,
    bytes: usize,
}

impl Budget<'_> {
    fn span(&mut self) -> Result<()> {
        self.spans += 1;
        if self.spans > self.limits.max_spans {
            return Err(Error::LimitExceeded(format!("more than {} spans in one batch", self.limits.max_spans)));
        }
        self.bytes(std::mem::size_of::<SpanData>())
    }

    /// One attribute, event, link or array element of `size` bytes (struct and strings).
    fn item(&mut self, size: usize) -> Result<()> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(Error::LimitExceeded(format!(
                "more than {} attributes, events, links and array elements in one batch",
                self.limits.max_items
            )));
        }
        self.bytes(size)
    }

    fn bytes(&mut self, n: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_decoded_bytes {
            return Err(Error::LimitExceeded(format!(
                "the batch decodes to more than {} bytes",
                self.limits.max_decoded_bytes
            )));
        }
        Ok(())
    }
}

/// What a decoded request holds, as counted against its [`DecodeLimits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeUsage {
    /// Spans decoded.
    pub spans: usize,
    /// Attributes, events, links and array elements decoded.
    pub items: usize,
    /// Estimated memory of the decoded request (structs plus string and byte values).
    pub bytes: usize,
}

/// [`decode_request`] within `limits`: the first breach stops decoding with
/// [`Error::LimitExceeded`], before the memory is spent. Also returns what the request used, so a
/// caller can budget memory across requests.
pub fn decode_request_within(bytes: &[u8], limits: &DecodeLimits) -> Result<(TraceRequest, DecodeUsage)> {
    let b = &mut Budget { limits, spans: 0, items: 0, bytes: 0 };
    let mut req = TraceRequest::default();
    let mut r = Reader::new(bytes, "ExportTraceServiceRequest");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => {
                b.bytes(std::mem::size_of::<ResourceSpans>())?;
                req.resource_spans.push(decode_resource_spans(r.bytes_field("resource_spans", wt)?, b)?);
            }
            _ => r.skip(tag, wt)?,
        }
    }
    Ok((req, DecodeUsage { spans: b.spans, items: b.items, bytes: b.bytes }))
}

fn decode_resource_spans(bytes: &[u8], b: &mut Budget) -> Result<ResourceSpans> {
    let mut rs = ResourceSpans::default();
    let mut r = Reader::new(bytes, "ResourceSpans");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => merge_resource(&mut rs.resource, r.bytes_field("resource", wt)?, b)?,
            2 => {
                b.bytes(std::mem::size_of::<ScopeSpans>())?;
                rs.scope_spans.push(decode_scope_spans(r.bytes_field("scope_spans", wt)?, b)?);
            }
            3 => rs.schema_url = r.string_field("schema_url", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(rs)
}

fn merge_resource(resource: &mut Resource, bytes: &[u8], b: &mut Budget) -> Result<()> {
    let mut r = Reader::new(bytes, "Resource");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => resource.attributes.push(decode_key_value(r.bytes_field("attributes", wt)?, 0, b)?),
            2 => resource.dropped_attributes_count = r.u32_field("dropped_attributes_count", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

fn decode_scope_spans(bytes: &[u8], b: &mut Budget) -> Result<ScopeSpans> {
    let mut ss = ScopeSpans::default();
    let mut r = Reader::new(bytes, "ScopeSpans");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => merge_scope(&mut ss.scope, r.bytes_field("scope", wt)?, b)?,
            2 => {
                b.span()?;
                ss.spans.push(decode_span(r.bytes_field("spans", wt)?, b)?);
            }
            3 => ss.schema_url = r.string_field("schema_url", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(ss)
}

fn merge_scope(scope: &mut InstrumentationScope, bytes: &[u8], b: &mut Budget) -> Result<()> {
    let mut r = Reader::new(bytes, "InstrumentationScope");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => scope.name = r.str_field("name", wt)?,
            2 => scope.version = r.str_field("version", wt)?,
            3 => scope.attributes.push(decode_key_value(r.bytes_field("attributes", wt)?, 0, b)?),
            4 => scope.dropped_attributes_count = r.u32_field("dropped_attributes_count", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

fn decode_span(bytes: &[u8], b: &mut Budget) -> Result<SpanData> {
    // The OTLP zero value, not the model's default (`Internal`): an absent kind is unspecified.
    let mut s = SpanData { kind: SpanKind::Unspecified, ..SpanData::default() };
    let mut r = Reader::new(bytes, "Span");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => s.trace_id = r.id_field("trace_id", wt)?.map_or(TraceId::INVALID, TraceId),
            2 => s.span_id = r.id_field("span_id", wt)?.map_or(SpanId::INVALID, SpanId),
            3 => s.trace_state = r.string_field("trace_state", wt)?,
            4 => s.parent_span_id = r.id_field("parent_span_id", wt)?.map(SpanId),
            5 => s.name = r.str_field("name", wt)?,
            6 => s.kind = SpanKind::from_i32(r.i32_field("kind", wt)?),
            7 => s.start_time_unix_nano = r.fixed64_field("start_time_unix_nano", wt)?,
            8 => s.end_time_unix_nano = r.fixed64_field("end_time_unix_nano", wt)?,
            9 => s.attributes.push(decode_key_value(r.bytes_field("attributes", wt)?, 0, b)?),
            10 => s.dropped_attributes_count = r.u32_field("dropped_attributes_count", wt)?,
            11 => s.events.push(decode_event(r.bytes_field("events", wt)?, b)?),
            12 => s.dropped_events_count = r.u32_field("dropped_events_count", wt)?,
            13 => s.links.push(decode_link(r.bytes_field("links", wt)?, b)?),
            14 => s.dropped_links_count = r.u32_field("dropped_links_count", wt)?,
            15 => merge_status(&mut s.status, r.bytes_field("status", wt)?)?,
            16 => s.flags = r.fixed32_field("flags", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    // The span's own strings (a repeated field is charged once: the last one is what is kept).
    b.bytes(s.name.len() + s.trace_state.len() + s.status.message.len())?;
    Ok(s)
}

fn decode_event(bytes: &[u8], b: &mut Budget) -> Result<Event> {
    b.item(std::mem::size_of::<Event>())?;
    let mut e = Event::default();
    let mut r = Reader::new(bytes, "Event");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => e.time_unix_nano = r.fixed64_field("time_unix_nano", wt)?,
            2 => e.name = r.str_field("name", wt)?,
            3 => e.attributes.push(decode_key_value(r.bytes_field("attributes", wt)?, 0, b)?),
            4 => e.dropped_attributes_count = r.u32_field("dropped_attributes_count", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    b.bytes(e.name.len())?;
    Ok(e)
}

fn decode_link(bytes: &[u8], b: &mut Budget) -> Result<Link> {
    b.item(std::mem::size_of::<Link>())?;
    let mut l = Link::default();
    let mut r = Reader::new(bytes, "Link");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => l.trace_id = r.id_field("trace_id", wt)?.map_or(TraceId::INVALID, TraceId),
            2 => l.span_id = r.id_field("span_id", wt)?.map_or(SpanId::INVALID, SpanId),
            3 => l.trace_state = r.string_field("trace_state", wt)?,
            4 => l.attributes.push(decode_key_value(r.bytes_field("attributes", wt)?, 0, b)?),
            5 => l.dropped_attributes_count = r.u32_field("dropped_attributes_count", wt)?,
            6 => l.flags = r.fixed32_field("flags", wt)?,
            _ => r.skip(tag, wt)?,
        }
    }
    b.bytes(l.trace_state.len())?;
    Ok(l)
}

fn merge_status(status: &mut Status, bytes: &[u8]) -> Result<()> {
    let mut r = Reader::new(bytes, "Status");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            2 => status.message = r.str_field("message", wt)?,
            3 => status.code = StatusCode::from_i32(r.i32_field("code", wt)?),
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

/// The value of an `AnyValue` with no member set (the model has no "empty" value).
fn empty_value() -> Value {
    Value::String(Cow::Borrowed(""))
}

/// A `KeyValue` whose value sits at nesting level `depth + 1`.
fn decode_key_value(bytes: &[u8], depth: usize, b: &mut Budget) -> Result<KeyValue> {
    b.item(std::mem::size_of::<KeyValue>())?;
    let mut key = Cow::Borrowed("");
    let mut value = None;
    let mut r = Reader::new(bytes, "KeyValue");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => key = r.str_field("key", wt)?,
            2 => merge_any_value(&mut value, r.bytes_field("value", wt)?, depth + 1, b)?,
            _ => r.skip(tag, wt)?,
        }
    }
    b.bytes(key.len())?;
    Ok(KeyValue { key, value: value.unwrap_or_else(empty_value) })
}

/// Merges an `AnyValue` at nesting level `depth` into `slot` (`None`: no member set yet). A later
/// member replaces an earlier one, except that an array or key-value list merges into an earlier
/// one of the same kind (protobuf's oneof semantics).
fn merge_any_value(slot: &mut Option<Value>, bytes: &[u8], depth: usize, b: &mut Budget) -> Result<()> {
    let mut r = Reader::new(bytes, "AnyValue");
    if depth > MAX_VALUE_DEPTH {
        return Err(r.fail_msg(format_args!("nesting deeper than {MAX_VALUE_DEPTH} levels")));
    }
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => {
                let v = r.str_field("string_value", wt)?;
                b.bytes(v.len())?;
                *slot = Some(Value::String(v));
            }
            2 => *slot = Some(Value::Bool(r.varint_field("bool_value", wt)? != 0)),
            3 => *slot = Some(Value::Int(int64_of_bits(r.varint_field("int_value", wt)?))),
            4 => *slot = Some(Value::Double(f64::from_bits(r.fixed64_field("double_value", wt)?))),
            5 => {
                let body = r.bytes_field("array_value", wt)?;
                let mut values = match slot.take() {
                    Some(Value::Array(values)) => values,
                    _ => Vec::new(),
                };
                merge_array_value(&mut values, body, depth, b)?;
                *slot = Some(Value::Array(values));
            }
            6 => {
                let body = r.bytes_field("kvlist_value", wt)?;
                let mut kvs = match slot.take() {
                    Some(Value::Map(kvs)) => kvs,
                    _ => Vec::new(),
                };
                merge_key_value_list(&mut kvs, body, depth, b)?;
                *slot = Some(Value::Map(kvs));
            }
            7 => {
                let v = r.bytes_field("bytes_value", wt)?;
                b.bytes(v.len())?;
                *slot = Some(Value::Bytes(v.to_vec()));
            }
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

/// An `ArrayValue` inside an `AnyValue` at level `depth`; its elements are at `depth + 1`.
fn merge_array_value(values: &mut Vec<Value>, bytes: &[u8], depth: usize, b: &mut Budget) -> Result<()> {
    let mut r = Reader::new(bytes, "ArrayValue");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => {
                b.item(std::mem::size_of::<Value>())?;
                let mut value = None;
                merge_any_value(&mut value, r.bytes_field("values", wt)?, depth + 1, b)?;
                values.push(value.unwrap_or_else(empty_value));
            }
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

/// A `KeyValueList` inside an `AnyValue` at level `depth`; its values are at `depth + 1`.
fn merge_key_value_list(kvs: &mut Vec<KeyValue>, bytes: &[u8], depth: usize, b: &mut Budget) -> Result<()> {
    let mut r = Reader::new(bytes, "KeyValueList");
    while let Some((tag, wt)) = r.next_key()? {
        match tag {
            1 => kvs.push(decode_key_value(r.bytes_field("values", wt)?, depth, b)?),
            _ => r.skip(tag, wt)?,
        }
    }
    Ok(())
}

/// An `int64` from its varint payload (two's-complement bits).
#[allow(clippy::cast_possible_wrap, reason = "protobuf encodes int64 as its two's-complement bits")]
fn int64_of_bits(v: u64) -> i64 {
    v as i64
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::encode::{encode_request, put_varint};
    use crate::model::Str;

    // --- strategies (shared with the encoder's tests) ---

    pub(crate) fn arb_str() -> impl Strategy<Value = Str> {
        prop_oneof![Just(Cow::Borrowed("")), "[a-z._]{1,12}".prop_map(Cow::Owned), any::<String>().prop_map(Cow::Owned),]
    }

    fn arb_string() -> impl Strategy<Value = String> {
        arb_str().prop_map(Cow::into_owned)
    }

    fn arb_u32() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0u32), 1..200u32, any::<u32>()]
    }

    fn arb_u64() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), any::<u64>()]
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            arb_str().prop_map(Value::String),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![Just(0i64), Just(-1), Just(i64::MIN), Just(i64::MAX), any::<i64>()].prop_map(Value::Int),
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

    pub(crate) fn arb_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        vec((arb_str(), arb_value()).prop_map(|(key, value)| KeyValue { key, value }), 0..4)
    }

    fn arb_trace_id() -> impl Strategy<Value = TraceId> {
        prop_oneof![Just(TraceId::INVALID), any::<[u8; 16]>().prop_map(TraceId)]
    }

    fn arb_span_id() -> impl Strategy<Value = SpanId> {
        prop_oneof![Just(SpanId::INVALID), any::<[u8; 8]>().prop_map(SpanId)]
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        (arb_u64(), arb_str(), arb_attrs(), arb_u32()).prop_map(|(time_unix_nano, name, attributes, dropped)| Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count: dropped,
        })
    }

    fn arb_link() -> impl Strategy<Value = Link> {
        (arb_trace_id(), arb_span_id(), arb_string(), arb_attrs(), arb_u32(), arb_u32()).prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            },
        )
    }

    pub(crate) fn arb_span() -> impl Strategy<Value = SpanData> {
        let ids = (arb_trace_id(), arb_span_id(), arb_string(), prop::option::of(arb_span_id()), arb_u32());
        let header = (arb_str(), (0..7i32).prop_map(SpanKind::from_i32), arb_u64(), arb_u64());
        let body = (
            arb_attrs(),
            arb_u32(),
            vec(arb_event(), 0..3),
            arb_u32(),
            vec(arb_link(), 0..3),
            arb_u32(),
            ((0..4i32).prop_map(StatusCode::from_i32), arb_str()).prop_map(|(code, message)| Status { code, message }),
        );
        (ids, header, body).prop_map(
            |(
                (trace_id, span_id, trace_state, parent_span_id, flags),
                (name, kind, start_time_unix_nano, end_time_unix_nano),
                (
                    attributes,
                    dropped_attributes_count,
                    events,
                    dropped_events_count,
                    links,
                    dropped_links_count,
                    status,
                ),
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

    pub(crate) fn arb_resource() -> impl Strategy<Value = Resource> {
        (arb_attrs(), arb_u32())
            .prop_map(|(attributes, dropped_attributes_count)| Resource { attributes, dropped_attributes_count })
    }

    pub(crate) fn arb_scope() -> impl Strategy<Value = InstrumentationScope> {
        (arb_str(), arb_str(), arb_attrs(), arb_u32()).prop_map(|(name, version, attributes, dropped)| {
            InstrumentationScope { name, version, attributes, dropped_attributes_count: dropped }
        })
    }

    pub(crate) fn arb_request() -> impl Strategy<Value = TraceRequest> {
        let scope_spans = (arb_scope(), vec(arb_span(), 0..3), arb_string())
            .prop_map(|(scope, spans, schema_url)| ScopeSpans { scope, spans, schema_url });
        let resource_spans = (arb_resource(), vec(scope_spans, 0..3), arb_string())
            .prop_map(|(resource, scope_spans, schema_url)| ResourceSpans { resource, scope_spans, schema_url });
        vec(resource_spans, 0..3).prop_map(|resource_spans| TraceRequest { resource_spans })
    }

    // --- byte builders ---

    fn varint(tag: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(tag << 3));
        put_varint(&mut out, v);
        out
    }

    fn len(tag: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(tag << 3 | 2));
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(body);
        out
    }

    fn fixed64(tag: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(tag << 3 | 1));
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    fn fixed32(tag: u32, v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, u64::from(tag << 3 | 5));
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    /// A request with one span whose encoding is `span`.
    fn request_with_span(span: &[u8]) -> Vec<u8> {
        len(1, &len(2, &len(2, span)))
    }

    /// A request with one span with one attribute whose `AnyValue` encoding is `value`.
    fn request_with_value(value: &[u8]) -> Vec<u8> {
        request_with_span(&len(9, &[len(1, b"k"), len(2, value)].concat()))
    }

    fn only_span(req: &TraceRequest) -> &SpanData {
        let spans: Vec<_> = req.spans().collect();
        assert_eq!(spans.len(), 1);
        spans[0].2
    }

    fn decode_err(bytes: &[u8]) -> String {
        match decode_request(bytes) {
            Ok(req) => panic!("expected an error, decoded {req:?}"),
            Err(Error::Decode(msg)) => msg,
            Err(other) => panic!("wrong error kind: {other:?}"),
        }
    }

    fn encode(req: &TraceRequest) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(req, &mut out);
        out
    }

    // --- unit tests ---

    #[test]
    fn empty_input_is_an_empty_request() {
        assert_eq!(decode_request(&[]).unwrap(), TraceRequest::default());
    }

    #[test]
    fn absent_fields_take_otlp_zero_values() {
        let req = decode_request(&request_with_span(&[])).unwrap();
        let span = only_span(&req);
        assert_eq!(span.kind, SpanKind::Unspecified);
        assert_eq!(span.trace_id, TraceId::INVALID);
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.status, Status::default());
    }

    #[test]
    fn ids_and_parent() {
        let span = [
            len(1, &[0xab; 16]),
            len(2, &[0xcd; 8]),
            len(4, &[]), // empty parent: a root span
        ]
        .concat();
        let req = decode_request(&request_with_span(&span)).unwrap();
        let s = only_span(&req);
        assert_eq!(s.trace_id, TraceId([0xab; 16]));
        assert_eq!(s.span_id, SpanId([0xcd; 8]));
        assert_eq!(s.parent_span_id, None);

        let req = decode_request(&request_with_span(&len(4, &[7; 8]))).unwrap();
        assert_eq!(only_span(&req).parent_span_id, Some(SpanId([7; 8])));
    }

    #[test]
    fn scalars_and_varint_edge_cases() {
        let span = [
            varint(6, 3),
            fixed64(7, 1),
            fixed64(8, u64::MAX),
            varint(10, u64::from(u32::MAX) + 5), // uint32 keeps the low 32 bits
            fixed32(16, 0x301),
            len(15, &[varint(3, 2), len(2, b"boom")].concat()),
        ]
        .concat();
        let req = decode_request(&request_with_span(&span)).unwrap();
        let s = only_span(&req);
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (1, u64::MAX));
        assert_eq!(s.dropped_attributes_count, 4);
        assert_eq!(s.flags, 0x301);
        assert_eq!(s.status, Status::error("boom"));

        // A non-minimal (padded) varint is still valid protobuf.
        let req = decode_request(&request_with_span(&[0x30, 0x82, 0x80, 0x00])).unwrap();
        assert_eq!(only_span(&req).kind, SpanKind::Server);
    }

    #[test]
    fn unknown_enum_numbers_map_through_from_i32() {
        let span = [varint(6, 99), len(15, &varint(3, 7))].concat();
        let req = decode_request(&request_with_span(&span)).unwrap();
        let s = only_span(&req);
        assert_eq!(s.kind, SpanKind::Unspecified);
        assert_eq!(s.status.code, StatusCode::Unset);
        // -1 as a 10-byte varint, truncated to int32 -1.
        let req = decode_request(&request_with_span(&varint(6, u64::MAX))).unwrap();
        assert_eq!(only_span(&req).kind, SpanKind::Unspecified);
    }

    #[test]
    fn values_of_every_kind() {
        let cases: Vec<(Vec<u8>, Value)> = vec![
            (len(1, b""), Value::String(Cow::Borrowed(""))),
            (len(1, "é".as_bytes()), Value::from("é")),
            (varint(2, 0), Value::Bool(false)),
            (varint(2, 2), Value::Bool(true)),
            (varint(3, u64::MAX), Value::Int(-1)),
            (varint(3, 1 << 63), Value::Int(i64::MIN)),
            (fixed64(4, (-2.5f64).to_bits()), Value::Double(-2.5)),
            (len(7, &[0, 1]), Value::Bytes(vec![0, 1])),
            (len(5, &[]), Value::Array(vec![])),
            (len(6, &[]), Value::Map(vec![])),
            (vec![], Value::String(Cow::Borrowed(""))), // no member set
            (
                len(5, &[len(1, &varint(3, 1)), len(1, &len(5, &len(1, &varint(2, 1)))), len(1, &[])].concat()),
                Value::Array(vec![Value::Int(1), Value::Array(vec![Value::Bool(true)]), Value::from("")]),
            ),
            (
                len(6, &len(1, &[len(1, b"a"), len(2, &len(6, &len(1, &len(2, &varint(3, 2)))))].concat())),
                Value::Map(vec![KeyValue::new("a", Value::Map(vec![KeyValue::new("", 2i64)]))]),
            ),
            // oneof: the last member wins...
            ([varint(3, 1), len(1, b"x")].concat(), Value::from("x")),
            // ...but a repeated array merges (appends), as protobuf merges embedded messages.
            (
                [len(5, &len(1, &varint(3, 1))), len(5, &len(1, &varint(3, 2)))].concat(),
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
            ),
        ];
        for (bytes, want) in cases {
            let req = decode_request(&request_with_value(&bytes)).unwrap();
            assert_eq!(only_span(&req).attributes, vec![KeyValue::new("k", want.clone())], "{bytes:02x?}");
        }
        // A KeyValue without a value.
        let req = decode_request(&request_with_span(&len(9, &len(1, b"k")))).unwrap();
        assert_eq!(only_span(&req).attributes, vec![KeyValue::new("k", "")]);
    }

    #[test]
    fn repeated_fields_append_and_singular_fields_overwrite() {
        let resource = |key: &[u8], dropped| len(1, &[len(1, &len(1, key)), varint(2, dropped)].concat());
        let rs = [resource(b"a", 1), resource(b"b", 2), len(3, b"u1"), len(3, b"u2")].concat();
        let span = [len(5, b"first"), len(5, b"second"), len(15, &varint(3, 2)), len(15, &len(2, b"m"))].concat();
        let rs = [rs, len(2, &len(2, &span))].concat();
        let req = decode_request(&len(1, &rs)).unwrap();
        let rs = &req.resource_spans[0];
        assert_eq!(rs.resource.attributes.iter().map(|kv| kv.key.as_ref()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(rs.resource.dropped_attributes_count, 2);
        assert_eq!(rs.schema_url, "u2");
        let s = only_span(&req);
        assert_eq!(s.name, "second");
        assert_eq!(s.status, Status::error("m"), "status occurrences merge");
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let unknown = [varint(100, u64::MAX), fixed64(101, 1), len(102, b"future"), fixed32(103, 9)].concat();
        let span = [unknown.clone(), len(5, b"n"), unknown.clone()].concat();
        let value = [unknown.clone(), varint(3, 5), unknown.clone()].concat();
        let kv = [len(1, b"k"), len(2, &value), unknown.clone()].concat();
        let span = [span, len(9, &kv)].concat();
        let ss = [unknown.clone(), len(2, &span)].concat();
        let rs = [len(2, &ss), unknown.clone()].concat();
        let bytes = [unknown.clone(), len(1, &rs), unknown].concat();
        let req = decode_request(&bytes).unwrap();
        let s = only_span(&req);
        assert_eq!(s.name, "n");
        assert_eq!(s.attributes, vec![KeyValue::new("k", 5i64)]);
    }

    #[test]
    fn error_messages_name_the_field() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x80], "ExportTraceServiceRequest.<field key>: truncated varint"),
            (vec![0x10, 0xff], "ExportTraceServiceRequest.<unknown field 2>: truncated varint"),
            (
                [vec![0x10], vec![0xff; 9], vec![0x02]].concat(),
                "ExportTraceServiceRequest.<unknown field 2>: varint overflows 64 bits",
            ),
            ([vec![0x10], vec![0xff; 10], vec![0x01]].concat(), "varint overflows 64 bits"),
            (vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "out of range"),
            (vec![0x00], "ExportTraceServiceRequest: invalid field number 0"),
            (vec![0x0b], "field 1: groups (wire type 3) are not supported"),
            (vec![0x0c], "groups (wire type 4)"),
            (vec![0x0e], "field 1: invalid wire type 6"),
            (vec![0x0f], "invalid wire type 7"),
            (vec![0x08, 0x01], "ExportTraceServiceRequest.resource_spans: wrong wire type 0 (varint), expected 2"),
            (vec![0x0a, 0x05, 0x00], "ExportTraceServiceRequest.resource_spans: length 5 exceeds the 1 remaining"),
            (
                [vec![0x0a], vec![0xff; 9], vec![0x01]].concat(),
                "length 18446744073709551615 exceeds the 0 remaining bytes",
            ),
            (vec![0x11, 1, 2, 3], "<unknown field 2>: truncated fixed64: needs 8 bytes, 3 remain"),
            (vec![0x15, 1], "truncated fixed32: needs 4 bytes, 1 remain"),
            (request_with_span(&len(1, &[1, 2, 3])), "Span.trace_id: expected 16 bytes, got 3"),
            (request_with_span(&len(2, &[1; 16])), "Span.span_id: expected 8 bytes, got 16"),
            (request_with_span(&len(4, &[1; 7])), "Span.parent_span_id: expected 8 bytes, got 7"),
            (request_with_span(&len(13, &len(1, &[1; 8]))), "Link.trace_id: expected 16 bytes, got 8"),
            (request_with_span(&len(13, &len(2, &[1; 9]))), "Link.span_id: expected 8 bytes, got 9"),
            (request_with_span(&len(5, &[0xff])), "invalid UTF-8 in Span.name"),
            (request_with_span(&[0x39, 0, 0]), "Span.start_time_unix_nano: truncated fixed64"),
            (request_with_span(&[0x85, 0x01, 0]), "Span.flags: truncated fixed32"),
            (request_with_span(&varint(16, 1)), "Span.flags: wrong wire type 0 (varint), expected 5 (fixed32)"),
            (request_with_span(&len(7, &[])), "Span.start_time_unix_nano: wrong wire type 2"),
            (request_with_span(&[0x30]), "Span.kind: truncated varint"),
            (request_with_span(&len(9, &len(1, &[0xc3, 0x28]))), "invalid UTF-8 in KeyValue.key"),
            (request_with_value(&len(1, &[0xe2, 0x82])), "invalid UTF-8 in AnyValue.string_value"),
            (request_with_value(&varint(4, 1)), "AnyValue.double_value: wrong wire type 0"),
            (request_with_span(&len(15, &len(2, &[0x80]))), "invalid UTF-8 in Status.message"),
            (request_with_span(&len(11, &len(2, &[0xff]))), "invalid UTF-8 in Event.name"),
            (len(1, &len(2, &len(1, &len(2, &[0xff])))), "invalid UTF-8 in InstrumentationScope.version"),
            (len(1, &len(3, &[0xff])), "invalid UTF-8 in ResourceSpans.schema_url"),
            (len(1, &len(1, &varint(2, 1)[..1])), "Resource.dropped_attributes_count: truncated varint"),
        ];
        for (bytes, want) in cases {
            let got = decode_err(&bytes);
            assert!(got.contains(want), "{bytes:02x?}: got {got:?}, want {want:?}");
        }
    }

    /// An `AnyValue` nested `levels` deep (level 1 is the innermost `int 1`).
    fn nested_value(levels: usize) -> Vec<u8> {
        let mut v = varint(3, 1);
        for _ in 1..levels {
            v = len(5, &len(1, &v));
        }
        v
    }

    #[test]
    fn value_nesting_is_bounded() {
        assert!(decode_request(&request_with_value(&nested_value(MAX_VALUE_DEPTH))).is_ok());
        let err = decode_err(&request_with_value(&nested_value(MAX_VALUE_DEPTH + 1)));
        assert_eq!(err, "AnyValue: nesting deeper than 32 levels");

        // Maps count too.
        let mut v = varint(3, 1);
        for _ in 0..MAX_VALUE_DEPTH {
            v = len(6, &len(1, &[len(1, b"k"), len(2, &v)].concat()));
        }
        assert!(decode_err(&request_with_value(&v)).contains("nesting deeper"));

        // Very deep (well-formed) input fails at the limit instead of overflowing the stack. Built
        // in O(n): sizes inside out, then the headers outside in.
        let levels = 100_000;
        let inner = varint(3, 1);
        let mut sizes = vec![inner.len()]; // sizes[i]: the AnyValue i levels above the innermost
        for i in 1..levels {
            let element = 1 + crate::encode::varint_len(sizes[i - 1] as u64) + sizes[i - 1];
            sizes.push(1 + crate::encode::varint_len(element as u64) + element);
        }
        let mut v = Vec::with_capacity(sizes[levels - 1]);
        for i in (1..levels).rev() {
            let element = 1 + crate::encode::varint_len(sizes[i - 1] as u64) + sizes[i - 1];
            v.push(0x2a);
            put_varint(&mut v, element as u64);
            v.push(0x0a);
            put_varint(&mut v, sizes[i - 1] as u64);
        }
        v.extend_from_slice(&inner);
        assert_eq!(v.len(), sizes[levels - 1]);
        assert_eq!(decode_err(&request_with_value(&v)), "AnyValue: nesting deeper than 32 levels");
    }

    /// `n` empty spans in one ScopeSpans: two bytes of input each.
    fn empty_spans(n: usize) -> Vec<u8> {
        len(1, &len(2, &[0x12, 0x00].repeat(n)))
    }

    fn limit_err(bytes: &[u8], limits: &DecodeLimits) -> String {
        match decode_request_within(bytes, limits) {
            Err(Error::LimitExceeded(m)) => m,
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
    }

    #[test]
    fn limits_stop_decoding_at_the_first_breach() {
        let limits = DecodeLimits { max_spans: 1000, max_items: 50, max_decoded_bytes: 1 << 20 };
        let (req, usage) = decode_request_within(&empty_spans(1000), &limits).unwrap();
        assert_eq!((req.span_count(), usage.spans), (1000, 1000));
        assert_eq!(
            usage.bytes,
            1000 * std::mem::size_of::<SpanData>()
                + std::mem::size_of::<ResourceSpans>()
                + std::mem::size_of::<ScopeSpans>()
        );
        assert_eq!(limit_err(&empty_spans(1001), &limits), "more than 1000 spans in one batch");
        // Attributes at every level count, nested values included.
        let attr = len(9, &[len(1, b"k"), len(2, &varint(3, 1))].concat());
        let ok = request_with_span(&attr.repeat(50));
        assert!(decode_request_within(&ok, &limits).is_ok());
        assert!(limit_err(&request_with_span(&attr.repeat(51)), &limits).contains("more than 50 attributes"));
        let array_of_60 = len(5, &len(1, &varint(3, 1)).repeat(60));
        assert!(limit_err(&request_with_value(&array_of_60), &limits).contains("attributes"));
        // Strings count by their length.
        let big = request_with_value(&len(1, &vec![b'x'; 1 << 20]));
        assert!(limit_err(&big, &limits).contains("decodes to more than 1048576 bytes"));
        // Unlimited decoding is unchanged.
        assert!(decode_request(&big).is_ok());
    }

    /// A flood of empty spans (the decompression-bomb shape) stops at the span limit, and within
    /// the byte budget even when the span limit is generous.
    #[test]
    fn a_span_flood_stops_at_the_limit() {
        let by_count = DecodeLimits { max_spans: 100_000, max_items: usize::MAX, max_decoded_bytes: usize::MAX };
        assert!(limit_err(&empty_spans(2_000_000), &by_count).contains("100000 spans"));
        let by_size = DecodeLimits { max_spans: usize::MAX, max_items: usize::MAX, max_decoded_bytes: 1 << 20 };
        assert!(limit_err(&empty_spans(2_000_000), &by_size).contains("decodes to more than"));
    }

    #[test]
    fn round_trip_of_a_populated_request() {
        let span = SpanData {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: Some(SpanId([3; 8])),
            name: "settle".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![
                KeyValue::new("s", "v"),
                KeyValue::new("i", -7i64),
                KeyValue::new("d", -0.5),
                KeyValue::new("b", vec![9u8]),
                KeyValue::new("a", vec!["x", "y"]),
                KeyValue::new("m", Value::Map(vec![KeyValue::new("n", Value::Array(vec![]))])),
            ],
            events: vec![Event { time_unix_nano: 15, name: "retry".into(), ..Default::default() }],
            links: vec![Link {
                trace_id: TraceId([4; 16]),
                span_id: SpanId([5; 8]),
                flags: 0x101,
                ..Default::default()
            }],
            status: Status::error("nope"),
            ..Default::default()
        };
        let req = TraceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Resource::new("svc"),
                scope_spans: vec![ScopeSpans {
                    scope: InstrumentationScope { name: "tracex".into(), version: "0.1".into(), ..Default::default() },
                    spans: vec![span.clone(), SpanData { kind: SpanKind::Unspecified, ..span }],
                    schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(decode_request(&encode(&req)).unwrap(), req);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn round_trip(req in arb_request()) {
            let bytes = encode(&req);
            prop_assert_eq!(decode_request(&bytes).unwrap(), req);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
            // Also as the body of a span and of an attribute value, to get past the outer layers.
            let _ = decode_request(&request_with_span(&bytes));
            let _ = decode_request(&request_with_value(&bytes));
        }

        #[test]
        fn truncated_and_bit_flipped_encodings_never_panic(
            req in arb_request(),
            cut in any::<prop::sample::Index>(),
            flips in vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
        ) {
            let bytes = encode(&req);
            if !bytes.is_empty() {
                let _ = decode_request(&bytes[..cut.index(bytes.len())]);
                let mut flipped = bytes.clone();
                for (at, bit) in flips {
                    flipped[at.index(bytes.len())] ^= 1 << bit;
                }
                let _ = decode_request(&flipped);
            }
        }
    }
}
