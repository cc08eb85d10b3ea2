//! A statistics query, resolved (range aligned, step chosen), and its answer merged from stored
//! rows. Shared by both stores: they only read rows ([`crate::store::Store::stat_rows`]), or the
//! spans a scan folds into rows ([`super::scan`]).

use std::collections::{BTreeMap, HashMap};

use tracex_core::StatusCode;

use super::scan::SpanScan;
use super::{DIMENSION_KEYS, LatencySketch, MAX_DIMENSION_VALUE_LEN, Share, SketchError, StatFilter, StatRecord};
use crate::store::AttributeFilter;

/// Range of a query that gives no `from`: the last hour.
pub const DEFAULT_RANGE_NS: u64 = 3_600 * 1_000_000_000;
/// Longest range a query may cover: 31 days (a month of the default 30-day retention, aligned).
pub const MAX_RANGE_NS: u64 = 31 * 86_400 * 1_000_000_000;
/// Most buckets in an answer (a day at one-minute steps).
pub const MAX_BUCKETS: u64 = 1_440;
/// Shortest step: the stored rows' minute.
pub const MIN_STEP_SECONDS: u64 = 60;
/// Steps an automatic choice picks from, shortest first.
pub const AUTO_STEPS_SECONDS: &[u64] = &[60, 300, 900, 3_600, 86_400];
/// An automatic step is the shortest of [`AUTO_STEPS_SECONDS`] giving at most this many buckets
/// (so a range gets ≈ 60–120 buckets, fewer for short ranges at one minute).
pub const AUTO_MAX_BUCKETS: u64 = 120;
/// Most groups (service × name × group value) in one answer: past it, the query must be narrowed.
pub const MAX_GROUPS: usize = 2_000;

/// Quantiles reported for each statistic, in the order of [`Stat::quantiles_ms`].
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// Why a statistics query is refused (the API answers 400 with the message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidStatsQuery(pub String);

/// A statistics query with its range aligned to whole steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsQuery {
    /// The project.
    pub project: String,
    /// First bucket's start (unix ns, a multiple of the step).
    pub from_ns: u64,
    /// End of the last bucket (unix ns, exclusive, a multiple of the step).
    pub to_ns: u64,
    /// Bucket width (s, a multiple of 60).
    pub step_seconds: u64,
    /// Only this service.
    pub service: Option<String>,
    /// Only this span name.
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<StatusCode>,
    /// Only spans at least this long (ns, inclusive).
    pub min_duration_ns: Option<u64>,
    /// Only spans at most this long (ns, inclusive).
    pub max_duration_ns: Option<u64>,
    /// Attribute equalities every counted span satisfies.
    pub attributes: Vec<AttributeFilter>,
    /// The attribute whose values split the groups.
    pub group_by: Option<String>,
    /// SLA threshold (ms).
    pub sla_ms: Option<f64>,
}

impl StatsQuery {
    /// Aligns `[from, to)` (unix ns) to whole steps (`step`: seconds, or `None` for automatic).
    pub fn range(from_ns: u64, to_ns: u64, step: Option<u64>) -> Result<(u64, u64, u64), InvalidStatsQuery> {
        if from_ns >= to_ns {
            return Err(InvalidStatsQuery("from must be before to".into()));
        }
        if to_ns - from_ns > MAX_RANGE_NS {
            return Err(InvalidStatsQuery(format!(
                "the range is limited to {} days",
                MAX_RANGE_NS / 86_400 / 1_000_000_000
            )));
        }
        let step = match step {
            Some(s) if s < MIN_STEP_SECONDS || s % MIN_STEP_SECONDS != 0 => {
                return Err(InvalidStatsQuery(format!("step must be a multiple of {MIN_STEP_SECONDS} seconds")));
            }
            Some(s) => s,
            None => {
                let span = to_ns - from_ns;
                AUTO_STEPS_SECONDS
                    .iter()
                    .copied()
                    .find(|s| span.div_ceil(s * 1_000_000_000) <= AUTO_MAX_BUCKETS)
                    .unwrap_or(86_400)
            }
        };
        let step_ns = step.saturating_mul(1_000_000_000);
        let from = from_ns / step_ns * step_ns;
        let to = to_ns.div_ceil(step_ns).saturating_mul(step_ns);
        if (to - from) / step_ns > MAX_BUCKETS {
            return Err(InvalidStatsQuery(format!("at most {MAX_BUCKETS} buckets: choose a longer step")));
        }
        Ok((from, to, step))
    }

    /// The stored rows that answer this query, or `None` when the sketches cannot: the rows are
    /// keyed by one dimension attribute at most ([`DIMENSION_KEYS`]), with values up to
    /// [`MAX_DIMENSION_VALUE_LEN`] bytes, and hold no duration bounds. Such a query is answered by
    /// a scan ([`super::scan`]).
    pub fn sketch_filter(&self) -> Option<StatFilter> {
        let dimension = |k: &str| DIMENSION_KEYS.contains(&k);
        if self.min_duration_ns.is_some() || self.max_duration_ns.is_some() || self.attributes.len() > 1 {
            return None;
        }
        let attr = self.attributes.first();
        if attr.is_some_and(|a| !dimension(&a.key) || a.value.len() > MAX_DIMENSION_VALUE_LEN)
            || self.group_by.as_deref().is_some_and(|g| !dimension(g) || attr.is_some_and(|a| a.key != g))
        {
            return None;
        }
        Some(StatFilter {
            project: self.project.clone(),
            dim_key: self.group_by.clone().or_else(|| attr.map(|a| a.key.clone())).unwrap_or_default(),
            // Steps of whole hours start on whole hours (steps align to the epoch): hourly rows.
            resolution: if self.step_seconds % 3_600 == 0 { 60 } else { 1 },
            from_minute: super::minute_of(self.from_ns),
            to_minute: super::minute_of(self.to_ns),
            service: self.service.clone(),
            name: self.name.clone(),
            status: self.status.map(|s| s as i32),
            dim_value: attr.map(|a| a.value.clone()),
            with_sketches: true,
        })
    }

    /// The spans a scan reads to answer this query (see [`super::scan`]).
    pub fn scan(&self) -> SpanScan {
        SpanScan {
            project: self.project.clone(),
            from_ns: self.from_ns,
            to_ns: self.to_ns,
            service: self.service.clone(),
            name: self.name.clone(),
            status: self.status,
            min_duration_ns: self.min_duration_ns,
            max_duration_ns: self.max_duration_ns,
            attributes: self.attributes.clone(),
            group_by: self.group_by.clone(),
        }
    }

    fn buckets(&self) -> usize {
        usize::try_from((self.to_ns - self.from_ns) / (self.step_seconds * 1_000_000_000)).unwrap_or(0)
    }
}

/// Count, errors, percentiles and SLA compliance of some spans.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    /// Spans (exact).
    pub count: u64,
    /// Spans with status error (exact).
    pub errors: u64,
    /// p50, p90, p95, p99, p99.9 (ms; `None` when empty).
    pub quantiles_ms: [Option<f64>; 5],
    /// Largest duration (ms, exact; `None` when empty).
    pub max_ms: Option<f64>,
    /// Share of spans at or under the SLA threshold, and whether it is exact (`None` without a
    /// threshold or spans).
    pub sla_compliance: Option<Share>,
}

impl Stat {
    /// Errors per span (0 when empty).
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.errors as f64 / self.count as f64 }
    }
}

/// One group: a service's span name, and the dimension value when grouped.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsGroup {
    /// `service.name` (`""` when none).
    pub service: String,
    /// Span name.
    pub name: String,
    /// The dimension value when the query groups by one.
    pub group: Option<String>,
    /// Over the whole range.
    pub total: Stat,
    /// Every bucket of the range, in order: `(start unix ns, stat)`.
    pub buckets: Vec<(u64, Stat)>,
}

/// What a statistics query answers.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsAnswer {
    /// The query as resolved.
    pub query: StatsQuery,
    /// Groups sorted by service, name, group.
    pub groups: Vec<StatsGroup>,
    /// Where the numbers come from.
    pub source: Source,
}

/// What served a statistics answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The stored sketch rows ([`StatsQuery::sketch_filter`]).
    Sketches,
    /// A scan of the matching spans ([`super::scan`]), this many of them.
    Scan {
        /// Spans read.
        spans: usize,
    },
}

/// Spans merged from rows.
#[derive(Default)]
struct Acc {
    count: u64,
    errors: u64,
    max_ns: u64,
    sketch: LatencySketch,
}

impl Acc {
    fn add(&mut self, r: &StatRecord, sketch: &LatencySketch) -> Result<(), SketchError> {
        self.count += r.count;
        if r.status == StatusCode::Error as i32 {
            self.errors += r.count;
        }
        self.max_ns = self.max_ns.max(r.max_ns);
        self.sketch.merge(sketch)
    }

    fn absorb(&mut self, other: &Self) -> Result<(), SketchError> {
        self.count += other.count;
        self.errors += other.errors;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sketch.merge(&other.sketch)
    }

    fn stat(&self, sla_ms: Option<f64>) -> Stat {
        let empty = self.count == 0;
        Stat {
            count: self.count,
            errors: self.errors,
            quantiles_ms: QUANTILES.map(|q| if empty { None } else { self.sketch.quantile_ms(q) }),
            max_ms: (!empty).then(|| self.max_ns as f64 / 1e6),
            sla_compliance: sla_ms.and_then(|t| if empty { None } else { self.sketch.share_at_or_under(t) }),
        }
    }
}

type GroupKey = (String, String, Option<String>);

/// Merges statistics rows into the answer: the stored rows `stat_rows(q.sketch_filter())` reads,
/// or the rows a scan folds ([`super::scan::Fold`]).
pub fn answer(q: StatsQuery, rows: Vec<StatRecord>) -> Result<StatsAnswer, AnswerError> {
    let step_minutes = i64::try_from(q.step_seconds / 60).unwrap_or(i64::MAX);
    let first = super::minute_of(q.from_ns);
    let n = q.buckets();
    // Rows merge into their bucket only; a group's total merges its buckets once at the end (one
    // merge per bucket instead of one more per row).
    let mut groups: HashMap<GroupKey, BTreeMap<usize, Acc>> = HashMap::new();
    for mut r in rows {
        let bucket = usize::try_from((r.minute - first) / step_minutes).ok().filter(|b| *b < n);
        let Some(bucket) = bucket else { continue };
        let sketch = match &r.sketch {
            Some(bytes) => LatencySketch::decode(bytes)?,
            None => return Err(AnswerError::Corrupt("a statistics row without its sketch".into())),
        };
        let group = q.group_by.is_some().then(|| std::mem::take(&mut r.dim_value));
        let key = (std::mem::take(&mut r.service), std::mem::take(&mut r.name), group);
        if !groups.contains_key(&key) && groups.len() == MAX_GROUPS {
            return Err(AnswerError::TooManyGroups);
        }
        groups.entry(key).or_default().entry(bucket).or_default().add(&r, &sketch)?;
    }
    let step_ns = q.step_seconds * 1_000_000_000;
    let empty = Acc::default().stat(None);
    let mut out: Vec<StatsGroup> = Vec::with_capacity(groups.len());
    for ((service, name, group), buckets) in groups {
        let mut total = Acc::default();
        for b in buckets.values() {
            total.absorb(b)?;
        }
        out.push(StatsGroup {
            service,
            name,
            group,
            total: total.stat(q.sla_ms),
            buckets: (0..n)
                .map(|i| {
                    let start = q.from_ns + i as u64 * step_ns;
                    (start, buckets.get(&i).map_or_else(|| empty.clone(), |a| a.stat(q.sla_ms)))
                })
                .collect(),
        });
    }
    out.sort_by(|a, b| (&a.service, &a.name, &a.group).cmp(&(&b.service, &b.name, &b.group)));
    Ok(StatsAnswer { query: q, groups: out, source: Source::Sketches })
}

/// Why rows could not be merged into an answer.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// More than [`MAX_GROUPS`] groups: the query must be narrowed (a 400).
    #[error("more than {MAX_GROUPS} groups: filter by service or name")]
    TooManyGroups,
    /// A stored sketch did not decode.
    #[error(transparent)]
    Sketch(#[from] SketchError),
    /// A stored row is malformed.
    #[error("{0}")]
    Corrupt(String),
}

/// One service in a services listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSummary {
    /// `service.name` (`""` when none).
    pub name: String,
    /// Latest span start (unix ns).
    pub last_seen_ns: u64,
    /// Span names, sorted: `(name, count, last seen unix ns)`.
    pub operations: Vec<(String, u64, u64)>,
}

/// Services and their span names from base rows, sorted by name.
pub fn services(rows: &[StatRecord]) -> Vec<ServiceSummary> {
    let mut by: BTreeMap<&str, BTreeMap<&str, (u64, u64)>> = BTreeMap::new();
    for r in rows {
        let op = by.entry(&r.service).or_default().entry(&r.name).or_default();
        op.0 += r.count;
        op.1 = op.1.max(r.last_start_ns);
    }
    by.into_iter()
        .map(|(service, ops)| ServiceSummary {
            name: service.to_owned(),
            last_seen_ns: ops.values().map(|o| o.1).max().unwrap_or(0),
            operations: ops.into_iter().map(|(n, (c, l))| (n.to_owned(), c, l)).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn ranges_align_to_steps_and_limits_hold() {
        // One hour, automatic: one-minute steps (60 buckets).
        assert_eq!(StatsQuery::range(3_600 * S + 5, 7_200 * S + 5, None).unwrap(), (3_600 * S, 7_260 * S, 60));
        // A day: 15 minutes (96 buckets); 30 days: one day.
        assert_eq!(StatsQuery::range(0, 86_400 * S, None).unwrap().2, 900);
        assert_eq!(StatsQuery::range(0, 30 * 86_400 * S, None).unwrap().2, 86_400);
        assert_eq!(StatsQuery::range(0, 600 * S, Some(300)).unwrap(), (0, 600 * S, 300));
        for (from, to, step) in [
            (5, 5, None),
            (6, 5, None),
            (0, 32 * 86_400 * S, None),
            (0, 3_600 * S, Some(30)),
            (0, 3_600 * S, Some(90)),
            (0, 2 * 86_400 * S, Some(60)),
        ] {
            assert!(StatsQuery::range(from, to, step).is_err(), "{from} {to} {step:?}");
        }
    }
}
