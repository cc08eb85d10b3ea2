//! Store conformance suite: the behaviour every [`Store`] must have, written against the trait only,
//! so the SQLite store and the PostgreSQL store run the very same checks.
//!
//! Call [`run_all`] on a freshly opened (not yet migrated) store. Every check uses its own project
//! names, so the checks do not interfere with each other and may share one database.

use tracex_core::{
    Event, InstrumentationScope, KeyValue, Link, Resource, ResourceSpans, ScopeSpans, SpanData, SpanId, SpanKind,
    Status, StatusCode, TraceId, TraceRequest, Value,
};

use super::{
    ApiKeyRecord, AttributeFilter, CommitOutcome, KeyScope, NewBatch, Store, StoreError, StoredSpan, TraceOrder,
    TraceQuery, TraceSummary,
};

/// Runs every check on `store` (which must not have been migrated yet, or migrated any number of
/// times: migration is idempotent).
pub(crate) fn run_all(store: &dyn Store) {
    migrate_is_idempotent(store);
    ping_answers(store);
    empty_commit_is_fine(store);
    round_trip_is_exact(store);
    duplicate_batches_write_nothing(store);
    repeated_spans_are_stored_once(store);
    projects_are_isolated(store);
    list_filters(store);
    list_filter_combinations(store);
    pagination_walks_every_trace_once(store);
    pagination_with_decoded_filters(store);
    limit_is_clamped(store);
    bad_cursor_is_invalid_query(store);
    longest_first_walks_every_trace_once(store);
    super::conformance_duration::duration_filters_match_the_exact_answer(store);
    trace_summary(store);
    api_keys(store);
    retention_settings_round_trip(store);
    super::conformance_stats::statistics_match_the_raw_spans(store);
    super::conformance_stats::statistics_from_a_scan_match_the_raw_spans(store);
    super::conformance_stats::retention_deletes_old_spans_and_their_statistics(store);
    super::conformance_audit::every_stored_batch_is_a_leaf_of_a_verifiable_log(store);
    super::conformance_audit::export_cursor_is_leased_and_advanced_by_its_holder(store);
}

// === builders ===

/// A trace id unique to (`tag`, `n`).
pub(crate) fn tid(tag: u8, n: u32) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[1..5].copy_from_slice(&n.to_be_bytes());
    b[15] = 1;
    TraceId(b)
}

/// A span id unique to `n` within a trace.
pub(crate) fn sid(n: u32) -> SpanId {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[7] = 1;
    SpanId(b)
}

/// A plain span.
pub(crate) fn span(trace: TraceId, id: u32, parent: Option<u32>, name: &str, start: u64, end: u64) -> SpanData {
    SpanData {
        trace_id: trace,
        span_id: sid(id),
        parent_span_id: parent.map(sid),
        flags: 1,
        name: name.to_owned().into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..SpanData::default()
    }
}

/// A request with one resource (`service`) and one scope holding `spans`.
pub(crate) fn request(service: &str, spans: Vec<SpanData>) -> TraceRequest {
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new(service.to_owned()),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope { name: "tracex".into(), version: "0.1.0".into(), ..Default::default() },
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A request with one resource per `(service, spans)` group.
fn request_multi(groups: Vec<(&str, Vec<SpanData>)>) -> TraceRequest {
    TraceRequest {
        resource_spans: groups
            .into_iter()
            .flat_map(|(service, spans)| request(service, spans).resource_spans)
            .collect(),
    }
}

/// A batch of `request` for `project` with batch id derived from `n`.
/// A [`CommitOutcome::Stored`] as [`leafless`] leaves it.
pub(crate) fn stored(spans: usize, over_cap: usize) -> CommitOutcome {
    CommitOutcome::Stored { spans, over_cap, leaf_index: None }
}

/// A commit's outcomes with the leaf indexes zeroed, once checked: the stored batches of one call
/// take consecutive leaves in call order (other tests share the store, so where they start varies).
pub(crate) fn leafless(out: Vec<CommitOutcome>) -> Vec<CommitOutcome> {
    let leaves: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            CommitOutcome::Stored { leaf_index, .. } => Some(leaf_index.expect("the audit log is on")),
            _ => None,
        })
        .collect();
    assert!(leaves.windows(2).all(|w| w[1] == w[0] + 1), "leaves {leaves:?}");
    out.into_iter()
        .map(|o| match o {
            CommitOutcome::Stored { spans, over_cap, .. } => stored(spans, over_cap),
            other => other,
        })
        .collect()
}

pub(crate) fn batch(project: &str, n: u32, request: TraceRequest) -> NewBatch {
    let mut batch_id = [0u8; 16];
    batch_id[..4].copy_from_slice(&n.to_be_bytes());
    batch_id[15] = 0xb;
    NewBatch {
        project: project.to_owned(),
        batch_id,
        key_id: [7; 32],
        instance_id: [1, 2, 3, 4, 5, 6, 7, 8],
        sequence: u64::from(n),
        sdk_name: "tracex-rust".into(),
        sdk_version: "0.1.0".into(),
        created_at_unix_nano: 1_700_000_000_000_000_000,
        received_at_unix_nano: 1_700_000_000_100_000_000,
        envelope_sha256: [n.to_be_bytes()[3]; 32],
        origin: crate::audit::leaf::Origin::Sealed,
        prepared: None,
        request,
    }
}

fn with_attrs(mut s: SpanData, attrs: Vec<KeyValue>) -> SpanData {
    s.attributes = attrs;
    s
}

fn with_status(mut s: SpanData, code: StatusCode) -> SpanData {
    s.status = Status { code, message: if code == StatusCode::Error { "failed".into() } else { "".into() } };
    s
}

fn query(project: &str) -> TraceQuery {
    TraceQuery { project: project.to_owned(), limit: 1000, ..TraceQuery::default() }
}

fn attr(key: &str, value: &str) -> AttributeFilter {
    AttributeFilter { key: key.to_owned(), value: value.to_owned() }
}

/// The trace ids of every page of `q`, in order (a store may return short pages with a cursor).
fn ids(store: &dyn Store, q: &TraceQuery) -> Vec<TraceId> {
    walk(store, q).iter().map(|t| t.trace_id).collect()
}

/// Every trace of `q`, walking all pages; asserts each page is at most `limit` long.
fn walk(store: &dyn Store, q: &TraceQuery) -> Vec<TraceSummary> {
    let mut q = q.clone();
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let page = store.list_traces(&q).unwrap();
        assert!(page.traces.len() <= q.limit, "page longer than the limit");
        all.extend(page.traces);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return all,
        }
    }
    panic!("pagination does not end");
}

fn expected_spans(req: &TraceRequest) -> Vec<StoredSpan> {
    let mut v: Vec<StoredSpan> = req
        .spans()
        .map(|(r, s, span)| StoredSpan { resource: r.clone().into(), scope: s.clone().into(), span: span.clone() })
        .collect();
    v.sort_by_key(|s| (s.span.start_time_unix_nano, s.span.span_id));
    v
}

// === checks ===

fn migrate_is_idempotent(store: &dyn Store) {
    store.migrate().unwrap();
    store.migrate().unwrap();
}

fn ping_answers(store: &dyn Store) {
    store.ping().unwrap();
}

fn empty_commit_is_fine(store: &dyn Store) {
    assert_eq!(store.commit(&[]).unwrap(), Vec::new());
    assert_eq!(store.span_count("conf-never").unwrap(), 0);
    assert_eq!(store.batch_count("conf-never").unwrap(), 0);
    assert!(store.get_trace("conf-never", tid(0, 0)).unwrap().is_empty());
    let page = store.list_traces(&query("conf-never")).unwrap();
    assert!(page.traces.is_empty());
    assert_eq!(page.next_cursor, None);
}

/// Every `AnyValue` kind, nested.
fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("s", "text"),
        KeyValue::new("s.empty", ""),
        KeyValue::new("s.unicode", "zürich ✓ 支付"),
        KeyValue::new("b.true", true),
        KeyValue::new("b.false", false),
        KeyValue::new("i", -42i64),
        KeyValue::new("i.zero", 0i64),
        KeyValue::new("i.max", i64::MAX),
        KeyValue::new("i.min", i64::MIN),
        KeyValue::new("d", 1.5f64),
        KeyValue::new("d.zero", 0.0f64),
        KeyValue::new("d.tiny", 5e-324f64),
        KeyValue::new("d.inf", f64::INFINITY),
        KeyValue::new("bytes", vec![0u8, 1, 255]),
        KeyValue::new("bytes.empty", Vec::<u8>::new()),
        KeyValue::new("arr", vec!["a", "b"]),
        KeyValue::new("arr.empty", Value::Array(vec![])),
        KeyValue::new(
            "arr.mixed",
            Value::Array(vec![
                Value::Int(1),
                Value::String("two".into()),
                Value::Array(vec![Value::Bool(true), Value::Bytes(vec![9])]),
                Value::Map(vec![KeyValue::new("k", 3.25f64)]),
            ]),
        ),
        KeyValue::new("map.empty", Value::Map(vec![])),
        KeyValue::new(
            "map",
            Value::Map(vec![
                KeyValue::new("inner", "v"),
                KeyValue::new("deeper", Value::Map(vec![KeyValue::new("list", vec![1i64, 2, 3])])),
                KeyValue::new("dup", 1i64),
                KeyValue::new("dup", 2i64),
            ]),
        ),
        KeyValue::new("x402.amount", "1000000"),
        KeyValue::new("repeated", 1i64),
        KeyValue::new("repeated", "again"),
    ]
}

fn round_trip_is_exact(store: &dyn Store) {
    let project = "conf-roundtrip";
    let t = tid(1, 1);
    let other = tid(1, 2);

    let mut root = span(t, 1, None, "checkout", 1_000, 9_000);
    root.kind = SpanKind::Server;
    root.trace_state = "vendor=a,other=b".into();
    root.flags = 0x301;
    root.attributes = every_value();
    root.dropped_attributes_count = 3;
    root.events = vec![
        Event {
            time_unix_nano: 1_500,
            name: "retry".into(),
            attributes: vec![KeyValue::new("attempt", 2i64), KeyValue::new("nested", Value::Map(every_value()))],
            dropped_attributes_count: 1,
        },
        Event { time_unix_nano: 0, name: "".into(), attributes: vec![], dropped_attributes_count: 0 },
    ];
    root.dropped_events_count = 4;
    root.links = vec![
        Link {
            trace_id: other,
            span_id: sid(77),
            trace_state: "k=v".into(),
            attributes: vec![KeyValue::new("link.kind", "follows")],
            dropped_attributes_count: 2,
            flags: 0x101,
        },
        Link::default(),
    ];
    root.dropped_links_count = 5;
    root.status = Status::error("insufficient funds");

    let mut unspecified = span(t, 2, Some(1), "rpc", 2_000, 3_000);
    unspecified.kind = SpanKind::Unspecified;
    unspecified.flags = 0;
    unspecified.status = Status::ok();

    let mut client = span(t, 3, Some(1), "eth_sendRawTransaction", 3_500, u64::MAX);
    client.kind = SpanKind::Client;
    client.status = Status { code: StatusCode::Unset, message: "odd but allowed".into() };

    let mut producer = span(t, 4, Some(3), "enqueue", 4_000, 4_000);
    producer.kind = SpanKind::Producer;
    let mut consumer = span(t, 5, Some(4), "dequeue", 5_000, 6_000);
    consumer.kind = SpanKind::Consumer;
    consumer.parent_span_id = Some(SpanId([0xff; 8]));

    let resource_a = Resource {
        attributes: {
            let mut a = vec![KeyValue::new("service.name", "api"), KeyValue::new("service.version", "1.2.3")];
            a.extend(every_value());
            a
        },
        dropped_attributes_count: 6,
    };
    let scope_a1 = InstrumentationScope {
        name: "tracex".into(),
        version: "0.1.0".into(),
        attributes: vec![KeyValue::new("scope.attr", vec![true, false])],
        dropped_attributes_count: 7,
    };
    let scope_a2 = InstrumentationScope::default();
    let resource_b = Resource { attributes: vec![], dropped_attributes_count: 0 };

    let req = TraceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource_a.clone(),
                scope_spans: vec![
                    ScopeSpans { scope: scope_a1.clone(), spans: vec![client, root], schema_url: String::new() },
                    ScopeSpans { scope: scope_a2, spans: vec![unspecified], schema_url: String::new() },
                ],
                schema_url: String::new(),
            },
            ResourceSpans {
                resource: resource_b,
                scope_spans: vec![ScopeSpans {
                    scope: scope_a1,
                    spans: vec![consumer, producer],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    };
    let outcomes = store.commit(&[batch(project, 1, req.clone())]).unwrap();
    assert_eq!(leafless(outcomes), vec![stored(5, 0)]);

    let got = store.get_trace(project, t).unwrap();
    let want = expected_spans(&req);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "span {} differs", w.span.name);
    }
    assert!(store.get_trace(project, other).unwrap().is_empty(), "a linked trace is not stored");
    assert_eq!(store.span_count(project).unwrap(), 5);
    assert_eq!(store.batch_count(project).unwrap(), 1);

    // The same resource in a second batch is read back identically.
    let t2 = tid(1, 3);
    let mut s = span(t2, 1, None, "again", 10, 20);
    s.attributes = vec![KeyValue::new("k", "v")];
    let req2 = TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource_a,
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope::default(),
                spans: vec![s],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    store.commit(&[batch(project, 2, req2.clone())]).unwrap();
    assert_eq!(store.get_trace(project, t2).unwrap(), expected_spans(&req2));
}

fn duplicate_batches_write_nothing(store: &dyn Store) {
    let project = "conf-dup";
    let t = tid(2, 1);
    let spans = vec![
        span(t, 1, None, "root", 100, 400),
        span(t, 2, Some(1), "a", 150, 200),
        span(t, 3, Some(1), "b", 250, 300),
    ];
    let b1 = batch(project, 1, request("svc", spans));

    let out = store.commit(&[b1.clone(), b1.clone()]).unwrap();
    assert_eq!(leafless(out), vec![stored(3, 0), CommitOutcome::Duplicate]);
    assert_eq!(store.commit(std::slice::from_ref(&b1)).unwrap(), vec![CommitOutcome::Duplicate]);

    // Same batch id with a different envelope: a conflict, nothing of it stored, whether the
    // first copy was stored earlier or earlier in the same commit.
    let t_other = tid(2, 2);
    let mut b1_other = batch(project, 1, request("svc", vec![span(t_other, 1, None, "other", 1, 2)]));
    b1_other.sequence = 999;
    b1_other.envelope_sha256 = [0xee; 32];
    let fresh = batch(project, 2, request("svc", vec![span(tid(2, 3), 1, None, "fresh", 5, 6)]));
    let mut fresh_other = fresh.clone();
    fresh_other.envelope_sha256 = [0xef; 32];
    assert_eq!(
        leafless(store.commit(&[b1_other, fresh, fresh_other]).unwrap()),
        vec![CommitOutcome::Conflict, stored(1, 0), CommitOutcome::Conflict]
    );
    assert!(store.get_trace(project, t_other).unwrap().is_empty());

    assert_eq!(store.span_count(project).unwrap(), 4);
    assert_eq!(store.batch_count(project).unwrap(), 2);
    assert_eq!(store.get_trace(project, t).unwrap().len(), 3);
    let page = store.list_traces(&query(project)).unwrap();
    assert_eq!(page.traces.len(), 2);
    let summary = page.traces.iter().find(|s| s.trace_id == t).unwrap();
    assert_eq!(summary.span_count, 3);
}

/// Run with a store whose `max_spans_per_trace` is 4: spans past a trace's cap are counted, not
/// stored, in arrival order, across commits and within one; other traces are unaffected.
pub(crate) fn spans_past_the_trace_cap_are_counted_not_stored(store: &dyn Store) {
    store.migrate().unwrap();
    let project = "conf-cap";
    let (t, other) = (tid(12, 1), tid(12, 2));
    let first = request("svc", (1..=3).map(|i| span(t, i, None, "a", u64::from(i), 10)).collect());
    assert_eq!(leafless(store.commit(&[batch(project, 1, first)]).unwrap()), vec![stored(3, 0)]);
    // One more fits; 5, 6 and (in the next batch of the same commit) 7 are over; the other trace is
    // unaffected.
    let second = request(
        "svc",
        vec![
            span(t, 4, None, "b", 4, 10),
            span(t, 5, None, "c", 5, 10),
            span(other, 1, None, "d", 1, 10),
            span(t, 6, None, "e", 6, 10),
        ],
    );
    let third = request("svc", vec![span(t, 7, None, "f", 7, 10), span(other, 2, None, "g", 2, 10)]);
    assert_eq!(
        leafless(store.commit(&[batch(project, 2, second), batch(project, 3, third)]).unwrap()),
        vec![stored(2, 2), stored(1, 1)]
    );
    let names: Vec<String> = store.get_trace(project, t).unwrap().iter().map(|s| s.span.name.to_string()).collect();
    assert_eq!(names, ["a", "a", "a", "b"]);
    assert_eq!(store.get_trace(project, other).unwrap().len(), 2);
    assert_eq!(store.span_count(project).unwrap(), 6);
    let summary = store.list_traces(&query(project)).unwrap().traces;
    assert_eq!(summary.iter().find(|s| s.trace_id == t).unwrap().span_count, 4);
}

fn repeated_spans_are_stored_once(store: &dyn Store) {
    let project = "conf-respan";
    let t = tid(3, 1);
    let a = span(t, 1, None, "root", 100, 900);
    let b = with_status(span(t, 2, Some(1), "child", 200, 300), StatusCode::Error);
    let c = span(t, 3, Some(1), "late", 400, 500);
    assert_eq!(
        leafless(store.commit(&[batch(project, 1, request("svc", vec![a.clone(), b.clone()]))]).unwrap()),
        vec![stored(2, 0)]
    );
    // A retry under a new batch id repeats both spans and adds one; then the exact same spans
    // again, in the same call.
    let out = store
        .commit(&[
            batch(project, 2, request("svc", vec![a.clone(), b.clone(), c.clone()])),
            batch(project, 3, request("svc", vec![c.clone(), a.clone()])),
        ])
        .unwrap();
    assert_eq!(leafless(out), vec![stored(1, 0), stored(0, 0)]);

    // A repeated span replaces nothing: the first copy stays.
    let mut renamed = a.clone();
    renamed.name = "renamed".into();
    store.commit(&[batch(project, 4, request("other-svc", vec![renamed]))]).unwrap();

    let got = store.get_trace(project, t).unwrap();
    assert_eq!(got.iter().map(|s| s.span.clone()).collect::<Vec<_>>(), vec![a, b, c]);
    assert!(got.iter().all(|s| s.resource.service_name() == Some("svc")));
    assert_eq!(store.span_count(project).unwrap(), 3);
    assert_eq!(store.batch_count(project).unwrap(), 4);
    let page = store.list_traces(&query(project)).unwrap();
    assert_eq!(page.traces.len(), 1);
    let s = &page.traces[0];
    assert_eq!((s.span_count, s.error_count), (3, 1));
    assert_eq!(s.root_name.as_deref(), Some("root"));
    assert_eq!(s.root_service.as_deref(), Some("svc"));
}

/// A commit that fails at any step (a fault injected through [`Store::fail_commits_at_step`], after
/// the earlier steps' statements ran in the transaction) stores nothing of any of its batches, and
/// the ids its transaction handed out are not reused from a cache afterwards.
pub(crate) fn a_failed_commit_stores_nothing_of_any_batch(store: &dyn Store) {
    store.migrate().unwrap();
    let (old, new) = ("conf-fault-old", "conf-fault-new");
    let (t0, t1, t2) = (tid(13, 0), tid(13, 1), tid(13, 2));
    let first = batch(old, 1, request("svc", vec![span(t0, 1, None, "root", 10, 90)]));
    store.commit(std::slice::from_ref(&first)).unwrap();
    // A retry (the duplicate path), a new project with a new resource and trace, and spans for an
    // existing trace and a new one with indexed attributes.
    let good = batch(new, 2, request("fault-service", vec![span(t1, 1, None, "ok", 1, 2)]));
    let bad = batch(
        old,
        3,
        request(
            "svc",
            vec![
                span(t0, 2, Some(1), "child", 20, 30),
                with_attrs(span(t2, 1, None, "paid", 3, 4), vec![KeyValue::new("x402.network", "base")]),
            ],
        ),
    );
    let calls = [first, good, bad];
    let leaves = store.audit_size().unwrap();
    let unchanged = |why: &str| {
        assert_eq!(store.audit_size().unwrap(), leaves, "{why}: the audit log");
        assert_eq!((store.batch_count(old).unwrap(), store.span_count(old).unwrap()), (1, 1), "{why}");
        assert_eq!((store.batch_count(new).unwrap(), store.span_count(new).unwrap()), (0, 0), "{why}");
        assert_eq!(store.get_trace(old, t0).unwrap().len(), 1, "{why}");
        assert!(store.get_trace(new, t1).unwrap().is_empty(), "{why}");
        assert!(store.get_trace(old, t2).unwrap().is_empty(), "{why}");
        let listed = store.list_traces(&query(old)).unwrap().traces;
        assert_eq!(
            listed.iter().map(|s| (s.trace_id, s.span_count, s.end_unix_nano)).collect::<Vec<_>>(),
            [(t0, 1, 90)],
            "{why}"
        );
        assert!(store.list_traces(&query(new)).unwrap().traces.is_empty(), "{why}");
        let mut q = query(old);
        q.attributes = vec![attr("x402.network", "base")];
        assert!(ids(store, &q).is_empty(), "{why}");
        let stats = |project: &str| {
            let f = crate::stats::StatFilter { project: project.into(), to_minute: 1, ..Default::default() };
            store.stat_rows(&f).unwrap().iter().map(|r| r.count).sum::<u64>()
        };
        assert_eq!((stats(old), stats(new)), (1, 0), "{why}: statistics hold the stored spans only");
    };
    let mut failures = 0;
    let out = loop {
        store.fail_commits_at_step(Some(failures + 1));
        match store.commit(&calls) {
            Ok(out) => break out,
            Err(err) => {
                assert!(matches!(err, StoreError::Database(ref m) if m.contains("injected")), "{err}");
                failures += 1;
                unchanged(&format!("after a fault at step {failures}"));
            }
        }
    };
    store.fail_commits_at_step(None);
    assert!(failures >= 10, "the commit plan has more steps than {failures}");
    assert_eq!(leafless(out), [CommitOutcome::Duplicate, stored(1, 0), stored(2, 0)]);
    let got = store.get_trace(new, t1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].resource.service_name(), Some("fault-service"));
    assert_eq!(store.get_trace(old, t0).unwrap().len(), 2);
    assert_eq!((store.batch_count(old).unwrap(), store.span_count(old).unwrap()), (2, 3));
    let mut q = query(old);
    q.attributes = vec![attr("x402.network", "base")];
    assert_eq!(ids(store, &q), [t2]);
    // The project and resource ids the store remembers now are the committed ones.
    let t3 = tid(13, 3);
    let next = batch(new, 4, request("fault-service", vec![span(t3, 1, None, "again", 5, 6)]));
    assert_eq!(leafless(store.commit(&[next]).unwrap()), [stored(1, 0)]);
    assert_eq!(store.get_trace(new, t3).unwrap()[0].resource.service_name(), Some("fault-service"));
    assert_eq!((store.batch_count(new).unwrap(), store.span_count(new).unwrap()), (2, 2));
}

fn projects_are_isolated(store: &dyn Store) {
    let (pa, pb) = ("conf-iso-a", "conf-iso-b");
    let t = tid(4, 1);
    let only_a = tid(4, 2);
    // Same batch id and same trace/span ids in both projects: both are stored.
    let ba =
        batch(pa, 1, request("svc-a", vec![span(t, 1, None, "in-a", 10, 20), span(only_a, 1, None, "a2", 30, 40)]));
    let bb = batch(pb, 1, request("svc-b", vec![span(t, 1, None, "in-b", 15, 25)]));
    assert_eq!(leafless(store.commit(&[ba, bb]).unwrap()), vec![stored(2, 0), stored(1, 0)]);
    let a = store.get_trace(pa, t).unwrap();
    let b = store.get_trace(pb, t).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].span.name, "in-a");
    assert_eq!(b[0].span.name, "in-b");
    assert_eq!(b[0].resource.service_name(), Some("svc-b"));
    assert!(store.get_trace(pb, only_a).unwrap().is_empty());

    let list_b = store.list_traces(&query(pb)).unwrap();
    assert_eq!(list_b.traces.len(), 1);
    assert_eq!(list_b.traces[0].root_name.as_deref(), Some("in-b"));
    assert_eq!(list_b.traces[0].span_count, 1);
    assert_eq!(ids(store, &query(pa)), vec![only_a, t]);
    // Filters do not leak either.
    assert!(ids(store, &TraceQuery { span_name: Some("in-a".into()), ..query(pb) }).is_empty());
    assert!(ids(store, &TraceQuery { service: Some("svc-a".into()), ..query(pb) }).is_empty());

    assert_eq!(store.span_count(pa).unwrap(), 2);
    assert_eq!(store.span_count(pb).unwrap(), 1);
    assert_eq!(store.batch_count(pa).unwrap(), 1);
    assert_eq!(store.batch_count(pb).unwrap(), 1);
}

/// The dataset of the filter checks: four traces in project `conf-filter`.
///
/// | trace | start | spans (service, name, status, duration, attributes) |
/// |---|---|---|
/// | 1 | 1000 | api checkout Unset 900 {custom.tag=green}; facilitator settle Error 500 {x402.network=base, x402.attempt=2, http.response.status_code=502, custom.tag=blue} |
/// | 2 | 2000 | api checkout Ok 300; facilitator verify Unset 50 {x402.network=solana, x402.attempt=1, http.response.status_code=200, custom.tag=green} |
/// | 3 | 3000 | treasury refund Ok 10000 {x402.network=base, x402.attempt=1, x402.fee=0.5, retry.final=true} |
/// | 4 | 4000 | api checkout Unset 700 {custom.tag=blue}; facilitator settle Ok 100 {x402.network=base, x402.attempt=2} |
fn filter_dataset(store: &dyn Store) -> (&'static str, [TraceId; 4]) {
    let project = "conf-filter";
    let t = [tid(5, 1), tid(5, 2), tid(5, 3), tid(5, 4)];
    let t1 = request_multi(vec![
        (
            "api",
            vec![with_attrs(span(t[0], 1, None, "checkout", 1000, 1900), vec![KeyValue::new("custom.tag", "green")])],
        ),
        (
            "facilitator",
            vec![with_status(
                with_attrs(
                    span(t[0], 2, Some(1), "settle", 1100, 1600),
                    vec![
                        KeyValue::new("x402.network", "base"),
                        KeyValue::new("x402.attempt", 2i64),
                        KeyValue::new("http.response.status_code", 502i64),
                        KeyValue::new("custom.tag", "blue"),
                    ],
                ),
                StatusCode::Error,
            )],
        ),
    ]);
    let t2 = request_multi(vec![
        ("api", vec![with_status(span(t[1], 1, None, "checkout", 2000, 2300), StatusCode::Ok)]),
        (
            "facilitator",
            vec![with_attrs(
                span(t[1], 2, Some(1), "verify", 2100, 2150),
                vec![
                    KeyValue::new("x402.network", "solana"),
                    KeyValue::new("x402.attempt", 1i64),
                    KeyValue::new("http.response.status_code", 200i64),
                    KeyValue::new("custom.tag", "green"),
                ],
            )],
        ),
    ]);
    let t3 = request(
        "treasury",
        vec![with_status(
            with_attrs(
                span(t[2], 1, None, "refund", 3000, 13000),
                vec![
                    KeyValue::new("x402.network", "base"),
                    KeyValue::new("x402.attempt", 1i64),
                    KeyValue::new("x402.fee", 0.5f64),
                    KeyValue::new("retry.final", true),
                ],
            ),
            StatusCode::Ok,
        )],
    );
    let t4 = request_multi(vec![
        (
            "api",
            vec![with_attrs(span(t[3], 1, None, "checkout", 4000, 4700), vec![KeyValue::new("custom.tag", "blue")])],
        ),
        (
            "facilitator",
            vec![with_status(
                with_attrs(
                    span(t[3], 2, Some(1), "settle", 4100, 4200),
                    vec![KeyValue::new("x402.network", "base"), KeyValue::new("x402.attempt", 2i64)],
                ),
                StatusCode::Ok,
            )],
        ),
    ]);
    if store.batch_count(project).unwrap() == 0 {
        // Out of start order, over two calls: arrival order must not matter.
        store.commit(&[batch(project, 4, t4), batch(project, 2, t2)]).unwrap();
        store.commit(&[batch(project, 3, t3), batch(project, 1, t1)]).unwrap();
    }
    (project, t)
}

fn list_filters(store: &dyn Store) {
    let (project, [t1, t2, t3, t4]) = filter_dataset(store);
    let q = query(project);
    let run = |q: TraceQuery| ids(store, &q);

    assert_eq!(run(q.clone()), vec![t4, t3, t2, t1], "newest start first");

    // service
    assert_eq!(run(TraceQuery { service: Some("facilitator".into()), ..q.clone() }), vec![t4, t2, t1]);
    assert_eq!(run(TraceQuery { service: Some("treasury".into()), ..q.clone() }), vec![t3]);
    assert_eq!(run(TraceQuery { service: Some("nope".into()), ..q.clone() }), vec![]);
    // span name
    assert_eq!(run(TraceQuery { span_name: Some("settle".into()), ..q.clone() }), vec![t4, t1]);
    assert_eq!(run(TraceQuery { span_name: Some("checkout".into()), ..q.clone() }), vec![t4, t2, t1]);
    assert_eq!(run(TraceQuery { span_name: Some("settl".into()), ..q.clone() }), vec![], "names match exactly");
    // status
    assert_eq!(run(TraceQuery { status: Some(StatusCode::Error), ..q.clone() }), vec![t1]);
    assert_eq!(run(TraceQuery { status: Some(StatusCode::Ok), ..q.clone() }), vec![t4, t3, t2]);
    assert_eq!(run(TraceQuery { status: Some(StatusCode::Unset), ..q.clone() }), vec![t4, t2, t1]);
    // duration (inclusive bounds)
    assert_eq!(run(TraceQuery { min_duration_ns: Some(10_000), ..q.clone() }), vec![t3]);
    assert_eq!(run(TraceQuery { min_duration_ns: Some(900), ..q.clone() }), vec![t3, t1]);
    assert_eq!(run(TraceQuery { max_duration_ns: Some(50), ..q.clone() }), vec![t2]);
    assert_eq!(run(TraceQuery { max_duration_ns: Some(49), ..q.clone() }), vec![]);
    assert_eq!(run(TraceQuery { min_duration_ns: Some(100), max_duration_ns: Some(300), ..q.clone() }), vec![t4, t2]);
    // time range on the trace start: from inclusive, to exclusive
    assert_eq!(run(TraceQuery { start_from_ns: Some(2000), start_to_ns: Some(4000), ..q.clone() }), vec![t3, t2]);
    assert_eq!(run(TraceQuery { start_from_ns: Some(2001), ..q.clone() }), vec![t4, t3]);
    assert_eq!(run(TraceQuery { start_to_ns: Some(1000), ..q.clone() }), vec![]);
    assert_eq!(run(TraceQuery { start_to_ns: Some(1001), ..q.clone() }), vec![t1]);
    // attributes: indexed x402 string, int, double; well-known int; non-indexed string and bool
    let a = |k: &str, v: &str| TraceQuery { attributes: vec![attr(k, v)], ..q.clone() };
    assert_eq!(run(a("x402.network", "base")), vec![t4, t3, t1]);
    assert_eq!(run(a("x402.network", "solana")), vec![t2]);
    assert_eq!(run(a("x402.network", "ethereum")), vec![]);
    assert_eq!(run(a("x402.network", "Base")), vec![], "values match exactly");
    assert_eq!(run(a("x402.attempt", "2")), vec![t4, t1]);
    assert_eq!(run(a("x402.attempt", "02")), vec![]);
    assert_eq!(run(a("x402.fee", "0.5")), vec![t3]);
    assert_eq!(run(a("http.response.status_code", "502")), vec![t1]);
    assert_eq!(run(a("custom.tag", "blue")), vec![t4, t1]);
    assert_eq!(run(a("custom.tag", "green")), vec![t2, t1]);
    assert_eq!(run(a("retry.final", "true")), vec![t3]);
    assert_eq!(run(a("retry.final", "false")), vec![]);
    assert_eq!(run(a("no.such.key", "base")), vec![]);
    assert_eq!(run(a("service.name", "api")), vec![], "resource attributes are not span attributes");
}

fn list_filter_combinations(store: &dyn Store) {
    let (project, [t1, t2, t3, t4]) = filter_dataset(store);
    let q = query(project);
    let run = |q: TraceQuery| ids(store, &q);

    // Every filter must hold on the SAME span.
    assert_eq!(run(TraceQuery { service: Some("api".into()), status: Some(StatusCode::Error), ..q.clone() }), vec![]);
    assert_eq!(
        run(TraceQuery { service: Some("facilitator".into()), span_name: Some("settle".into()), ..q.clone() }),
        vec![t4, t1]
    );
    assert_eq!(
        run(TraceQuery {
            service: Some("facilitator".into()),
            status: Some(StatusCode::Error),
            min_duration_ns: Some(400),
            ..q.clone()
        }),
        vec![t1]
    );
    assert_eq!(
        run(TraceQuery { span_name: Some("settle".into()), attributes: vec![attr("custom.tag", "blue")], ..q.clone() }),
        vec![t1],
        "trace 4's blue tag is on its checkout span, not its settle span"
    );
    assert_eq!(
        run(TraceQuery { attributes: vec![attr("x402.network", "base"), attr("x402.attempt", "1")], ..q.clone() }),
        vec![t3]
    );
    assert_eq!(
        run(TraceQuery { attributes: vec![attr("x402.network", "base"), attr("custom.tag", "blue")], ..q.clone() }),
        vec![t1]
    );
    assert_eq!(
        run(TraceQuery {
            span_name: Some("checkout".into()),
            attributes: vec![attr("custom.tag", "green")],
            ..q.clone()
        }),
        vec![t1]
    );
    assert_eq!(
        run(TraceQuery {
            service: Some("facilitator".into()),
            attributes: vec![attr("x402.network", "base")],
            start_from_ns: Some(1000),
            start_to_ns: Some(4000),
            ..q.clone()
        }),
        vec![t1]
    );
    assert_eq!(
        run(TraceQuery {
            status: Some(StatusCode::Ok),
            attributes: vec![attr("x402.attempt", "1")],
            max_duration_ns: Some(20_000),
            ..q.clone()
        }),
        vec![t3]
    );
    assert_eq!(
        run(TraceQuery {
            status: Some(StatusCode::Error),
            attributes: vec![attr("x402.network", "solana")],
            ..q.clone()
        }),
        vec![]
    );
    let _ = t2;
}

/// 30 traces; starts come in groups of three equal values (ties).
fn pagination_dataset(store: &dyn Store) -> (&'static str, Vec<TraceId>) {
    let project = "conf-page";
    let traces: Vec<TraceId> = (0..30).map(|i| tid(6, i)).collect();
    if store.batch_count(project).unwrap() == 0 {
        let mut batches = Vec::new();
        for (i, t) in traces.iter().enumerate() {
            let start = 10_000 + (i as u64 / 3) * 1000;
            let mut root = span(*t, 1, None, "op", start, start + 10);
            if i % 2 == 0 {
                root.attributes = vec![KeyValue::new("x402.even", true), KeyValue::new("plain.even", "yes")];
            }
            // Spread over batches and calls, not in start order.
            batches.push(batch(project, (i as u32 * 7) % 30, request("svc", vec![root])));
        }
        store.commit(&batches[..10]).unwrap();
        store.commit(&batches[10..]).unwrap();
    }
    (project, traces)
}

fn assert_newest_first_without_repeats(all: &[TraceSummary]) {
    for w in all.windows(2) {
        assert!(w[0].start_unix_nano >= w[1].start_unix_nano, "not newest first");
    }
    let mut seen: Vec<TraceId> = all.iter().map(|t| t.trace_id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all.len(), "a trace appears twice");
}

fn pagination_walks_every_trace_once(store: &dyn Store) {
    let (project, traces) = pagination_dataset(store);
    let full = store.list_traces(&query(project)).unwrap();
    assert_eq!(full.traces.len(), 30);
    assert_eq!(full.next_cursor, None);
    assert_newest_first_without_repeats(&full.traces);

    for limit in [1, 2, 3, 4, 7, 29, 30, 31] {
        let all = walk(store, &TraceQuery { limit, ..query(project) });
        assert_eq!(all, full.traces, "walk with limit {limit} differs from the single page");
    }
    // Exactly full pages: the last page has no cursor, or a cursor to an empty page.
    let page = store.list_traces(&TraceQuery { limit: 30, ..query(project) }).unwrap();
    assert_eq!(page.traces.len(), 30);
    if let Some(c) = page.next_cursor {
        let rest = store.list_traces(&TraceQuery { limit: 30, cursor: Some(c), ..query(project) }).unwrap();
        assert!(rest.traces.is_empty());
    }
    // Filters and time range combine with the cursor.
    let filtered =
        walk(store, &TraceQuery { limit: 2, start_from_ns: Some(12_000), start_to_ns: Some(17_000), ..query(project) });
    let want: Vec<TraceSummary> =
        full.traces.iter().filter(|t| (12_000..17_000).contains(&t.start_unix_nano)).cloned().collect();
    assert_eq!(filtered, want);
    assert_eq!(want.len(), 15);
    let mut got: Vec<TraceId> = full.traces.iter().map(|t| t.trace_id).collect();
    got.sort();
    let mut all = traces;
    all.sort();
    assert_eq!(got, all);
}

fn pagination_with_decoded_filters(store: &dyn Store) {
    let (project, traces) = pagination_dataset(store);
    let even: Vec<TraceId> = traces.iter().step_by(2).copied().collect();
    let full = store.list_traces(&query(project)).unwrap().traces;
    let want: Vec<TraceSummary> = full.into_iter().filter(|t| even.contains(&t.trace_id)).collect();
    assert_eq!(want.len(), 15);
    for filter in [attr("x402.even", "true"), attr("plain.even", "yes")] {
        for limit in [1, 2, 4, 15, 16] {
            let got = walk(store, &TraceQuery { limit, attributes: vec![filter.clone()], ..query(project) });
            assert_eq!(got, want, "filter {filter:?}, limit {limit}");
        }
    }
}

fn limit_is_clamped(store: &dyn Store) {
    let (project, _) = pagination_dataset(store);
    let page = store.list_traces(&TraceQuery { limit: 0, ..query(project) }).unwrap();
    assert_eq!(page.traces.len(), 1, "limit 0 is clamped to 1");
    assert!(page.next_cursor.is_some());
    let page = store.list_traces(&TraceQuery { limit: usize::MAX, ..query(project) }).unwrap();
    assert_eq!(page.traces.len(), 30, "a huge limit is clamped, not an error");
}

fn bad_cursor_is_invalid_query(store: &dyn Store) {
    let (project, _) = pagination_dataset(store);
    let good = store.list_traces(&TraceQuery { limit: 1, ..query(project) }).unwrap().next_cursor.unwrap();
    let truncated = good[..good.len() - 2].to_owned();
    let mut extended = good.clone();
    extended.push_str("00");
    for bad in ["not a cursor", "zz", "", "00", truncated.as_str(), extended.as_str(), "💥"] {
        match store.list_traces(&TraceQuery { limit: 1, cursor: Some(bad.to_owned()), ..query(project) }) {
            Err(StoreError::InvalidQuery(_)) => {}
            other => panic!("cursor {bad:?}: expected InvalidQuery, got {other:?}"),
        }
    }
    // Also for a project that does not exist.
    assert!(matches!(
        store.list_traces(&TraceQuery { cursor: Some("zz".into()), ..query("conf-never") }),
        Err(StoreError::InvalidQuery(_))
    ));
}

/// Longest first: durations never increase down the pages (ties in a stable order), every trace
/// once at every page size, with filters, time range and decoded attribute filters; a cursor of
/// the other order is refused.
fn longest_first_walks_every_trace_once(store: &dyn Store) {
    let project = "conf-longest";
    let traces: Vec<TraceId> = (0..40).map(|i| tid(7, i)).collect();
    let mut batches = Vec::new();
    for (i, t) in traces.iter().enumerate() {
        let i = i as u64;
        let start = 50_000 + i * 1000;
        // Durations 0..=6 × 100 ns plus a child that may outlast the root: seven ties each.
        let mut root = span(*t, 1, None, "op", start, start + (i % 7) * 100);
        if i % 2 == 0 {
            root.attributes = vec![KeyValue::new("plain.even", "yes")];
        }
        let mut spans = vec![root];
        if i % 5 == 0 {
            spans.push(with_status(span(*t, 2, Some(1), "child", start, start + 650), StatusCode::Error));
        }
        batches.push(batch(project, (i as u32 * 11) % 40, request("svc", spans)));
    }
    store.commit(&batches[..15]).unwrap();
    store.commit(&batches[15..]).unwrap();
    let longest = |q: TraceQuery| TraceQuery { order: TraceOrder::Longest, ..q };
    let duration = |t: &TraceSummary| t.end_unix_nano - t.start_unix_nano;

    let full = store.list_traces(&longest(query(project))).unwrap();
    assert_eq!((full.traces.len(), full.next_cursor.as_deref()), (40, None));
    assert!(full.traces.windows(2).all(|w| duration(&w[0]) >= duration(&w[1])), "longest first");
    assert_eq!(duration(&full.traces[0]), 650, "a child's end counts");
    let mut ids: Vec<TraceId> = full.traces.iter().map(|t| t.trace_id).collect();
    ids.sort();
    assert_eq!(ids, {
        let mut t = traces.clone();
        t.sort();
        t
    });
    for limit in [1, 2, 6, 7, 39, 40, 41] {
        assert_eq!(walk(store, &longest(TraceQuery { limit, ..query(project) })), full.traces, "limit {limit}");
    }
    // Filters combine with the order: the same traces in the same order as the full listing.
    let within = |t: &TraceSummary| (60_000..80_000).contains(&t.start_unix_nano);
    for (q, keep) in [
        (
            TraceQuery { start_from_ns: Some(60_000), start_to_ns: Some(80_000), ..query(project) },
            Box::new(within) as Box<dyn Fn(&TraceSummary) -> bool>,
        ),
        (
            TraceQuery { status: Some(StatusCode::Error), ..query(project) },
            Box::new(|t: &TraceSummary| t.error_count > 0),
        ),
        (
            TraceQuery { attributes: vec![attr("plain.even", "yes")], ..query(project) },
            Box::new(|t: &TraceSummary| traces.iter().position(|x| *x == t.trace_id).is_some_and(|i| i % 2 == 0)),
        ),
    ] {
        let want: Vec<TraceSummary> = full.traces.iter().filter(|t| keep(t)).cloned().collect();
        assert!(!want.is_empty() && want.len() < 40);
        for limit in [1, 3, 50] {
            assert_eq!(walk(store, &longest(TraceQuery { limit, ..q.clone() })), want, "{q:?} limit {limit}");
        }
    }
    // A cursor belongs to its order.
    let newest = store.list_traces(&TraceQuery { limit: 1, ..query(project) }).unwrap().next_cursor.unwrap();
    let long = store.list_traces(&longest(TraceQuery { limit: 1, ..query(project) })).unwrap().next_cursor.unwrap();
    for (q, cursor) in [(longest(query(project)), newest), (query(project), long)] {
        match store.list_traces(&TraceQuery { cursor: Some(cursor), ..q }) {
            Err(StoreError::InvalidQuery(m)) => assert!(m.contains("another order"), "{m}"),
            other => panic!("expected InvalidQuery, got {other:?}"),
        }
    }
}

fn trace_summary(store: &dyn Store) {
    let project = "conf-summary";
    let t = tid(7, 1);
    // Children first (root not yet known), then the root in a later call.
    let c1 = with_status(span(t, 2, Some(1), "child", 2_000, 5_000), StatusCode::Error);
    let c2 = with_status(span(t, 3, Some(2), "grandchild", 2_500, 3_000), StatusCode::Error);
    store.commit(&[batch(project, 1, request("worker", vec![c1, c2]))]).unwrap();
    let s = &store.list_traces(&query(project)).unwrap().traces[0];
    assert_eq!(s.trace_id, t);
    assert_eq!(s.root_name, None);
    assert_eq!(s.root_service, None);
    assert_eq!((s.start_unix_nano, s.end_unix_nano, s.span_count, s.error_count), (2_000, 5_000, 2, 2));

    let root = with_status(span(t, 1, None, "handle", 1_000, 4_000), StatusCode::Ok);
    let late = span(t, 4, Some(1), "after", 4_500, 7_000);
    store
        .commit(&[batch(project, 2, request("gateway", vec![late])), batch(project, 3, request("gateway", vec![root]))])
        .unwrap();
    let s = &store.list_traces(&query(project)).unwrap().traces[0];
    assert_eq!(s.root_name.as_deref(), Some("handle"));
    assert_eq!(s.root_service.as_deref(), Some("gateway"));
    assert_eq!((s.start_unix_nano, s.end_unix_nano, s.span_count, s.error_count), (1_000, 7_000, 4, 2));

    // A root whose resource has no service.name.
    let t2 = tid(7, 2);
    let req = TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::default(),
            scope_spans: vec![ScopeSpans {
                scope: InstrumentationScope::default(),
                spans: vec![span(t2, 1, None, "anonymous", 10, 20)],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    store.commit(&[batch(project, 4, req)]).unwrap();
    let page = store.list_traces(&query(project)).unwrap();
    let s = page.traces.iter().find(|s| s.trace_id == t2).unwrap();
    assert_eq!(s.root_name.as_deref(), Some("anonymous"));
    assert_eq!(s.root_service, None);
    assert_eq!(ids(store, &TraceQuery { service: Some("gateway".into()), ..query(project) }), vec![t]);

    // get_trace orders by start time.
    let starts: Vec<u64> = store.get_trace(project, t).unwrap().iter().map(|s| s.span.start_time_unix_nano).collect();
    assert_eq!(starts, vec![1_000, 2_000, 2_500, 4_500]);
}

/// Per-project retention set by the CLI: set, replaced, cleared; a project need not exist yet.
fn retention_settings_round_trip(store: &dyn Store) {
    assert!(store.retention_overrides().unwrap().iter().all(|(p, _)| !p.starts_with("conf-ret")));
    assert!(!store.set_retention_override("conf-ret-b", Some(7)).unwrap(), "nothing set before");
    assert!(!store.set_retention_override("conf-ret-a", Some(0)).unwrap());
    assert!(store.set_retention_override("conf-ret-b", Some(90)).unwrap(), "replaced");
    let mine = |store: &dyn Store| -> Vec<(String, u32)> {
        store.retention_overrides().unwrap().into_iter().filter(|(p, _)| p.starts_with("conf-ret")).collect()
    };
    assert_eq!(mine(store), [("conf-ret-a".to_owned(), 0), ("conf-ret-b".to_owned(), 90)]);
    assert!(store.set_retention_override("conf-ret-a", None).unwrap());
    assert!(!store.set_retention_override("conf-ret-a", None).unwrap(), "already cleared");
    assert_eq!(mine(store), [("conf-ret-b".to_owned(), 90)]);
    assert!(store.set_retention_override("conf-ret-b", None).unwrap());
}

fn api_keys(store: &dyn Store) {
    let ingest = ApiKeyRecord {
        id: "conf-key-ingest".into(),
        project: "conf-keys".into(),
        scope: KeyScope::Ingest,
        secret_sha256: [0xab; 32],
        created_at_unix_nano: 1_700_000_000_000_000_001,
        revoked_at_unix_nano: None,
    };
    let read = ApiKeyRecord {
        id: "conf-key-read".into(),
        project: "conf-keys".into(),
        scope: KeyScope::Read,
        secret_sha256: {
            let mut h = [0u8; 32];
            for (i, b) in h.iter_mut().enumerate() {
                *b = i as u8;
            }
            h
        },
        created_at_unix_nano: 0,
        revoked_at_unix_nano: None,
    };
    store.insert_api_key(&ingest).unwrap();
    store.insert_api_key(&read).unwrap();
    assert_eq!(store.api_key("conf-key-ingest").unwrap(), Some(ingest.clone()));
    assert_eq!(store.api_key("conf-key-read").unwrap(), Some(read.clone()));
    assert_eq!(store.api_key("conf-key-unknown").unwrap(), None);
    assert_eq!(store.api_key("").unwrap(), None);
    assert!(store.insert_api_key(&ingest).is_err(), "key ids are unique");

    // Listing (oldest first) and revocation (once).
    let listed: Vec<ApiKeyRecord> =
        store.list_api_keys().unwrap().into_iter().filter(|k| k.project == "conf-keys").collect();
    assert_eq!(listed, vec![read.clone(), ingest.clone()]);
    assert!(store.revoke_api_key("conf-key-ingest", 1_700_000_000_000_000_005).unwrap());
    assert!(!store.revoke_api_key("conf-key-ingest", 1_700_000_000_000_000_009).unwrap(), "revoked once");
    assert!(!store.revoke_api_key("conf-key-unknown", 1).unwrap());
    let revoked = store.api_key("conf-key-ingest").unwrap().unwrap();
    assert_eq!(revoked.revoked_at_unix_nano, Some(1_700_000_000_000_000_005));
    assert_eq!(store.api_key("conf-key-read").unwrap(), Some(read));
}

/// A store opened again on the same database keeps every batch, span, counter and key, stays
/// idempotent, and puts new data after the old. `open` opens a store on that database (not
/// migrated yet).
pub(crate) fn a_reopened_store_keeps_everything(open: &dyn Fn() -> Box<dyn Store>) {
    let t = tid(9, 2);
    let req = request("svc", vec![span(t, 1, None, "root", 10, 90), span(t, 2, Some(1), "child", 20, 30)]);
    {
        let store = open();
        store.migrate().unwrap();
        store.commit(&[batch("p", 1, req.clone())]).unwrap();
        store
            .insert_api_key(&ApiKeyRecord {
                id: "k".into(),
                project: "p".into(),
                scope: KeyScope::Read,
                secret_sha256: [1; 32],
                created_at_unix_nano: 5,
                revoked_at_unix_nano: None,
            })
            .unwrap();
    }
    let store = open();
    store.migrate().unwrap();
    assert_eq!(store.get_trace("p", t).unwrap().len(), 2);
    assert_eq!(store.span_count("p").unwrap(), 2);
    assert_eq!(store.batch_count("p").unwrap(), 1);
    assert!(store.api_key("k").unwrap().is_some());
    // Idempotency survives; new data comes after the old.
    assert_eq!(store.commit(&[batch("p", 1, req)]).unwrap(), vec![CommitOutcome::Duplicate]);
    let t2 = tid(9, 3);
    let out = store.commit(&[batch("p", 2, request("svc", vec![span(t2, 1, None, "next", 100, 200)]))]).unwrap();
    assert_eq!(leafless(out), vec![stored(1, 0)]);
    assert_eq!(store.get_trace("p", t2).unwrap()[0].span.name, "next");
    assert_eq!(store.get_trace("p", t).unwrap().len(), 2);
    let page = store.list_traces(&TraceQuery { project: "p".into(), limit: 10, ..Default::default() }).unwrap();
    assert_eq!(page.traces.iter().map(|s| s.trace_id).collect::<Vec<_>>(), vec![t2, t]);
}

/// A span joins its trace's row whatever the order its trace's id arrives in: ids above every
/// stored one (what an SDK's time-ordered ids mostly are, and what the SQLite writer does not look
/// up), equal to the largest, below it (another instance's slower clock), in another project, and
/// after the store is reopened.
pub(crate) fn spans_join_their_trace_in_any_id_order(open: &dyn Fn() -> Box<dyn Store>) {
    let (project, other) = ("conf-order", "conf-order-2");
    let (high, low, higher) = (tid(0xf0, 1), tid(0x10, 1), tid(0xf1, 1));
    let summary = |store: &dyn Store, project: &str, t: TraceId| {
        let page = store.list_traces(&query(project)).unwrap();
        let s = page.traces.iter().find(|s| s.trace_id == t).unwrap();
        (s.span_count, s.start_unix_nano, s.end_unix_nano)
    };
    let commit = |store: &dyn Store, n: u32, project: &str, spans: Vec<SpanData>| {
        let count = spans.len();
        let out = store.commit(&[batch(project, n, request("svc", spans))]).unwrap();
        assert_eq!(leafless(out), vec![stored(count, 0)]);
    };
    {
        let store = open();
        store.migrate().unwrap();
        commit(&*store, 1, project, vec![span(high, 1, None, "root", 100, 900)]);
        // The largest id again (found), a smaller new one (not found), that one again (found).
        commit(&*store, 2, project, vec![span(high, 2, Some(1), "child", 200, 300)]);
        commit(&*store, 3, project, vec![span(low, 1, None, "slow clock", 50, 60)]);
        commit(&*store, 4, project, vec![span(low, 2, Some(1), "slow child", 55, 70)]);
        // The same id in another project is another trace.
        commit(&*store, 5, other, vec![span(high, 1, None, "elsewhere", 1, 2)]);
        assert_eq!(summary(&*store, project, high), (2, 100, 900));
        assert_eq!(summary(&*store, project, low), (2, 50, 70));
        assert_eq!(summary(&*store, other, high), (1, 1, 2));
    }
    // Reopened: what was stored before is found again.
    let store = open();
    store.migrate().unwrap();
    commit(&*store, 6, project, vec![span(high, 3, Some(1), "after reopen", 150, 950)]);
    commit(&*store, 7, project, vec![span(low, 3, Some(1), "after reopen", 40, 65)]);
    // A new trace above the bound beside one below it, in one commit.
    commit(
        &*store,
        8,
        project,
        vec![span(higher, 1, None, "next", 1_000, 1_100), span(low, 4, Some(1), "late", 45, 75)],
    );
    commit(&*store, 9, other, vec![span(high, 2, Some(1), "elsewhere", 0, 3)]);
    assert_eq!(summary(&*store, project, high), (3, 100, 950));
    assert_eq!(summary(&*store, project, low), (4, 40, 75));
    assert_eq!(summary(&*store, project, higher), (1, 1_000, 1_100));
    assert_eq!(summary(&*store, other, high), (2, 0, 3));
    assert_eq!(store.list_traces(&query(project)).unwrap().traces.len(), 3);
    assert_eq!(store.span_count(project).unwrap(), 8);
    // New traces above the bound in one commit, the largest neither first nor last, then a span
    // of each: every one is found (the bound became the largest of them, not the last).
    let (a, b, c) = (tid(0xf2, 1), tid(0xf4, 1), tid(0xf3, 1));
    commit(
        &*store,
        10,
        project,
        vec![span(a, 1, None, "a", 1, 2), span(b, 1, None, "b", 1, 2), span(c, 1, None, "c", 1, 2)],
    );
    commit(
        &*store,
        11,
        project,
        vec![span(b, 2, Some(1), "b2", 1, 3), span(c, 2, Some(1), "c2", 1, 3), span(a, 2, Some(1), "a2", 1, 3)],
    );
    for t in [a, b, c] {
        assert_eq!(summary(&*store, project, t), (2, 1, 3));
    }
    assert_eq!(store.list_traces(&query(project)).unwrap().traces.len(), 6);
}

/// Readers running while one writer commits never see a partial commit (checked on span counts and
/// trace summaries); every store must give its readers transaction-consistent snapshots.
pub(crate) fn readers_never_see_partial_commits(store: &std::sync::Arc<dyn Store>) {
    store.migrate().unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..40u32 {
                let t = tid(10, i);
                let spans = (0..50)
                    .map(|j| span(t, j + 1, if j == 0 { None } else { Some(1) }, "op", 1000 + u64::from(j), 2000))
                    .collect();
                store.commit(&[batch("conc", i, request("svc", spans))]).unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        readers.push(std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..100 {
                let n = store.span_count("conc").unwrap();
                assert!(n >= last && n % 50 == 0, "a reader saw a partial commit: {n}");
                last = n;
                let page =
                    store.list_traces(&TraceQuery { project: "conc".into(), limit: 5, ..Default::default() }).unwrap();
                for s in page.traces {
                    assert_eq!(s.span_count, 50);
                }
            }
        }));
    }
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(store.span_count("conc").unwrap(), 2000);
}
