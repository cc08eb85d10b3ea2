//! Core errors as JavaScript `Error`s whose `.code` is the core's stable `TRACEX_*` code, the same
//! codes the Node addon surfaces.

use wasm_bindgen::JsValue;

/// A JS `Error` with `message` and `code`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail; if it somehow did, the error still carries
    // its message.
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("code"), &JsValue::from_str(code));
    err.into()
}

/// The JS form of a core error.
pub(crate) fn to_js(e: &tracex_core::Error) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// A configuration error raised by the binding itself (same code as the core's `Error::Config`).
pub(crate) fn config(message: impl Into<String>) -> tracex_core::Error {
    tracex_core::Error::Config(message.into())
}
