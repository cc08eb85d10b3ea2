//! `audit.json`: the audit trail's hashing, proofs and signed notes. The Merkle part reproduces
//! the published RFC 6962 vectors (the leaves of Certificate Transparency's tests, and the
//! happy-path inclusion and consistency proofs of `transparency-dev/merkle`'s `testdata/`, which
//! this generator asserts it regenerates); the note part is Go's `sumdb/note` example; the
//! checkpoints and receipts are signed here by a fixed test key, with the mutations every verifier
//! must refuse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value as J, json};
use tracex_core::audit::merkle::{consistency_proof, inclusion_proof, leaf_hash, root};
use tracex_core::audit::note::{key_hash, signature_line};
use tracex_core::audit::{Checkpoint, Hash, Receipt, VerifierKey};

/// The leaves of RFC 6962's reference tests (hex).
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// `transparency-dev/merkle` `testdata/inclusion/{1..4}/happy-path.json`: (index, size, proof).
const PUBLISHED_INCLUSION: [(usize, usize, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        5,
        8,
        &[
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (2, 3, &["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="]),
    (
        1,
        5,
        &[
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
];

/// `transparency-dev/merkle` `testdata/consistency/{1..4}/happy-path.json`: (old size, new size, proof).
const PUBLISHED_CONSISTENCY: [(usize, usize, &[&str]); 4] = [
    (
        1,
        8,
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        6,
        8,
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (2, 5, &["Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=", "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="]),
    (
        6,
        7,
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
];

/// The published roots of sizes 1, 3, 5, 6, 7 and 8 (the same files).
const PUBLISHED_ROOTS: [(usize, &str); 6] = [
    (1, "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="),
    (3, "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc="),
    (5, "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ="),
    (6, "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8="),
    (7, "3bib5AOAnjJXUNPSY814kpwpQreUKjS3fhIslZSnTIw="),
    (8, "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="),
];

/// Seed of the test audit key (never a real key: it is in the repository).
const TEST_SEED: [u8; 32] = *b"tracex audit test key, not real!";
/// Seed of a second key of the same name, whose signatures the test key's verifier must refuse.
const OTHER_SEED: [u8; 32] = *b"another audit key, also not real";

fn b64(h: &Hash) -> J {
    J::String(B64.encode(h))
}

fn proofs(p: &[Hash]) -> J {
    J::Array(p.iter().map(b64).collect())
}

pub fn write(root_dir: &std::path::Path) {
    let leaves: Vec<Hash> = LEAVES.iter().map(|h| leaf_hash(&hex::decode(h).unwrap())).collect();
    for (size, want) in PUBLISHED_ROOTS {
        assert_eq!(B64.encode(root(&leaves[..size])), want, "root of {size}");
    }
    let mut inclusion = Vec::new();
    for (index, size, want) in PUBLISHED_INCLUSION {
        let p = inclusion_proof(&leaves[..size], index);
        assert_eq!(p.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(), want, "inclusion {index} of {size}");
        inclusion.push(json!({"index": index, "size": size, "leaf_hash": b64(&leaves[index]),
            "root": b64(&root(&leaves[..size])), "proof": proofs(&p), "source": "transparency-dev/merkle"}));
    }
    for size in 1..=8 {
        for index in 0..size {
            if PUBLISHED_INCLUSION.iter().any(|(i, s, _)| (*i, *s) == (index, size)) {
                continue;
            }
            inclusion.push(json!({"index": index, "size": size, "leaf_hash": b64(&leaves[index]),
                "root": b64(&root(&leaves[..size])), "proof": proofs(&inclusion_proof(&leaves[..size], index))}));
        }
    }
    let mut consistency = Vec::new();
    for (old, new, want) in PUBLISHED_CONSISTENCY {
        let p = consistency_proof(&leaves[..new], old);
        assert_eq!(p.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(), want, "consistency {old} → {new}");
    }
    for new in 1..=8 {
        for old in 0..=new {
            let p = consistency_proof(&leaves[..new], old);
            let published = PUBLISHED_CONSISTENCY.iter().any(|(o, n, _)| (*o, *n) == (old, new));
            let mut case = json!({"old_size": old, "new_size": new, "old_root": b64(&root(&leaves[..old])),
                "new_root": b64(&root(&leaves[..new])), "proof": proofs(&p)});
            if published {
                case["source"] = J::String("transparency-dev/merkle".into());
            }
            consistency.push(case);
        }
    }

    let signing = SigningKey::from_bytes(&TEST_SEED);
    let public = signing.verifying_key().to_bytes();
    // The log's origin is its key's name, as the collector signs (a verifier takes one from the other).
    let origin = "tracex.test/log";
    let name = origin;
    let vkey = VerifierKey::new(name, &public).unwrap();
    let sign_by = |key: &SigningKey, text: &str| {
        let public = key.verifying_key().to_bytes();
        format!("{text}\n{}", signature_line(name, key_hash(name, &public), &key.sign(text.as_bytes()).to_bytes()))
    };
    let sign = |text: &str| sign_by(&signing, text);
    const SIGNED_AT: u64 = 1_764_000_000_987_654_321;
    let good = Checkpoint {
        origin: origin.into(),
        size: 8,
        root: root(&leaves),
        signed_at_unix_nano: Some(SIGNED_AT),
        extensions: vec![],
    };
    let signed = sign(&good.to_text());
    let forked = Checkpoint { root: root(&leaves[..7]), ..good.clone() };
    let untimed = Checkpoint { signed_at_unix_nano: None, ..good.clone() };
    // The signing time is a string, as every unix-nanosecond time in the vectors: JS numbers lose
    // digits past 2^53.
    let at = SIGNED_AT.to_string();
    let checkpoints = json!([
        {"desc": "valid", "note": signed, "valid": true, "size": 8, "root": b64(&good.root), "signed_at_unix_nano": at},
        {"desc": "a witness's cosignature is ignored", "note": format!("{signed}{}", signature_line("witness.example", [0, 0, 0, 1], &[0x42; 64])), "valid": true, "size": 8, "root": b64(&good.root), "signed_at_unix_nano": at},
        {"desc": "without a time line (signed before the collector wrote one)", "note": sign(&untimed.to_text()), "valid": true, "size": 8, "root": b64(&good.root), "signed_at_unix_nano": null},
        {"desc": "root changed after signing", "note": signed.replace(&B64.encode(good.root), &B64.encode(forked.root)), "valid": false},
        {"desc": "size changed after signing", "note": signed.replacen("\n8\n", "\n9\n", 1), "valid": false},
        {"desc": "time changed after signing", "note": signed.replacen(&format!("time {SIGNED_AT}"), &format!("time {}", SIGNED_AT + 1), 1), "valid": false},
        {"desc": "a malformed time line (a leading zero), validly signed", "note": sign(&format!("{}time 0{SIGNED_AT}\n", untimed.to_text())), "valid": false},
        {"desc": "a forked tree, validly signed: only consistency catches it", "note": sign(&forked.to_text()), "valid": true, "size": 8, "root": b64(&forked.root), "signed_at_unix_nano": at},
        {"desc": "another origin", "note": sign(&Checkpoint { origin: "tracex.test/other".into(), ..good.clone() }.to_text()), "valid": false},
        {"desc": "signature byte flipped", "note": flip_signature(&signed), "valid": false},
        {"desc": "no signature block", "note": good.to_text(), "valid": false},
    ]);
    let receipt = Receipt {
        origin: origin.into(),
        leaf_index: 5,
        batch_id: *b"batch-0123456789",
        envelope_sha256: leaf_hash(b"the sealed envelope as sent"),
        received_at_unix_nano: 1_764_000_000_123_456_789,
    };
    let signed_receipt = sign(&receipt.to_text());
    let valid = |desc: &str, note: &str| {
        json!({"desc": desc, "note": note, "verifier_key": vkey.to_string(), "batch_id": hex::encode(receipt.batch_id),
            "envelope_sha256": hex::encode(receipt.envelope_sha256), "valid": true, "leaf_index": receipt.leaf_index,
            "received_at_unix_nano": receipt.received_at_unix_nano.to_string()})
    };
    let invalid = |desc: &str, note: &str, batch_id: [u8; 16], envelope_sha256: Hash| {
        json!({"desc": desc, "note": note, "verifier_key": vkey.to_string(), "batch_id": hex::encode(batch_id),
            "envelope_sha256": hex::encode(envelope_sha256), "valid": false})
    };
    let (batch, envelope) = (receipt.batch_id, receipt.envelope_sha256);
    let mut other_envelope = envelope;
    other_envelope[31] ^= 1;
    let receipts = json!([
        valid("valid", &signed_receipt),
        valid(
            "a witness's cosignature is ignored",
            &format!("{signed_receipt}{}", signature_line("witness.example", [0, 0, 0, 1], &[0x42; 64]))
        ),
        // The leaf index 5 becomes 4: still a well-formed receipt, no longer the signed one.
        invalid("a byte of the text flipped", &signed_receipt.replacen("\n5\n", "\n4\n", 1), batch, envelope),
        invalid("signature byte flipped", &flip_signature(&signed_receipt), batch, envelope),
        invalid("for another batch id", &signed_receipt, *b"batch-0123456780", envelope),
        invalid("for another envelope hash", &signed_receipt, batch, other_envelope),
        invalid(
            "signed by another key of the same name",
            &sign_by(&SigningKey::from_bytes(&OTHER_SEED), &receipt.to_text()),
            batch,
            envelope
        ),
        invalid(
            "signed for another log",
            &sign(&Receipt { origin: "tracex.test/other".into(), ..receipt.clone() }.to_text()),
            batch,
            envelope
        ),
        invalid("no signature block", &receipt.to_text(), batch, envelope),
    ]);
    let doc = json!({
        "description": "Audit trail: RFC 6962 Merkle hashing and proofs, C2SP signed notes, checkpoints and receipts. \
            Leaves are RFC 6962's test leaves (hex); hashes are base64. Regenerate with \
            `cargo run -p tracex-core --example gen_vectors`.",
        "leaves_hex": LEAVES,
        "roots": (0..=8).map(|n| b64(&root(&leaves[..n]))).collect::<Vec<_>>(),
        "inclusion": inclusion,
        "consistency": consistency,
        "note": {
            "desc": "Go's golang.org/x/mod/sumdb/note example",
            "verifier_key": "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "text": "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n",
            "note": "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        },
        "checkpoint_origin": origin,
        "checkpoint_verifier_key": vkey.to_string(),
        "checkpoints": checkpoints,
        "receipts_description": "Receipts (core/src/audit/receipt.rs) signed by the test key (`receipt_verifier_key`, \
            whose name is the log's origin); batch ids and envelope hashes are hex, what the verifier expects.",
        "receipt_verifier_key": vkey.to_string(),
        "receipts": receipts,
    });
    super::write_json(&root_dir.join("audit.json"), &doc);
}

/// The note with one bit of its signature flipped (inside the base64, past the key hash).
fn flip_signature(note: &str) -> String {
    let (head, line) = note.trim_end().rsplit_once('\n').unwrap();
    let (prefix, blob) = line.rsplit_once(' ').unwrap();
    let mut bytes = B64.decode(blob).unwrap();
    bytes[10] ^= 1;
    format!("{head}\n{prefix} {}\n", B64.encode(bytes))
}
