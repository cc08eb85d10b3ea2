//! Store conformance: duration filters against the exact answer, on traces that grow over many
//! commits, and the per-trace longest span (`traces.max_duration_ns`) that narrows them — kept at
//! commit and filled in by the migration that adds it. Run against both stores.

use std::collections::HashMap;

use tracex_core::TraceId;

use super::conformance::{batch, request, span, tid};
use super::{Store, TraceOrder, TraceQuery, TraceSummary};

const PROJECT: &str = "conf-duration";
const SERVICES: [&str; 3] = ["api", "facilitator", "rpc"];

/// Raw SQL on a store's database.
pub(crate) struct RawDb<'a> {
    /// Runs statements.
    pub exec: &'a dyn Fn(&str),
    /// Runs a query answering one integer.
    pub count: &'a dyn Fn(&str) -> i64,
    /// Takes the schema back to before the longest-span column (the index and column dropped, the
    /// start index as it was, the migration no longer recorded as done).
    pub downgrade: &'a str,
}

/// A span of the dataset: its trace (index), service and duration.
struct Row {
    trace: usize,
    service: &'static str,
    start: u64,
    end: u64,
}

/// A small deterministic generator (xorshift64*), so both stores see the same data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// 40 traces, trace `i` starting at `(i + 1) × 100,000` ns with its root (`api`), then 2–8 spans of
/// the three services lasting 0–60,000 ns (often longer than the root); every span reaches the
/// store in a batch of one service holding spans of several traces, one batch per commit, in an
/// order that makes most traces grow over several commits (the longest span arriving first,
/// last, or in between). Returns the rows (committed once per store).
fn dataset(store: &dyn Store) -> (Vec<TraceId>, Vec<Row>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let traces: Vec<TraceId> = (0..40).map(|i| tid(70, i)).collect();
    let mut rows = Vec::new();
    let mut spans = Vec::new();
    for (i, t) in traces.iter().enumerate() {
        let start = (i as u64 + 1) * 100_000;
        let root_end = start + 1_000 + rng.below(30_000);
        rows.push(Row { trace: i, service: "api", start, end: root_end });
        spans.push((0usize, span(*t, 1, None, "request", start, root_end)));
        for j in 0..2 + rng.below(7) {
            let service_idx = usize::try_from(rng.below(3)).unwrap_or(0);
            let s0 = start + 1 + rng.below(5_000);
            // Every tenth span lasts exactly 20,000 ns: the query thresholds hit equal durations.
            let d = if rng.below(10) == 0 { 20_000 } else { rng.below(60_001) };
            let id = u32::try_from(j).unwrap_or(0) + 2;
            rows.push(Row { trace: i, service: SERVICES[service_idx], start: s0, end: s0 + d });
            spans.push((service_idx, span(*t, id, Some(1), &format!("op{j}"), s0, s0 + d)));
        }
    }
    if store.batch_count(PROJECT).unwrap() == 0 {
        // Shuffled, then cut into batches of 1–6 spans of one service each.
        for k in (1..spans.len()).rev() {
            let o = usize::try_from(rng.below(k as u64 + 1)).unwrap_or(0);
            spans.swap(k, o);
        }
        let mut n = 0;
        for (service_idx, service) in SERVICES.iter().enumerate() {
            let mine: Vec<_> = spans.iter().filter(|(s, _)| *s == service_idx).map(|(_, sp)| sp.clone()).collect();
            let mut rest = &mine[..];
            while !rest.is_empty() {
                let take = usize::try_from(1 + rng.below(6)).unwrap_or(1).min(rest.len());
                n += 1;
                store.commit(&[batch(PROJECT, n, request(service, rest[..take].to_vec()))]).unwrap();
                rest = &rest[take..];
            }
        }
    }
    (traces, rows)
}

/// Every trace of `q`, walking all pages.
fn walk(store: &dyn Store, q: &TraceQuery) -> Vec<TraceSummary> {
    let mut q = q.clone();
    let mut all = Vec::new();
    loop {
        let page = store.list_traces(&q).unwrap();
        all.extend(page.traces);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return all,
        }
    }
}

/// The queries checked: each service or none, thresholds below, at and above the stored
/// durations (`20,000` is held by many spans), with and without an upper bound and a start
/// window, both orders, pages of 3.
fn queries() -> Vec<TraceQuery> {
    let mut out = Vec::new();
    for service in [None, Some("api"), Some("facilitator"), Some("rpc")] {
        for (min, max) in [
            (Some(0), None),
            (Some(1), None),
            (Some(19_999), None),
            (Some(20_000), None),
            (Some(20_001), None),
            (Some(45_000), None),
            (Some(59_000), None),
            (Some(60_001), None),
            (Some(10_000), Some(20_000)),
            (None, Some(5_000)),
        ] {
            for order in [TraceOrder::Newest, TraceOrder::Longest] {
                for window in [None, Some((1_000_000, 3_000_000))] {
                    out.push(TraceQuery {
                        project: PROJECT.to_owned(),
                        service: service.map(str::to_owned),
                        min_duration_ns: min,
                        max_duration_ns: max,
                        start_from_ns: window.map(|w| w.0),
                        start_to_ns: window.map(|w| w.1),
                        order,
                        limit: 3,
                        ..TraceQuery::default()
                    });
                }
            }
        }
    }
    out
}

/// Checks every query of [`queries`] against the answer computed from the rows: a trace is listed
/// when one of its spans meets every filter; newest first by start, longest first by extent.
fn check_against_the_rows(store: &dyn Store, traces: &[TraceId], rows: &[Row]) {
    let mut bounds: HashMap<usize, (u64, u64)> = HashMap::new();
    for r in rows {
        let b = bounds.entry(r.trace).or_insert((u64::MAX, 0));
        *b = (b.0.min(r.start), b.1.max(r.end));
    }
    for q in queries() {
        let mut want: Vec<usize> = (0..traces.len())
            .filter(|i| {
                let (start, _) = bounds[i];
                q.start_from_ns.is_none_or(|f| start >= f)
                    && q.start_to_ns.is_none_or(|t| start < t)
                    && rows.iter().any(|r| {
                        let d = r.end - r.start;
                        r.trace == *i
                            && q.service.as_deref().is_none_or(|s| s == r.service)
                            && q.min_duration_ns.is_none_or(|m| d >= m)
                            && q.max_duration_ns.is_none_or(|m| d <= m)
                    })
            })
            .collect();
        let got = walk(store, &q);
        let got_ids: Vec<TraceId> = got.iter().map(|t| t.trace_id).collect();
        match q.order {
            TraceOrder::Newest => {
                want.sort_by_key(|i| std::cmp::Reverse(bounds[i].0));
                let want: Vec<TraceId> = want.iter().map(|i| traces[*i]).collect();
                assert_eq!(got_ids, want, "{q:?}");
            }
            TraceOrder::Longest => {
                // Ties in extent come in the store's sequence order: compare as sets, and check
                // that extents never increase.
                let mut sorted = got_ids.clone();
                sorted.sort_unstable();
                let mut want: Vec<TraceId> = want.iter().map(|i| traces[*i]).collect();
                want.sort_unstable();
                assert_eq!(sorted, want, "{q:?}");
                let extents: Vec<u64> = got.iter().map(|t| t.end_unix_nano - t.start_unix_nano).collect();
                assert!(extents.windows(2).all(|w| w[0] >= w[1]), "{q:?}: {extents:?}");
            }
        }
    }
}

/// Duration filters give exactly the traces one of whose spans meets every filter, on traces whose
/// spans (the longest among them) arrived over several commits.
pub(crate) fn duration_filters_match_the_exact_answer(store: &dyn Store) {
    let (traces, rows) = dataset(store);
    check_against_the_rows(store, &traces, &rows);
}

/// Rows whose longest span differs from their spans' (the SQL reads the same in both stores).
const MISMATCHED: &str = "SELECT count(*) FROM traces t \
     WHERE t.max_duration_ns <> (SELECT max(s.duration_ns) FROM spans s WHERE s.trace_seq = t.id)";

/// The stored longest span of every trace is its spans' maximum, kept so over the commits that grew
/// it; on a database from before the column (the schema taken back), a store opened on it (`open`)
/// fills it in from the stored spans as it migrates, and the filters are exact again.
pub(crate) fn longest_span_is_kept_and_filled_in_by_the_migration(open: &dyn Fn() -> Box<dyn Store>, raw: &RawDb<'_>) {
    let store = open();
    store.migrate().unwrap();
    let (traces, rows) = dataset(&*store);
    assert_eq!((raw.count)(MISMATCHED), 0, "kept at commit");
    assert_eq!((raw.count)("SELECT count(*) FROM traces"), 40);
    drop(store);

    (raw.exec)(raw.downgrade);
    let store = open();
    store.migrate().unwrap();
    let store = &*store;
    assert_eq!((raw.count)(MISMATCHED), 0, "filled in by the migration");
    assert_eq!((raw.count)("SELECT count(*) FROM traces WHERE max_duration_ns = 9223372036854775807"), 0);
    check_against_the_rows(store, &traces, &rows);
}
