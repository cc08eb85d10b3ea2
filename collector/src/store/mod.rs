//! Storage: one [`Store`] trait, implemented by the embedded SQLite store (default) and, when one
//! machine is not enough, PostgreSQL. Both run through the same conformance suite
//! (`conformance`, in tests).
//!
//! Methods are synchronous and called from blocking threads (`spawn_blocking` or the writer's own
//! thread); implementations are internally synchronised.

pub(crate) mod common;
pub use common::{MAX_SPANS_PER_TRACE, PreparedSpans};
mod plan;
mod pool;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod conformance_audit;
#[cfg(test)]
pub(crate) mod conformance_duration;
#[cfg(test)]
pub(crate) mod conformance_stats;

use std::sync::Arc;

use crate::audit::gaps::BatchSeq;
use crate::audit::tree::{NodeId, Nodes};
use crate::audit::{LeafRecord, RowKey, RowLookup, StoredCheckpoint};
use crate::stats::scan::{ScannedSpan, SpanScan};
use crate::stats::{StatFilter, StatRecord};
use tracex_core::{InstrumentationScope, Resource, SpanData, StatusCode, TraceId, TraceRequest};

/// A storage failure. The message is for logs; HTTP answers hide it behind a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed (I/O, disk full, corruption, connection lost).
    #[error("database: {0}")]
    Database(String),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The query is invalid (bad cursor, bad filter).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
}

/// `Result` with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// A decrypted, validated batch ready to be stored.
#[derive(Clone, Debug)]
pub struct NewBatch {
    /// Project of the ingest key that sent it.
    pub project: String,
    /// Batch id from the envelope: the idempotency key within the project.
    pub batch_id: [u8; 16],
    /// Collector key it was sealed to.
    pub key_id: [u8; 32],
    /// SDK instance and its batch sequence number.
    pub instance_id: [u8; 8],
    /// Sequence number within the SDK instance.
    pub sequence: u64,
    /// SDK that sealed it.
    pub sdk_name: String,
    /// SDK version.
    pub sdk_version: String,
    /// When the SDK sealed it (unix ns).
    pub created_at_unix_nano: u64,
    /// When the collector received it (unix ns).
    pub received_at_unix_nano: u64,
    /// SHA-256 of the sealed envelope as received: tells a retry (same bytes) from a different
    /// batch that reuses the id.
    pub envelope_sha256: [u8; 32],
    /// Sealed by an SDK, or OTLP in clear text (for the audit log).
    pub origin: crate::audit::leaf::Origin,
    /// The spans' bodies and digests, if computed before the writer ([`PreparedSpans::of`]);
    /// otherwise the commit computes them.
    pub prepared: Option<PreparedSpans>,
    /// The spans.
    pub request: TraceRequest,
}

impl NewBatch {
    /// `service.name` of the batch's first resource: names the SDK instance in gap reports and in
    /// the gap gauge.
    pub fn service(&self) -> Option<&str> {
        self.request.resource_spans.first().and_then(|rs| rs.resource.service_name())
    }
}

/// What became of one batch in a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored with this many spans.
    Stored {
        /// Spans written.
        spans: usize,
        /// Spans not written because their trace holds the most spans a trace may
        /// (`max_spans_per_trace`).
        over_cap: usize,
        /// The batch's leaf in the audit log (`None` with the log off).
        leaf_index: Option<u64>,
    },
    /// The project already holds this batch id with the same envelope (a retry); nothing was
    /// written.
    Duplicate,
    /// The project already holds this batch id with a different envelope; nothing was written.
    /// (Batches stored before envelope hashes were recorded count as the same envelope.)
    Conflict,
}

/// One stored span with its resource and scope, exactly as ingested. The spans of one read that
/// share a stored resource share one decoded copy of it (a 10,000-span trace had cloned its one
/// resource 10,000 times).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSpan {
    /// The resource the span came with.
    pub resource: Arc<Resource>,
    /// The instrumentation scope.
    pub scope: Arc<InstrumentationScope>,
    /// The span, every field and attribute as received.
    pub span: SpanData,
}

/// Attribute equality filter: matches when the span has `key` and its value, rendered as text
/// (strings as-is, ints and doubles in decimal, bools as `true`/`false`), equals `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeFilter {
    /// Attribute key, e.g. `x402.network`.
    pub key: String,
    /// Expected value as text.
    pub value: String,
}

/// Filters for listing traces. A trace matches when at least one of its spans matches every given
/// span-level filter (service, name, status, duration, attributes); the time range applies to
/// the trace's start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceQuery {
    /// Only this project (read keys are scoped to theirs).
    pub project: String,
    /// `service.name` of the matching span's resource.
    pub service: Option<String>,
    /// Name of the matching span.
    pub span_name: Option<String>,
    /// Status code of the matching span.
    pub status: Option<StatusCode>,
    /// Lower bound of the matching span's duration (ns, inclusive).
    pub min_duration_ns: Option<u64>,
    /// Upper bound of the matching span's duration (ns, inclusive).
    pub max_duration_ns: Option<u64>,
    /// Earliest trace start (unix ns, inclusive).
    pub start_from_ns: Option<u64>,
    /// Latest trace start (unix ns, exclusive).
    pub start_to_ns: Option<u64>,
    /// Attribute equalities the matching span must all satisfy.
    pub attributes: Vec<AttributeFilter>,
    /// Page size (1..=1000).
    pub limit: usize,
    /// Opaque cursor from a previous page (of the same order).
    pub cursor: Option<String>,
    /// Which traces come first.
    pub order: TraceOrder,
}

/// The order of a listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceOrder {
    /// Newest trace start first.
    #[default]
    Newest,
    /// Longest trace (last end − first start) first.
    Longest,
}

impl TraceQuery {
    /// True when it has no span-level filter: every span of the project matches.
    pub fn is_unfiltered(&self) -> bool {
        self.service.is_none()
            && self.span_name.is_none()
            && self.status.is_none()
            && self.min_duration_ns.is_none()
            && self.max_duration_ns.is_none()
            && self.attributes.is_empty()
    }

    /// True when one span satisfies every span-level filter (service, name, status, duration,
    /// attributes): the rule the stores apply in SQL, for spans that do not come from a store (the
    /// live tail). `text` is scratch space for rendering attribute values.
    pub fn matches_span(&self, resource: &Resource, span: &SpanData, text: &mut String) -> bool {
        let duration = span.duration_nanos();
        self.service.as_deref().is_none_or(|s| resource.service_name() == Some(s))
            && self.span_name.as_deref().is_none_or(|n| span.name == n)
            && self.status.is_none_or(|s| span.status.code == s)
            && self.min_duration_ns.is_none_or(|min| duration >= min)
            && self.max_duration_ns.is_none_or(|max| duration <= max)
            && common::span_matches_attrs(span, &self.attributes, text)
    }
}

/// One trace in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Name of the root span (the span without a parent), if stored.
    pub root_name: Option<String>,
    /// `service.name` of the root span, if stored.
    pub root_service: Option<String>,
    /// Earliest span start (unix ns).
    pub start_unix_nano: u64,
    /// Latest span end (unix ns).
    pub end_unix_nano: u64,
    /// Spans stored for the trace.
    pub span_count: u64,
    /// Spans with status `Error`.
    pub error_count: u64,
}

/// A page of traces, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracePage {
    /// The traces.
    pub traces: Vec<TraceSummary>,
    /// Cursor for the next page, `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What one retention chunk ([`Store::expire`]) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Traces deleted.
    pub traces: u64,
    /// Spans deleted.
    pub spans: u64,
    /// Statistics rows deleted.
    pub stat_rows: u64,
    /// Whether nothing older is left (fewer traces than asked and no statistics rows went).
    pub done: bool,
}

/// Which time partitions should exist ([`Store::maintain_partitions`]), in unix days (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionPlan {
    /// The first day that has a partition of its own (older traces go to the default one).
    pub first_day: i64,
    /// Today: its partition and those ahead are created first.
    pub today: i64,
    /// The last day created ahead.
    pub last_day: i64,
    /// Partitions of days before this one are dropped whole, with their traces: every project's
    /// retention cutoff is past their end. `None` while some project keeps everything.
    pub drop_before_day: Option<i64>,
}

/// What one [`Store::maintain_partitions`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionReport {
    /// Day partitions created.
    pub created: u64,
    /// Day partitions dropped.
    pub dropped: u64,
    /// Traces that went with them.
    pub traces: u64,
    /// Spans that went with them.
    pub spans: u64,
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyScope {
    /// Send batches.
    Ingest,
    /// Query the project's traces.
    Read,
}

impl KeyScope {
    /// `ingest` or `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
        }
    }
}

/// A stored API key: the secret itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public key id (part of the key string), the lookup handle.
    pub id: String,
    /// Project the key belongs to.
    pub project: String,
    /// What the key may do.
    pub scope: KeyScope,
    /// SHA-256 of the secret part.
    pub secret_sha256: [u8; 32],
    /// Creation time (unix ns).
    pub created_at_unix_nano: u64,
    /// When it was revoked (unix ns); a revoked key authenticates nothing.
    pub revoked_at_unix_nano: Option<u64>,
}

/// A trace store.
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema (idempotent; runs at start).
    fn migrate(&self) -> StoreResult<()>;

    /// Stores batches in ONE transaction and returns once it is durable. A batch whose
    /// `(project, batch_id)` is already stored is skipped as [`CommitOutcome::Duplicate`] (same
    /// envelope hash) or [`CommitOutcome::Conflict`] (another envelope); spans
    /// are identified by `(project, trace_id, span_id)` and a repeated span replaces nothing.
    /// On error nothing of any batch is stored.
    fn commit(&self, batches: &[NewBatch]) -> StoreResult<Vec<CommitOutcome>>;

    /// Lists traces matching `q`, newest start first, with cursor pagination.
    fn list_traces(&self, q: &TraceQuery) -> StoreResult<TracePage>;

    /// Every stored span of one trace (empty if unknown), ordered by start time.
    fn get_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<StoredSpan>>;

    /// Spans stored for a project.
    fn span_count(&self, project: &str) -> StoreResult<u64>;

    /// Batches stored for a project.
    fn batch_count(&self, project: &str) -> StoreResult<u64>;

    /// Stores a new API key.
    fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()>;

    /// Looks an API key up by its public id (revoked keys included).
    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;

    /// Every API key, revoked ones included, oldest first.
    fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;

    /// Revokes a key at `now`: true if it existed and was not revoked yet.
    fn revoke_api_key(&self, id: &str, now_unix_nano: u64) -> StoreResult<bool>;

    /// The statistics rows `filter` selects (see [`crate::stats`]), in no particular order; merging
    /// them is shared ([`crate::stats::query::answer`]).
    fn stat_rows(&self, filter: &StatFilter) -> StoreResult<Vec<StatRecord>>;

    /// Hands `each` the spans `scan` selects (see [`crate::stats::scan`]) as they are read, in no
    /// particular order, at most `cap + 1` of them, and returns how many: more than `cap` tells
    /// the caller the scan is too large.
    fn scan_spans(&self, scan: &SpanScan, cap: usize, each: &mut dyn FnMut(ScannedSpan)) -> StoreResult<usize>;

    /// Up to `max_spans` spans of the project's newest traces (by trace start), only those of
    /// `service` when given: the bounded sample attribute suggestions are counted over.
    fn recent_spans(&self, project: &str, service: Option<&str>, max_spans: usize) -> StoreResult<Vec<SpanData>>;

    /// Every project's name.
    fn project_names(&self) -> StoreResult<Vec<String>>;

    /// Per-project retention in days set with `tracex-collector retention set` (0 keeps
    /// everything), by project name; over the config's (`services::retention`).
    fn retention_overrides(&self) -> StoreResult<Vec<(String, u32)>>;

    /// Sets `project`'s retention to `days` (`Some`), or removes its setting (`None`: the config's
    /// applies again). Returns whether a setting was there before.
    fn set_retention_override(&self, project: &str, days: Option<u32>) -> StoreResult<bool>;

    /// Retention, one bounded chunk in one transaction: deletes up to `max_traces` of the
    /// project's traces that started before `before_ns` (oldest first), with their spans and
    /// attribute index rows, and the project's statistics rows of up to `max_minutes` minutes
    /// before the minute of `before_ns`. Call again until [`Expired::done`].
    fn expire(&self, project: &str, before_ns: u64, max_traces: usize, max_minutes: i64) -> StoreResult<Expired>;

    /// Time partitioning, where the store has it (PostgreSQL): creates the day partitions of
    /// `plan` that are missing and drops those before [`PartitionPlan::drop_before_day`] whole,
    /// with their traces, so retention deletes row by row ([`Store::expire`]) only what no whole
    /// partition holds. The embedded store has one table per kind: nothing to do.
    fn maintain_partitions(&self, plan: &PartitionPlan) -> StoreResult<PartitionReport> {
        let _ = plan;
        Ok(PartitionReport::default())
    }

    /// Checks that the store answers (for `/readyz`).
    fn ping(&self) -> StoreResult<()>;

    /// Leaves in the audit log (see [`crate::audit`]).
    fn audit_size(&self) -> StoreResult<u64>;

    /// The stored audit nodes named (level 0: leaf hashes); absent ones are left out.
    fn audit_nodes(&self, ids: &[NodeId]) -> StoreResult<Nodes>;

    /// Up to `limit` leaves from index `from` on, in order.
    fn audit_leaves(&self, from: u64, limit: usize) -> StoreResult<Vec<LeafRecord>>;

    /// The leaf of a stored batch (`None` for a batch stored before the log existed, or unknown).
    fn audit_leaf_of_batch(&self, project: &str, batch_id: &[u8; 16]) -> StoreResult<Option<u64>>;

    /// The leaves of the batches that stored spans of a trace, ascending.
    fn audit_leaves_of_trace(&self, project: &str, trace_id: TraceId) -> StoreResult<Vec<u64>>;

    /// Up to `limit` of the project's sealed batches in `(instance, sequence)` order, from the
    /// first instance after `after_instance` (`None`: from the start): what sequence gaps are
    /// computed from ([`crate::audit::gaps`]).
    fn batch_sequences(
        &self,
        project: &str,
        after_instance: Option<[u8; 8]>,
        limit: usize,
    ) -> StoreResult<Vec<BatchSeq>>;

    /// For `audit verify`: the rows of the project's spans `(trace id, span id)`, one answer each.
    fn audit_rows(&self, project: &str, keys: &[([u8; 16], [u8; 8])]) -> StoreResult<Vec<RowLookup>>;

    /// For `audit verify`: a resource row's stored hash and body.
    fn audit_resource(&self, id: i64) -> StoreResult<Option<([u8; 32], Vec<u8>)>>;

    /// For `audit verify`: span rows in all, and those that name a leaf.
    fn audit_span_totals(&self) -> StoreResult<(u64, u64)>;

    /// For `audit verify`: up to `limit` span rows after `after` (`(trace_seq, span_id)`), in that
    /// order.
    fn audit_scan_rows(&self, after: Option<(i64, [u8; 8])>, limit: usize) -> StoreResult<Vec<RowKey>>;

    /// Stores a signed checkpoint; one of the same size already stored is kept.
    fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> StoreResult<()>;

    /// The largest checkpoint signed.
    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>>;

    /// Up to `limit` checkpoints of size ≥ `from_size`, by size.
    fn checkpoints(&self, from_size: u64, limit: usize) -> StoreResult<Vec<StoredCheckpoint>>;

    /// The OTLP export cursor `name` (see [`crate::export`]): the next audit-log leaf to export,
    /// if `holder` may export now — it holds the cursor's lease, or the lease ran out before
    /// `now_ns`. Renews the lease until `now_ns + lease_ns`. A cursor seen for the first time
    /// starts at leaf `start`. `None`: another holder leases it.
    fn claim_export_cursor(
        &self,
        name: &str,
        holder: &str,
        now_ns: u64,
        lease_ns: u64,
        start: u64,
    ) -> StoreResult<Option<u64>>;

    /// Moves cursor `name` from leaf `from` to `to` if `holder` still holds it at `from`; false
    /// when another holder took it meanwhile (what was sent since may be sent again: at least
    /// once).
    fn advance_export_cursor(&self, name: &str, holder: &str, from: u64, to: u64) -> StoreResult<bool>;

    /// Makes later commits fail before step `step` of the commit plan (`None`: never), so the
    /// conformance suite can check that a failed commit stores nothing.
    #[cfg(test)]
    fn fail_commits_at_step(&self, step: Option<usize>);
}
