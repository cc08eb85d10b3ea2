//! The collector's work between an endpoint and the store: opening batches (sealed, or clear-text
//! OTLP) and committing them, and deleting them once they are older than their project's retention.

pub mod checkpointer;
pub mod otlp;
pub mod otlp_json;
pub mod retention;
pub mod unseal;
pub mod validate;
pub mod writer;
