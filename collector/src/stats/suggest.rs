//! Attribute key and value suggestions for a search box, counted over the project's most recent
//! spans ([`SUGGEST_SCAN_SPANS`] at most, from its newest traces): cheap and bounded whatever the
//! database size, and what people search for is mostly what just happened. A key or value absent
//! from those spans is not suggested (the search itself still finds it).

use std::collections::HashMap;

use tracex_core::SpanData;

use crate::store::common::render_value;

/// Most spans a suggestion request reads (decoded from the newest traces of the project).
pub const SUGGEST_SCAN_SPANS: usize = 5_000;
/// Values a value suggestion returns when no `limit` is given.
pub const DEFAULT_SUGGESTIONS: usize = 20;
/// Most values a value suggestion returns.
pub const MAX_SUGGESTIONS: usize = 100;

/// Most keys a key suggestion returns.
pub const MAX_KEYS: usize = 200;

/// Attribute keys starting with `prefix` and the number of scanned spans carrying each, most
/// frequent first (ties by key).
pub fn keys(spans: &[SpanData], prefix: &str) -> Vec<(String, u64)> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for s in spans {
        let mut seen: Vec<&str> = Vec::with_capacity(s.attributes.len());
        for kv in &s.attributes {
            if kv.key.starts_with(prefix) && !seen.contains(&&*kv.key) {
                seen.push(&kv.key);
                *counts.entry(&kv.key).or_default() += 1;
            }
        }
    }
    top(counts.into_iter().map(|(k, n)| (k.to_owned(), n)).collect(), MAX_KEYS)
}

/// Values (rendered as the filters render them) of attribute `key` starting with `prefix`, with the
/// number of scanned spans carrying each, most frequent first (ties by value), at most `limit`.
pub fn values(spans: &[SpanData], key: &str, prefix: &str, limit: usize) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut text = String::new();
    for s in spans {
        if let Some(v) = s.attribute(key)
            && render_value(v, &mut text)
            && text.starts_with(prefix)
        {
            *counts.entry(text.clone()).or_default() += 1;
        }
    }
    top(counts.into_iter().collect(), limit)
}

fn top(mut v: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}
