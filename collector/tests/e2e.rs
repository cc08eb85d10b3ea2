//! End to end: the real collector binary, the Rust SDK over real HTTP, real SQLite.
//! 100,000 spans in many batches round-trip exactly; a trace's detail with its resources shared
//! describes the same spans as with them inline; every kind of bad input is rejected with its
//! status and code and stores nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::needless_pass_by_value
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Collector, all_traces, create_key, get_json, metric, post_batch, public_key_pem, temp_dir};
use serde_json::{Value as J, json};
use tracex_core::seal::{CollectorKey, Sealer, SealerConfig};
use tracex_core::{
    InstrumentationScope, KeyValue, Resource, SpanData, SpanId, SpanKind, Status, TraceId, Tracer, Value,
};

const TRACES: i64 = 1_000;
const NETWORKS: [&str; 3] = ["base", "base-sepolia", "solana"];
const SPANS_PER_TRACE: i64 = 100;

/// The attributes span `(t, i)` carries, as the query API must render them (OTLP/JSON AnyValue).
fn expected_attributes(t: i64, i: i64) -> Vec<(String, J)> {
    vec![
        ("t".into(), json!({"intValue": t.to_string()})),
        ("i".into(), json!({"intValue": i.to_string()})),
        ("x402.network".into(), json!({"stringValue": NETWORKS[(t % 3) as usize]})),
        ("x402.amount".into(), json!({"stringValue": format!("{}", 1_000 + t * 7 + i)})),
        ("x402.attempt".into(), json!({"intValue": (1 + i % 3).to_string()})),
        ("ratio".into(), json!({"doubleValue": (i as f64) / 8.0})),
        ("ok".into(), json!({"boolValue": i % 2 == 0})),
        ("tags".into(), json!({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": i.to_string()}]}})),
    ]
}

fn record_span(tracer: &Tracer, t: i64, i: i64) {
    let mut span = tracer
        .span_builder(if i == 0 { "POST /settle" } else { "rpc" })
        .kind(if i == 0 { SpanKind::Server } else { SpanKind::Client })
        .start();
    span.set_attribute("t", t)
        .set_attribute("i", i)
        .set_attribute("x402.network", NETWORKS[(t % 3) as usize])
        .set_attribute("x402.amount", format!("{}", 1_000 + t * 7 + i))
        .set_attribute("x402.attempt", 1 + i % 3)
        .set_attribute("ratio", (i as f64) / 8.0)
        .set_attribute("ok", i % 2 == 0)
        .set_attribute("tags", Value::Array(vec![Value::from("a"), Value::Int(i)]));
    if i % 10 == 5 {
        span.add_event("retry", vec![KeyValue::new("x402.attempt", 2i64)]);
        span.set_status(Status::error("nonce too low"));
    }
    let _entered = span.enter();
    if i == 0 {
        for j in 1..SPANS_PER_TRACE {
            record_span(tracer, t, j);
        }
    }
}

#[test]
fn hundred_thousand_spans_round_trip_exactly() {
    let dir = temp_dir("e2e");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let pem = public_key_pem(&dir);
    let collector = Collector::start(&dir);

    let tracer = Tracer::builder()
        .with_service_name("settler")
        .with_endpoint(&collector.url)
        .with_api_key(&ingest)
        .with_collector_public_key_pem(&pem)
        // The whole burst is recorded in ≈ 30 ms, far faster than any network drains it: size the
        // buffer for it (the default, 16,384, would drop and count the excess).
        .with_batch_config(tracex_core::config::BatchConfig { max_queue_size: 131_072, ..Default::default() })
        .build()
        .unwrap();
    for t in 0..TRACES {
        record_span(&tracer, t, 0);
    }
    let report = tracer.shutdown(Duration::from_secs(120)).unwrap();
    let total = (TRACES * SPANS_PER_TRACE) as u64;
    assert!(report.is_complete(), "{report:?}");
    let stats = tracer.stats();
    // The report covers the shutdown call; batches may have gone out while recording.
    assert_eq!(stats.spans_sent, total, "{stats:?}");
    assert!(report.spans_delivered <= total);
    assert_eq!(stats.spans_dropped, 0);
    // Many batches (full ones of the default size, and any the scheduled delay sealed early).
    let full = total / tracex_core::config::DEFAULT_MAX_BATCH_SIZE as u64;
    assert!(stats.batches_sent >= full, "many batches: {} of at least {full}", stats.batches_sent);
    assert_eq!(metric(&collector.url, "tracex_spans_ingested_total") as u64, total);
    assert!(metric(&collector.url, "tracex_rsa_unwraps_total") <= 2.0, "RSA runs once per data key, not per batch");

    // Listing: every trace once, across pages, each with its root and 100 spans.
    let traces = all_traces(&collector.url, &read, "");
    assert_eq!(traces.len() as i64, TRACES);
    let ids: HashSet<_> = traces.iter().map(|t| t["trace_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len() as i64, TRACES, "no duplicates across pages");
    for t in &traces {
        assert_eq!(t["span_count"], SPANS_PER_TRACE);
        assert_eq!(t["root_name"], "POST /settle");
        assert_eq!(t["root_service"], "settler");
        assert_eq!(t["error_count"], 10);
    }

    // Detail: every span and attribute of every trace, exactly.
    let mut seen = HashSet::new();
    for t in &traces {
        let id = t["trace_id"].as_str().unwrap();
        let (status, body) = get_json(&format!("{}/api/v1/traces/{id}", collector.url), &read);
        assert_eq!(status, 200);
        let spans = body["spans"].as_array().unwrap();
        assert_eq!(spans.len() as i64, SPANS_PER_TRACE);
        assert_eq!(body["next_cursor"], J::Null);
        // Waterfall rows: the root first, every other span one level beneath it.
        let depths: Vec<i64> = spans.iter().map(|s| s["depth"].as_i64().unwrap()).collect();
        assert!(depths[0] == 0 && depths[1..].iter().all(|&d| d == 1), "{depths:?}");
        let root_id = spans[0]["span_id"].as_str().unwrap().to_owned();
        for s in spans {
            let attrs: HashMap<String, J> = s["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv["key"].as_str().unwrap().to_owned(), kv["value"].clone()))
                .collect();
            let tt: i64 = attrs["t"]["intValue"].as_str().unwrap().parse().unwrap();
            let ii: i64 = attrs["i"]["intValue"].as_str().unwrap().parse().unwrap();
            assert!(seen.insert((tt, ii)), "span ({tt}, {ii}) twice");
            let want = expected_attributes(tt, ii);
            assert_eq!(attrs.len(), want.len());
            for (k, v) in want {
                assert_eq!(attrs[&k], v, "span ({tt},{ii}) attribute {k}");
            }
            assert_eq!(s["trace_id"], id);
            assert_eq!(s["service_name"], "settler");
            if ii == 0 {
                assert_eq!(s["parent_span_id"], J::Null);
                assert_eq!(s["kind"], "server");
            } else {
                assert_eq!(s["parent_span_id"], root_id.as_str());
                assert_eq!(s["kind"], "client");
            }
            let start: u64 = s["start_time_unix_nano"].as_str().unwrap().parse().unwrap();
            let end: u64 = s["end_time_unix_nano"].as_str().unwrap().parse().unwrap();
            assert!(end >= start && start > 1_700_000_000_000_000_000);
            if ii % 10 == 5 {
                assert_eq!(s["status"], json!({"code": "error", "message": "nonce too low"}));
                assert_eq!(s["events"][0]["name"], "retry");
                assert_eq!(s["events"][0]["attributes"][0], json!({"key": "x402.attempt", "value": {"intValue": "2"}}));
            } else {
                assert_eq!(s["status"]["code"], "unset");
            }
        }
    }
    assert_eq!(seen.len() as u64, total);

    // Filters.
    let errors = all_traces(&collector.url, &read, "&status=error&name=rpc");
    assert_eq!(errors.len() as i64, TRACES);
    let solana = all_traces(&collector.url, &read, "&attr.x402.network=solana");
    assert_eq!(solana.len() as i64, (0..TRACES).filter(|t| t % 3 == 2).count() as i64);
    let one = all_traces(&collector.url, &read, "&attr.x402.amount=1007&attr.i=0");
    assert_eq!(one.len(), 1, "t=1, i=0");
    assert!(all_traces(&collector.url, &read, "&service=nobody").is_empty());

    // Another project's read key sees nothing of this one.
    let other = create_key(&dir, "other", "read");
    assert!(all_traces(&collector.url, &other, "").is_empty());
    let (status, _) =
        get_json(&format!("{}/api/v1/traces/{}", collector.url, traces[0]["trace_id"].as_str().unwrap()), &other);
    assert_eq!(status, 404);

    // Graceful shutdown, then the data is still there after a restart.
    assert!(collector.terminate().success(), "SIGTERM exits 0");
    let again = Collector::start(&dir);
    assert_eq!(all_traces(&again.url, &read, "").len() as i64, TRACES);
}

// === bad input: status, code, and nothing stored ===

struct Setup {
    collector: Collector,
    ingest: String,
    read: String,
    key: CollectorKey,
}

fn setup(tag: &str, extra: &[&str]) -> Setup {
    let dir = temp_dir(tag);
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    Setup { collector: Collector::start_with(&dir, extra), ingest, read, key }
}

fn span(trace: u8, span: u8) -> SpanData {
    common::settle_span(trace, span)
}

fn seal(key: &CollectorKey, spans: &[SpanData]) -> Vec<u8> {
    common::seal_spans(key, "bad-input", spans).0
}

fn stored_traces(s: &Setup) -> usize {
    all_traces(&s.collector.url, &s.read, "").len()
}

fn assert_error(resp: (u16, J), status: u16, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "{}", resp.1);
    assert!(resp.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn bad_batches_are_rejected_with_clear_codes_and_store_nothing() {
    let s = setup("bad", &[]);
    let url = &s.collector.url;
    let good = seal(&s.key, &[span(1, 1)]);

    // Wrong API key, a read key, no key: 401/403.
    assert_error(
        post_batch(
            url,
            "trx_ingest_000000000000_0000000000000000000000000000000000000000000000000000000000000000",
            good.clone(),
        ),
        401,
        "unauthorized",
    );
    assert_error(post_batch(url, &s.read, good.clone()), 403, "forbidden");
    let r = common::client().post(format!("{url}/v1/batches")).body(good.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Tampered: one flipped byte in the ciphertext, and one in the authenticated header.
    let mut tampered = good.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 1;
    assert_error(post_batch(url, &s.ingest, tampered), 400, "decrypt_failed");
    let mut header_tampered = good.clone();
    header_tampered[50] ^= 1; // batch id
    assert_error(post_batch(url, &s.ingest, header_tampered), 400, "decrypt_failed");

    // Unknown key id: sealed to someone else's key.
    let stranger = CollectorKey::from_pem(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/collector-test-key.pub.pem"))
            .unwrap(),
    )
    .unwrap();
    assert_error(post_batch(url, &s.ingest, seal(&stranger, &[span(2, 2)])), 400, "unknown_key_id");

    // Malformed: garbage, truncated, unknown version, and a valid envelope around a non-OTLP payload.
    assert_error(post_batch(url, &s.ingest, b"hello world".to_vec()), 400, "malformed_envelope");
    assert_error(post_batch(url, &s.ingest, good[..60].to_vec()), 400, "malformed_envelope");
    let mut v2 = good.clone();
    v2[4] = 2;
    assert_error(post_batch(url, &s.ingest, v2), 400, "unsupported_version");
    let mut sealer = Sealer::new(s.key.clone(), SealerConfig::default()).unwrap();
    let not_otlp = sealer.seal(1, &[0xff, 0xff, 0xff]).unwrap().bytes;
    assert_error(post_batch(url, &s.ingest, not_otlp), 400, "malformed_payload");
    assert_error(post_batch(url, &s.ingest, Vec::new()), 400, "malformed_envelope");

    // Invalid span: all-zero trace id; a batch with one bad span is rejected whole.
    let mut zero = span(3, 3);
    zero.trace_id = TraceId::INVALID;
    assert_error(post_batch(url, &s.ingest, seal(&s.key, &[span(4, 4), zero])), 400, "invalid_span");

    assert_eq!(stored_traces(&s), 0, "nothing of any rejected batch was stored");
    assert_eq!(metric(url, "tracex_spans_ingested_total"), 0.0);
    assert_eq!(metric(url, "tracex_batches_rejected_total{reason=\"decrypt_failed\"}"), 2.0);

    // The good batch is accepted; replaying it is acknowledged but stored once.
    let first = post_batch(url, &s.ingest, good.clone());
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["status"], "stored");
    let replay = post_batch(url, &s.ingest, good);
    assert_eq!(replay.0, 200);
    assert_eq!(replay.1["status"], "duplicate");
    assert_eq!(stored_traces(&s), 1);
    assert_eq!(metric(url, "tracex_spans_ingested_total"), 1.0);
    assert_eq!(metric(url, "tracex_batches_duplicate_total"), 1.0);
}

#[test]
fn oversized_bodies_get_413_and_store_nothing() {
    let dir = temp_dir("config");
    let cfg = dir.join("collector.toml");
    std::fs::write(&cfg, "max_body_bytes = 65536\n").unwrap();
    let s = setup("oversized", &["--config", cfg.to_str().unwrap()]);
    let big: Vec<SpanData> = (0..2000u32)
        .map(|n| {
            let mut sp = span(5, 1);
            sp.span_id = SpanId((u64::from(n) + 1).to_be_bytes());
            sp.attributes.push(KeyValue::new("pad", "x".repeat(64)));
            sp
        })
        .collect();
    let body = seal(&s.key, &big);
    assert!(body.len() > 65536);
    let r = common::client()
        .post(format!("{}/v1/batches", s.collector.url))
        .bearer_auth(&s.ingest)
        .header("content-type", "application/vnd.tracex.batch.v1")
        .body(body.clone())
        .send()
        .unwrap();
    // The body was not read, so the connection must not be reused by a pooling client.
    assert_eq!(r.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    assert_eq!(r.status().as_u16(), 413);
    assert_error(post_batch(&s.collector.url, &s.ingest, body), 413, "payload_too_large");
    assert_eq!(stored_traces(&s), 0);
    let small = post_batch(&s.collector.url, &s.ingest, seal(&s.key, &big[..10]));
    assert_eq!(small.0, 200, "{}", small.1);
}

#[test]
fn public_key_health_and_metrics_endpoints() {
    let s = setup("endpoints", &[]);
    let url = &s.collector.url;
    let body: J = common::client().get(format!("{url}/v1/public-key")).send().unwrap().json().unwrap();
    assert_eq!(body["key_id"], s.key.key_id().to_hex());
    assert_eq!(body["bits"], 3072);
    let pem = common::client()
        .get(format!("{url}/v1/public-key"))
        .header("accept", "application/x-pem-file")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(CollectorKey::from_pem(&pem).unwrap().key_id(), s.key.key_id());
    // An SDK pinned to the fingerprint fetches the key itself.
    let tracer = Tracer::builder()
        .with_service_name("pinned")
        .with_endpoint(url)
        .with_api_key(&s.ingest)
        .with_collector_fingerprint(s.key.key_id().to_hex())
        .build()
        .unwrap();
    tracer.span("verify").end();
    assert_eq!(tracer.flush(Duration::from_secs(10)).unwrap().spans_delivered, 1);

    assert_eq!(common::client().get(format!("{url}/healthz")).send().unwrap().status().as_u16(), 200);
    let ready: J = common::client().get(format!("{url}/readyz")).send().unwrap().json().unwrap();
    assert_eq!(ready, json!({"store": "ok", "keys": 1}));
    let text = common::client().get(format!("{url}/metrics")).send().unwrap().text().unwrap();
    for name in [
        "tracex_batches_ingested_total",
        "tracex_decrypt_seconds_bucket",
        "tracex_commit_seconds_count",
        "tracex_writer_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    for query in ["limit=0", "sort=longest", "sort=duration&sort=start", "sort=duration&cursor=01"] {
        let (status, body) = get_json(&format!("{url}/api/v1/traces?{query}"), &s.read);
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_query")), "{query}: {body}");
    }
    let (status, body) = get_json(&format!("{url}/api/v1/traces?sort=duration"), &s.read);
    assert_eq!((status, body["traces"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let (status, _) = get_json(&format!("{url}/api/v1/traces"), &s.ingest);
    assert_eq!(status, 403, "ingest keys cannot read");
}

#[test]
fn key_rotation_keeps_old_batches_openable() {
    let dir = temp_dir("rotation");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let old = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let (ok, out, err) = common::cli(&dir, &["keys", "rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("keys in ring: 2"));
    let new = CollectorKey::from_pem(out.split("fingerprint:").next().unwrap()).unwrap();
    assert_ne!(old.key_id(), new.key_id());
    let c = Collector::start(&dir);
    assert_eq!(post_batch(&c.url, &ingest, seal(&old, &[span(7, 1)])).0, 200, "sealed to the previous key");
    assert_eq!(post_batch(&c.url, &ingest, seal(&new, &[span(8, 1)])).0, 200);
    assert_eq!(all_traces(&c.url, &read, "").len(), 2);
    let body: J = common::client().get(format!("{}/v1/public-key", c.url)).send().unwrap().json().unwrap();
    assert_eq!(body["key_id"], new.key_id().to_hex(), "SDKs are given the new key");
}

#[test]
fn cli_errors_are_clear() {
    let dir = temp_dir("cli");
    let (ok, _, err) = common::cli(&dir, &["apikey", "create", "--project", " "]);
    assert!(!ok && err.contains("--project"), "{err}");
    let (ok, _, err) = common::cli(&dir, &["--database-url", "mysql://x", "apikey", "create", "--project", "p"]);
    assert!(!ok && err.contains("unsupported database URL"), "{err}");
    // A private key readable by others: the collector refuses to start.
    public_key_pem(&dir);
    let keys = dir.join("keys");
    for entry in std::fs::read_dir(&keys).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "pem") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let out = std::process::Command::new(common::BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

// === a trace's detail: resources inline or shared ===

/// `spans` under `resource`, sealed as one batch by a fresh SDK instance.
fn seal_under(key: &CollectorKey, resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut sealer = Sealer::new(key.clone(), SealerConfig::default()).unwrap();
    let scope = InstrumentationScope { name: "e2e".into(), version: "1.0".into(), ..Default::default() };
    sealer
        .seal_with(1_763_900_000_000_000_000, |out| tracex_core::encode::encode_spans(resource, &scope, spans, out))
        .unwrap()
        .bytes
}

#[test]
fn a_trace_detail_with_shared_resources_describes_the_same_spans_as_inline() {
    let s = setup("shared-resources", &[]);
    let url = &s.collector.url;
    let resource = |service: &str, instance: &str| {
        let mut r = Resource::new(service.to_owned());
        r.attributes.push(KeyValue::new("service.instance.id", instance.to_owned()));
        r.attributes.push(KeyValue::new("deployment.environment", "e2e"));
        r
    };
    // One trace of 300 spans (span i the child of span i / 2, so that neighbouring waterfall rows
    // come from different batches) in five batches under four distinct resources: the first and
    // third batch carry equal facilitator resources, the fourth one differing in its instance id.
    let trace = 0x5a;
    let t0 = 1_763_900_000_000_000_000u64;
    let span = |i: u64| SpanData {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId(i.to_be_bytes()),
        parent_span_id: (i > 1).then(|| SpanId((i / 2).to_be_bytes())),
        name: format!("op {}", i % 7).into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: t0 + i * 1_000,
        end_time_unix_nano: t0 + i * 1_000 + 500,
        attributes: vec![KeyValue::new("i", i as i64)],
        ..Default::default()
    };
    let batches = [
        (resource("facilitator", "a"), 1..=60),
        (resource("settler", "s"), 61..=120),
        (resource("facilitator", "a"), 121..=180),
        (resource("facilitator", "b"), 181..=240),
        (resource("ledger", "l"), 241..=300),
    ];
    for (r, ids) in batches {
        let spans: Vec<SpanData> = ids.map(span).collect();
        let (status, body) = post_batch(url, &s.ingest, seal_under(&s.key, &r, &spans));
        assert_eq!(status, 200, "{body}");
    }
    let id = hex::encode([trace; 16]);
    let detail = |query: &str| {
        let (status, body) = get_json(&format!("{url}/api/v1/traces/{id}?{query}"), &s.read);
        assert_eq!(status, 200, "{query}: {body}");
        body
    };

    for limit in [10_000, 128, 7] {
        let (mut cursor, mut rows, mut pages) = (String::new(), 0, 0);
        loop {
            let inline = detail(&format!("limit={limit}{cursor}"));
            assert!(inline.get("resources").is_none(), "inline stays the default shape");
            assert_eq!(inline, detail(&format!("limit={limit}{cursor}&resources=inline")));
            let mut shared = detail(&format!("limit={limit}{cursor}&resources=shared"));
            let resources = shared.as_object_mut().unwrap().remove("resources").unwrap();
            let resources = resources.as_array().unwrap();
            for (i, r) in resources.iter().enumerate() {
                assert!(!resources[i + 1..].contains(r), "each distinct resource once: {resources:?}");
            }
            let mut used = vec![false; resources.len()];
            for span in shared["spans"].as_array_mut().unwrap() {
                let span = span.as_object_mut().unwrap();
                assert!(!span.contains_key("resource"), "{span:?}");
                assert!(span["service_name"].is_string(), "service_name stays on each span");
                let i = span.remove("resource_index").unwrap().as_u64().unwrap() as usize;
                used[i] = true;
                span.insert("resource".into(), resources[i].clone());
            }
            assert!(used.iter().all(|&u| u), "the page's resources only");
            // With the indexes resolved, the shared page is the inline one.
            assert_eq!(shared, inline, "limit={limit}{cursor}");
            rows += inline["spans"].as_array().unwrap().len();
            pages += 1;
            match inline["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!((rows, pages), (300, 300usize.div_ceil(limit)), "limit={limit}");
    }

    // The whole trace: the two equal facilitator resources are one entry.
    let whole = detail("resources=shared");
    let instances: Vec<&str> = whole["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attributes"][1]["value"]["stringValue"].as_str().unwrap())
        .collect();
    assert_eq!(instances.len(), 4, "{instances:?}");
    assert_eq!(instances.iter().collect::<HashSet<_>>().len(), 4, "{instances:?}");

    for bad in [
        "resources=",
        "resources",
        "resources=Shared",
        "resources=compact",
        "resources=shared&resources=shared",
        "resources=inline&resources=shared",
        "resources=shared&depth=1",
    ] {
        assert_error(get_json(&format!("{url}/api/v1/traces/{id}?{bad}"), &s.read), 400, "invalid_query");
    }
}
