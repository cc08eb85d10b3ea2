//! Key rules: which attribute keys are sensitive (masked whole), public, payloads (removed) or
//! amounts (digits are not card numbers).

use super::scan::at;
use super::*;

/// Names whose values are secret (matched as key suffixes, see [`key_ends_with`]).
pub(super) const SENSITIVE_KEYS: &[&[u8]] = &[
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
pub(super) const PUBLIC_KEYS: &[&[u8]] = &[
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
pub(super) const PAYLOAD_KEYS: &[&[u8]] =
    &[b"payload", b"body", b"x_payment", b"x_payment_response", b"payment_signature"];

/// Fragments of amount-like keys: a bare number under them is never a card number.
pub(super) const NUMERIC_KEY_FRAGMENTS: &[&[u8]] = &[
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

pub(super) fn is_payload_key(key: &[u8]) -> bool {
    PAYLOAD_KEYS.iter().any(|name| key_ends_with(key, name))
}

pub(super) fn is_numeric_key(key: &[u8]) -> bool {
    NUMERIC_KEY_FRAGMENTS.iter().any(|f| contains_norm(key, f))
}

pub(super) fn is_key_sep(c: u8) -> bool {
    matches!(c, b'.' | b'_' | b'-' | b' ' | b'/' | b':')
}

/// True when `key` ends with `name`, comparing without case and ignoring separators, and the match
/// starts at a word boundary of `key` (its start, after a separator, or a camelCase hump).
pub(super) fn key_ends_with(key: &[u8], name: &[u8]) -> bool {
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

pub(super) fn norm(c: u8) -> u8 {
    if c == b'-' { b'_' } else { c.to_ascii_lowercase() }
}

/// `needle` (already normalised) occurs in `hay`, ignoring case and `-`/`_`.
pub(super) fn contains_norm(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w.iter().zip(needle).all(|(&a, &b)| norm(a) == norm(b)))
}

pub(super) fn is_plain_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.')
}

/// An array of 12 or more one-word lower-case strings of 3–8 letters: a seed phrase as a list.
pub(super) fn is_word_list(items: &[Value]) -> bool {
    items.len() >= 12
        && items.iter().all(|v| {
            v.as_str().is_some_and(|w| (3..=8).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase()))
        })
}
