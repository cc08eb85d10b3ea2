//! Exact span counts at fixed SLA thresholds, kept beside each latency sketch.
//!
//! A sketch answers "what share of spans took at most T?" only within its relative accuracy: spans
//! within about 1 % of T can land on the wrong side. An SLA report has to be exact, and exactness at
//! an arbitrary T chosen at query time would need every duration. So, like SLOs in the tools that
//! compute them from aggregates, the thresholds are fixed in advance — here not per operation in a
//! configuration that can change under stored history, but once for everyone: the round values
//! people pick ([`SLA_THRESHOLDS_NS`]: 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 7.5, 8, 9 in every decade from
//! 0.1 ms to 90 s, and 100 s). Every row counts its spans per interval between two thresholds, so a
//! share at any of them is a sum of exact counts, merged like the sketches (counts add up).
//!
//! Stored sparsely (only non-empty intervals, as varints): an operation's spans usually fall in a
//! decade or two, so a row carries 10–40 bytes more.

use tracex_core::encode::put_varint;

/// Mantissas of the thresholds in every decade, in tenths.
const MANTISSAS_TENTHS: [u64; 12] = [10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90];
/// Decades: 0.1 ms (the first threshold) to 10 s.
const DECADES: usize = 6;
/// How many thresholds there are.
pub const THRESHOLDS: usize = MANTISSAS_TENTHS.len() * DECADES + 1;

/// The thresholds at which shares are exact, in ns, ascending.
pub const SLA_THRESHOLDS_NS: [u64; THRESHOLDS] = thresholds();

const fn thresholds() -> [u64; THRESHOLDS] {
    let mut out = [0; THRESHOLDS];
    // A tenth of the decade's first threshold (0.1 ms = 100,000 ns).
    let mut tenth = 10_000;
    let mut d = 0;
    while d < DECADES {
        let mut m = 0;
        while m < MANTISSAS_TENTHS.len() {
            out[d * MANTISSAS_TENTHS.len() + m] = tenth * MANTISSAS_TENTHS[m];
            m += 1;
        }
        tenth *= 10;
        d += 1;
    }
    out[THRESHOLDS - 1] = 100_000_000_000;
    out
}

/// The threshold index of `ms` if it is one of [`SLA_THRESHOLDS_NS`].
pub fn threshold_index(ms: f64) -> Option<usize> {
    let ns = ms * 1e6;
    SLA_THRESHOLDS_NS.iter().position(|t| {
        let t = *t as f64;
        (ns - t).abs() <= t * 1e-9
    })
}

/// Spans per interval: interval `i` holds durations in `(T[i-1], T[i]]` (interval 0 from 0, the last
/// one over the largest threshold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LadderCounts(Box<[u64; THRESHOLDS + 1]>);

impl Default for LadderCounts {
    fn default() -> Self {
        Self(Box::new([0; THRESHOLDS + 1]))
    }
}

impl LadderCounts {
    /// Counts one duration.
    pub fn add_ns(&mut self, duration_ns: u64) {
        let i = SLA_THRESHOLDS_NS.partition_point(|t| *t < duration_ns);
        self.0[i] += 1;
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// Spans at or under threshold `index`.
    pub fn at_or_under(&self, index: usize) -> u64 {
        self.0[..=index.min(THRESHOLDS - 1)].iter().sum()
    }

    /// Every span counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Appends the stored form: the number of non-empty intervals, then for each its index and
    /// count, as LEB128 varints.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let nonempty = self.0.iter().filter(|c| **c > 0).count();
        put_varint(out, nonempty as u64);
        for (i, c) in self.0.iter().enumerate().filter(|(_, c)| **c > 0) {
            put_varint(out, i as u64);
            put_varint(out, *c);
        }
    }

    /// Reads the stored form from the front of `bytes`, returning the rest.
    pub fn decode_from(mut bytes: &[u8]) -> Option<(Self, &[u8])> {
        let mut out = Self::default();
        let n = read_varint(&mut bytes)?;
        if n > (THRESHOLDS + 1) as u64 {
            return None;
        }
        for _ in 0..n {
            let i = usize::try_from(read_varint(&mut bytes)?).ok().filter(|i| *i <= THRESHOLDS)?;
            out.0[i] = out.0[i].checked_add(read_varint(&mut bytes)?)?;
        }
        Some((out, bytes))
    }
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_round_values_ascending() {
        assert_eq!(SLA_THRESHOLDS_NS[0], 100_000);
        assert_eq!(SLA_THRESHOLDS_NS[THRESHOLDS - 1], 100_000_000_000);
        assert!(SLA_THRESHOLDS_NS.windows(2).all(|w| w[0] < w[1]));
        for ms in [0.1, 0.25, 1.0, 20.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0, 300.0, 500.0, 800.0, 1000.0, 2500.0] {
            assert!(threshold_index(ms).is_some(), "{ms}");
        }
        for ms in [0.0, 0.05, 1.1, 120.0, 333.0, 110_000.0, f64::MAX] {
            assert!(threshold_index(ms).is_none(), "{ms}");
        }
    }

    #[test]
    fn counts_are_exact_at_thresholds_including_equal_durations_and_round_trip() {
        let mut c = LadderCounts::default();
        // At, just over, and under 250 ms; 0; and past the last threshold.
        for d in [250_000_000, 250_000_001, 249_999_999, 0, u64::MAX] {
            c.add_ns(d);
        }
        let i = threshold_index(250.0).unwrap();
        assert_eq!(c.at_or_under(i), 3);
        assert_eq!(c.at_or_under(THRESHOLDS - 1), 4);
        assert_eq!(c.total(), 5);
        let mut bytes = Vec::new();
        c.encode_into(&mut bytes);
        bytes.extend_from_slice(b"rest");
        let (back, rest) = LadderCounts::decode_from(&bytes).unwrap();
        assert_eq!((back, rest), (c.clone(), &b"rest"[..]));
        let mut twice = c.clone();
        twice.merge(&c);
        assert_eq!(twice.at_or_under(i), 6);
    }

    #[test]
    fn malformed_counts_do_not_decode() {
        for bad in [
            &[][..],
            &[1],
            &[1, 200, 1],
            &[200, 1],
            &[1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
        ] {
            assert!(LadderCounts::decode_from(bad).is_none(), "{bad:?}");
        }
    }
}
