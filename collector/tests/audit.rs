//! The audit trail over real HTTP against the real binary (SQLite): receipts in acknowledgements,
//! signed checkpoints, inclusion and consistency proofs — each checked with the core's verifiers,
//! as an SDK, a witness or an auditor would — and the API's answers to bad questions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Collector, client, create_key, get_json, post_batch, public_key_pem, temp_dir};
use serde_json::Value as J;
use sha2::Digest as _;
use tracex_core::SpanData;
use tracex_core::audit::{Checkpoint, Receipt, VerifierKey, leaf_hash, verify_consistency, verify_inclusion};
use tracex_core::seal::CollectorKey;

fn span(trace: u8, span: u8) -> SpanData {
    common::settle_span(trace, span)
}

fn seal(key: &CollectorKey, spans: &[SpanData]) -> (Vec<u8>, [u8; 16]) {
    common::seal_spans(key, "audited", spans)
}

fn hash(s: &J) -> [u8; 32] {
    B64.decode(s.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn hashes(v: &J) -> Vec<[u8; 32]> {
    v.as_array().unwrap().iter().map(hash).collect()
}

fn get_text(url: &str, key: &str) -> (u16, String) {
    let r = client().get(url).bearer_auth(key).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The latest checkpoint, once it covers `size` leaves.
fn checkpoint_covering(url: &str, read: &str, key: &VerifierKey, size: u64) -> (Checkpoint, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, note) = get_text(&format!("{url}/api/v1/audit/checkpoint"), read);
        if status == 200 {
            let c = Checkpoint::open(&note, key.name(), key).unwrap();
            if c.size >= size {
                return (c, note);
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint of {size} leaves (last: {status} {note})");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn receipts_checkpoints_and_proofs_verify_with_the_core() {
    let dir = temp_dir("audit");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let other_read = create_key(&dir, "other", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let config = dir.join("collector.toml");
    std::fs::write(&config, "audit_checkpoint_interval_ms = 100\n").unwrap();
    let c = Collector::start_with(&dir, &["--config", config.to_str().unwrap()]);
    let url = &c.url;

    // The audit key is public.
    let audit: J = client().get(format!("{url}/v1/audit-key")).send().unwrap().json().unwrap();
    let vkey = VerifierKey::parse(audit["verifier_key"].as_str().unwrap()).unwrap();
    assert_eq!(audit["origin"], vkey.name());

    // Before the first batch there is no checkpoint: the note's route says so with a 404, the
    // listing's `latest=true` (what the dashboard asks) with an empty list.
    let (status, body) = get_json(&format!("{url}/api/v1/audit/checkpoint"), &read);
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("no_checkpoint")), "{body}");
    let (status, body) = get_json(&format!("{url}/api/v1/audit/checkpoints?latest=true"), &read);
    assert_eq!((status, body), (200, serde_json::json!({ "checkpoints": [] })));

    // Each acknowledgement carries a receipt for exactly the bytes sent.
    let mut sent = Vec::new();
    for i in 1..6u8 {
        let (body, batch_id) = seal(&key, &[span(i, 1), span(i, 2)]);
        let envelope: [u8; 32] = sha2::Sha256::digest(&body).into();
        let (status, ack) = post_batch(url, &ingest, body.clone());
        assert_eq!(status, 200, "{ack}");
        let receipt = ack["receipt"].as_str().unwrap();
        let r = Receipt::verify(receipt, &vkey, &batch_id, &envelope).unwrap();
        assert_eq!(r.leaf_index, ack["leaf_index"].as_u64().unwrap());
        // A flipped byte anywhere fails: in the text, or in the signature.
        let mut flipped = receipt.as_bytes().to_vec();
        for at in [25, flipped.len() - 10] {
            flipped[at] ^= 1;
            let bad = String::from_utf8_lossy(&flipped).into_owned();
            assert!(Receipt::verify(&bad, &vkey, &batch_id, &envelope).is_err(), "flipped byte {at}");
            flipped[at] ^= 1;
        }
        // Not a receipt for other bytes.
        assert!(Receipt::verify(receipt, &vkey, &batch_id, &[0; 32]).is_err());
        sent.push((body, batch_id, r.leaf_index, i));
    }
    // A retry gets the stored batch's receipt.
    let (status, ack) = post_batch(url, &ingest, sent[1].0.clone());
    assert_eq!((status, ack["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(ack["leaf_index"].as_u64(), Some(sent[1].2));
    let envelope: [u8; 32] = sha2::Sha256::digest(&sent[1].0).into();
    Receipt::verify(ack["receipt"].as_str().unwrap(), &vkey, &sent[1].1, &envelope).unwrap();

    // The next checkpoint covers them; each batch's inclusion proof verifies against its root.
    let last = sent.iter().map(|s| s.2).max().unwrap();
    let (first_cp, _) = checkpoint_covering(url, &read, &vkey, last + 1);
    for (_, batch_id, leaf, _) in &sent {
        let (status, p) = get_json(&format!("{url}/api/v1/audit/inclusion?batch_id={}", hex::encode(batch_id)), &read);
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["tree_size"].as_u64(), Some(first_cp.size));
        let proof = &p["proofs"][0];
        assert_eq!(proof["leaf_index"].as_u64(), Some(*leaf));
        let leaf_bytes = B64.decode(proof["leaf"].as_str().unwrap()).unwrap();
        assert_eq!(leaf_hash(&leaf_bytes), hash(&proof["leaf_hash"]));
        verify_inclusion(&leaf_hash(&leaf_bytes), *leaf, first_cp.size, &hashes(&proof["hashes"]), &first_cp.root)
            .unwrap();
        // A proof for another leaf index does not verify.
        assert!(
            verify_inclusion(
                &leaf_hash(&leaf_bytes),
                leaf ^ 1,
                first_cp.size,
                &hashes(&proof["hashes"]),
                &first_cp.root
            )
            .is_err()
        );
    }
    // OTLP requests get leaves too, marked as such, committing to the body as received.
    let otlp_body = common::otlp::protobuf(vec![common::otlp::span(77, 1, "otlp-settle")]);
    let r = client()
        .post(format!("{url}/v1/traces"))
        .bearer_auth(&ingest)
        .header("content-type", "application/x-protobuf")
        .body(otlp_body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (otlp_cp, _) = checkpoint_covering(url, &read, &vkey, first_cp.size + 1);
    let (status, p) = get_json(&format!("{url}/api/v1/audit/inclusion?trace_id={}", hex::encode([77u8; 16])), &read);
    assert_eq!(status, 200, "{p}");
    let leaf = B64.decode(p["proofs"][0]["leaf"].as_str().unwrap()).unwrap();
    let leaf = tracex_collector::audit::leaf::Leaf::decode(&leaf).unwrap();
    assert_eq!(leaf.origin, tracex_collector::audit::leaf::Origin::Otlp);
    // The request's identity: the format and the (inflated) body, the same for a gzipped retry.
    let identity = sha2::Sha256::new().chain_update(b"otlp-protobuf\0").chain_update(&otlp_body).finalize();
    assert_eq!(leaf.envelope_sha256, <[u8; 32]>::from(identity));
    assert_eq!((leaf.spans, leaf.sequence), (1, 0));
    assert_eq!(p["tree_size"].as_u64(), Some(otlp_cp.size));

    // By trace id too.
    let (status, p) = get_json(&format!("{url}/api/v1/audit/inclusion?trace_id={}", hex::encode([3u8; 16])), &read);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["proofs"].as_array().unwrap().len(), 1);

    // More batches, a later checkpoint, and the log only grew between the two.
    for i in 10..13u8 {
        let (body, _) = seal(&key, &[span(i, 1)]);
        assert_eq!(post_batch(url, &ingest, body).0, 200);
    }
    let (second_cp, _) = checkpoint_covering(url, &read, &vkey, first_cp.size + 3);
    let (status, p) =
        get_json(&format!("{url}/api/v1/audit/consistency?from={}&to={}", first_cp.size, second_cp.size), &read);
    assert_eq!(status, 200, "{p}");
    verify_consistency(first_cp.size, second_cp.size, &first_cp.root, &second_cp.root, &hashes(&p["hashes"])).unwrap();
    let (_, listed) = get_json(&format!("{url}/api/v1/audit/checkpoints?from_size={}", first_cp.size), &read);
    let sizes: Vec<u64> =
        listed["checkpoints"].as_array().unwrap().iter().map(|c| c["size"].as_u64().unwrap()).collect();
    assert!(sizes.contains(&first_cp.size) && sizes.contains(&second_cp.size), "old checkpoints are kept: {sizes:?}");
    // `latest=true` lists exactly the latest one (no batch arrives meanwhile), with its time.
    let (status, latest) = get_json(&format!("{url}/api/v1/audit/checkpoints?latest=true"), &read);
    assert_eq!(status, 200, "{latest}");
    let (_, note) = get_text(&format!("{url}/api/v1/audit/checkpoint"), &read);
    let latest = latest["checkpoints"].as_array().unwrap();
    assert_eq!(latest.len(), 1, "{latest:?}");
    let newest = Checkpoint::open(&note, vkey.name(), &vkey).unwrap();
    assert_eq!(latest[0]["note"].as_str(), Some(note.as_str()));
    assert_eq!(latest[0]["size"].as_u64(), Some(newest.size));
    assert_eq!(latest[0]["root_hash"].as_str(), Some(B64.encode(newest.root).as_str()));
    // The time listed is the one signed in the note.
    let signed_at = latest[0]["signed_at_unix_nano"].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(newest.signed_at_unix_nano, Some(signed_at));
    assert!(signed_at >= first_cp.signed_at_unix_nano.unwrap(), "{signed_at} {first_cp:?}");
    assert_eq!(sizes.last(), Some(&newest.size));

    // Bad questions get clear answers.
    let bad = |q: &str, key: &str| get_json(&format!("{url}/api/v1/audit/{q}"), key);
    let id = hex::encode(sent[0].1);
    for (q, status, code) in [
        (format!("inclusion?batch_id={id}&trace_id={id}"), 400, "invalid_query"),
        ("inclusion".to_owned(), 400, "invalid_query"),
        ("inclusion?batch_id=zz".to_owned(), 400, "invalid_query"),
        (format!("inclusion?batch_id={}", hex::encode([0xee; 16])), 404, "not_found"),
        (format!("inclusion?batch_id={id}&size=99999999"), 400, "invalid_query"),
        ("consistency".to_owned(), 400, "invalid_query"),
        (format!("consistency?from={}&to=1", second_cp.size), 400, "invalid_query"),
        ("checkpoints?limit=-1".to_owned(), 400, "invalid_query"),
        ("checkpoints?bogus=1".to_owned(), 400, "invalid_query"),
        ("checkpoints?latest=yes".to_owned(), 400, "invalid_query"),
        ("checkpoints?latest=true&limit=1".to_owned(), 400, "invalid_query"),
        ("checkpoints?from_size=0&latest=true".to_owned(), 400, "invalid_query"),
    ] {
        let (s, body) = bad(&q, &read);
        assert_eq!((s, body["error"]["code"].as_str()), (status, Some(code)), "{q}: {body}");
    }
    // Another project's read key does not see this project's batches; an ingest key reads nothing.
    assert_eq!(bad(&format!("inclusion?batch_id={id}"), &other_read).0, 404);
    assert_eq!(bad("checkpoint", &ingest).0, 403);
    assert_eq!(bad("checkpoint", "tx_nope").0, 401);
}

#[test]
fn the_last_batches_get_a_checkpoint_at_shutdown() {
    let dir = temp_dir("audit-stop");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let config = dir.join("collector.toml");
    // The longest interval allowed: the timer's first tick finds the log empty and the next is
    // 10 s away, so the checkpoint after the restart is the shutdown's.
    std::fs::write(&config, "audit_checkpoint_interval_ms = 10000\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let c = Collector::start_with(&dir, &args);
    // The first tick fires at start, on an empty log: nothing to sign.
    std::thread::sleep(Duration::from_millis(300));
    let (body, _) = seal(&key, &[span(1, 1)]);
    let (_, ack) = post_batch(&c.url, &ingest, body);
    let leaf = ack["leaf_index"].as_u64().unwrap();
    assert!(c.terminate().success());
    let c = Collector::start_with(&dir, &args);
    let audit: J = client().get(format!("{}/v1/audit-key", c.url)).send().unwrap().json().unwrap();
    let vkey = VerifierKey::parse(audit["verifier_key"].as_str().unwrap()).unwrap();
    let (status, note) = get_text(&format!("{}/api/v1/audit/checkpoint", c.url), &read);
    assert_eq!(status, 200, "{note}");
    assert!(Checkpoint::open(&note, vkey.name(), &vkey).unwrap().size > leaf);
}

/// `tracex-collector audit verify` on the real binary's store: OK after a run; after one byte of
/// one stored span changes, it names that batch and span and exits 1; after the log is rolled
/// back, a checkpoint kept from before says so.
#[test]
fn audit_verify_cli_names_the_altered_span_and_a_rolled_back_log() {
    let dir = temp_dir("audit-verify");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let c = Collector::start(&dir);
    let mut acks = Vec::new();
    for i in 1..=3u8 {
        let (body, batch_id) = seal(&key, &[span(i, 1), span(i, 2)]);
        let (status, ack) = post_batch(&c.url, &ingest, body);
        assert_eq!(status, 200, "{ack}");
        acks.push((batch_id, ack["leaf_index"].as_u64().unwrap()));
    }
    let vkey: J = client().get(format!("{}/v1/audit-key", c.url)).send().unwrap().json().unwrap();
    let vkey = VerifierKey::parse(vkey["verifier_key"].as_str().unwrap()).unwrap();
    let (_, kept) = checkpoint_covering(&c.url, &read, &vkey, 3);
    let kept_path = dir.join("kept-checkpoint");
    std::fs::write(&kept_path, &kept).unwrap();
    // While the collector keeps storing batches, verify checks what was there when it began.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, url, ingest, key) = (stop.clone(), c.url.clone(), ingest.clone(), key.clone());
        std::thread::spawn(move || {
            let mut n = 0u8;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let (body, _) = seal(&key, &[span(100 + n % 100, 1)]);
                assert_eq!(post_batch(&url, &ingest, body).0, 200);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (ok, out, err) = common::cli(&dir, &["audit", "verify"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    assert!(ok, "verify while serving: {out}{err}");
    assert!(c.terminate().success());

    let (ok, out, err) = common::cli(&dir, &["audit", "verify", "--checkpoint", kept_path.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.trim_end().ends_with("OK"), "{out}");

    // One byte of the body of span 2 of trace 2, changed in the database file.
    let db = rusqlite::Connection::open(dir.join("tracex.db")).unwrap();
    let trace2 = [2u8; 16];
    let span2 = [2u8; 8];
    let seq: i64 = db.query_row("SELECT id FROM traces WHERE trace_id = ?1", [&trace2[..]], |r| r.get(0)).unwrap();
    let mut body: Vec<u8> = db
        .query_row("SELECT body FROM spans WHERE trace_seq = ?1 AND span_id = ?2", (seq, &span2[..]), |r| r.get(0))
        .unwrap();
    let last = body.len() - 1;
    body[last] ^= 1;
    db.execute("UPDATE spans SET body = ?1 WHERE trace_seq = ?2 AND span_id = ?3", (&body, seq, &span2[..])).unwrap();
    let (ok, out, err) = common::cli(&dir, &["audit", "verify"]);
    assert!(!ok, "{out}");
    let (batch_id, leaf) = acks[1];
    let expected = format!(
        "altered: project \"acme\" batch {} (leaf {leaf}) span {}/{}",
        hex::encode(batch_id),
        hex::encode(trace2),
        hex::encode(span2)
    );
    assert!(out.contains(&expected), "{out}");
    assert!(out.contains("1 problems") && err.contains("does not verify"), "{out}{err}");
    body[last] ^= 1;
    db.execute("UPDATE spans SET body = ?1 WHERE trace_seq = ?2 AND span_id = ?3", (&body, seq, &span2[..])).unwrap();

    // The log rolled back to before the third batch (every later leaf, its rows and every stored
    // checkpoint removed): only the kept checkpoint can tell.
    let last_leaf = i64::try_from(acks[2].1).unwrap();
    db.execute("DELETE FROM audit_leaves WHERE idx >= ?1", [last_leaf]).unwrap();
    db.execute("DELETE FROM audit_checkpoints", []).unwrap();
    db.execute("DELETE FROM spans WHERE leaf_index >= ?1", [last_leaf]).unwrap();
    let (ok, out, _) = common::cli(&dir, &["audit", "verify"]);
    assert!(ok, "without the kept checkpoint the shorter log is self-consistent: {out}");
    let (ok, out, _) = common::cli(&dir, &["audit", "verify", "--checkpoint", kept_path.to_str().unwrap()]);
    assert!(!ok && out.contains("does not extend the kept checkpoint of size 3"), "{out}");
}

/// A batch sealed by "instance" `instance` with `sequence`, under a fresh data key: what an SDK
/// instance seals, with the instance id and number chosen by the test (a real `Sealer` draws its
/// instance id and counts from 1 on its own).
fn seal_as(key: &CollectorKey, instance: [u8; 8], sequence: u64, spans: &[SpanData]) -> (Vec<u8>, [u8; 16]) {
    use tracex_core::seal::Header;
    let mut random = [0u8; 32 + 16 + 12];
    tracex_core::ids::fill_random(&mut random).unwrap();
    let data_key: [u8; 32] = random[..32].try_into().unwrap();
    let batch_id: [u8; 16] = random[32..48].try_into().unwrap();
    let header = Header {
        flags: 0,
        key_id: key.key_id(),
        batch_id,
        instance_id: instance,
        sequence,
        created_at_unix_nano: 1_763_900_000_000_000_000 + sequence,
        sdk_name: "tracex-rust".into(),
        sdk_version: "0.1.0".into(),
        wrapped_key: key.wrap(&data_key).unwrap(),
        nonce: random[48..].try_into().unwrap(),
    };
    (common::seal_under(&header, &data_key, "restarted", spans), batch_id)
}

/// An SDK instance id used again with its numbering started over (a cloned VM or container
/// snapshot, an SDK bug) is stored — its batches are real — but reported: the gap report names each
/// number stored under two batch ids, and the log still reports no gap for that instance.
#[test]
fn an_instance_id_reused_with_its_numbers_started_over_is_reported() {
    let dir = temp_dir("audit-reused");
    let ingest = create_key(&dir, "acme", "ingest");
    let read = create_key(&dir, "acme", "read");
    let key = CollectorKey::from_pem(&public_key_pem(&dir)).unwrap();
    let c = Collector::start(&dir);
    let instance = *b"clone-me";
    let mut first = Vec::new();
    for sequence in 1..=3u8 {
        let (body, id) = seal_as(&key, instance, u64::from(sequence), &[span(sequence, 1)]);
        assert_eq!(post_batch(&c.url, &ingest, body).0, 200);
        first.push(id);
    }
    let (status, report) = get_json(&format!("{}/api/v1/audit/gaps", c.url), &read);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["instances"].as_array().unwrap().len(), 0, "nothing to report yet: {report}");

    // The same instance id from the start again, with other spans.
    let mut second = Vec::new();
    for sequence in 1..=2u8 {
        let (body, id) = seal_as(&key, instance, u64::from(sequence), &[span(10 + sequence, 1)]);
        assert_eq!(post_batch(&c.url, &ingest, body).0, 200);
        second.push(id);
    }
    let (status, report) = get_json(&format!("{}/api/v1/audit/gaps", c.url), &read);
    assert_eq!(status, 200, "{report}");
    let instances = report["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{report}");
    let i = &instances[0];
    assert_eq!(i["instance_id"], hex::encode(instance), "{report}");
    assert_eq!((i["batches"].as_u64(), i["last_sequence"].as_u64()), (Some(5), Some(3)), "{report}");
    assert_eq!(i["missing_total"], 0, "{report}");
    let reused: Vec<(u64, Vec<String>)> = i["reused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut ids: Vec<String> =
                r["batch_ids"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_owned()).collect();
            ids.sort();
            (r["sequence"].as_u64().unwrap(), ids)
        })
        .collect();
    let pair = |n: usize| {
        let mut ids = vec![hex::encode(first[n]), hex::encode(second[n])];
        ids.sort();
        ids
    };
    assert_eq!(reused, [(1, pair(0)), (2, pair(1))], "{report}");
    // Every batch was stored: 5 traces of one span.
    assert_eq!(common::all_traces(&c.url, &read, "&service=restarted").len(), 5);
}
