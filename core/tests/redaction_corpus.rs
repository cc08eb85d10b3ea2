//! The redaction corpus: realistic secrets that must be masked or removed, and look-alikes (addresses,
//! hashes, nonces, amounts, ids, prose) that must survive untouched. Public API only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use tracex_core::redact::{REDACTED, Redactor};
use tracex_core::{Event, KeyValue, Link, Resource, ResourceSpans, ScopeSpans, SpanData, Status, TraceRequest, Value};

const EVM_PRIVATE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const EVM_PRIVATE_KEY_BARE: &str = "8f016d7a2e919bf0bd05294c6de3ee66cbce7fbe2be4ba962943628e216bbdf0";
const EVM_SIGNATURE: &str = "0xf5b165224a58b791df6af1d8303e61cdc4bb86c3d1c427103c344c4189eb2f1e7bd5d47e446fcec2a3d811736110e5781bcccea696762e6116c6e9c92d99bf3518";
const EVM_ADDRESS: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const TX_HASH: &str = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060";
const NONCE: &str = "0xfd3feb3c9250b7974a9b528b69636321a461b55ef55b7beafd809a9a9e925b79";
const SOLANA_SIGNATURE: &str =
    "4Jgs8aGj66iQCt88mNPXyjoJpPaCpYwurgym6AtJ2dBf9HZBqwV8ioNXwUw9Sq4iCHjVFPCDthZ6FbPoeeWjXZwh";
const SOLANA_SECRET_87: &str =
    "nxF7K6UtyD1pfmf8FjaXZ8C5zEZ8samJ5cKPpcgUS6v4j3Yb8GTLD3edQX9xZt3GNpehYVK8AqdbbHkgzoGnbj8";
const SOLANA_ADDRESS: &str = "yr1haxJmGWhXXnyUUN6ZFYicUKrtU6cWbCjYAiQCTyE";
const USDC_SOLANA: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const MNEMONIC_12: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";
const MNEMONIC_24: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                           abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art";

#[derive(Debug)]
enum Expect {
    /// Unchanged.
    Keep,
    /// Exactly `[REDACTED]`.
    Masked,
    /// The attribute is gone.
    Removed,
    /// Exactly this string.
    Is(&'static str),
}
use Expect::*;

fn s(v: &'static str) -> Value {
    Value::from(v)
}

fn corpus() -> Vec<(&'static str, Value, Expect)> {
    vec![
        // --- sensitive keys: the whole value goes, whatever its type ---
        ("http.request.header.authorization", Value::from(vec!["Bearer abc"]), Masked),
        ("http.request.header.proxy-authorization", s("Basic Zm9vOmJhcg=="), Masked),
        ("http.request.header.cookie", s("session=abc; theme=dark"), Masked),
        ("http.response.header.set-cookie", s("sid=1; HttpOnly"), Masked),
        ("db.password", s("hunter2"), Masked),
        ("PASSWD", s("x"), Masked),
        ("oauth.client_secret", s("abc"), Masked),
        ("wallet.private_key", s(EVM_PRIVATE_KEY), Masked),
        ("signer.privateKey", s("anything at all"), Masked),
        ("private_key", Value::Int(42), Masked),
        ("http.request.header.x-api-key", s("k-123"), Masked),
        ("stripe.apiKey", s("rk"), Masked),
        ("oauth.access_token", s("ya29.a0Af"), Masked),
        ("refresh_token", s("1//0g"), Masked),
        ("auth_token", s("abc"), Masked),
        ("x402.token", s("opaque"), Masked),
        ("wallet.mnemonic", s(MNEMONIC_12), Masked),
        ("wallet.seed", s("whatever"), Masked),
        ("kms.passphrase", s("correct horse"), Masked),
        ("x402.signature", s(EVM_SIGNATURE), Masked),
        ("x402.signature", Value::Bytes(vec![0x1b; 65]), Masked),
        ("payment.sig", s("0xdead"), Masked),
        ("card_number", s("4111111111111111"), Masked),
        ("card.cvv", Value::Int(123), Masked),
        ("customer.ssn", s("078-05-1120"), Masked),
        ("aws.secret_access_key", s("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), Masked),
        // --- value rules under ordinary keys ---
        ("config.signer", s(EVM_PRIVATE_KEY), Masked),
        ("debug.dump", s(EVM_PRIVATE_KEY_BARE), Masked),
        (
            "message",
            s("loaded key 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318 from env"),
            Is("loaded key [REDACTED] from env"),
        ),
        ("x402.note", s(EVM_SIGNATURE), Masked),
        (
            "debug",
            s(
                "f5b165224a58b791df6af1d8303e61cdc4bb86c3d1c427103c344c4189eb2f1e7bd5d47e446fcec2a3d811736110e5781bcccea696762e6116c6e9c92d99bf35",
            ),
            Masked,
        ),
        ("solana.debug", s(SOLANA_SIGNATURE), Masked),
        (
            "message",
            s("keypair nxF7K6UtyD1pfmf8FjaXZ8C5zEZ8samJ5cKPpcgUS6v4j3Yb8GTLD3edQX9xZt3GNpehYVK8AqdbbHkgzoGnbj8 loaded"),
            Is("keypair [REDACTED] loaded"),
        ),
        ("wallet.backup", s(SOLANA_SECRET_87), Masked),
        ("wallet.backup", s(MNEMONIC_12), Masked),
        ("wallet.backup", s(MNEMONIC_24), Masked),
        (
            "message",
            s("restored from: legal winner thank year wave sausage worth useful legal winner thank yellow (ok)"),
            Is("restored from: [REDACTED] (ok)"),
        ),
        (
            "message",
            s(
                "auth failed for header Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U (retry)",
            ),
            Is("auth failed for header Bearer [REDACTED] (retry)"),
        ),
        ("rpc.request", s("Basic dXNlcjpwYXNzd29yZA=="), Is("Basic [REDACTED]")),
        ("session", s(JWT), Masked),
        ("message", s("stripe rejected sk_live_51HxYz2eZvKYlo2C0aBcDeFgH"), Is("stripe rejected [REDACTED]")),
        ("billing.key_hint", s("sk_test_4eC39HqLyjWDarjtT1zdp7dc"), Masked),
        ("aws.key_id", s("AKIAIOSFODNN7EXAMPLE"), Masked),
        ("ci.env", s("GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789"), Is("GITHUB_TOKEN=[REDACTED]")),
        ("note", s("ghp_abcdefghijklmnopqrstuvwxyz0123456789"), Masked),
        ("note", s("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"), Masked),
        ("alert.hook", s("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"), Masked),
        ("maps.client", s("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"), Masked),
        ("llm.client", s("sk-proj-4fK2pQx9LmN8vR7tY6uW5eD3cB1aZ0hG"), Masked),
        ("payment.method", s("4111111111111111"), Is("[REDACTED:card:1111]")),
        ("payment.method", s("4111 1111 1111 1111"), Is("[REDACTED:card:1111]")),
        ("payment.method", s("5555-5555-5555-4444"), Is("[REDACTED:card:4444]")),
        ("payment.method", s("378282246310005"), Is("[REDACTED:card:0005]")),
        (
            "message",
            s("paid with card 4242424242424242 exp 12/30"),
            Is("paid with card [REDACTED:card:4242] exp 12/30"),
        ),
        (
            "tls.key",
            s("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOmA\n-----END PRIVATE KEY-----\n"),
            Is("[REDACTED]\n"),
        ),
        (
            "db.url",
            s("postgres://facilitator:s3cr3t@db.internal:5432/x402"),
            Is("postgres://facilitator:[REDACTED]@db.internal:5432/x402"),
        ),
        (
            "url.full",
            s("https://api.example.com/quote?chain=base&api_key=abc123def"),
            Is("https://api.example.com/quote?chain=base&api_key=[REDACTED]"),
        ),
        ("message", s(r#"{"asset":"USDC","password":"hunter2"}"#), Is(r#"{"asset":"USDC","password":"[REDACTED]"}"#)),
        // --- look-alikes that must survive ---
        ("x402.payer", s(EVM_ADDRESS), Keep),
        ("x402.pay_to", s("0x209693bc6afc0c5328ba36faf03c514ef312287c"), Keep),
        ("x402.asset", s(USDC_BASE), Keep),
        ("token_address", s(USDC_BASE), Keep),
        ("token.symbol", s("USDC"), Keep),
        ("token_id", s("42"), Keep),
        ("x402.tx_hash", s(TX_HASH), Keep),
        ("transaction_hash", s(&TX_HASH[2..]), Keep),
        ("block_hash", s(TX_HASH), Keep),
        ("evm.txHash", s(TX_HASH), Keep),
        ("x402.nonce", s(NONCE), Keep),
        ("x402.tx_hash", s(SOLANA_SIGNATURE), Keep),
        ("solana.recent_blockhash", s(SOLANA_ADDRESS), Keep),
        ("x402.payer", s(SOLANA_ADDRESS), Keep),
        ("x402.asset", s(USDC_SOLANA), Keep),
        ("x402.amount", s("1000000"), Keep),
        ("x402.max_amount_required", s("2500000000000000"), Keep),
        ("erc20.value", s("4111111111111111"), Keep),
        ("message", s("4111111111111112"), Keep),
        ("order.reference", s("1712345678901234567"), Keep),
        ("request.id", s("550e8400-e29b-41d4-a716-446655440000"), Keep),
        ("trace_id", s("4bf92f3577b34da6a3ce929d0e0e4736"), Keep),
        ("message", s("parent 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7"), Keep),
        ("x402.valid_before", s("2025-06-01T12:00:00.000Z"), Keep),
        ("message", s("Settlement for invoice 42 failed, retrying with a fresh nonce in five seconds."), Keep),
        ("message", s("the bearer token is invalid"), Keep),
        ("message", s("basic auth is disabled for this facilitator"), Keep),
        ("message", s("wallet 0x209693Bc6afc0C5328bA36FaF03C514EF312287C paid 1.50 USDC on eip155:8453"), Keep),
        ("gen_ai.usage.input_tokens", Value::Int(1234), Keep),
        ("http.request.body.size", Value::Int(512), Keep),
        ("rpc.url", s("https://mainnet.base.org"), Keep),
        ("net.peer.name", s("sk-cluster-1"), Keep),
        ("x402.network", s("eip155:8453"), Keep),
        ("x402.scheme", s("exact"), Keep),
        ("user.phone", s("+1 415-555-0132"), Keep),
        ("x402.tx_hashes", Value::Array(vec![s(TX_HASH), s(TX_HASH)]), Keep),
        ("x402.settled", Value::Bool(true), Keep),
        ("x402.fee_ratio", Value::Double(0.0125), Keep),
        // --- raw payloads are removed ---
        ("x402.payload", s(r#"{"signature":"0xabc"}"#), Removed),
        ("x402.payment_payload", Value::Map(vec![KeyValue::new("scheme", "exact")]), Removed),
        ("http.request.body", s("{}"), Removed),
        ("http.response.body", s("{}"), Removed),
        ("graphql.document.body", s("query { me }"), Removed),
        ("http.request.header.x-payment", Value::from(vec!["eyJ4NDAyVmVyc2lvbiI6MX0="]), Removed),
        ("http.request.header.x_payment", s("eyJ4NDAyVmVyc2lvbiI6MX0="), Removed),
        ("http.response.header.x-payment-response", s("eyJzdWNjZXNzIjp0cnVlfQ=="), Removed),
        ("http.request.header.payment-signature", s("eyJ4NDAyVmVyc2lvbiI6Mn0="), Removed),
    ]
}

fn span_with(attributes: Vec<KeyValue>) -> SpanData {
    SpanData { name: "settle".into(), attributes, ..Default::default() }
}

#[test]
fn corpus_one_attribute_at_a_time() {
    let redactor = Redactor::default();
    let rows = corpus();
    assert!(rows.len() >= 60, "corpus has {} rows", rows.len());
    let mut failures = Vec::new();
    for (key, value, expect) in rows {
        let mut span = span_with(vec![KeyValue::new(key, value.clone())]);
        let count = redactor.redact_span(&mut span);
        let got = span.attribute(key).cloned();
        let (ok, want_count) = match &expect {
            Keep => (got.as_ref() == Some(&value), 0),
            Masked => (got == Some(Value::from(REDACTED)), 1),
            Removed => (got.is_none(), 1),
            Is(want) => (got == Some(Value::from(*want)), 1),
        };
        if !ok || count != want_count {
            failures.push(format!(
                "{key} = {value:?}: expected {expect:?} (count {want_count}), got {got:?} (count {count})"
            ));
        }
    }
    assert!(failures.is_empty(), "{} corpus failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn corpus_all_at_once_counts_and_is_idempotent() {
    let redactor = Redactor::default();
    let rows = corpus();
    let changed = rows.iter().filter(|(_, _, e)| !matches!(e, Keep)).count();
    let mut span = span_with(rows.into_iter().map(|(k, v, _)| KeyValue::new(k, v)).collect());
    assert_eq!(redactor.redact_span(&mut span) as usize, changed);
    let once = span.clone();
    assert_eq!(redactor.redact_span(&mut span), 0);
    assert_eq!(span, once);
}

#[test]
fn nested_arrays_and_maps() {
    let mut span = span_with(vec![
        KeyValue::new(
            "x402.requirements",
            Value::Map(vec![
                KeyValue::new("asset", USDC_BASE),
                KeyValue::new("maxAmountRequired", "10000"),
                KeyValue::new("api_key", "abc"),
                KeyValue::new(
                    "extra",
                    Value::Map(vec![
                        KeyValue::new("note", EVM_PRIVATE_KEY),
                        KeyValue::new("nonce", NONCE),
                        KeyValue::new("body", "raw"),
                    ]),
                ),
            ]),
        ),
        KeyValue::new(
            "batch.notes",
            Value::Array(vec![s("fine"), s(JWT), Value::Array(vec![s("sk_live_0123456789abcdef")]), Value::Int(4)]),
        ),
        KeyValue::new("secrets", Value::Array(vec![s("a"), s("b")])),
        KeyValue::new("wallet.words", Value::from(MNEMONIC_12.split(' ').collect::<Vec<_>>())),
    ]);
    assert_eq!(Redactor::default().redact_span(&mut span), 7);
    let Some(Value::Map(req)) = span.attribute("x402.requirements") else { panic!("map gone") };
    assert_eq!(req[0].value, s(USDC_BASE));
    assert_eq!(req[1].value, s("10000"));
    assert_eq!(req[2].value, s(REDACTED));
    let Value::Map(extra) = &req[3].value else { panic!("inner map gone") };
    assert_eq!(extra.len(), 2, "the nested body is removed");
    assert_eq!(extra[0].value, s(REDACTED));
    assert_eq!(extra[1].value, s(NONCE));
    assert_eq!(
        span.attribute("batch.notes"),
        Some(&Value::Array(vec![s("fine"), s(REDACTED), Value::Array(vec![s(REDACTED)]), Value::Int(4)]))
    );
    assert_eq!(span.attribute("secrets"), Some(&s(REDACTED)));
    assert_eq!(span.attribute("wallet.words"), Some(&s(REDACTED)));
}

#[test]
fn events_links_names_and_status() {
    let mut span = SpanData {
        name: "settle sk_live_0123456789abcdef".into(),
        status: Status::error(
            "rpc error: invalid signature 0xf5b165224a58b791df6af1d8303e61cdc4bb86c3d1c427103c344c4189eb2f1e7bd5d47e446fcec2a3d811736110e5781bcccea696762e6116c6e9c92d99bf3518 for payer 0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
        ),
        events: vec![
            Event {
                name: "exception".into(),
                attributes: vec![
                    KeyValue::new("exception.type", "AuthError"),
                    KeyValue::new("exception.message", "401 for Authorization: Bearer abcdefgh12345678"),
                    KeyValue::new("exception.stacktrace", "at settle (settle.rs:42)"),
                ],
                ..Default::default()
            },
            Event { name: "retry".into(), attributes: vec![KeyValue::new("x402.payload", "{}")], ..Default::default() },
        ],
        links: vec![Link {
            attributes: vec![KeyValue::new("session_token", "abc"), KeyValue::new("x402.tx_hash", TX_HASH)],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(Redactor::default().redact_span(&mut span), 5);
    assert_eq!(span.name, "settle [REDACTED]");
    assert_eq!(
        span.status.message,
        "rpc error: invalid signature [REDACTED] for payer 0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    );
    assert_eq!(span.events[0].attributes[1].value, s("401 for Authorization: Bearer [REDACTED]"));
    assert_eq!(span.events[0].attributes[2].value, s("at settle (settle.rs:42)"));
    assert!(span.events[1].attributes.is_empty());
    assert_eq!(span.links[0].attributes[0].value, s(REDACTED));
    assert_eq!(span.links[0].attributes[1].value, s(TX_HASH));
}

#[test]
fn payloads_are_kept_only_when_captured_and_still_scanned() {
    let payload = format!(
        r#"{{"signature":"{EVM_SIGNATURE}","authorization":{{"from":"{EVM_ADDRESS}","value":"10000","nonce":"{NONCE}"}}}}"#
    );
    let attrs =
        || vec![KeyValue::new("x402.payload", payload.clone()), KeyValue::new("http.request.body.size", 120i64)];

    let mut span = span_with(attrs());
    assert_eq!(Redactor::default().redact_span(&mut span), 1);
    assert_eq!(span.attributes.len(), 1);

    let capture = Redactor::builder().capture_payloads(true).build();
    let mut span = span_with(attrs());
    assert_eq!(capture.redact_span(&mut span), 1);
    let kept = format!(
        r#"{{"signature":"[REDACTED]","authorization":{{"from":"{EVM_ADDRESS}","value":"10000","nonce":"{NONCE}"}}}}"#
    );
    assert_eq!(span.attribute("x402.payload"), Some(&Value::from(kept)));
}

#[test]
fn builder_rules() {
    let r = Redactor::builder()
        .mask_key("customer_email")
        .mask_value("stripe account", |v| v.starts_with("acct_"))
        .allow_key("x402.payment_id")
        .allow_key("solana.tx_signature")
        .allow_key("merchant.customer_email")
        .build();
    let mut span = span_with(vec![
        KeyValue::new("app.customer-email", "a@b.c"),
        KeyValue::new("merchant.customer_email", "d@e.f"),
        KeyValue::new("stripe.account", "acct_1234"),
        KeyValue::new("stripe.account_note", "not acct_1234"),
        KeyValue::new("x402.payment_id", NONCE),
        KeyValue::new("x402.other_id", NONCE),
        KeyValue::new("solana.tx_signature", SOLANA_SIGNATURE),
        KeyValue::new("note", "customer_email=a@b.c"),
    ]);
    assert_eq!(r.redact_span(&mut span), 5);
    let v = |k: &str| span.attribute(k).cloned();
    assert_eq!(v("app.customer-email"), Some(s(REDACTED)));
    assert_eq!(v("merchant.customer_email"), Some(s(REDACTED)), "mask_key wins over allow_key");
    assert_eq!(v("stripe.account"), Some(s(REDACTED)));
    assert_eq!(v("stripe.account_note"), Some(s("not acct_1234")));
    assert_eq!(v("x402.payment_id"), Some(s(NONCE)));
    assert_eq!(v("x402.other_id"), Some(s(REDACTED)), "an unknown key holding 32-byte hex is treated as a private key");
    assert_eq!(v("solana.tx_signature"), Some(s(SOLANA_SIGNATURE)));
    assert_eq!(v("note"), Some(s("customer_email=[REDACTED]")));
}

#[test]
fn without_default_rules_only_custom_rules_and_payload_removal_apply() {
    let r = Redactor::builder().with_default_rules(false).mask_key("pin").mask_value("x", |v| v == "secret!").build();
    let mut span = span_with(vec![
        KeyValue::new("db.password", "hunter2"),
        KeyValue::new("note", EVM_PRIVATE_KEY),
        KeyValue::new("card.pin", 1234i64),
        KeyValue::new("msg", "secret!"),
        KeyValue::new("x402.payload", "{}"),
    ]);
    assert_eq!(r.redact_span(&mut span), 3);
    assert_eq!(span.attribute("db.password"), Some(&s("hunter2")));
    assert_eq!(span.attribute("note"), Some(&s(EVM_PRIVATE_KEY)));
    assert_eq!(span.attribute("card.pin"), Some(&s(REDACTED)));
    assert_eq!(span.attribute("msg"), Some(&s(REDACTED)));
    assert_eq!(span.attribute("x402.payload"), None);
}

#[test]
fn disabled_changes_nothing() {
    let r = Redactor::disabled();
    let mut span = span_with(corpus().into_iter().map(|(k, v, _)| KeyValue::new(k, v)).collect());
    span.status = Status::error(format!("key {EVM_PRIVATE_KEY}"));
    let before = span.clone();
    assert_eq!(r.redact_span(&mut span), 0);
    assert_eq!(span, before);
    let mut resource = Resource::new("facilitator").with("deployment.api_key", "abc");
    assert_eq!(r.redact_resource(&mut resource), 0);
    assert_eq!(resource.get("deployment.api_key"), Some(&s("abc")));
}

#[test]
fn resources_and_whole_requests() {
    let r = Redactor::default();
    let mut resource = Resource::new("facilitator").with("deployment.api_key", "abc").with("service.version", "1.2.3");
    assert_eq!(r.redact_resource(&mut resource), 1);
    assert_eq!(resource.get("deployment.api_key"), Some(&s(REDACTED)));
    assert_eq!(resource.service_name(), Some("facilitator"));

    let mut request = TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource::new("settler").with("rpc.password", "p"),
            scope_spans: vec![ScopeSpans {
                scope: tracex_core::InstrumentationScope {
                    name: "x402".into(),
                    attributes: vec![KeyValue::new("scope.token", "t")],
                    ..Default::default()
                },
                spans: vec![
                    span_with(vec![KeyValue::new("x402.payload", "{}")]),
                    span_with(vec![KeyValue::new("password", "p")]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(r.redact_request(&mut request), 4);
    assert_eq!(r.redact_request(&mut request), 0);
}

#[test]
fn redactor_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + Default + 'static>() {}
    assert_traits::<Redactor>();
    let r = Redactor::builder().mask_value("named rule", |_| false).build();
    assert!(format!("{r:?}").contains("named rule"));
}

/// Adversarial inputs finish quickly: the scanners do a bounded amount of work per byte.
#[test]
fn pathological_inputs_scan_in_linear_time() {
    let r = Redactor::default();
    let n = 200_000;
    let inputs = [
        "eyJa-".repeat(n / 5),
        "eyJa.eyJb".repeat(n / 9),
        "sk-a".repeat(n / 4),
        "password=\"".repeat(n / 10),
        "abandon ".repeat(n / 8),
        "ab ".repeat(n / 3),
        "4111 ".repeat(n / 5),
        "-----BEGIN ".repeat(n / 11),
        "a://".repeat(n / 4),
        "Bearer ".repeat(n / 7),
        "0".repeat(n),
        "a".repeat(n),
        "x_".repeat(n / 2),
        "a:".repeat(n / 2),
    ];
    let start = Instant::now();
    for input in inputs {
        let mut span = span_with(vec![KeyValue::new("message", input)]);
        r.redact_span(&mut span);
    }
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
}
