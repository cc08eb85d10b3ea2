//! The query API, scoped to the read key's project:
//! `GET /api/v1/traces?service=&name=&status=&min_duration_ns=&max_duration_ns=&from=&to=&attr.<key>=<value>&limit=&cursor=`
//! and `GET /api/v1/traces/{trace_id}?limit=&cursor=` (the trace's spans as waterfall rows: depth-first
//! pre-order with each span's depth, a page at a time).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracex_core::TraceId;

use super::error::ApiError;
use super::json;
use crate::AppState;
use crate::store::{AttributeFilter, KeyScope, StoreError, TraceOrder, TraceQuery};

pub(crate) async fn project_of(app: &Arc<AppState>, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(super::access::authorize(app, headers, KeyScope::Read).await?.project)
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidQuery(m) => ApiError::bad_request("invalid_query", m),
        other => {
            tracing::error!(error = %other, "query failed");
            ApiError::unavailable("store_unavailable", "the store is unavailable", 1)
        }
    }
}

fn decode_component(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .ok_or_else(|| ApiError::bad_request("invalid_query", "bad percent-encoding"))?;
                out.push(
                    u8::from_str_radix(hex, 16)
                        .map_err(|_| ApiError::bad_request("invalid_query", "bad percent-encoding"))?,
                );
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("invalid_query", "query is not UTF-8"))
}

/// The decoded `key=value` pairs of a query string, in order (empty pairs skipped).
pub(crate) fn query_pairs(raw: Option<&str>) -> impl Iterator<Item = Result<(String, String), ApiError>> + '_ {
    raw.unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((decode_component(k)?, decode_component(v)?))
    })
}

/// Most `attr.` filters in one listing query. Each becomes a join in the store's SQL, and SQLite
/// refuses expressions deeper than 1000 (about 1,100 filters answered 503 as if the store were down).
pub const MAX_ATTRIBUTE_FILTERS: usize = 16;
/// Longest filter value or attribute key in a query (bytes).
pub const MAX_FILTER_LEN: usize = 1024;

/// A `status` filter: `ok`, `error` or `unset`.
pub(crate) fn parse_status(v: &str) -> Result<tracex_core::StatusCode, ApiError> {
    match v {
        "ok" => Ok(tracex_core::StatusCode::Ok),
        "error" => Ok(tracex_core::StatusCode::Error),
        "unset" => Ok(tracex_core::StatusCode::Unset),
        other => {
            Err(ApiError::bad_request("invalid_query", format!("status must be ok, error or unset, got {other:?}")))
        }
    }
}

/// Parses a listing's query string into filters for `project` (public for the fuzz target).
pub fn parse_query(raw: Option<&str>, project: String) -> Result<TraceQuery, ApiError> {
    let mut q = TraceQuery { project, limit: 50, ..TraceQuery::default() };
    let mut seen: HashSet<String> = HashSet::new();
    for pair in query_pairs(raw) {
        let (k, v) = pair?;
        if k.len() > MAX_FILTER_LEN + 5 || v.len() > MAX_FILTER_LEN {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameters and values are limited to {MAX_FILTER_LEN} bytes"),
            ));
        }
        let num = |name: &str, v: &str| -> Result<u64, ApiError> {
            v.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{name} must be a non-negative integer, got {v:?}"))
            })
        };
        if let Some(attr) = k.strip_prefix("attr.") {
            if attr.is_empty() {
                return Err(ApiError::bad_request("invalid_query", "attr. needs a key, e.g. attr.x402.network=base"));
            }
            if q.attributes.len() == MAX_ATTRIBUTE_FILTERS {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("at most {MAX_ATTRIBUTE_FILTERS} attr. filters per query"),
                ));
            }
            q.attributes.push(AttributeFilter { key: attr.to_owned(), value: v });
            continue;
        }
        if !seen.insert(k.clone()) {
            return Err(ApiError::bad_request("invalid_query", format!("{k} given twice")));
        }
        match k.as_str() {
            "service" => q.service = Some(v),
            "name" => q.span_name = Some(v),
            "status" => {
                q.status = Some(parse_status(&v)?);
            }
            "min_duration_ns" => q.min_duration_ns = Some(num(&k, &v)?),
            "max_duration_ns" => q.max_duration_ns = Some(num(&k, &v)?),
            "min_duration_ms" => q.min_duration_ns = Some(num(&k, &v)?.saturating_mul(1_000_000)),
            "max_duration_ms" => q.max_duration_ns = Some(num(&k, &v)?.saturating_mul(1_000_000)),
            "from" => q.start_from_ns = Some(num(&k, &v)?),
            "to" => q.start_to_ns = Some(num(&k, &v)?),
            "limit" => {
                let n = num(&k, &v)?;
                if !(1..=1000).contains(&n) {
                    return Err(ApiError::bad_request("invalid_query", "limit must be within 1..=1000"));
                }
                q.limit = usize::try_from(n).unwrap_or(1000);
            }
            "cursor" => q.cursor = Some(v),
            "sort" => {
                q.order = match v.as_str() {
                    "start" => TraceOrder::Newest,
                    "duration" => TraceOrder::Longest,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("sort must be start (newest first) or duration (longest first), got {v:?}"),
                        ));
                    }
                }
            }
            other => return Err(ApiError::bad_request("invalid_query", format!("unknown parameter {other:?}"))),
        }
    }
    Ok(q)
}

/// Lists traces.
pub async fn list(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let q = parse_query(raw.as_deref(), project)?;
    let store = app.store.clone();
    let page = tokio::task::spawn_blocking(move || store.list_traces(&q))
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .map_err(store_error)?;
    Ok(axum::Json(serde_json::json!({
        "traces": page.traces.iter().map(json::summary).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

/// Spans per page of a trace's detail when `limit` is not given: as many as a page may hold, so
/// that a client unaware of pages gets whole traces of up to that size.
pub const DEFAULT_SPANS_PER_PAGE: usize = MAX_SPANS_PER_PAGE;
/// Most spans per page of a trace's detail: bounds the JSON rendered for one answer.
pub const MAX_SPANS_PER_PAGE: usize = 10_000;

/// `limit` and `cursor` of the detail route. The cursor is the position of the page's first row in
/// the trace's waterfall order (opaque to clients; a decimal today).
pub fn parse_detail_page(raw: Option<&str>) -> Result<(usize, usize), ApiError> {
    let (mut limit, mut offset) = (DEFAULT_SPANS_PER_PAGE, 0);
    for pair in query_pairs(raw) {
        let (k, v) = pair?;
        let n = v.parse::<usize>().ok();
        match k.as_str() {
            "limit" => {
                limit = n.filter(|n| (1..=MAX_SPANS_PER_PAGE).contains(n)).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("limit must be within 1..={MAX_SPANS_PER_PAGE}"))
                })?;
            }
            "cursor" => offset = n.ok_or_else(|| ApiError::bad_request("invalid_query", "invalid cursor"))?,
            other => return Err(ApiError::bad_request("invalid_query", format!("unknown parameter {other:?}"))),
        }
    }
    Ok((limit, offset))
}

/// One trace as waterfall rows: every span once, parents before children, each with its `depth`
/// (cycles and spans whose parent is not stored start at depth 0 with `detached` saying why), a
/// page of `limit` rows at a time; follow `next_cursor` until it is null.
pub async fn get(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let id = TraceId::from_hex(&trace_id)
        .ok()
        .filter(TraceId::is_valid)
        .ok_or_else(|| ApiError::bad_request("invalid_query", "trace id must be 32 hex digits"))?;
    let (limit, offset) = parse_detail_page(raw.as_deref())?;
    let store = app.store.clone();
    // Ordering and rendering are CPU work on up to a whole trace: off the async threads too.
    let body = tokio::task::spawn_blocking(move || {
        let spans = store.get_trace(&project, id)?;
        if spans.is_empty() {
            return Ok(None);
        }
        let order = json::tree_order(&spans);
        let page = order.get(offset..).unwrap_or_default();
        let page = &page[..page.len().min(limit)];
        let end = offset.saturating_add(page.len());
        // Written straight to text (keys in the order a `json!` map printed them): see
        // `json::SpanJson` for what building a `Value` tree first cost.
        let rows = RowsJson { spans: &spans, rows: page };
        let detail = DetailJson {
            next_cursor: (end < order.len()).then(|| end.to_string()),
            span_count: spans.len(),
            spans: rows,
            trace_id: id.to_hex(),
        };
        serde_json::to_vec(&detail).map(Some).map_err(|e| crate::store::StoreError::Database(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?
    .map_err(store_error)?;
    let Some(body) = body else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no trace {trace_id} in this project")));
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A page of a trace's detail, as `get` answers it.
#[derive(serde::Serialize)]
struct DetailJson<'a> {
    next_cursor: Option<String>,
    span_count: usize,
    spans: RowsJson<'a>,
    trace_id: String,
}

/// The page's rows, each a span with its depth.
struct RowsJson<'a> {
    spans: &'a [crate::store::StoredSpan],
    rows: &'a [json::TreeRow],
}

impl serde::Serialize for RowsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.iter().map(|row| {
            let st = &self.spans[row.index];
            json::SpanJson { resource: &st.resource, scope: &st.scope, span: &st.span, row: Some(row) }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_pages_parse() {
        assert_eq!(parse_detail_page(None).unwrap(), (DEFAULT_SPANS_PER_PAGE, 0));
        assert_eq!(parse_detail_page(Some("limit=10&cursor=30")).unwrap(), (10, 30));
        for bad in ["limit=0", "limit=10001", "cursor=-1", "cursor=x", "depth=3"] {
            assert_eq!(parse_detail_page(Some(bad)).unwrap_err().code, "invalid_query", "{bad}");
        }
    }

    #[test]
    fn query_strings_parse_into_filters() {
        let q = parse_query(
            Some("service=settler&status=error&min_duration_ms=5&attr.x402.network=base%20sepolia&limit=10"),
            "p".into(),
        )
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("settler"));
        assert_eq!(q.status, Some(tracex_core::StatusCode::Error));
        assert_eq!(q.min_duration_ns, Some(5_000_000));
        assert_eq!(q.attributes, vec![AttributeFilter { key: "x402.network".into(), value: "base sepolia".into() }]);
        assert_eq!(q.limit, 10);
        for bad in [
            "status=weird",
            "limit=0",
            "limit=5000",
            "from=-1",
            "bogus=1",
            "attr.=x",
            "service=a&service=b",
            "name=%zz",
        ] {
            assert_eq!(parse_query(Some(bad), "p".into()).unwrap_err().code, "invalid_query", "{bad}");
        }
        let filters = |n: usize| (0..n).map(|i| format!("attr.k{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(parse_query(Some(&filters(MAX_ATTRIBUTE_FILTERS)), "p".into()).unwrap().attributes.len(), 16);
        for bad in [filters(MAX_ATTRIBUTE_FILTERS + 1), filters(1100), format!("service={}", "x".repeat(5000))] {
            let err = parse_query(Some(&bad), "p".into()).unwrap_err();
            assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "invalid_query"));
        }
    }
}
