//! Self-telemetry: what the SDK did with the spans it was given.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Counters shared by the hot path, the batcher and the sender. Counters touched on the hot path are
/// kept off it (recorded spans are counted by the batcher as it drains) or sharded per thread.
#[derive(Debug, Default)]
pub struct Stats {
    sampled_out: Sharded,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) spans_drained: AtomicU64,
    pub(crate) spans_redacted_values: AtomicU64,
    pub(crate) batches_sealed: AtomicU64,
    pub(crate) spans_sealed: AtomicU64,
    pub(crate) batches_sent: AtomicU64,
    pub(crate) spans_sent: AtomicU64,
    pub(crate) batches_retried: AtomicU64,
    pub(crate) batches_failed: AtomicU64,
    pub(crate) spans_failed: AtomicU64,
    pub(crate) batches_spooled: AtomicU64,
    pub(crate) spans_spooled: AtomicU64,
    pub(crate) batches_unspooled: AtomicU64,
    pub(crate) spans_unspooled: AtomicU64,
    pub(crate) spans_spool_failed: AtomicU64,
    pub(crate) spool_errors: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) key_rotations: AtomicU64,
    pub(crate) receipts_verified: AtomicU64,
    pub(crate) receipts_failed: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Spans ended and accepted into the buffer.
    pub spans_recorded: u64,
    /// Spans not recorded because the sampler said no.
    pub spans_sampled_out: u64,
    /// Spans dropped because the buffer was full (the newest span is dropped).
    pub spans_dropped: u64,
    /// Attribute values masked or removed by redaction.
    pub values_redacted: u64,
    /// Batches sealed.
    pub batches_sealed: u64,
    /// Spans in sealed batches.
    pub spans_sealed: u64,
    /// Batches the collector acknowledged.
    pub batches_sent: u64,
    /// Spans in acknowledged batches.
    pub spans_sent: u64,
    /// Retry attempts (a batch retried three times counts three).
    pub batches_retried: u64,
    /// Batches given up on (rejected, retries exhausted without a spool, or spool full).
    pub batches_failed: u64,
    /// Spans in batches given up on.
    pub spans_failed: u64,
    /// Batches written to the on-disk spool.
    pub batches_spooled: u64,
    /// Spans in batches written to the spool.
    pub spans_spooled: u64,
    /// Spooled batches later delivered.
    pub batches_unspooled: u64,
    /// Spans in spooled batches later delivered (also counted in `spans_sent`).
    pub spans_unspooled: u64,
    /// Spans in spooled batches later given up on (also counted in `spans_failed`).
    pub spans_spool_failed: u64,
    /// Spool read/write failures (e.g. disk full).
    pub spool_errors: u64,
    /// Request body bytes acknowledged by the collector.
    pub bytes_sent: u64,
    /// Data keys generated (one RSA wrap each).
    pub key_rotations: u64,
    /// Acknowledged batches whose receipt verified against the pinned audit key.
    pub receipts_verified: u64,
    /// Acknowledged batches without a receipt, or with one that does not verify for the bytes sent
    /// (with an audit key pinned): the collector did not promise to log them.
    pub receipts_failed: u64,
}

impl Stats {
    pub(crate) fn sampled_out(&self) {
        self.sampled_out.add(1);
    }

    pub(crate) fn sampled_out_many(&self, n: u64) {
        self.sampled_out.add(n);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads all counters; `queued` is the number of spans still in the buffer.
    pub fn snapshot(&self, queued: u64) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            spans_recorded: r(&self.spans_drained) + queued,
            spans_sampled_out: self.sampled_out.sum(),
            spans_dropped: r(&self.spans_dropped),
            values_redacted: r(&self.spans_redacted_values),
            batches_sealed: r(&self.batches_sealed),
            spans_sealed: r(&self.spans_sealed),
            batches_sent: r(&self.batches_sent),
            spans_sent: r(&self.spans_sent),
            batches_retried: r(&self.batches_retried),
            batches_failed: r(&self.batches_failed),
            spans_failed: r(&self.spans_failed),
            batches_spooled: r(&self.batches_spooled),
            spans_spooled: r(&self.spans_spooled),
            batches_unspooled: r(&self.batches_unspooled),
            spans_unspooled: r(&self.spans_unspooled),
            spans_spool_failed: r(&self.spans_spool_failed),
            spool_errors: r(&self.spool_errors),
            bytes_sent: r(&self.bytes_sent),
            key_rotations: r(&self.key_rotations),
            receipts_verified: r(&self.receipts_verified),
            receipts_failed: r(&self.receipts_failed),
        }
    }
}

const SHARDS: usize = 16;

/// A counter split over cache lines so threads incrementing it do not contend.
#[derive(Debug, Default)]
struct Sharded([CachePadded<AtomicU64>; SHARDS]);

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        #[allow(clippy::cast_possible_truncation)]
        let i = NEXT.fetch_add(1, Ordering::Relaxed) as usize;
        i % SHARDS
    };
}

impl Sharded {
    fn add(&self, n: u64) {
        let i = SHARD.with(|s| *s);
        self.0[i].fetch_add(n, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sharded_counter_sums_across_threads() {
        let s = Arc::new(Stats::default());
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| s.sampled_out()))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.snapshot(5).spans_sampled_out, 8000);
        assert_eq!(s.snapshot(5).spans_recorded, 5);
    }
}
