//! Store conformance for statistics (part of [`super::conformance::run_all`]): the sketches written
//! with the spans answer within the stated accuracy of what the raw spans say, counts, errors and
//! SLA shares at the SLA thresholds exactly, per bucket and per group; services and suggestions; projects stay apart.
//! Queries the sketches cannot answer are answered from a scan of the spans, just as exactly, and
//! a query both can answer gets the same answer from either.

use std::collections::BTreeMap;

use tracex_core::{KeyValue, Resource, SpanData, Status, StatusCode};

use super::conformance::{batch, request, span, tid};
use super::{AttributeFilter, Store};
use crate::stats::ladder::threshold_index;
use crate::stats::query::{QUANTILES, Source, Stat, StatsAnswer, StatsQuery, answer, services};
use crate::stats::scan::{MAX_SCAN_SPANS, SCAN_TRACE_LOOKBACK_NS, answer_from_spans};
use crate::stats::{MINUTE_NS, RELATIVE_ACCURACY, Share, StatFilter, suggest};
use crate::store::common::render_value;

/// A whole minute in 2025, a multiple of three minutes (the 180 s steps below align to it).
const T0: u64 = 29_166_669 * MINUTE_NS;
const MINUTES: u64 = 3;

/// A long-tailed duration (ns), 0.05 ms to ≈ 60 s, from the xorshift state `x`.
fn long_tailed(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    let e = (*x % 1_000_000) as f64 / 1e6;
    (50_000.0 * (e * 14.0).exp()) as u64
}

/// The test spans: `(service, span)`; long-tailed durations from 0.05 ms to ~60 s, errors, two
/// networks, in `MINUTES` minutes.
fn spans() -> Vec<(&'static str, SpanData)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::new();
    for i in 0..1_800u32 {
        let mut duration = long_tailed(&mut x);
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

/// A query over the test spans' `MINUTES` at `step` seconds, with the 250 ms SLA.
fn query(project: &str, step: u64) -> StatsQuery {
    let (from_ns, to_ns, step_seconds) = StatsQuery::range(T0, T0 + MINUTES * MINUTE_NS, Some(step)).unwrap();
    StatsQuery { project: project.into(), from_ns, to_ns, step_seconds, sla_ms: Some(250.0), ..StatsQuery::default() }
}

fn stats(store: &dyn Store, project: &str, step: u64, tweak: impl FnOnce(&mut StatsQuery)) -> StatsAnswer {
    let mut q = query(project, step);
    tweak(&mut q);
    let rows = store.stat_rows(&q.sketch_filter().expect("a query the sketches answer")).unwrap();
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
    let hourly_rows = a.query.sketch_filter().unwrap();
    assert_eq!(hourly_rows.resolution, 60);
    assert_eq!(a.groups.len(), 3);
    for g in &a.groups {
        assert_eq!(g.buckets.len(), 1);
        check(&g.total, &group(&g.service, &g.name), 250.0, &format!("hourly {}", g.name));
    }
    let hourly = store.stat_rows(&hourly_rows).unwrap();
    assert!(hourly.iter().all(|r| r.minute % 60 == 0), "hourly rows start on the hour");
    assert_eq!(hourly.len(), 6, "(3 operations × 2 statuses) rows for the hour");
    assert_eq!(hourly.iter().map(|r| r.count).sum::<u64>(), 1_800);

    // Grouped by network, filtered by status and network.
    let a = stats(store, p, 180, |q| {
        q.group_by = Some("x402.network".into());
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
        q.attributes = vec![AttributeFilter { key: "x402.network".into(), value: "solana".into() }];
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

// === statistics from a scan ===

/// The scan's test spans, four to a trace, in `MINUTES` minutes from `T0`: `(service, span)` (no
/// `service.name` for a third of them); long-tailed durations with some exactly at the bounds the
/// queries below use (1 ms, 250 ms); errors; attributes `x402.network` (a dimension),
/// `http.route` (indexed for searches, not a dimension), `customer.tier` (neither; absent from
/// every fifth span) and an integer `retry.count`. The first trace starts ten minutes before the
/// range: its other spans are in it.
fn scan_test_spans() -> Vec<(Option<&'static str>, SpanData)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::new();
    for i in 0..1_200u32 {
        let mut duration = long_tailed(&mut x);
        if i % 10 == 0 {
            duration = [1_000_000, 249_999_999, 250_000_000, 250_000_001][(i / 10 % 4) as usize];
        }
        let start = if i == 0 { T0 - 10 * MINUTE_NS } else { T0 + u64::from(i) * (MINUTES * MINUTE_NS / 1_200) };
        let (service, name) = match i % 3 {
            0 => (Some("facilitator"), "verify"),
            1 => (Some("facilitator"), "settle"),
            _ => (None, "POST /pay"),
        };
        let mut s = span(tid(63, i / 4), i % 4 + 1, None, name, start, start + duration);
        s.attributes = vec![
            KeyValue::new("x402.network", if x % 5 == 0 { "solana" } else { "base" }),
            KeyValue::new("http.route", if i % 2 == 0 { "/pay" } else { "/verify" }),
            KeyValue::new("retry.count", i64::from(i / 7 % 3)),
        ];
        if i % 5 != 0 {
            s.attributes.push(KeyValue::new("customer.tier", ["gold", "silver", "bronze"][(i / 3 % 3) as usize]));
        }
        if i % 17 == 0 {
            s.status = Status::error("boom");
        }
        out.push((service, s));
    }
    out
}

/// Stores `spans` in `project`, a batch per service (spans without one under a resource without
/// `service.name`).
fn store_spans(store: &dyn Store, project: &str, spans: &[(Option<&'static str>, SpanData)]) {
    let mut by_service: BTreeMap<Option<&str>, Vec<SpanData>> = BTreeMap::new();
    for (service, s) in spans {
        by_service.entry(*service).or_default().push(s.clone());
    }
    let batches: Vec<_> = by_service
        .into_iter()
        .enumerate()
        .map(|(i, (service, spans))| {
            let mut r = request(service.unwrap_or("none"), spans);
            if service.is_none() {
                r.resource_spans[0].resource = Resource::default();
            }
            batch(project, u32::try_from(i).unwrap() + 1, r)
        })
        .collect();
    store.commit(&batches).unwrap();
}

/// The answer of a query the sketches cannot answer, from the store's scan.
fn scanned(store: &dyn Store, project: &str, tweak: impl FnOnce(&mut StatsQuery)) -> StatsAnswer {
    let mut q = query(project, 60);
    tweak(&mut q);
    assert!(q.sketch_filter().is_none(), "{q:?} is a scan");
    let mut spans = Vec::new();
    store.scan_spans(&q.scan(), MAX_SCAN_SPANS, &mut |s| spans.push(s)).unwrap();
    answer_from_spans(q, spans).unwrap()
}

fn attr(key: &str, value: &str) -> AttributeFilter {
    AttributeFilter { key: key.into(), value: value.into() }
}

/// Checks a scan's answer against the exact statistics of the spans in the range that satisfy
/// `keep`, grouped by service, name and (with `group_by`) the attribute's value as text.
fn check_scan(
    a: &StatsAnswer,
    spans: &[(Option<&str>, SpanData)],
    keep: impl Fn(Option<&str>, &SpanData) -> bool,
    group_by: Option<&str>,
    what: &str,
) {
    let mut want: BTreeMap<(String, String, Option<String>), Vec<&SpanData>> = BTreeMap::new();
    let mut text = String::new();
    for (service, s) in spans {
        let start = s.start_time_unix_nano;
        if !(T0..T0 + MINUTES * MINUTE_NS).contains(&start) || !keep(*service, s) {
            continue;
        }
        let group = match group_by {
            None => None,
            Some(k) => match s.attribute(k) {
                Some(v) if render_value(v, &mut text) => Some(text.clone()),
                _ => continue,
            },
        };
        want.entry((service.unwrap_or("").to_owned(), s.name.to_string(), group)).or_default().push(s);
    }
    let got: Vec<_> = a.groups.iter().map(|g| (g.service.clone(), g.name.clone(), g.group.clone())).collect();
    assert_eq!(got, want.keys().cloned().collect::<Vec<_>>(), "{what}: the groups");
    assert_eq!(a.source, Source::Scan { spans: want.values().map(Vec::len).sum() }, "{what}: spans scanned");
    for (g, exact) in a.groups.iter().zip(want.values()) {
        let name = format!("{what}: {} {} {:?}", g.service, g.name, g.group);
        check(&g.total, exact, 250.0, &name);
        for (m, (_, b)) in g.buckets.iter().enumerate() {
            let minute: Vec<&SpanData> =
                exact.iter().copied().filter(|s| (s.start_time_unix_nano - T0) / MINUTE_NS == m as u64).collect();
            check(b, &minute, 250.0, &format!("{name} minute {m}"));
        }
    }
}

pub(crate) fn statistics_from_a_scan_match_the_raw_spans(store: &dyn Store) {
    store.migrate().unwrap();
    let (p, long) = ("conf-scan", "conf-scan-long");
    let all = scan_test_spans();
    store_spans(store, p, &all);
    let has = |s: &SpanData, k: &str, v: &str| {
        let mut text = String::new();
        s.attribute(k).is_some_and(|x| render_value(x, &mut text) && text == v)
    };

    // A duration window, bounds inclusive (spans sit exactly on both), in ns or ms alike.
    let a = scanned(store, p, |q| {
        q.min_duration_ns = Some(1_000_000);
        q.max_duration_ns = Some(250_000_000);
    });
    let window = |_: Option<&str>, s: &SpanData| (1_000_000..=250_000_000).contains(&s.duration_nanos());
    check_scan(&a, &all, window, None, "1..=250 ms");
    assert!(a.groups.iter().all(|g| g.total.max_ms.is_some_and(|m| m <= 250.0)));

    // An attribute outside the dimensions (and the search index), as text.
    let a = scanned(store, p, |q| q.attributes = vec![attr("customer.tier", "gold")]);
    check_scan(&a, &all, |_, s| has(s, "customer.tier", "gold"), None, "tier gold");

    // Two filters (an indexed key and an integer), with service "" (no `service.name`) and status.
    let a = scanned(store, p, |q| {
        q.attributes = vec![attr("http.route", "/pay"), attr("retry.count", "1")];
        q.service = Some(String::new());
    });
    let two =
        |svc: Option<&str>, s: &SpanData| svc.is_none() && has(s, "http.route", "/pay") && has(s, "retry.count", "1");
    check_scan(&a, &all, two, None, "route and retries");
    assert_eq!(a.groups.len(), 1);
    let a = scanned(store, p, |q| {
        q.attributes = vec![attr("http.route", "/verify"), attr("customer.tier", "silver")];
        q.status = Some(StatusCode::Error);
    });
    let errors = |_: Option<&str>, s: &SpanData| {
        s.status.code == StatusCode::Error && has(s, "http.route", "/verify") && has(s, "customer.tier", "silver")
    };
    check_scan(&a, &all, errors, None, "errors on /verify, silver");

    // Grouped by keys that are not dimensions: spans without the key are in no group.
    let a = scanned(store, p, |q| q.group_by = Some("customer.tier".into()));
    check_scan(&a, &all, |_, _| true, Some("customer.tier"), "by tier");
    assert_eq!(a.groups.iter().filter(|g| g.name == "verify").count(), 3);
    let a = scanned(store, p, |q| {
        q.group_by = Some("retry.count".into());
        q.attributes = vec![attr("x402.network", "solana")];
        q.name = Some("settle".into());
    });
    let solana = |_: Option<&str>, s: &SpanData| &*s.name == "settle" && has(s, "x402.network", "solana");
    check_scan(&a, &all, solana, Some("retry.count"), "solana settles by retries");

    // A query the sketches answer, and the same through the scan (a window that excludes
    // nothing): the same answer, group by group, bucket by bucket.
    type Tweak = fn(&mut StatsQuery);
    let tweaks: [(&str, Tweak); 4] = [
        ("everything", |_| {}),
        ("by network", |q| q.group_by = Some("x402.network".into())),
        ("solana errors", |q| {
            q.attributes = vec![attr("x402.network", "solana")];
            q.status = Some(StatusCode::Error);
        }),
        ("no service", |q| q.service = Some(String::new())),
    ];
    for (what, tweak) in tweaks {
        let sketches = stats(store, p, 60, tweak);
        assert_eq!(sketches.source, Source::Sketches, "{what}");
        let scan = scanned(store, p, |q| {
            tweak(q);
            q.min_duration_ns = Some(0);
        });
        assert!(!sketches.groups.is_empty(), "{what}");
        assert_eq!(scan.groups, sketches.groups, "{what}: the scan answers as the sketches do");
    }

    // The cap: at most one span past it, whether the database or the attribute check stops.
    let (from_ns, to_ns) = (T0, T0 + MINUTES * MINUTE_NS);
    let base = StatsQuery { project: p.into(), from_ns, to_ns, step_seconds: 60, ..StatsQuery::default() };
    let capped = |tweak: &dyn Fn(&mut StatsQuery), cap: usize| {
        let mut q = base.clone();
        tweak(&mut q);
        let mut handed = 0;
        let read = store.scan_spans(&q.scan(), cap, &mut |_| handed += 1).unwrap();
        assert_eq!(read, handed, "the count returned is the spans handed over");
        read
    };
    let in_range = all.iter().filter(|(_, s)| s.start_time_unix_nano >= T0).count();
    let window: &dyn Fn(&mut StatsQuery) = &|q| q.min_duration_ns = Some(0);
    let attribute: &dyn Fn(&mut StatsQuery) = &|q| q.attributes = vec![attr("http.route", "/pay")];
    let grouped: &dyn Fn(&mut StatsQuery) = &|q| q.group_by = Some("customer.tier".into());
    for tweak in [window, attribute, grouped] {
        assert_eq!(capped(tweak, 5), 6, "cap + 1");
        assert_eq!(capped(tweak, 0), 1);
    }
    assert_eq!(capped(window, in_range), in_range, "exactly the cap: nothing past it");
    assert_eq!(capped(window, MAX_SCAN_SPANS), in_range);

    // Other projects and unknown ones see nothing.
    assert!(scanned(store, "conf-scan-nobody", |q| q.min_duration_ns = Some(0)).groups.is_empty());

    // Spans are reached through their traces: those of a trace that started more than the
    // lookback before the range are not scanned (documented), those of one within it are.
    let t = tid(64, 0);
    let early = T0 - SCAN_TRACE_LOOKBACK_NS - 60 * MINUTE_NS;
    let recent = T0 - 30 * MINUTE_NS;
    let traces = vec![
        (Some("svc"), span(t, 1, None, "root", early, T0 + 2 * MINUTE_NS)),
        (Some("svc"), span(t, 2, Some(1), "child", T0 + 30_000_000_000, T0 + 30_005_000_000)),
        (Some("svc"), span(tid(64, 1), 1, None, "root", recent, T0 + MINUTE_NS)),
        (Some("svc"), span(tid(64, 1), 2, Some(1), "child", T0 + 40_000_000_000, T0 + 40_005_000_000)),
    ];
    store_spans(store, long, &traces);
    let children = |a: &StatsAnswer| a.groups.iter().find(|g| g.name == "child").map_or(0, |g| g.total.count);
    assert_eq!(children(&stats(store, long, 60, |_| {})), 2, "the sketches count both children");
    assert_eq!(children(&scanned(store, long, |q| q.min_duration_ns = Some(0))), 1, "the scan, the recent one");
}

/// Retention: chunks delete the project's traces that started before the cutoff (spans, index
/// rows, counters) and its statistics rows before the cutoff's minute; newer ones and other
/// projects stay.
pub(crate) fn retention_deletes_old_spans_and_their_statistics(store: &dyn Store) {
    use super::TraceQuery;
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
