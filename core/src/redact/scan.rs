//! The value scanners: one pass over a string's bytes, bounded work per position, no allocation
//! unless a secret is found.

use super::*;

/// What to do with a span of text a rule claimed.
#[derive(Clone, Copy)]
pub(super) enum Action {
    /// Replace with `[REDACTED]`.
    Mask,
    /// Replace with `[REDACTED:card:<last four>]`.
    Card([u8; 4]),
    /// Leave as is and scan on after it (the public value of a `nonce=`/`hash=` pair).
    Keep,
}

/// The span `start..end` claimed by a rule.
#[derive(Clone, Copy)]
pub(super) struct Found {
    start: usize,
    end: usize,
    action: Action,
}

impl Found {
    fn new(start: usize, end: usize) -> Self {
        Self { start, end, action: Action::Mask }
    }
}

/// Builds the output lazily: nothing is allocated until the first replacement.
pub(super) struct Out<'a> {
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

/// The shortest secret a rule finds in a string holding no `:`, `=` or `-` (the bytes URL
/// passwords, `key=value` pairs, PEM blocks and dashed key prefixes start at): a JWT, `eyJ.eyJ.x`
/// (the next shortest are 13-digit card numbers). Shorter strings without those bytes — most
/// attribute values: `exact`, `base`, amounts, status words — are not scanned at all.
pub(super) const MIN_SECRET_WITHOUT_MARKERS: usize = 9;

/// Runs the default value rules over `s`; the new string if anything was masked.
/// `plain_number` turns the card rule off (a bare number under an amount-like key).
pub(super) fn scan(s: &str, rules: &Rules, plain_number: bool) -> Option<String> {
    if !may_hold_secret(s.as_bytes()) {
        return None;
    }
    scan_from(s, rules, plain_number, next_candidate)
}

/// Whether the default value rules can find anything in `b`; `false` for most attribute values.
/// Inlined where a value is first looked at: with owned values (what the bindings hand over) it
/// answers for most strings of a span, and the calls it saves into the scanner cost more than it
/// (callgrind, `redact_owned`: ≈ 65 instructions a string in `scan_string`'s and `scan`'s entry
/// and exit).
#[inline]
pub(super) fn may_hold_secret(b: &[u8]) -> bool {
    if b.len() < MIN_SECRET_WITHOUT_MARKERS {
        return b.iter().any(|c| matches!(c, b':' | b'=' | b'-'));
    }
    // Most longer values are one alphanumeric token — addresses, ids, amounts, words — where only a
    // few lengths and one prefix can be a secret: not scanned otherwise.
    alnum_token_may_be_secret(b) || !all_ascii_alphanumeric(b)
}

/// `b.iter().all(u8::is_ascii_alphanumeric)`, eight bytes at a time: values handed over by the
/// bindings are owned and checked on every span, and the byte loop over the two 42-character
/// addresses of a typical x402 span was ≈ 70 % of `scan`'s samples (`perf`, `redact_owned`). A
/// test compares the two on every byte value in every position.
pub(super) fn all_ascii_alphanumeric(b: &[u8]) -> bool {
    if b.len() < 8 {
        return b.iter().all(u8::is_ascii_alphanumeric);
    }
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    // Whole words, then the last eight bytes (overlapping the previous word when the length is
    // not a multiple of eight), folded without a branch per word: the values this answers for
    // are mostly all alphanumeric and read to the end anyway.
    let whole = b.chunks_exact(8).fold(0, |bad, c| bad | non_alphanumeric_bytes(word(c)));
    whole | non_alphanumeric_bytes(word(&b[b.len() - 8..])) == 0
}

/// The high bit of each byte of `v` that is not an ASCII letter or digit (0: all eight are).
fn non_alphanumeric_bytes(v: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn each(x: u8) -> u64 {
        0x0101_0101_0101_0101 * x as u64
    }
    // Per byte `x` below 0x80: `x + (0x80 - lo)` has its high bit set iff `x >= lo`, and
    // `x + (0x7f - hi)` iff `x > hi`; neither sum passes 0xff, so nothing carries into the next
    // byte. Letters are tested case-folded (`| 0x20` maps no non-letter into `a..=z`). A byte
    // from 0x80 may carry into its neighbours' bits, but its own high bit already makes the
    // answer non-zero.
    let in_range = |x: u64, lo: u8, hi: u8| x.wrapping_add(each(0x80 - lo)) & !x.wrapping_add(each(0x7f - hi));
    (v | !(in_range(v, b'0', b'9') | in_range(v | each(0x20), b'a', b'z'))) & HIGH
}

/// Whether a string of only ASCII letters and digits can hold anything a rule finds. With no
/// separator the only place a rule can start is the first byte, and a rule must claim the whole
/// token: a hex key or signature (64, 128 or 130 digits, `0x` or not), a base58 secret (86–88), an
/// AWS key id (20), a card number (13–19 digits) or a Google API key (`AIza` and 30 or more); the
/// other rules need a space, `.`, `_`, `-`, `:` or `=`. (A test checks this against the full scan.)
pub(super) fn alnum_token_may_be_secret(b: &[u8]) -> bool {
    matches!(b.len(), 13..=20 | 64..=66 | 86..=88 | 128..=132) || b.starts_with(b"AIza")
}

/// [`scan`] trying every position with [`find_at`]: what the skipping in [`scan`] must equal (the
/// tests compare the two).
#[cfg(test)]
pub(super) fn scan_every_position(s: &str, rules: &Rules, plain_number: bool) -> Option<String> {
    scan_from(s, rules, plain_number, |_, i| i)
}

/// The first position at or after `i` where [`find_at`] can find something: a `:`, `=` or `-`, or
/// the start of an alphanumeric token. Everywhere else it answers `None` at once, so skipping
/// those positions changes nothing, and a loop over bytes is cheaper than a call per byte.
fn next_candidate(b: &[u8], mut i: usize) -> usize {
    let mut prev_alnum = i > 0 && b[i - 1].is_ascii_alphanumeric();
    while let Some(&c) = b.get(i) {
        let alnum = c.is_ascii_alphanumeric();
        if (alnum && !prev_alnum) || matches!(c, b':' | b'=' | b'-') {
            return i;
        }
        prev_alnum = alnum;
        i += 1;
    }
    i
}

fn scan_from(s: &str, rules: &Rules, plain_number: bool, next: impl Fn(&[u8], usize) -> usize) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Out { src: s, buf: None, copied: 0 };
    // `floor`: where the last claimed span ended; look-behind never crosses it, so a second pass
    // (which sees `[REDACTED]` there) decides exactly as the first did.
    let (mut i, mut floor) = (next(b, 0), 0);
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
            None => i = next(b, i + 1),
        }
    }
    out.finish()
}

/// The byte at `i`, or 0 past the end.
pub(super) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

pub(super) fn starts_with(b: &[u8], i: usize, p: &[u8]) -> bool {
    b.get(i..).is_some_and(|rest| rest.starts_with(p))
}

pub(super) fn starts_with_ci(b: &[u8], i: usize, p: &[u8]) -> bool {
    b.get(i..i + p.len()).is_some_and(|w| w.eq_ignore_ascii_case(p))
}

pub(super) fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

pub(super) fn is_jwt_char(c: u8) -> bool {
    is_b64url(c) || c == b'.'
}

/// RFC 6750 `b64token` characters (and `=`).
pub(super) fn is_b64token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

pub(super) fn is_b58(c: u8) -> bool {
    c.is_ascii_alphanumeric() && !matches!(c, b'0' | b'O' | b'I' | b'l')
}

/// The secret starting at (or, for pairs and schemes, shortly after) position `i`, if any.
/// Every rule starts only at its own token boundary, so each byte is examined a bounded number
/// of times over the whole scan.
pub(super) fn find_at(b: &[u8], i: usize, floor: usize, rules: &Rules, plain_number: bool) -> Option<Found> {
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
            return Some(Found::new(i, end));
        }
    }
    None
}

/// `Bearer <token>` / `Basic <base64>`: the token (the scheme word is kept).
pub(super) fn auth_scheme(b: &[u8], i: usize) -> Option<Found> {
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
    if ok { Some(Found::new(start, j)) } else { None }
}

/// Looks like base64 rather than a word: at least 8 characters with a digit, `+`, `/` or `=`, or
/// with two capitals after the first character and a lower-case letter. (The test only ever gets
/// more true as the token grows, which keeps redaction idempotent.)
pub(super) fn is_basic_credential(token: &[u8]) -> bool {
    let symbol = token.iter().any(|c| c.is_ascii_digit() || matches!(c, b'+' | b'/' | b'='));
    let inner_capitals = token.iter().skip(1).filter(|c| c.is_ascii_uppercase()).count();
    let lower = token.iter().any(u8::is_ascii_lowercase);
    token.len() >= 8 && (symbol || (inner_capitals >= 2 && lower))
}

/// A JWT: `eyJ…` header, `eyJ…` payload, signature (maybe more segments).
pub(super) fn jwt(b: &[u8], i: usize) -> Option<Found> {
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
    if dots >= 2 && payload_ok { Some(Found::new(i, j)) } else { None }
}

/// Well-known API key prefixes and the minimum length of what follows.
pub(super) const API_KEY_PREFIXES: &[(&[u8], usize)] = &[
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

pub(super) fn api_key(b: &[u8], i: usize) -> Option<Found> {
    let (prefix, min) = API_KEY_PREFIXES.iter().find(|(p, _)| starts_with(b, i, p))?;
    let mut j = i;
    while is_b64url(at(b, j)) {
        j += 1;
    }
    if j - i >= prefix.len() + min { Some(Found::new(i, j)) } else { None }
}

/// A whole alphanumeric run that is a hex key or signature, a long base58 string, or an AWS key id.
pub(super) fn alnum_run(b: &[u8], i: usize) -> Option<Found> {
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
        return Some(Found::new(i, j));
    }
    if b58 && (86..=88).contains(&len) && digit && upper && lower {
        return Some(Found::new(i, j));
    }
    if len == 20
        && (starts_with(b, i, b"AKIA") || starts_with(b, i, b"ASIA"))
        && b[i + 4..j].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Some(Found::new(i, j));
    }
    None
}

pub(super) fn digit_run(b: &[u8], i: usize, max: usize) -> usize {
    let mut n = 0;
    while n <= max && at(b, i + n).is_ascii_digit() {
        n += 1;
    }
    n
}

pub(super) fn luhn(digits: &[u8]) -> bool {
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
pub(super) fn card_ends_at(b: &[u8], end: usize) -> bool {
    let c = at(b, end);
    let decimal = c == b'.' && at(b, end + 1).is_ascii_digit();
    !(c.is_ascii_alphanumeric() || decimal)
}

pub(super) fn card_found(start: usize, end: usize, digits: &[u8]) -> Option<Found> {
    let mut last4 = [0u8; 4];
    last4.copy_from_slice(digits.get(digits.len().checked_sub(4)?..)?);
    Some(Found { start, end, action: Action::Card(last4) })
}

/// A card number: 13–19 digits starting with 2–6, contiguous or in groups (the first of 4, the
/// others of 3–6) joined by one kind of single separator, passing Luhn.
pub(super) fn card(b: &[u8], i: usize) -> Option<Found> {
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
pub(super) fn word_chain(b: &[u8], i: usize) -> (usize, usize) {
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
pub(super) fn url_password(b: &[u8], p: usize) -> Option<Found> {
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
    Some(Found::new(colon + 1, at_sign))
}

pub(super) fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

pub(super) fn is_value_delim(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b'<' | b'>')
}

/// `key=value`, `key: value` or `"key":"value"` with a sensitive key: the value, masked. With a
/// public key (`nonce`, `tx_hash`, …) the value is kept and not scanned.
pub(super) fn pair(b: &[u8], p: usize, floor: usize, rules: &Rules) -> Option<Found> {
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
pub(super) fn pem(b: &[u8], i: usize) -> Option<Found> {
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
    Some(Found::new(i, end))
}
