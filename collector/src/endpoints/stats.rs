//! The statistics API, scoped to the read key's project (documented in `docs/http-api.md`):
//! `GET /api/v1/stats`, `GET /api/v1/services`, `GET /api/v1/attributes` and
//! `GET /api/v1/attributes/{key}/values`. Parsing, the choice between the stored sketches and a
//! bounded scan (`answer`), and rendering: the numbers come from [`crate::stats`] over the
//! store's rows or spans.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};

use super::error::ApiError;
use super::query::{
    MAX_FILTER_LEN, attribute_filter, duration_bound, parse_status, project_of, query_pairs, store_error,
};
use crate::AppState;
use crate::stats::ladder::SLA_THRESHOLDS_NS;
use crate::stats::query::{AnswerError, DEFAULT_RANGE_NS, MAX_RANGE_NS, Source, Stat, StatsAnswer, StatsQuery};
use crate::stats::suggest::{DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS, SUGGEST_SCAN_SPANS};
use crate::stats::{DIMENSION_KEYS, MINUTE_NS, RELATIVE_ACCURACY, StatFilter, minute_of, query, scan, suggest};
use crate::store::{Store, StoreError};

/// Range of a services listing that gives no `from`: the last 24 hours.
pub const SERVICES_DEFAULT_RANGE_NS: u64 = 86_400 * 1_000_000_000;
/// A services listing over a longer range than this reads hourly rows (minute rows otherwise).
pub const SERVICES_HOURLY_OVER_NS: u64 = 6 * 3_600 * 1_000_000_000;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// The decoded pairs of a query string, each parameter at most once and only the `allowed` ones
/// (plus `attr.*` when `attrs` is true).
pub(crate) fn pairs(raw: Option<&str>, allowed: &[&str], attrs: bool) -> Result<Vec<(String, String)>, ApiError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for pair in query_pairs(raw) {
        let (k, v) = pair?;
        if k.len() > MAX_FILTER_LEN + 5 || v.len() > MAX_FILTER_LEN {
            return Err(bad(format!("query parameters and values are limited to {MAX_FILTER_LEN} bytes")));
        }
        if !(allowed.contains(&k.as_str()) || attrs && k.starts_with("attr.")) {
            return Err(bad(format!("unknown parameter {k:?}")));
        }
        if !seen.insert(k.clone()) {
            return Err(bad(format!("{k} given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn unix_ns(name: &str, v: &str) -> Result<u64, ApiError> {
    v.parse().map_err(|_| bad(format!("{name} must be unix nanoseconds, got {v:?}")))
}

/// `[from, to)` from optional bounds: `to` defaults to now, `from` to `default_range` before `to`.
fn range(from: Option<u64>, to: Option<u64>, default_range: u64) -> Result<(u64, u64), ApiError> {
    let to = to.unwrap_or_else(crate::now_unix_nano);
    let from = from.unwrap_or_else(|| to.saturating_sub(default_range));
    if from >= to {
        return Err(bad("from must be before to"));
    }
    if to - from > MAX_RANGE_NS {
        return Err(bad(format!("the range is limited to {} days", MAX_RANGE_NS / 86_400 / 1_000_000_000)));
    }
    Ok((from, to))
}

fn supported_dimensions() -> String {
    DIMENSION_KEYS.join(", ")
}

/// The trace search's span filters a statistics query takes besides service, name and status:
/// the duration bounds (ns or ms; inclusive).
const DURATION_PARAMS: [&str; 4] = ["min_duration_ns", "max_duration_ns", "min_duration_ms", "max_duration_ms"];

/// Parses a statistics query string for `project` (public for tests and fuzzing). Its span
/// filters are the trace search's, with the same names and parsing; whether the sketches or a
/// scan answer it is [`StatsQuery::sketch_filter`]'s call.
pub fn parse_stats_query(raw: Option<&str>, project: String) -> Result<StatsQuery, ApiError> {
    let (mut from, mut to, mut step) = (None, None, None);
    let mut q = StatsQuery { project, ..StatsQuery::default() };
    let allowed =
        [&["from", "to", "service", "name", "status", "group_by", "step", "sla_ms"][..], &DURATION_PARAMS].concat();
    for (k, v) in pairs(raw, &allowed, true)? {
        match k.as_str() {
            "from" => from = Some(unix_ns(&k, &v)?),
            "to" => to = Some(unix_ns(&k, &v)?),
            "service" => q.service = Some(v),
            "name" => q.name = Some(v),
            "status" => q.status = Some(parse_status(&v)?),
            "group_by" => {
                if v.is_empty() {
                    return Err(bad("group_by needs an attribute key, e.g. group_by=x402.network"));
                }
                q.group_by = Some(v);
            }
            "min_duration_ns" | "min_duration_ms" => duration_bound(&mut q.min_duration_ns, &k, &v)?,
            "max_duration_ns" | "max_duration_ms" => duration_bound(&mut q.max_duration_ns, &k, &v)?,
            "step" => step = Some(v.parse().map_err(|_| bad(format!("step must be whole seconds, got {v:?}")))?),
            "sla_ms" => {
                let t: f64 = v.parse().map_err(|_| bad(format!("sla_ms must be a number, got {v:?}")))?;
                if !t.is_finite() || t < 0.0 {
                    return Err(bad("sla_ms must be a non-negative number"));
                }
                q.sla_ms = Some(t);
            }
            other => attribute_filter(&mut q.attributes, other.strip_prefix("attr.").unwrap_or(other), v)?,
        }
    }
    if let (Some(min), Some(max)) = (q.min_duration_ns, q.max_duration_ns)
        && min > max
    {
        return Err(bad("the minimum duration is over the maximum: no span can match"));
    }
    let (from, to) = range(from, to, DEFAULT_RANGE_NS)?;
    (q.from_ns, q.to_ns, q.step_seconds) = StatsQuery::range(from, to, step).map_err(|e| bad(e.0))?;
    Ok(q)
}

/// A scan that matched more spans than it may count.
fn scan_too_large(max: usize) -> ApiError {
    ApiError::bad_request(
        "scan_too_large",
        format!(
            "more than {max} spans match, too many to scan: narrow the range, or filter and group on one of the \
             dimension attributes ({}) without duration bounds, which stored sketches answer for any range",
            supported_dimensions()
        ),
    )
}

/// Answers `q` from the sketches when they can, else from a scan of at most `max_scan` spans.
pub(crate) fn answer(store: &dyn Store, q: StatsQuery, max_scan: usize) -> Result<StatsAnswer, ApiError> {
    let answer = match q.sketch_filter() {
        Some(filter) => {
            let rows = store.stat_rows(&filter).map_err(store_error)?;
            query::answer(q, rows)
        }
        None => {
            let mut fold = scan::Fold::new(&q);
            let read = store.scan_spans(&q.scan(), max_scan, &mut |s| fold.add(s)).map_err(store_error)?;
            if read > max_scan {
                return Err(scan_too_large(max_scan));
            }
            fold.answer(q)
        }
    };
    answer.map_err(|e| match e {
        AnswerError::TooManyGroups => bad(e.to_string()),
        other => store_error(StoreError::Corrupt(other.to_string())),
    })
}

fn ns_text(v: u64) -> String {
    v.to_string()
}

fn stat_json(s: &Stat) -> serde_json::Map<String, J> {
    let [p50, p90, p95, p99, p999] = s.quantiles_ms;
    let J::Object(m) = json!({
        "count": s.count,
        "errors": s.errors,
        "error_rate": s.error_rate(),
        "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99, "p999_ms": p999,
        "max_ms": s.max_ms,
        "sla_compliance": s.sla_compliance.map(|c| c.value),
        "sla_exact": s.sla_compliance.map(|c| c.exact),
    }) else {
        return serde_json::Map::new();
    };
    m
}

/// The JSON of a statistics answer.
pub fn stats_json(a: &StatsAnswer) -> J {
    let q = &a.query;
    let group_by = &q.group_by;
    let mut out = json!({
        "from_unix_nano": ns_text(q.from_ns),
        "to_unix_nano": ns_text(q.to_ns),
        "step_seconds": q.step_seconds,
        "relative_accuracy": RELATIVE_ACCURACY,
        "sla_ms": q.sla_ms,
        "exact_sla_thresholds_ms": SLA_THRESHOLDS_NS.iter().map(|t| *t as f64 / 1e6).collect::<Vec<_>>(),
        "groups": a.groups.iter().map(|g| json!({
            "service": g.service,
            "name": g.name,
            "group_by": group_by,
            "group": g.group,
            "total": stat_json(&g.total),
            "buckets": g.buckets.iter().map(|(start, s)| {
                let mut b = stat_json(s);
                b.insert("start_unix_nano".into(), J::String(ns_text(*start)));
                J::Object(b)
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    if let J::Object(m) = &mut out {
        match a.source {
            Source::Sketches => {
                m.insert("source".into(), J::from("sketches"));
            }
            Source::Scan { spans } => {
                m.insert("source".into(), J::from("scan"));
                m.insert("scanned_spans".into(), J::from(spans));
            }
        }
    }
    out
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(&e.to_string()))?
}

/// `GET /api/v1/stats`.
pub async fn stats(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let q = parse_stats_query(raw.as_deref(), project)?;
    let store = app.store.clone();
    let max_scan = app.config.stats_max_scan_spans;
    // Merging sketches (or reading and folding spans) is CPU work proportional to the rows read:
    // off the async threads.
    let body = blocking(move || Ok(stats_json(&answer(&*store, q, max_scan)?))).await?;
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/services?from=&to=`: services and their span names over the range (default the
/// last 24 hours), from the statistics rows (minute resolution for the range).
pub async fn services(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let (mut from, mut to) = (None, None);
    for (k, v) in pairs(raw.as_deref(), &["from", "to"], false)? {
        let n = unix_ns(&k, &v)?;
        if k == "from" { from = Some(n) } else { to = Some(n) }
    }
    let (from, to) = range(from, to, SERVICES_DEFAULT_RANGE_NS)?;
    // Long ranges read the hourly rollups (the range widened to whole hours): 60 times fewer rows.
    let (from_minute, to_minute) = (minute_of(from), minute_of(to.saturating_add(MINUTE_NS - 1)));
    let hourly = to - from > SERVICES_HOURLY_OVER_NS;
    let filter = StatFilter {
        project,
        resolution: if hourly { 60 } else { 1 },
        from_minute: if hourly { from_minute - from_minute.rem_euclid(60) } else { from_minute },
        to_minute: if hourly { to_minute + (60 - to_minute.rem_euclid(60)) % 60 } else { to_minute },
        ..StatFilter::default()
    };
    let store = app.store.clone();
    let services = blocking(move || store.stat_rows(&filter).map_err(store_error)).await?;
    let services = query::services(&services);
    Ok(axum::Json(json!({
        "services": services.iter().map(|s| json!({
            "name": s.name,
            "last_seen_unix_nano": ns_text(s.last_seen_ns),
            "operations": s.operations.iter().map(|(name, count, last)| json!({
                "name": name, "count": count, "last_seen_unix_nano": ns_text(*last),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// The `service` and `prefix` of a suggestion query, and its `limit` when `with_limit`.
fn suggestion_params(raw: Option<&str>, with_limit: bool) -> Result<(Option<String>, String, usize), ApiError> {
    let allowed: &[&str] = if with_limit { &["service", "prefix", "limit"] } else { &["service", "prefix"] };
    let (mut service, mut prefix, mut limit) = (None, String::new(), DEFAULT_SUGGESTIONS);
    for (k, v) in pairs(raw, allowed, false)? {
        match k.as_str() {
            "service" => service = Some(v),
            "prefix" => prefix = v,
            _ => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_SUGGESTIONS).contains(n))
                    .ok_or_else(|| bad(format!("limit must be within 1..={MAX_SUGGESTIONS}")))?;
            }
        }
    }
    Ok((service, prefix, limit))
}

/// `GET /api/v1/attributes?service=&prefix=`: attribute keys of recent spans (see
/// [`crate::stats::suggest`] for the bound).
pub async fn attribute_keys(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let (service, prefix, _) = suggestion_params(raw.as_deref(), false)?;
    let store = app.store.clone();
    let keys = blocking(move || {
        let spans = store.recent_spans(&project, service.as_deref(), SUGGEST_SCAN_SPANS).map_err(store_error)?;
        Ok(suggest::keys(&spans, &prefix))
    })
    .await?;
    Ok(axum::Json(json!({
        "keys": keys.iter().map(|(key, count)| json!({ "key": key, "count": count })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/attributes/{key}/values?service=&prefix=&limit=`: the most frequent values of an
/// attribute among recent spans.
pub async fn attribute_values(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    if key.is_empty() || key.len() > MAX_FILTER_LEN {
        return Err(bad(format!("an attribute key is 1..={MAX_FILTER_LEN} bytes")));
    }
    let (service, prefix, limit) = suggestion_params(raw.as_deref(), true)?;
    let store = app.store.clone();
    let values = blocking(move || {
        let spans = store.recent_spans(&project, service.as_deref(), SUGGEST_SCAN_SPANS).map_err(store_error)?;
        Ok(suggest::values(&spans, &key, &prefix, limit))
    })
    .await?;
    Ok(axum::Json(json!({
        "values": values.iter().map(|(value, count)| json!({ "value": value, "count": count })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::query::MAX_ATTRIBUTE_FILTERS;
    use crate::store::AttributeFilter;

    const S: u64 = 1_000_000_000;

    #[test]
    fn stats_queries_parse() {
        let q = parse_stats_query(
            Some("from=3600000000000&to=7200000000000&service=f&name=verify&status=error&group_by=x402.network&attr.x402.network=base&sla_ms=250.5&step=300"),
            "p".into(),
        )
        .unwrap();
        assert_eq!((q.from_ns, q.to_ns, q.step_seconds), (3_600 * S, 7_200 * S, 300));
        assert_eq!((q.service.as_deref(), q.name.as_deref()), (Some("f"), Some("verify")));
        assert_eq!(q.status, Some(tracex_core::StatusCode::Error));
        assert_eq!(q.group_by.as_deref(), Some("x402.network"));
        assert_eq!(q.attributes, [AttributeFilter { key: "x402.network".into(), value: "base".into() }]);
        assert_eq!(q.sla_ms, Some(250.5));
        let f = q.sketch_filter().expect("one dimension, grouped and filtered: the sketches answer");
        assert_eq!((f.dim_key.as_str(), f.dim_value.as_deref()), ("x402.network", Some("base")));
        let q = parse_stats_query(None, "p".into()).unwrap();
        assert_eq!((q.step_seconds, (q.to_ns - q.from_ns) / S), (60, 3_660), "default: the last hour, whole minutes");
        assert!(q.sketch_filter().is_some_and(|f| f.dim_key.is_empty() && f.dim_value.is_none()));
        for bad in [
            "bogus=1",
            "from=1&from=2",
            "from=-1",
            "from=10&to=5",
            "to=99999999999999999999",
            "from=0&to=3000000000000000",
            "step=59",
            "step=x",
            "from=0&to=172800000000000&step=60",
            "sla_ms=-1",
            "sla_ms=NaN",
            "sla_ms=inf",
            "status=weird",
            "service=%zz",
            "group_by=",
            "attr.=x",
            "attr.x402.payer=1&attr.x402.payer=2",
            "min_duration_ms=-1",
            "max_duration_ns=1.5",
            "min_duration_ns=5&min_duration_ms=1",
            "min_duration_ms=6&max_duration_ms=5",
            "min_duration_ns=1000001&max_duration_ms=1",
        ] {
            let err = parse_stats_query(Some(bad), "p".into()).unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (400, "invalid_query"), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_ATTRIBUTE_FILTERS).map(|i| format!("attr.k{i}=v")).collect();
        assert_eq!(parse_stats_query(Some(&many.join("&")), "p".into()).unwrap_err().code, "invalid_query");
    }

    #[test]
    fn every_parameter_the_openapi_document_names_is_taken() {
        let doc: J = serde_json::from_str(super::super::openapi::DOCUMENT).unwrap();
        let params = doc["paths"]["/api/v1/stats"]["get"]["parameters"].as_array().unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"min_duration_ms") && names.contains(&"attr"), "{names:?}");
        for name in names {
            let raw = if name == "attr" { "attr.k=60".to_owned() } else { format!("{name}=60") };
            if let Err(e) = parse_stats_query(Some(&raw), "p".into()) {
                assert!(!e.message.contains("unknown parameter"), "{name}: {}", e.message);
            }
        }
    }

    #[test]
    fn the_search_filters_parse_and_choose_the_path() {
        let sketches = |raw: &str| parse_stats_query(Some(raw), "p".into()).unwrap().sketch_filter().is_some();
        // One dimension attribute at most, no durations: the stored rows answer.
        for raw in ["attr.x402.network=base", "group_by=x402.scheme", "group_by=x402.error&attr.x402.error=e"] {
            assert!(sketches(raw), "{raw}");
        }
        // Anything else is a scan.
        let long = format!("attr.x402.network={}", "v".repeat(crate::stats::MAX_DIMENSION_VALUE_LEN + 1));
        for raw in [
            "min_duration_ms=0",
            "max_duration_ns=5",
            "attr.x402.payer=0xabc",
            "attr.x402.network=base&attr.x402.scheme=exact",
            "group_by=x402.scheme&attr.x402.network=base",
            "group_by=http.route",
            long.as_str(),
        ] {
            assert!(!sketches(raw), "{raw}");
        }
        let q = parse_stats_query(
            Some("min_duration_ms=2&max_duration_ns=3000000&attr.http.route=%2Fpay&attr.n=1&group_by=x402.payer"),
            "p".into(),
        )
        .unwrap();
        let scan = q.scan();
        assert_eq!((scan.min_duration_ns, scan.max_duration_ns), (Some(2_000_000), Some(3_000_000)), "inclusive, ns");
        assert_eq!(
            scan.attributes,
            [
                AttributeFilter { key: "http.route".into(), value: "/pay".into() },
                AttributeFilter { key: "n".into(), value: "1".into() }
            ]
        );
        assert_eq!(scan.group_by.as_deref(), Some("x402.payer"));
        assert_eq!((scan.from_ns, scan.to_ns), (q.from_ns, q.to_ns), "the aligned range");
        let q = parse_stats_query(Some("min_duration_ms=5&max_duration_ms=5"), "p".into()).unwrap();
        assert_eq!((q.min_duration_ns, q.max_duration_ns), (Some(5_000_000), Some(5_000_000)), "min = max is fine");
    }
}
