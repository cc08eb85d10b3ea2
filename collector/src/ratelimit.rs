//! Per-API-key request rate limits: a token bucket per key id, refilled at `rate` requests a
//! second up to `burst`. A request over the limit gets 429 with `Retry-After` (the seconds until a
//! token is back), before its body is read; the SDKs retry 429 after that delay. Buckets exist only
//! for keys that authenticated, so their number is bounded by the keys in the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One key's bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by API key id.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` requests a second per key, bursts of up to `burst`; a rate of 0 disables limiting.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key_id` at `now`, or says how long until one is back.
    pub fn check(&self, key_id: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(key_id.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_at_the_rate_per_key() {
        let limiter = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check("b", t0).is_ok(), "keys are limited separately");
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_ok(), "one token back after 1/rate");
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_err());
        // Idle time refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check("a", later).is_ok());
        }
        assert!(limiter.check("a", later).is_err());
        assert!(RateLimiter::new(0.0, 0.0).check("a", t0).is_ok(), "0 disables");
    }
}
