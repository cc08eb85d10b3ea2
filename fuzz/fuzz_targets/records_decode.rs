//! The span record decoder (the buffers the Node and WASM packages hand to the core, decoded on the
//! JS thread in the WASM one) on arbitrary bytes: never panics, never allocates for a count the
//! buffer cannot hold; what decodes re-encodes, through the reference encoder with values bound to
//! slots, to a buffer that decodes, and a second round writes the same bytes (compared as bytes: a
//! NaN attribute is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracex_core::SpanData;
use tracex_core::records::{Encoder, decode_records};

fuzz_target!(|data: &[u8]| {
    let Ok(first) = decode_records(data) else { return };
    let anchor = u64::from_le_bytes(data[4..12].try_into().expect("a decoded buffer has its header"));
    let encode = |spans: &[SpanData]| {
        let mut e = Encoder::new(anchor).binding_values();
        e.sampled_out(first.sampled_out);
        for s in spans {
            e.push(s);
        }
        e.finish()
    };
    let again = encode(&first.spans);
    let round = decode_records(&again).expect("what the encoder writes decodes");
    assert_eq!(round.sampled_out, first.sampled_out);
    assert_eq!(round.spans.len(), first.spans.len());
    assert_eq!(encode(&round.spans), again);
});
