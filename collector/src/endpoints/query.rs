//! The query API, scoped to the read key's project:
//! `GET /api/v1/traces?service=&name=&status=&min_duration_ns=&max_duration_ns=&from=&to=&attr.<key>=<value>&limit=&cursor=`
//! and `GET /api/v1/traces/{trace_id}?limit=&cursor=&resources=` (the trace's spans as waterfall rows:
//! depth-first pre-order with each span's depth, a page at a time; with `resources=shared` each
//! distinct resource of the page once instead of a copy in every span).

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

/// A duration bound (`min_duration_ns`, `max_duration_ms`, …), as the trace search and the
/// statistics take it: a non-negative integer, ms saturating into ns, and one form per bound.
pub(crate) fn duration_bound(bound: &mut Option<u64>, k: &str, v: &str) -> Result<(), ApiError> {
    let n: u64 = v.parse().map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{k} must be a non-negative integer, got {v:?}"))
    })?;
    let ns = if k.ends_with("_ms") { n.saturating_mul(1_000_000) } else { n };
    if bound.replace(ns).is_some() {
        let which = k.trim_end_matches("_ns").trim_end_matches("_ms");
        return Err(ApiError::bad_request("invalid_query", format!("give {which}_ns or {which}_ms, not both")));
    }
    Ok(())
}

/// One `attr.<key>=<value>` filter (`key` without the prefix), at most
/// [`MAX_ATTRIBUTE_FILTERS`] of them, as the trace search and the statistics take them.
pub(crate) fn attribute_filter(filters: &mut Vec<AttributeFilter>, key: &str, value: String) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("invalid_query", "attr. needs a key, e.g. attr.x402.network=base"));
    }
    if filters.len() == MAX_ATTRIBUTE_FILTERS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_ATTRIBUTE_FILTERS} attr. filters per query"),
        ));
    }
    filters.push(AttributeFilter { key: key.to_owned(), value });
    Ok(())
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
            attribute_filter(&mut q.attributes, attr, v)?;
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
            "min_duration_ns" | "min_duration_ms" => duration_bound(&mut q.min_duration_ns, &k, &v)?,
            "max_duration_ns" | "max_duration_ms" => duration_bound(&mut q.max_duration_ns, &k, &v)?,
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

/// How a page of a trace's detail carries each span's resource (`resources=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResourceShape {
    /// `inline` (the default): each span has its own `resource` object.
    #[default]
    Inline,
    /// `shared`: the page's distinct resources once in a top-level `resources` array, and each
    /// span a `resource_index` into it instead (a trace has a few resources and up to thousands of
    /// spans; the copies were ≈ 40 % of the answer's bytes).
    Shared,
}

/// One page of a trace's detail, as its query string asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetailPage {
    /// Most rows in the page (`limit`).
    pub limit: usize,
    /// Position of the page's first row in waterfall order (`cursor`).
    pub offset: usize,
    /// Where the spans' resources go (`resources`).
    pub resources: ResourceShape,
}

/// `limit`, `cursor` and `resources` of the detail route. The cursor is the position of the page's
/// first row in the trace's waterfall order (opaque to clients; a decimal today).
pub fn parse_detail_page(raw: Option<&str>) -> Result<DetailPage, ApiError> {
    let mut page = DetailPage { limit: DEFAULT_SPANS_PER_PAGE, offset: 0, resources: ResourceShape::Inline };
    let mut resources_seen = false;
    for pair in query_pairs(raw) {
        let (k, v) = pair?;
        let n = v.parse::<usize>().ok();
        match k.as_str() {
            "limit" => {
                page.limit = n.filter(|n| (1..=MAX_SPANS_PER_PAGE).contains(n)).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("limit must be within 1..={MAX_SPANS_PER_PAGE}"))
                })?;
            }
            "cursor" => page.offset = n.ok_or_else(|| ApiError::bad_request("invalid_query", "invalid cursor"))?,
            "resources" => {
                if std::mem::replace(&mut resources_seen, true) {
                    return Err(ApiError::bad_request("invalid_query", "resources given twice"));
                }
                page.resources = match v.as_str() {
                    "inline" => ResourceShape::Inline,
                    "shared" => ResourceShape::Shared,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("resources must be inline (the default) or shared, got {v:?}"),
                        ));
                    }
                };
            }
            other => return Err(ApiError::bad_request("invalid_query", format!("unknown parameter {other:?}"))),
        }
    }
    Ok(page)
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
    let page = parse_detail_page(raw.as_deref())?;
    let store = app.store.clone();
    // Ordering and rendering are CPU work on up to a whole trace: off the async threads too.
    let body = tokio::task::spawn_blocking(move || {
        let spans = store.get_trace(&project, id)?;
        if spans.is_empty() {
            return Ok(None);
        }
        let order = json::tree_order(&spans);
        detail_json(id, &spans, &order, page).map(Some).map_err(|e| crate::store::StoreError::Database(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(&e.to_string()))?
    .map_err(store_error)?;
    let Some(body) = body else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no trace {trace_id} in this project")));
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON text of one page of a trace's detail: `order` is [`json::tree_order`] of `spans`.
fn detail_json(
    id: TraceId,
    spans: &[crate::store::StoredSpan],
    order: &[json::TreeRow],
    page: DetailPage,
) -> serde_json::Result<Vec<u8>> {
    let rows = order.get(page.offset..).unwrap_or_default();
    let rows = &rows[..rows.len().min(page.limit)];
    let end = page.offset.saturating_add(rows.len());
    let shared = (page.resources == ResourceShape::Shared).then(|| json::SharedResources::of_rows(spans, rows));
    // Written straight to text (keys in the order a `json!` map printed them): see
    // `json::SpanJson` for what building a `Value` tree first cost.
    let detail = DetailJson {
        next_cursor: (end < order.len()).then(|| end.to_string()),
        resources: shared.as_ref().map(|sh| json::ResourcesJson(&sh.resources)),
        span_count: spans.len(),
        spans: RowsJson { spans, rows, resource_indexes: shared.as_ref().map(|sh| sh.indexes.as_slice()) },
        trace_id: id.to_hex(),
    };
    // Sized up front: growing a 6 MB answer by doubling copied it and faulted in fresh pages
    // several times over.
    let mut out = Vec::with_capacity(rows.len().saturating_mul(DETAIL_BYTES_PER_SPAN) + 1024);
    serde_json::to_writer(&mut out, &detail)?;
    Ok(out)
}

/// About what one span takes in a detail answer: 630 bytes with shared resources in the
/// benchmark's 10,000-span trace, 1,050 with the resource inline (a guess that is low costs one
/// doubling).
const DETAIL_BYTES_PER_SPAN: usize = 700;

/// A page of a trace's detail, as `get` answers it.
#[derive(serde::Serialize)]
struct DetailJson<'a> {
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<json::ResourcesJson<'a>>,
    span_count: usize,
    spans: RowsJson<'a>,
    trace_id: String,
}

/// The page's rows, each a span with its depth (and, with shared resources, its resource's index).
struct RowsJson<'a> {
    spans: &'a [crate::store::StoredSpan],
    rows: &'a [json::TreeRow],
    resource_indexes: Option<&'a [usize]>,
}

impl serde::Serialize for RowsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.iter().enumerate().map(|(k, row)| {
            let st = &self.spans[row.index];
            json::SpanJson {
                resource: &st.resource,
                scope: &st.scope,
                span: &st.span,
                row: Some(row),
                resource_index: self.resource_indexes.map(|ix| ix[k]),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value as J;
    use tracex_core::{KeyValue, Resource, SpanData, SpanId};

    use super::*;
    use crate::store::StoredSpan;

    #[test]
    fn detail_pages_parse() {
        let page = |limit, offset, resources| DetailPage { limit, offset, resources };
        assert_eq!(parse_detail_page(None).unwrap(), page(DEFAULT_SPANS_PER_PAGE, 0, ResourceShape::Inline));
        assert_eq!(parse_detail_page(Some("limit=10&cursor=30")).unwrap(), page(10, 30, ResourceShape::Inline));
        assert_eq!(parse_detail_page(Some("resources=shared&limit=10")).unwrap(), page(10, 0, ResourceShape::Shared));
        assert_eq!(
            parse_detail_page(Some("resources=inline")).unwrap(),
            page(DEFAULT_SPANS_PER_PAGE, 0, ResourceShape::Inline)
        );
        for bad in [
            "limit=0",
            "limit=10001",
            "cursor=-1",
            "cursor=x",
            "depth=3",
            "resources=",
            "resources",
            "resources=Shared",
            "resources=none",
            "resources=shared&resources=shared",
            "resources=inline&resources=shared",
        ] {
            let err = parse_detail_page(Some(bad)).unwrap_err();
            assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, "invalid_query"), "{bad}");
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
            "min_duration_ns=5&min_duration_ms=1",
            "max_duration_ms=1.5",
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

    /// 23 spans of one trace (a binary tree) under four resources: two equal facilitator ones (as
    /// two batches bring them: equal values, not one object), a settler, and a facilitator that
    /// differs from the first only in its instance id.
    fn trace_with_resources() -> Vec<StoredSpan> {
        let facilitator = |instance: &str| {
            let mut r = Resource::new("facilitator");
            r.attributes.push(KeyValue::new("service.instance.id", instance.to_owned()));
            r
        };
        let resources = [facilitator("a"), Resource::new("settler"), facilitator("a"), facilitator("b")];
        (1..=23u64)
            .map(|i| StoredSpan {
                resource: resources[usize::try_from(i / 3).unwrap() % resources.len()].clone().into(),
                scope: std::sync::Arc::default(),
                span: SpanData {
                    trace_id: TraceId([7; 16]),
                    span_id: SpanId(i.to_be_bytes()),
                    parent_span_id: (i > 1).then(|| SpanId((i / 2).to_be_bytes())),
                    name: format!("span {i}").into(),
                    start_time_unix_nano: 1_000 + i,
                    end_time_unix_nano: 2_000 + i,
                    attributes: vec![KeyValue::new("i", i64::try_from(i).unwrap())],
                    ..Default::default()
                },
            })
            .collect()
    }

    #[test]
    fn shared_resources_describe_the_same_spans_as_inline_ones_page_by_page() {
        let spans = trace_with_resources();
        let order = json::tree_order(&spans);
        let id = TraceId([7; 16]);
        let render = |offset, limit, resources| -> J {
            let text = detail_json(id, &spans, &order, DetailPage { limit, offset, resources }).unwrap();
            serde_json::from_slice(&text).unwrap()
        };
        for limit in [1, 4, 7, 23, 100] {
            let (mut offset, mut pages, mut rows) = (0, 0, 0);
            loop {
                let inline = render(offset, limit, ResourceShape::Inline);
                assert!(inline.get("resources").is_none(), "the default shape is unchanged");
                let mut shared = render(offset, limit, ResourceShape::Shared);
                let resources = shared.as_object_mut().unwrap().remove("resources").unwrap();
                let resources = resources.as_array().unwrap();
                for (i, r) in resources.iter().enumerate() {
                    assert!(!resources[i + 1..].contains(r), "each distinct resource once: {resources:?}");
                }
                // Resolve the indexes: then the page is the inline one, key for key.
                let mut used = vec![false; resources.len()];
                for span in shared["spans"].as_array_mut().unwrap() {
                    let span = span.as_object_mut().unwrap();
                    assert!(!span.contains_key("resource") && span.contains_key("service_name"));
                    let i = usize::try_from(span.remove("resource_index").unwrap().as_u64().unwrap()).unwrap();
                    used[i] = true;
                    span.insert("resource".into(), resources[i].clone());
                }
                assert!(used.iter().all(|&u| u), "only the page's resources");
                assert_eq!(shared, inline, "limit {limit}, cursor {offset}");
                rows += inline["spans"].as_array().unwrap().len();
                pages += 1;
                match inline["next_cursor"].as_str() {
                    Some(c) => offset = c.parse().unwrap(),
                    None => break,
                }
            }
            assert_eq!((rows, pages), (spans.len(), spans.len().div_ceil(limit)), "limit {limit}");
        }
        // The whole trace: the two equal facilitator resources are one entry.
        let whole = render(0, 100, ResourceShape::Shared);
        let services: Vec<&str> = whole["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["attributes"][0]["value"]["stringValue"].as_str().unwrap())
            .collect();
        assert_eq!(services.len(), 3, "{services:?}");
    }
}
