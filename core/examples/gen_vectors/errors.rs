//! `tests/vectors/errors.json`: every core error code with the class every binding raises for it
//! (`ErrorKind::class_name`), so each runtime's tests pin its mapping to the core's.

use serde_json::json;
use tracex_core::{Error, ErrorKind};

pub fn write(root: &std::path::Path) {
    let errors: Vec<_> =
        Error::one_of_each().iter().map(|e| json!({ "code": e.code(), "class": e.kind().class_name() })).collect();
    let classes: Vec<_> = ErrorKind::ALL.iter().map(|k| k.class_name()).collect();
    let doc = json!({
        "format": "tracex error codes and classes; see docs/wire-format.md",
        "errors": errors,
        "classes": classes,
    });
    super::write_json(&root.join("errors.json"), &doc);
}
