//! The statistics scan both stores run ([`crate::store::Store::scan_spans`], see
//! [`crate::stats::scan`]): the spans of a range matching the trace search's span filters. It
//! reuses the listing's plan ([`ListPlan`]) for those filters — the span column filters, the
//! trace-level bounds (errors, longest span, start range) and the attribute index probes — and
//! its exact attribute check, so a scan and a search agree on what a filter matches. A store only
//! spells the SQL's dialect parts and runs it.

use std::fmt::Write as _;

use super::list::{FilterValue, ListPlan};
use super::stats::dimension_value;
use crate::stats::scan::{SCAN_TRACE_LOOKBACK_NS, ScannedSpan, SpanScan};
use crate::store::common::{Tuning, decode_span_body, ns, span_matches_attrs};
use crate::store::{StoreError, StoreResult, TraceQuery};

/// The trace search that finds the traces holding a scan's spans: the scan's span filters, over
/// traces that started up to [`SCAN_TRACE_LOOKBACK_NS`] before the range (a trace starts no later
/// than its spans). The service is left out: the scan compares it as the statistics rows key it
/// ([`ScanPlan::sql`]).
pub(crate) fn traces_of(scan: &SpanScan) -> TraceQuery {
    TraceQuery {
        project: scan.project.clone(),
        span_name: scan.name.clone(),
        status: scan.status,
        min_duration_ns: scan.min_duration_ns,
        max_duration_ns: scan.max_duration_ns,
        start_from_ns: Some(scan.from_ns.saturating_sub(SCAN_TRACE_LOOKBACK_NS)),
        start_to_ns: Some(scan.to_ns),
        attributes: scan.attributes.clone(),
        ..TraceQuery::default()
    }
}

/// One scan: its filters as SQL, and the check and shaping of each row read.
pub(crate) struct ScanPlan<'q> {
    scan: &'q SpanScan,
    list: ListPlan<'q>,
    cap: usize,
}

impl<'q> ScanPlan<'q> {
    /// The plan of `scan`; `traces` is [`traces_of`]`(scan)`.
    pub(crate) fn new(scan: &'q SpanScan, traces: &'q TraceQuery, cap: usize) -> StoreResult<Self> {
        Ok(Self { scan, list: ListPlan::new(traces, Tuning::default())?, cap })
    }

    /// Whether only traces with errors can hold matching spans (a store may walk an index of those).
    pub(crate) fn errors_only(&self) -> bool {
        self.list.errors_only
    }

    /// Whether rows carry the span body: to check attribute filters exactly (the index only
    /// narrows) or to read the group's value.
    pub(crate) fn decodes(&self) -> bool {
        self.list.verify() || self.scan.group_by.is_some()
    }

    /// Most rows [`Self::keep`] may accept: one past the cap, so the caller sees it was passed.
    pub(crate) fn max_rows(&self) -> usize {
        self.cap.saturating_add(1)
    }

    /// The `SELECT` of the scan in project `project_id`, and its parameters. The store spells the
    /// dialect: `placeholder(i)` is parameter `i` (0-based; parameter 0 is the project), `traces`
    /// joins `traces t` to `spans s` (the join condition is in the `WHERE`), `probe(p)` is its
    /// attribute index probe of the hash in placeholder `p` for trace `t` (the listing's).
    /// Columns: service, name, status, start, duration, then the body or NULL ([`Self::decodes`]).
    pub(crate) fn sql(
        &self,
        project_id: i64,
        traces: &str,
        placeholder: impl Fn(usize) -> String,
        probe: impl Fn(&str) -> String,
    ) -> (String, Vec<FilterValue>) {
        let mut params = vec![FilterValue::Int(project_id)];
        let bind = |params: &mut Vec<FilterValue>, v: FilterValue| {
            params.push(v);
            placeholder(params.len() - 1)
        };
        // A NULL of the column's type in both dialects (a bare NULL is text to PostgreSQL).
        let body = if self.decodes() { "s.body" } else { "CASE WHEN 1 = 0 THEN s.body END" };
        let mut sql = format!(
            "SELECT s.service, s.name, s.status, s.start_ns, s.duration_ns, {body} FROM {traces} \
             WHERE t.project_id = {} AND s.trace_seq = t.id",
            placeholder(0)
        );
        sql.push_str(&self.list.trace_bounds_sql(|v| bind(&mut params, FilterValue::Int(v))));
        // A trace that ended before the range holds none of its spans: passed over without
        // reading them (only traces of the lookback can have).
        let from = bind(&mut params, FilterValue::Int(ns(self.scan.from_ns)));
        let to = bind(&mut params, FilterValue::Int(ns(self.scan.to_ns)));
        let _ = write!(sql, " AND t.end_ns >= {from} AND s.start_ns >= {from} AND s.start_ns < {to}");
        let first = params.len();
        sql.push_str(&self.list.span_filter_sql(|i| placeholder(first + i)));
        params.extend(self.list.span_filters.iter().map(|f| f.value.clone()));
        if let Some(service) = &self.scan.service {
            // Statistics key spans without `service.name` (a NULL column) under "".
            let p = bind(&mut params, FilterValue::Text(service.clone()));
            let _ = write!(sql, " AND COALESCE(s.service, '') = {p}");
        }
        sql.push_str(&self.list.attr_probes_sql(None, |h| bind(&mut params, FilterValue::Int(h)), probe));
        if !self.decodes() {
            // Every row is a match: the database stops at the cap.
            let n = bind(&mut params, FilterValue::Int(i64::try_from(self.max_rows()).unwrap_or(i64::MAX)));
            let _ = write!(sql, " LIMIT {n}");
        }
        (sql, params)
    }

    /// `span` (a row's columns, as [`Self::sql`] selects them; the store leaves `group` `None`)
    /// if it is kept: `None` when its `body` fails an attribute filter or has no value to group
    /// by. `text` is scratch space.
    pub(crate) fn keep(
        &self,
        mut span: ScannedSpan,
        body: Option<&[u8]>,
        text: &mut String,
    ) -> StoreResult<Option<ScannedSpan>> {
        if !self.decodes() {
            return Ok(Some(span));
        }
        let Some(body) = body else {
            return Err(StoreError::Corrupt("a scanned span row without its body".into()));
        };
        let decoded = decode_span_body(body)?;
        if !span_matches_attrs(&decoded, self.list.attributes, text) {
            return Ok(None);
        }
        if let Some(key) = &self.scan.group_by {
            match dimension_value(decoded.attribute(key), text) {
                Some(v) => span.group = Some(v.into_owned()),
                None => return Ok(None),
            }
        }
        Ok(Some(span))
    }
}
