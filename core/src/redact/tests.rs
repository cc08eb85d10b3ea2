//! Unit tests of the rules, scanners and memo.

use super::scan::{is_basic_credential, luhn};
use super::*;
use crate::model::{Event, Link, Status};

fn red(key: &'static str, value: &'static str) -> Value {
    let mut span = SpanData { attributes: vec![KeyValue::new(key, value)], ..Default::default() };
    Redactor::default().redact_span(&mut span);
    span.attributes.pop().map_or(Value::Bool(false), |kv| kv.value)
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
    assert_eq!(super::cache::with(&r.rules, |m| r.text(m, &mut s)), 0);
    assert!(matches!(s, Cow::Borrowed(_)));
}

/// The memo of static pairs (`cache::pair_id`) returns what the rules decided the first time:
/// removed, masked and scanned pairs come out the same, with the same counts, however often a span
/// of static keys and values goes through, around pairs the memo skips.
#[test]
fn repeated_static_pairs_redact_as_the_first_time() {
    let span = || SpanData {
        name: "settle".into(),
        attributes: vec![
            KeyValue::new("x402.network", "base"),
            KeyValue::new("x402.payload", "eyJ4NDAyVmVyc2lvbiI6MX0="),
            KeyValue::new("db.password", "hunter2"),
            KeyValue::new("x402.asset", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            KeyValue::new("api_key", 42i64),
            KeyValue::new("http.response.status_code", 200i64),
            KeyValue::new("error.message", "auth failed: Bearer abcdefgh12345678"),
            KeyValue::new("x402.amount", "1000000"),
            KeyValue::new("x402.attempt", 1i64),
            KeyValue::new("note", ""),
            KeyValue::new("x402.tx_hash", Value::Array(vec!["0xab".into()])),
        ],
        ..Default::default()
    };
    let r = Redactor::default();
    let mut first = span();
    let n = r.redact_span(&mut first);
    assert_eq!(n, 4, "payload removed; password, api_key and the bearer token masked");
    let keys: Vec<&str> = first.attributes.iter().map(|kv| &*kv.key).collect();
    assert!(!keys.contains(&"x402.payload"));
    assert_eq!(first.attributes[1].value.as_str(), Some(REDACTED));
    assert_eq!(first.attributes[3].value.as_str(), Some(REDACTED));
    assert_eq!(first.attributes[5].value.as_str(), Some("auth failed: Bearer [REDACTED]"));
    for _ in 0..3 {
        let mut again = span();
        assert_eq!(r.redact_span(&mut again), n);
        assert_eq!(again, first);
    }
    // Another rule set does not see this one's memo.
    let mut allowed = span();
    Redactor::builder().allow_key("db.password").build().redact_span(&mut allowed);
    assert_eq!(allowed.attributes[1].value.as_str(), Some("hunter2"));
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
                    Value::Array(vec![Value::from(s.to_owned()), Value::Map(vec![KeyValue::new(s.to_owned(), 1i64)])]),
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

    /// The word-at-a-time check equals the byte loop for every byte value at every position of
    /// every length up to 40 (words, the overlapping tail and the short-string path).
    #[test]
    fn alphanumeric_words_equal_the_byte_loop() {
        for len in 0..=40usize {
            for pos in 0..len.max(1) {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    if let Some(x) = b.get_mut(pos) {
                        *x = c;
                    }
                    assert_eq!(
                        crate::redact::scan::all_ascii_alphanumeric(&b),
                        b.iter().all(u8::is_ascii_alphanumeric),
                        "{b:?}"
                    );
                }
            }
        }
    }

    proptest! {
        /// The same on arbitrary bytes.
        #[test]
        fn alphanumeric_words_equal_the_byte_loop_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(crate::redact::scan::all_ascii_alphanumeric(&b), b.iter().all(u8::is_ascii_alphanumeric));
        }

        #[test]
        fn never_panics_and_is_idempotent_on_any_string(s in ".{0,300}") {
            let (once, twice) = redact_twice(&s);
            prop_assert_eq!(once, twice);
        }

        /// The length shortcut skips nothing a rule would find: every string under
        /// `MIN_SECRET_WITHOUT_MARKERS` bytes without `:`, `=` or `-` is clean to the full scan
        /// (secret-shaped fragments included: `eyJ.eyJ.` is one byte short of a JWT).
        #[test]
        fn short_strings_without_markers_hold_no_secret(
            s in proptest::string::string_regex("([a-zA-Z0-9 ./+_~]|eyJ|Bearer|basic|AKIA|sk_|0x|4111){0,8}").unwrap()
        ) {
            let rules = &Redactor::default().rules;
            for plain_number in [false, true] {
                let full = crate::redact::scan::scan_every_position(&s, rules, plain_number);
                if s.len() < crate::redact::scan::MIN_SECRET_WITHOUT_MARKERS {
                    prop_assert_eq!(&full, &None, "{:?}", s);
                }
                prop_assert_eq!(crate::redact::scan::scan(&s, rules, plain_number), full);
            }
        }

        /// Skipping the positions where no rule can start finds exactly what trying every
        /// position finds, on strings built from secret-shaped fragments and separators.
        #[test]
        fn skipping_to_candidate_positions_changes_nothing(parts in proptest::collection::vec(fragment(), 0..16)) {
            let s = parts.concat();
            let rules = &Redactor::default().rules;
            for plain_number in [false, true] {
                let full = crate::redact::scan::scan_every_position(&s, rules, plain_number);
                prop_assert_eq!(crate::redact::scan::scan(&s, rules, plain_number), full, "{:?}", s);
            }
        }

        /// The single-token shortcut skips nothing a rule would find: alphanumeric strings of
        /// every length, hex with and without `0x`, base58, digits and key prefixes.
        #[test]
        fn alphanumeric_tokens_the_shortcut_skips_are_clean(
            s in proptest::string::string_regex(
                "(0x)?[a-fA-F0-9]{0,140}|[1-9A-HJ-NP-Za-km-z]{0,100}|[0-9]{0,24}|(AKIA|ASIA|AIza)[A-Z0-9a-z]{0,40}|[a-zA-Z0-9]{0,150}"
            ).unwrap()
        ) {
            let rules = &Redactor::default().rules;
            for plain_number in [false, true] {
                let full = crate::redact::scan::scan_every_position(&s, rules, plain_number);
                if !crate::redact::scan::alnum_token_may_be_secret(s.as_bytes()) {
                    prop_assert_eq!(&full, &None, "{:?}", s);
                }
                prop_assert_eq!(crate::redact::scan::scan(&s, rules, plain_number), full, "{:?}", s);
            }
        }

        #[test]
        fn idempotent_on_secret_shaped_strings(parts in proptest::collection::vec(fragment(), 0..16)) {
            let s = parts.concat();
            let (once, twice) = redact_twice(&s);
            prop_assert_eq!(once, twice);
        }
    }
}
