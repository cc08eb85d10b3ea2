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
        let mut n = self.text(&mut span.name) + self.text(&mut span.status.message);
        n += self.attributes(&mut span.attributes);
        for event in &mut span.events {
            n += self.text(&mut event.name) + self.attributes(&mut event.attributes);
        }
        for link in &mut span.links {
            n += self.attributes(&mut link.attributes);
        }
        n
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
        self.attributes(attributes)
    }

    /// Redacts a whole export request: resources, scope attributes and spans. Returns the total count.
    pub fn redact_request(&self, request: &mut TraceRequest) -> u32 {
        if !self.rules.enabled {
            return 0;
        }
        let mut n = 0;
        for rs in &mut request.resource_spans {
            n += self.attributes(&mut rs.resource.attributes);
            for ss in &mut rs.scope_spans {
                n += self.attributes(&mut ss.scope.attributes);
                for span in &mut ss.spans {
                    n += self.redact_span(span);
                }
            }
        }
        n
    }

    // --- internals ---

    fn attributes(&self, attributes: &mut Vec<KeyValue>) -> u32 {
        let mut n = 0u32;
        if !self.rules.capture_payloads {
            let before = attributes.len();
            attributes.retain(|kv| !self.classify(&kv.key).payload);
            n = n.saturating_add(u32::try_from(before - attributes.len()).unwrap_or(u32::MAX));
        }
        for kv in attributes.iter_mut() {
            n = n.saturating_add(self.keyed(&kv.key, &mut kv.value));
        }
        n
    }

    fn keyed(&self, key: &str, value: &mut Value) -> u32 {
        let class = self.classify(key);
        if class.masked {
            return mask_whole(value);
        }
        self.value(value, Ctx { skip: class.skip, numeric: class.numeric })
    }

    /// Everything decided by the key alone, memoised per thread (keys repeat across spans).
    fn classify(&self, key: &str) -> KeyClass {
        cache::key_class(&self.rules, key, || {
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

    fn value(&self, value: &mut Value, ctx: Ctx) -> u32 {
        match value {
            Value::String(s) => {
                if ctx.skip {
                    return 0;
                }
                // A `&'static str` never changes: once found clean, it stays clean.
                let static_id = match s {
                    Cow::Borrowed(b) => Some((b.as_ptr() as usize, b.len(), ctx.numeric)),
                    Cow::Owned(_) => None,
                };
                if static_id.is_some_and(|id| cache::is_clean_static(&self.rules, id)) {
                    return 0;
                }
                match self.string(s, ctx.numeric) {
                    Some(new) => {
                        *s = new;
                        1
                    }
                    None => {
                        if let Some(id) = static_id {
                            cache::mark_clean_static(&self.rules, id);
                        }
                        0
                    }
                }
            }
            Value::Array(items) if !ctx.skip && self.rules.defaults && is_word_list(items) => mask_whole(value),
            Value::Array(items) => items.iter_mut().fold(0u32, |n, item| n.saturating_add(self.value(item, ctx))),
            Value::Map(kvs) => self.attributes(kvs),
            Value::Bool(_) | Value::Int(_) | Value::Double(_) | Value::Bytes(_) => 0,
        }
    }

    /// Value rules over a name or message.
    fn text(&self, s: &mut Str) -> u32 {
        match self.string(s, false) {
            Some(new) => {
                *s = new;
                1
            }
            None => 0,
        }
    }

    /// Value rules over one string: the new string if anything changed.
    fn string(&self, s: &str, numeric: bool) -> Option<Str> {
        let rules = &*self.rules;
        let scanned = if rules.defaults { scan(s, rules, numeric && is_plain_number(s)) } else { None };
        let current: &str = scanned.as_deref().unwrap_or(s);
        if current != REDACTED && rules.value_rules.iter().any(|r| (r.predicate)(current)) {
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

/// Per-thread memo of redaction decisions that depend only on immutable inputs. Redaction runs on
/// the batcher thread; without the memo every attribute key is matched against ~60 rule names for
/// every span. Entries are tied to one rule set (by the `Arc` address) and the memo is bounded.
mod cache {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};
    use std::hash::{BuildHasherDefault, Hasher};
    use std::sync::Arc;

    use super::{KeyClass, Rules};

    /// Entries kept per map before it is cleared (dynamic keys must not grow memory unbounded).
    const MAX_ENTRIES: usize = 4096;

    /// FNV-1a: keys are short and not attacker-chosen in bulk; the map is bounded anyway.
    #[derive(Default)]
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
            self.0 = h;
        }
    }
    type Build = BuildHasherDefault<Fnv>;

    #[derive(Default)]
    struct Memo {
        rules: u64,
        keys: HashMap<Box<str>, KeyClass, Build>,
        clean_static: HashSet<(usize, usize, bool), Build>,
    }

    thread_local! {
        static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
    }

    fn with<T>(rules: &Arc<Rules>, f: impl FnOnce(&mut Memo) -> T) -> T {
        MEMO.with(|m| {
            let mut m = m.borrow_mut();
            let id = rules.id;
            if m.rules != id {
                m.keys.clear();
                m.clean_static.clear();
                m.rules = id;
            }
            f(&mut m)
        })
    }

    pub(super) fn key_class(rules: &Arc<Rules>, key: &str, compute: impl FnOnce() -> KeyClass) -> KeyClass {
        if let Some(c) = with(rules, |m| m.keys.get(key).copied()) {
            return c;
        }
        let c = compute();
        with(rules, |m| {
            if m.keys.len() >= MAX_ENTRIES {
                m.keys.clear();
            }
            m.keys.insert(key.into(), c);
        });
        c
    }

    pub(super) fn is_clean_static(rules: &Arc<Rules>, id: (usize, usize, bool)) -> bool {
        with(rules, |m| m.clean_static.contains(&id))
    }

    pub(super) fn mark_clean_static(rules: &Arc<Rules>, id: (usize, usize, bool)) {
        with(rules, |m| {
            if m.clean_static.len() >= MAX_ENTRIES {
                m.clean_static.clear();
            }
            m.clean_static.insert(id);
        });
    }
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

// === key rules ===

/// Names whose values are secret (matched as key suffixes, see [`key_ends_with`]).
const SENSITIVE_KEYS: &[&[u8]] = &[
    b"authorization",
    b"cookie",
    b"cookies",
    b"password",
    b"passwd",
    b"pwd",
    b"passphrase",
    b"secret",
    b"secrets",
    b"private_key",
    b"privkey",
    b"priv_key",
    b"secret_key",
    b"access_key",
    b"api_key",
    b"token",
    b"auth_token",
    b"api_token",
    b"session_token",
    b"jwt",
    b"credential",
    b"credentials",
    b"mnemonic",
    b"seed_phrase",
    b"recovery_phrase",
    b"seed",
    b"keypair",
    b"signature",
    b"sig",
    b"card_number",
    b"pan",
    b"cvv",
    b"cvv2",
    b"cvc",
    b"ssn",
];

/// Names whose values are public hashes and ids: value rules are skipped.
const PUBLIC_KEYS: &[&[u8]] = &[
    b"hash",
    b"hashes",
    b"txhash",
    b"blockhash",
    b"digest",
    b"nonce",
    b"trace_id",
    b"span_id",
    b"tx_id",
    b"transaction_id",
];

/// Names of raw payloads, removed unless payloads are captured.
const PAYLOAD_KEYS: &[&[u8]] = &[b"payload", b"body", b"x_payment", b"x_payment_response", b"payment_signature"];

/// Fragments of amount-like keys: a bare number under them is never a card number.
const NUMERIC_KEY_FRAGMENTS: &[&[u8]] = &[
    b"amount",
    b"value",
    b"balance",
    b"price",
    b"fee",
    b"wei",
    b"lamport",
    b"gas",
    b"slot",
    b"height",
    b"block",
    b"time",
    b"deadline",
    b"valid",
    b"allowance",
    b"supply",
    b"size",
    b"count",
    b"total",
];

fn is_payload_key(key: &[u8]) -> bool {
    PAYLOAD_KEYS.iter().any(|name| key_ends_with(key, name))
}

fn is_numeric_key(key: &[u8]) -> bool {
    NUMERIC_KEY_FRAGMENTS.iter().any(|f| contains_norm(key, f))
}

fn is_key_sep(c: u8) -> bool {
    matches!(c, b'.' | b'_' | b'-' | b' ' | b'/' | b':')
}

/// True when `key` ends with `name`, comparing without case and ignoring separators, and the match
/// starts at a word boundary of `key` (its start, after a separator, or a camelCase hump).
fn key_ends_with(key: &[u8], name: &[u8]) -> bool {
    let mut k = key.len();
    let mut m = name.len();
    loop {
        while m > 0 && is_key_sep(name[m - 1]) {
            m -= 1;
        }
        if m == 0 {
            break;
        }
        while k > 0 && is_key_sep(key[k - 1]) {
            k -= 1;
        }
        if k == 0 || !key[k - 1].eq_ignore_ascii_case(&name[m - 1]) {
            return false;
        }
        k -= 1;
        m -= 1;
    }
    if k == 0 || k >= key.len() {
        return k == 0;
    }
    let (prev, cur) = (key[k - 1], key[k]);
    is_key_sep(prev)
        || (cur.is_ascii_uppercase() && (prev.is_ascii_lowercase() || prev.is_ascii_digit()))
        || (cur.is_ascii_uppercase() && prev.is_ascii_uppercase() && at(key, k + 1).is_ascii_lowercase())
}

fn norm(c: u8) -> u8 {
    if c == b'-' { b'_' } else { c.to_ascii_lowercase() }
}

/// `needle` (already normalised) occurs in `hay`, ignoring case and `-`/`_`.
fn contains_norm(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w.iter().zip(needle).all(|(&a, &b)| norm(a) == norm(b)))
}

fn is_plain_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.')
}

/// An array of 12 or more one-word lower-case strings of 3–8 letters: a seed phrase as a list.
fn is_word_list(items: &[Value]) -> bool {
    items.len() >= 12
        && items.iter().all(|v| {
            v.as_str().is_some_and(|w| (3..=8).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase()))
        })
}

// === value scanner ===

/// What to do with a span of text a rule claimed.
#[derive(Clone, Copy)]
enum Action {
    /// Replace with `[REDACTED]`.
    Mask,
    /// Replace with `[REDACTED:card:<last four>]`.
    Card([u8; 4]),
    /// Leave as is and scan on after it (the public value of a `nonce=`/`hash=` pair).
    Keep,
}

/// The span `start..end` claimed by a rule.
#[derive(Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
    action: Action,
}

impl Found {
    fn new(start: usize, end: usize) -> Option<Self> {
        Some(Self { start, end, action: Action::Mask })
    }
}

/// Builds the output lazily: nothing is allocated until the first replacement.
struct Out<'a> {
    src: &'a str,
    buf: Option<String>,
    copied: usize,
}

impl Out<'_> {
    fn replace(&mut self, f: Found) {
        if matches!(f.action, Action::Keep) {
            return;
        }
        let src = self.src;
        let buf = self.buf.get_or_insert_with(|| String::with_capacity(src.len()));
        buf.push_str(&src[self.copied..f.start]);
        match f.action {
            Action::Card(last4) => {
                buf.push_str("[REDACTED:card:");
                buf.extend(last4.iter().map(|&d| char::from(d)));
                buf.push(']');
            }
            Action::Mask | Action::Keep => buf.push_str(REDACTED),
        }
        self.copied = f.end;
    }

    fn finish(self) -> Option<String> {
        let mut buf = self.buf?;
        buf.push_str(&self.src[self.copied..]);
        Some(buf)
    }
}

/// Runs the default value rules over `s`; the new string if anything was masked.
/// `plain_number` turns the card rule off (a bare number under an amount-like key).
fn scan(s: &str, rules: &Rules, plain_number: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Out { src: s, buf: None, copied: 0 };
    // `floor`: where the last claimed span ended; look-behind never crosses it, so a second pass
    // (which sees `[REDACTED]` there) decides exactly as the first did.
    let (mut i, mut floor) = (0, 0);
    while i < b.len() {
        match find_at(b, i, floor, rules, plain_number) {
            Some(f) if !s.is_char_boundary(f.start) || !s.is_char_boundary(f.end) => {
                // Cannot happen (every rule starts and ends next to ASCII); fail safe.
                return Some(REDACTED.to_owned());
            }
            Some(f) => {
                out.replace(f);
                i = f.end.max(i + 1);
                floor = f.end;
            }
            None => i += 1,
        }
    }
    out.finish()
}

/// The byte at `i`, or 0 past the end.
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn starts_with(b: &[u8], i: usize, p: &[u8]) -> bool {
    b.get(i..).is_some_and(|rest| rest.starts_with(p))
}

fn starts_with_ci(b: &[u8], i: usize, p: &[u8]) -> bool {
    b.get(i..i + p.len()).is_some_and(|w| w.eq_ignore_ascii_case(p))
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_jwt_char(c: u8) -> bool {
    is_b64url(c) || c == b'.'
}

/// RFC 6750 `b64token` characters (and `=`).
fn is_b64token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn is_b58(c: u8) -> bool {
    c.is_ascii_alphanumeric() && !matches!(c, b'0' | b'O' | b'I' | b'l')
}

/// The secret starting at (or, for pairs and schemes, shortly after) position `i`, if any.
/// Every rule starts only at its own token boundary, so each byte is examined a bounded number
/// of times over the whole scan.
fn find_at(b: &[u8], i: usize, floor: usize, rules: &Rules, plain_number: bool) -> Option<Found> {
    let c = b[i];
    let prev = if i == 0 { b' ' } else { b[i - 1] };
    match c {
        b':' | b'=' => return url_password(b, i).or_else(|| pair(b, i, floor, rules)),
        b'-' => return pem(b, i),
        _ if !c.is_ascii_alphanumeric() || prev.is_ascii_alphanumeric() => return None,
        _ => {}
    }
    if c == b'b' || c == b'B' {
        if let Some(f) = auth_scheme(b, i) {
            return Some(f);
        }
    }
    if c == b'e' && !is_jwt_char(prev) {
        if let Some(f) = jwt(b, i) {
            return Some(f);
        }
    }
    if !is_b64url(prev) {
        if let Some(f) = api_key(b, i) {
            return Some(f);
        }
    }
    if let Some(f) = alnum_run(b, i) {
        return Some(f);
    }
    if c.is_ascii_digit() && !plain_number && prev != b'.' && prev != b'+' {
        if let Some(f) = card(b, i) {
            return Some(f);
        }
    }
    if c.is_ascii_lowercase() {
        let (words, end) = word_chain(b, i);
        if words >= 12 {
            return Found::new(i, end);
        }
    }
    None
}

/// `Bearer <token>` / `Basic <base64>`: the token (the scheme word is kept).
fn auth_scheme(b: &[u8], i: usize) -> Option<Found> {
    let (len, basic) = if starts_with_ci(b, i, b"bearer ") {
        (6, false)
    } else if starts_with_ci(b, i, b"basic ") {
        (5, true)
    } else {
        return None;
    };
    let mut j = i + len;
    while at(b, j) == b' ' {
        j += 1;
    }
    let start = j;
    while is_b64token(at(b, j)) {
        j += 1;
    }
    let token = &b[start..j];
    let ok = if basic {
        is_basic_credential(token)
    } else {
        token.len() >= 8 && (token.len() >= 20 || token.iter().any(|c| !c.is_ascii_alphabetic()))
    };
    if ok { Found::new(start, j) } else { None }
}

/// Looks like base64 rather than a word: at least 8 characters with a digit, `+`, `/` or `=`, or
/// with two capitals after the first character and a lower-case letter. (The test only ever gets
/// more true as the token grows, which keeps redaction idempotent.)
fn is_basic_credential(token: &[u8]) -> bool {
    let symbol = token.iter().any(|c| c.is_ascii_digit() || matches!(c, b'+' | b'/' | b'='));
    let inner_capitals = token.iter().skip(1).filter(|c| c.is_ascii_uppercase()).count();
    let lower = token.iter().any(u8::is_ascii_lowercase);
    token.len() >= 8 && (symbol || (inner_capitals >= 2 && lower))
}

/// A JWT: `eyJ…` header, `eyJ…` payload, signature (maybe more segments).
fn jwt(b: &[u8], i: usize) -> Option<Found> {
    if !starts_with(b, i, b"eyJ") {
        return None;
    }
    let (mut j, mut dots, mut payload_ok) = (i, 0, false);
    while is_jwt_char(at(b, j)) {
        if b[j] == b'.' {
            dots += 1;
            if dots == 1 {
                payload_ok = starts_with(b, j + 1, b"eyJ");
            }
        }
        j += 1;
    }
    if b[j - 1] == b'.' && dots >= 3 {
        // a sentence's full stop
        j -= 1;
        dots -= 1;
    }
    if dots >= 2 && payload_ok { Found::new(i, j) } else { None }
}

/// Well-known API key prefixes and the minimum length of what follows.
const API_KEY_PREFIXES: &[(&[u8], usize)] = &[
    (b"sk_live_", 10),
    (b"sk_test_", 10),
    (b"rk_live_", 10),
    (b"rk_test_", 10),
    (b"whsec_", 20),
    (b"ghp_", 30),
    (b"gho_", 30),
    (b"ghu_", 30),
    (b"ghs_", 30),
    (b"ghr_", 30),
    (b"github_pat_", 20),
    (b"xoxb-", 10),
    (b"xoxp-", 10),
    (b"xoxa-", 10),
    (b"xoxr-", 10),
    (b"xoxs-", 10),
    (b"AIza", 30),
    (b"glpat-", 20),
    (b"sk-", 20),
];

fn api_key(b: &[u8], i: usize) -> Option<Found> {
    let (prefix, min) = API_KEY_PREFIXES.iter().find(|(p, _)| starts_with(b, i, p))?;
    let mut j = i;
    while is_b64url(at(b, j)) {
        j += 1;
    }
    if j - i >= prefix.len() + min { Found::new(i, j) } else { None }
}

/// A whole alphanumeric run that is a hex key or signature, a long base58 string, or an AWS key id.
fn alnum_run(b: &[u8], i: usize) -> Option<Found> {
    let prefixed = b[i] == b'0' && matches!(at(b, i + 1), b'x' | b'X');
    let body = if prefixed { i + 2 } else { i };
    let (mut hex, mut hex_letter, mut b58, mut digit, mut upper, mut lower) = (true, false, true, false, false, false);
    let mut j = i;
    while at(b, j).is_ascii_alphanumeric() {
        let c = b[j];
        if j >= body {
            hex &= c.is_ascii_hexdigit();
            hex_letter |= c.is_ascii_alphabetic();
        }
        b58 &= is_b58(c);
        digit |= c.is_ascii_digit();
        upper |= c.is_ascii_uppercase();
        lower |= c.is_ascii_lowercase();
        j += 1;
        if j - i > 132 {
            return None;
        }
    }
    let len = j - i;
    if hex && (prefixed || hex_letter) && matches!(j - body, 64 | 128 | 130) {
        return Found::new(i, j);
    }
    if b58 && (86..=88).contains(&len) && digit && upper && lower {
        return Found::new(i, j);
    }
    if len == 20
        && (starts_with(b, i, b"AKIA") || starts_with(b, i, b"ASIA"))
        && b[i + 4..j].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Found::new(i, j);
    }
    None
}

fn digit_run(b: &[u8], i: usize, max: usize) -> usize {
    let mut n = 0;
    while n <= max && at(b, i + n).is_ascii_digit() {
        n += 1;
    }
    n
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let v = u32::from(d - b'0');
            if k % 2 == 1 { if v * 2 > 9 { v * 2 - 9 } else { v * 2 } } else { v }
        })
        .sum();
    sum % 10 == 0
}

/// Nothing alphanumeric (or a decimal part) right after a card number.
fn card_ends_at(b: &[u8], end: usize) -> bool {
    let c = at(b, end);
    let decimal = c == b'.' && at(b, end + 1).is_ascii_digit();
    !(c.is_ascii_alphanumeric() || decimal)
}

fn card_found(start: usize, end: usize, digits: &[u8]) -> Option<Found> {
    let mut last4 = [0u8; 4];
    last4.copy_from_slice(digits.get(digits.len().checked_sub(4)?..)?);
    Some(Found { start, end, action: Action::Card(last4) })
}

/// A card number: 13–19 digits starting with 2–6, contiguous or in groups (the first of 4, the
/// others of 3–6) joined by one kind of single separator, passing Luhn.
fn card(b: &[u8], i: usize) -> Option<Found> {
    if !(b'2'..=b'6').contains(&b[i]) {
        return None;
    }
    let run = digit_run(b, i, 19);
    if run >= 13 {
        let end = i + run;
        let digits = &b[i..end];
        let zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
        if run > 19 || zeros >= 5 || !card_ends_at(b, end) || !luhn(digits) {
            return None;
        }
        return card_found(i, end, digits);
    }
    let sep = at(b, i + 4);
    if run != 4 || (sep != b' ' && sep != b'-') {
        return None;
    }
    let mut digits = [0u8; 19];
    digits[..4].copy_from_slice(&b[i..i + 4]);
    // (end of group, digits so far) for every group after the first
    let mut groups = [(0usize, 0usize); 5];
    let (mut count, mut total, mut j) = (0, 4, i + 4);
    while count < groups.len() && at(b, j) == sep && at(b, j + 1).is_ascii_digit() {
        let g = digit_run(b, j + 1, 6);
        if !(3..=6).contains(&g) || total + g > 19 {
            break;
        }
        digits[total..total + g].copy_from_slice(&b[j + 1..j + 1 + g]);
        total += g;
        j += 1 + g;
        groups[count] = (j, total);
        count += 1;
    }
    groups[..count]
        .iter()
        .rev()
        .find(|&&(end, n)| n >= 13 && card_ends_at(b, end) && luhn(&digits[..n]))
        .and_then(|&(end, n)| card_found(i, end, &digits[..n]))
}

/// Counts the chain of lower-case 3–8 letter words joined by single spaces that starts at `i`;
/// returns (words, end of the last word).
fn word_chain(b: &[u8], i: usize) -> (usize, usize) {
    let (mut words, mut end, mut j) = (0, i, i);
    loop {
        let mut k = j;
        while k - j <= 8 && at(b, k).is_ascii_lowercase() {
            k += 1;
        }
        if !(3..=8).contains(&(k - j)) || at(b, k).is_ascii_alphanumeric() {
            break;
        }
        words += 1;
        end = k;
        if at(b, k) == b' ' && at(b, k + 1).is_ascii_lowercase() {
            j = k + 1;
        } else {
            break;
        }
    }
    (words, end)
}

/// `scheme://user:password@host`: the password.
fn url_password(b: &[u8], p: usize) -> Option<Found> {
    if b[p] != b':' || !starts_with(b, p + 1, b"//") {
        return None;
    }
    let start = p + 3;
    let (mut k, mut colon, mut at_sign) = (start, None, None);
    while k < b.len()
        && !matches!(b[k], b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\')
        && !b[k].is_ascii_whitespace()
    {
        match b[k] {
            b'@' => at_sign = Some(k),
            b':' if colon.is_none() && at_sign.is_none() => colon = Some(k),
            _ => {}
        }
        k += 1;
    }
    let (colon, at_sign) = (colon?, at_sign?);
    if colon + 1 >= at_sign || starts_with(b, colon + 1, REDACTED.as_bytes()) {
        return None;
    }
    Found::new(colon + 1, at_sign)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

fn is_value_delim(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b'<' | b'>')
}

/// `key=value`, `key: value` or `"key":"value"` with a sensitive key: the value, masked. With a
/// public key (`nonce`, `tx_hash`, …) the value is kept and not scanned.
fn pair(b: &[u8], p: usize, floor: usize, rules: &Rules) -> Option<Found> {
    let mut e = p;
    if e > floor && matches!(b[e - 1], b'"' | b'\'') {
        e -= 1;
    }
    let mut s = e;
    while s > floor && is_ident(b[s - 1]) {
        s -= 1;
    }
    if s == e {
        return None;
    }
    let ident = &b[s..e];
    let action = if rules.sensitive_key(ident) {
        Action::Mask
    } else if PUBLIC_KEYS.iter().any(|name| key_ends_with(ident, name)) {
        Action::Keep
    } else {
        return None;
    };
    let mut j = p + 1;
    while at(b, j) == b' ' {
        j += 1;
    }
    let quote = at(b, j);
    let (start, end) = if quote == b'"' || quote == b'\'' {
        let start = j + 1;
        let mut k = start;
        while k < b.len() && b[k] != quote {
            k += 1;
        }
        (start, k)
    } else {
        let mut start = j;
        for scheme in [&b"bearer "[..], b"basic "] {
            if starts_with_ci(b, start, scheme) {
                start += scheme.len();
                while at(b, start) == b' ' {
                    start += 1;
                }
                break;
            }
        }
        let (words, chain_end) = if at(b, start).is_ascii_lowercase() { word_chain(b, start) } else { (0, start) };
        if words >= 12 {
            (start, chain_end)
        } else {
            let mut k = start;
            while k < b.len() && !is_value_delim(b[k]) {
                k += 1;
            }
            (start, k)
        }
    };
    let value = &b[start..end];
    if value.is_empty() || value.starts_with(REDACTED.as_bytes()) || value == b"null" {
        return None;
    }
    Some(Found { start, end, action })
}

/// A PEM private key block, through its `END` line (or the end of the text).
fn pem(b: &[u8], i: usize) -> Option<Found> {
    if !starts_with(b, i, b"-----BEGIN ") {
        return None;
    }
    let label = i + 11;
    let mut k = label;
    while k < b.len() && k - label < 64 && !starts_with(b, k, b"-----") {
        k += 1;
    }
    if !starts_with(b, k, b"-----") || !b[label..k].ends_with(b"PRIVATE KEY") {
        return None;
    }
    let mut end = b.len();
    let mut m = k + 5;
    while m < b.len() {
        if starts_with(b, m, b"-----END ") {
            let mut t = m + 9;
            while t < b.len() && b[t] != b'\n' && !starts_with(b, t, b"-----") {
                t += 1;
            }
            end = if starts_with(b, t, b"-----") { t + 5 } else { t };
            // anything glued to the footer goes too, so the next token starts at a clean boundary
            while is_b64token(at(b, end)) {
                end += 1;
            }
            break;
        }
        m += 1;
    }
    Found::new(i, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Link, Status};

    fn red(key: &'static str, value: &'static str) -> Value {
        let mut span = SpanData { attributes: vec![KeyValue::new(key, value)], ..Default::default() };
        Redactor::default().redact_span(&mut span);
        span.attributes.pop().map(|kv| kv.value).unwrap_or(Value::Bool(false))
    }

    fn text(s: &str) -> String {
        let r = Redactor::default();
        scan(s, &r.rules, false).unwrap_or_else(|| s.to_owned())
    }

    #[test]
    fn key_suffix_matching() {
        for key in [
            "authorization",
            "http.request.header.authorization",
            "http.request.header.proxy-authorization",
            "http.response.header.set-cookie",
            "db.password",
            "DB_PASSWORD",
            "privateKey",
            "wallet.private_key",
            "XApiKey",
            "x-api-key",
            "apikey",
            "stripe.api_key",
            "auth_token",
            "authToken",
            "oauth.access_token",
            "x402.token",
            "TOKEN",
            "client_secret",
            "mnemonic",
            "wallet.seed",
            "payment.sig",
            "x402.signature",
            "card.number",
            "card.pan",
            "cvv",
            "user.ssn",
        ] {
            assert!(SENSITIVE_KEYS.iter().any(|n| key_ends_with(key.as_bytes(), n)), "{key} should be sensitive");
        }
        for key in [
            "token_address",
            "token.symbol",
            "token_id",
            "x402.asset",
            "gen_ai.usage.input_tokens",
            "llm.max_tokens",
            "span.kind",
            "japan",
            "timespan",
            "design",
            "signature_scheme",
            "password_hash",
            "x402.payer",
            "http.request.body.size",
            "mytoken",
        ] {
            assert!(!SENSITIVE_KEYS.iter().any(|n| key_ends_with(key.as_bytes(), n)), "{key} should not be sensitive");
        }
    }

    #[test]
    fn public_and_payload_keys() {
        for key in [
            "x402.tx_hash",
            "txHash",
            "txhash",
            "transaction_hash",
            "block_hash",
            "recentBlockhash",
            "x402.nonce",
            "trace_id",
            "traceId",
            "parent_span_id",
            "a.hash",
        ] {
            assert!(PUBLIC_KEYS.iter().any(|n| key_ends_with(key.as_bytes(), n)), "{key}");
        }
        for key in [
            "x402.payload",
            "x402.payment_payload",
            "http.request.body",
            "my.body",
            "http.request.header.x-payment",
            "x_payment",
            "http.response.header.x-payment-response",
            "http.request.header.payment-signature",
            "paymentPayload",
        ] {
            assert!(is_payload_key(key.as_bytes()), "{key}");
        }
        for key in ["http.request.body.size", "x402.payload_type", "nobody", "x402.payment_id"] {
            assert!(!is_payload_key(key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn hex_rules() {
        let pk = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        assert_eq!(text(pk), REDACTED);
        assert_eq!(text(&pk[2..]), REDACTED);
        assert_eq!(text(&format!("key={pk}!")), "key=[REDACTED]!");
        // 64 decimal digits are not a key
        let digits = "1".repeat(64);
        assert_eq!(text(&digits), digits);
        // 65 or 66 hex digits are not a key
        let long = format!("{pk}a");
        assert_eq!(text(&long), long);
        let sig = format!("0x{}1b", "ab".repeat(64));
        assert_eq!(text(&sig), REDACTED);
        assert_eq!(text(&"cd".repeat(64)), REDACTED);
        let addr = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
        assert_eq!(text(addr), addr);
    }

    #[test]
    fn card_rules() {
        assert_eq!(text("4111111111111111"), "[REDACTED:card:1111]");
        assert_eq!(text("4111 1111 1111 1111"), "[REDACTED:card:1111]");
        assert_eq!(text("5555-5555-5555-4444"), "[REDACTED:card:4444]");
        assert_eq!(text("3782 822463 10005"), "[REDACTED:card:0005]");
        assert_eq!(text("card 4111 1111 1111 1111 12 25"), "card [REDACTED:card:1111] 12 25");
        assert_eq!(text("4111111111111112"), "4111111111111112");
        assert_eq!(text("1712345678901234567"), "1712345678901234567");
        assert_eq!(text("0.4111111111111111"), "0.4111111111111111");
        assert_eq!(text("+4111111111111111"), "+4111111111111111");
        assert_eq!(text("4111 1111-1111 1111"), "4111 1111-1111 1111");
        assert_eq!(text("2024-01-15T10:20:30.123456789Z"), "2024-01-15T10:20:30.123456789Z");
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
    }

    #[test]
    fn amounts_under_amount_keys_survive_the_card_rule() {
        // 4111111111111111 passes Luhn; as an amount it is left alone.
        assert_eq!(red("x402.amount", "4111111111111111"), Value::from("4111111111111111"));
        assert_eq!(red("erc20.value", "4111111111111111"), Value::from("4111111111111111"));
        assert_eq!(red("note", "4111111111111111"), Value::from("[REDACTED:card:1111]"));
        assert_eq!(red("note", "2500000000000000"), Value::from("2500000000000000"));
    }

    #[test]
    fn seed_rules() {
        let twelve = "legal winner thank year wave sausage worth useful legal winner thank yellow";
        assert_eq!(text(twelve), REDACTED);
        assert_eq!(text(&format!("restored from: {twelve} (ok)")), "restored from: [REDACTED] (ok)");
        let eleven = "legal winner thank year wave sausage worth useful legal winner thank";
        assert_eq!(text(eleven), eleven);
        let sentence = "The settler retried the payment twice, then gave up after a timeout.";
        assert_eq!(text(sentence), sentence);
    }

    #[test]
    fn scheme_rules() {
        assert_eq!(text("Bearer abcdefgh1234"), "Bearer [REDACTED]");
        assert_eq!(text("BEARER    abcdefgh1234 x"), "BEARER    [REDACTED] x");
        assert_eq!(text("the bearer token is invalid"), "the bearer token is invalid");
        assert_eq!(text("bearer authentication"), "bearer authentication");
        assert_eq!(text("Basic dXNlcjpwYXNzd29yZA=="), "Basic [REDACTED]");
        assert_eq!(text("basic auth is disabled"), "basic auth is disabled");
        assert_eq!(text("Basic authentication"), "Basic authentication");
        assert!(is_basic_credential(b"dXNlcjpwYXNz"));
        assert!(!is_basic_credential(b"AuthenticationFailed"));
    }

    #[test]
    fn pair_and_url_rules() {
        assert_eq!(text("GET /v1/quote?api_key=abc123&chain=base"), "GET /v1/quote?api_key=[REDACTED]&chain=base");
        assert_eq!(text(r#"{"password":"hunter 2","user":"bob"}"#), r#"{"password":"[REDACTED]","user":"bob"}"#);
        assert_eq!(text("Authorization: Bearer abc"), "Authorization: Bearer [REDACTED]");
        assert_eq!(text("postgres://app:s3cr3t@db:5432/x"), "postgres://app:[REDACTED]@db:5432/x");
        assert_eq!(text("https://base.example.org/rpc"), "https://base.example.org/rpc");
        assert_eq!(text("token: null"), "token: null");
        assert_eq!(text("status: ok, retries: 3"), "status: ok, retries: 3");
        assert_eq!(text("password=\"unterminated"), "password=\"[REDACTED]");
        let nonce = format!(r#"{{"nonce":"0x{0}","sig":"0x{0}"}}"#, "ab".repeat(32));
        assert_eq!(text(&nonce), format!(r#"{{"nonce":"0x{}","sig":"[REDACTED]"}}"#, "ab".repeat(32)));
    }

    #[test]
    fn pem_rule() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----";
        assert_eq!(text(&format!("loaded {pem} ok")), "loaded [REDACTED] ok");
        let public = "-----BEGIN PUBLIC KEY-----\nMFkwEw\n-----END PUBLIC KEY-----";
        assert_eq!(text(public), public);
    }

    #[test]
    fn no_allocation_when_nothing_matches() {
        let r = Redactor::default();
        let mut s: Str = Cow::Borrowed("settle 0x209693Bc6afc0C5328bA36FaF03C514EF312287C on base");
        assert_eq!(r.text(&mut s), 0);
        assert!(matches!(s, Cow::Borrowed(_)));
    }

    #[test]
    fn span_parts_and_counts() {
        let mut span = SpanData {
            name: "settle".into(),
            status: Status::error("rpc said: Bearer abcdefgh12345678 rejected"),
            attributes: vec![
                KeyValue::new("x402.payload", "{}"),
                KeyValue::new("x402.signature", Value::Bytes(vec![1, 2, 3])),
                KeyValue::new("x402.amount", "1000000"),
                KeyValue::new(
                    "nested",
                    Value::Map(vec![
                        KeyValue::new("password", 42i64),
                        KeyValue::new(
                            "list",
                            Value::Array(vec![Value::from("ok"), Value::from("sk_live_0123456789abcdef")]),
                        ),
                    ]),
                ),
            ],
            events: vec![Event {
                name: "exception".into(),
                attributes: vec![KeyValue::new("exception.message", "AKIAIOSFODNN7EXAMPLE denied")],
                ..Default::default()
            }],
            links: vec![Link { attributes: vec![KeyValue::new("token", "t")], ..Default::default() }],
            ..Default::default()
        };
        let r = Redactor::default();
        assert_eq!(r.redact_span(&mut span), 7);
        assert_eq!(span.status.message, "rpc said: Bearer [REDACTED] rejected");
        assert_eq!(span.attributes.len(), 3);
        assert_eq!(span.events[0].attributes[0].value, Value::from("[REDACTED] denied"));
        let again = span.clone();
        assert_eq!(r.redact_span(&mut span), 0);
        assert_eq!(span, again);
    }

    #[test]
    fn debug_lists_rules() {
        let r = Redactor::builder().mask_value("acct", |v| v.starts_with("acct_")).mask_key("email").build();
        let d = format!("{r:?}");
        assert!(d.contains("acct") && d.contains("email"), "{d}");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn redact_twice(s: &str) -> (SpanData, SpanData) {
            let r = Redactor::builder().mask_value("x", |v| v.contains("zz")).build();
            let mut span = SpanData {
                name: s.to_owned().into(),
                status: Status::error(s.to_owned()),
                attributes: vec![
                    KeyValue::new("note", s.to_owned()),
                    KeyValue::new("x402.amount", s.to_owned()),
                    KeyValue::new("x402.tx_hash", s.to_owned()),
                    KeyValue::new(s.to_owned(), s.to_owned()),
                    KeyValue::new(
                        "list",
                        Value::Array(vec![
                            Value::from(s.to_owned()),
                            Value::Map(vec![KeyValue::new(s.to_owned(), 1i64)]),
                        ]),
                    ),
                ],
                ..Default::default()
            };
            r.redact_span(&mut span);
            let once = span.clone();
            assert_eq!(r.redact_span(&mut span), 0, "second pass changed something: {s:?}");
            (once, span)
        }

        /// Fragments that trip the rules, glued together with separators.
        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("Bearer ".to_owned()),
                Just("basic ".to_owned()),
                Just("eyJhbGciOiJI".to_owned()),
                Just("eyJ".to_owned()),
                Just("sk_live_".to_owned()),
                Just("sk-".to_owned()),
                Just("AKIA".to_owned()),
                Just("0x".to_owned()),
                Just("4111".to_owned()),
                Just("1111".to_owned()),
                Just("password=".to_owned()),
                Just("\"token\":\"".to_owned()),
                Just("\"nonce\": \"".to_owned()),
                Just("tx_hash=".to_owned()),
                Just("://u:p@".to_owned()),
                Just("-----BEGIN RSA PRIVATE KEY-----".to_owned()),
                Just("-----END ".to_owned()),
                Just("-----END EC PRIVATE KEY-----".to_owned()),
                Just("Authorization: ".to_owned()),
                Just("[REDACTED]".to_owned()),
                Just("[REDACTED:card:1111]".to_owned()),
                Just("abandon ".to_owned()),
                "[a-f0-9]{1,70}",
                "[1-9A-HJ-NP-Za-km-z]{1,90}",
                "[a-z]{3,8}( [a-z]{3,8}){0,13}",
                "[0-9]{1,20}",
                "[ .:=\\-_/\"'@]{1,3}",
                ".{0,8}",
            ]
        }

        proptest! {
            #[test]
            fn never_panics_and_is_idempotent_on_any_string(s in ".{0,300}") {
                let (once, twice) = redact_twice(&s);
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn idempotent_on_secret_shaped_strings(parts in proptest::collection::vec(fragment(), 0..16)) {
                let s = parts.concat();
                let (once, twice) = redact_twice(&s);
                prop_assert_eq!(once, twice);
            }
        }
    }
}
