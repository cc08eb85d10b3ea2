//! The query API's hand-written query-string parsers on arbitrary strings: never panic; every
//! rejection is a 400 `invalid_query` with a bounded message; accepted filters respect the bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracex_collector::endpoints::query::{MAX_ATTRIBUTE_FILTERS, parse_detail_page, parse_query};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    match parse_query(Some(raw), "p".into()) {
        Ok(q) => assert!(q.attributes.len() <= MAX_ATTRIBUTE_FILTERS && (1..=1000).contains(&q.limit)),
        Err(e) => assert!(e.code == "invalid_query" && e.status.as_u16() == 400 && e.message.len() <= 512),
    }
    if let Err(e) = parse_detail_page(Some(raw)) {
        assert!(e.code == "invalid_query" && e.message.len() <= 512);
    }
});
