//! The query API, scoped to the read key's project:
//! `GET /api/v1/traces?service=&name=&status=&min_duration_ns=&max_duration_ns=&from=&to=&attr.<key>=<value>&limit=&cursor=`
//! and `GET /api/v1/traces/{trace_id}` (every span, as a tree).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracex_core::TraceId;

use super::error::ApiError;
use super::json;
use crate::AppState;
use crate::store::{AttributeFilter, KeyScope, StoreError, TraceQuery};

async fn project_of(app: &Arc<AppState>, headers: &HeaderMap) -> Result<String, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let a = app.clone();
    let key = tokio::task::spawn_blocking(move || a.auth.check(authorization.as_deref(), KeyScope::Read))
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .map_err(ApiError::from_auth)?;
    Ok(key.project)
}

fn store_error(e: StoreError) -> ApiError {
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

fn parse_query(raw: Option<&str>, project: String) -> Result<TraceQuery, ApiError> {
    let mut q = TraceQuery { project, limit: 50, ..TraceQuery::default() };
    let mut seen: HashMap<String, ()> = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode_component(k)?, decode_component(v)?);
        let num = |name: &str, v: &str| -> Result<u64, ApiError> {
            v.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{name} must be a non-negative integer, got {v:?}"))
            })
        };
        if let Some(attr) = k.strip_prefix("attr.") {
            if attr.is_empty() {
                return Err(ApiError::bad_request("invalid_query", "attr. needs a key, e.g. attr.x402.network=base"));
            }
            q.attributes.push(AttributeFilter { key: attr.to_owned(), value: v });
            continue;
        }
        if seen.insert(k.clone(), ()).is_some() {
            return Err(ApiError::bad_request("invalid_query", format!("{k} given twice")));
        }
        match k.as_str() {
            "service" => q.service = Some(v),
            "name" => q.span_name = Some(v),
            "status" => {
                q.status = Some(match v.as_str() {
                    "ok" => tracex_core::StatusCode::Ok,
                    "error" => tracex_core::StatusCode::Error,
                    "unset" => tracex_core::StatusCode::Unset,
                    other => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("status must be ok, error or unset, got {other:?}"),
                        ));
                    }
                });
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

/// One trace as a tree of spans.
pub async fn get(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Response, ApiError> {
    let project = project_of(&app, &headers).await?;
    let id = TraceId::from_hex(&trace_id)
        .ok()
        .filter(TraceId::is_valid)
        .ok_or_else(|| ApiError::bad_request("invalid_query", "trace id must be 32 hex digits"))?;
    let store = app.store.clone();
    let spans = tokio::task::spawn_blocking(move || store.get_trace(&project, id))
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .map_err(store_error)?;
    if spans.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no trace {trace_id} in this project")));
    }
    Ok(axum::Json(serde_json::json!({
        "trace_id": id.to_hex(),
        "span_count": spans.len(),
        "spans": json::tree(&spans),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
