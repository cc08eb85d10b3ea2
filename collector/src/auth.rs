//! API keys: `trx_<scope>_<id>_<secret>`. The secret (32 random bytes, hex) is shown once and stored
//! only as its SHA-256; a request's key is looked up by its public id and its secret's hash compared in
//! constant time. The lookup runs on every request (a primary-key read, microseconds next to opening
//! a batch), so a key revoked with `apikey revoke`, from another process, fails on the next request.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ApiKeyRecord, KeyScope, Store, StoreError};

/// Why a request is not authorised.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header, or not a tracex key.
    Missing,
    /// Unknown id or wrong secret.
    Invalid,
    /// A valid key that has been revoked.
    Revoked,
    /// A valid key of the wrong scope (e.g. a read key sending batches).
    WrongScope(KeyScope),
    /// The key store failed.
    Store(String),
}

/// A freshly created key: the full string is shown to the user once.
#[derive(Debug)]
pub struct NewApiKey {
    /// `trx_<scope>_<id>_<secret>`.
    pub key: String,
    /// What is stored.
    pub record: ApiKeyRecord,
}

/// Creates a key for `project` (not stored yet).
pub fn generate(project: &str, scope: KeyScope, now_unix_nano: u64) -> Result<NewApiKey, String> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| "no randomness".to_owned())?;
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| "no randomness".to_owned())?;
    let id = hex::encode(id);
    let secret_hex = hex::encode(secret);
    let key = format!("trx_{}_{id}_{secret_hex}", scope.as_str());
    let record = ApiKeyRecord {
        id,
        project: project.to_owned(),
        scope,
        secret_sha256: Sha256::digest(secret_hex.as_bytes()).into(),
        created_at_unix_nano: now_unix_nano,
        revoked_at_unix_nano: None,
    };
    Ok(NewApiKey { key, record })
}

/// Splits `trx_<scope>_<id>_<secret>`.
fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("trx_")?;
    let rest = rest.strip_prefix("ingest_").or_else(|| rest.strip_prefix("read_"))?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 64).then_some((id, secret))
}

/// The token of an `Authorization: Bearer <token>` value. The scheme name is case-insensitive
/// (RFC 9110 §11.1: `BEARER` and `bearer` are `Bearer`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The id of a key given as its id (12 hex digits) or as the whole key string.
pub fn key_id(key_or_id: &str) -> Option<&str> {
    let s = key_or_id.trim();
    let id = if s.starts_with("trx_") { parse(s)?.0 } else { s };
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Checks bearer tokens against the store.
pub struct Authenticator {
    store: Arc<dyn Store>,
}

impl Authenticator {
    /// Checks keys stored in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Authenticates an `Authorization` header value for `scope`. May query the store (blocking).
    pub fn check(&self, authorization: Option<&str>, scope: KeyScope) -> Result<ApiKeyRecord, AuthError> {
        let token = authorization.and_then(bearer_token).ok_or(AuthError::Missing)?;
        let (id, secret) = parse(token).ok_or(AuthError::Invalid)?;
        let record = self
            .store
            .api_key(id)
            .map_err(|e: StoreError| AuthError::Store(e.to_string()))?
            .ok_or(AuthError::Invalid)?;
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if !bool::from(presented.ct_eq(&record.secret_sha256)) {
            return Err(AuthError::Invalid);
        }
        // Only once the secret matched: an unknown caller learns nothing about the key's state.
        if record.revoked_at_unix_nano.is_some() {
            return Err(AuthError::Revoked);
        }
        if record.scope != scope {
            return Err(AuthError::WrongScope(record.scope));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_hash() {
        let k = generate("acme", KeyScope::Ingest, 1).unwrap();
        assert!(k.key.starts_with("trx_ingest_"));
        let (id, secret) = parse(&k.key).unwrap();
        assert_eq!(id, k.record.id);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(secret.as_bytes())), k.record.secret_sha256);
        assert!(!k.key.contains(&hex::encode(k.record.secret_sha256)), "the stored hash is not the key");
        assert!(parse("trx_ingest_short_x").is_none());
        assert!(parse("Bearer nope").is_none());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer tok", "bearer tok", "BEARER tok", "BeArEr   tok ", " Bearer tok"] {
            assert_eq!(bearer_token(v), Some("tok"), "{v:?}");
        }
        for v in ["Basic tok", "Bearer", "Bearer   ", "Bearertok", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
