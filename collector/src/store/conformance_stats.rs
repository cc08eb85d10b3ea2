//! Store conformance for statistics (part of [`super::conformance::run_all`]): the sketches written
//! with the spans answer within the stated accuracy of what the raw spans say, counts, errors and
//! SLA shares at the SLA thresholds exactly, per bucket and per group; services and suggestions; projects stay apart.

use std::collections::BTreeMap;

use tracex_core::{KeyValue, SpanData, Status, StatusCode};

use super::Store;
use super::conformance::{batch, request, span, tid};
use crate::stats::ladder::threshold_index;
use crate::stats::query::{QUANTILES, Stat, StatsAnswer, StatsQuery, answer, services};
use crate::stats::{MINUTE_NS, RELATIVE_ACCURACY, Share, StatFilter, suggest};

/// A whole minute in 2025, a multiple of three minutes (the 180 s steps below align to it).
const T0: u64 = 29_166_669 * MINUTE_NS;
const MINUTES: u64 = 3;

/// The test spans: `(service, span)`; long-tailed durations from 0.05 ms to ~60 s, errors, two
/// networks, in `MINUTES` minutes.
fn spans() -> Vec<(&'static str, SpanData)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::new();
    for i in 0..1_800u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let e = (x % 1_000_000) as f64 / 1e6;
        let mut duration = (50_000.0 * (e * 14.0).exp()) as u64;
        if i % 10 == 0 {
            // Around the 250 ms SLA threshold, closer than the sketch can tell apart: only exact
            // counts put these on the right side.
            duration = [249_000_000, 250_000_000, 250_000_001, 251_000_000][(i / 10 % 4) as usize];
        }
        let start = T0 + u64::from(i) * (MINUTES * MINUTE_NS / 1_800);
        let (service, name) = match i % 3 {
            0 => ("facilitator", "verify"),
            1 => ("facilitator", "settle"),
            _ => ("gateway", "POST /pay"),
        };
        let mut s = span(tid(60, i / 4), i % 4 + 1, None, name, start, start + duration);
        s.attributes = vec![
            KeyValue::new("x402.network", if x % 5 == 0 { "solana" } else { "base" }),
            KeyValue::new("x402.scheme", "exact"),
            KeyValue::new("x402.payer", format!("0x{i:04x}")),
        ];
        if i % 17 == 0 {
            s.status = Status::error("boom");
        }
        out.push((service, s));
    }
    out
}

fn stats(store: &dyn Store, project: &str, step: u64, tweak: impl FnOnce(&mut StatsQuery)) -> StatsAnswer {
    let (from_ns, to_ns, step_seconds) = StatsQuery::range(T0, T0 + MINUTES * MINUTE_NS, Some(step)).unwrap();
    let mut q = StatsQuery {
        project: project.into(),
        from_ns,
        to_ns,
        step_seconds,
        service: None,
        name: None,
        status: None,
        dim_key: None,
        dim_value: None,
        group_by: false,
        sla_ms: Some(250.0),
    };
    tweak(&mut q);
    let rows = store.stat_rows(&q.filter()).unwrap();
    answer(q, rows).unwrap()
}

/// Checks `got` against the exact statistics of `spans`.
fn check(got: &Stat, spans: &[&SpanData], sla_ms: f64, what: &str) {
    let mut ms: Vec<f64> = spans.iter().map(|s| s.duration_nanos() as f64 / 1e6).collect();
    ms.sort_by(f64::total_cmp);
    let errors = spans.iter().filter(|s| s.status.code == StatusCode::Error).count() as u64;
    assert_eq!((got.count, got.errors), (ms.len() as u64, errors), "{what}: counts are exact");
    if ms.is_empty() {
        assert_eq!((got.quantiles_ms, got.max_ms, got.sla_compliance), ([None; 5], None, None), "{what}");
        return;
    }
    assert_eq!(got.max_ms, Some(ms[ms.len() - 1]), "{what}: the maximum is exact");
    for (q, v) in QUANTILES.iter().zip(got.quantiles_ms) {
        let want = ms[(q * (ms.len() - 1) as f64) as usize];
        let v = v.unwrap();
        assert!((v - want).abs() <= want * RELATIVE_ACCURACY + 1e-9, "{what}: q{q} = {v}, exact {want}");
    }
    let share = |t_ms: f64| {
        spans.iter().filter(|s| s.duration_nanos() as f64 <= t_ms * 1e6).count() as f64 / spans.len() as f64
    };
    let sla = got.sla_compliance.unwrap();
    if threshold_index(sla_ms).is_some() {
        assert_eq!(sla, Share { value: share(sla_ms), exact: true }, "{what}: the SLA share at a threshold is exact");
    } else {
        let (lo, hi) = (share(sla_ms / (1.0 + RELATIVE_ACCURACY)), share(sla_ms / (1.0 - RELATIVE_ACCURACY)));
        assert!(lo <= sla.value && sla.value <= hi, "{what}: SLA share {sla:?} outside [{lo}, {hi}]");
    }
}

pub(crate) fn statistics_match_the_raw_spans(store: &dyn Store) {
    store.migrate().unwrap();
    let (p, other) = ("conf-stats", "conf-stats-other");
    let all = spans();
    // Six commits, each touching every minute: later commits merge into stored rows.
    for (n, chunk) in all.chunks(300).enumerate() {
        let n = u32::try_from(n).unwrap();
        let mut by_service: BTreeMap<&str, Vec<SpanData>> = BTreeMap::new();
        for (service, s) in chunk.iter().rev() {
            by_service.entry(service).or_default().push(s.clone());
        }
        let batches: Vec<_> = by_service
            .into_iter()
            .enumerate()
            .map(|(i, (svc, ss))| batch(p, n * 10 + i as u32, request(svc, ss)))
            .collect();
        store.commit(&batches).unwrap();
        // A retry of the same batches stores nothing and so counts nothing.
        store.commit(&batches).unwrap();
    }
    // Another project, same service and names: never mixed in.
    let theirs: Vec<SpanData> = all.iter().take(50).map(|(_, s)| s.clone()).collect();
    store.commit(&[batch(other, 1, request("facilitator", theirs))]).unwrap();

    let group = |service: &str, name: &str| -> Vec<&SpanData> {
        all.iter().filter(|(sv, s)| *sv == service && &*s.name == name).map(|(_, s)| s).collect()
    };
    fn in_minute<'a>(v: &[&'a SpanData], m: u64) -> Vec<&'a SpanData> {
        v.iter().copied().filter(|s| (s.start_time_unix_nano - T0) / MINUTE_NS == m).collect()
    }

    // Grouped by service and name, per minute.
    let a = stats(store, p, 60, |_| {});
    let names: Vec<(&str, &str)> = a.groups.iter().map(|g| (g.service.as_str(), g.name.as_str())).collect();
    assert_eq!(names, [("facilitator", "settle"), ("facilitator", "verify"), ("gateway", "POST /pay")]);
    for g in &a.groups {
        let exact = group(&g.service, &g.name);
        check(&g.total, &exact, 250.0, &format!("{} {}", g.service, g.name));
        assert_eq!(g.buckets.len() as u64, MINUTES);
        for (m, (start, b)) in g.buckets.iter().enumerate() {
            assert_eq!(*start, T0 + m as u64 * MINUTE_NS);
            check(b, &in_minute(&exact, m as u64), 250.0, &format!("{} minute {m}", g.name));
        }
    }

    // A threshold that is not one of the SLA thresholds: within the sketch's bound, marked so.
    let a = stats(store, p, 60, |q| q.sla_ms = Some(333.0));
    for g in &a.groups {
        check(&g.total, &group(&g.service, &g.name), 333.0, &format!("{} {} at 333 ms", g.service, g.name));
        assert!(!g.total.sla_compliance.unwrap().exact);
    }

    // One bucket of three minutes; a wider range has empty buckets with null percentiles.
    let a = stats(store, p, 180, |q| q.service = Some("facilitator".into()));
    assert_eq!(a.groups.len(), 2);
    assert_eq!(a.groups[0].buckets.len(), 1);
    check(&a.groups[0].buckets[0].1, &group("facilitator", "settle"), 250.0, "one bucket");
    let a = stats(store, p, 60, |q| {
        q.to_ns += 2 * MINUTE_NS;
        q.name = Some("verify".into());
    });
    assert_eq!(a.groups.len(), 1);
    check(&a.groups[0].buckets[4].1, &[], 250.0, "empty bucket");

    // Whole-hour steps read the hourly rollups: the same answer from one row per key and hour.
    let a = stats(store, p, 3_600, |_| {});
    assert_eq!(a.query.filter().resolution, 60);
    assert_eq!(a.groups.len(), 3);
    for g in &a.groups {
        assert_eq!(g.buckets.len(), 1);
        check(&g.total, &group(&g.service, &g.name), 250.0, &format!("hourly {}", g.name));
    }
    let hourly = store.stat_rows(&a.query.filter()).unwrap();
    assert!(hourly.iter().all(|r| r.minute % 60 == 0), "hourly rows start on the hour");
    assert_eq!(hourly.len(), 6, "(3 operations × 2 statuses) rows for the hour");
    assert_eq!(hourly.iter().map(|r| r.count).sum::<u64>(), 1_800);

    // Grouped by network, filtered by status and network.
    let a = stats(store, p, 180, |q| {
        q.dim_key = Some("x402.network".into());
        q.group_by = true;
        q.name = Some("verify".into());
    });
    let groups: Vec<Option<&str>> = a.groups.iter().map(|g| g.group.as_deref()).collect();
    assert_eq!(groups, [Some("base"), Some("solana")]);
    for g in &a.groups {
        let net = g.group.as_deref().unwrap();
        let exact: Vec<&SpanData> = group("facilitator", "verify")
            .into_iter()
            .filter(|s| s.attribute("x402.network").is_some_and(|v| v.as_str() == Some(net)))
            .collect();
        check(&g.total, &exact, 250.0, net);
    }
    let a = stats(store, p, 180, |q| {
        q.dim_key = Some("x402.network".into());
        q.dim_value = Some("solana".into());
        q.status = Some(StatusCode::Error);
    });
    for g in &a.groups {
        let exact: Vec<&SpanData> = group(&g.service, &g.name)
            .into_iter()
            .filter(|s| {
                s.status.code == StatusCode::Error
                    && s.attribute("x402.network").is_some_and(|v| v.as_str() == Some("solana"))
            })
            .collect();
        check(&g.total, &exact, 250.0, "solana errors");
        assert!(g.total.error_rate() == 1.0);
    }

    // Projects are isolated; an unknown project has nothing.
    let a = stats(store, other, 180, |_| {});
    assert_eq!(a.groups.iter().map(|g| g.total.count).sum::<u64>(), 50);
    assert!(stats(store, "conf-stats-nobody", 180, |_| {}).groups.is_empty());

    // Services: every span name with its count and last start.
    let rows = store
        .stat_rows(&StatFilter {
            project: p.into(),
            from_minute: crate::stats::minute_of(T0),
            to_minute: crate::stats::minute_of(T0) + 10,
            ..StatFilter::default()
        })
        .unwrap();
    assert!(rows.iter().all(|r| r.sketch.is_none()), "a services read skips the sketches");
    let svcs = services(&rows);
    assert_eq!(svcs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["facilitator", "gateway"]);
    let last = |service: &str, name: &str| group(service, name).iter().map(|s| s.start_time_unix_nano).max().unwrap();
    assert_eq!(
        svcs[0].operations,
        [
            ("settle".to_owned(), 600, last("facilitator", "settle")),
            ("verify".to_owned(), 600, last("facilitator", "verify"))
        ]
    );
    assert_eq!(svcs[0].last_seen_ns, last("facilitator", "settle").max(last("facilitator", "verify")));

    // Suggestions over recent spans: keys with the number of spans carrying them, top values.
    let recent = store.recent_spans(p, None, 10_000).unwrap();
    assert_eq!(recent.len(), all.len());
    let keys = suggest::keys(&recent, "x402.");
    assert_eq!(
        keys,
        [("x402.network".to_owned(), 1_800), ("x402.payer".to_owned(), 1_800), ("x402.scheme".to_owned(), 1_800)]
    );
    let solana =
        all.iter().filter(|(_, s)| s.attribute("x402.network").and_then(|v| v.as_str()) == Some("solana")).count();
    assert_eq!(
        suggest::values(&recent, "x402.network", "", 10),
        [("base".to_owned(), (1_800 - solana) as u64), ("solana".to_owned(), solana as u64)]
    );
    assert_eq!(suggest::values(&recent, "x402.network", "so", 10).len(), 1);
    let gateway = store.recent_spans(p, Some("gateway"), 10_000).unwrap();
    assert_eq!(gateway.len(), 600);
    assert_eq!(store.recent_spans(p, None, 100).unwrap().len(), 100, "the scan is bounded");
    assert_eq!(store.recent_spans(other, None, 10_000).unwrap().len(), 50);
    assert!(store.recent_spans("conf-stats-nobody", None, 10).unwrap().is_empty());
}

/// Retention: chunks delete the project's traces that started before the cutoff (spans, index
/// rows, counters) and its statistics rows before the cutoff's minute; newer ones and other
/// projects stay.
pub(crate) fn retention_deletes_old_spans_and_their_statistics(store: &dyn Store) {
    use super::{AttributeFilter, TraceQuery};
    store.migrate().unwrap();
    let (p, other) = ("conf-ttl", "conf-ttl-other");
    let old = T0;
    let new = T0 + 100 * MINUTE_NS;
    let net = |mut s: SpanData| {
        s.attributes = vec![KeyValue::new("x402.network", "base")];
        s
    };
    let old_spans: Vec<SpanData> = (0..5u32)
        .flat_map(|t| {
            (1..=3u32).map(move |i| {
                net(span(
                    tid(61, t),
                    i,
                    None,
                    "verify",
                    old + u64::from(t) * MINUTE_NS,
                    old + u64::from(t) * MINUTE_NS + 5,
                ))
            })
        })
        .collect();
    let new_spans: Vec<SpanData> = (1..=2u32).map(|i| net(span(tid(62, 0), i, None, "verify", new, new + 7))).collect();
    let mut all = old_spans.clone();
    all.extend(new_spans.iter().cloned());
    store.commit(&[batch(p, 1, request("svc", all.clone()))]).unwrap();
    store.commit(&[batch(other, 1, request("svc", all))]).unwrap();
    assert_eq!(store.span_count(p).unwrap(), 17);

    let mut calls = 0;
    loop {
        calls += 1;
        let e = store.expire(p, new - MINUTE_NS, 2, 2).unwrap();
        assert!(e.traces <= 2 && calls < 20, "{e:?}");
        if e.done {
            break;
        }
    }
    assert!(calls >= 3, "bounded chunks: 5 old traces at 2 a call took {calls} calls");
    let q = |project: &str| TraceQuery {
        project: project.into(),
        attributes: vec![AttributeFilter { key: "x402.network".into(), value: "base".into() }],
        limit: 100,
        ..TraceQuery::default()
    };
    let listed: Vec<_> = store.list_traces(&q(p)).unwrap().traces.iter().map(|t| t.trace_id).collect();
    assert_eq!(listed, [tid(62, 0)]);
    assert!(store.get_trace(p, tid(61, 0)).unwrap().is_empty());
    assert_eq!(store.get_trace(p, tid(62, 0)).unwrap().len(), 2);
    assert_eq!(store.span_count(p).unwrap(), 2);
    let minutes = |project: &str, dim: &str| -> Vec<(i64, u64)> {
        let mut rows: Vec<(i64, u64)> = store
            .stat_rows(&StatFilter {
                project: project.into(),
                dim_key: dim.into(),
                from_minute: 0,
                to_minute: i64::MAX,
                ..StatFilter::default()
            })
            .unwrap()
            .iter()
            .map(|r| (r.minute - crate::stats::minute_of(T0), r.count))
            .collect();
        rows.sort_unstable();
        rows
    };
    assert_eq!(minutes(p, ""), [(100, 2)], "old statistics went with their spans");
    assert_eq!(minutes(p, "x402.network"), [(100, 2)]);
    let hours = |project: &str| -> u64 {
        let f = StatFilter { project: project.into(), resolution: 60, to_minute: i64::MAX, ..StatFilter::default() };
        store.stat_rows(&f).unwrap().iter().map(|r| r.count).sum()
    };
    assert_eq!((hours(p), hours(other)), (2, 17), "the old spans' hour went; the new spans' hour stays");
    // The other project keeps everything.
    assert_eq!(store.span_count(other).unwrap(), 17);
    assert!((0..5).all(|t| store.get_trace(other, tid(61, t)).unwrap().len() == 3));
    assert_eq!(minutes(other, "").len(), 6);
    // Nothing left to do; an unknown project is done at once.
    assert_eq!(
        store.expire(p, new - MINUTE_NS, 2, 2).unwrap(),
        crate::store::Expired { done: true, ..Default::default() }
    );
    assert!(store.expire("conf-ttl-nobody", new, 2, 2).unwrap().done);
}
