//! Core errors as JS `Error`s carrying the core's stable `code` (`TRACEX_*`) and `kind` (the class
//! name of the core's `ErrorKind`); the JS layer (`bindings-js/src/errors.js`) rethrows them as the
//! class of that name. Every error goes through `Error::kind`, so there is no mapping here to miss
//! a variant.

use napi::Env;
use napi::bindgen_prelude::{JsObjectValue, JsValue};
use tracex_core::ErrorKind;

/// Builds a JS `Error` with `message`, `code` and `kind`, carried as the thrown value.
fn coded_error(env: Env, code: &str, kind: ErrorKind, message: &str) -> napi::Error {
    let made = env.create_error(napi::Error::from_reason(message)).and_then(|mut obj| {
        obj.set_named_property("code", code)?;
        obj.set_named_property("kind", kind.class_name())?;
        Ok(napi::Error::from(obj.to_unknown()))
    });
    made.unwrap_or_else(|err| err)
}

/// Maps a core error.
pub fn to_js(env: Env, e: &tracex_core::Error) -> napi::Error {
    coded_error(env, e.code(), e.kind(), &e.to_string())
}
