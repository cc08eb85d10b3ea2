//! The listing planner both stores follow: what a [`TraceQuery`] asks of the tables (cursor, page
//! size, span-level column filters, the attribute index hashes, which filter drives, whether
//! candidates need decoding and within which budget), how a page is collected and where the next
//! one starts, and how a trace's span rows become [`StoredSpan`]s. A store only writes and runs
//! the SQL (see the module docs of `store::sqlite` for the design).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use tracex_core::{InstrumentationScope, Resource, SpanData, StatusCode, TraceId};

use crate::store::common::{
    MAX_LIMIT, SERVICE_KEY, Tuning, attr_hash, decode_cursor, decode_span_body, encode_cursor, is_indexed_key, ns,
    span_matches_attrs, unns,
};
use crate::store::{
    AttributeFilter, StoreError, StoreResult, StoredSpan, TraceOrder, TracePage, TraceQuery, TraceSummary,
};

/// The `traces` columns a listing selects, in the order [`summary`] takes them.
pub(crate) const SUMMARY_COLUMNS: &str =
    "t.id, t.trace_id, t.start_ns, t.end_ns, t.has_root, t.root_name, t.root_service, t.span_count, t.error_count";

/// The value of a span-level column filter.
#[derive(Clone, Debug)]
pub(crate) enum FilterValue {
    /// A `TEXT` column.
    Text(String),
    /// A `BIGINT` column.
    Int(i64),
    /// An `INTEGER` (32-bit in PostgreSQL) column.
    Int4(i32),
}

/// A span-level column filter: `s.<clause> <placeholder>`.
#[derive(Clone, Debug)]
pub(crate) struct SpanFilter {
    /// Column and operator, e.g. `duration_ns >=`.
    pub(crate) clause: &'static str,
    pub(crate) value: FilterValue,
}

/// What one listing asks of the tables.
#[derive(Debug)]
pub(crate) struct ListPlan<'q> {
    /// Which traces come first.
    pub(crate) order: TraceOrder,
    /// `(sort key, trace sequence number)` of the last trace of the previous page.
    pub(crate) cursor: Option<(i64, i64)>,
    /// Page size.
    pub(crate) limit: usize,
    /// Span-level column filters (service, name, status, duration), checked on `spans` rows.
    pub(crate) span_filters: Vec<SpanFilter>,
    /// Hashes of the indexed filters (the service, then the indexed attributes), any of which
    /// could drive the listing.
    pub(crate) indexed: Vec<i64>,
    /// Hashes of the indexed attribute filters, each probed in `trace_attrs`.
    pub(crate) attr_hashes: Vec<i64>,
    /// Only traces with errors (status filter `Error`): `traces.error_count > 0`.
    pub(crate) errors_only: bool,
    /// The minimum span duration asked for, also a trace-level bound: a trace whose longest span
    /// (`traces.max_duration_ns`) is shorter has no span that can match.
    pub(crate) min_duration: Option<i64>,
    /// Earliest trace start (inclusive).
    pub(crate) start_from: Option<i64>,
    /// Latest trace start (exclusive).
    pub(crate) start_to: Option<i64>,
    /// The attribute filters, checked exactly by decoding candidate spans.
    pub(crate) attributes: &'q [AttributeFilter],
    /// Most candidates one page examines when candidates are decoded.
    pub(crate) budget: usize,
    driver_threshold: usize,
}

impl<'q> ListPlan<'q> {
    /// The plan of `q` (an invalid cursor is an error before anything is read).
    pub(crate) fn new(q: &'q TraceQuery, tuning: Tuning) -> StoreResult<Self> {
        let cursor = q.cursor.as_deref().map(|c| decode_cursor(c, q.order)).transpose()?;
        let mut span_filters = Vec::new();
        let mut add = |clause, value| span_filters.push(SpanFilter { clause, value });
        if let Some(service) = &q.service {
            add("service =", FilterValue::Text(service.clone()));
        }
        if let Some(name) = &q.span_name {
            add("name =", FilterValue::Text(name.clone()));
        }
        if let Some(status) = q.status {
            add("status =", FilterValue::Int4(status as i32));
        }
        if let Some(min) = q.min_duration_ns {
            add("duration_ns >=", FilterValue::Int(ns(min)));
        }
        if let Some(max) = q.max_duration_ns {
            add("duration_ns <=", FilterValue::Int(ns(max)));
        }
        let attr_hashes: Vec<i64> = q
            .attributes
            .iter()
            .filter(|f| is_indexed_key(&f.key))
            .map(|f| attr_hash(f.key.as_bytes(), &f.value))
            .collect();
        let mut indexed: Vec<i64> = q.service.iter().map(|s| attr_hash(SERVICE_KEY, s)).collect();
        indexed.extend(&attr_hashes);
        Ok(Self {
            order: q.order,
            cursor,
            limit: q.limit.clamp(1, MAX_LIMIT),
            span_filters,
            indexed,
            attr_hashes,
            errors_only: q.status == Some(StatusCode::Error),
            min_duration: q.min_duration_ns.map(ns),
            start_from: q.start_from_ns.map(ns),
            start_to: q.start_to_ns.map(ns),
            attributes: &q.attributes,
            budget: tuning.scan_budget.max(1),
            driver_threshold: tuning.driver_threshold,
        })
    }

    /// The sort key of a `traces t` row as SQL (both dialects): the listing is ordered by it, then
    /// by `t.id`, both descending. Longest first sorts every candidate of the range (`LIMIT` keeps
    /// the sort bounded to a page); newest first walks the start index.
    pub(crate) fn key_sql(&self) -> &'static str {
        match self.order {
            TraceOrder::Newest => "t.start_ns",
            TraceOrder::Longest => "(t.end_ns - t.start_ns)",
        }
    }

    /// The sort key of a trace that starts at `start` and ends at `end` (ns), as [`Self::key_sql`].
    pub(crate) fn key(&self, start: i64, end: i64) -> i64 {
        match self.order {
            TraceOrder::Newest => start,
            TraceOrder::Longest => end.saturating_sub(start),
        }
    }

    /// Whether candidates must be decoded to check attribute filters exactly (the index only
    /// narrows: it is per trace and hashes may collide).
    pub(crate) fn verify(&self) -> bool {
        !self.attributes.is_empty()
    }

    /// The indexed filter that drives the listing: the most selective one matching fewer traces
    /// than the threshold, if any. `count(hash, threshold)` counts a hash's traces up to
    /// `threshold`.
    pub(crate) fn choose_driver(
        &self,
        mut count: impl FnMut(i64, i64) -> StoreResult<i64>,
    ) -> StoreResult<Option<i64>> {
        let mut driver: Option<(i64, usize)> = None;
        if self.driver_threshold == 0 {
            return Ok(None);
        }
        let threshold = i64::try_from(self.driver_threshold).unwrap_or(i64::MAX);
        for h in &self.indexed {
            let n = usize::try_from(count(*h, threshold)?).unwrap_or(usize::MAX);
            if n < self.driver_threshold && driver.is_none_or(|(_, best)| n < best) {
                driver = Some((*h, n));
            }
        }
        Ok(driver.map(|(h, _)| h))
    }

    /// The span filters as ` AND s.<clause> <placeholder(i)>` clauses (`i` from 0).
    pub(crate) fn span_filter_sql(&self, placeholder: impl Fn(usize) -> String) -> String {
        let mut sql = String::new();
        for (i, f) in self.span_filters.iter().enumerate() {
            let _ = write!(sql, " AND s.{} {}", f.clause, placeholder(i));
        }
        sql
    }

    /// The trace-level conditions (errors only, the longest span, start range) as ` AND t.…`
    /// clauses; `bind(v)` adds an integer parameter and returns its placeholder.
    ///
    /// The longest-span bound only narrows: the span probe still checks that one span meets every
    /// span filter (a service's spans may all be short in a trace whose longest span is another
    /// service's), so answers are what the probe alone gives. It is read from the start index in
    /// both stores, so a trace it rules out costs an index entry, not a probe of its spans: with a
    /// selective `min_duration_ms` the listing probed the spans of p95 7,391 traces for a page, 87
    /// with the bound (10 M spans; p95 44–205 ms a search before, 4.0–4.5 ms after:
    /// docs/benchmarks.md).
    pub(crate) fn trace_bounds_sql(&self, mut bind: impl FnMut(i64) -> String) -> String {
        let mut sql = String::new();
        if self.errors_only {
            sql.push_str(" AND t.error_count > 0");
        }
        if let Some(min) = self.min_duration {
            let _ = write!(sql, " AND t.max_duration_ns >= {}", bind(min));
        }
        if let Some(from) = self.start_from {
            let _ = write!(sql, " AND t.start_ns >= {}", bind(from));
        }
        if let Some(to) = self.start_to {
            let _ = write!(sql, " AND t.start_ns < {}", bind(to));
        }
        sql
    }

    /// One ` AND <probe>` clause per attribute hash besides the driver: `bind(hash)` adds the hash
    /// as a parameter and returns its placeholder, `probe(placeholder)` is the store's probe of it.
    pub(crate) fn attr_probes_sql(
        &self,
        driver: Option<i64>,
        mut bind: impl FnMut(i64) -> String,
        probe: impl Fn(&str) -> String,
    ) -> String {
        let mut sql = String::new();
        for h in self.attr_hashes.iter().copied().filter(|h| driver != Some(*h)) {
            let _ = write!(sql, " AND {}", probe(&bind(h)));
        }
        sql
    }

    /// Whether a candidate's span `body` (one that passed the column filters) satisfies every
    /// attribute filter; `text` is scratch space.
    pub(crate) fn span_matches(&self, body: &[u8], text: &mut String) -> StoreResult<bool> {
        Ok(span_matches_attrs(&decode_span_body(body)?, self.attributes, text))
    }

    /// How many candidates the listing query returns at most when it runs once (without decoding:
    /// a page and one more to know there is a next one; with decoding: the budget).
    pub(crate) fn candidates(&self) -> usize {
        if self.verify() { self.budget } else { self.limit + 1 }
    }
}

/// A `traces` row of a listing as a summary (columns as [`SUMMARY_COLUMNS`] from `t.trace_id`
/// on; the root's name and service only where the trace has a root).
pub(crate) fn summary(
    trace_id: &[u8],
    start: i64,
    end: i64,
    root: Option<(Option<String>, Option<String>)>,
    span_count: i64,
    error_count: i64,
) -> StoreResult<TraceSummary> {
    let trace_id = TraceId::from_slice(trace_id)
        .ok_or_else(|| StoreError::Corrupt(format!("trace id of {} bytes", trace_id.len())))?;
    let (root_name, root_service) = root.unwrap_or_default();
    Ok(TraceSummary {
        trace_id,
        root_name,
        root_service,
        start_unix_nano: unns(start),
        end_unix_nano: unns(end),
        span_count: unns(span_count),
        error_count: unns(error_count),
    })
}

/// One page being collected from candidates examined in the listing's order.
#[derive(Debug)]
pub(crate) struct Page {
    order: TraceOrder,
    limit: usize,
    verify: bool,
    budget: usize,
    out: Vec<(i64, i64, TraceSummary)>,
    scanned: usize,
    last_scanned: Option<(i64, i64)>,
}

impl Page {
    pub(crate) fn new(plan: &ListPlan<'_>) -> Self {
        Self {
            order: plan.order,
            limit: plan.limit,
            verify: plan.verify(),
            budget: plan.budget,
            out: Vec::with_capacity(plan.limit + 1),
            scanned: 0,
            last_scanned: None,
        }
    }

    /// Counts candidate `(sort key, seq)` as examined.
    pub(crate) fn examine(&mut self, key: i64, seq: i64) {
        self.scanned += 1;
        self.last_scanned = Some((key, seq));
    }

    /// Keeps the candidate examined last.
    pub(crate) fn keep(&mut self, key: i64, seq: i64, summary: TraceSummary) {
        self.out.push((key, seq, summary));
    }

    /// True once the page is full (it holds one more than the limit) or the budget is spent.
    pub(crate) fn is_done(&self) -> bool {
        self.out.len() > self.limit || self.budget_spent()
    }

    fn budget_spent(&self) -> bool {
        self.verify && self.scanned >= self.budget
    }

    /// Candidates examined so far.
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }

    /// `(sort key, seq)` of the last candidate examined, where a next chunk of candidates starts.
    pub(crate) fn last_scanned(&self) -> Option<(i64, i64)> {
        self.last_scanned
    }

    /// The page, with a cursor after its last trace when there are more, or (the budget spent)
    /// after the last trace examined.
    pub(crate) fn finish(mut self) -> TracePage {
        let next_cursor = if self.out.len() > self.limit {
            self.out.truncate(self.limit);
            self.out.last().map(|(key, seq, _)| encode_cursor(self.order, *key, *seq))
        } else if self.budget_spent() {
            self.last_scanned.map(|(key, seq)| encode_cursor(self.order, key, seq))
        } else {
            None
        };
        TracePage { traces: self.out.into_iter().map(|(_, _, t)| t).collect(), next_cursor }
    }
}

/// A trace's span rows on their way to [`StoredSpan`]s: the spans decoded in row order and the
/// resources they reference, fetched once each.
#[derive(Debug)]
pub(crate) struct TraceSpans {
    trace_id: TraceId,
    spans: Vec<(i64, SpanData)>,
    resource_ids: Vec<i64>,
}

impl TraceSpans {
    pub(crate) fn new(trace_id: TraceId) -> Self {
        Self { trace_id, spans: Vec::new(), resource_ids: Vec::new() }
    }

    /// Adds a span row: its resource id and body.
    pub(crate) fn push(&mut self, resource_id: i64, body: &[u8]) -> StoreResult<()> {
        let span = decode_span_body(body)?;
        if span.trace_id != self.trace_id {
            return Err(StoreError::Corrupt(format!("span of trace {} filed under {}", span.trace_id, self.trace_id)));
        }
        if !self.resource_ids.contains(&resource_id) {
            self.resource_ids.push(resource_id);
        }
        self.spans.push((resource_id, span));
        Ok(())
    }

    /// The resources the spans reference, each once.
    pub(crate) fn resource_ids(&self) -> &[i64] {
        &self.resource_ids
    }

    /// The spans with their resources (`resources` by id, decoded), ordered by start time (then
    /// span id). Sorted here rather than by the query: the database's sort carried every row's
    /// body through its sorter, a tenth of the time a 10,000-span trace took to serve.
    pub(crate) fn finish(
        mut self,
        resources: HashMap<i64, (Resource, InstrumentationScope)>,
    ) -> StoreResult<Vec<StoredSpan>> {
        let shared: HashMap<i64, (Arc<Resource>, Arc<InstrumentationScope>)> =
            resources.into_iter().map(|(id, (r, s))| (id, (Arc::new(r), Arc::new(s)))).collect();
        self.spans.sort_unstable_by_key(|(_, s)| (s.start_time_unix_nano, s.span_id));
        self.spans
            .into_iter()
            .map(|(resource_id, span)| {
                let (resource, scope) = shared
                    .get(&resource_id)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("resource {resource_id} is missing")))?;
                Ok(StoredSpan { resource, scope, span })
            })
            .collect()
    }
}
