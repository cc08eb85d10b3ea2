//! The statistics API, scoped to the read key's project (documented in `docs/http-api.md`):
//! `GET /api/v1/stats`, `GET /api/v1/services`, `GET /api/v1/attributes` and
//! `GET /api/v1/attributes/{key}/values`. Parsing and rendering only: the numbers come from
//! [`crate::stats`] over the store's rows.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as J, json};

use super::error::ApiError;
use super::query::{MAX_FILTER_LEN, parse_status, project_of, query_pairs, store_error};
use crate::AppState;
use crate::stats::ladder::SLA_THRESHOLDS_NS;
use crate::stats::query::{AnswerError, DEFAULT_RANGE_NS, MAX_RANGE_NS, Stat, StatsAnswer, StatsQuery};
use crate::stats::suggest::{DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS, SUGGEST_SCAN_SPANS};
use crate::stats::{DIMENSION_KEYS, MINUTE_NS, RELATIVE_ACCURACY, StatFilter, minute_of, query, suggest};
use crate::store::StoreError;

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

/// Parses a statistics query string for `project` (public for tests and fuzzing).
pub fn parse_stats_query(raw: Option<&str>, project: String) -> Result<StatsQuery, ApiError> {
    let (mut from, mut to, mut step) = (None, None, None);
    let mut q = StatsQuery {
        project,
        from_ns: 0,
        to_ns: 0,
        step_seconds: 0,
        service: None,
        name: None,
        status: None,
        dim_key: None,
        dim_value: None,
        group_by: false,
        sla_ms: None,
    };
    let mut attr: Option<(String, String)> = None;
    let allowed = ["from", "to", "service", "name", "status", "group_by", "step", "sla_ms"];
    for (k, v) in pairs(raw, &allowed, true)? {
        match k.as_str() {
            "from" => from = Some(unix_ns(&k, &v)?),
            "to" => to = Some(unix_ns(&k, &v)?),
            "service" => q.service = Some(v),
            "name" => q.name = Some(v),
            "status" => q.status = Some(parse_status(&v)?),
            "group_by" => {
                if !DIMENSION_KEYS.contains(&v.as_str()) {
                    return Err(bad(format!("group_by supports {}, got {v:?}", supported_dimensions())));
                }
                q.group_by = true;
                q.dim_key = Some(v);
            }
            "step" => step = Some(v.parse().map_err(|_| bad(format!("step must be whole seconds, got {v:?}")))?),
            "sla_ms" => {
                let t: f64 = v.parse().map_err(|_| bad(format!("sla_ms must be a number, got {v:?}")))?;
                if !t.is_finite() || t < 0.0 {
                    return Err(bad("sla_ms must be a non-negative number"));
                }
                q.sla_ms = Some(t);
            }
            other => {
                let key = other.strip_prefix("attr.").unwrap_or(other);
                if !DIMENSION_KEYS.contains(&key) {
                    return Err(bad(format!(
                        "statistics can filter on the attributes {} only, got {key:?}",
                        supported_dimensions()
                    )));
                }
                if attr.is_some() {
                    return Err(bad("statistics take one attr. filter at most"));
                }
                attr = Some((key.to_owned(), v));
            }
        }
    }
    if let Some((key, value)) = attr {
        if q.dim_key.as_ref().is_some_and(|g| *g != key) {
            return Err(bad("an attr. filter must be on the group_by attribute"));
        }
        q.dim_key = Some(key);
        q.dim_value = Some(value);
    }
    let (from, to) = range(from, to, DEFAULT_RANGE_NS)?;
    (q.from_ns, q.to_ns, q.step_seconds) = StatsQuery::range(from, to, step).map_err(|e| bad(e.0))?;
    Ok(q)
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
    let group_by = q.group_by.then(|| q.dim_key.clone()).flatten();
    json!({
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
    })
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
    // Merging sketches is CPU work proportional to the rows read: off the async threads.
    let body = blocking(move || {
        let rows = store.stat_rows(&q.filter()).map_err(store_error)?;
        let answer = query::answer(q, rows).map_err(|e| match e {
            AnswerError::TooManyGroups => bad(e.to_string()),
            other => store_error(StoreError::Corrupt(other.to_string())),
        })?;
        Ok(stats_json(&answer))
    })
    .await?;
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
        assert_eq!(
            (q.dim_key.as_deref(), q.dim_value.as_deref(), q.group_by),
            (Some("x402.network"), Some("base"), true)
        );
        assert_eq!(q.sla_ms, Some(250.5));
        let q = parse_stats_query(None, "p".into()).unwrap();
        assert_eq!((q.step_seconds, (q.to_ns - q.from_ns) / S), (60, 3_660), "default: the last hour, whole minutes");
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
            "group_by=http.route",
            "attr.x402.payer=0xabc",
            "attr.x402.network=base&attr.x402.scheme=exact",
            "group_by=x402.scheme&attr.x402.network=base",
            "status=weird",
            "service=%zz",
        ] {
            let err = parse_stats_query(Some(bad), "p".into()).unwrap_err();
            assert_eq!((err.status.as_u16(), err.code), (400, "invalid_query"), "{bad}");
        }
        let err = parse_stats_query(Some("attr.x402.payer=0xabc"), "p".into()).unwrap_err();
        assert!(err.message.contains("x402.network"), "names the supported attributes: {}", err.message);
    }
}
