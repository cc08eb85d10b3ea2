//! The OTLP decoder on arbitrary bytes, within the collector's kind of limits: never panics, never
//! recurses past its nesting bound, never decodes past a limit; what decodes re-encodes to bytes that
//! decode and re-encode to the same bytes (compared as bytes: a NaN attribute is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracex_core::decode::{DecodeLimits, decode_request, decode_request_within};

/// Small enough that the fuzzer reaches every limit with short inputs.
const LIMITS: DecodeLimits = DecodeLimits { max_spans: 64, max_items: 256, max_decoded_bytes: 64 * 1024 };

fuzz_target!(|data: &[u8]| {
    let Ok((req, usage)) = decode_request_within(data, &LIMITS) else { return };
    assert!(usage.spans <= LIMITS.max_spans && usage.items <= LIMITS.max_items);
    assert!(usage.bytes <= LIMITS.max_decoded_bytes);
    assert_eq!(req.span_count(), usage.spans);
    let encode = |r: &tracex_core::TraceRequest| {
        let mut out = Vec::new();
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                tracex_core::encode::encode_spans(&rs.resource, &ss.scope, &ss.spans, &mut out);
            }
        }
        out
    };
    let again = encode(&req);
    let round = decode_request(&again).expect("what the encoder writes decodes");
    assert_eq!(encode(&round), again);
});
