//! OTLP/gRPC (<https://opentelemetry.io/docs/specs/otlp/#otlpgrpc>):
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export`, served on its own listener
//! (`otlp_grpc_listen`, off by default) over HTTP/2 by the same accept loop as the HTTP API.
//! Translation only: authenticate with the `authorization: Bearer …` metadata before the message
//! is read (as OTLP/HTTP does before its body), let tonic unframe and inflate it (gzip) within the
//! size limits and the body read timeout, call [`super::export`], and answer an `ExportTraceServiceResponse` with its partial
//! success, or a status ([`super::grpc_code`]) whose message starts with the collector's stable
//! error code; pressure and unavailability carry a `google.rpc.RetryInfo`.
//!
//! The message stays bytes here (a pass-through codec): the core's decoder reads it with the
//! decode limits checked while decoding, exactly as for OTLP/HTTP protobuf, so a gRPC export and
//! the same export over HTTP get the same identity (the SHA-256 of the decoded body) and a retry
//! over either transport is stored once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Buf as _, BufMut as _};
use hyper::body::Frame;
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::{Transport, export_response, grpc_code, rpc_status};
use crate::AppState;
use crate::endpoints::error::{ApiError, bounded};
use crate::endpoints::ingest::reject;
use crate::services::otlp::{Encoding, Format};
use crate::store::{ApiKeyRecord, KeyScope};

/// The method's path (package, service, method of the OTLP trace service).
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC listener's routes: `Export`, and `UNIMPLEMENTED` for any other method.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(EXPORT_PATH, post(export))
        .fallback(|| async {
            Status::unimplemented("this listener serves OTLP TraceService/Export only").into_http::<axum::body::Body>()
        })
        .with_state(state)
}

async fn export(State(app): State<Arc<AppState>>, req: Request) -> Response {
    // Before the message is read: an unauthenticated client costs no body.
    let key = match crate::endpoints::access::authorize(&app, req.headers(), KeyScope::Ingest).await {
        Ok(key) => key,
        Err(e) => return status(&reject(&app, e)).into_http::<axum::body::Body>(),
    };
    let c = &app.config;
    // The wire bytes within max_body_bytes (plus the 5-byte gRPC frame header) and within
    // body_read_timeout_ms, as an HTTP body; tonic inflates within max_plaintext_bytes.
    let wire_limit = c.max_body_bytes.saturating_add(5);
    let too_large = status(&ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("messages are limited to {} bytes", c.max_body_bytes),
    ));
    let too_slow = status(&ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the message did not arrive in time",
    ));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(c.body_read_timeout_ms);
    let metrics = app.metrics.clone();
    let req = req.map(move |body| Deadline {
        body: http_body_util::BodyExt::map_err(http_body_util::Limited::new(body, wire_limit), move |e| {
            if e.is::<http_body_util::LengthLimitError>() {
                metrics.reject("payload_too_large");
                too_large.clone()
            } else {
                Status::from_error(e)
            }
        }),
        sleep: Box::pin(tokio::time::sleep_until(deadline)),
        expired: Some(too_slow),
    });
    let mut grpc = tonic::server::Grpc::new(PassThrough)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(c.max_plaintext_bytes);
    grpc.unary(Export { app: app.clone(), key: Some(key) }, req).await.into_response()
}

/// A request body that fails with `expired` once its deadline passes: a client that stops sending
/// mid-message must not hold its stream (and the memory read so far) for ever, as with
/// `body_read_timeout_ms` over HTTP.
struct Deadline<B> {
    body: B,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Option<Status>,
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Error = Status> + Unpin,
{
    type Data = B::Data;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, Status>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(this.expired.take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

/// A gRPC status for an error: its code, `<code>: <message>`, and `RetryInfo` when the error says
/// when to retry.
fn status(e: &ApiError) -> Status {
    let code = grpc_code(e);
    let message = bounded(format!("{}: {}", e.code, e.message));
    // RetryInfo makes RESOURCE_EXHAUSTED retryable (OTLP); a request over a size limit has no
    // Retry-After and stays final.
    let details = rpc_status(code, &message, e.retry_after);
    Status::with_details(code, message, details.into())
}

/// One call of `Export` by an authorized key.
struct Export {
    app: Arc<AppState>,
    key: Option<ApiKeyRecord>,
}

type ExportFuture = Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send>>;

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = ExportFuture;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let (app, key) = (self.app.clone(), self.key.take());
        Box::pin(async move {
            let key = key.ok_or_else(|| Status::internal("Export called twice"))?;
            // tonic has inflated the message already.
            let body = request.into_inner();
            match super::export(&app, key, body, Format::Protobuf, Encoding::Identity, Transport::Grpc).await {
                Ok(partial) => Ok(tonic::Response::new(export_response(partial.as_ref()).into())),
                Err(e) => Err(status(&e)),
            }
        })
    }
}

/// A codec that hands the message over as bytes, and sends bytes encoded by hand.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        Self
    }

    fn decoder(&mut self) -> Self::Decoder {
        Self
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
