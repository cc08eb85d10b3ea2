//! The collector's work between an endpoint and the store: opening batches and committing them, and
//! deleting them once they are older than their project's retention.

pub mod retention;
pub mod unseal;
pub mod validate;
pub mod writer;
