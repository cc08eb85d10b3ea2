//! The live tail: spans fanned out to `GET /api/v1/live` viewers after their commit.
//!
//! ```text
//! writer ── commit ──▶ LiveHub::publish ─ try_send (never waits) ─▶ tracex-live thread
//!                                                                     │ filter per viewer, render
//!                                                                     ▼ once per span
//!                                        viewer queue (bounded in bytes) ─▶ SSE stream
//! ```
//!
//! Viewers never slow ingest: the writer only hands the committed group (shared, not copied) to
//! the fan-out thread, and when that thread is behind the group is skipped and counted. A viewer
//! that does not read fills its own queue up to `live_buffer_bytes`; past it, spans are skipped
//! for that viewer only and reported to it as one `lagged` event with their count.
//!
//! Collectors sharing a PostgreSQL database also show what the others commit: [`fleet`] follows
//! the audit log and hands the other collectors' batches to the same fan-out.

pub mod fleet;
mod hub;
mod viewer;

pub use hub::{LiveHub, LiveLimits, Refused};

/// How much of each span a viewer receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// What a tail shows — ids, name, kind, service, times, status (≈ 300 bytes a span, a quarter
    /// of the whole span: viewers cost the collector in proportion to what they are sent).
    #[default]
    Summary,
    /// The whole span, as in a trace's detail (attributes, events, links, resource, scope).
    Full,
}
pub use viewer::{Message, Subscription};
