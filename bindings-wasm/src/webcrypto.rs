//! The data-key wrap (RSA-OAEP, SHA-256) with the host's WebCrypto instead of the `rsa` crate in
//! WASM. Why, measured in workerd's inspector profile of a first request (docs/benchmarks.md): with
//! every WASM function already compiled, the wrap's Montgomery multiplications were still the
//! largest item of the flush — V8 runs a function first as baseline (Liftoff) code, and a wrap that
//! happens once per data key never gets hot enough to be optimised. `crypto.subtle` is native code
//! (BoringSSL in workerd).
//!
//! The core still decides when a data key is due and generates it (`Tracer::data_key_due`); this
//! only wraps it, asynchronously, at the start of a flush (tracer creation is synchronous, WebCrypto
//! is not). Hosts without `crypto.subtle`, or where it fails, leave the wrap to the core, in WASM,
//! when it seals: every host sends the same envelopes.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The collector key imported into WebCrypto, once per tracer.
#[derive(Default)]
pub(crate) struct HostKey {
    imported: Rc<RefCell<Option<JsValue>>>,
}

/// The host's `crypto.subtle`, if it has one.
pub(crate) fn subtle() -> Option<Object> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    Reflect::get(&crypto, &JsValue::from_str("subtle")).ok()?.dyn_into::<Object>().ok()
}

/// `subtle[name](...args)` awaited; `None` when the method is missing, throws or rejects.
async fn call(subtle: &Object, name: &str, args: &Array) -> Option<JsValue> {
    let method: Function = Reflect::get(subtle, &JsValue::from_str(name)).ok()?.dyn_into().ok()?;
    let promise: Promise = method.apply(subtle, args).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

fn rsa_oaep_sha256() -> Object {
    let alg = Object::new();
    // Setting properties on a fresh plain object cannot fail.
    let _ = Reflect::set(&alg, &JsValue::from_str("name"), &JsValue::from_str("RSA-OAEP"));
    let _ = Reflect::set(&alg, &JsValue::from_str("hash"), &JsValue::from_str("SHA-256"));
    alg
}

impl HostKey {
    /// RSA-OAEP-SHA-256 (empty label, as the core's wrap) of `data_key` to the collector key
    /// `spki_der` with `subtle` (the host's [`subtle()`]; `init`'s warm-up passes a stand-in), or
    /// `None` when it cannot do it.
    pub(crate) async fn wrap(&self, subtle: &Object, spki_der: &[u8], data_key: &[u8]) -> Option<Vec<u8>> {
        let cached = self.imported.borrow().clone();
        let key = match cached {
            Some(key) => key,
            None => {
                let usages = Array::of1(&JsValue::from_str("encrypt"));
                let args = Array::of5(
                    &JsValue::from_str("spki"),
                    &Uint8Array::from(spki_der),
                    &rsa_oaep_sha256(),
                    &JsValue::FALSE,
                    &usages,
                );
                let key = call(subtle, "importKey", &args).await?;
                *self.imported.borrow_mut() = Some(key.clone());
                key
            }
        };
        // The data key crosses into JS memory only for this call, and is zeroed after it.
        let plain = Uint8Array::from(data_key);
        let wrapped = call(subtle, "encrypt", &Array::of3(&rsa_oaep_sha256(), &key, &plain)).await;
        plain.fill(0, 0, plain.length());
        let wrapped = wrapped?;
        Some(Uint8Array::new(&wrapped).to_vec())
    }
}
