//! The web dashboard at `/`: static files embedded in the binary at build time (`build.rs`, feature
//! `dashboard`), served with their precompressed brotli or gzip twin when the browser accepts one.
//! Bundles have content-hashed names under `/assets/`, so they are cached for good; `index.html`
//! names the current bundles and is revalidated on every load. Without an embedded build, `/`
//! answers a short page saying how to build it. The read key never reaches these routes: the page
//! keeps it in the browser and sends it only as a bearer header to `/api/v1/*`.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub struct Asset {
    /// URL path, e.g. `/index.html`, `/assets/app-3f2a9c1e.js`.
    pub path: &'static str,
    /// The file as built.
    pub raw: &'static [u8],
    /// Its gzip twin, if the build made one.
    pub gzip: Option<&'static [u8]>,
    /// Its brotli twin, if the build made one.
    pub brotli: Option<&'static [u8]>,
}

/// Every embedded file (empty without the feature or without a build).
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// Restrictive headers for the pages: the dashboard loads nothing from elsewhere, is never framed,
/// and sends no referrer (the sign-in link carries the key in its fragment).
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>tracex</title>\
<meta name=viewport content=\"width=device-width\">\
<body style=\"font:16px system-ui;max-width:40em;margin:3em auto;padding:0 1em\">\
<h1>tracex collector</h1><p>This collector was built without its dashboard. Build it with</p>\
<pre>scripts/build-dashboard.sh\ncargo build --release -p tracex-collector --features dashboard</pre>\
<p>or run <code>scripts/run.sh</code>, which does both. The API is at <code>/api/v1/</code>.</p>";

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `accept` (an `Accept-Encoding` value) lists `coding` with a non-zero quality.
fn accepts(accept: &str, coding: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case(coding))
            && !parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0)))
    })
}

fn serve(asset: &Asset, headers: &HeaderMap, immutable: bool) -> Response {
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (body, encoding) = match (asset.brotli, asset.gzip) {
        (Some(br), _) if accepts(accept, "br") => (br, Some("br")),
        (_, Some(gz)) if accepts(accept, "gzip") => (gz, Some("gzip")),
        _ => (asset.raw, None),
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(asset.path)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    resp
}

fn page_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// `GET /`: the dashboard's page, or the placeholder.
pub async fn index(headers: HeaderMap) -> Response {
    let resp = match find("/index.html") {
        Some(asset) => serve(asset, &headers, false),
        None => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PLACEHOLDER)
                .into_response()
        }
    };
    page_headers(resp)
}

/// `GET /assets/{*path}`: a bundle, stylesheet or image of the dashboard.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&format!("/assets/{path}")) {
        Some(asset) => serve(asset, &headers, true),
        None => {
            (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-cache")], "no such dashboard asset\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_honours_zero_quality() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("gzip;q=0.5", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("identity", "gzip"));
        assert!(!accepts("", "gzip"));
    }

    #[test]
    fn hashed_assets_are_immutable_and_compressed_when_accepted() {
        let asset = Asset { path: "/assets/app-0123.js", raw: b"raw", gzip: Some(b"gz"), brotli: None };
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
        let resp = serve(&asset, &headers, true);
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        let plain = serve(&asset, &HeaderMap::new(), false);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
    }

    #[tokio::test]
    async fn index_is_never_cached_and_always_answers() {
        // With or without an embedded build, `/` answers a page (the dashboard or the placeholder).
        let resp = index(HeaderMap::new()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(resp.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    }
}
