//! The collector's work between an endpoint and the store: opening batches and committing them.

pub mod unseal;
pub mod validate;
pub mod writer;
