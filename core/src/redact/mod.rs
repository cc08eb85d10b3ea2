//! Redaction: secrets are masked on the background worker, before a batch is encoded and sealed,
//! so they never leave the process, not even encrypted.
//!
//! A [`Redactor`] applies three kinds of rule to every attribute (span, event, link, resource and
//! scope attributes, recursing into arrays and maps):
//!
//! 1. **Payload keys** — raw request and response bodies and x402 payment payloads are *removed*
//!    unless [`RedactorBuilder::capture_payloads`] is on: `x402.payload`, `x402.payment_payload`,
//!    `http.request.body`, `http.response.body`, any key whose last word is `payload` or `body`,
//!    and the x402 headers `x-payment`, `x-payment-response` and `payment-signature`
//!    (e.g. `http.request.header.x-payment`). `http.request.body.size` and the like survive.
//! 2. **Sensitive keys** — the whole value of an attribute whose key ends with a secret's name is
//!    replaced by the string [`REDACTED`], whatever its type. Keys are compared ignoring case,
//!    `.`/`_`/`-` separators and camelCase, and the name must start at a word boundary, so
//!    `http.request.header.authorization`, `db.password`, `privateKey`, `x-api-key` and
//!    `auth_token` are masked, while `token_address`, `token.symbol`, `token_id`,
//!    `gen_ai.usage.input_tokens` and `x402.asset` are not. The names: `authorization`, `cookie(s)`,
//!    `password`, `passwd`, `pwd`, `passphrase`, `secret(s)`, `private_key`, `privkey`,
//!    `priv_key`, `secret_key`, `access_key`, `api_key`, `token`, `auth_token`, `api_token`,
//!    `session_token`, `jwt`, `credential(s)`, `mnemonic`, `seed_phrase`, `recovery_phrase`,
//!    `seed`, `keypair`, `signature`, `sig`, `card_number`, `pan`, `cvv`, `cvv2`, `cvc`, `ssn`
//!    (so also `client_secret`, `set-cookie`, `access_token`, `x-api-key`, `apiKey`, …).
//! 3. **Value rules** — every string value (and the span name, event names and the status
//!    message) is scanned for secrets, and each one found is masked in place:
//!    `"auth failed: Bearer eyJ… (retry)"` becomes `"auth failed: Bearer [REDACTED] (retry)"`.
//!    Card numbers keep their last four digits: `[REDACTED:card:1111]`.
//!
//! The default value rules are hand-written scanners (no regular expressions): one pass over the
//! bytes, a bounded amount of work per position, and no allocation unless something is found.
//! They recognise:
//!
//! * EVM private keys: 64 hex digits, with `0x` or with at least one hex letter;
//! * EVM signatures: 128 or 130 hex digits, with or without `0x`;
//! * base58 strings of 86–88 characters mixing digits and both cases (Solana signatures and
//!   secret keys; 32–44 character addresses are public and survive);
//! * BIP-39 style seed phrases: 12 or more lower-case words of 3–8 letters separated by single
//!   spaces (also an array of 12 or more such one-word strings);
//! * `Bearer <token>` (at least 8 characters, with a non-letter or at least 20 long) and
//!   `Basic <base64>` (at least 8 characters that look like base64, not a word), any case; the
//!   scheme word is kept;
//! * JWTs (`eyJ….eyJ….signature`);
//! * well-known API key shapes: Stripe `sk_live_`/`sk_test_`/`rk_live_`/`rk_test_`/`whsec_`, AWS
//!   `AKIA`/`ASIA` + 16, GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`/`github_pat_`, Slack
//!   `xox[baprs]-`, Google `AIza`, GitLab `glpat-`, OpenAI-style `sk-` + 20 or more;
//! * PEM private keys (`-----BEGIN … PRIVATE KEY-----` through the matching `END` line);
//! * `key=value` and `"key": "value"` pairs inside text whose key is sensitive
//!   (`?api_key=…`, `password=…`, `{"signature":"0x…"}`), and URL passwords
//!   (`postgres://user:[REDACTED]@host`); the value of a pair whose key is public
//!   (`"nonce":"0x…"`, `tx_hash=0x…`) is left alone;
//! * card numbers: 13–19 digits starting with 2–6, contiguous or grouped `4-…` by single spaces
//!   or dashes, passing the Luhn check. A contiguous run ending in five or more zeros, or a bare
//!   number under an amount-like key (`x402.amount`, `value`, `gas_price`, …), is taken to be an
//!   amount and left alone.
//!
//! Value rules are not applied under keys that hold public hashes and ids: keys ending in `hash`
//! (`x402.tx_hash`, `transaction_hash`, `block_hash`, `recentBlockhash`, …), `digest`, `nonce`
//! (EIP-3009 nonces are public 32-byte hex), `trace_id`, `span_id`, `tx_id`, `txid`,
//! `transaction_id`, and keys named with [`RedactorBuilder::allow_key`].
//!
//! The rules lean towards masking. Known trade-offs: 32-byte hex under a key that is not known to
//! be public (say `x402.payment_id`, or a tx hash quoted in an error message) is masked as a
//! possible private key — name such keys with [`allow_key`](RedactorBuilder::allow_key); a run
//! of 12 or more plain lower-case words is masked as a possible seed phrase; a Solana
//! transaction signature is masked unless it sits under a public key such as `x402.tx_hash`.
//!
//! ```
//! use tracex_core::redact::Redactor;
//! use tracex_core::{KeyValue, SpanData};
//!
//! let mut span = SpanData {
//!     attributes: vec![
//!         KeyValue::new("x402.payer", "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
//!         KeyValue::new("http.request.header.authorization", "Bearer abc.def.ghi"),
//!         KeyValue::new("x402.payload", "eyJ4NDAyVmVyc2lvbiI6MX0="),
//!     ],
//!     ..Default::default()
//! };
//! assert_eq!(Redactor::default().redact_span(&mut span), 2);
//! assert_eq!(span.attributes.len(), 2);
//! assert_eq!(span.attributes[1].value.as_str(), Some("[REDACTED]"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::model::{KeyValue, Resource, SpanData, Str, TraceRequest, Value};

// One concern per file: which keys are sensitive, public, payload or amounts (`keys`), the value
// scanners (`scan`), and the per-thread memo of decisions (`cache`).
mod cache;
mod keys;
mod scan;
#[cfg(test)]
mod tests;

use cache::Memo;
use keys::*;
use scan::scan;

/// The string that replaces a masked value or token.
pub const REDACTED: &str = "[REDACTED]";

type Predicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A user value rule: a name (for `Debug`) and a predicate over whole string values.
#[derive(Clone)]
struct ValueRule {
    name: String,
    predicate: Predicate,
}

impl fmt::Debug for ValueRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug)]
struct Rules {
    /// Unique per rule set, so per-thread memos never mix rule sets (even at a reused address).
    id: u64,
    enabled: bool,
    defaults: bool,
    capture_payloads: bool,
    /// Lower case, `-` normalised to `_`.
    mask_keys: Vec<String>,
    allow_keys: Vec<String>,
    value_rules: Vec<ValueRule>,
}

/// Masks secrets in spans and resources before they are encoded. Cheap to clone (the rules are
/// shared).
///
/// [`Redactor::default`] applies the default rules described in the [module docs](self) and removes
/// raw payloads; [`Redactor::builder`] adds rules of your own; [`Redactor::disabled`] changes
/// nothing.
#[derive(Clone, Debug)]
pub struct Redactor {
    rules: Arc<Rules>,
}

impl Default for Redactor {
    /// The default rules, payloads removed.
    fn default() -> Self {
        RedactorBuilder::default().build()
    }
}

/// Builds a [`Redactor`]; start from [`Redactor::builder`].
#[derive(Clone, Debug)]
pub struct RedactorBuilder {
    default_rules: bool,
    capture_payloads: bool,
    mask_keys: Vec<String>,
    allow_keys: Vec<String>,
    value_rules: Vec<ValueRule>,
}

impl Default for RedactorBuilder {
    /// Default rules on, payload capture off, no extra rules.
    fn default() -> Self {
        Self {
            default_rules: true,
            capture_payloads: false,
            mask_keys: Vec::new(),
            allow_keys: Vec::new(),
            value_rules: Vec::new(),
        }
    }
}

impl RedactorBuilder {
    /// Whether the default sensitive-key list, public-key list and value scanners apply
    /// (default `true`). Payload removal is controlled by [`capture_payloads`](Self::capture_payloads)
    /// alone.
    #[must_use]
    pub fn with_default_rules(mut self, on: bool) -> Self {
        self.default_rules = on;
        self
    }

    /// Masks the whole value of every attribute whose key contains `fragment`, ignoring case and
    /// treating `-` and `_` alike (e.g. `"customer_email"` masks `app.customer-email`). Also applies
    /// to `fragment=value` pairs inside strings (when the default rules are on). Wins over
    /// [`allow_key`](Self::allow_key).
    #[must_use]
    pub fn mask_key(mut self, fragment: impl Into<String>) -> Self {
        let fragment: String = fragment.into().bytes().map(|c| char::from(norm(c))).collect();
        if !fragment.is_empty() {
            self.mask_keys.push(fragment);
        }
        self
    }

    /// Masks every string value for which `predicate` returns true (the whole value becomes
    /// [`REDACTED`]). Runs after the default value rules, on their output; `name` shows in `Debug`.
    /// The predicate must be a pure function of its input: verdicts on `&'static str` values are
    /// memoised.
    #[must_use]
    pub fn mask_value(mut self, name: &str, predicate: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.value_rules.push(ValueRule { name: name.to_owned(), predicate: Arc::new(predicate) });
        self
    }

    /// Trusts the attribute with exactly this key (case-sensitive): neither value rules nor the
    /// default sensitive-key list touch it (e.g. a custom hash or a Solana transaction id). Keys
    /// given to [`mask_key`](Self::mask_key) are still masked and payload keys still removed.
    #[must_use]
    pub fn allow_key(mut self, key: impl Into<String>) -> Self {
        self.allow_keys.push(key.into());
        self
    }

    /// Keeps raw payload and body attributes instead of removing them (default `false`). Value
    /// rules still mask the secrets inside them.
    #[must_use]
    pub fn capture_payloads(mut self, on: bool) -> Self {
        self.capture_payloads = on;
        self
    }

    /// The redactor.
    pub fn build(self) -> Redactor {
        Redactor {
            rules: Arc::new(Rules {
                id: next_rules_id(),
                enabled: true,
                defaults: self.default_rules,
                capture_payloads: self.capture_payloads,
                mask_keys: self.mask_keys,
                allow_keys: self.allow_keys,
                value_rules: self.value_rules,
            }),
        }
    }
}

impl Redactor {
    /// A builder with the default rules on.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// A redactor that changes nothing (payloads included).
    pub fn disabled() -> Self {
        Self {
            rules: Arc::new(Rules {
                id: next_rules_id(),
                enabled: false,
                defaults: false,
                capture_payloads: true,
                mask_keys: Vec::new(),
                allow_keys: Vec::new(),
                value_rules: Vec::new(),
            }),
        }
    }

    /// Redacts one span in place: its name, status message, attributes, and its events' names
    /// and attributes and its links' attributes. Returns how many values were masked or
    /// attributes removed (a string counts once however many secrets it held; an array or map
    /// masked whole counts once).
    pub fn redact_span(&self, span: &mut SpanData) -> u32 {
        if !self.rules.enabled {
            return 0;
        }
        cache::with(&self.rules, |m| self.span(m, span))
    }

    /// Redacts a resource's attributes in place; returns the count as [`redact_span`](Self::redact_span) does.
    pub fn redact_resource(&self, resource: &mut Resource) -> u32 {
        self.redact_attributes(&mut resource.attributes)
    }

    /// Redacts a list of attributes in place (e.g. instrumentation-scope attributes); returns
    /// the count as [`redact_span`](Self::redact_span) does.
    pub fn redact_attributes(&self, attributes: &mut Vec<KeyValue>) -> u32 {
        if !self.rules.enabled {
            return 0;
        }
        cache::with(&self.rules, |m| self.attributes(m, attributes))
    }

    /// Redacts a whole export request: resources, scope attributes and spans. Returns the total count.
    pub fn redact_request(&self, request: &mut TraceRequest) -> u32 {
        if !self.rules.enabled {
            return 0;
        }
        cache::with(&self.rules, |m| {
            let mut n = 0;
            for rs in &mut request.resource_spans {
                n += self.attributes(m, &mut rs.resource.attributes);
                for ss in &mut rs.scope_spans {
                    n += self.attributes(m, &mut ss.scope.attributes);
                    for span in &mut ss.spans {
                        n += self.span(m, span);
                    }
                }
            }
            n
        })
    }

    // --- internals: the memo is borrowed once per call above and handed down ---

    fn span(&self, m: &mut Memo, span: &mut SpanData) -> u32 {
        let mut n = self.text(m, &mut span.name) + self.text(m, &mut span.status.message);
        n += self.attributes(m, &mut span.attributes);
        for event in &mut span.events {
            n += self.text(m, &mut event.name) + self.attributes(m, &mut event.attributes);
        }
        for link in &mut span.links {
            n += self.attributes(m, &mut link.attributes);
        }
        n
    }

    /// One pass: each key is classified once, payloads removed in place, the rest redacted.
    fn attributes(&self, m: &mut Memo, attributes: &mut Vec<KeyValue>) -> u32 {
        let mut n = 0u32;
        let mut removed = 0usize;
        for i in 0..attributes.len() {
            // A static pair found unchanged before is unchanged now: one probe, no classifying.
            let id = cache::pair_id(&attributes[i]);
            if id.is_some_and(|id| m.is_clean_pair(id)) {
                if removed > 0 {
                    attributes.swap(i - removed, i);
                }
                continue;
            }
            let class = self.classify(m, &attributes[i].key);
            if class.payload && !self.rules.capture_payloads {
                removed += 1;
                continue;
            }
            if removed > 0 {
                attributes.swap(i - removed, i);
            }
            let kv = &mut attributes[i - removed];
            let changed = if class.masked {
                mask_whole(&mut kv.value)
            } else {
                self.value(m, &mut kv.value, Ctx { skip: class.skip, numeric: class.numeric })
            };
            match id {
                // Redaction is a function of the rules, the key and the value, and a static pair
                // cannot change: what left it as it was will again.
                Some(id) if changed == 0 => m.mark_clean_pair(id),
                _ => n = n.saturating_add(changed),
            }
        }
        if removed > 0 {
            attributes.truncate(attributes.len() - removed);
            n = n.saturating_add(u32::try_from(removed).unwrap_or(u32::MAX));
        }
        n
    }

    /// Everything decided by the key alone, memoised per thread (keys repeat across spans).
    fn classify(&self, m: &mut Memo, key: &Str) -> KeyClass {
        m.key_class(key, || {
            let rules = &*self.rules;
            let k = key.as_bytes();
            let allowed = rules.allow_keys.iter().any(|a| a == key);
            KeyClass {
                payload: is_payload_key(k),
                masked: if allowed { rules.mask_keys_match(k) } else { rules.sensitive_key(k) },
                skip: allowed || (rules.defaults && PUBLIC_KEYS.iter().any(|name| key_ends_with(k, name))),
                numeric: rules.defaults && is_numeric_key(k),
            }
        })
    }

    /// Inlined into the attribute loop for the common kinds (a scalar, a string); arrays and maps,
    /// which recurse, go through [`Self::nested`].
    #[inline]
    fn value(&self, m: &mut Memo, value: &mut Value, ctx: Ctx) -> u32 {
        match value {
            Value::String(s) => {
                if ctx.skip {
                    return 0;
                }
                self.memo_string(m, s, ctx.numeric)
            }
            Value::Bool(_) | Value::Int(_) | Value::Double(_) | Value::Bytes(_) => 0,
            Value::Array(_) | Value::Map(_) => self.nested(m, value, ctx),
        }
    }

    #[inline(never)]
    fn nested(&self, m: &mut Memo, value: &mut Value, ctx: Ctx) -> u32 {
        match value {
            Value::Array(items) if !ctx.skip && self.rules.defaults && is_word_list(items) => mask_whole(value),
            Value::Array(items) => items.iter_mut().fold(0u32, |n, item| n.saturating_add(self.value(m, item, ctx))),
            Value::Map(kvs) => self.attributes(m, kvs),
            Value::String(_) | Value::Bool(_) | Value::Int(_) | Value::Double(_) | Value::Bytes(_) => 0,
        }
    }

    /// Value rules over a name or message (span and event names repeat as much as values do).
    fn text(&self, m: &mut Memo, s: &mut Str) -> u32 {
        if s.is_empty() { 0 } else { self.memo_string(m, s, false) }
    }

    /// Value rules over a string value in place; 1 if it changed. A `&'static str` never changes:
    /// once found clean it is remembered (per key kind) and not scanned again.
    #[inline]
    fn memo_string(&self, m: &mut Memo, s: &mut Str, numeric: bool) -> u32 {
        match s {
            Cow::Borrowed(b) if m.is_clean_static(b, numeric) => 0,
            // No rule can change it: the scanner's own first test, without the calls.
            _ if self.rules.value_rules.is_empty() && !scan::may_hold_secret(s.as_bytes()) => 0,
            _ => self.scan_string(m, s, numeric),
        }
    }

    /// [`Self::memo_string`] past the memo: the value rules, and the memo told when a static
    /// string is clean.
    #[inline(never)]
    fn scan_string(&self, m: &mut Memo, s: &mut Str, numeric: bool) -> u32 {
        let static_str = match s {
            Cow::Borrowed(b) => Some(*b),
            Cow::Owned(_) => None,
        };
        match self.string(s, numeric) {
            Some(new) => {
                *s = new;
                1
            }
            None => {
                if let Some(b) = static_str {
                    m.mark_clean_static(b, numeric);
                }
                0
            }
        }
    }

    /// Value rules over one string: the new string if anything changed.
    fn string(&self, s: &str, numeric: bool) -> Option<Str> {
        let rules = &*self.rules;
        let scanned = if rules.defaults { scan(s, rules, numeric && is_plain_number(s)) } else { None };
        let current: &str = scanned.as_deref().unwrap_or(s);
        if !rules.value_rules.is_empty()
            && current != REDACTED
            && rules.value_rules.iter().any(|r| (r.predicate)(current))
        {
            return Some(Cow::Borrowed(REDACTED));
        }
        scanned.map(Cow::Owned)
    }
}

impl Rules {
    fn mask_keys_match(&self, key: &[u8]) -> bool {
        self.mask_keys.iter().any(|m| contains_norm(key, m.as_bytes()))
    }

    fn sensitive_key(&self, key: &[u8]) -> bool {
        (self.defaults && SENSITIVE_KEYS.iter().any(|name| key_ends_with(key, name))) || self.mask_keys_match(key)
    }
}

fn next_rules_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What a key alone decides.
#[derive(Clone, Copy, Debug, Default)]
#[allow(clippy::struct_excessive_bools, reason = "four independent facts about a key, each a yes or no")]
struct KeyClass {
    /// A raw-payload key: removed unless payloads are captured.
    payload: bool,
    /// A sensitive key: the whole value is masked.
    masked: bool,
    /// A public or allowed key: value rules are off.
    skip: bool,
    /// An amount-like key.
    numeric: bool,
}

#[derive(Clone, Copy)]
struct Ctx {
    /// Value rules off (public or allowed key).
    skip: bool,
    /// An amount-like key.
    numeric: bool,
}

/// Replaces a value with `[REDACTED]`; 0 if it already is, or is an empty string.
fn mask_whole(value: &mut Value) -> u32 {
    match value {
        Value::String(s) if s.is_empty() || s == REDACTED => 0,
        _ => {
            *value = Value::String(Cow::Borrowed(REDACTED));
            1
        }
    }
}
