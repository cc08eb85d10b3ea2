//! The latency sketch stored per statistics row: a DDSketch (`sketches-ddsketch`) with a relative
//! accuracy of [`RELATIVE_ACCURACY`], over span durations in milliseconds.
//!
//! Why DDSketch: two sketches of the same configuration merge exactly (bins add up), so a minute's
//! sketch can be merged into by later commits and a 30-day percentile is the merge of the minutes'
//! sketches, with the same error bound as one sketch over all the spans. The bytes are the crate's
//! Java-compatible encoding (stable, documented by DataDog's `sketches-java`), so a stored row does
//! not depend on this crate's in-memory layout.

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile the statistics API answers: the value returned for a
/// quantile is within ± 1 % of the duration of the span at that rank.
pub const RELATIVE_ACCURACY: f64 = 0.01;

const NS_PER_MS: f64 = 1e6;

/// The crate's default configuration: α = 1 % ([`RELATIVE_ACCURACY`]), at most 2048 bins (with
/// γ = 1.0202 they span a ratio of e^41 between the smallest and the largest duration before the
/// lowest bins collapse: femtoseconds to centuries), values under 1e-9 ms counted as zero. It must
/// be the default: the stored encoding carries only γ, and decoding rebuilds the rest from the
/// defaults, so any other configuration would not merge with what it reads back.
fn config() -> Config {
    let c = Config::defaults();
    debug_assert!((c.gamma - (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)).abs() < 1e-12);
    c
}

/// A mergeable latency sketch.
#[derive(Clone)]
pub struct LatencySketch(DDSketch);

impl Default for LatencySketch {
    fn default() -> Self {
        Self(DDSketch::new(config()))
    }
}

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencySketch").field("count", &self.count()).finish_non_exhaustive()
    }
}

/// A stored sketch that could not be decoded or merged.
#[derive(Debug, thiserror::Error)]
#[error("latency sketch: {0}")]
pub struct SketchError(String);

impl LatencySketch {
    /// Adds one duration (ns).
    pub fn add_ns(&mut self, duration_ns: u64) {
        self.0.add(duration_ns as f64 / NS_PER_MS);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) -> Result<(), SketchError> {
        self.0.merge(&other.0).map_err(|e| SketchError(e.to_string()))
    }

    /// Durations added.
    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        self.0.to_java_bytes()
    }

    /// Reads a stored sketch. One of another configuration (another γ) decodes, but every merge
    /// with it fails: the check happens there, once per merge, not twice per row read.
    pub fn decode(bytes: &[u8]) -> Result<Self, SketchError> {
        DDSketch::from_java_bytes(bytes).map(Self).map_err(|e| SketchError(format!("{e:?}")))
    }

    /// The `q`-quantile (0..=1) in ms, `None` when empty. Exact for 0 (the minimum) and 1 (the
    /// maximum); within [`RELATIVE_ACCURACY`] of the value at rank `⌊q · (count − 1)⌋` otherwise.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.0.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// The share (0..=1) of durations at or under `threshold_ms`, `None` when empty.
    ///
    /// The sketch does not keep exact values, so this counts the ranks whose estimated value is at
    /// or under the threshold (a binary search over ranks, each estimate within ± α of the value at
    /// that rank). Hence the bound the API documents: the answer lies between the exact share at
    /// `threshold / (1 + α)` and the exact share at `threshold / (1 − α)`; only spans within about
    /// ± 1 % of the threshold can be counted on the wrong side. Exact when the threshold is under
    /// the smallest or at or over the largest duration (both are kept exactly). Exact shares at an
    /// arbitrary threshold chosen at query time would need every duration; that is what the raw
    /// spans are for.
    pub fn share_at_or_under(&self, threshold_ms: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let (min, max) = (self.0.min()?, self.0.max()?);
        if threshold_ms >= max {
            return Some(1.0);
        }
        if threshold_ms < min {
            return Some(0.0);
        }
        // Ranks 0..n; find the first rank whose estimate is over the threshold. Rank r is read as
        // quantile (r + 0.5) / (n − 1), which the crate floors back to rank r exactly.
        let value_at = |r: u64| -> f64 {
            if r + 1 >= n {
                return max;
            }
            let q = (r as f64 + 0.5) / (n - 1) as f64;
            self.quantile_ms(q).unwrap_or(max)
        };
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if value_at(mid) <= threshold_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(lo as f64 / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    fn sample(n: u64, seed: u64) -> Vec<u64> {
        // A long-tailed spread from 50 µs to minutes (deterministic).
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let e = (x % 1_000_000) as f64 / 1_000_000.0;
                (50_000.0 * (e * 14.0).exp()) as u64
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy_after_merging_encoded_parts() {
        let values = sample(20_000, 7);
        let mut merged = LatencySketch::default();
        for part in values.chunks(777) {
            let mut s = LatencySketch::default();
            for v in part {
                s.add_ns(*v);
            }
            let stored = LatencySketch::decode(&s.encode()).unwrap();
            merged.merge(&stored).unwrap();
        }
        assert_eq!(merged.count(), 20_000);
        let mut sorted: Vec<f64> = values.iter().map(|v| *v as f64 / 1e6).collect();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (merged.quantile_ms(q).unwrap(), exact_quantile(&sorted, q));
            assert!((got - want).abs() <= want * RELATIVE_ACCURACY, "q{q}: {got} vs {want}");
        }
        assert_eq!(merged.quantile_ms(1.0), Some(sorted[sorted.len() - 1]));
    }

    #[test]
    fn shares_stay_within_the_documented_bound() {
        let values = sample(5_000, 11);
        let mut s = LatencySketch::default();
        for v in &values {
            s.add_ns(*v);
        }
        let ms: Vec<f64> = values.iter().map(|v| *v as f64 / 1e6).collect();
        let share = |t: f64| ms.iter().filter(|v| **v <= t).count() as f64 / ms.len() as f64;
        for t in [0.01, 0.06, 0.3, 1.0, 7.5, 40.0, 250.0, 1000.0, 5e4, 1e9] {
            let got = s.share_at_or_under(t).unwrap();
            let (lo, hi) = (share(t / (1.0 + RELATIVE_ACCURACY)), share(t / (1.0 - RELATIVE_ACCURACY)));
            assert!(lo <= got && got <= hi, "threshold {t}: {got} not in [{lo}, {hi}]");
        }
        assert_eq!(s.share_at_or_under(1e9), Some(1.0));
        assert_eq!(s.share_at_or_under(0.0), Some(0.0));
        assert_eq!(LatencySketch::default().share_at_or_under(1.0), None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(LatencySketch::decode(b"").is_err());
        assert!(LatencySketch::decode(&[0xff, 1, 2]).is_err());
    }

    #[test]
    fn a_sketch_of_another_accuracy_never_merges() {
        let mut coarse = DDSketch::new(Config::new(0.02, 2048, 1e-9));
        coarse.add(5.0);
        let theirs = LatencySketch::decode(&coarse.to_java_bytes()).unwrap();
        let mut ours = LatencySketch::default();
        ours.add_ns(5_000_000);
        assert!(ours.merge(&theirs).is_err());
        assert!(ours.merge(&LatencySketch::decode(&ours.encode()).unwrap()).is_ok());
    }
}
