//! `tests/vectors/errors.json` pins every error code to its kind's class name, the class every
//! binding raises for it; this checks the file against the core (the bindings check themselves
//! against the file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use serde_json::Value as J;
use tracex_core::{Error, ErrorKind};

#[test]
fn every_error_code_has_the_class_of_its_kind() {
    let doc: J =
        serde_json::from_str(&std::fs::read_to_string(common::vectors_dir().join("errors.json")).unwrap()).unwrap();
    let want = doc["errors"].as_array().unwrap();
    let all = Error::one_of_each();
    assert_eq!(want.len(), all.len());
    for (e, w) in all.iter().zip(want) {
        assert_eq!(e.code(), w["code"].as_str().unwrap());
        assert_eq!(e.kind().class_name(), w["class"].as_str().unwrap(), "{}", e.code());
    }
    let classes: Vec<_> = doc["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(classes, ErrorKind::ALL.iter().map(|k| k.class_name()).collect::<Vec<_>>());
}
