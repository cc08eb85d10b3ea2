//! The latency summary stored per statistics row: a DDSketch (`sketches-ddsketch`) with a relative
//! accuracy of [`RELATIVE_ACCURACY`], over span durations in milliseconds, and the exact counts at
//! the SLA thresholds ([`super::ladder`]).
//!
//! Why DDSketch: two sketches of the same configuration merge exactly (bins add up), so a minute's
//! sketch can be merged into by later commits and a 30-day percentile is the merge of the minutes'
//! sketches, with the same error bound as one sketch over all the spans. The bytes are the crate's
//! Java-compatible encoding (stable, documented by DataDog's `sketches-java`), so a stored row does
//! not depend on this crate's in-memory layout.
//!
//! Stored form: `FORMAT_TAG`, a version byte, a byte saying whether the SLA counts follow, the
//! counts, then the sketch's bytes. Rows written before the counts existed hold the sketch's bytes
//! alone (their first byte is a flag of that encoding, never `FORMAT_TAG`); they decode with the
//! counts unknown, and stay so when merged into (their earlier spans were never counted).

use sketches_ddsketch::{Config, DDSketch};

use super::ladder::{LadderCounts, threshold_index};

/// First byte of the stored form. In the Java encoding a first byte is a flag, `subflag << 2 |
/// type`, and `0xFE` would be the index-mapping type with subflag 63, which does not exist (0–4).
const FORMAT_TAG: u8 = 0xFE;
/// Version of the stored form.
const FORMAT_VERSION: u8 = 1;

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

/// A mergeable latency sketch with exact counts at the SLA thresholds (`None`: unknown, for rows
/// stored before they were kept).
#[derive(Clone)]
pub struct LatencySketch {
    sketch: DDSketch,
    ladder: Option<LadderCounts>,
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self { sketch: DDSketch::new(config()), ladder: Some(LadderCounts::default()) }
    }
}

/// A share of spans at or under a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    /// 0..=1.
    pub value: f64,
    /// Whether it is exact: the threshold is one of the SLA thresholds and every merged row kept
    /// their counts, or it is under the fastest or at or over the slowest span. Otherwise it is
    /// within the sketch's bound (see [`LatencySketch::share_at_or_under`]).
    pub exact: bool,
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
        self.sketch.add(duration_ns as f64 / NS_PER_MS);
        if let Some(l) = &mut self.ladder {
            l.add_ns(duration_ns);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) -> Result<(), SketchError> {
        self.sketch.merge(&other.sketch).map_err(|e| SketchError(e.to_string()))?;
        match (&mut self.ladder, &other.ladder) {
            (Some(a), Some(b)) => a.merge(b),
            (a, _) => *a = None,
        }
        Ok(())
    }

    /// Durations added.
    pub fn count(&self) -> u64 {
        self.sketch.count() as u64
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_TAG, FORMAT_VERSION, u8::from(self.ladder.is_some())];
        if let Some(l) = &self.ladder {
            l.encode_into(&mut out);
        }
        out.extend_from_slice(&self.sketch.to_java_bytes());
        out
    }

    /// Reads a stored sketch. One of another configuration (another γ) decodes, but every merge
    /// with it fails: the check happens there, once per merge, not twice per row read.
    pub fn decode(bytes: &[u8]) -> Result<Self, SketchError> {
        let (ladder, rest) = match bytes {
            [FORMAT_TAG, FORMAT_VERSION, 0, rest @ ..] => (None, rest),
            [FORMAT_TAG, FORMAT_VERSION, 1, rest @ ..] => {
                let (l, rest) =
                    LadderCounts::decode_from(rest).ok_or_else(|| SketchError("malformed SLA counts".into()))?;
                (Some(l), rest)
            }
            [FORMAT_TAG, ..] => return Err(SketchError("unknown stored form".into())),
            java => (None, java),
        };
        let sketch = DDSketch::from_java_bytes(rest).map_err(|e| SketchError(format!("{e:?}")))?;
        if ladder.as_ref().is_some_and(|l| l.total() != sketch.count() as u64) {
            return Err(SketchError("SLA counts disagree with the sketch".into()));
        }
        Ok(Self { sketch, ladder })
    }

    /// The `q`-quantile (0..=1) in ms, `None` when empty. Exact for 0 (the minimum) and 1 (the
    /// maximum); within [`RELATIVE_ACCURACY`] of the value at rank `⌊q · (count − 1)⌋` otherwise.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// The share of durations at or under `threshold_ms`, `None` when empty.
    ///
    /// Exact at the SLA thresholds ([`super::ladder::SLA_THRESHOLDS_NS`]) when the counts are
    /// known, and when the threshold is under the smallest or at or over the largest duration
    /// (both are kept exactly). Otherwise the sketch, which does not keep exact values, answers:
    /// this counts the ranks whose estimated value is at or under the threshold (a binary search
    /// over ranks, each estimate within ± α of the value at that rank). Hence the bound the API
    /// documents: the answer lies between the exact share at `threshold / (1 + α)` and the exact
    /// share at `threshold / (1 − α)`; only spans within about ± 1 % of the threshold can be
    /// counted on the wrong side.
    pub fn share_at_or_under(&self, threshold_ms: f64) -> Option<Share> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let exact = |value| Some(Share { value, exact: true });
        let (min, max) = (self.sketch.min()?, self.sketch.max()?);
        if threshold_ms >= max {
            return exact(1.0);
        }
        if threshold_ms < min {
            return exact(0.0);
        }
        if let (Some(l), Some(i)) = (&self.ladder, threshold_index(threshold_ms)) {
            return exact(l.at_or_under(i) as f64 / n as f64);
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
        Some(Share { value: lo as f64 / n as f64, exact: false })
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
    fn shares_are_exact_at_the_sla_thresholds_and_within_the_bound_elsewhere() {
        let values = sample(5_000, 11);
        let mut s = LatencySketch::default();
        for part in values.chunks(333) {
            let mut p = LatencySketch::default();
            for v in part {
                p.add_ns(*v);
            }
            s.merge(&LatencySketch::decode(&p.encode()).unwrap()).unwrap();
        }
        let share = |t_ns: f64| values.iter().filter(|v| **v as f64 <= t_ns).count() as f64 / values.len() as f64;
        for t in [0.01, 0.3, 1.0, 7.5, 40.0, 250.0, 1000.0, 5e4, 1e9] {
            let got = s.share_at_or_under(t).unwrap();
            assert!(got.exact, "{t} is a threshold (or past the largest)");
            assert_eq!(got.value, share(t * 1e6), "threshold {t}");
        }
        for t in [0.06, 0.07, 0.33, 1.1, 7.7, 41.0, 333.0, 1234.0] {
            let got = s.share_at_or_under(t).unwrap();
            assert!(!got.exact, "{t}");
            let (lo, hi) = (share(t * 1e6 / (1.0 + RELATIVE_ACCURACY)), share(t * 1e6 / (1.0 - RELATIVE_ACCURACY)));
            assert!(lo <= got.value && got.value <= hi, "threshold {t}: {} not in [{lo}, {hi}]", got.value);
        }
        assert_eq!(s.share_at_or_under(1e9), Some(Share { value: 1.0, exact: true }));
        assert_eq!(s.share_at_or_under(0.0), Some(Share { value: 0.0, exact: true }));
        assert_eq!(LatencySketch::default().share_at_or_under(1.0), None);
    }

    #[test]
    fn rows_stored_before_the_sla_counts_merge_into_bounded_shares() {
        let mut old = DDSketch::new(config());
        old.add(90.0);
        let old = LatencySketch::decode(&old.to_java_bytes()).unwrap();
        let mut s = LatencySketch::default();
        s.add_ns(100_000_000);
        s.add_ns(200_000_000);
        assert!(s.share_at_or_under(100.0).unwrap().exact);
        s.merge(&old).unwrap();
        assert_eq!(s.count(), 3);
        let share = s.share_at_or_under(100.0).unwrap();
        // Within the bound: 90 ms is under it, 200 ms over it, 100 ms within 1 % of it.
        assert!(!share.exact && (1.0 / 3.0..=2.0 / 3.0).contains(&share.value), "{share:?}");
        // And they stay unknown once written back.
        assert!(!LatencySketch::decode(&s.encode()).unwrap().share_at_or_under(100.0).unwrap().exact);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(LatencySketch::decode(b"").is_err());
        assert!(LatencySketch::decode(&[0xff, 1, 2]).is_err());
        let good = LatencySketch::default().encode();
        let mut wrong_version = good.clone();
        wrong_version[1] = 9;
        assert!(LatencySketch::decode(&wrong_version).is_err());
        let mut s = LatencySketch::default();
        s.add_ns(5);
        let mut counts_disagree = s.encode();
        counts_disagree[5] = 2; // the one interval's count
        assert!(LatencySketch::decode(&counts_disagree).is_err());
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
