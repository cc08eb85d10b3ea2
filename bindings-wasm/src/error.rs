//! Core errors as JavaScript `Error`s whose `.code` is the core's stable `TRACEX_*` code and whose
//! `.kind` is the class name of its kind, as the Node addon surfaces them.

use wasm_bindgen::JsValue;

/// A JS `Error` with `message`, `code` and `kind` (the class name of the core's `ErrorKind`, which
/// the shared JS layer rethrows as the class of that name).
pub(crate) fn js_error(code: &str, kind: tracex_core::ErrorKind, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail; if it somehow did, the error still carries
    // its message.
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("kind"), &JsValue::from_str(kind.class_name()));
    err.into()
}

/// The JS form of a core error.
pub(crate) fn to_js(e: &tracex_core::Error) -> JsValue {
    js_error(e.code(), e.kind(), &e.to_string())
}

/// A configuration error raised by the binding itself (same code as the core's `Error::Config`).
pub(crate) fn config(message: impl Into<String>) -> tracex_core::Error {
    tracex_core::Error::Config(message.into())
}
