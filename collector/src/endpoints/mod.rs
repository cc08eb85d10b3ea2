//! Thin HTTP handlers: check size and auth, hand work to a service, answer. Errors are JSON
//! (`{"error": {"code": "...", "message": "..."}}`) with stable codes.

pub mod access;
pub mod audit;
pub mod cors;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod ingest;
pub mod json;
pub mod keys;
pub mod live;
pub mod openapi;
pub mod otlp;
pub mod query;
pub mod stats;
