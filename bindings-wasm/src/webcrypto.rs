//! The data-key wrap (RSA-OAEP, SHA-256) with the host's WebCrypto instead of the `rsa` crate in
//! WASM. Why: in workerd a new data key's wrap in WASM was ≈ 4 ms of CPU warm and more on the first
//! request, where V8 also compiles the bignum code it runs once (the first request's target is 5 ms
//! in all); `crypto.subtle` is native code (BoringSSL in workerd) and costs a fraction of that.
//!
//! The core still decides when a data key is due and generates it (`Tracer::data_key_due`); this
//! only wraps it, asynchronously, at the start of a flush (tracer creation is synchronous, WebCrypto
//! is not). Hosts without `crypto.subtle` (or where it refuses) fall back to the core's wrap in
//! WASM when it seals, so every host still gets the same envelopes.

use std::cell::RefCell;

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The collector key imported into WebCrypto once per tracer (the import is itself ≈ as costly
/// as a wrap, so it is kept).
#[derive(Default)]
pub(crate) struct HostKey {
    key: RefCell<Option<JsValue>>,
}

fn subtle() -> Option<Object> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle")).ok()?;
    subtle.dyn_into::<Object>().ok()
}

fn method(obj: &Object, name: &str) -> Option<Function> {
    Reflect::get(obj, &JsValue::from_str(name)).ok()?.dyn_into::<Function>().ok()
}

async fn call(obj: &Object, name: &str, args: &Array) -> Option<JsValue> {
    let promise: Promise = method(obj, name)?.apply(obj, args).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

fn algorithm() -> Object {
    let alg = Object::new();
    // Setting properties on a fresh plain object cannot fail.
    let _ = Reflect::set(&alg, &JsValue::from_str("name"), &JsValue::from_str("RSA-OAEP"));
    let _ = Reflect::set(&alg, &JsValue::from_str("hash"), &JsValue::from_str("SHA-256"));
    alg
}

impl HostKey {
    /// RSA-OAEP-SHA-256 of `data_key` to the collector key `spki_der` (empty label, as the core's
    /// wrap), or `None` when this host has no usable WebCrypto.
    pub(crate) async fn wrap(&self, spki_der: &[u8], data_key: &[u8]) -> Option<Vec<u8>> {
        let subtle = subtle()?;
        let cached = self.key.borrow().clone();
        let key = match cached {
            Some(k) => k,
            None => {
                let usages = Array::of1(&JsValue::from_str("encrypt"));
                let args = Array::of5(
                    &JsValue::from_str("spki"),
                    &Uint8Array::from(spki_der),
                    &algorithm(),
                    &JsValue::FALSE,
                    &usages,
                );
                let k = call(&subtle, "importKey", &args).await?;
                *self.key.borrow_mut() = Some(k.clone());
                k
            }
        };
        let args = Array::of3(&algorithm(), &key, &Uint8Array::from(data_key));
        let wrapped = call(&subtle, "encrypt", &args).await?;
        let wrapped = wrapped.dyn_into::<js_sys::ArrayBuffer>().ok()?;
        Some(Uint8Array::new(&wrapped).to_vec())
    }
}
