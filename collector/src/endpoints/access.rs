//! Who may call: the API key (on a blocking thread: it reads the store) and its rate limit. Every
//! authenticated route goes through [`authorize`], so both apply the same way everywhere.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::AppState;
use crate::store::{ApiKeyRecord, KeyScope};

/// The request's API key, if it is valid, of `scope`, not revoked and within its rate limit.
pub async fn authorize(app: &Arc<AppState>, headers: &HeaderMap, scope: KeyScope) -> Result<ApiKeyRecord, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let a = app.clone();
    let key = tokio::task::spawn_blocking(move || a.auth.check(authorization.as_deref(), scope))
        .await
        .map_err(|e| ApiError::internal(&e.to_string()))?
        .map_err(ApiError::from_auth)?;
    if let Err(wait) = app.rate_limits.check(&key.id, std::time::Instant::now()) {
        let secs = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("this API key is over its limit of requests per second; retry in {secs} s"),
        );
        e.retry_after = Some(secs);
        return Err(e);
    }
    Ok(key)
}
