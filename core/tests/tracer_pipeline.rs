//! The tracer end to end without a network: spans recorded through the public API come out of the
//! pump (and out of the worker, through the in-memory transport) sealed, and open to exactly what was
//! recorded — with secrets redacted before sealing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use tracex_core::config::BatchConfig;
use tracex_core::transport::MemoryTransport;
use tracex_core::{Error, KeyValue, Parent, Sampler, SpanContext, SpanKind, StatusCode, Tracer, Value};

fn pump_tracer() -> Tracer {
    Tracer::builder()
        .with_service_name("pipeline-test")
        .with_collector_public_key_pem(common::public_pem())
        .build()
        .unwrap()
}

#[test]
fn spans_round_trip_through_seal_and_open() {
    let tracer = pump_tracer();
    assert!(!tracer.has_worker());
    let remote =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    {
        let mut root = tracer.span_builder("POST /settle").kind(SpanKind::Server).child_of(remote.clone()).start();
        root.set_attribute("x402.phase", "settle")
            .set_attribute("x402.amount", "10000")
            .set_attribute("x402.attempt", 1i64);
        let _entered = root.enter();
        let mut child = tracer.span("eth_sendRawTransaction");
        child.set_attribute("rpc.ok", false).set_attribute("latency", 12.5f64);
        child.add_event("retry", vec![KeyValue::new("x402.attempt", 2i64)]);
        child.record_error(&std::io::Error::other("nonce too low"));
    }
    let batches = tracer.collect_sealed(true).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].span_count, 2);
    let (header, req) = common::open(&batches[0].bytes);
    assert_eq!(header.sdk_name, "tracex-rust");
    assert_eq!(header.key_id, tracer.collector_key_id());
    let rs = &req.resource_spans[0];
    assert_eq!(rs.resource.service_name(), Some("pipeline-test"));
    let spans = &rs.scope_spans[0].spans;
    let child = spans.iter().find(|s| s.name == "eth_sendRawTransaction").unwrap();
    let root = spans.iter().find(|s| s.name == "POST /settle").unwrap();
    assert_eq!(root.trace_id, remote.trace_id);
    assert_eq!(root.parent_span_id, Some(remote.span_id));
    assert_eq!(root.flags & 0x300, 0x300, "parent is remote");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(child.parent_span_id, Some(root.span_id));
    assert_eq!(child.trace_id, remote.trace_id);
    assert_eq!(child.attribute("latency"), Some(&Value::Double(12.5)));
    assert_eq!(child.status.code, StatusCode::Error);
    assert_eq!(child.status.message, "nonce too low");
    assert_eq!(child.events.len(), 2);
    assert_eq!(child.events[1].name, "exception");
    assert!(root.end_time_unix_nano >= child.end_time_unix_nano);
    assert_eq!(tracer.stats().spans_sealed, 2);
}

#[test]
fn secrets_are_redacted_before_sealing() {
    let tracer = pump_tracer();
    let pk = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    {
        let mut s = tracer.span("settle");
        s.set_attribute("wallet.private_key", pk);
        s.set_attribute("http.request.header.authorization", "Bearer abc.def.ghi");
        s.set_attribute("x402.payload", "eyJ4NDAyVmVyc2lvbiI6MX0=");
        s.set_attribute("x402.payer", "0x857b06519E91e3A54538791bDbb0E22373e36b66");
    }
    let batches = tracer.collect_sealed(true).unwrap();
    let (_, req) = common::open(&batches[0].bytes);
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.attribute("wallet.private_key"), Some(&Value::from("[REDACTED]")));
    assert_eq!(span.attribute("http.request.header.authorization"), Some(&Value::from("[REDACTED]")));
    assert_eq!(span.attribute("x402.payload"), None, "raw payloads are removed");
    assert_eq!(span.attribute("x402.payer"), Some(&Value::from("0x857b06519E91e3A54538791bDbb0E22373e36b66")));
    // Not even the ciphertext's plaintext holds the key: check the decrypted bytes directly.
    let mut plain = Vec::new();
    tracex_core::encode::encode_request(&req, &mut plain);
    assert!(!plain.windows(pk.len()).any(|w| w == pk.as_bytes()));
    assert!(tracer.stats().values_redacted >= 3);
}

#[test]
fn later_attribute_values_replace_earlier_ones() {
    let tracer = pump_tracer();
    {
        let mut s = tracer.span("verify");
        s.set_attribute("x402.attempt", 1i64).set_attribute("x402.phase", "verify").set_attribute("x402.attempt", 2i64);
    }
    let (_, req) = common::open(&tracer.collect_sealed(true).unwrap()[0].bytes);
    let attrs = &req.resource_spans[0].scope_spans[0].spans[0].attributes;
    assert_eq!(attrs, &vec![KeyValue::new("x402.attempt", 2i64), KeyValue::new("x402.phase", "verify")]);
}

#[test]
fn the_pump_waits_for_a_full_batch_or_the_delay() {
    let tracer = Tracer::builder()
        .with_service_name("pump")
        .with_collector_public_key_pem(common::public_pem())
        .with_batch_config(BatchConfig {
            max_batch_size: 10,
            scheduled_delay: Duration::from_secs(3600),
            ..Default::default()
        })
        .build()
        .unwrap();
    for _ in 0..25 {
        tracer.span("s").end();
    }
    let due = tracer.collect_sealed(false).unwrap();
    assert_eq!(due.iter().map(|b| b.span_count).collect::<Vec<_>>(), vec![10, 10], "full batches only");
    let rest = tracer.collect_sealed(true).unwrap();
    assert_eq!(rest.iter().map(|b| b.span_count).collect::<Vec<_>>(), vec![5]);
    assert!(tracer.collect_sealed(true).unwrap().is_empty());
    assert_eq!(due[0].sequence + 2, rest[0].sequence);
}

#[test]
fn sampled_out_spans_cost_nothing_downstream_but_propagate() {
    let tracer = Tracer::builder()
        .with_service_name("sampling")
        .with_collector_public_key_pem(common::public_pem())
        .with_sampler(Sampler::AlwaysOff)
        .build()
        .unwrap();
    {
        let s = tracer.span("dropped");
        assert!(!s.is_recording());
        assert!(s.traceparent().ends_with("-00"));
        let _g = s.enter();
        let child = tracer.span("child");
        assert_eq!(child.context().trace_id, s.context().trace_id);
    }
    assert!(tracer.collect_sealed(true).unwrap().is_empty());
    assert_eq!(tracer.stats().spans_sampled_out, 2);
    assert_eq!(tracer.stats().spans_recorded, 0);
    // Parent-based sampling follows a sampled remote parent even when roots are sampled out.
    let parent_based = Tracer::builder()
        .with_service_name("sampling")
        .with_collector_public_key_pem(common::public_pem())
        .with_sampler(Sampler::ratio(0.0))
        .build()
        .unwrap();
    let remote =
        SpanContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
    assert!(parent_based.span_builder("follows").parent(Parent::Context(remote)).start().is_recording());
    assert!(!parent_based.span("root").is_recording());
}

#[test]
fn span_limits_drop_and_count() {
    let tracer = Tracer::builder()
        .with_service_name("limits")
        .with_collector_public_key_pem(common::public_pem())
        .with_span_limits(tracex_core::config::SpanLimits {
            max_attributes: 3,
            max_events: 1,
            max_attribute_value_len: 5,
            ..Default::default()
        })
        .build()
        .unwrap();
    {
        let mut s = tracer.span("limited");
        for i in 0..5i64 {
            s.set_attribute(format!("k{i}"), "abcdefghij");
        }
        s.add_event("one", vec![]).add_event("two", vec![]);
    }
    let (_, req) = common::open(&tracer.collect_sealed(true).unwrap()[0].bytes);
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.attributes.len(), 3);
    assert_eq!(span.dropped_attributes_count, 2);
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.dropped_events_count, 1);
    assert_eq!(span.attribute("k0"), Some(&Value::from("abcde")));
}

#[test]
fn the_worker_delivers_and_flush_reports() {
    let transport = MemoryTransport::default();
    let tracer = Tracer::builder()
        .with_service_name("worker")
        .with_collector_public_key_pem(common::public_pem())
        .with_transport(Box::new(transport.clone()))
        .build()
        .unwrap();
    assert!(tracer.has_worker());
    // Two full batches of the default size and a partial one.
    let full = tracex_core::config::DEFAULT_MAX_BATCH_SIZE;
    let n = 2 * full + 276;
    for i in (0i64..).take(n) {
        tracer.span("work").set_attribute("i", i);
    }
    let report = tracer.flush(Duration::from_secs(10)).unwrap();
    // The worker ships full batches on its own, so some may be delivered before flush starts; the
    // report counts only what was delivered during the call, the stats count everything.
    assert!(report.spans_delivered <= n as u64, "{report:?}");
    assert!(report.is_complete(), "{report:?}");
    let received = transport.received();
    let mut sizes: Vec<usize> = received.iter().map(|b| common::open(b).1.span_count()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [276, full, full]);
    let stats = tracer.stats();
    assert_eq!((stats.spans_recorded, stats.spans_sent, stats.batches_sent), (n as u64, n as u64, 3));
    assert_eq!(stats.key_rotations, 1, "one RSA wrap for all batches");
    let report = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(report.is_complete());
    assert!(matches!(tracer.flush(Duration::from_secs(1)), Err(Error::Shutdown)));
    assert!(matches!(tracer.shutdown(Duration::from_secs(1)), Err(Error::Shutdown)));
    // Spans after shutdown are dropped and counted, never queued.
    tracer.span("late").end();
    assert_eq!(tracer.stats().spans_dropped, 1);
}

#[test]
fn the_scheduled_delay_ships_a_partial_batch() {
    let transport = MemoryTransport::default();
    let tracer = Tracer::builder()
        .with_service_name("delay")
        .with_collector_public_key_pem(common::public_pem())
        .with_batch_config(BatchConfig { scheduled_delay: Duration::from_millis(50), ..Default::default() })
        .with_transport(Box::new(transport.clone()))
        .build()
        .unwrap();
    tracer.span("lonely").end();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while transport.received().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(transport.received().len(), 1, "sent without any flush");
}

#[test]
fn dropping_the_last_handle_delivers_what_is_buffered() {
    let transport = MemoryTransport::default();
    {
        let tracer = Tracer::builder()
            .with_service_name("drop")
            .with_collector_public_key_pem(common::public_pem())
            .with_transport(Box::new(transport.clone()))
            .build()
            .unwrap();
        let clone = tracer.clone();
        clone.span("a").end();
        tracer.span("b").end();
    }
    let spans: usize = transport.received().iter().map(|b| common::open(b).1.span_count()).sum();
    assert_eq!(spans, 2);
}

#[test]
fn bad_configuration_fails_with_a_clear_error() {
    let err = Tracer::builder().with_service_name("x").build().unwrap_err();
    assert_eq!(err.code(), "TRACEX_CONFIG");
    assert!(err.to_string().contains("collector public key is required"), "{err}");

    let err = Tracer::builder()
        .with_collector_public_key_pem("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "TRACEX_PUBLIC_KEY");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_collector_fingerprint("00".repeat(32))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "TRACEX_FINGERPRINT_MISMATCH");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_endpoint("ftp://x")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_endpoint("http://127.0.0.1:1")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("API key"), "{err}");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_sampler(Sampler::ratio(1.5))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("[0, 1]"), "{err}");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_transport(Box::new(tracex_core::transport::MemoryTransport::default()))
        .with_audit_key("not a verifier key")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "TRACEX_CONFIG");
    assert!(err.to_string().contains("audit key"), "{err}");

    let err = Tracer::builder().with_collector_public_key_pem("/nonexistent/collector.pem").build().unwrap_err();
    assert!(err.to_string().contains("neither PEM nor a readable file"), "{err}");

    let err = Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_spool_dir("/proc/version/spool")
        .with_transport(Box::new(MemoryTransport::default()))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "TRACEX_SPOOL");

    let fp = tracex_core::CollectorKey::from_pem(&common::public_pem()).unwrap().key_id().to_hex();
    Tracer::builder()
        .with_collector_public_key_pem(common::public_pem())
        .with_collector_fingerprint(fp)
        .build()
        .unwrap();
}

#[test]
fn record_buffers_from_host_packages_are_sealed_like_native_spans() {
    use tracex_core::records::Encoder;
    let tracer = pump_tracer();
    let made_natively = {
        tracer.in_span("verify", |s| {
            s.set_attribute("x402.scheme", "exact").set_attribute("x402.attempt", 1i64);
        });
        let batches = tracer.collect_sealed(true).unwrap();
        let (_, req) = common::open(&batches[0].bytes);
        req.resource_spans[0].scope_spans[0].spans[0].clone()
    };
    let mut enc = Encoder::new(made_natively.start_time_unix_nano - 5_000_000);
    for _ in 0..3 {
        enc.push(&made_natively);
    }
    enc.sampled_out(7);
    let before = tracer.stats().spans_sampled_out;
    assert_eq!(tracer.ingest_records(&enc.finish()).unwrap(), 3);
    assert_eq!(tracer.stats().spans_sampled_out, before + 7);
    let batches = tracer.collect_sealed(true).unwrap();
    let (_, req) = common::open(&batches[0].bytes);
    let spans = &req.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| *s == made_natively));

    let err = tracer.ingest_records(b"TXR1 not really").unwrap_err();
    assert_eq!(err.code(), "TRACEX_INVALID_RECORDS");
    assert!(tracer.collect_sealed(true).unwrap().is_empty(), "a bad buffer records nothing");
}

/// A collector's audit key for the receipt tests: the Ed25519 key of seed `seed`, named as a log.
fn audit_key(seed: u8) -> (ed25519_dalek::SigningKey, tracex_core::audit::VerifierKey) {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let vkey = tracex_core::audit::VerifierKey::new("tracex.test/pump", &signing.verifying_key().to_bytes()).unwrap();
    (signing, vkey)
}

/// The `tracex-receipt` header a collector holding `signing` would send for `bytes`.
fn receipt_header(signing: &ed25519_dalek::SigningKey, bytes: &[u8]) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    use sha2::Digest as _;
    use tracex_core::audit::{Receipt, note};
    let name = "tracex.test/pump";
    let receipt = Receipt {
        origin: name.into(),
        leaf_index: 3,
        batch_id: tracex_core::seal::parse(bytes).unwrap().header.batch_id,
        envelope_sha256: sha2::Sha256::digest(bytes).into(),
        received_at_unix_nano: 1_764_000_000_000_000_000,
    };
    let text = receipt.to_text();
    let hash = note::key_hash(name, &signing.verifying_key().to_bytes());
    let signed = format!("{text}\n{}", note::signature_line(name, hash, &signing.sign(text.as_bytes()).to_bytes()));
    base64::engine::general_purpose::STANDARD.encode(signed)
}

/// A host-pump tracer (no worker) that pins the audit key `vkey`, and two batches it sealed, one
/// span each.
fn pinned_pump_tracer(vkey: &tracex_core::audit::VerifierKey) -> (Tracer, Vec<tracex_core::SealedBatch>) {
    let tracer = tracex_core::options::Options {
        collector_public_key: Some(common::public_pem()),
        audit_key: Some(vkey.to_string()),
        ..Default::default()
    }
    .into_builder(tracex_core::options::Spelling::Camel)
    .unwrap()
    .build()
    .unwrap();
    let mut batches = Vec::new();
    for name in ["a", "b"] {
        tracer.span(name).end();
        batches.extend(tracer.collect_sealed(true).unwrap());
    }
    (tracer, batches)
}

#[test]
fn a_host_pump_hands_each_receipt_header_to_the_core_which_verifies_and_counts_it() {
    let (signing, vkey) = audit_key(7);
    let (other_signing, _) = audit_key(8);
    let (tracer, batches) = pinned_pump_tracer(&vkey);
    assert!(!tracer.has_worker());
    let [a, b] = &batches[..] else { panic!("{} batches", batches.len()) };
    let counts = |t: &Tracer| (t.stats().receipts_verified, t.stats().receipts_failed);

    tracer.check_receipt(a, Some(&receipt_header(&signing, &a.bytes)));
    assert_eq!(counts(&tracer), (1, 0));
    // Refused, each counted once: another batch's receipt, no receipt, not base64, another key.
    tracer.check_receipt(b, Some(&receipt_header(&signing, &a.bytes)));
    tracer.check_receipt(b, None);
    tracer.check_receipt(b, Some("not base64!"));
    tracer.check_receipt(b, Some(&receipt_header(&other_signing, &b.bytes)));
    assert_eq!(counts(&tracer), (1, 4));
    tracer.check_receipt(b, Some(&format!(" {} ", receipt_header(&signing, &b.bytes))));
    assert_eq!(counts(&tracer), (2, 4));

    // Without a pinned key nothing is checked or counted.
    let unpinned = pump_tracer();
    unpinned.check_receipt(a, None);
    unpinned.check_receipt(a, Some(&receipt_header(&signing, &a.bytes)));
    assert_eq!(counts(&unpinned), (0, 0));
    assert!(unpinned.pending_receipt(a, Some(&receipt_header(&signing, &a.bytes))).is_none());
}

#[test]
fn a_host_that_verifies_ed25519_itself_gets_the_signed_text_and_the_core_keeps_the_verdict() {
    // The WASM package's two steps: the core checks everything but the signature, the host's
    // WebCrypto verifies that, and the core counts (verifying itself when the host cannot tell).
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let (signing, vkey) = audit_key(7);
    let (other_signing, _) = audit_key(8);
    let (tracer, batches) = pinned_pump_tracer(&vkey);
    let [a, b] = &batches[..] else { panic!("{} batches", batches.len()) };
    let counts = |t: &Tracer| (t.stats().receipts_verified, t.stats().receipts_failed);

    let good = tracer.pending_receipt(a, Some(&receipt_header(&signing, &a.bytes))).unwrap();
    // What the host verifies: the note's text, one 64-byte signature, the pinned key.
    let text = good.message().unwrap();
    assert!(text.starts_with(b"tracex receipt v1\ntracex.test/pump\n3\n"), "{}", String::from_utf8_lossy(text));
    let [sig] = good.signatures() else { panic!("{:?}", good.signatures()) };
    assert_eq!(sig.as_slice(), signing.sign(text).to_bytes().as_slice());
    assert_eq!(good.public_key(), signing.verifying_key().to_bytes());
    tracer.finish_receipt(&good, Some(true));
    tracer.finish_receipt(&good, None); // the host could not tell: the core verifies
    assert_eq!(counts(&tracer), (2, 0));
    tracer.finish_receipt(&good, Some(false)); // the host's signature check failed
    assert_eq!(counts(&tracer), (2, 1));

    // Whatever the host says, a receipt the core refused stays refused, and has nothing to verify.
    for refused in [
        tracer.pending_receipt(b, Some(&receipt_header(&signing, &a.bytes))).unwrap(),
        tracer.pending_receipt(b, None).unwrap(),
        tracer.pending_receipt(b, Some("not base64!")).unwrap(),
        tracer.pending_receipt(b, Some(&receipt_header(&other_signing, &b.bytes))).unwrap(),
    ] {
        assert_eq!((refused.message(), refused.signatures().len()), (None, 0));
        tracer.finish_receipt(&refused, Some(true));
    }
    assert_eq!(counts(&tracer), (2, 5));

    // A flipped signature byte: the host is handed it as is; verified here, it fails.
    let header = receipt_header(&signing, &b.bytes);
    let mut note = base64::engine::general_purpose::STANDARD.decode(&header).unwrap();
    let at = note.len() - 10;
    note[at] = if note[at] == b'A' { b'B' } else { b'A' };
    let flipped = tracer.pending_receipt(b, Some(&base64::engine::general_purpose::STANDARD.encode(&note))).unwrap();
    assert!(flipped.message().is_some());
    tracer.finish_receipt(&flipped, None);
    assert_eq!(counts(&tracer), (2, 6));
}
