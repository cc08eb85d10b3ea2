//! The span model, one to one with OTLP's trace model (`opentelemetry/proto/trace/v1`).
//!
//! Every OTLP field has a home here, so importing OTLP and exporting it again is a translation and
//! never a loss: attribute values are OTLP's `AnyValue` (including bytes, arrays and key-value lists),
//! spans carry links, trace state, flags and the dropped-item counters.

use std::borrow::Cow;
use std::fmt;

use crate::error::Error;

/// A string that costs no allocation when it is a `&'static str` (attribute keys, span names).
pub type Str = Cow<'static, str>;

// === ids ===

/// A W3C trace id: 16 bytes, all-zero is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// A W3C span id: 8 bytes, all-zero is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

macro_rules! impl_id {
    ($ty:ident, $len:expr, $what:expr) => {
        impl $ty {
            /// The all-zero (invalid) id.
            pub const INVALID: Self = Self([0; $len]);

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// False for the all-zero id, which W3C and OTLP treat as absent.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// Lower-case hex, as in `traceparent`.
            pub fn to_hex(&self) -> String {
                crate::model::hex_encode(&self.0)
            }

            /// Parses exactly
            #[doc = concat!(stringify!($len), " bytes of hex (either case).")]
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                let mut out = [0u8; $len];
                crate::model::hex_decode_into(s, &mut out)
                    .map_err(|why| Error::InvalidContext(format!("{} {why}: {s:?}", $what)))?;
                Ok(Self(out))
            }

            /// Parses a byte slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.to_hex())
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

impl_id!(TraceId, 16, "trace id");
impl_id!(SpanId, 8, "span id");

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub(crate) fn hex_decode_into(s: &str, out: &mut [u8]) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err("has the wrong length");
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err("is not hex");
        };
        out[i] = (hi << 4) | lo;
    }
    Ok(())
}

/// W3C trace flags (the low 8 bits of OTLP's `Span.flags`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TraceFlags(pub u8);

impl TraceFlags {
    /// The `sampled` bit.
    pub const SAMPLED: Self = Self(0x01);
    /// No flags set.
    pub const NONE: Self = Self(0);

    /// True when the sampled bit is set.
    pub fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }
}

/// OTLP `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the parent's remoteness is known.
pub const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent came from another process.
pub const SPAN_FLAGS_CONTEXT_IS_REMOTE: u32 = 0x200;

// === span kind and status ===

/// OTLP `Span.SpanKind`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(u8)]
pub enum SpanKind {
    /// Not set by the instrumentation (OTLP value 0).
    Unspecified = 0,
    /// An internal operation (the default).
    #[default]
    Internal = 1,
    /// Handles a remote request (e.g. the facilitator's `/settle` handler).
    Server = 2,
    /// Calls a remote service (e.g. an RPC node).
    Client = 3,
    /// Sends a message.
    Producer = 4,
    /// Receives a message.
    Consumer = 5,
}

impl SpanKind {
    /// The OTLP enum number.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// From the OTLP enum number; unknown numbers are `Unspecified`.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// Lower-case name (`server`, `client`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// OTLP `Status.StatusCode`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(u8)]
pub enum StatusCode {
    /// No status set (OTLP value 0).
    #[default]
    Unset = 0,
    /// Explicitly successful.
    Ok = 1,
    /// Failed.
    Error = 2,
}

impl StatusCode {
    /// From the OTLP enum number; unknown numbers are `Unset`.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

/// OTLP `Status`: a code and a message (meaningful for errors).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Status {
    /// The code.
    pub code: StatusCode,
    /// A developer-facing message, usually only set for errors.
    pub message: Str,
}

impl Status {
    /// Status `Ok`.
    pub const fn ok() -> Self {
        Self { code: StatusCode::Ok, message: Cow::Borrowed("") }
    }

    /// Status `Error` with a message.
    pub fn error(message: impl Into<Str>) -> Self {
        Self { code: StatusCode::Error, message: message.into() }
    }
}

// === attributes ===

/// An attribute value: OTLP's `AnyValue`.
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    /// A UTF-8 string.
    String(Str),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An array of values (OTel attributes keep arrays homogeneous; OTLP does not require it).
    Array(Vec<Value>),
    /// A nested key-value list (OTLP `KeyValueList`).
    Map(Vec<KeyValue>),
}

impl Value {
    /// A JavaScript number as the JS packages record it: a safe integer (|n| ≤ 2^53 − 1, no
    /// fraction) is an OTLP int, anything else a double.
    pub fn from_js_number(n: f64) -> Self {
        if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_991.0 {
            #[allow(clippy::cast_possible_truncation)] // a safe integer
            return Self::Int(n as i64);
        }
        Self::Double(n)
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Self::String(Cow::Borrowed(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::String(Cow::Owned(v))
    }
}
impl From<Str> for Value {
    fn from(v: Str) -> Self {
        Self::String(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Double(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<Vec<&'static str>> for Value {
    fn from(v: Vec<&'static str>) -> Self {
        Self::Array(v.into_iter().map(Value::from).collect())
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Self::Array(v.into_iter().map(Value::from).collect())
    }
}
impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Self::Array(v.into_iter().map(Value::Int).collect())
    }
}
impl From<Vec<f64>> for Value {
    fn from(v: Vec<f64>) -> Self {
        Self::Array(v.into_iter().map(Value::Double).collect())
    }
}
impl From<Vec<bool>> for Value {
    fn from(v: Vec<bool>) -> Self {
        Self::Array(v.into_iter().map(Value::Bool).collect())
    }
}

/// One attribute: OTLP `KeyValue`.
#[derive(Clone, PartialEq, Debug)]
pub struct KeyValue {
    /// The attribute key (e.g. `x402.amount`).
    pub key: Str,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// Builds a key-value pair.
    pub fn new(key: impl Into<Str>, value: impl Into<Value>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

// === events, links, spans ===

/// A timestamped event on a span: OTLP `Span.Event`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Event {
    /// Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Event name (e.g. `exception`, `retry`).
    pub name: Str,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by limits.
    pub dropped_attributes_count: u32,
}

/// A link to another span: OTLP `Span.Link`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// W3C tracestate of the linked span.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by limits.
    pub dropped_attributes_count: u32,
    /// OTLP link flags (trace flags in bits 0–7, remoteness in bits 8–9).
    pub flags: u32,
}

/// A finished span: OTLP `Span`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct SpanData {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span.
    pub span_id: SpanId,
    /// W3C tracestate.
    pub trace_state: String,
    /// The parent span, `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// OTLP `Span.flags`: W3C trace flags in bits 0–7, parent remoteness in bits 8–9.
    pub flags: u32,
    /// Operation name (e.g. `settle`).
    pub name: Str,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Attributes, in the order they were set (a later value for the same key wins at export).
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by limits.
    pub dropped_attributes_count: u32,
    /// Events.
    pub events: Vec<Event>,
    /// Events dropped by limits.
    pub dropped_events_count: u32,
    /// Links.
    pub links: Vec<Link>,
    /// Links dropped by limits.
    pub dropped_links_count: u32,
    /// Status.
    pub status: Status,
}

impl SpanData {
    /// The first attribute with this key, if any.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().rev().find(|kv| kv.key == key).map(|kv| &kv.value)
    }

    /// `end - start` in nanoseconds (0 if the clock went backwards).
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano.saturating_sub(self.start_time_unix_nano)
    }
}

// === resource and scope ===

/// The entity producing spans: OTLP `Resource`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Resource {
    /// Resource attributes (`service.name`, `service.version`, …).
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by limits.
    pub dropped_attributes_count: u32,
}

/// `service.name`.
pub const SERVICE_NAME: &str = "service.name";
/// `service.version`.
pub const SERVICE_VERSION: &str = "service.version";
/// `service.instance.id`.
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// `deployment.environment.name` (the current OTel name of `deployment.environment`).
pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment.environment.name";
/// `x402.operator.id`: which facilitator or settler instance emitted the span.
pub const X402_OPERATOR_ID: &str = "x402.operator.id";
/// `x402.operator.role`: `facilitator`, `settler`, `treasury`, …
pub const X402_OPERATOR_ROLE: &str = "x402.operator.role";
/// `telemetry.sdk.name`.
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// `telemetry.sdk.version`.
pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
/// `telemetry.sdk.language`.
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";

impl Resource {
    /// A resource with `service.name` set.
    pub fn new(service_name: impl Into<Str>) -> Self {
        Self {
            attributes: vec![KeyValue::new(SERVICE_NAME, Value::String(service_name.into()))],
            dropped_attributes_count: 0,
        }
    }

    /// Sets (or replaces) one attribute.
    #[must_use]
    pub fn with(mut self, key: impl Into<Str>, value: impl Into<Value>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets (or replaces) one attribute in place.
    pub fn set(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = value,
            None => self.attributes.push(KeyValue { key, value }),
        }
    }

    /// The value of one attribute.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }

    /// `service.name`, if set.
    pub fn service_name(&self) -> Option<&str> {
        self.get(SERVICE_NAME).and_then(Value::as_str)
    }
}

/// The instrumentation library: OTLP `InstrumentationScope`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct InstrumentationScope {
    /// Scope name.
    pub name: Str,
    /// Scope version.
    pub version: Str,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by limits.
    pub dropped_attributes_count: u32,
}

// === a whole export request ===

/// OTLP `ScopeSpans`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ScopeSpans {
    /// The scope.
    pub scope: InstrumentationScope,
    /// Its spans.
    pub spans: Vec<SpanData>,
    /// Schema URL.
    pub schema_url: String,
}

/// OTLP `ResourceSpans`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ResourceSpans {
    /// The resource.
    pub resource: Resource,
    /// Spans grouped by scope.
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema URL.
    pub schema_url: String,
}

/// OTLP `ExportTraceServiceRequest`: the plaintext of every sealed batch.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct TraceRequest {
    /// Spans grouped by resource.
    pub resource_spans: Vec<ResourceSpans>,
}

impl TraceRequest {
    /// All spans, with their resource and scope.
    pub fn spans(&self) -> impl Iterator<Item = (&Resource, &InstrumentationScope, &SpanData)> {
        self.resource_spans.iter().flat_map(|rs| {
            rs.scope_spans.iter().flat_map(move |ss| ss.spans.iter().map(move |s| (&rs.resource, &ss.scope, s)))
        })
    }

    /// Number of spans.
    pub fn span_count(&self) -> usize {
        self.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter()).map(|ss| ss.spans.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_numbers_are_ints_only_when_safe_integers() {
        assert_eq!(Value::from_js_number(2.0), Value::Int(2));
        assert_eq!(Value::from_js_number(-9_007_199_254_740_991.0), Value::Int(-9_007_199_254_740_991));
        assert_eq!(Value::from_js_number(9_007_199_254_740_992.0), Value::Double(9_007_199_254_740_992.0));
        assert_eq!(Value::from_js_number(0.25), Value::Double(0.25));
        assert!(matches!(Value::from_js_number(f64::NAN), Value::Double(d) if d.is_nan()));
        assert_eq!(Value::from_js_number(f64::INFINITY), Value::Double(f64::INFINITY));
    }

    #[test]
    fn ids_round_trip_through_hex() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.is_valid());
        assert!(!TraceId::INVALID.is_valid());
        assert_eq!(SpanId::from_hex("00F067AA0BA902B7").unwrap().to_hex(), "00f067aa0ba902b7");
    }

    #[test]
    fn bad_hex_ids_are_rejected_with_a_reason() {
        let err = TraceId::from_hex("xyz").unwrap_err().to_string();
        assert!(err.contains("wrong length"), "{err}");
        let err = SpanId::from_hex("00f067aa0ba902bg").unwrap_err().to_string();
        assert!(err.contains("not hex"), "{err}");
    }

    #[test]
    fn resource_set_replaces() {
        let r = Resource::new("a").with(SERVICE_NAME, "b").with("k", 1i64);
        assert_eq!(r.service_name(), Some("b"));
        assert_eq!(r.attributes.len(), 2);
    }

    #[test]
    fn later_attribute_wins_on_lookup() {
        let s = SpanData { attributes: vec![KeyValue::new("k", 1i64), KeyValue::new("k", 2i64)], ..Default::default() };
        assert_eq!(s.attribute("k"), Some(&Value::Int(2)));
    }
}
