//! The HTTP accept loop. `axum::serve` has no header read timeout, no connection cap and no
//! shutdown deadline: stalled half-sent requests stayed open for ever, held SIGTERM for ever, and a
//! few hundred of them used up the process's descriptors and starved real requests. This loop
//! serves the same router through hyper with all three; the OTLP/gRPC listener goes through it too,
//! over HTTP/2 (the connection cap and the shutdown grace apply alike; HTTP/2 has no header read
//! timeout of its own).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The server's own limits (see [`crate::config::Config`] for their defaults).
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// A request's headers must arrive within this long, or the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// After shutdown begins, how long in-flight requests may take before their connections are
    /// closed.
    pub shutdown_grace: Duration,
}

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1: the HTTP API.
    Http1,
    /// HTTP/2 (prior knowledge, no TLS): gRPC.
    Http2,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish for up to `shutdown_grace`, and closes what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    protocol: Protocol,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (io, service) = (TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        match protocol {
            Protocol::Http1 => {
                let conn = graceful.watch(http.serve_connection(io, service));
                connections.spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Protocol::Http2 => {
                let conn = graceful.watch(h2.serve_connection(io, service));
                connections.spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(open = connections.len(), "closing connections still open after the shutdown grace period");
        }
    }
    // Dropping the tasks drops their connections and the state they hold, so the writer can finish.
    connections.shutdown().await;
}
