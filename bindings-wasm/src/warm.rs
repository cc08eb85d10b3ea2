//! Compiling the first request's code when the module is instantiated, not during the request.
//!
//! V8 compiles each WASM function the first time it is called. On an edge worker that first call
//! is inside the isolate's first request, whose CPU is billed against the request's limit, while
//! the work done at module scope (instantiation, and what `init()` runs) counts against the far
//! larger startup limit. Measured in workerd (docs/benchmarks.md): compiling the functions a traced
//! request touches — key import, record decoding, redaction, OTLP encoding, AES-GCM — was about
//! 6 ms of that first request. `warm_up` runs each of them once on fixed inputs, `warm_up_flush`
//! flushes an empty backend tracer, and `warm_up_wrap` runs the WebCrypto data-key wrap on a
//! stand-in, so V8 compiles them then. None draws randomness or does I/O (Workers forbid both at
//! module scope: a batch sealer, which needs a random instance id, data key and nonce, is left cold
//! on purpose — a release build never seals a batch with fixed ones); the tracers they build are
//! dropped and their outputs thrown away.

use tracex_core::delivery::Progress;
use tracex_core::model::{InstrumentationScope, KeyValue, Resource, SpanData, SpanId, SpanKind, TraceId};
use tracex_core::redact::Redactor;
use tracex_core::seal::{self, CollectorKey, DATA_KEY_LEN, Header, NONCE_LEN, SealedBatch};
use tracex_core::transport::SendOutcome;
use wasm_bindgen::prelude::*;

/// The public key of the shared test vectors: a real RSA key to parse, never sealed to.
const SAMPLE_KEY_PEM: &str = include_str!("../../tests/vectors/collector-test-key.pub.pem");

/// Runs the first request's code paths once on fixed inputs (see the module docs). Never throws:
/// `init()` calls it and nothing depends on its outcome. Returns the sample's sealed length, which
/// a test checks so the work cannot be optimised away unnoticed.
#[wasm_bindgen(js_name = warmUp)]
pub fn warm_up() -> usize {
    let Ok(key) = CollectorKey::from_pem(SAMPLE_KEY_PEM) else { return 0 };
    let mut encoder = tracex_core::records::Encoder::new(1_700_000_000_000_000_000);
    encoder.push(&sample_span());
    let records = encoder.finish();
    // A backend tracer as `new Tracer` creates it (options read from a JS object, the core tracer
    // built), taking the spans as the JS layer hands them over; it never seals, so it draws no
    // random instance id, and it is dropped at once. (Only where JS objects exist: not in host
    // unit tests.)
    if cfg!(all(target_arch = "wasm32", target_os = "unknown")) {
        if let Ok(tracer) = crate::NativeTracer::new(sample_options().into()) {
            let _ = tracer.ingest(&records);
            // What the pump does with an acknowledged batch: the delivery state machine's step and
            // the receipt check (an empty stand-in batch; only this tracer's counters move).
            let batch = SealedBatch {
                bytes: Vec::new(),
                batch_id: [7; 16],
                sequence: 1,
                created_at_unix_nano: 1,
                span_count: 0,
            };
            let core = tracer.core();
            let zero = std::time::Duration::ZERO;
            let _ = core.after_attempt(&batch, &mut Progress::default(), &SendOutcome::Delivered, zero, zero, None);
            // A receipt header to decode (base64 of a note no key signed: only counted).
            if let Some(pending) = core.pending_receipt(&batch, Some("dHJhY2V4IHdhcm0tdXA=")) {
                core.finish_receipt(&pending, None);
            }
        }
    }
    // The tracer above decoded the records into its own boxes (the code a request runs); the rest
    // of the batcher's steps run on the same span built here (a second decoder instance, into a
    // plain vector, would be 800 bytes of module that no request runs).
    let mut spans = vec![sample_span()];
    let redactor = Redactor::builder().with_default_rules(true).build();
    for span in &mut spans {
        redactor.redact_span(span);
    }
    let mut plaintext = Vec::new();
    let scope = InstrumentationScope { name: "tracex-wasm".into(), ..Default::default() };
    tracex_core::encode::encode_spans(&Resource::new("warm-up"), &scope, &spans, &mut plaintext);
    let header = Header {
        flags: 0,
        key_id: key.key_id(),
        batch_id: [1; seal::BATCH_ID_LEN],
        instance_id: [2; seal::INSTANCE_ID_LEN],
        sequence: 1,
        created_at_unix_nano: 1,
        sdk_name: crate::DEFAULT_SDK_NAME.into(),
        sdk_version: String::new(),
        wrapped_key: vec![0; key.bits() / 8],
        nonce: [3; NONCE_LEN],
    };
    seal::seal_payload(&header, &[4; DATA_KEY_LEN], &plaintext).map_or(0, |sealed| sealed.len())
}

/// The flush machinery — the futures executor, the pump, the report — warmed by flushing an empty
/// backend tracer: with nothing buffered it creates no sealer, so it draws no randomness, and it
/// sends nothing. Resolves with the (empty) flush report; `init` ignores a rejection.
#[wasm_bindgen(js_name = warmUpFlush)]
pub fn warm_up_flush() -> js_sys::Promise {
    match crate::NativeTracer::new(sample_options().into()) {
        Ok(tracer) => tracer.flush(Some(0.0)),
        Err(_) => js_sys::Promise::resolve(&JsValue::UNDEFINED),
    }
}

/// The data-key wrap through WebCrypto as a flush runs it (`tracer::wrap_and_install`), on the
/// stand-in `subtle` that `init` passes: its `importKey` and `encrypt` resolve at once, with no RSA
/// and no randomness. The data key is all zeros and the "wrapped" key it gets back is empty, which
/// the warm-up tracer refuses (wrong length; it has no sealer either), so no key is ever installed.
/// Resolves when done. Before this, the wrap's futures were most of the WASM a first request
/// compiled after sealing (docs/benchmarks.md).
#[wasm_bindgen(js_name = warmUpWrap)]
pub fn warm_up_wrap(subtle: js_sys::Object) -> js_sys::Promise {
    // The tracer already parsed the sample key: its SPKI, rather than the PEM parsed again.
    let tracer = crate::NativeTracer::new(sample_options().into()).ok();
    match tracer.as_ref().and_then(|t| Some((t.core(), t.core().collector_key_spki_der()?))) {
        Some((core, spki)) => crate::tracer::wrap_and_install(
            subtle,
            std::rc::Rc::default(),
            core.clone(),
            spki,
            tracex_core::seal::DataKey::new([0; DATA_KEY_LEN]),
        ),
        None => js_sys::Promise::resolve(&JsValue::UNDEFINED),
    }
}

/// The options of a tracer that never sends (nothing is sent without a flush); `init` also builds
/// the JS layer's `Tracer` with them to warm the span path.
#[wasm_bindgen(js_name = warmUpOptions)]
pub fn sample_options() -> js_sys::Object {
    let o = js_sys::Object::new();
    for (k, v) in [
        ("endpoint", "http://warm-up.invalid"),
        ("apiKey", "warm-up"),
        ("collectorPublicKey", SAMPLE_KEY_PEM),
        ("serviceName", "warm-up"),
    ] {
        // Setting a property on a fresh plain object cannot fail.
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v));
    }
    o
}

/// A verify span like the ones a facilitator records.
fn sample_span() -> SpanData {
    let attr = |k: &str, v: &str| KeyValue::new(k.to_owned(), v.to_owned());
    SpanData {
        trace_id: TraceId([5; 16]),
        span_id: SpanId([6; 8]),
        name: "POST /verify".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_012_500_000,
        attributes: vec![
            attr("x402.scheme", "exact"),
            attr("x402.network", "base"),
            attr("x402.pay_to", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
            attr("x402.payer", "0x857b06519E91e3A54538791bDbb0E22373e36b66"),
            attr("authorization", "Bearer sk_live_0123456789abcdefghij"),
            KeyValue::new("http.response.status_code", 200i64),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_warm_up_runs_every_step_to_a_sealed_batch() {
        // The header alone is over 400 bytes (a 3072-bit wrapped key); 0 means a step failed.
        assert!(super::warm_up() > 600, "{}", super::warm_up());
    }
}
