//! tracex for Node.js: the native half of the `tracex` npm package.
//!
//! The JS layer (`js/`, shared with the WASM package) records spans as plain objects and hands
//! them over in bulk as span record buffers (`docs/record-buffer.md`); everything else — sampling
//! rules, redaction, batching, sealing, transport — is `tracex-core`'s. This crate only translates
//! options, errors and reports, and keeps waiting off the event loop (`AsyncTask`s run on the libuv
//! pool).
#![allow(missing_docs)]
// napi-derive generates undocumented items; the `.d.ts` carries the docs.
// Under cfg(test) napi-derive registers nothing, so the exports look unused to the compiler.
#![cfg_attr(test, allow(dead_code))]

mod audit;
#[cfg(unix)]
mod bench;
mod error;
mod options;
mod tracer;
// Test-only entry points: only the test scripts build with `--features testing`.
#[cfg(feature = "testing")]
mod vectors;

pub use tracer::NativeTracer;
