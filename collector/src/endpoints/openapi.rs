//! `GET /api/v1/openapi.json`: the whole HTTP API as an OpenAPI 3.1 document. The document is
//! written by hand (`openapi.json` beside this file, where the prose lives); a test checks that it
//! names exactly the routes the router serves ([`crate::API_ROUTES`]).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Serves the document.
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_document_names_exactly_the_routes_the_router_serves() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        let served: BTreeSet<(String, String)> =
            crate::API_ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        assert_eq!(documented, served, "openapi.json and API_ROUTES disagree");
    }

    #[test]
    fn every_operation_documents_its_answers_and_path_parameters() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert!(op["summary"].is_string(), "{method} {path}: summary");
                assert!(op["responses"]["200"].is_object(), "{method} {path}: 200");
                for param in path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
                    let declared = op["parameters"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" && p["name"] == param));
                    assert!(declared, "{method} {path}: path parameter {param}");
                }
            }
        }
    }
}
