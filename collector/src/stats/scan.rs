//! Statistics the sketches cannot answer, counted from the spans themselves: a duration bound, an
//! `attr.` filter on a key outside [`DIMENSION_KEYS`](super::DIMENSION_KEYS) (or more than one),
//! a `group_by` on another key. The store reads the matching spans of the range
//! ([`crate::store::Store::scan_spans`], at most [`MAX_SCAN_SPANS`]) and a [`Fold`] adds them up into
//! the very minute rows a commit writes ([`StatRecord`]: the same [`LatencySketch`], SLA counts,
//! maximum and counts), so [`super::query::answer`] merges them exactly as it merges stored rows:
//! accuracy, exact SLA shares, buckets, group limits and JSON are those of the sketch path.

use std::collections::{HashMap, HashSet};

use tracex_core::StatusCode;

use super::query::{AnswerError, MAX_GROUPS, Source, StatsAnswer, StatsQuery, answer};
use super::{LatencySketch, StatRecord, minute_of};
use crate::store::AttributeFilter;

/// Most spans one statistics scan may count; a query matching more is refused (400
/// `scan_too_large`) and must be narrowed. The spans are folded as they are read ([`Fold`]: memory
/// grows with buckets × groups, not with spans) but, with attribute filters or a group, each span
/// body is decoded (≈ 1–2 µs): a million spans is seconds of one core at most, about what an
/// interactive query may cost, and already minutes of a busy service's traffic; longer ranges are
/// what the sketches are for.
pub const MAX_SCAN_SPANS: usize = 1_000_000;

/// How long before the range a trace may have started and still have its spans scanned. A span is
/// counted by its own start, as the sketches count it, but the stores reach spans through their
/// traces' start index: without a bound, finding the spans of a long trace that began before the
/// range would walk every older trace of the project. Spans of traces that started more than an
/// hour before the range are not counted by a scan (the sketches do count them); the hour costs
/// the index entries of an hour of traces (most end long before the range and are passed over by
/// their end, without reading their spans).
pub const SCAN_TRACE_LOOKBACK_NS: u64 = 3_600 * 1_000_000_000;

/// The spans a statistics scan reads: those of `project` that started in `[from_ns, to_ns)` and
/// match every filter (the trace search's span-level filters, applied to each span).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanScan {
    /// The project.
    pub project: String,
    /// Earliest span start (unix ns, inclusive).
    pub from_ns: u64,
    /// Latest span start (unix ns, exclusive).
    pub to_ns: u64,
    /// Only this service (`""` is the spans without `service.name`, as in the statistics rows).
    pub service: Option<String>,
    /// Only this span name.
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<StatusCode>,
    /// Shortest duration (ns, inclusive).
    pub min_duration_ns: Option<u64>,
    /// Longest duration (ns, inclusive).
    pub max_duration_ns: Option<u64>,
    /// Attribute equalities every span satisfies (rendered as the trace filters render them).
    pub attributes: Vec<AttributeFilter>,
    /// Split by this attribute: each span comes with its value rendered as a dimension row keys
    /// it, and spans without such a value (absent, not a scalar, or longer than
    /// [`super::MAX_DIMENSION_VALUE_LEN`]) are left out, as they are from the dimension rows.
    pub group_by: Option<String>,
}

/// One span a scan read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedSpan {
    /// `service.name` (`""` when none).
    pub service: String,
    /// Span name.
    pub name: String,
    /// OTLP status code.
    pub status: i32,
    /// Start (unix ns).
    pub start_ns: u64,
    /// Duration (ns).
    pub duration_ns: u64,
    /// The `group_by` attribute's value, when the scan groups.
    pub group: Option<String>,
}

/// Spans of one row.
#[derive(Default)]
struct Row {
    count: u64,
    max_ns: u64,
    last_start_ns: u64,
    sketch: LatencySketch,
}

/// A row's key: the minute its bucket starts at, service, name, status and the group value (`""`
/// without one).
type RowKey = (i64, String, String, i32, String);

/// Scanned spans added up as the store reads them, into rows the shape of the stored minute rows
/// ([`StatRecord`]) but one per *bucket* of the query (keyed by the bucket's first minute, where
/// [`answer`] files it): merging sketches is exact, so an answer from these rows is the answer from
/// minute rows, and what the scan holds is bounded by buckets × groups, not by the spans read.
pub struct Fold {
    first_minute: i64,
    step_minutes: i64,
    rows: HashMap<RowKey, Row>,
    groups: HashSet<(String, String, String)>,
    spans: usize,
    too_many_groups: bool,
}

impl Fold {
    /// An empty fold for `q`'s buckets.
    pub fn new(q: &StatsQuery) -> Self {
        Self {
            first_minute: minute_of(q.from_ns),
            step_minutes: i64::try_from(q.step_seconds / 60).unwrap_or(i64::MAX).max(1),
            rows: HashMap::new(),
            groups: HashSet::new(),
            spans: 0,
            too_many_groups: false,
        }
    }

    /// Adds one span. Past [`MAX_GROUPS`] groups the answer is refused anyway, so spans of further
    /// groups are counted and not kept.
    pub fn add(&mut self, s: ScannedSpan) {
        self.spans += 1;
        if self.too_many_groups {
            return;
        }
        let minute = minute_of(s.start_ns);
        let bucket = self.first_minute + (minute - self.first_minute).div_euclid(self.step_minutes) * self.step_minutes;
        let key = (bucket, s.service, s.name, s.status, s.group.unwrap_or_default());
        if !self.rows.contains_key(&key) {
            // A new row may be a new group: only then is the group set consulted (rows are far
            // fewer than spans, so most spans copy no string).
            let group = (key.1.clone(), key.2.clone(), key.4.clone());
            if !self.groups.contains(&group) {
                if self.groups.len() == MAX_GROUPS {
                    self.too_many_groups = true;
                    return;
                }
                self.groups.insert(group);
            }
        }
        let row = self.rows.entry(key).or_default();
        row.count += 1;
        row.max_ns = row.max_ns.max(s.duration_ns);
        row.last_start_ns = row.last_start_ns.max(s.start_ns);
        row.sketch.add_ns(s.duration_ns);
    }

    /// Spans added so far.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// The rows, as [`answer`] reads stored ones.
    fn into_records(self) -> Vec<StatRecord> {
        self.rows
            .into_iter()
            .map(|((minute, service, name, status, dim_value), r)| StatRecord {
                minute,
                service,
                name,
                status,
                dim_value,
                count: r.count,
                max_ns: r.max_ns,
                last_start_ns: r.last_start_ns,
                sketch: Some(r.sketch.encode()),
            })
            .collect()
    }

    /// The answer to `q` (the query this fold was made for) from the spans added.
    pub fn answer(self, q: StatsQuery) -> Result<StatsAnswer, AnswerError> {
        if self.too_many_groups {
            return Err(AnswerError::TooManyGroups);
        }
        let spans = self.spans;
        let mut a = answer(q, self.into_records())?;
        a.source = Source::Scan { spans };
        Ok(a)
    }
}

/// The answer to `q` from `spans` (tests: the endpoint folds while the store reads).
#[cfg(test)]
pub fn answer_from_spans(q: StatsQuery, spans: Vec<ScannedSpan>) -> Result<StatsAnswer, AnswerError> {
    let mut fold = Fold::new(&q);
    for s in spans {
        fold.add(s);
    }
    fold.answer(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::MINUTE_NS;
    use crate::stats::query::QUANTILES;

    const T0: u64 = 29_166_669 * MINUTE_NS;

    fn span(service: &str, name: &str, status: StatusCode, start_ns: u64, duration_ns: u64) -> ScannedSpan {
        ScannedSpan {
            service: service.into(),
            name: name.into(),
            status: status as i32,
            start_ns,
            duration_ns,
            group: None,
        }
    }

    fn query(from_ns: u64, to_ns: u64, step_seconds: u64) -> StatsQuery {
        let (from_ns, to_ns, step_seconds) = StatsQuery::range(from_ns, to_ns, Some(step_seconds)).unwrap();
        StatsQuery { project: "p".into(), from_ns, to_ns, step_seconds, ..StatsQuery::default() }
    }

    fn fold_of(q: &StatsQuery, spans: Vec<ScannedSpan>) -> Vec<StatRecord> {
        let mut fold = Fold::new(q);
        for s in spans {
            fold.add(s);
        }
        let mut rows = fold.into_records();
        rows.sort_by(|a, b| (a.minute, a.status, &a.dim_value).cmp(&(b.minute, b.status, &b.dim_value)));
        rows
    }

    #[test]
    fn spans_fold_into_the_minute_rows_a_commit_writes() {
        let spans = vec![
            span("f", "verify", StatusCode::Ok, T0 + 5, 2_000_000),
            span("f", "verify", StatusCode::Ok, T0 + 9, 7_000_000),
            span("f", "verify", StatusCode::Error, T0 + 1, 3_000_000),
            span("f", "verify", StatusCode::Ok, T0 + MINUTE_NS, 1_000_000),
            ScannedSpan { group: Some("base".into()), ..span("f", "verify", StatusCode::Ok, T0, 4_000_000) },
        ];
        let rows = fold_of(&query(T0, T0 + 2 * MINUTE_NS, 60), spans);
        let keys: Vec<_> = rows.iter().map(|r| (r.minute - minute_of(T0), r.status, r.dim_value.as_str())).collect();
        assert_eq!(keys, [(0, 1, ""), (0, 1, "base"), (0, 2, ""), (1, 1, "")]);
        let r = &rows[0];
        assert_eq!((r.count, r.max_ns, r.last_start_ns), (2, 7_000_000, T0 + 9));
        let sketch = LatencySketch::decode(r.sketch.as_ref().unwrap()).unwrap();
        assert_eq!(sketch.count(), 2);
        let share = sketch.share_at_or_under(2.0).unwrap();
        assert!(share.exact && (share.value - 0.5).abs() < 1e-12, "the SLA counts are kept: {share:?}");
        assert!(fold_of(&query(T0, T0 + MINUTE_NS, 60), Vec::new()).is_empty());
    }

    #[test]
    fn longer_steps_fold_into_one_row_per_bucket_and_answer_as_minute_rows_do() {
        // Ten minutes of spans at 5-minute steps: two rows keyed by their buckets' first minutes
        // (the range starts on a whole 5 minutes), and the same answer as the ten minute rows.
        let q = query(T0, T0 + 10 * MINUTE_NS, 300);
        let spans: Vec<ScannedSpan> = (0..200u64)
            .map(|i| span("f", "settle", StatusCode::Ok, q.from_ns + i * 3 * MINUTE_NS / 60, (i + 1) * 50_000))
            .collect();
        let rows = fold_of(&q, spans.clone());
        let first = minute_of(q.from_ns);
        assert_eq!(rows.iter().map(|r| (r.minute - first, r.count)).collect::<Vec<_>>(), [(0, 100), (5, 100)]);
        let by_bucket = answer_from_spans(q.clone(), spans.clone()).unwrap();
        let by_minute = answer(q.clone(), fold_of(&StatsQuery { step_seconds: 60, ..q.clone() }, spans)).unwrap();
        assert_eq!(by_bucket.groups, by_minute.groups);
    }

    #[test]
    fn past_the_group_limit_the_fold_keeps_no_more_and_the_answer_is_refused() {
        let q = query(T0, T0 + MINUTE_NS, 60);
        let mut fold = Fold::new(&q);
        for i in 0..=MAX_GROUPS + 10 {
            fold.add(span("f", &format!("op-{i}"), StatusCode::Ok, T0, 1_000_000));
        }
        assert_eq!(fold.spans(), MAX_GROUPS + 11);
        assert_eq!(fold.rows.len(), MAX_GROUPS, "rows of further groups are not kept");
        assert!(matches!(fold.answer(q), Err(AnswerError::TooManyGroups)));
    }

    #[test]
    fn an_answer_from_spans_is_the_sketch_answer_and_says_so() {
        let (from_ns, to_ns, step_seconds) = StatsQuery::range(T0, T0 + 2 * MINUTE_NS, Some(60)).unwrap();
        let q = StatsQuery {
            project: "p".into(),
            from_ns,
            to_ns,
            step_seconds,
            sla_ms: Some(5.0),
            min_duration_ns: Some(0),
            ..StatsQuery::default()
        };
        let spans: Vec<ScannedSpan> = (1..=100u64)
            .map(|i| {
                let status = if i % 10 == 0 { StatusCode::Error } else { StatusCode::Ok };
                span("f", "verify", status, T0 + i * MINUTE_NS / 60, i * 100_000)
            })
            .collect();
        let a = answer_from_spans(q, spans).unwrap();
        assert_eq!(a.source, Source::Scan { spans: 100 });
        assert_eq!(a.groups.len(), 1);
        let t = &a.groups[0].total;
        assert_eq!((t.count, t.errors, t.max_ms), (100, 10, Some(10.0)));
        let sla = t.sla_compliance.unwrap();
        assert!(sla.exact && (sla.value - 0.5).abs() < 1e-12, "{sla:?}");
        for (q, v) in QUANTILES.iter().zip(t.quantiles_ms) {
            let exact = ((q * 99.0f64).floor() + 1.0) * 0.1;
            assert!((v.unwrap() - exact).abs() <= exact * crate::stats::RELATIVE_ACCURACY + 1e-9, "q{q}");
        }
        let per_minute: Vec<u64> = a.groups[0].buckets.iter().map(|(_, s)| s.count).collect();
        assert_eq!(per_minute, [59, 41]);
    }
}
