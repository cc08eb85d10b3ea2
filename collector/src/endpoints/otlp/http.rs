//! `POST /v1/traces`: OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>), so a stock
//! OpenTelemetry SDK can export to tracex. Translation only: authenticate (an ingest key as
//! `Authorization: Bearer`), read the format and encoding from the headers, read the bounded body,
//! call [`super::export`], and answer in the request's content type: an
//! `ExportTraceServiceResponse` (with its partial success), or a `google.rpc.Status` whose message
//! starts with the collector's stable error code; 429/503 carry `Retry-After`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{Partial, Transport, export_response, grpc_code, rpc_status};
use crate::AppState;
use crate::endpoints::error::{ApiError, bounded};
use crate::endpoints::ingest::{read_body, reject};
use crate::services::otlp::{Encoding, Format};
use crate::services::unseal::OpenError;
use crate::store::KeyScope;

/// Accepts one OTLP/HTTP `ExportTraceServiceRequest`.
pub async fn post_traces(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let format = Format::from_content_type(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()));
    // An answer to an unreadable content type goes out as JSON.
    let answer_as = format.as_ref().map_or(Format::Json, |f| *f);
    match receive(&app, &headers, body, format).await {
        Ok(partial) => success(answer_as, partial.as_ref()),
        Err(e) => status_answer(answer_as, e),
    }
}

async fn receive(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    body: Body,
    format: Result<Format, OpenError>,
) -> Result<Option<Partial>, ApiError> {
    let key = crate::endpoints::access::authorize(app, headers, KeyScope::Ingest)
        .await
        .map_err(|e| reject(app, e.closing()))?;
    let refuse = |e: OpenError| reject(app, ApiError::new(e.status(), e.code(), e.message()).closing());
    let format = format.map_err(refuse)?;
    let encoding =
        Encoding::from_header(headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok())).map_err(refuse)?;
    let bytes = read_body(app, headers, body).await?;
    super::export(app, key, bytes, format, encoding, Transport::Http).await
}

fn success(format: Format, partial: Option<&Partial>) -> Response {
    let body = match format {
        Format::Json => {
            let v = match partial {
                // int64 is a decimal string in the protobuf JSON mapping.
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedSpans": p.rejected.to_string(),
                    "errorMessage": bounded(p.message.clone()),
                }}),
                None => serde_json::json!({}),
            };
            v.to_string().into_bytes()
        }
        Format::Protobuf => export_response(partial),
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error as OTLP asks: a `google.rpc.Status` in the request's content type, with the status,
/// `Retry-After` and `Connection` of the collector's error. The message is `<code>: <message>`.
fn status_answer(format: Format, e: ApiError) -> Response {
    let code = grpc_code(&e);
    let message = bounded(format!("{}: {}", e.code, e.message));
    let body = match format {
        Format::Json => serde_json::json!({ "code": code as i32, "message": message }).to_string().into_bytes(),
        // HTTP says when to retry in `Retry-After`; the body's Status carries no RetryInfo.
        Format::Protobuf => rpc_status(code, &message, None),
    };
    e.with_body(format.content_type(), body)
}
