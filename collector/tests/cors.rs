//! CORS on the SDK endpoints, against the real binary: off by default; with configured origins,
//! preflights from them are answered, others are refused, and answers carry the CORS headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{Collector, client, create_key, temp_dir};

const APP: &str = "http://app.test:8080";

fn preflight(base: &str, path: &str, origin: &str) -> reqwest::blocking::Response {
    client()
        .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .unwrap()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn with_origins(tag: &str, origins: &str) -> (Collector, String) {
    let dir = temp_dir(tag);
    let config = dir.join("collector.toml");
    std::fs::write(&config, format!("cors_allowed_origins = [{origins}]\n")).unwrap();
    let key = create_key(&dir, "web", "ingest");
    (Collector::start_with(&dir, &["--config", config.to_str().unwrap()]), key)
}

#[test]
fn preflights_from_configured_origins_are_answered() {
    let (c, _) = with_origins("cors-allow", &format!("\"{APP}\", \"https://other.test\""));
    for path in ["/v1/batches", "/v1/public-key"] {
        let r = preflight(&c.url, path, APP);
        assert_eq!(r.status().as_u16(), 204, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some(APP));
        let methods = header(&r, "access-control-allow-methods").unwrap();
        assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
        let allowed = header(&r, "access-control-allow-headers").unwrap();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
        assert!(header(&r, "access-control-allow-credentials").is_none());
        assert!(header(&r, "vary").unwrap().contains("Origin"));
    }
}

#[test]
fn other_origins_are_refused_and_get_no_cors_headers() {
    let (c, key) = with_origins("cors-refuse", &format!("\"{APP}\""));
    let r = preflight(&c.url, "/v1/batches", "http://evil.test");
    assert_eq!(r.status().as_u16(), 403);
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = client()
        .post(format!("{}/v1/batches", c.url))
        .header("origin", "http://evil.test")
        .bearer_auth(&key)
        .header("content-type", "application/vnd.tracex.batch.v1")
        .body(b"not a batch".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[test]
fn answers_to_allowed_origins_carry_the_cors_headers() {
    let (c, key) = with_origins("cors-answer", &format!("\"{APP}\""));
    // A rejected batch is still answered with the headers, so the page can read the error.
    let r = client()
        .post(format!("{}/v1/batches", c.url))
        .header("origin", APP)
        .bearer_auth(&key)
        .header("content-type", "application/vnd.tracex.batch.v1")
        .body(b"not a batch".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(header(&r, "access-control-expose-headers").as_deref(), Some("retry-after, tracex-receipt"));
    let r = client().get(format!("{}/v1/public-key", c.url)).header("origin", APP).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some(APP));
    assert!(r.text().unwrap().contains("BEGIN PUBLIC KEY"));
    // The query API is not for browsers: no CORS headers there.
    let r = client().get(format!("{}/healthz", c.url)).header("origin", APP).send().unwrap();
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[test]
fn a_wildcard_allows_any_origin() {
    let (c, _) = with_origins("cors-any", "\"*\"");
    let r = preflight(&c.url, "/v1/batches", "https://anywhere.test");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://anywhere.test"));
}

#[test]
fn cors_is_off_by_default() {
    let dir = temp_dir("cors-off");
    let c = Collector::start(&dir);
    let r = preflight(&c.url, "/v1/batches", APP);
    assert_ne!(r.status().as_u16(), 204);
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = client().get(format!("{}/v1/public-key", c.url)).header("origin", APP).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[test]
fn an_invalid_origin_setting_stops_the_collector_at_start() {
    let dir = temp_dir("cors-bad");
    let out = std::process::Command::new(common::BIN)
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--cors-origin", "app.example.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CORS origin"), "{}", String::from_utf8_lossy(&out.stderr));
}
