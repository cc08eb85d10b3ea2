//! Validation of every span of a decrypted batch. A sealed batch with one invalid span is rejected
//! whole (400 `invalid_span`, nothing stored), naming the span and the rule, so the SDK bug is
//! findable; clear-text OTLP keeps the valid spans and reports the others ([`retain_valid`]).

use tracex_core::{KeyValue, ResourceSpans, ScopeSpans, SpanData, TraceRequest, Value};

/// Most spans in one batch.
pub const MAX_SPANS_PER_BATCH: usize = 100_000;
/// Longest span or event name (bytes).
pub const MAX_NAME_LEN: usize = 1024;
/// Longest attribute key (bytes).
pub const MAX_KEY_LEN: usize = 256;
/// Longest string or bytes attribute value (bytes).
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Most attributes, events or links on one span (and attributes on one event or link).
pub const MAX_ITEMS: usize = 1024;
/// Longest status message, `tracestate`, schema URL, scope name or version (bytes). W3C caps
/// `tracestate` at 512 characters; the rest are short by nature, and unbounded they let one span
/// store megabytes.
pub const MAX_TEXT_LEN: usize = 4 * 1024;
/// Earliest accepted timestamp: 2000-01-01T00:00:00Z.
pub const MIN_TIME_UNIX_NANO: u64 = 946_684_800_000_000_000;
/// How far in the future a span may start (clock skew allowance): one day.
pub const MAX_FUTURE_NANOS: u64 = 86_400_000_000_000;

fn check_attrs(attrs: &[KeyValue], what: &str) -> Result<(), String> {
    if attrs.len() > MAX_ITEMS {
        return Err(format!("{what} has {} attributes (limit {MAX_ITEMS})", attrs.len()));
    }
    for kv in attrs {
        if kv.key.is_empty() || kv.key.len() > MAX_KEY_LEN {
            return Err(format!("{what} has an attribute key of {} bytes (1..={MAX_KEY_LEN})", kv.key.len()));
        }
        check_value(&kv.value, &kv.key, what)?;
    }
    Ok(())
}

fn check_value(v: &Value, key: &str, what: &str) -> Result<(), String> {
    match v {
        Value::String(s) if s.len() > MAX_VALUE_LEN => {
            Err(format!("{what}: attribute {key:?} is {} bytes (limit {MAX_VALUE_LEN})", s.len()))
        }
        Value::Bytes(b) if b.len() > MAX_VALUE_LEN => {
            Err(format!("{what}: attribute {key:?} is {} bytes (limit {MAX_VALUE_LEN})", b.len()))
        }
        Value::Array(items) if items.len() > MAX_ITEMS => {
            Err(format!("{what}: attribute {key:?} has {} items", items.len()))
        }
        Value::Array(items) => items.iter().try_for_each(|i| check_value(i, key, what)),
        Value::Map(kvs) => check_attrs(kvs, what),
        _ => Ok(()),
    }
}

fn check_text(what: &str, field: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_LEN {
        return Err(format!("{what}: {field} of {} bytes (limit {MAX_TEXT_LEN})", text.len()));
    }
    Ok(())
}

fn check_time(what: &str, field: &str, t: u64, latest: u64) -> Result<(), String> {
    if t < MIN_TIME_UNIX_NANO || t > latest {
        return Err(format!("{what}: {field} {t} is out of range"));
    }
    Ok(())
}

/// Checks every span; returns the span count.
pub fn validate(req: &TraceRequest, now_unix_nano: u64) -> Result<usize, String> {
    let count = req.span_count();
    if count > MAX_SPANS_PER_BATCH {
        return Err(format!("batch holds {count} spans (limit {MAX_SPANS_PER_BATCH})"));
    }
    let latest = now_unix_nano.saturating_add(MAX_FUTURE_NANOS);
    for rs in &req.resource_spans {
        check_resource(rs)?;
        for ss in &rs.scope_spans {
            check_scope(ss)?;
        }
    }
    for (i, (_, _, s)) in req.spans().enumerate() {
        check_span(i, s, latest)?;
    }
    Ok(count)
}

/// What [`retain_valid`] took out of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Spans removed.
    pub spans: usize,
    /// Why the first of them was removed (the message [`validate`] would give).
    pub first: Option<String>,
}

/// Removes the spans that fail validation, with the same rules and messages as [`validate`]: a
/// resource or scope that fails takes all of its spans with it. For clear-text OTLP, whose
/// protocol answers such spans with a partial success instead of refusing the whole request.
/// The span limit is the decoder's business ([`crate::config::Config::decode_limits`]).
pub fn retain_valid(req: &mut TraceRequest, now_unix_nano: u64) -> Rejected {
    let latest = now_unix_nano.saturating_add(MAX_FUTURE_NANOS);
    let mut rejected = Rejected::default();
    let mut reject = |n: usize, why: String| {
        rejected.spans += n;
        rejected.first.get_or_insert(why);
    };
    let mut i = 0;
    req.resource_spans.retain_mut(|rs| {
        if let Err(why) = check_resource(rs) {
            let n: usize = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
            i += n;
            reject(n, why);
            return false;
        }
        rs.scope_spans.retain_mut(|ss| {
            if let Err(why) = check_scope(ss) {
                i += ss.spans.len();
                reject(ss.spans.len(), why);
                return false;
            }
            ss.spans.retain(|s| {
                let ok = check_span(i, s, latest).map_err(|why| reject(1, why)).is_ok();
                i += 1;
                ok
            });
            !ss.spans.is_empty()
        });
        !rs.scope_spans.is_empty()
    });
    rejected
}

fn check_resource(rs: &ResourceSpans) -> Result<(), String> {
    check_attrs(&rs.resource.attributes, "resource")?;
    check_text("resource", "schema URL", &rs.schema_url)
}

fn check_scope(ss: &ScopeSpans) -> Result<(), String> {
    check_attrs(&ss.scope.attributes, "scope")?;
    check_text("scope", "schema URL", &ss.schema_url)?;
    check_text("scope", "name", &ss.scope.name)?;
    check_text("scope", "version", &ss.scope.version)
}

/// The rules for span `#i` of its request.
fn check_span(i: usize, s: &SpanData, latest: u64) -> Result<(), String> {
    if !s.trace_id.is_valid() {
        return Err(format!("span #{i}: trace id is missing or all zero"));
    }
    if !s.span_id.is_valid() {
        return Err(format!("span #{i}: span id is missing or all zero"));
    }
    let what = format!("span #{i} ({}/{})", s.trace_id, s.span_id);
    if s.parent_span_id.is_some_and(|p| p == s.span_id) {
        return Err(format!("{what}: span is its own parent"));
    }
    if s.name.is_empty() || s.name.len() > MAX_NAME_LEN {
        return Err(format!("{what}: name of {} bytes (1..={MAX_NAME_LEN})", s.name.len()));
    }
    check_time(&what, "start time", s.start_time_unix_nano, latest)?;
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err(format!("{what}: ends before it starts"));
    }
    check_time(&what, "end time", s.end_time_unix_nano, latest)?;
    check_text(&what, "status message", &s.status.message)?;
    check_text(&what, "tracestate", &s.trace_state)?;
    if s.events.len() > MAX_ITEMS || s.links.len() > MAX_ITEMS {
        return Err(format!("{what}: more than {MAX_ITEMS} events or links"));
    }
    check_attrs(&s.attributes, &what)?;
    for e in &s.events {
        if e.name.len() > MAX_NAME_LEN {
            return Err(format!("{what}: event name of {} bytes", e.name.len()));
        }
        check_time(&what, "event time", e.time_unix_nano, latest)?;
        check_attrs(&e.attributes, &what)?;
    }
    for l in &s.links {
        check_text(&what, "link tracestate", &l.trace_state)?;
        check_attrs(&l.attributes, &what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracex_core::{Event, Resource, SpanId, Status, TraceId};

    fn req(span: SpanData) -> TraceRequest {
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn good() -> SpanData {
        SpanData {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            name: "settle".into(),
            start_time_unix_nano: 1_763_900_000_000_000_000,
            end_time_unix_nano: 1_763_900_000_000_000_100,
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_names_the_problem() {
        let now = 1_763_900_000_000_000_000;
        assert_eq!(validate(&req(good()), now), Ok(1));
        let cases: Vec<(SpanData, &str)> = vec![
            (SpanData { trace_id: TraceId::INVALID, ..good() }, "trace id"),
            (SpanData { span_id: SpanId::INVALID, ..good() }, "span id"),
            (SpanData { parent_span_id: Some(SpanId([2; 8])), ..good() }, "own parent"),
            (SpanData { name: "".into(), ..good() }, "name"),
            (SpanData { end_time_unix_nano: 1, ..good() }, "ends before"),
            (SpanData { start_time_unix_nano: 5, end_time_unix_nano: 6, ..good() }, "out of range"),
            (SpanData { attributes: vec![KeyValue::new("k", "x".repeat(MAX_VALUE_LEN + 1))], ..good() }, "limit"),
            (SpanData { attributes: vec![KeyValue::new("", 1i64)], ..good() }, "attribute key"),
            (SpanData { end_time_unix_nano: u64::MAX, ..good() }, "end time"),
            (SpanData { end_time_unix_nano: 7_258_118_400_000_000_000, ..good() }, "end time"), // 2200
            (SpanData { status: Status::error("x".repeat(10 << 20)), ..good() }, "status message"),
            (SpanData { trace_state: "k=v,".repeat(2000), ..good() }, "tracestate"),
            (
                SpanData {
                    events: vec![Event { time_unix_nano: u64::MAX, name: "retry".into(), ..Default::default() }],
                    ..good()
                },
                "event time",
            ),
        ];
        for (span, want) in cases {
            let err = validate(&req(span), now).unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn retain_valid_keeps_the_valid_spans_and_names_the_first_rejected() {
        let now = 1_763_900_000_000_000_000;
        let bad_resource = ResourceSpans {
            resource: Resource { attributes: vec![KeyValue::new("", 1i64)], ..Default::default() },
            ..req(good()).resource_spans[0].clone()
        };
        let mut r = TraceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![
                            good(),
                            SpanData { span_id: SpanId::INVALID, ..good() },
                            SpanData { span_id: SpanId([3; 8]), ..good() },
                            SpanData { name: "".into(), ..good() },
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                bad_resource,
            ],
        };
        let rejected = retain_valid(&mut r, now);
        assert_eq!(rejected.spans, 3);
        assert_eq!(rejected.first.as_deref(), Some("span #1: span id is missing or all zero"));
        let kept: Vec<_> = r.spans().map(|(_, _, s)| s.span_id).collect();
        assert_eq!(kept, [SpanId([2; 8]), SpanId([3; 8])]);
        assert_eq!(r.resource_spans.len(), 1, "a resource left without spans goes");
        assert_eq!(validate(&r, now), Ok(2));
    }
}
