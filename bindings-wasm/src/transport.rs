//! Sending sealed batches with the host's `fetch` (Workers, Deno, browsers and Node all have one;
//! none is assumed to have `window`, `performance` or threads), and fetching the collector key.
//!
//! Each batch is POSTed to `{endpoint}/v1/batches` as `application/vnd.tracex.batch.v1` with the API
//! key as a bearer token; the answer is classified by the core (`classify_status`) and what to do
//! next is decided by the core's delivery state machine (`tracex_core::delivery`), the same one the
//! native sender thread runs.

use std::time::Duration;

use tracex_core::transport::SendOutcome;

/// Default `flush()`/`shutdown()` timeout.
pub const DEFAULT_FLUSH_TIMEOUT_MS: f64 = 10_000.0;

/// Why an attempt did not deliver (`None` when it did), as the flush report's `lastError`.
pub fn failure_reason(outcome: &SendOutcome) -> Option<String> {
    match outcome {
        SendOutcome::Delivered => None,
        SendOutcome::Retry { reason, .. } => Some(reason.clone()),
        SendOutcome::Reject { status, message } if message.is_empty() => Some(format!("HTTP {status}")),
        SendOutcome::Reject { status, message } => Some(format!("HTTP {status}: {message}")),
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date given as milliseconds since the epoch by
/// `parse_date` (the host's `Date.parse`), relative to `now_ms`.
pub fn retry_after(value: &str, now_ms: f64, parse_date: impl Fn(&str) -> f64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_date(v);
    at.is_finite().then(|| Duration::from_secs_f64(((at - now_ms) / 1000.0).max(0.0)))
}

// === fetch ===

pub(crate) use self::fetch::{Sender, fetch_key, has_fetch, report, send, sleep_ms, verify_on_host};

// Compiles on every target (wasm-bindgen imports are stubs off wasm32) so host builds lint it.
mod fetch {
    use js_sys::{Object, Promise, Reflect, Uint8Array};
    use tracex_core::audit::PendingReceipt;
    use tracex_core::transport::{BATCH_CONTENT_TYPE, RECEIPT_HEADER, SendOutcome, classify_status};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use crate::config::Endpoint;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(catch, js_namespace = globalThis, js_name = fetch)]
        fn fetch(url: &str, init: &Object) -> Result<Promise, JsValue>;

        #[wasm_bindgen(catch, js_namespace = AbortSignal, js_name = timeout)]
        fn abort_signal_timeout(ms: f64) -> Result<JsValue, JsValue>;

        #[wasm_bindgen(js_namespace = globalThis, js_name = setTimeout)]
        fn set_timeout(callback: &js_sys::Function, ms: f64) -> JsValue;

        type FetchResponse;
        #[wasm_bindgen(method, getter)]
        fn status(this: &FetchResponse) -> u16;
        #[wasm_bindgen(method, catch)]
        fn text(this: &FetchResponse) -> Result<Promise, JsValue>;
    }

    // The batch POST bound once per tracer, one call per attempt, and the flush report built in JS
    // (js/transport.js, beside the glue in the package): see there for the measured reason.
    #[wasm_bindgen(raw_module = "./transport.js")]
    extern "C" {
        #[wasm_bindgen(js_name = newSender)]
        fn new_sender(url: &str, authorization: &str, content_type: &str, receipt_header: &str) -> js_sys::Function;

        #[wasm_bindgen(js_name = verifyEd25519)]
        fn verify_ed25519(public_key: &[u8], message: &[u8], signatures: &[u8]) -> Promise;

        #[wasm_bindgen(js_name = flushReport)]
        fn flush_report(
            delivered: f64,
            spooled: f64,
            failed: f64,
            pending: f64,
            dropped: f64,
            last_error: Option<String>,
        ) -> JsValue;
    }

    /// One tracer's batch POST, bound to its endpoint and API key (`newSender` in js/transport.js).
    pub(crate) struct Sender(js_sys::Function);

    impl Sender {
        pub(crate) fn new(endpoint: &Endpoint) -> Self {
            Self(new_sender(&endpoint.batches_url, &endpoint.authorization, BATCH_CONTENT_TYPE, RECEIPT_HEADER))
        }
    }

    /// Whether the signatures of a receipt the core checked in every other way verify by the host's
    /// Ed25519 (`verifyEd25519` in js/transport.js); `None` when the host cannot tell, or there is
    /// nothing to verify.
    pub(crate) async fn verify_on_host(pending: &PendingReceipt) -> Option<bool> {
        let message = pending.message()?;
        let signatures = pending.signatures().concat();
        let promise = verify_ed25519(&pending.public_key(), message, &signatures);
        JsFuture::from(promise).await.ok()?.as_bool()
    }

    /// The flush report object (`FlushReport`), built on the JS side.
    #[allow(clippy::cast_precision_loss)] // counters stay far below 2^53
    pub(crate) fn report(r: &tracex_core::FlushReport, last_error: Option<&str>) -> JsValue {
        flush_report(
            r.spans_delivered as f64,
            r.spans_spooled as f64,
            r.spans_failed as f64,
            r.spans_pending as f64,
            r.spans_dropped as f64,
            last_error.map(str::to_owned),
        )
    }

    /// True when the host has a global `fetch`.
    pub(crate) fn has_fetch() -> bool {
        Reflect::get(&js_sys::global(), &JsValue::from_str("fetch")).is_ok_and(|f| f.is_function())
    }

    fn describe(e: &JsValue) -> String {
        let msg = e.dyn_ref::<js_sys::Error>().map(|e| {
            let mut s = String::from(e.message());
            // Node's fetch hides the reason (ECONNREFUSED, …) in `cause`.
            if let Ok(cause) = Reflect::get(e, &JsValue::from_str("cause")) {
                if let Some(c) = cause.dyn_ref::<js_sys::Error>() {
                    s.push_str(": ");
                    s.push_str(&String::from(c.message()));
                }
            }
            s
        });
        msg.or_else(|| e.as_string()).unwrap_or_else(|| "fetch failed".into())
    }

    fn set(obj: &Object, key: &str, value: &JsValue) {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(obj, &JsValue::from_str(key), value);
    }

    /// One attempt: POST `body`, classify the answer. Never throws. With it, the acknowledgement's
    /// receipt header as received (base64), for the core to check (`Tracer::check_receipt`).
    pub(crate) async fn send(sender: &Sender, body: &[u8], timeout_ms: f64) -> (SendOutcome, Option<String>) {
        let sent = sender.0.call2(
            &JsValue::UNDEFINED,
            &Uint8Array::from(body),
            &JsValue::from_f64(timeout_ms.max(1.0).floor()),
        );
        let answer: Result<JsValue, JsValue> = match sent {
            Ok(p) => JsFuture::from(Promise::unchecked_from_js(p)).await,
            Err(e) => Err(e),
        };
        let answer: js_sys::Array = match answer {
            Ok(a) => a.unchecked_into(),
            Err(e) => return (SendOutcome::Retry { after: None, reason: describe(&e) }, None),
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // an HTTP status
        let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
        let receipt = answer.get(1).as_string();
        let after = answer
            .get(2)
            .as_string()
            .and_then(|v: String| super::retry_after(&v, js_sys::Date::now(), |d: &str| js_sys::Date::parse(d)));
        let text =
            if (200..300).contains(&status) { String::new() } else { answer.get(3).as_string().unwrap_or_default() };
        (classify_status(status, after, &text), receipt)
    }

    /// One `GET {endpoint}/v1/public-key`: the PEM text, or why not. Never throws.
    pub(crate) async fn fetch_key(endpoint: &Endpoint, timeout_ms: f64) -> Result<String, String> {
        let headers = Object::new();
        set(&headers, "accept", &JsValue::from_str("application/x-pem-file"));
        let init = Object::new();
        set(&init, "method", &JsValue::from_str("GET"));
        set(&init, "headers", &headers);
        if let Ok(signal) = abort_signal_timeout(timeout_ms.max(1.0).floor()) {
            set(&init, "signal", &signal);
        }
        let response = match fetch(&endpoint.key_url, &init) {
            Ok(p) => JsFuture::from(p).await,
            Err(e) => Err(e),
        };
        let response: FetchResponse = match response {
            Ok(r) => r.unchecked_into(),
            Err(e) => return Err(format!("fetching the collector key: {}", describe(&e))),
        };
        let status = response.status();
        let text = match response.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        if (200..300).contains(&status) { Ok(text) } else { Err(format!("fetching the collector key: HTTP {status}")) }
    }

    /// Resolves after `ms` milliseconds (the host's `setTimeout`; only used inside a flush, i.e.
    /// while the request or `waitUntil` that awaits it is alive).
    pub(crate) async fn sleep_ms(ms: f64) {
        let promise = Promise::new(&mut |resolve, _reject| {
            set_timeout(&resolve, ms);
        });
        let _ = JsFuture::from(promise).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<Duration>) -> SendOutcome {
        SendOutcome::Retry { after, reason: "HTTP 503".into() }
    }

    #[test]
    fn failures_carry_their_reason_for_the_report() {
        assert_eq!(failure_reason(&SendOutcome::Delivered), None);
        assert_eq!(failure_reason(&retry(None)).as_deref(), Some("HTTP 503"));
        let reject = SendOutcome::Reject { status: 401, message: "bad key".into() };
        assert_eq!(failure_reason(&reject).as_deref(), Some("HTTP 401: bad key"));
        let bare = SendOutcome::Reject { status: 413, message: String::new() };
        assert_eq!(failure_reason(&bare).as_deref(), Some("HTTP 413"));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let never = |_: &str| f64::NAN;
        assert_eq!(retry_after(" 3 ", 0.0, never), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("soon", 0.0, never), None);
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:07 GMT", 1000.0, |_| 8000.0), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 9000.0, |_| 8000.0), Some(Duration::ZERO));
    }
}
