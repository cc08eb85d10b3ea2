//! Core errors as JS `Error`s whose `code` is the core's stable `TRACEX_*` code (the JS layer turns
//! the code into the matching `TracexError` subclass).

use napi::Env;
use napi::bindgen_prelude::{JsObjectValue, JsValue};

/// Builds a JS `Error` with `message` and `code`, carried as the thrown value.
pub fn coded_error(env: &Env, code: &str, message: &str) -> napi::Error {
    let made = env.create_error(napi::Error::from_reason(message)).and_then(|mut obj| {
        obj.set_named_property("code", code)?;
        Ok(napi::Error::from(obj.to_unknown()))
    });
    made.unwrap_or_else(|err| err)
}

/// Maps a core error.
pub fn to_js(env: &Env, e: &tracex_core::Error) -> napi::Error {
    coded_error(env, e.code(), &e.to_string())
}

/// A configuration error raised by the binding itself.
pub fn config(env: &Env, message: impl AsRef<str>) -> napi::Error {
    coded_error(env, "TRACEX_CONFIG", message.as_ref())
}
