//! Span record buffers (`docs/record-buffer.md`) from the JS layer into the core.

use tracex_core::{Result, Tracer};

/// Records every span of `buf` (and counts the spans the JS layer sampled out); returns how many
/// were accepted. A malformed buffer is rejected whole with `TRACEX_INVALID_RECORDS`.
pub(crate) fn ingest(tracer: &Tracer, buf: &[u8]) -> Result<u32> {
    tracer.ingest_records(buf).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}
