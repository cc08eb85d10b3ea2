//! # tracex-core
//!
//! End-to-end encrypted tracing for services that move money. This crate is the one place where
//! tracex's logic lives; the Node, Python and WASM packages are thin translations of it, and the
//! collector reuses its envelope and OTLP decoder.
//!
//! One span's way:
//!
//! ```text
//! caller ─ start/attrs/end ─▶ buffer ─▶ batcher ─▶ redact ─▶ encode (OTLP protobuf) ─▶ seal ─▶ transport
//!  span.rs              buffer.rs   batch.rs    redact.rs    encode.rs              seal.rs   transport.rs
//!                       (bounded,   (size/age;               (ExportTraceService-   (AES-256-GCM, (retry, backoff,
//!                        lock-free)  worker.rs or the pump)   Request)               RSA-OAEP)     spool.rs)
//! ```
//!
//! ```no_run
//! use tracex_core::Tracer;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tracer = Tracer::builder()
//!     .with_service_name("facilitator")
//!     .with_endpoint("http://127.0.0.1:3002")
//!     .with_api_key("…")
//!     .with_collector_public_key_pem(std::fs::read_to_string("collector.pub.pem")?)
//!     .build()?;
//! tracer.in_span("verify", |span| {
//!     span.set_attribute("x402.phase", "verify").set_attribute("x402.network", "base");
//! });
//! tracer.shutdown(std::time::Duration::from_secs(5))?;
//! # Ok(()) }
//! ```
// The WASM build (scripts/build-wasm.sh, nightly features through RUSTC_BOOTSTRAP) compiles the
// record decoder for speed inside a module built for size: see `records`.
#![cfg_attr(tracex_wasm_speed, feature(optimize_attribute))]

pub mod audit;
pub mod clock;
pub mod config;
pub mod context;
pub mod decode;
pub mod delivery;
pub mod encode;
pub mod error;
pub mod ids;
pub mod model;
pub mod options;
pub mod records;
pub mod redact;
pub mod sampler;
pub mod seal;
pub mod span;
pub mod stats;
pub mod tracer;
pub mod transport;

mod batch;
mod buffer;
#[cfg(feature = "http")]
mod resolver;
mod shared;
#[cfg(feature = "worker")]
mod spool;
#[cfg(feature = "worker")]
mod worker;

pub use context::SpanContext;
pub use error::{Error, ErrorKind, Result};
pub use model::*;
pub use sampler::Sampler;
pub use seal::{CollectorKey, KeyId, SealedBatch};
pub use span::{Parent, Span, SpanBuilder, UnboundSpan};
pub use stats::StatsSnapshot;
pub use tracer::{FlushReport, Tracer, TracerBuilder};
