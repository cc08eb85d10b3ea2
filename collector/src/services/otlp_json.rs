//! OTLP/JSON decoding: an `ExportTraceServiceRequest` in the protobuf JSON mapping with OTLP's
//! changes (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>), into the same
//! model the protobuf decoder (`tracex_core::decode`) produces, under the same limits.
//!
//! * `traceId`, `spanId`, `parentSpanId` (and a link's ids) are hex strings, either case; an empty
//!   or absent id is the invalid (all-zero) id, an absent or empty parent is `None`, as in protobuf;
//! * field names in lowerCamelCase, or as in the `.proto` (snake_case); unknown fields are ignored;
//!   `null` is the field's default;
//! * 64-bit integers (times, `intValue`) as JSON numbers or decimal strings; `doubleValue` also as
//!   `"NaN"`, `"Infinity"`, `"-Infinity"`; enums (`kind`, `status.code`) as numbers or their names
//!   (`SPAN_KIND_SERVER`); `bytesValue` in base64;
//! * an `AnyValue` with no member set is the empty string, as in the protobuf decoder; nesting is
//!   bounded by [`MAX_VALUE_DEPTH`].
//!
//! Limits are charged while parsing, not after: every span and every attribute, event, link and
//! array element counts against [`DecodeLimits`] as soon as it is parsed, and parsing stops at the
//! first breach. String contents are bounded by the body (charged up front).

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use tracex_core::decode::{DecodeLimits, DecodeUsage, MAX_VALUE_DEPTH};
use tracex_core::{
    Event, InstrumentationScope, KeyValue, Link, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind,
    Status, StatusCode, TraceId, TraceRequest, Value,
};

/// Why a JSON body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    Malformed(String),
    /// Over a [`DecodeLimits`] limit.
    Limit(String),
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` within `limits`.
pub fn decode_request_within(body: &[u8], limits: &DecodeLimits) -> Result<(TraceRequest, DecodeUsage), JsonError> {
    if body.len() > limits.max_decoded_bytes {
        return Err(JsonError::Limit(format!("the batch decodes to more than {} bytes", limits.max_decoded_bytes)));
    }
    BUDGET.with(|b| *b.borrow_mut() = Some(Budget { limits: *limits, usage: DecodeUsage::default(), breach: None }));
    let parsed = serde_json::from_slice::<JRequest>(body);
    let budget = BUDGET.with(|b| b.borrow_mut().take());
    let (mut usage, breach) = budget.map_or((DecodeUsage::default(), None), |b| (b.usage, b.breach));
    if let Some(breach) = breach {
        return Err(JsonError::Limit(breach));
    }
    let parsed = parsed.map_err(|e| JsonError::Malformed(e.to_string()))?;
    usage.bytes = usage.bytes.saturating_add(body.len());
    let req = parsed.into_model().map_err(JsonError::Malformed)?;
    Ok((req, usage))
}

// === limits, charged while parsing ===

struct Budget {
    limits: DecodeLimits,
    usage: DecodeUsage,
    breach: Option<String>,
}

thread_local! {
    /// The limits of the request being parsed on this thread (parsing is synchronous).
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// What a [`Counted`] array holds: spans, items (attributes, events, links, array elements), or
/// containers charged for their memory only (resource and scope spans), as the protobuf decoder
/// counts them.
const SPANS: u8 = 0;
const ITEMS: u8 = 1;
const CONTAINERS: u8 = 2;

/// Charges one parsed element of `kind` and `size` bytes; the message of the first breach.
fn charge(kind: u8, size: usize) -> Result<(), String> {
    BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else { return Ok(()) };
        let why = match kind {
            SPANS => {
                b.usage.spans += 1;
                (b.usage.spans > b.limits.max_spans)
                    .then(|| format!("more than {} spans in one batch", b.limits.max_spans))
            }
            ITEMS => {
                b.usage.items += 1;
                (b.usage.items > b.limits.max_items).then(|| {
                    format!(
                        "more than {} attributes, events, links and array elements in one batch",
                        b.limits.max_items
                    )
                })
            }
            _ => None,
        };
        b.usage.bytes = b.usage.bytes.saturating_add(size);
        let why = why.or_else(|| {
            (b.usage.bytes > b.limits.max_decoded_bytes)
                .then(|| format!("the batch decodes to more than {} bytes", b.limits.max_decoded_bytes))
        });
        match why {
            Some(why) => {
                b.breach.get_or_insert_with(|| why.clone());
                Err(why)
            }
            None => Ok(()),
        }
    })
}

/// A JSON array whose elements are charged as they are parsed, as `KIND`.
struct Counted<T, const KIND: u8>(Vec<T>);

impl<T, const KIND: u8> Default for Counted<T, KIND> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>, const KIND: u8> Deserialize<'de> for Counted<T, KIND> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const S: u8>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const S: u8> Visitor<'de> for V<T, S> {
            type Value = Counted<T, S>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Counted(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    charge(S, std::mem::size_of::<T>()).map_err(de::Error::custom)?;
                    out.push(v);
                }
                Ok(Counted(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// === scalars in their JSON forms ===

/// An integer as a JSON number or a decimal string.
#[derive(Clone, Copy, Default)]
struct JInt(i128);

impl<'de> Deserialize<'de> for JInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a decimal string")
            }
            fn visit_unit<E: de::Error>(self) -> Result<JInt, E> {
                Ok(JInt(0))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JInt, E> {
                Ok(JInt(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JInt, E> {
                Ok(JInt(v.into()))
            }
            #[allow(clippy::cast_possible_truncation, reason = "checked: a whole number within u64")]
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JInt, E> {
                if v.fract() == 0.0 && v.abs() < 1.9e19 {
                    Ok(JInt(v as i128))
                } else {
                    Err(E::custom(format_args!("{v} is not an integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JInt, E> {
                v.parse().map(JInt).map_err(|_| E::custom(format_args!("{v:?} is not a decimal integer")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JInt {
    fn to<T: TryFrom<i128>>(self, field: &str) -> Result<T, String> {
        T::try_from(self.0).map_err(|_| format!("{field}: {} is out of range", self.0))
    }
}

/// A double as a JSON number or a string (`"NaN"`, `"Infinity"`, `"-Infinity"`, decimal).
#[derive(Clone, Copy)]
struct JDouble(f64);

impl<'de> Deserialize<'de> for JDouble {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JDouble;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JDouble, E> {
                Ok(JDouble(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JDouble, E> {
                Ok(JDouble(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JDouble, E> {
                Ok(JDouble(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JDouble, E> {
                match v {
                    "NaN" => Ok(JDouble(f64::NAN)),
                    "Infinity" => Ok(JDouble(f64::INFINITY)),
                    "-Infinity" => Ok(JDouble(f64::NEG_INFINITY)),
                    _ => v.parse().map(JDouble).map_err(|_| E::custom(format_args!("{v:?} is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An enum as its number or its name.
#[derive(Clone, Default)]
enum JEnum {
    #[default]
    Zero,
    Number(i128),
    Name(String),
}

impl<'de> Deserialize<'de> for JEnum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JEnum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an enum number or name")
            }
            fn visit_unit<E: de::Error>(self) -> Result<JEnum, E> {
                Ok(JEnum::Zero)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JEnum, E> {
                Ok(JEnum::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JEnum, E> {
                Ok(JEnum::Number(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JEnum, E> {
                Ok(JEnum::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JEnum {
    /// The enum number; a name must be one of `names` (index = number).
    fn number(&self, field: &str, names: &[&str]) -> Result<i32, String> {
        match self {
            Self::Zero => Ok(0),
            Self::Number(n) => i32::try_from(*n).map_err(|_| format!("{field}: {n} is out of range")),
            Self::Name(name) => names
                .iter()
                .position(|n| n == name)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| format!("{field}: unknown value {name:?}")),
        }
    }
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// An id of `N` bytes from hex; `None` when empty or absent.
fn hex_id<const N: usize>(hex: Option<&str>, field: &str) -> Result<Option<[u8; N]>, String> {
    let Some(hex) = hex.filter(|h| !h.is_empty()) else { return Ok(None) };
    let mut out = [0u8; N];
    hex::decode_to_slice(hex, &mut out)
        .map_err(|_| format!("{field}: expected {} hex digits, got {:?}", 2 * N, Cut(hex)))?;
    Ok(Some(out))
}

/// At most 40 characters of client input in a message.
struct Cut<'a>(&'a str);

impl fmt::Debug for Cut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(40) {
            Some((end, _)) => write!(f, "{:?}…", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

// === the messages ===

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JRequest {
    #[serde(alias = "resource_spans")]
    resource_spans: Option<Counted<JResourceSpans, CONTAINERS>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JResourceSpans {
    resource: Option<JResource>,
    #[serde(alias = "scope_spans")]
    scope_spans: Option<Counted<JScopeSpans, CONTAINERS>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JResource {
    attributes: Option<Counted<JKeyValue, ITEMS>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JInt>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JScopeSpans {
    scope: Option<JScope>,
    spans: Option<Counted<JSpan, SPANS>>,
    #[serde(alias = "schema_url")]
    schema_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JScope {
    name: Option<String>,
    version: Option<String>,
    attributes: Option<Counted<JKeyValue, ITEMS>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JInt>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JSpan {
    #[serde(alias = "trace_id")]
    trace_id: Option<String>,
    #[serde(alias = "span_id")]
    span_id: Option<String>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    #[serde(alias = "parent_span_id")]
    parent_span_id: Option<String>,
    flags: Option<JInt>,
    name: Option<String>,
    kind: Option<JEnum>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<JInt>,
    #[serde(alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<JInt>,
    attributes: Option<Counted<JKeyValue, ITEMS>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JInt>,
    events: Option<Counted<JEvent, ITEMS>>,
    #[serde(alias = "dropped_events_count")]
    dropped_events_count: Option<JInt>,
    links: Option<Counted<JLink, ITEMS>>,
    #[serde(alias = "dropped_links_count")]
    dropped_links_count: Option<JInt>,
    status: Option<JStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JEvent {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: Option<JInt>,
    name: Option<String>,
    attributes: Option<Counted<JKeyValue, ITEMS>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JInt>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JLink {
    #[serde(alias = "trace_id")]
    trace_id: Option<String>,
    #[serde(alias = "span_id")]
    span_id: Option<String>,
    #[serde(alias = "trace_state")]
    trace_state: Option<String>,
    attributes: Option<Counted<JKeyValue, ITEMS>>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: Option<JInt>,
    flags: Option<JInt>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JStatus {
    message: Option<String>,
    code: Option<JEnum>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JKeyValue {
    key: Option<String>,
    value: Option<JAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JAnyValue {
    #[serde(alias = "string_value")]
    string_value: Option<String>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value")]
    int_value: Option<JInt>,
    #[serde(alias = "double_value")]
    double_value: Option<JDouble>,
    #[serde(alias = "array_value")]
    array_value: Option<JArray>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<JKvList>,
    #[serde(alias = "bytes_value")]
    bytes_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JArray {
    values: Option<Counted<JAnyValue, ITEMS>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKvList {
    values: Option<Counted<JKeyValue, ITEMS>>,
}

// === into the model ===

fn count(n: Option<JInt>, field: &str) -> Result<u32, String> {
    n.unwrap_or_default().to(field)
}

fn attrs(kvs: Option<Counted<JKeyValue, ITEMS>>, depth: usize) -> Result<Vec<KeyValue>, String> {
    kvs.unwrap_or_default().0.into_iter().map(|kv| kv.into_model(depth)).collect()
}

impl JRequest {
    fn into_model(self) -> Result<TraceRequest, String> {
        let resource_spans = self.resource_spans.unwrap_or_default().0.into_iter().map(JResourceSpans::into_model);
        Ok(TraceRequest { resource_spans: resource_spans.collect::<Result<_, _>>()? })
    }
}

impl JResourceSpans {
    fn into_model(self) -> Result<ResourceSpans, String> {
        let resource = self.resource.unwrap_or_default();
        let scope_spans = self.scope_spans.unwrap_or_default().0.into_iter().map(JScopeSpans::into_model);
        Ok(ResourceSpans {
            resource: Resource {
                attributes: attrs(resource.attributes, 0)?,
                dropped_attributes_count: count(resource.dropped_attributes_count, "Resource.droppedAttributesCount")?,
            },
            scope_spans: scope_spans.collect::<Result<_, _>>()?,
            schema_url: self.schema_url.unwrap_or_default(),
        })
    }
}

impl JScopeSpans {
    fn into_model(self) -> Result<ScopeSpans, String> {
        let scope = self.scope.unwrap_or_default();
        let spans = self.spans.unwrap_or_default().0.into_iter().map(JSpan::into_model);
        Ok(ScopeSpans {
            scope: InstrumentationScope {
                name: scope.name.unwrap_or_default().into(),
                version: scope.version.unwrap_or_default().into(),
                attributes: attrs(scope.attributes, 0)?,
                dropped_attributes_count: count(
                    scope.dropped_attributes_count,
                    "InstrumentationScope.droppedAttributesCount",
                )?,
            },
            spans: spans.collect::<Result<_, _>>()?,
            schema_url: self.schema_url.unwrap_or_default(),
        })
    }
}

impl JSpan {
    fn into_model(self) -> Result<SpanData, String> {
        let status = self.status.unwrap_or_default();
        Ok(SpanData {
            trace_id: hex_id(self.trace_id.as_deref(), "Span.traceId")?.map_or(TraceId::INVALID, TraceId),
            span_id: hex_id(self.span_id.as_deref(), "Span.spanId")?.map_or(SpanId::INVALID, SpanId),
            trace_state: self.trace_state.unwrap_or_default(),
            parent_span_id: hex_id(self.parent_span_id.as_deref(), "Span.parentSpanId")?.map(SpanId),
            flags: count(self.flags, "Span.flags")?,
            name: self.name.unwrap_or_default().into(),
            kind: SpanKind::from_i32(self.kind.unwrap_or_default().number("Span.kind", &SPAN_KINDS)?),
            start_time_unix_nano: self.start_time_unix_nano.unwrap_or_default().to("Span.startTimeUnixNano")?,
            end_time_unix_nano: self.end_time_unix_nano.unwrap_or_default().to("Span.endTimeUnixNano")?,
            attributes: attrs(self.attributes, 0)?,
            dropped_attributes_count: count(self.dropped_attributes_count, "Span.droppedAttributesCount")?,
            events: self.events.unwrap_or_default().0.into_iter().map(JEvent::into_model).collect::<Result<_, _>>()?,
            dropped_events_count: count(self.dropped_events_count, "Span.droppedEventsCount")?,
            links: self.links.unwrap_or_default().0.into_iter().map(JLink::into_model).collect::<Result<_, _>>()?,
            dropped_links_count: count(self.dropped_links_count, "Span.droppedLinksCount")?,
            status: Status {
                code: StatusCode::from_i32(status.code.unwrap_or_default().number("Status.code", &STATUS_CODES)?),
                message: status.message.unwrap_or_default().into(),
            },
        })
    }
}

impl JEvent {
    fn into_model(self) -> Result<Event, String> {
        Ok(Event {
            time_unix_nano: self.time_unix_nano.unwrap_or_default().to("Event.timeUnixNano")?,
            name: self.name.unwrap_or_default().into(),
            attributes: attrs(self.attributes, 0)?,
            dropped_attributes_count: count(self.dropped_attributes_count, "Event.droppedAttributesCount")?,
        })
    }
}

impl JLink {
    fn into_model(self) -> Result<Link, String> {
        Ok(Link {
            trace_id: hex_id(self.trace_id.as_deref(), "Link.traceId")?.map_or(TraceId::INVALID, TraceId),
            span_id: hex_id(self.span_id.as_deref(), "Link.spanId")?.map_or(SpanId::INVALID, SpanId),
            trace_state: self.trace_state.unwrap_or_default(),
            attributes: attrs(self.attributes, 0)?,
            dropped_attributes_count: count(self.dropped_attributes_count, "Link.droppedAttributesCount")?,
            flags: count(self.flags, "Link.flags")?,
        })
    }
}

impl JKeyValue {
    /// `depth`: the nesting level of the value's container (0 for a span's own attributes).
    fn into_model(self, depth: usize) -> Result<KeyValue, String> {
        let value = self.value.unwrap_or_default().into_model(depth + 1)?;
        Ok(KeyValue { key: self.key.unwrap_or_default().into(), value })
    }
}

impl JAnyValue {
    fn into_model(self, depth: usize) -> Result<Value, String> {
        if depth > MAX_VALUE_DEPTH {
            return Err(format!("AnyValue: nested deeper than {MAX_VALUE_DEPTH} levels"));
        }
        Ok(if let Some(s) = self.string_value {
            Value::String(s.into())
        } else if let Some(b) = self.bool_value {
            Value::Bool(b)
        } else if let Some(i) = self.int_value {
            Value::Int(i.to("AnyValue.intValue")?)
        } else if let Some(d) = self.double_value {
            Value::Double(d.0)
        } else if let Some(a) = self.array_value {
            let values = a.values.unwrap_or_default().0.into_iter().map(|v| v.into_model(depth + 1));
            Value::Array(values.collect::<Result<_, _>>()?)
        } else if let Some(m) = self.kvlist_value {
            Value::Map(attrs(m.values, depth)?)
        } else if let Some(b) = self.bytes_value {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(b.as_bytes()))
                .map_err(|_| "AnyValue.bytesValue: not base64".to_owned())?;
            Value::Bytes(bytes)
        } else {
            Value::String("".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<TraceRequest, JsonError> {
        decode_request_within(json.as_bytes(), &DecodeLimits::NONE).map(|(r, _)| r)
    }

    #[test]
    fn decodes_the_spec_example_with_hex_ids_and_string_times() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"settler"}}]},
          "scopeSpans":[{"scope":{"name":"s","version":"1"},"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173",
            "name":"settle","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
            "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"d","value":{"doubleValue":"NaN"}},
                          {"key":"b","value":{"bytesValue":"AQI="}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}},
                          {"key":"m","value":{"kvlistValue":{"values":[{"key":"x","value":{"stringValue":"y"}}]}}},
                          {"key":"e","value":{}}],
            "events":[{"timeUnixNano":"1544712660500000000","name":"retry","attributes":[]}],
            "links":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b170"}],
            "status":{"code":"STATUS_CODE_ERROR","message":"boom"},"unknownField":{"x":1}}]}]}]}"#;
        let req = decode(json).unwrap();
        let (res, scope, s) = req.spans().next().unwrap();
        assert_eq!(res.service_name(), Some("settler"));
        assert_eq!(scope.name, "s");
        assert_eq!(s.trace_id.to_hex(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id.to_hex(), "eee19b7ec3c1b174");
        assert_eq!(s.parent_span_id.map(|p| p.to_hex()).as_deref(), Some("eee19b7ec3c1b173"));
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(s.attributes[0].value, Value::Int(42));
        assert!(matches!(s.attributes[1].value, Value::Double(d) if d.is_nan()));
        assert_eq!(s.attributes[2].value, Value::Bytes(vec![1, 2]));
        assert_eq!(s.attributes[3].value, Value::Array(vec![Value::Bool(true)]));
        assert_eq!(s.attributes[4].value, Value::Map(vec![KeyValue::new("x", "y")]));
        assert_eq!(s.attributes[5].value, Value::String("".into()));
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.links[0].span_id.to_hex(), "eee19b7ec3c1b170");
        assert_eq!(s.status, Status::error("boom"));
    }

    #[test]
    fn absent_ids_are_invalid_and_bad_ones_are_errors() {
        let req = decode(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","parentSpanId":""}]}]}]}"#).unwrap();
        let s = req.spans().next().unwrap().2;
        assert_eq!(
            (s.trace_id, s.span_id, s.parent_span_id, s.kind),
            (TraceId::INVALID, SpanId::INVALID, None, SpanKind::Unspecified)
        );
        for (json, want) in [
            (r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]}"#, "Span.traceId"),
            (r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}"#, "startTimeUnixNano"),
            (r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#, "Span.kind"),
            (r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"x"}]}]}]}"#, "decimal"),
            (r#"{"resourceSpans":"#, "EOF"),
        ] {
            match decode(json) {
                Err(JsonError::Malformed(m)) => assert!(m.contains(want), "{m} should mention {want}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn limits_stop_parsing() {
        let spans = ["{}"; 11].join(",");
        let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
        let limits = DecodeLimits { max_spans: 10, ..DecodeLimits::NONE };
        assert!(
            matches!(decode_request_within(json.as_bytes(), &limits), Err(JsonError::Limit(m)) if m.contains("10 spans"))
        );
        let limits = DecodeLimits { max_spans: 11, ..DecodeLimits::NONE };
        let (req, usage) = decode_request_within(json.as_bytes(), &limits).unwrap();
        assert_eq!((req.span_count(), usage.spans), (11, 11));
        let mut nested = String::from(r#"{"stringValue":"x"}"#);
        for _ in 0..40 {
            nested = format!(r#"{{"arrayValue":{{"values":[{nested}]}}}}"#);
        }
        let json = format!(r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"k","value":{nested}}}]}}}}]}}"#);
        assert!(matches!(decode(&json), Err(JsonError::Malformed(m)) if m.contains("nested")));
    }
}
