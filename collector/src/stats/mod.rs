//! Statistics that scale: per-minute latency sketches written with the spans, merged at query time.
//!
//! # What is stored
//!
//! Every commit adds, in the same transaction as its spans (see the commit plan,
//! `store::plan::commit`), each inserted span to one `span_stats` row per key
//! `(project, dimension, minute of the span's start, service, span name, status, dimension value)`:
//! the *base* row (dimension `''`, value `''`) and one row for each [`DIMENSION_KEYS`] attribute the
//! span carries (value rendered as text, as the trace filters render it). A row holds the exact
//! span count, the exact largest duration, the latest start, and a [`LatencySketch`] of the
//! durations with exact counts at the SLA thresholds ([`ladder`]). Each minute row is rolled up into an hourly row too (same key, the hour's first
//! minute, resolution 60), so steps of whole hours read 60 times fewer rows. Rows already stored
//! are merged into (read, merge, write back, inside the
//! transaction), so statistics never disagree with the stored spans and a retry that stores
//! nothing adds nothing.
//!
//! # What a query can ask
//!
//! A query ([`query::StatsQuery`]) takes the trace search's span filters: service, name, status,
//! duration bounds and any number of `attr.` equalities, and may group by one attribute. When
//! the rows can answer it, it merges the rows of its range ([`StatFilter`]) into groups and
//! buckets ([`query::answer`]): that is when it has no duration bound and involves one
//! [`DIMENSION_KEYS`] attribute at most (`group_by=k` alone, `attr.k=v` alone, or both on the
//! same key), the common case, whose cost does not depend on the range's traffic. Any other
//! query is answered by a bounded scan of the matching spans ([`scan`]): at most
//! [`scan::MAX_SCAN_SPANS`] of them, folded into the same rows and merged by the same
//! [`query::answer`], so its accuracy and its answer's form are the sketches'. A query matching
//! more spans is refused (400 `scan_too_large`), to be narrowed by range or by a dimension filter.
//! Every answer says which path served it. The two count the same spans but for two edges: a
//! scan reaches spans through their traces and leaves out those of traces that started more than
//! [`scan::SCAN_TRACE_LOOKBACK_NS`] before the range, and it counts spans stored before the
//! statistics rows existed (schema migration 4), which no row holds.

pub mod ladder;
pub mod query;
pub mod scan;
pub mod sketch;
pub mod suggest;

pub use sketch::{LatencySketch, RELATIVE_ACCURACY, Share, SketchError};

/// The span attributes statistics can be filtered and grouped by. Each costs one more sketch row
/// per (minute, service, name, status, value) a commit touches, so only low-cardinality keys
/// belong here.
pub const DIMENSION_KEYS: &[&str] = &["x402.network", "x402.scheme", "x402.error"];

/// Longest dimension value kept (bytes): a longer value (a free-text error, say) is left out of the
/// dimension rows (the span still counts in its base row) so one odd span cannot bloat the table.
pub const MAX_DIMENSION_VALUE_LEN: usize = 128;

/// One minute in ns: the resolution of the stored rows.
pub const MINUTE_NS: u64 = 60_000_000_000;

/// A statistics row's time key: the minute (since the epoch) of a span start.
pub fn minute_of(start_ns: u64) -> i64 {
    i64::try_from(start_ns / MINUTE_NS).unwrap_or(i64::MAX)
}

/// Which stored statistics rows a read wants: one dimension (`""` for the base rows), a range of
/// minutes and the key filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatFilter {
    /// The project.
    pub project: String,
    /// Dimension attribute key, `""` for the base rows.
    pub dim_key: String,
    /// Minutes per row: 1 (the minute rows) or 60 (their hourly rollups); `from_minute` and
    /// `to_minute` must then be whole hours.
    pub resolution: i64,
    /// First minute (inclusive).
    pub from_minute: i64,
    /// Last minute (exclusive).
    pub to_minute: i64,
    /// Only this service (`""` is the spans without `service.name`).
    pub service: Option<String>,
    /// Only this span name.
    pub name: Option<String>,
    /// Only this status (OTLP code: 0 unset, 1 ok, 2 error).
    pub status: Option<i32>,
    /// Only this dimension value.
    pub dim_value: Option<String>,
    /// Whether to read the sketches (a services listing does not need them).
    pub with_sketches: bool,
}

impl Default for StatFilter {
    /// The base minute rows of no project over no minutes (set the fields).
    fn default() -> Self {
        Self {
            project: String::new(),
            dim_key: String::new(),
            resolution: 1,
            from_minute: 0,
            to_minute: 0,
            service: None,
            name: None,
            status: None,
            dim_value: None,
            with_sketches: false,
        }
    }
}

/// One stored statistics row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatRecord {
    /// Minute since the epoch of the spans' start.
    pub minute: i64,
    /// `service.name` (`""` when none).
    pub service: String,
    /// Span name.
    pub name: String,
    /// OTLP status code.
    pub status: i32,
    /// Dimension value (`""` in base rows).
    pub dim_value: String,
    /// Spans counted (exact).
    pub count: u64,
    /// Largest duration (ns, exact).
    pub max_ns: u64,
    /// Latest span start (unix ns).
    pub last_start_ns: u64,
    /// The encoded [`LatencySketch`], when asked for.
    pub sketch: Option<Vec<u8>>,
}
