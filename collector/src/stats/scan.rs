//! Statistics the sketches cannot answer, counted from the spans themselves: a duration bound, an
//! `attr.` filter on a key outside [`DIMENSION_KEYS`](super::DIMENSION_KEYS) (or more than one),
//! a `group_by` on another key. The store reads the matching spans of the range
//! ([`crate::store::Store::scan_spans`], at most [`MAX_SCAN_SPANS`]) and [`fold`] adds them up into
//! the very minute rows a commit writes ([`StatRecord`]: the same [`LatencySketch`], SLA counts,
//! maximum and counts), so [`super::query::answer`] merges them exactly as it merges stored rows:
//! accuracy, exact SLA shares, buckets, group limits and JSON are those of the sketch path.

use std::collections::HashMap;

use tracex_core::StatusCode;

use super::query::{AnswerError, Source, StatsAnswer, StatsQuery, answer};
use super::{LatencySketch, StatRecord, minute_of};
use crate::store::AttributeFilter;

/// Most spans one statistics scan may count; a query matching more is refused (400
/// `scan_too_large`) and must be narrowed. The scan holds every span it read until it is folded
/// (≈ 150 bytes each with its service and name: ≈ 150 MB at the cap) and, with attribute filters
/// or a group, decodes each span body (≈ 1–2 µs): a million spans is seconds of one core at
/// most, about what an interactive query may cost, and already minutes of a busy service's
/// traffic; longer ranges are what the sketches are for.
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

/// Spans of one minute row.
#[derive(Default)]
struct Row {
    count: u64,
    max_ns: u64,
    last_start_ns: u64,
    sketch: LatencySketch,
}

/// The minute rows `spans` add up to, keyed as a commit keys them (minute of the start, service,
/// name, status, and the group value as the dimension value, `""` without one).
pub fn fold(spans: Vec<ScannedSpan>) -> Vec<StatRecord> {
    let mut rows: HashMap<(i64, String, String, i32, String), Row> = HashMap::new();
    for s in spans {
        let key = (minute_of(s.start_ns), s.service, s.name, s.status, s.group.unwrap_or_default());
        let row = rows.entry(key).or_default();
        row.count += 1;
        row.max_ns = row.max_ns.max(s.duration_ns);
        row.last_start_ns = row.last_start_ns.max(s.start_ns);
        row.sketch.add_ns(s.duration_ns);
    }
    rows.into_iter()
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

/// The answer to `q` from the spans a scan read (at most the cap: the caller checks it).
pub fn answer_from_spans(q: StatsQuery, spans: Vec<ScannedSpan>) -> Result<StatsAnswer, AnswerError> {
    let scanned = spans.len();
    let mut a = answer(q, fold(spans))?;
    a.source = Source::Scan { spans: scanned };
    Ok(a)
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

    #[test]
    fn spans_fold_into_the_minute_rows_a_commit_writes() {
        let spans = vec![
            span("f", "verify", StatusCode::Ok, T0 + 5, 2_000_000),
            span("f", "verify", StatusCode::Ok, T0 + 9, 7_000_000),
            span("f", "verify", StatusCode::Error, T0 + 1, 3_000_000),
            span("f", "verify", StatusCode::Ok, T0 + MINUTE_NS, 1_000_000),
            ScannedSpan { group: Some("base".into()), ..span("f", "verify", StatusCode::Ok, T0, 4_000_000) },
        ];
        let mut rows = fold(spans);
        rows.sort_by(|a, b| (a.minute, a.status, &a.dim_value).cmp(&(b.minute, b.status, &b.dim_value)));
        let keys: Vec<_> = rows.iter().map(|r| (r.minute - minute_of(T0), r.status, r.dim_value.as_str())).collect();
        assert_eq!(keys, [(0, 1, ""), (0, 1, "base"), (0, 2, ""), (1, 1, "")]);
        let r = &rows[0];
        assert_eq!((r.count, r.max_ns, r.last_start_ns), (2, 7_000_000, T0 + 9));
        let sketch = LatencySketch::decode(r.sketch.as_ref().unwrap()).unwrap();
        assert_eq!(sketch.count(), 2);
        let share = sketch.share_at_or_under(2.0).unwrap();
        assert!(share.exact && (share.value - 0.5).abs() < 1e-12, "the SLA counts are kept: {share:?}");
        assert!(fold(Vec::new()).is_empty());
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
