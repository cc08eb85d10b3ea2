//! `GET /api/v1/live?service=&name=&status=&min_duration_ms=&attr.<key>=<value>…&detail=`:
//! Server-Sent Events of the read key's project's spans as they are committed, filtered like a
//! trace search; `detail=summary` (the default: ids, name, kind, service, times, status) or
//! `detail=full` (each span as in a trace's detail, about four times the bytes).
//!
//! ```text
//! event: spans    data: {"spans":[<span summary or span>, …]}   (≤ 256 per event)
//! event: lagged   data: {"missed":N}    spans skipped because this viewer fell behind
//! : keep-alive                          every 15 s, so proxies keep the connection open
//! ```
//!
//! `missed` counts the spans that matched the filter while the viewer's own queue was full, and
//! every span of the project committed while the whole fan-out was behind (those were never looked
//! at). A key may hold `live_max_streams_per_key` streams (429 `too_many_streams` past it).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query::{parse_query, query_pairs};
use crate::AppState;
use crate::live::{Detail, Message, Refused, Subscription};
use crate::store::KeyScope;

/// Comment lines sent while nothing happens: idle connections through proxies and load balancers
/// are commonly cut after 30–60 s.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Parameters of a trace search that make no sense for spans that have not happened yet.
const NOT_LIVE: [&str; 5] = ["from", "to", "limit", "cursor", "sort"];

/// Opens a live stream.
pub async fn live(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let key = super::access::authorize(&app, &headers, KeyScope::Read).await?;
    let mut detail = None;
    for pair in query_pairs(raw.as_deref()) {
        let (k, v) = pair?;
        if NOT_LIVE.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("{k} does not apply to the live tail (it shows spans as they are committed)"),
            ));
        }
        if k == "detail" {
            if detail.is_some() {
                return Err(ApiError::bad_request("invalid_query", "detail given twice"));
            }
            detail = Some(match v.as_str() {
                "summary" => Detail::Summary,
                "full" => Detail::Full,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("detail must be summary or full, got {v:?}"),
                    ));
                }
            });
        }
    }
    // The rest is a trace search's filter.
    let filters: Option<String> = raw
        .as_deref()
        .map(|r| r.split('&').filter(|p| p.split('=').next() != Some("detail")).collect::<Vec<_>>().join("&"));
    let filter = parse_query(filters.as_deref(), key.project.clone())?;
    let sub = app.live.subscribe(&key.id, key.project, filter, detail.unwrap_or_default()).map_err(|r| match r {
        Refused::TooManyForKey => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("this API key holds {} live streams already; close one first", app.config.live_max_streams_per_key),
        ),
        Refused::TooMany => ApiError::unavailable("too_many_streams", "the collector serves its most live streams", 5),
        Refused::Closed => ApiError::unavailable("shutting_down", "the collector is shutting down", 1),
    })?;
    let mut response =
        Sse::new(Events(sub)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response();
    // Reverse proxies (nginx) buffer responses unless told not to, which would hold events back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// A subscription as SSE events.
struct Events(Subscription);

impl futures_core::Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next(cx).map(|m| {
            m.map(|m| {
                Ok(match m {
                    Message::Spans { json, .. } => Event::default().event("spans").data(json),
                    Message::Lagged(n) => Event::default().event("lagged").data(format!("{{\"missed\":{n}}}")),
                })
            })
        })
    }
}
