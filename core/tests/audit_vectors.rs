//! The audit vectors (`tests/vectors/audit.json`): RFC 6962 roots and proofs (published ones
//! included) verify, and fail with any hash flipped; Go's signed-note example opens; each
//! checkpoint and receipt case verifies or is refused as the vector says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value as J;
use tracex_core::Error;
use tracex_core::audit::merkle::{leaf_hash, root};
use tracex_core::audit::{Checkpoint, Hash, Receipt, VerifierKey, note, verify_consistency, verify_inclusion};

fn load() -> J {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/audit.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hash(v: &J) -> Hash {
    B64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap()
}

fn hashes(v: &J) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

fn n(v: &J) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn roots_and_proofs_verify_and_any_flipped_bit_fails() {
    let v = load();
    let leaves: Vec<Hash> = v["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| leaf_hash(&hex::decode(h.as_str().unwrap()).unwrap()))
        .collect();
    for (size, want) in v["roots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(root(&leaves[..size]), hash(want), "root of {size}");
    }
    let mut published = 0;
    for c in v["inclusion"].as_array().unwrap() {
        let (leaf, index, size, proof, r) =
            (hash(&c["leaf_hash"]), n(&c["index"]), n(&c["size"]), hashes(&c["proof"]), hash(&c["root"]));
        verify_inclusion(&leaf, index, size, &proof, &r).unwrap();
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][31] ^= 1;
            assert!(matches!(verify_inclusion(&leaf, index, size, &bad, &r), Err(Error::Audit(_))));
        }
        published += usize::from(c.get("source").is_some());
    }
    for c in v["consistency"].as_array().unwrap() {
        let (old, new, proof) = (n(&c["old_size"]), n(&c["new_size"]), hashes(&c["proof"]));
        let (old_root, new_root) = (hash(&c["old_root"]), hash(&c["new_root"]));
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 1;
            assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err(), "{old} → {new}");
        }
        if old > 0 && old < new {
            assert!(verify_consistency(old, new, &new_root, &new_root, &proof).is_err(), "wrong old root");
        }
        published += usize::from(c.get("source").is_some());
    }
    assert_eq!(published, 8, "the published transparency-dev/merkle proofs are in the vectors");
}

#[test]
fn the_go_signed_note_example_opens() {
    let v = &load()["note"];
    let key = VerifierKey::parse(v["verifier_key"].as_str().unwrap()).unwrap();
    assert_eq!(note::open(v["note"].as_str().unwrap(), &key).unwrap(), v["text"].as_str().unwrap());
}

#[test]
fn checkpoints_verify_exactly_as_the_vectors_say() {
    let v = load();
    let key = VerifierKey::parse(v["checkpoint_verifier_key"].as_str().unwrap()).unwrap();
    let origin = v["checkpoint_origin"].as_str().unwrap();
    assert_eq!(origin, key.name(), "the log is named as its key, as the collector signs");
    for c in v["checkpoints"].as_array().unwrap() {
        let got = Checkpoint::open(c["note"].as_str().unwrap(), origin, &key);
        if c["valid"] == true {
            let cp = got.unwrap_or_else(|e| panic!("{}: {e}", c["desc"]));
            assert_eq!((cp.size, cp.root), (n(&c["size"]), hash(&c["root"])), "{}", c["desc"]);
            let at = c["signed_at_unix_nano"].as_str().map(|t| t.parse::<u64>().unwrap());
            assert_eq!(cp.signed_at_unix_nano, at, "{}", c["desc"]);
        } else {
            assert!(matches!(got, Err(Error::Audit(_))), "{}: {got:?}", c["desc"]);
        }
    }
}

#[test]
fn receipts_verify_exactly_as_the_vectors_say() {
    let v = load();
    let cases = v["receipts"].as_array().unwrap();
    assert!(cases.iter().filter(|c| c["valid"] == false).count() >= 5);
    for c in cases {
        let key = VerifierKey::parse(c["verifier_key"].as_str().unwrap()).unwrap();
        assert_eq!(c["verifier_key"], v["receipt_verifier_key"]);
        let batch: [u8; 16] = hex::decode(c["batch_id"].as_str().unwrap()).unwrap().try_into().unwrap();
        let envelope: [u8; 32] = hex::decode(c["envelope_sha256"].as_str().unwrap()).unwrap().try_into().unwrap();
        let got = Receipt::verify(c["note"].as_str().unwrap(), &key, &batch, &envelope);
        if c["valid"] == true {
            let r = got.unwrap_or_else(|e| panic!("{}: {e}", c["desc"]));
            assert_eq!(r.origin, key.name());
            assert_eq!((r.batch_id, r.envelope_sha256), (batch, envelope));
            assert_eq!(r.leaf_index, n(&c["leaf_index"]), "{}", c["desc"]);
            assert_eq!(r.received_at_unix_nano.to_string(), c["received_at_unix_nano"].as_str().unwrap());
        } else {
            assert!(matches!(got, Err(Error::Audit(_))), "{}: {got:?}", c["desc"]);
        }
    }
}
