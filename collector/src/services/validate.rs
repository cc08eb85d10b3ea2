//! Validation of every span of a decrypted batch. A batch with one invalid span is rejected whole
//! (400 `invalid_span`, nothing stored), naming the span and the rule, so the SDK bug is findable.

use tracex_core::{KeyValue, TraceRequest, Value};

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

/// Checks every span; returns the span count.
pub fn validate(req: &TraceRequest, now_unix_nano: u64) -> Result<usize, String> {
    let count = req.span_count();
    if count > MAX_SPANS_PER_BATCH {
        return Err(format!("batch holds {count} spans (limit {MAX_SPANS_PER_BATCH})"));
    }
    let latest = now_unix_nano.saturating_add(MAX_FUTURE_NANOS);
    for rs in &req.resource_spans {
        check_attrs(&rs.resource.attributes, "resource")?;
        for ss in &rs.scope_spans {
            check_attrs(&ss.scope.attributes, "scope")?;
        }
    }
    for (i, (_, _, s)) in req.spans().enumerate() {
        let what = format!("span #{i} ({}/{})", s.trace_id, s.span_id);
        if !s.trace_id.is_valid() {
            return Err(format!("span #{i}: trace id is missing or all zero"));
        }
        if !s.span_id.is_valid() {
            return Err(format!("span #{i}: span id is missing or all zero"));
        }
        if s.parent_span_id.is_some_and(|p| p == s.span_id) {
            return Err(format!("{what}: span is its own parent"));
        }
        if s.name.is_empty() || s.name.len() > MAX_NAME_LEN {
            return Err(format!("{what}: name of {} bytes (1..={MAX_NAME_LEN})", s.name.len()));
        }
        if s.start_time_unix_nano < MIN_TIME_UNIX_NANO || s.start_time_unix_nano > latest {
            return Err(format!("{what}: start time {} is out of range", s.start_time_unix_nano));
        }
        if s.end_time_unix_nano < s.start_time_unix_nano {
            return Err(format!("{what}: ends before it starts"));
        }
        if s.events.len() > MAX_ITEMS || s.links.len() > MAX_ITEMS {
            return Err(format!("{what}: more than {MAX_ITEMS} events or links"));
        }
        check_attrs(&s.attributes, &what)?;
        for e in &s.events {
            if e.name.len() > MAX_NAME_LEN {
                return Err(format!("{what}: event name of {} bytes", e.name.len()));
            }
            check_attrs(&e.attributes, &what)?;
        }
        for l in &s.links {
            check_attrs(&l.attributes, &what)?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracex_core::{ResourceSpans, ScopeSpans, SpanData, SpanId, TraceId};

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
        ];
        for (span, want) in cases {
            let err = validate(&req(span), now).unwrap_err();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
