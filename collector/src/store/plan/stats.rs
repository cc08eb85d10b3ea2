//! The statistics part of a commit (see [`crate::stats`] for what the rows mean): the spans a
//! commit inserted are added up per statistics key in memory, the rows already stored under those
//! keys are read (and, in PostgreSQL, locked) inside the transaction, merged with, and written
//! back; keys not stored yet are inserted. Both stores run this same step.

use std::borrow::Cow;
use std::fmt::Write as _;

// Seeded per map, as std's SipHash is, and cheaper a key (`add` −26 % instructions, callgrind).
use foldhash::HashMap;
use tracex_core::{SpanData, Value};

use crate::stats::{DIMENSION_KEYS, LatencySketch, MAX_DIMENSION_VALUE_LEN, minute_of};
use crate::store::StoreError;
use crate::store::common::{ns, render_value};

/// A `span_stats` key; the field order is the table's primary key order, so sorted keys are
/// written in index order (and PostgreSQL locks them in one order: no deadlock between writers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StatKey<'a> {
    pub(crate) project_id: i64,
    /// `""` for the base row, else one of [`DIMENSION_KEYS`].
    pub(crate) dim_key: &'static str,
    /// Minutes a row covers: [`MINUTE`] or [`HOUR`].
    pub(crate) resolution: i64,
    /// First minute the row covers (a multiple of `resolution`).
    pub(crate) minute: i64,
    /// `""` when the resource has no `service.name`.
    pub(crate) service: &'a str,
    pub(crate) name: &'a str,
    pub(crate) status: i32,
    /// Borrowed from the span when the attribute is a string (no allocation per span).
    pub(crate) dim_value: Cow<'a, str>,
}

/// Resolution of the per-minute rows.
pub(crate) const MINUTE: i64 = 1;
/// Resolution of the hourly rollup rows: the same spans again, an hour a row, so that long ranges
/// (steps of whole hours) read 60 times fewer rows.
pub(crate) const HOUR: i64 = 60;

/// A row as stored: the exact aggregates and the encoded sketch.
#[derive(Debug)]
pub(crate) struct StoredStat {
    pub(crate) count: i64,
    pub(crate) max_ns: i64,
    pub(crate) last_start_ns: i64,
    pub(crate) sketch: Vec<u8>,
}

/// A row to insert or write back.
#[derive(Debug)]
pub(crate) struct StatRow<'a> {
    pub(crate) key: StatKey<'a>,
    pub(crate) stat: StoredStat,
}

/// This commit's spans per key.
#[derive(Default)]
struct Delta {
    count: i64,
    max_ns: i64,
    last_start_ns: i64,
    sketch: LatencySketch,
}

/// `(project id, minute, service, name, status)`: the part of a key every span has.
type BaseKey<'a> = (i64, i64, &'a str, &'a str, i32);

/// Dimension values a group searches linearly before it uses a map: a group (one minute of one
/// operation) usually sees a handful.
const LINEAR_DIMS: usize = 16;

/// One base key's spans: the base row and its dimension rows.
#[derive(Default)]
struct Group<'a> {
    base: Delta,
    dims: Vec<(&'static str, Cow<'a, str>, Delta)>,
    more: HashMap<(&'static str, Cow<'a, str>), Delta>,
}

/// Adds up a commit's inserted spans per statistics key. One hash lookup per span (its base key);
/// its dimension values are found in the group's short list (this step runs for every stored span,
/// so it must stay cheap next to inserting the span).
#[derive(Default)]
pub(crate) struct StatsAcc<'a> {
    groups: HashMap<BaseKey<'a>, Group<'a>>,
    text: String,
}

impl<'a> StatsAcc<'a> {
    /// Counts one inserted span of project `project_id`.
    pub(crate) fn add(&mut self, project_id: i64, service: Option<&'a str>, span: &'a SpanData) {
        let base = (
            project_id,
            minute_of(span.start_time_unix_nano),
            service.unwrap_or(""),
            &*span.name,
            span.status.code as i32,
        );
        let duration = span.duration_nanos();
        let start = ns(span.start_time_unix_nano);
        let group = self.groups.entry(base).or_default();
        count(&mut group.base, duration, start);
        for dim in DIMENSION_KEYS {
            let Some(value) = dimension_value(span.attribute(dim), &mut self.text) else {
                continue;
            };
            let delta = match group.dims.iter().position(|(k, v, _)| k == dim && *v == value) {
                Some(i) => &mut group.dims[i].2,
                None if group.dims.len() < LINEAR_DIMS => {
                    group.dims.push((dim, value, Delta::default()));
                    let last = group.dims.len() - 1;
                    &mut group.dims[last].2
                }
                None => group.more.entry((dim, value)).or_default(),
            };
            count(delta, duration, start);
        }
    }

    /// Every key touched with its spans, sorted by key: the minute rows and their hourly rollups.
    pub(crate) fn finish(self) -> Result<StatDeltas<'a>, StoreError> {
        let mut out = Vec::new();
        for ((project_id, minute, service, name, status), g) in self.groups {
            let key = |dim_key, dim_value| StatKey {
                project_id,
                dim_key,
                resolution: MINUTE,
                minute,
                service,
                name,
                status,
                dim_value,
            };
            out.push((key("", Cow::Borrowed("")), g.base));
            out.extend(g.dims.into_iter().map(|(k, v, d)| (key(k, v), d)));
            out.extend(g.more.into_iter().map(|((k, v), d)| (key(k, v), d)));
        }
        let mut hours: std::collections::BTreeMap<StatKey<'a>, Delta> = std::collections::BTreeMap::new();
        for (k, d) in &out {
            let hour = StatKey { resolution: HOUR, minute: k.minute - k.minute.rem_euclid(HOUR), ..k.clone() };
            hours.entry(hour).or_default().absorb(d)?;
        }
        out.extend(hours);
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(StatDeltas(out))
    }
}

/// An attribute's value as a dimension row keys it: rendered as the trace filters render it
/// (borrowed when a string), `None` when the span has no such value (absent, not a scalar) or it
/// is longer than [`MAX_DIMENSION_VALUE_LEN`]. `text` is scratch space. The commit's rows and the
/// statistics scan's groups (`plan::scan`) both key by it.
pub(crate) fn dimension_value<'v>(v: Option<&'v Value>, text: &mut String) -> Option<Cow<'v, str>> {
    let value = match v? {
        Value::String(v) => Cow::Borrowed(&**v),
        v if render_value(v, text) => Cow::Owned(text.clone()),
        _ => return None,
    };
    (value.len() <= MAX_DIMENSION_VALUE_LEN).then_some(value)
}

impl Delta {
    fn absorb(&mut self, other: &Self) -> Result<(), StoreError> {
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.last_start_ns = self.last_start_ns.max(other.last_start_ns);
        self.sketch.merge(&other.sketch).map_err(|e| StoreError::Database(e.to_string()))
    }
}

fn count(d: &mut Delta, duration: u64, start: i64) {
    d.count += 1;
    d.max_ns = d.max_ns.max(ns(duration));
    d.last_start_ns = d.last_start_ns.max(start);
    d.sketch.add_ns(duration);
}

/// A commit's statistics per key, sorted by key.
pub(crate) struct StatDeltas<'a>(Vec<(StatKey<'a>, Delta)>);

impl<'a> StatDeltas<'a> {
    /// The keys, sorted.
    pub(crate) fn keys(&self) -> Vec<StatKey<'a>> {
        self.0.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The rows to write given what each key has stored (`stored`, in [`Self::keys`] order):
    /// `(new rows, merged existing rows)`, both in key order.
    pub(crate) fn rows(
        self,
        stored: Vec<Option<StoredStat>>,
    ) -> Result<(Vec<StatRow<'a>>, Vec<StatRow<'a>>), StoreError> {
        if stored.len() != self.0.len() {
            return Err(StoreError::Database("statistics lookup returned the wrong number of rows".into()));
        }
        let (mut fresh, mut existing) = (Vec::new(), Vec::new());
        for ((key, d), old) in self.0.into_iter().zip(stored) {
            match old {
                None => fresh.push(StatRow {
                    key,
                    stat: StoredStat {
                        count: d.count,
                        max_ns: d.max_ns,
                        last_start_ns: d.last_start_ns,
                        sketch: d.sketch.encode(),
                    },
                }),
                Some(old) => {
                    let mut sketch = LatencySketch::decode(&old.sketch)
                        .map_err(|e| StoreError::Corrupt(format!("statistics row: {e}")))?;
                    sketch.merge(&d.sketch).map_err(|e| StoreError::Corrupt(format!("statistics row: {e}")))?;
                    existing.push(StatRow {
                        key,
                        stat: StoredStat {
                            count: old.count + d.count,
                            max_ns: old.max_ns.max(d.max_ns),
                            last_start_ns: old.last_start_ns.max(d.last_start_ns),
                            sketch: sketch.encode(),
                        },
                    });
                }
            }
        }
        Ok((fresh, existing))
    }
}

// === reading ===

/// A parameter of a statistics read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StatParam<'a> {
    Int(i64),
    Text(&'a str),
}

/// The columns a statistics read selects, in [`crate::stats::StatRecord`] order (the sketch or
/// NULL last).
const STAT_COLUMNS: &str = "minute, service, name, status, dim_value, count, max_ns, last_start_ns";

/// The `SELECT` reading the rows `f` selects for project `project_id`, with its parameters;
/// `placeholder(i)` spells parameter `i` (0-based) in the store's dialect. One index range:
/// `(project_id, dim_key, minute)` leads the primary key.
pub(crate) fn stat_rows_sql<'a>(
    f: &'a crate::stats::StatFilter,
    project_id: i64,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<StatParam<'a>>) {
    let mut params = vec![
        StatParam::Int(project_id),
        StatParam::Text(&f.dim_key),
        StatParam::Int(f.resolution),
        StatParam::Int(f.from_minute),
        StatParam::Int(f.to_minute),
    ];
    // A NULL of the column's type in both dialects (a bare NULL is text to PostgreSQL).
    let sketch = if f.with_sketches { "sketch" } else { "CASE WHEN 1 = 0 THEN sketch END" };
    let mut sql = format!(
        "SELECT {STAT_COLUMNS}, {sketch} FROM span_stats WHERE project_id = {} AND dim_key = {} \
         AND resolution = {} AND minute >= {} AND minute < {}",
        placeholder(0),
        placeholder(1),
        placeholder(2),
        placeholder(3),
        placeholder(4)
    );
    let mut add = |column: &str, p: StatParam<'a>| {
        params.push(p);
        let _ = write!(sql, " AND {column} = {}", placeholder(params.len() - 1));
    };
    if let Some(s) = &f.service {
        add("service", StatParam::Text(s));
    }
    if let Some(n) = &f.name {
        add("name", StatParam::Text(n));
    }
    if let Some(s) = f.status {
        add("status", StatParam::Int(i64::from(s)));
    }
    if let Some(v) = &f.dim_value {
        add("dim_value", StatParam::Text(v));
    }
    (sql, params)
}

/// The `SELECT` of span bodies for attribute suggestions: the spans of the project's newest
/// `max` traces (by start), `max` spans at most, only `service`'s when the query has one.
/// Parameters: project id, `max`, then the service if any (`placeholder` as in [`stat_rows_sql`]).
pub(crate) fn recent_spans_sql(with_service: bool, placeholder: impl Fn(usize) -> String) -> String {
    let service = if with_service { format!(" WHERE s.service = {}", placeholder(2)) } else { String::new() };
    format!(
        "SELECT s.body FROM (SELECT id FROM traces WHERE project_id = {p} ORDER BY start_ns DESC LIMIT {m}) t \
         JOIN spans s ON s.trace_seq = t.id{service} LIMIT {m}",
        p = placeholder(0),
        m = placeholder(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::common::bench_data::{Rng, realistic_request};

    /// CPU cost of the statistics step per span, without the database:
    /// `cargo test -p tracex-collector --lib plan::stats -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing"]
    fn statistics_cost_per_span() {
        let mut rng = Rng(7);
        let requests: Vec<_> = (0..100)
            .map(|i| realistic_request(&mut rng, "facilitator", 1_750_000_000_000_000_000 + i * 1_000_000))
            .collect();
        let spans: Vec<&SpanData> = requests
            .iter()
            .flat_map(|r| r.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter())))
            .collect();
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            let mut acc = StatsAcc::default();
            for s in &spans {
                acc.add(1, Some("facilitator"), s);
            }
            let deltas = acc.finish().unwrap();
            let n = deltas.keys().len();
            let (fresh, _) = deltas.rows((0..n).map(|_| None).collect()).unwrap();
            let dt = t0.elapsed();
            println!(
                "{} spans -> {} rows in {:.1} ms = {:.0} ns/span",
                spans.len(),
                fresh.len(),
                dt.as_secs_f64() * 1e3,
                dt.as_secs_f64() * 1e9 / spans.len() as f64
            );
        }
    }
}
